"""``Tokenizer``: lossless encode/decode for every vocabulary kind.

Kinds: ``symato`` (bytes + 18 marktones + case + specials + syms), ``symato+N`` (plus N
whole lower-case syllables), ``symato-bpeV`` (V ids in all: symato plus byte-pair merges
for the text between syllables, ``symato.text.bpe``), and the peers ``bytes`` and
``sentencepiece`` used by the pipeline's tokenizer comparison. All share one interface
and one invariant:
``decode(encode(s)) == s`` for every str and ``decode_bytes(encode_bytes(b)) == b`` for
every byte string.

symato scheme: a letter run that is a legal syllable written canonically (NFC, the
vocabulary's tone style, lower/Title/UPPER) becomes ``[case] sym marktone`` (or
``[case] syllable`` for a whole-syllable token); anything else becomes UTF-8 byte tokens.
One ASCII space between two syllables is implicit: not emitted, restored by ``decode``.

Speed: text is split on spaces and each space-free chunk is looked up in a dict cache
(chunk -> tokens); Vietnamese is mostly short repeated words, so after warm-up encoding is
one dict lookup per word. Decoding is one call into a compiled loop over flat tables
(``symato.text.fastdecode``: ids in, text out, the reference decoder's output for every
in-range id sequence); ids it does not take go to the checking Python path. The Python
decoders stay selectable by name (``backend="python"``): a numpy pass over lookup tables
for long streams, a plain loop over per-id tables for short ones, the reference loop for
anything ill-formed. ``stream_decoder`` decodes incrementally (generation prints as it
samples).
"""

from __future__ import annotations

import array
import base64
import codecs
import copy
import os
import re
from collections.abc import Iterable, Sequence
from itertools import pairwise
from pathlib import Path
from typing import Any

import numpy as np

from symato.errors import SymatoError
from symato.text import fastdecode
from symato.text import syllable as S
from symato.text.bpe import BpeCodec
from symato.text.kinds import kind_of, name_pattern

FORMAT = "symato-vocab"
# 2: the grammar accepts the dictionary syllables of docs/tokenizer.md (2,275 syms).
# Version-1 files of the bytes and sentencepiece kinds mean the same and still load;
# version-1 symato files list the old 2,256 syms and are refused with how to rebuild.
VERSION = 2
EOT = "<|endoftext|>"
N_BYTES = 256
MT_BASE = N_BYTES  # 256..273: the 18 marktones
TITLE_ID = MT_BASE + S.MARKTONES  # 274
UPPER_ID = TITLE_ID + 1  # 275
SPECIAL_BASE = UPPER_ID + 1  # 276: <|endoftext|>, then the other specials
SYMATO_SIZE = 2816
_FAST_MIN = 384  # ids; shorter sequences decode faster in the short loop (~10 us fixed cost)
_C_BYTE, _C_MT, _C_CASE, _C_SYM, _C_WHOLE, _C_OTHER = range(6)
_BAD = 1 << 40  # a fast-decoder code past every table: an ill-formed token pair
_CACHE_LIMIT = 1 << 20  # chunks; the cache is cleared when it grows past this
_CACHE_CHUNK = 64  # longest chunk (characters) worth caching
_SPACE = 0x20
_SP_SPACE = "\u2581"  # sentencepiece's whitespace symbol


def _marktone_piece(mt: int) -> str:
    """Readable marktone names: the vowel a/â/ă carrying that mark and tone, in <>."""
    mark, tone = divmod(mt, 6)
    base = ("a", "â", "ă")[mark]
    return "<" + S.put_tone(base, 0, tone) + ">"


BYTE_PIECES = tuple(f"<0x{b:02X}>" for b in range(N_BYTES))
MARKTONE_PIECES = tuple(_marktone_piece(mt) for mt in range(S.MARKTONES))
CASE_PIECES = ("<Title>", "<UPPER>")
_BYTE_PIECE_RE = re.compile(r"^<0x([0-9A-F]{2})>$")
_SURROGATES = re.compile("[\ud800-\udfff]+")


def _recover_surrogates(exc: UnicodeError) -> tuple[str, int]:
    """Decode error handler: a surrogate encoded by 'surrogatepass' comes back as itself
    (so ``decode(encode(s)) == s`` even for lone surrogates); other bad bytes become U+FFFD.
    """
    if not isinstance(exc, UnicodeDecodeError):
        raise exc
    chunk = exc.object[exc.start : exc.start + 3]
    if (len(chunk) == 3 and chunk[0] == 0xED and 0xA0 <= chunk[1] <= 0xBF
            and chunk[2] & 0xC0 == 0x80):
        return chunk.decode("utf-8", "surrogatepass"), exc.start + 3
    return "\ufffd", exc.start + 1


codecs.register_error("symato-surrogates", _recover_surrogates)


def _to_text(data: bytes) -> str:
    return data.decode("utf-8", "symato-surrogates")


def _utf8(text: str) -> bytes:
    return text.encode("utf-8", "surrogatepass")


def _as_id_array(ids: Sequence[int] | np.ndarray) -> np.ndarray | None:
    """ids as an integer array, or None if they are not all non-negative integers.

    A Python sequence goes through array.array('Q'): it converts each item in C about
    twice as fast as array.array('q') (which parses every item with PyArg_Parse) and
    np.array; a negative id raises OverflowError there and takes the checking path."""
    if isinstance(ids, np.ndarray):
        return ids if ids.dtype.kind in "iu" else None
    try:
        return np.frombuffer(array.array("Q", ids), dtype=np.uint64)
    except (TypeError, OverflowError):
        return None


def _gather(flat: np.ndarray, starts: np.ndarray, lengths: np.ndarray) -> bytes:
    """Concatenate the byte slices flat[start:start+length] (one or more; lengths may be 0) with no
    data-dependent branch per slice (np.repeat's per-slice loop mispredicts on real
    streams): the source index of output byte j is a running sum of 1s, plus at the first
    output byte of each slice the jump from the previous slice's source end to its start
    (np.add.at sums the jumps of empty slices that share an output position)."""
    out_start = np.empty(len(starts) + 1, dtype=np.int64)
    out_start[0] = 0
    np.cumsum(lengths, out=out_start[1:])
    total = int(out_start[-1])
    jump = np.empty_like(starts)
    jump[0] = starts[0]
    np.subtract(starts[1:], starts[:-1], out=jump[1:])
    jump[1:] -= lengths[:-1]
    src = np.ones(total + 1, dtype=np.int64)
    np.add.at(src, out_start[:-1], jump)
    src[0] -= 1
    np.cumsum(src, out=src)
    return flat[src[:total]].tobytes()


def _merge_piece(data: bytes) -> str:
    """Readable, unique piece name of a merge: ``+`` and its text, or its hex if it is
    not valid UTF-8."""
    try:
        return "+" + data.decode("utf-8")
    except UnicodeDecodeError:
        return f"<+0x{data.hex().upper()}>"


def _utf8_cut(data: bytes) -> int:
    """Length of the longest prefix of ``data`` whose decoding cannot change with more
    bytes: everything before a trailing lead byte whose sequence is still incomplete.

    Why this is enough for exactness: the decoders resolve every invalid byte where it
    stands (U+FFFD, resume at the next byte) except a 3-byte encoded surrogate, which
    starts with a lead byte; so text decoded up to a lead byte never depends on what
    follows it."""
    n = len(data)
    for back in range(1, min(4, n) + 1):
        b = data[n - back]
        if b & 0xC0 != 0x80:  # not a continuation byte
            need = 2 if b < 0xE0 and b >= 0xC0 else 3 if 0xE0 <= b < 0xF0 else 4 if b >= 0xF0 else 1
            return n - back if need > back else n
    return n


def _bad(where: str, msg: str) -> SymatoError:
    return SymatoError(f"corrupt vocabulary {where}: {msg}")


class Tokenizer:
    """A vocabulary plus its encoder and decoder; build with ``default``, ``from_file``,
    ``from_dict`` or ``symato.text.vocab.build_vocab``."""

    def __init__(self, data: dict[str, Any], *, source: str = "<dict>") -> None:
        self._data = copy.deepcopy(data)
        self._source = source
        self._validate_header()
        self.kind: str = data["kind"]
        self.tone_style: str = data.get("tone_style", "new")
        self._cache: dict[str, tuple[tuple[int, ...], bool, bool]] = {}
        self._sp = None
        self._fast: tuple[Any, ...] | None = None
        self._syms: tuple[str, ...] = ()
        self._syllables: tuple[str, ...] = ()
        self._bpe: BpeCodec | None = None
        self._bpe_cache: dict[str, tuple[bytes, tuple[int, ...], bytes, bool]] = {}
        self._short: tuple[Any, ...] | None = None
        self._backend = fastdecode.default_backend()  # of calls that name none
        self._cdec: Any = None  # the compiled decoder, built on first use
        self._hot: Any = None  # the compiled decoder once built, if it is the default
        if kind_of(self.kind, source)[0].encoding == "sentencepiece":
            self._init_sentencepiece()
        else:
            self._init_table()

    # ------------------------------------------------------------------ construction
    def _validate_header(self) -> None:
        d, where = self._data, self._source
        if not isinstance(d, dict):
            raise _bad(where, "top level is not a JSON object")
        if d.get("format") != FORMAT:
            raise _bad(where, f"key 'format' is {d.get('format')!r}, expected {FORMAT!r}")
        kind = d.get("kind")
        if not isinstance(kind, str) or not re.fullmatch(name_pattern(), kind):
            raise _bad(where, f"key 'kind' is {kind!r}")
        version = d.get("version")
        if version == 1 and kind.startswith("symato"):
            raise SymatoError(
                f"vocabulary {where} (kind {kind!r}) was built with format version 1, whose "
                f"syllable grammar had 2,256 syms; the grammar now has {len(S.all_syms())}. "
                f"Rebuild it: `symato vocab --name {kind} ...` (in the pipeline: "
                "`snakemake --forcerun vocab`), and retrain models that used it")
        if version not in (1, VERSION):
            raise _bad(where, f"key 'version' is {version!r}, expected {VERSION}")
        if d.get("tone_style", "new") not in S.STYLES:
            raise _bad(where, f"key 'tone_style' is {d.get('tone_style')!r}")
        specials = d.get("specials")
        if not (isinstance(specials, list) and specials and specials[0] == EOT
                and all(isinstance(s, str) and s for s in specials)
                and len(set(specials)) == len(specials)):
            raise _bad(where, f"key 'specials' must list unique non-empty strings, first {EOT!r}")

    def _init_table(self) -> None:
        """Lay out ids for the bytes and symato kinds and build the decode tables."""
        d, where = self._data, self._source
        pieces: list[str] = list(BYTE_PIECES)
        self._mt_base = self._sym_base = self._syl_base = -1
        if self.kind == "bytes":
            self._special_base = N_BYTES
            pieces += d["specials"]
        else:
            pieces += [*MARKTONE_PIECES, *CASE_PIECES, *d["specials"]]
            self._mt_base = MT_BASE
            self._special_base = SPECIAL_BASE
            syms, syllables = d.get("syms"), d.get("syllables", [])
            if not isinstance(syms, list) or not isinstance(syllables, list):
                raise _bad(where, "keys 'syms' and 'syllables' must be lists")
            self._check_syms(syms)
            self._check_syllables(syllables)
            self._syms, self._syllables = tuple(syms), tuple(syllables)
            self._sym_base = len(pieces)
            pieces += syms
            kind, match = kind_of(self.kind, where)
            bpe_size = match.group(1) if kind.name == "symato-bpeV" else None
            if bpe_size is not None:
                self._bpe = BpeCodec(d.get("merges"), len(pieces), where)
                pieces += [_merge_piece(b) for b in self._bpe.token_bytes]
                if d.get("size") != int(bpe_size):
                    raise _bad(where, f"key 'size' is {d.get('size')!r}, the kind says {bpe_size}")
            size = d.get("size", len(pieces))
            if not isinstance(size, int) or size < len(pieces):
                raise _bad(where, f"key 'size' is {size!r}, below the {len(pieces)} ids it needs")
            pieces += [f"<|reserved_{i}|>" for i in range(size - len(pieces))]
            self._syl_base = len(pieces)
            pieces += ["=" + s for s in syllables]
        self._pieces = tuple(pieces)
        self._piece_ids = {p: i for i, p in enumerate(pieces)}
        if len(self._piece_ids) != len(pieces):
            raise _bad(where, "duplicate pieces")
        self._build_tables()

    def _check_syms(self, syms: list[Any]) -> None:
        legal = set(S.all_syms())
        for i, sym in enumerate(syms):
            if not isinstance(sym, str) or sym not in legal:
                raise _bad(self._source, f"'syms'[{i}] = {sym!r} is not a sym of the grammar")
        if len(set(syms)) != len(syms):
            raise _bad(self._source, "'syms' has duplicates")
        missing = len(legal) - len(syms)
        if missing:
            raise _bad(self._source, f"'syms' lacks {missing} legal syms (all must be present)")

    def _check_syllables(self, syllables: list[Any]) -> None:
        legal = set(S.all_syllables(self.tone_style))
        for i, syl in enumerate(syllables):
            if not isinstance(syl, str) or syl not in legal:
                raise _bad(self._source, f"'syllables'[{i}] = {syl!r} is not a canonical syllable")
        if len(set(syllables)) != len(syllables):
            raise _bad(self._source, "'syllables' has duplicates")
        kind, match = kind_of(self.kind, self._source)
        expected = match.group(1) if kind.name == "symato+N" else None
        if expected is None and syllables:
            raise _bad(self._source, "kind 'symato' must not list 'syllables'")
        if expected is not None and int(expected) != len(syllables):
            raise _bad(self._source,
                       f"kind {self.kind!r} needs {expected} syllables, has {len(syllables)}")

    def _build_tables(self) -> None:
        """Decode tables: per id a byte string; per (sym id, marktone) the syllable bytes."""
        self._id_bytes: list[bytes] = [bytes([b]) for b in range(N_BYTES)]
        self._id_bytes += [_utf8(p) for p in self._pieces[N_BYTES:]]
        if self._bpe is not None:  # a merge's piece name is not its bytes
            base = self._sym_base + len(self._syms)
            self._id_bytes[base : base + len(self._bpe.token_bytes)] = self._bpe.token_bytes
        self._sym_ids = {s: self._sym_base + i for i, s in enumerate(self._syms)}
        self._syl_ids = {s: self._syl_base + i for i, s in enumerate(self._syllables)}
        self._compose: dict[int, list[bytes]] = {}  # key sym_id * 18 + mt -> [lower, title, upper]
        self._whole_of: dict[int, int] = {}  # key sym_id * 18 + mt -> whole-syllable id
        if self._syms:
            for (sym, mt), form in S.composed_table(self.tone_style).items():
                key = self._sym_ids[sym] * S.MARKTONES + mt
                self._compose[key] = [_utf8(S.apply_case(form, c)) for c in S.CASES]
                if form in self._syl_ids:
                    self._whole_of[key] = self._syl_ids[form]
            self._whole = [[_utf8(S.apply_case(s, c)) for c in S.CASES] for s in self._syllables]

    def _init_sentencepiece(self) -> None:
        import sentencepiece as spm

        blob = self._data.get("sentencepiece_model")
        if not isinstance(blob, str):
            raise _bad(self._source, "key 'sentencepiece_model' (base64) is missing")
        try:
            proto = base64.b64decode(blob, validate=True)
            self._sp = spm.SentencePieceProcessor(model_proto=proto)
        except Exception as exc:  # binascii.Error, RuntimeError from the C++ loader
            raise _bad(self._source, f"key 'sentencepiece_model' does not load: {exc}") from None
        n = self._sp.get_piece_size()
        self._pieces = tuple(self._sp.id_to_piece(i) for i in range(n))
        self._piece_ids = {p: i for i, p in enumerate(self._pieces)}
        self._byte_ids = [self._piece_ids.get(p, -1) for p in BYTE_PIECES]
        if min(self._byte_ids) < 0:
            raise _bad(self._source, "sentencepiece model lacks byte-fallback pieces")
        for sp in self._data["specials"]:
            if sp not in self._piece_ids:
                raise _bad(self._source, f"sentencepiece model lacks special {sp!r}")
        self._mt_base = -1
        self._id_bytes = [_utf8(p.replace(_SP_SPACE, " ")) for p in self._pieces]
        for b, i in enumerate(self._byte_ids):
            self._id_bytes[i] = bytes([b])
        for i in range(n):
            if self._sp.is_control(i) or self._sp.is_unknown(i):
                special = self._pieces[i] in self._data["specials"]
                self._id_bytes[i] = _utf8(self._pieces[i]) if special else b""

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Tokenizer:
        """The tokenizer for a vocabulary dict (as written by ``save`` / ``to_dict``)."""
        return cls(data)

    @classmethod
    def from_file(cls, path: str | os.PathLike[str]) -> Tokenizer:
        """Load a vocabulary JSON file; a missing or corrupt file raises ``SymatoError``."""
        from symato.io import read_json

        if str(path) == "default":
            return cls.default()
        return cls(read_json(path, "vocabulary file"), source=str(path))

    @classmethod
    def default(cls) -> Tokenizer:
        """The symato vocabulary built from the grammar alone (syms in sorted order)."""
        global _DEFAULT
        if _DEFAULT is None:
            _DEFAULT = cls(symato_dict(S.all_syms()), source="<default>")
        return _DEFAULT

    def to_dict(self) -> dict[str, Any]:
        """The JSON-able vocabulary dict (what ``save`` writes)."""
        return copy.deepcopy(self._data)

    def save(self, path: str | os.PathLike[str]) -> None:
        """Write the vocabulary atomically as versioned JSON."""
        from symato.io import write_json_atomic

        write_json_atomic(Path(path), self._data)

    # ------------------------------------------------------------------ properties
    @property
    def vocab_size(self) -> int:
        """Number of ids (embedding rows a model needs)."""
        return len(self._pieces)

    @property
    def decode_backend(self) -> str:
        """The decode backend of calls that name none: ``c`` (compiled), or ``python``
        when ``$SYMATO_DECODER`` asked for it (``symato.text.fastdecode``)."""
        return self._backend

    @property
    def eot_id(self) -> int:
        """Id of ``<|endoftext|>``, the document separator."""
        return self._piece_ids[EOT]

    @property
    def special_tokens(self) -> dict[str, int]:
        """Special token piece -> id."""
        return {s: self._piece_ids[s] for s in self._data["specials"]}

    @property
    def marktone_ids(self) -> tuple[int, ...]:
        """The 18 marktone ids in marktone order (empty for non-symato kinds)."""
        if self._mt_base < 0:
            return ()
        return tuple(range(self._mt_base, self._mt_base + S.MARKTONES))

    def is_syllable_start(self, token_id: int) -> bool:
        """True for the ids a syllable starts with: case, sym and whole-syllable ids.

        Why: a single space between two syllables is implicit, so code that lays out ids
        by hand (restoration) must know which ids begin a syllable; merges and bytes
        (also ids >= 256 in symato-bpe) do not."""
        if not self._syms:
            return False
        return (token_id in (TITLE_ID, UPPER_ID)
                or self._sym_base <= token_id < self._sym_base + len(self._syms)
                or self._syl_base <= token_id < len(self._pieces))

    def is_merge(self, token_id: int) -> bool:
        """True for the byte-pair merge ids of a symato-bpe vocabulary."""
        if self._bpe is None:
            return False
        base = self._sym_base + len(self._syms)
        return base <= token_id < base + len(self._bpe.token_bytes)

    def marktone_index(self, token_id: int) -> int | None:
        """Marktone 0..17 of a marktone id, else None."""
        if self._mt_base >= 0 and self._mt_base <= token_id < self._mt_base + S.MARKTONES:
            return token_id - self._mt_base
        return None

    def sym_of(self, token_id: int) -> str | None:
        """The sym of a sym id, else None."""
        if self._syms and self._sym_base <= token_id < self._sym_base + len(self._syms):
            return self._syms[token_id - self._sym_base]
        return None

    def sym_id(self, sym: str) -> int | None:
        """The id of ``sym`` (None for non-symato kinds or unknown syms)."""
        return self._sym_ids.get(sym) if self._syms else None

    def whole_id(self, sym_id: int, marktone: int) -> int | None:
        """The whole-syllable id (symato+N) of the syllable ``sym marktone``, else None."""
        return self._whole_of.get(sym_id * S.MARKTONES + marktone)

    def id_to_piece(self, token_id: int) -> str:
        """The piece name of an id (bytes are ``<0xNN>``; whole syllables ``=syllable``)."""
        self._check_ids([token_id])
        return self._pieces[token_id]

    def piece_to_id(self, piece: str) -> int:
        """The id of a piece name; KeyError-free: raises SymatoError for unknown pieces."""
        try:
            return self._piece_ids[piece]
        except KeyError:
            raise SymatoError(f"unknown piece {piece!r} in vocabulary {self._source}") from None

    def _check_ids(self, ids: Iterable[int]) -> None:
        n = len(self._pieces)
        for pos, t in enumerate(ids):
            if not isinstance(t, (int, np.integer)) or isinstance(t, bool):
                raise SymatoError(f"token id {t!r} at position {pos} is not an integer")
            if not 0 <= t < n:
                raise SymatoError(f"token id {t} at position {pos} is out of range 0..{n - 1}")

    def __getstate__(self) -> dict[str, Any]:
        """Pickling (e.g. to worker processes) leaves out the compiled decoder, which is
        rebuilt on the first decode after unpickling."""
        state = self.__dict__.copy()
        state["_cdec"] = state["_hot"] = None
        return state

    def __repr__(self) -> str:
        return (f"Tokenizer(kind={self.kind!r}, vocab_size={self.vocab_size}, "
                f"source={self._source!r})")

    # ------------------------------------------------------------------ encoding
    def encode(self, text: str) -> list[int]:
        """Token ids of ``text``; ``decode`` gives ``text`` back exactly."""
        if self._sp is not None:
            return self._sp_encode(text)
        if not self._syms:
            return list(_utf8(text))
        return self._encode_symato(text)

    def encode_batch(self, texts: Sequence[str]) -> list[list[int]]:
        """``encode`` for each text (one shared cache)."""
        return [self.encode(t) for t in texts]

    def encode_bytes(self, data: bytes) -> list[int]:
        """Token ids of raw bytes that need not be valid UTF-8 (bad bytes become byte tokens)."""
        text = bytes(data).decode("utf-8", "surrogateescape")
        if self._sp is None and not self._syms:
            return list(data)
        out: list[int] = []
        pos = 0
        for m in _SURROGATES.finditer(text):
            out += self.encode(text[pos : m.start()])
            out += self._byte_tokens(m.group().encode("utf-8", "surrogateescape"))
            pos = m.end()
        out += self.encode(text[pos:])
        return out

    def _byte_tokens(self, data: bytes) -> list[int]:
        if self._sp is not None:
            return [self._byte_ids[b] for b in data]
        return list(data)

    def _encode_symato(self, text: str) -> list[int]:
        if self._bpe is not None:
            return self._encode_bpe(text)
        cache = self._cache
        if len(cache) > _CACHE_LIMIT:
            cache.clear()
        chunk = self._encode_chunk
        parts = text.split(" ")
        first = parts[0]
        e = cache.get(first) or chunk(first)
        out = list(e[0])
        ext, app = out.extend, out.append
        prev = e[2]
        for w in parts[1:]:
            e = cache.get(w) or chunk(w)
            if not (prev and e[1]):
                app(_SPACE)
            ext(e[0])
            prev = e[2]
        return out

    def _encode_chunk(self, chunk: str) -> tuple[tuple[int, ...], bool, bool]:
        """Tokens of a space-free chunk, whether it starts / ends with a syllable."""
        toks: list[int] = []
        pos, starts, ends = 0, False, False
        for m in S.LETTER_RUN.finditer(chunk):
            start, end = m.span()
            if start > pos:
                toks += _utf8(chunk[pos:start])
            run = self._encode_run(m.group())
            toks += run if run is not None else _utf8(m.group())
            if start == 0:
                starts = run is not None
            ends = run is not None and end == len(chunk)
            pos = end
        if pos < len(chunk):
            toks += _utf8(chunk[pos:])
        entry = (tuple(toks), starts, ends)
        if len(chunk) <= _CACHE_CHUNK:  # long chunks (URLs, base64, ...) rarely repeat
            self._cache[chunk] = entry
        return entry

    def _chunk_parts(self, chunk: str) -> tuple[bytes, list[int | bytes], bytes, bool]:
        """A space-free chunk as (bytes before its first syllable, the syllable tokens
        and the byte runs between them in order, bytes after its last syllable, whether
        it has a syllable): the split symato-bpe merges by."""
        toks = (self._cache.get(chunk) or self._encode_chunk(chunk))[0]
        syl = [i for i, t in enumerate(toks) if t >= N_BYTES]  # case, sym, marktone, whole
        if not syl:
            return bytes(toks), [], b"", False
        items: list[int | bytes] = [toks[syl[0]]]
        for prev, i in pairwise(syl):
            if i > prev + 1:
                items.append(bytes(toks[prev + 1 : i]))
            items.append(toks[i])
        return bytes(toks[: syl[0]]), items, bytes(toks[syl[-1] + 1 :]), True

    def _bpe_chunk(self, chunk: str) -> tuple[bytes, tuple[int, ...], bytes, bool]:
        """``_chunk_parts`` with the inner runs merged into ids (cached per chunk)."""
        got = self._bpe_cache.get(chunk)
        if got is not None:
            return got
        head, items, tail, has_syl = self._chunk_parts(chunk)
        body: list[int] = []
        for item in items:
            if isinstance(item, bytes):
                body += self._bpe.encode_run(item)
            else:
                body.append(item)
        got = (head, tuple(body), tail, has_syl)
        if len(chunk) <= _CACHE_CHUNK:
            if len(self._bpe_cache) > _CACHE_LIMIT:
                self._bpe_cache.clear()
            self._bpe_cache[chunk] = got
        return got

    def _runs_and_tokens(self, text: str, parts, run) -> list[int]:
        """Walk the chunks of ``text`` joining the byte runs that span chunks (the space
        between two chunks is implicit only between two syllables); ``run`` turns each
        complete run into ids. Shared by encoding and ``non_syllable_runs``."""
        out: list[int] = []
        ext = out.extend
        pending = b""
        ends_syl = False  # the previous chunk ended with a syllable
        for k, w in enumerate(text.split(" ")):
            head, body, tail, has_syl = parts(w)
            if k and not (ends_syl and has_syl and not head):
                pending += b" "
            pending += head
            if has_syl:
                if pending:
                    ext(run(pending))
                ext(body)
                pending = tail
                ends_syl = not tail
            else:
                ends_syl = False
        if pending:
            ext(run(pending))
        return out

    def _encode_bpe(self, text: str) -> list[int]:
        """symato-bpe: the symato tokens with each maximal non-syllable run merged."""
        if len(self._cache) > _CACHE_LIMIT:
            self._cache.clear()
        return self._runs_and_tokens(text, self._bpe_chunk, self._bpe.encode_run)

    def non_syllable_runs(self, text: str) -> list[bytes]:
        """The maximal non-syllable runs of ``text`` (in no particular order), spaces
        included: the bytes plain symato writes as byte tokens, cut where a syllable
        stands (what symato-bpe merges, and learns its merges from)."""
        runs: list[bytes] = []

        def parts(w: str) -> tuple[bytes, tuple[int, ...], bytes, bool]:
            head, items, tail, has_syl = self._chunk_parts(w)
            runs.extend(x for x in items if isinstance(x, bytes))
            return head, (), tail, has_syl

        def run(data: bytes) -> tuple[int, ...]:
            runs.append(data)
            return ()

        self._runs_and_tokens(text, parts, run)
        return runs

    def _encode_run(self, word: str) -> list[int] | None:
        """``[case] sym marktone`` / ``[case] syllable`` for a canonical syllable, else None."""
        syl = S.parse(word)
        if syl is None or syl.text != word:
            return None
        lower = S.compose(syl.sym, syl.mark, syl.tone, "lower", self.tone_style)
        if S.apply_case(lower, syl.case) != word:
            return None
        toks = [] if syl.case == "lower" else [TITLE_ID if syl.case == "title" else UPPER_ID]
        whole = self._syl_ids.get(lower)
        if whole is not None:
            toks.append(whole)
        else:
            toks += (self._sym_ids[syl.sym], MT_BASE + syl.marktone)
        return toks

    def _sp_encode(self, text: str) -> list[int]:
        """sentencepiece ids, with what it cannot keep (its own space symbol U+2581 and
        lone surrogates) spliced in as byte tokens so the round trip stays exact."""
        if _SP_SPACE not in text and not _SURROGATES.search(text):
            return self._sp.encode(text)
        out: list[int] = []
        pos = 0
        for m in re.finditer(f"[{_SP_SPACE}\ud800-\udfff]+", text):
            if m.start() > pos:
                out += self._sp.encode(text[pos : m.start()])
            out += self._byte_tokens(_utf8(m.group()))
            pos = m.end()
        if pos < len(text):
            out += self._sp.encode(text[pos:])
        return out

    # ------------------------------------------------------------------ decoding
    def decode(self, ids: Iterable[int], backend: str | None = None) -> str:
        """The text of ``ids``; invalid UTF-8 from byte tokens becomes U+FFFD.

        ``backend``: ``c`` or ``python`` (``symato.text.fastdecode``); None for the
        default (``decode_backend``). Every backend gives the same text."""
        hot = self._hot
        if hot is not None and backend is None:  # one C call: a token, a line, a document
            got = hot.decode(ids)
            if got is not None:
                return got
        return self._decode_named(ids, backend, True)

    def decode_bytes(self, ids: Iterable[int], backend: str | None = None) -> bytes:
        """The exact bytes of ``ids`` (inverse of ``encode_bytes``); ``backend`` as in
        ``decode``."""
        hot = self._hot
        if hot is not None and backend is None:
            got = hot.decode_bytes(ids)
            if got is not None:
                return got
        return self._decode_named(ids, backend, False)

    def _decode_named(self, ids: Iterable[int], backend: str | None, text: bool
                      ) -> str | bytes:
        """Decode with the backend named (or the default): the compiled loop for what it
        takes, else the Python path, which checks the ids and reports a bad one."""
        name = self._backend if backend is None else fastdecode.check_backend(backend)
        if not isinstance(ids, (list, tuple, np.ndarray)):
            ids = list(ids)  # an iterator is read once; the checking path needs every id
        if name == "c":
            dec = self._c_decoder()
            got = dec.decode(ids) if text else dec.decode_bytes(ids)
            if got is not None:
                return got
        data = self._python_decode_bytes(ids)
        return _to_text(data) if text else data

    def _c_decoder(self) -> Any:
        """The compiled decoder of this vocabulary (tables built on first use: ~0.05 s,
        ~2 MB), or SymatoError naming cause and fix if the extension is missing."""
        if self._cdec is None:
            self._cdec = fastdecode.build_decoder(self)
        if self._backend == "c":
            self._hot = self._cdec
        return self._cdec

    def _python_decode_bytes(self, ids: Sequence[int] | np.ndarray) -> bytes:
        """The Python decoders (backend ``python``, and the checking path of ``c``)."""
        if type(ids) is list and len(ids) < _FAST_MIN:
            # a line or a token: no array conversion, no numpy call (each ~1 us fixed)
            try:
                got = self._decode_short(ids)
            except (IndexError, TypeError, StopIteration):
                got = None  # out of range, not integers or ill-formed: the paths below say which
            if got is not None:
                return got
        arr = _as_id_array(ids)
        if arr is None:  # not plain non-negative integers: report the first bad one
            self._check_ids(ids)
            arr = np.asarray([int(t) for t in ids], dtype=np.int64)
        elif arr.size and (arr.max() >= len(self._pieces)
                           or (arr.dtype.kind == "i" and arr.min() < 0)):
            self._check_ids(arr.tolist())
        if not self._syms:
            table = self._id_bytes
            return b"".join([table[t] for t in arr.tolist()])
        if arr.size >= _FAST_MIN:
            fast = self._decode_fast(arr)
            if fast is not None:
                return fast
        return self._decode_plain(arr.tolist())

    def _short_tables(self) -> tuple[Any, ...]:
        """Per-id lookup lists for ``_decode_short`` (built on first use, ~30 ms).

        ``own[t]``: the bytes of a byte, merge, special or reserved id, None for the
        syllable ids. ``rows[sym id][marktone id]``: the syllable's six renderings
        (lower, Title, UPPER, each without and with the implicit space before it) or
        None for an illegal pair; indexing by the marktone id itself saves a subtraction.
        ``whole[t]``: the same six for a whole-syllable id. ``case[t]``: 2 (Title) or 4
        (UPPER), the offset into those six.

        Every list is twice as long as the ids it serves, the second half None / 0: a
        negative id -k (k up to that length) then lands there, reads as ill-formed and
        goes to the checking path, so the loop needs no separate sign check (a ``min``
        over the ids cost 15% of a line's decode). The rows take ~4 kB per sym.
        """
        if self._short is not None:
            return self._short
        v = len(self._pieces)
        own: list[bytes | None] = list(self._id_bytes) + [None] * v
        rows: list[list[tuple[bytes, ...] | None] | None] = [None] * (2 * v)
        whole: list[tuple[bytes, ...] | None] = [None] * (2 * v)
        case = [0] * (2 * v)
        if self._syms:
            case[TITLE_ID], case[UPPER_ID] = 2, 4
            for t in range(MT_BASE, SPECIAL_BASE):
                own[t] = None
            mt_hi = MT_BASE + S.MARKTONES
            for i in range(len(self._syms)):
                sym_id = self._sym_base + i
                own[sym_id] = None
                row: list[tuple[bytes, ...] | None] = [None] * (2 * mt_hi)
                for mt in range(S.MARKTONES):
                    forms = self._compose.get(sym_id * S.MARKTONES + mt)
                    if forms is not None:
                        row[MT_BASE + mt] = _six(forms)
                rows[sym_id] = tuple(row)
            for i, forms in enumerate(self._whole):
                own[self._syl_base + i] = None
                whole[self._syl_base + i] = _six(forms)
        # tuples of bytes: once the garbage collector has seen them it stops tracking
        # them, so these 10^6 slots do not slow every later collection (lists would)
        self._short = (tuple(own), tuple(rows), tuple(whole), tuple(case))
        return self._short

    def _decode_short(self, ids: list[int]) -> bytes | None:
        """Plain-loop decode of a well-formed list; None if it is not well formed.

        Why a second loop: decoding a line or a single token is dominated by fixed costs
        in the vectorized decoder (array conversion, a dozen numpy calls) and by the
        branches of ``_decode_symato``. Here a syllable is two list lookups and a tuple
        index, a byte or merge one lookup. Raises IndexError / TypeError / StopIteration
        or returns None for ids out of range, not integers or ill-formed (the caller then
        takes the checking path, which reports them or decodes them as the reference).
        """
        own, rows, whole, case = self._short or self._short_tables()
        out: list[bytes] = []
        app = out.append
        prev = 0  # 1 after a syllable: the next syllable gets the implicit space
        it = iter(ids)
        nxt = it.__next__
        for t in it:
            row = rows[t]
            if row is not None:
                app(row[nxt()][prev])
                prev = 1
                continue
            b = own[t]
            if b is not None:
                app(b)
                prev = 0
                continue
            w = whole[t]
            if w is None:
                c = case[t]
                if not c:
                    return None  # a marktone without a sym
                t = nxt()
                w = whole[t]
                app(w[prev + c] if w is not None else rows[t][nxt()][prev + c])
            else:
                app(w[prev])
            prev = 1
        return b"".join(out)

    def stream_decoder(self, backend: str | None = None) -> StreamDecoder:
        """An incremental decoder: ``feed(ids)`` returns the text that is final so far,
        ``finish()`` the rest; together exactly ``decode`` of all the ids. ``backend``
        as in ``decode``."""
        return StreamDecoder(self, backend)

    def _fast_tables(self) -> tuple[Any, ...]:
        """Lookup arrays for the vectorized decoder (built on first use, ~0.1 s).

        Output codes: 0..V-1 are the ids' own bytes, V is nothing (marktone, case and the
        padding id V), V + 1 + case * U + u is syllable unit u (sym index * 18 + marktone,
        then each whole syllable) in one of 3 cases; code + NC (NC codes in all) is the
        same bytes after a space. An illegal sym + marktone pair holds the bare sym, as in
        the plain decoder. ``pair[cls[prev] + tok]`` gives each token's code from the
        token before it (its case, the implicit space), or ``_BAD`` (out of every table's
        range, so the next lookup raises IndexError) where the pair is ill-formed; a sym's
        marktone (the token after it) is added with ``mt_add``. So a well-formed stream
        decodes in a handful of whole-array operations whatever its length.
        """
        if self._fast is not None:
            return self._fast
        v, n_syms, mts = len(self._pieces), len(self._syms), S.MARKTONES
        v1, units = v + 1, n_syms * mts + len(self._whole)
        cat = np.full(v1, _C_OTHER, dtype=np.int64)  # v: the padding id, like a byte
        cat[:N_BYTES] = _C_BYTE
        cat[MT_BASE : MT_BASE + mts] = _C_MT
        cat[[TITLE_ID, UPPER_ID]] = _C_CASE
        cat[self._sym_base : self._sym_base + n_syms] = _C_SYM
        cat[self._syl_base : v] = _C_WHOLE
        n_codes = v1 + 3 * units
        own = np.arange(v1, dtype=np.int64)  # bytes, specials: their own bytes
        own[cat == _C_MT], own[cat == _C_CASE], own[v] = v, v, v
        own[self._sym_base : self._sym_base + n_syms] = v1 + np.arange(n_syms) * mts
        own[self._syl_base : v] = v1 + n_syms * mts + np.arange(len(self._whole))
        # previous-token classes: plain, syllable end, sym, Title, UPPER
        prev_cls = np.zeros(v1, dtype=np.int64)
        prev_cls[(cat == _C_MT) | (cat == _C_WHOLE)] = 1
        prev_cls[cat == _C_SYM] = 2
        prev_cls[TITLE_ID], prev_cls[UPPER_ID] = 3, 4
        is_mt, is_sym, is_case = cat == _C_MT, cat == _C_SYM, cat == _C_CASE
        syl_start = is_case | is_sym | (cat == _C_WHOLE)
        pair = np.empty((5, v1), dtype=np.int64)
        pair[0] = np.where(is_mt, _BAD, own)
        pair[1] = np.where(is_mt, _BAD, own + n_codes * syl_start)
        pair[2] = np.where(is_mt, own, _BAD)
        for k, case in ((3, 1), (4, 2)):
            pair[k] = np.where(is_sym | (cat == _C_WHOLE), own + case * units, _BAD)
        mt_add = np.where(is_mt, np.arange(v1) - MT_BASE, 0)
        forms: list[list[bytes]] = []
        get = self._compose.get
        for i in range(n_syms):
            sym_id = self._sym_base + i
            bare = [self._bare_sym(sym_id, c) for c in range(3)]
            forms += [get(sym_id * mts + mt, bare) for mt in range(mts)]
        forms += self._whole
        table = [b" " + x for x in self._id_bytes] + [b" "]
        for case in range(3):
            table += [b" " + f[case] for f in forms]
        lengths = np.array([len(x) for x in table], dtype=np.int64)
        offsets = np.zeros(len(table), dtype=np.int64)
        np.cumsum(lengths[:-1], out=offsets[1:])
        flat = np.frombuffer(b"".join(table), dtype=np.uint8)
        starts = np.concatenate([offsets + 1, offsets])
        lens = np.concatenate([lengths - 1, lengths])
        bits = int(lens.max()).bit_length()
        packed = starts << bits | lens  # one lookup gives both
        self._fast = (prev_cls * v1, pair.ravel(), mt_add, flat, packed, bits)
        return self._fast

    def _decode_fast(self, arr: np.ndarray) -> bytes | None:
        """Vectorized decode of a well-formed symato stream; None if it is not one."""
        cls, pair, mt_add, flat, packed, bits = self._fast_tables()
        n, pad = len(arr), len(self._pieces)
        p = np.empty(n + 3, dtype=np.int64)  # the padding id before and twice after
        p[0] = p[n + 1] = p[n + 2] = pad
        p[1 : n + 1] = arr
        code = cls[p[: n + 1]]
        code += p[1 : n + 2]
        try:
            code = pair[code]
            code += mt_add[p[2:]]
            code = packed[code]
        except IndexError:  # _BAD: an ill-formed pair of tokens
            return None
        return _gather(flat, code >> bits, code & ((1 << bits) - 1))

    def _decode_symato(self, ids: Iterable[int], state: tuple[int, int, bool] = (0, -1, False)
                       ) -> tuple[bytes, tuple[int, int, bool]]:
        """Walk the ids: bytes pass through; [case] sym marktone composes a syllable.

        Ill-formed sequences (a model's output) still decode: a sym without a marktone or
        with an illegal one is written bare, a stray case or marktone token is dropped.
        Resumable: returns the bytes so far and the state (pending case, pending sym id,
        last output a syllable); ``_flush(state)`` writes a pending sym at the end.
        """
        out: list[bytes] = []
        app = out.append
        id_bytes, compose, whole = self._id_bytes, self._compose, self._whole
        sym_lo, sym_hi = self._sym_base, self._sym_base + len(self._syms)
        syl_lo = self._syl_base
        mt_lo, mt_hi = MT_BASE, MT_BASE + S.MARKTONES
        case, sym, prev = state
        for t in ids:
            if mt_lo <= t < mt_hi:
                if sym >= 0:
                    forms = compose.get(sym * S.MARKTONES + t - mt_lo)
                    if prev:
                        app(b" ")
                    app(forms[case] if forms else self._bare_sym(sym, case))
                    prev, case, sym = True, 0, -1
                else:
                    case = 0
                continue
            if sym >= 0:  # a sym not followed by a marktone
                if prev:
                    app(b" ")
                app(self._bare_sym(sym, case))
                prev, case, sym = True, 0, -1
            if t < N_BYTES:
                app(id_bytes[t])
                prev, case = False, 0
            elif sym_lo <= t < sym_hi:
                sym = t
            elif t >= syl_lo:
                if prev:
                    app(b" ")
                app(whole[t - syl_lo][case])
                prev, case = True, 0
            elif t in (TITLE_ID, UPPER_ID):
                case = 1 if t == TITLE_ID else 2
            else:  # specials, merges and reserved ids
                app(id_bytes[t])
                prev, case = False, 0
        return b"".join(out), (case, sym, prev)

    def _decode_plain(self, ids: Iterable[int]) -> bytes:
        """The reference decode of a symato stream (every other path must agree)."""
        out, state = self._decode_symato(ids)
        return out + self._flush(state)

    def _flush(self, state: tuple[int, int, bool]) -> bytes:
        """The bytes a decode still owes at the end: a pending sym, written bare."""
        case, sym, prev = state
        if sym < 0:
            return b""
        return (b" " if prev else b"") + self._bare_sym(sym, case)

    def _bare_sym(self, sym_id: int, case: int) -> bytes:
        return _utf8(S.apply_case(self._syms[sym_id - self._sym_base], S.CASES[case]))


def _six(forms: Sequence[bytes]) -> tuple[bytes, ...]:
    """(lower, Title, UPPER) -> each without and with a space before it."""
    return (forms[0], b" " + forms[0], forms[1], b" " + forms[1], forms[2], b" " + forms[2])


class StreamDecoder:
    """Decodes ids as they come (``Tokenizer.stream_decoder``).

    ``feed(ids)`` returns the text that no later id can change: a sym waits for its
    marktone (and a case token for its sym), and bytes that end in an incomplete UTF-8
    sequence wait for the rest. ``finish()`` returns what is still held, decoded as
    ``decode`` would at the end (a bare sym, U+FFFD for a cut sequence). So for every
    split of ``ids``, the outputs joined equal ``tokenizer.decode(ids)``.

    With the ``c`` backend the state lives in the compiled stream (one C call per
    ``feed``); ids it does not take go through the checking Python loop on that state.
    """

    def __init__(self, tokenizer: Tokenizer, backend: str | None = None) -> None:
        self._tok = tokenizer
        name = tokenizer.decode_backend if backend is None else fastdecode.check_backend(backend)
        self._c = tokenizer._c_decoder().stream() if name == "c" else None
        self._state: tuple[int, int, bool] = (0, -1, False)  # the python backend's
        self._held = b""  # bytes of an incomplete UTF-8 sequence at the end

    def feed(self, ids: Iterable[int]) -> str:
        """Decode more ids; return the new final text (possibly empty)."""
        c = self._c
        if c is not None:
            got = c.feed(ids)
            if got is not None:
                return got
            return self._feed_checked(ids)
        return self._feed_python(ids)

    def _feed_checked(self, ids: Iterable[int]) -> str:
        """What the compiled stream did not take: an iterator (read once, then compiled),
        bad ids (SymatoError naming the position), ints of other types (numpy integers:
        the Python loop on the compiled stream's state)."""
        c = self._c
        ids = list(ids)
        got = c.feed(ids)
        if got is not None:
            return got
        self._tok._check_ids(ids)
        case, sym, prev, self._held = c.state
        self._state = (case, sym, bool(prev))
        out = self._feed_python(ids)
        case, sym, prev = self._state
        c.state = (case, sym, int(prev), self._held)
        return out

    def _feed_python(self, ids: Iterable[int]) -> str:
        ids = list(ids)
        tok = self._tok
        tok._check_ids(ids)
        if tok._syms:
            data, self._state = tok._decode_symato(ids, self._state)
        else:
            table = tok._id_bytes
            data = b"".join([table[t] for t in ids])
        data = self._held + data
        cut = _utf8_cut(data)
        self._held = data[cut:]
        return _to_text(data[:cut])

    def finish(self) -> str:
        """The rest: a pending sym and held bytes; the decoder starts afresh after it."""
        if self._c is not None:
            return self._c.finish()
        data = self._held + (self._tok._flush(self._state) if self._tok._syms else b"")
        self._held, self._state = b"", (0, -1, False)
        return _to_text(data)


_DEFAULT: Tokenizer | None = None


def symato_dict(syms: Sequence[str], syllables: Sequence[str] = (), *, size: int = SYMATO_SIZE,
                tone_style: str = "new", meta: dict[str, Any] | None = None) -> dict[str, Any]:
    """The vocabulary dict of a symato / symato+N tokenizer with syms in the given order."""
    kind = f"symato+{len(syllables)}" if syllables else "symato"
    return {"format": FORMAT, "version": VERSION, "kind": kind, "tone_style": tone_style,
            "size": size, "specials": [EOT], "syms": list(syms), "syllables": list(syllables),
            "meta": dict(meta or {})}


def symato_bpe_dict(syms: Sequence[str], merges: list[list[str]], *, size: int,
                    tone_style: str = "new", meta: dict[str, Any] | None = None
                    ) -> dict[str, Any]:
    """The vocabulary dict of a symato-bpe tokenizer: ``size`` ids in all (bytes,
    marktones, case, specials, syms, the merges, then reserved ids if fewer merges were
    learned than fit)."""
    return {"format": FORMAT, "version": VERSION, "kind": f"symato-bpe{size}",
            "tone_style": tone_style, "size": size, "specials": [EOT], "syms": list(syms),
            "merges": [list(m) for m in merges], "meta": dict(meta or {})}


def bytes_dict(meta: dict[str, Any] | None = None) -> dict[str, Any]:
    """The vocabulary dict of the byte-level peer (256 bytes + specials)."""
    return {"format": FORMAT, "version": VERSION, "kind": "bytes", "specials": [EOT],
            "meta": dict(meta or {})}


def sentencepiece_dict(model_proto: bytes, meta: dict[str, Any] | None = None) -> dict[str, Any]:
    """The vocabulary dict of a sentencepiece model (embedded base64, self-contained)."""
    return {"format": FORMAT, "version": VERSION, "kind": "sentencepiece", "specials": [EOT],
            "sentencepiece_model": base64.b64encode(model_proto).decode("ascii"),
            "meta": dict(meta or {})}
