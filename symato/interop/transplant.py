"""Move a model onto another tokenizer: a new input embedding and output head.

Why: a model released with its own tokenizer (RWKV World, a Hugging Face model) or a run
of this pipeline with another kind cannot read symato ids; its embedding rows are
indexed by the source tokenizer's ids. Continued pre-training on Vietnamese needs a row
per *target* id, and the rows it starts from decide how much of the source model's
knowledge survives the first steps. The method is the idea of WECHSEL / FOCUS without
external word vectors: a target id whose bytes are one source token takes that token's
row ("copied"); any other id that stands for some text takes the mean of the rows of the
source tokens that encode that text ("composed"); what stands for no text starts random
with the statistics of the source rows ("random"). The ``random`` method (every
non-copied row random) is the control that measures what composing is worth.

Sources (``SourceVocab``, one small interface: the bytes of each id where it has some,
the ids known by name, ``encode``): a vocabulary of this project (``symato_source``,
every kind of ``symato.text.kinds``), a Hugging Face ``tokenizer.json`` (``hf_source``,
byte-level BPE and sentencepiece-style vocabularies) and the RWKV World vocabulary that
the ``rwkv`` package ships (``rwkv_world_source``); ``load_source`` picks one from a
path. The target is any ``symato.text.tokenizer.Tokenizer``. What each class of target
id is composed from is in ``describe_target`` and docs/transfer.md.

``plan`` decides every target row once; ``apply_plan`` applies it to one matrix (the
embedding, or an untied head: the same plan for each; a tied head is one matrix);
``transplant`` does both and returns the report (counts copied / composed / random,
in all and per id class) that ``write_report`` writes as JSON.
"""

from __future__ import annotations

import ast
import importlib.util
import re
from collections import Counter
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from symato.errors import SymatoError
from symato.text import syllable as S
from symato.text.codecs.base import CASE, EOT, MT, OWN, SYM, WHOLE, utf8
from symato.text.tokenizer import Tokenizer

METHODS = ("compose", "random")
COPIED, COMPOSED, RANDOM = "copied", "composed", "random"
RWKV_WORLD = "rwkv-world"  # the name ``load_source`` takes for the rwkv package's vocabulary
RWKV_WORLD_FILE = "rwkv_vocab_v20230424.txt"
SP_SPACE = "\u2581"  # sentencepiece's space symbol
_RESERVED = re.compile(r"<\|reserved_\d+\|>")
_FALLBACK = re.compile(r"<0x([0-9A-Fa-f]{2})>")
_ESCAPED = re.compile("([\udc80-\udcff]+)")  # bytes that are not UTF-8, after surrogateescape
# End-of-text tokens of released tokenizers, most specific first (a tokenizer_config.json
# beside the tokenizer.json, or the caller, names it when none of these is there).
EOT_CANDIDATES = (EOT, "<|end_of_text|>", "</s>", "<eos>", "<|eos|>")

# What the ids that stand for no text by themselves are composed from (docs/transfer.md).
MARKED_VOWELS = ("aeiouy", "âêô", "ăơư")  # per mark of a marktone: the vowels it marks
TITLE_TEXTS = tuple("ABCDĐEGHIKLMNOPQRSTUVXY")  # a capital starting a word
UPPER_TEXTS = ("TH", "NG", "CH", "TR", "NH", "PH", "KH", "GI", "QU")  # capitals going on


class NotEncodable(SymatoError):
    """The source tokenizer has no token for some byte of a text."""


# ---------------------------------------------------------------------- sources
class SourceVocab:
    """The source model's tokenizer as the transplant needs it.

    ``token_bytes[i]`` is the bytes id i writes by itself (None for ids that write none:
    specials, and symato's marktones, case and syms); ``named`` maps the piece names of
    ids known by name rather than bytes (specials; symato's syllable parts) to their
    ids, so the same piece in a target is copied; ``encode(text)`` is the source's own
    encoding; ``eot_id`` its end-of-text token, if any; ``parts``: ids that write no
    bytes alone yet are part of a text's encoding (symato's marktones, case, syms), kept
    where ``encode`` drops other byteless ids (unknown, specials). ``fallback_ids`` are
    byte-fallback tokens (sentencepiece's ``<0xNN>``): an ordinary token with the same
    bytes is preferred, because it is the one the source model actually saw.
    """

    def __init__(self, name: str, token_bytes: Sequence[bytes | None],
                 encode: Callable[[str], list[int]], *, named: Mapping[str, int] | None = None,
                 eot_id: int | None = None, fallback_ids: Iterable[int] = (),
                 parts: Iterable[int] = ()) -> None:
        self.name = name
        self.token_bytes = tuple(token_bytes)
        self._encode = encode
        self.named = dict(named or {})
        self.eot_id = eot_id
        self.parts = frozenset(parts)
        fallback = set(fallback_ids)
        single: dict[bytes, int] = {}
        for i, data in enumerate(self.token_bytes):
            if data and i not in fallback:
                single.setdefault(data, i)
        for i in sorted(fallback):
            data = self.token_bytes[i]
            if data:
                single.setdefault(data, i)
        self.single = single  # bytes -> the one source token that writes exactly them

    @property
    def vocab_size(self) -> int:
        """Ids of the source tokenizer (a model's matrix may have more rows: padding)."""
        return len(self.token_bytes)

    def encode(self, text: str) -> list[int]:
        """The source's ids of ``text``, without ids that write no bytes (an unknown
        token says nothing about the text) and without a lone space token the source
        put in front by itself (sentencepiece's dummy prefix: not part of ``text``)."""
        ids = [i for i in self._encode(text) if self.token_bytes[i] or i in self.parts]
        if len(ids) > 1 and not text.startswith(" ") and self.token_bytes[ids[0]] == b" ":
            ids = ids[1:]
        return ids

    def encode_bytes(self, data: bytes) -> list[int]:
        """The source's ids of ``data``: its UTF-8 parts encoded as text, each byte that
        is not UTF-8 as the source's token of that byte (``NotEncodable`` if none)."""
        out: list[int] = []
        for k, part in enumerate(_ESCAPED.split(data.decode("utf-8", "surrogateescape"))):
            if k % 2 == 0:
                out += self.encode(part) if part else []
                continue
            for b in part.encode("utf-8", "surrogateescape"):
                token = self.single.get(bytes([b]))
                if token is None:
                    raise NotEncodable(f"source {self.name} has no token for byte {b:#04x}")
                out.append(token)
        return out

    def encode_word(self, text: str) -> list[int]:
        """The ids of ``text`` as it stands in running text, after a space: ``" " +
        text`` encoded (sources learn space-led word tokens), less a lone space token in
        front when the source could not join the space to the word."""
        ids = self.encode(" " + text)
        if len(ids) > 1 and self.token_bytes[ids[0]] == b" ":
            ids = ids[1:]
        return ids


class LongestMatch:
    """Greedy longest-match encoding over a list of byte tokens: how the rwkv package's
    ``TRIE_TOKENIZER`` encodes RWKV World text (tests check that both give the same
    ids), and the encoder of hand-made sources. Tries only token lengths that exist and
    fit, so a short text costs a few dict lookups per token."""

    def __init__(self, token_bytes: Sequence[bytes | None], name: str) -> None:
        self.name = name
        self.ids: dict[bytes, int] = {}
        for i, data in enumerate(token_bytes):
            if data:
                self.ids.setdefault(data, i)
        self.lengths = sorted({len(b) for b in self.ids}, reverse=True)

    def __call__(self, text: str) -> list[int]:
        data, ids, out = utf8(text), self.ids, []
        pos, n = 0, len(data)
        while pos < n:
            for length in self.lengths:
                token = ids.get(data[pos : pos + length]) if length <= n - pos else None
                if token is not None:
                    out.append(token)
                    pos += length
                    break
            else:
                raise NotEncodable(f"source {self.name} has no token for byte "
                                   f"{data[pos]:#04x} of {text!r}")
        return out


def token_list_source(tokens: Sequence[bytes | None], name: str = "tokens", *,
                      eot_id: int | None = None, named: Mapping[str, int] | None = None
                      ) -> SourceVocab:
    """A source from a plain list of byte tokens encoded by longest match (RWKV World's
    scheme; also what tests build by hand)."""
    return SourceVocab(name, tokens, LongestMatch(tokens, name), named=named, eot_id=eot_id)


def rwkv_world_path() -> Path:
    """The RWKV World vocabulary file inside the installed ``rwkv`` package (found
    without importing the package, which would import torch)."""
    spec = importlib.util.find_spec("rwkv")
    if spec is None or not spec.origin:
        raise SymatoError("the RWKV World vocabulary comes with the `rwkv` package, which is "
                          "not installed: pip install rwkv==0.8.32")
    path = Path(spec.origin).parent / RWKV_WORLD_FILE
    if not path.is_file():
        raise SymatoError(f"the rwkv package at {path.parent} lacks {RWKV_WORLD_FILE}")
    return path


def read_rwkv_vocab(path: str | Path) -> list[bytes | None]:
    """The tokens of an RWKV World vocabulary file, one ``id literal length`` per line
    (``literal`` a Python str or bytes literal, parsed with ``ast.literal_eval``: the
    file is data, never code). Id 0, absent from the file, is the end-of-text token."""
    path = Path(path)
    try:
        lines = path.read_text(encoding="utf-8").split("\n")
    except (OSError, UnicodeDecodeError) as exc:
        raise SymatoError(f"cannot read RWKV vocabulary {path}: {exc}") from None
    tokens: dict[int, bytes] = {}
    for lineno, line in enumerate(lines, 1):
        if not line.strip():
            continue
        first, last = line.find(" "), line.rfind(" ")
        try:
            token_id, length = int(line[:first]), int(line[last + 1 :])
            literal = ast.literal_eval(line[first + 1 : last])
        except (ValueError, SyntaxError, MemoryError, RecursionError):
            raise SymatoError(f"{path}:{lineno}: expected `id literal length`") from None
        data = literal.encode("utf-8") if isinstance(literal, str) else literal
        if not isinstance(data, bytes) or len(data) != length or not data:
            raise SymatoError(f"{path}:{lineno}: token {literal!r} is not {length} bytes")
        if token_id <= 0 or token_id in tokens:
            raise SymatoError(f"{path}:{lineno}: id {token_id} is 0 or repeated")
        tokens[token_id] = data
    if not tokens:
        raise SymatoError(f"RWKV vocabulary {path} has no tokens")
    return [tokens.get(i) for i in range(max(tokens) + 1)]


def rwkv_world_source(path: str | Path | None = None) -> SourceVocab:
    """The RWKV World vocabulary (65,529 tokens plus end-of-text id 0), by default the
    one the ``rwkv`` package ships."""
    path = Path(path) if path else rwkv_world_path()
    tokens = read_rwkv_vocab(path)
    return token_list_source(tokens, f"{RWKV_WORLD} ({path.name})", eot_id=0,
                             named={EOT: 0})


def symato_source(tok: Tokenizer, name: str | None = None) -> SourceVocab:
    """A vocabulary of this project (any kind) as a source: ids that write bytes by
    themselves have those bytes (a whole syllable its lower-case text); specials,
    marktones, case and syms are known by name, so a target that has them gets their
    rows (moving between two symato kinds keeps every syllable part)."""
    t, pieces = tok.decode_tables, tok.codec.pieces
    specials = set(tok.special_tokens)
    data: list[bytes | None] = []
    named: dict[str, int] = {}
    for i, piece in enumerate(pieces):
        cls = t.cls[i]
        if cls == OWN:
            own = t.own[i] if piece not in specials and not _RESERVED.fullmatch(piece) else b""
            data.append(own or None)
            if piece in specials:
                named[piece] = i
        else:
            data.append(t.whole_forms[t.arg[i]][0] if cls == WHOLE else None)
            named[piece] = i
    fallback = [i for b, i in enumerate(tok.codec.byte_ids) if pieces[i] == f"<0x{b:02X}>"]
    parts = [i for i in range(len(pieces)) if t.cls[i] != OWN]
    return SourceVocab(name or f"symato vocabulary {tok.kind}", data, tok.encode, named=named,
                       eot_id=tok.eot_id, fallback_ids=fallback, parts=parts)


def byte_level_alphabet() -> dict[str, int]:
    """The printable stand-in of each byte in byte-level BPE (GPT-2's scheme): the
    printable Latin-1 bytes stand for themselves; the others (controls, space, DEL,
    NBSP, soft hyphen) take the characters from U+0100 on, in byte order."""
    char = {b: chr(b) for b in (*range(0x21, 0x7F), *range(0xA1, 0xAD), *range(0xAE, 0x100))}
    others = [b for b in range(256) if b not in char]
    char.update({b: chr(0x100 + k) for k, b in enumerate(others)})
    return {c: b for b, c in char.items()}


def _has_type(node: Any, name: str) -> bool:
    """Whether a tokenizer.json component (possibly a Sequence of them) is of type ``name``."""
    if isinstance(node, dict):
        if node.get("type") == name:
            return True
        return any(_has_type(v, name) for v in node.values() if isinstance(v, (dict, list)))
    if isinstance(node, list):
        return any(_has_type(v, name) for v in node)
    return False


def _hf_eot(path: Path, named: Mapping[str, int], eot_token: str | None) -> int | None:
    """The end-of-text id: the one named, else the ``eos_token`` of a tokenizer_config.json
    beside the file, else the first of ``EOT_CANDIDATES`` the vocabulary has."""
    if eot_token is None:
        config = path.parent / "tokenizer_config.json"
        if config.is_file():
            from symato.io import read_json

            eos = read_json(config, "tokenizer config").get("eos_token")
            eot_token = eos.get("content") if isinstance(eos, dict) else eos
    if eot_token is not None:
        if eot_token not in named:
            raise SymatoError(f"{path}: end-of-text token {eot_token!r} is no special token")
        return named[eot_token]
    return next((named[c] for c in EOT_CANDIDATES if c in named), None)


def hf_source(path: str | Path, eot_token: str | None = None) -> SourceVocab:
    """A Hugging Face ``tokenizer.json`` (the ``tokenizers`` library encodes).

    Token bytes: byte-level vocabularies (a ``ByteLevel`` pre-tokenizer or decoder)
    map each stand-in character back to its byte (``byte_level_alphabet``);
    sentencepiece-style ones write ``▁`` as a space and ``<0xNN>`` byte-fallback
    tokens as that byte; WordPiece continuation tokens lose their ``##``. Special added
    tokens write nothing and are known by name."""
    from tokenizers import Tokenizer as HFTokenizer

    from symato.io import read_json

    path = Path(path)
    spec = read_json(path, "tokenizer.json")
    if not isinstance(spec, dict) or "model" not in spec:
        raise SymatoError(f"{path}: not a Hugging Face tokenizer.json (no key 'model')")
    try:
        hf = HFTokenizer.from_file(str(path))
    except Exception as exc:  # the Rust loader raises its own Exception type
        raise SymatoError(f"{path}: the tokenizers library cannot load it: {exc}") from None
    vocab = hf.get_vocab(with_added_tokens=True)
    added = {a["content"]: bool(a.get("special")) for a in spec.get("added_tokens") or []}
    model = spec["model"]
    byte_level = _has_type(spec.get("pre_tokenizer"), "ByteLevel") or _has_type(
        spec.get("decoder"), "ByteLevel")
    alphabet = byte_level_alphabet()
    prefix = model.get("continuing_subword_prefix") if model.get("type") == "WordPiece" else None
    data: list[bytes | None] = [None] * (max(vocab.values()) + 1)
    named: dict[str, int] = {}
    fallback: list[int] = []
    for piece, i in vocab.items():
        if added.get(piece):
            named[piece] = i
        elif piece in added:  # a non-special added token matches its text as written
            data[i] = utf8(piece)
        elif byte_level and all(c in alphabet for c in piece):
            data[i] = bytes(alphabet[c] for c in piece)
        elif model.get("byte_fallback") and _FALLBACK.fullmatch(piece):
            data[i] = bytes([int(piece[3:5], 16)])
            fallback.append(i)
        else:
            if prefix and piece.startswith(prefix):
                piece = piece[len(prefix) :]
            data[i] = utf8(piece.replace(SP_SPACE, " ")) or None

    def encode(text: str) -> list[int]:
        return hf.encode(text, add_special_tokens=False).ids

    return SourceVocab(f"tokenizer.json {path}", data, encode, named=named,
                       eot_id=_hf_eot(path, named, eot_token), fallback_ids=fallback)


def load_source(spec: str | Path, eot_token: str | None = None) -> SourceVocab:
    """A source tokenizer from ``rwkv-world``, a symato vocabulary file, a Hugging Face
    ``tokenizer.json`` or a folder holding one (a checkpoint folder). A run of this
    pipeline carries its vocabulary in its checkpoint: ``symato_source(
    Tokenizer.from_dict(meta["tokenizer"]))``."""
    if str(spec) == RWKV_WORLD:
        return rwkv_world_source()
    path = Path(spec)
    if path.is_dir():
        if not (path / "tokenizer.json").is_file():
            raise SymatoError(f"{path}: no tokenizer.json in this folder")
        path = path / "tokenizer.json"
    from symato.io import read_json

    head = read_json(path, "source tokenizer")
    if isinstance(head, dict) and head.get("format") == "symato-vocab":
        return symato_source(Tokenizer.from_file(path), f"symato vocabulary {path}")
    if isinstance(head, dict) and "model" in head:
        return hf_source(path, eot_token)
    raise SymatoError(f"{path}: neither a symato vocabulary (format 'symato-vocab') nor a "
                      f"Hugging Face tokenizer.json (key 'model'); or name {RWKV_WORLD!r}")


# ---------------------------------------------------------------------- the target
@dataclass(frozen=True)
class TargetId:
    """One id of the target tokenizer as the transplant sees it.

    ``cls``: its class (byte, marktone, case, special, sym, merge, whole, word,
    piece, reserved); ``piece`` its name; ``data`` the bytes it writes by itself
    (None if it writes none alone); ``named``: known by its piece name (syllable parts,
    whole syllables and words, specials), so a source with the same piece gives its
    row; ``texts``: what its row is composed from when no single source token writes
    it (the mean over the texts of the mean of each text's source rows; without texts,
    ``data`` is encoded); ``space``: the texts stand after a space in running text.
    """

    cls: str
    piece: str
    data: bytes | None = None
    named: bool = False
    texts: tuple[str, ...] = ()
    space: bool = False


def marktone_texts(marktone: int) -> tuple[str, ...]:
    """The vowels a marktone puts its mark and tone on (``<ấ>``: ấ ế ố)."""
    mark, tone = divmod(marktone, 6)
    return tuple(S.put_tone(v, 0, tone) for v in MARKED_VOWELS[mark])


def _sym_texts(style: str) -> dict[str, tuple[str, ...]]:
    """Every sym's syllables (lower case, in the tone style): what a sym id stands for
    before its marktone chooses one."""
    out: dict[str, list[str]] = {}
    for (sym, _), syllable in sorted(S.composed_table(style).items()):
        out.setdefault(sym, []).append(syllable)
    return {sym: tuple(v) for sym, v in out.items()}


def describe_target(tok: Tokenizer) -> list[TargetId]:
    """What every id of ``tok`` stands for: its class, name, bytes, texts."""
    t, codec = tok.decode_tables, tok.codec
    pieces, specials = codec.pieces, set(tok.special_tokens)
    byte_ids = set(codec.byte_ids)
    syms = _sym_texts(tok.tone_style) if any(c == SYM for c in t.cls) else {}
    out: list[TargetId] = []
    for i, piece in enumerate(pieces):
        cls = t.cls[i]
        if cls == MT:
            out.append(TargetId("marktone", piece, named=True, texts=marktone_texts(t.arg[i])))
        elif cls == CASE:
            texts = TITLE_TEXTS if t.arg[i] == 1 else UPPER_TEXTS
            out.append(TargetId("case", piece, named=True, texts=texts, space=True))
        elif cls == SYM:
            out.append(TargetId("sym", piece, named=True, texts=syms[piece], space=True))
        elif cls == WHOLE:
            text = t.whole_forms[t.arg[i]][0].decode("utf-8")
            out.append(TargetId("word" if " " in text else "whole", piece, utf8(text),
                                named=True, texts=(text,), space=True))
        elif piece in specials or not t.own[i]:  # sentencepiece's control, unknown ids
            out.append(TargetId("special", piece, named=True))
        elif _RESERVED.fullmatch(piece):
            out.append(TargetId("reserved", piece))
        elif i in byte_ids:
            out.append(TargetId("byte", piece, t.own[i]))
        else:
            out.append(TargetId("merge" if codec.is_merge(i) else "piece", piece, t.own[i]))
    return out


# ---------------------------------------------------------------------- the plan
@dataclass(frozen=True)
class Row:
    """How one target row is made: ``how`` (copied / composed / random), the target
    id's class, and the source ids: one id (copied), or groups whose means are averaged
    (composed)."""

    how: str
    cls: str
    groups: tuple[tuple[int, ...], ...] = ()


@dataclass(frozen=True)
class Plan:
    """Every target row's recipe; the same for the embedding and an untied head."""

    source: str
    source_size: int
    target: str
    method: str
    rows: tuple[Row, ...]

    def report(self) -> dict[str, Any]:
        """Counts copied / composed / random, in all and per id class, and the mean
        number of source tokens behind a composed row."""
        by_class: dict[str, dict[str, int]] = {}
        for row in self.rows:
            counts = by_class.setdefault(row.cls, {COPIED: 0, COMPOSED: 0, RANDOM: 0})
            counts[row.how] += 1
        total = Counter(row.how for row in self.rows)
        composed = [sum(map(len, r.groups)) / len(r.groups) for r in self.rows
                    if r.how == COMPOSED]
        return {"source": self.source, "source_vocab_size": self.source_size,
                "target": self.target, "target_vocab_size": len(self.rows),
                "method": self.method, **{k: total.get(k, 0) for k in (COPIED, COMPOSED, RANDOM)},
                "by_class": by_class,
                "source_tokens_per_composed_id":
                    round(sum(composed) / len(composed), 4) if composed else 0.0}


def _copy_of(source: SourceVocab, item: TargetId) -> int | None:
    """The one source id this target id is, if any: the same named piece, the
    end-of-text token, or a source token writing exactly its bytes (after a space
    first, for syllables and words)."""
    if item.named and item.piece in source.named:
        return source.named[item.piece]
    if item.piece == EOT and source.eot_id is not None:
        return source.eot_id
    if item.data:
        for data in ((b" " + item.data) if item.space else None, item.data):
            if data is not None and data in source.single:
                return source.single[data]
    return None


def _groups_of(source: SourceVocab, item: TargetId) -> tuple[tuple[int, ...], ...]:
    """The source ids of each text the item stands for (empty groups dropped)."""
    try:
        if item.texts:
            encode = source.encode_word if item.space else source.encode
            groups = [encode(text) for text in item.texts]
        else:
            groups = [source.encode_bytes(item.data)] if item.data else []
    except NotEncodable:
        return ()
    return tuple(tuple(g) for g in groups if g)


def plan(source: SourceVocab, target: Tokenizer, method: str = "compose") -> Plan:
    """Decide every target row: copied where one source token is the id, composed
    (method ``compose``) where the id stands for text the source encodes, else random.
    The ``random`` method copies the same rows and leaves every other row random."""
    if method not in METHODS:
        raise SymatoError(f"transplant method {method!r} is not one of {list(METHODS)}")
    rows: list[Row] = []
    for item in describe_target(target):
        copy = _copy_of(source, item)
        if copy is not None:
            rows.append(Row(COPIED, item.cls, ((copy,),)))
            continue
        groups = _groups_of(source, item) if method == "compose" else ()
        rows.append(Row(COMPOSED, item.cls, groups) if groups else Row(RANDOM, item.cls))
    return Plan(source.name, source.vocab_size, target.kind, method, tuple(rows))


def apply_plan(p: Plan, matrix: Any, *, seed: int = 0, name: str = "matrix") -> Any:
    """The target matrix (a torch tensor, one row per target id, ``matrix``'s dtype)
    made from the source ``matrix`` (rows indexed by source ids; more rows than the
    source's ids, padding, are allowed and never read). Random rows are drawn per
    column from a normal with the mean and standard deviation of the source rows
    (``seed`` fixes them). Composed rows are means computed in float32 (float64 if
    the matrix is), so they equal ``matrix[ids].mean(0)`` exactly for float32 input."""
    import torch

    if not isinstance(matrix, torch.Tensor) or matrix.ndim != 2:
        raise SymatoError(f"transplant: {name} must be a 2-d tensor, got "
                          f"{getattr(matrix, 'shape', type(matrix).__name__)}")
    if matrix.shape[0] < p.source_size:
        raise SymatoError(f"transplant: {name} has {matrix.shape[0]} rows, fewer than the "
                          f"{p.source_size} ids of source {p.source}")
    work = matrix.detach().to(torch.float64 if matrix.dtype == torch.float64 else torch.float32)
    known = work[: p.source_size]
    out = torch.empty((len(p.rows), work.shape[1]), dtype=work.dtype)
    copied = [(t, r.groups[0][0]) for t, r in enumerate(p.rows) if r.how == COPIED]
    if copied:
        to, frm = zip(*copied, strict=True)
        out[list(to)] = work[list(frm)]
    for t, row in enumerate(p.rows):
        if row.how == COMPOSED:
            means = [work[list(g)].mean(0) for g in row.groups]
            out[t] = means[0] if len(means) == 1 else torch.stack(means).mean(0)
    rand = [t for t, r in enumerate(p.rows) if r.how == RANDOM]
    if rand:
        gen = torch.Generator().manual_seed(seed)
        noise = torch.randn((len(rand), work.shape[1]), generator=gen, dtype=work.dtype)
        out[rand] = known.mean(0) + known.std(0) * noise
    return out.to(matrix.dtype)


def transplant(source: SourceVocab, target: Tokenizer, matrices: Mapping[str, Any], *,
               method: str = "compose", seed: int = 0) -> tuple[dict[str, Any], dict[str, Any]]:
    """New matrices for ``target`` from the source model's ``matrices`` (name -> tensor:
    the embedding, and the head if it is untied; a tied head is passed once) and the
    run's report. Each matrix gets the same plan; the k-th draws its random rows with
    ``seed + k``."""
    p = plan(source, target, method)
    out = {name: apply_plan(p, m, seed=seed + k, name=name)
           for k, (name, m) in enumerate(matrices.items())}
    return out, {**p.report(), "matrices": list(matrices), "seed": seed}


def write_report(report: Mapping[str, Any], path: str | Path) -> None:
    """Write a transplant's report as JSON, atomically (the run folder keeps it)."""
    from symato.io import write_json_atomic

    for key in ("method", COPIED, COMPOSED, RANDOM, "by_class"):
        if key not in report:
            raise SymatoError(f"transplant report for {path} lacks key {key!r}")
    write_json_atomic(path, dict(report))
