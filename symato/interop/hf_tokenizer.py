"""symato's tokenizers for ``transformers``: ``save_hf_tokenizer`` writes a folder that
``AutoTokenizer.from_pretrained`` loads with ids and text equal to symato's ``Tokenizer``.

Two routes (docs/export.md, "The tokenizer in transformers"):

- ``tokenizer.json`` for ``PreTrainedTokenizerFast`` (no remote code) where the kind is
  exactly a ``tokenizers`` pipeline: ``bytes`` (byte-level, no merges) and sentencepiece
  BPE (``sp-bpeV``, ``sentencepiece`` trained as BPE: its pieces as ranked merges, byte
  fallback, symato's own whitespace: the pieces hold real spaces, so a literal U+2581 in
  the text stays three byte tokens, as symato writes it).
- Otherwise (the syllable kinds, sentencepiece Unigram) ``tokenization_symato.py``, a
  remote-code class that wraps symato's ``Tokenizer``, with the vocabulary file beside it.

Either way the one special token is ``<|endoftext|>`` (bos, eos and pad), nothing is
added to the ids (``tokenizer(text)["input_ids"] == Tokenizer.encode(text)``), special
tokens written in the text are text (symato never reads them from text), and decoding
does no whitespace clean-up. A fast tokenizer is checked against symato on probe text
before it is written; if it disagrees, the folder gets the remote-code class instead.
"""

from __future__ import annotations

import json
from importlib import resources
from pathlib import Path
from typing import Any

from symato.errors import SymatoError
from symato.interop.hf_remote import VOCAB_FILE
from symato.io import write_bytes_atomic
from symato.text.codecs.base import EOT, N_BYTES
from symato.text.codecs.bytes import BytesCodec
from symato.text.codecs.sentencepiece import SP_SPACE, SentencepieceCodec
from symato.text.tokenizer import Tokenizer

REMOTE_FILE = "tokenization_symato.py"
REMOTE_CLASS = "SymatoTokenizer"
FAST_CLASS = "PreTrainedTokenizerFast"
OWN_FILES = {"tokenizer.json", "tokenizer_config.json", REMOTE_FILE, VOCAB_FILE}


def _require_hf() -> Any:
    """The ``tokenizers`` module, or SymatoError naming the extra to install."""
    try:
        import tokenizers
        import transformers  # noqa: F401  (what loads the folder; checked here, not at use)
    except ImportError as exc:
        raise SymatoError(f"exporting a tokenizer for transformers needs {exc.name!r}: "
                          "pip install 'symato[hf]'") from None
    return tokenizers


def save_hf_tokenizer(vocab_path: Path, out_dir: Path, *, model_max_length: int
                      ) -> dict[str, Any]:
    """Write the tokenizer of the vocabulary file ``vocab_path`` into ``out_dir`` (each
    file atomically) for ``AutoTokenizer.from_pretrained(out_dir)``; return what was
    written: kind, tokenizer class, whether remote code is needed, eot id, files."""
    _require_hf()
    tok = Tokenizer.from_file(vocab_path)
    if not isinstance(model_max_length, int) or model_max_length < 1:
        raise SymatoError(f"model_max_length must be a positive int, got {model_max_length!r}")
    backend, why = fast_backend(tok)
    files: dict[str, bytes]
    if backend is not None:
        files = {"tokenizer.json": backend.to_str(pretty=True).encode("utf-8")}
        config = _config(tok, FAST_CLASS, model_max_length)
    else:
        files = {REMOTE_FILE: resources.files("symato.interop.hf_remote")
                 .joinpath(REMOTE_FILE).read_bytes(),
                 VOCAB_FILE: _json(tok.to_dict())}  # also for vocab_path "default"
        config = _config(tok, REMOTE_CLASS, model_max_length)
        config["auto_map"] = {"AutoTokenizer": [f"{REMOTE_FILE[:-3]}.{REMOTE_CLASS}", None]}
    files["tokenizer_config.json"] = _json(config)
    out_dir = Path(out_dir)
    for name, data in files.items():
        write_bytes_atomic(out_dir / name, data)
    for stale in OWN_FILES - set(files):  # the other route's, from an earlier export
        (out_dir / stale).unlink(missing_ok=True)
    return {"kind": tok.kind, "tokenizer_class": config["tokenizer_class"],
            "remote_code": backend is None, "why_remote_code": why, "eot_id": tok.eot_id,
            "vocab_size": tok.vocab_size, "model_max_length": model_max_length,
            "files": sorted(files)}


def _config(tok: Tokenizer, cls: str, model_max_length: int) -> dict[str, Any]:
    """``tokenizer_config.json``: the class, the one special token in every role a model
    asks for (documents are separated by it, so it also starts one), and the settings
    that keep transformers from changing symato's ids or text."""
    return {"tokenizer_class": cls, "model_max_length": model_max_length,
            "bos_token": EOT, "eos_token": EOT, "pad_token": EOT,
            "add_bos_token": False, "add_eos_token": False,
            "clean_up_tokenization_spaces": False, "split_special_tokens": True,
            "model_input_names": ["input_ids", "attention_mask"]}


def _json(obj: Any) -> bytes:
    return (json.dumps(obj, ensure_ascii=False, indent=2, sort_keys=True) + "\n").encode("utf-8")


# ---------------------------------------------------------------------- fast route
def fast_backend(tok: Tokenizer) -> tuple[Any, str | None]:
    """A ``tokenizers.Tokenizer`` equal to ``tok`` and None, or None and why there is none."""
    codec = tok.codec
    if isinstance(codec, BytesCodec):
        backend = _bytes_backend(tok)
    elif isinstance(codec, SentencepieceCodec):
        backend, why = _sentencepiece_backend(tok)
        if backend is None:
            return None, why
    else:
        return None, ("a syllable kind: case and marktone tokens, the implicit space and "
                      "the canonical-syllable test are not expressible in tokenizers")
    bad = disagreement(tok, backend)
    if bad is not None:
        return None, f"the tokenizers pipeline disagrees with symato on {bad!r}"
    return backend, None


def byte_chars() -> list[str]:
    """The byte-level alphabet of ``tokenizers``' ByteLevel pre-tokenizer and decoder
    (GPT-2's): byte b is written as one character; the printable Latin-1 bytes as
    themselves, the other 68 as U+0100, U+0101, ... in byte order."""
    printable = {*range(0x21, 0x7F), *range(0xA1, 0xAD), *range(0xAE, 0x100)}
    out, extra = [], 0
    for b in range(N_BYTES):
        if b in printable:
            out.append(chr(b))
        else:
            out.append(chr(N_BYTES + extra))
            extra += 1
    return out


def _bytes_backend(tok: Tokenizer) -> Any:
    """The bytes kind: each byte one id (its value); the specials after them, in the
    model's vocabulary too (so ``vocab_size`` counts them, as symato does)."""
    tk = _require_hf()
    vocab = {c: b for b, c in enumerate(byte_chars())}
    vocab.update(tok.special_tokens)
    backend = tk.Tokenizer(tk.models.BPE(vocab=vocab, merges=[]))
    backend.pre_tokenizer = tk.pre_tokenizers.ByteLevel(add_prefix_space=False,
                                                        trim_offsets=False, use_regex=False)
    backend.decoder = tk.decoders.ByteLevel()
    _add_specials(tok, backend)
    return backend


def _add_specials(tok: Tokenizer, backend: Any) -> None:
    tk = _require_hf()
    for piece, i in sorted(tok.special_tokens.items(), key=lambda x: x[1]):
        backend.add_special_tokens([tk.AddedToken(piece, special=True, normalized=False)])
        if backend.token_to_id(piece) != i:
            raise SymatoError(f"special {piece!r} got id {backend.token_to_id(piece)} in the "
                              f"tokenizers pipeline, symato's is {i}")


def _onig(text: str) -> str:
    """``text`` as an Oniguruma pattern matching it literally (every char as \\x{...})."""
    return "".join(f"\\x{{{ord(c):X}}}" for c in text)


def _sentencepiece_backend(tok: Tokenizer) -> tuple[Any, str | None]:
    """A sentencepiece BPE model (identity normalization, no dummy prefix, byte fallback:
    how ``symato vocab`` trains them) as ``tokenizers`` BPE over pieces with real spaces.

    Unigram has no exact twin: sentencepiece's Viterbi adds float32 scores and
    ``tokenizers``' float64, so where two segmentations score the same (the same pieces
    in another order: runs of spaces or dashes) the rounding of one and the tie rule of
    the other pick differently (measured in docs/export.md)."""
    tk = _require_hf()
    sp = tok.codec.sp
    model_type = sentencepiece_model_type(tok)
    if model_type != "bpe":
        return None, (f"sentencepiece {model_type}: only BPE has an exact tokenizers twin "
                      "(Unigram's float32 Viterbi breaks ties of equal-scoring "
                      "segmentations its own way)")
    changed = sentencepiece_text_rules(tok)
    if changed:
        return None, f"sentencepiece model rewrites the text ({changed}), symato's never do"
    n = sp.get_piece_size()
    texts = [sp.id_to_piece(i).replace(SP_SPACE, " ") for i in range(n)]
    if len(set(texts)) != n:
        return None, "two pieces differ only by U+2581 against a space"
    normal = [i for i in range(n) if not (sp.is_control(i) or sp.is_unknown(i)
                                          or sp.is_byte(i) or sp.is_unused(i))]
    backend = tk.Tokenizer(tk.models.BPE(
        vocab={t: i for i, t in enumerate(texts)}, merges=_sp_merges(sp, texts, normal),
        byte_fallback=True, fuse_unk=False, ignore_merges=False))
    silent = [texts[i] for i in range(n) if (sp.is_control(i) or sp.is_unknown(i))
              and texts[i] not in tok.special_tokens]
    steps = [tk.decoders.ByteFallback(), tk.decoders.Fuse()]
    if silent:  # control and unknown pieces write nothing (symato's decode tables)
        pattern = "^(?:" + "|".join(_onig(t) for t in silent) + ")$"
        steps.insert(0, tk.decoders.Replace(tk.Regex(pattern), ""))
    backend.decoder = tk.decoders.Sequence(steps)
    _add_specials(tok, backend)
    return backend, None


def _sp_merges(sp: Any, texts: list[str], normal: list[int]) -> list[tuple[str, str]]:
    """sentencepiece BPE as ranked merges: it joins the adjacent pair whose join is the
    best-scored piece; so every split of a piece into two pieces is a merge, ranked by
    the joined piece's score (then id, then split point)."""
    pieces = {texts[i] for i in normal}
    merges = []
    for i in sorted(normal, key=lambda i: (-sp.get_score(i), i)):
        t = texts[i]
        merges += [(t[:k], t[k:]) for k in range(1, len(t)) if t[:k] in pieces and t[k:] in pieces]
    return merges


def sentencepiece_model_type(tok: Tokenizer) -> str:
    """``bpe``, ``unigram``, ``word`` or ``char``: the trainer spec's model type, read from
    the model proto's wire format (field 2 trainer_spec, its field 3 model_type), so no
    protobuf package is needed."""
    spec = _field(_proto(tok), 2, wire=2)
    value = _field(spec, 3, wire=0) if spec is not None else None
    return {1: "unigram", 2: "bpe", 3: "word", 4: "char", None: "unigram"}.get(
        value, f"unknown {value}")


def sentencepiece_text_rules(tok: Tokenizer) -> str:
    """What the model's normalizer does to text before encoding, "" if nothing but
    spaces as U+2581 (how ``symato vocab`` trains: identity rule, no dummy prefix,
    whitespace runs kept, no denormalizer). The defaults of sentencepiece's proto
    (``add_dummy_prefix``, ``remove_extra_whitespaces`` true) count when a field is absent."""
    proto = _proto(tok)
    spec = _field(proto, 3, wire=2) or b""
    rules = []
    name = _field(spec, 1, wire=2)
    if name not in (None, b"identity"):  # absent: the trainer's default, nmt_nfkc
        rules.append(f"normalization {name.decode('utf-8', 'replace')}")
    elif name is None:
        rules.append("normalization nmt_nfkc")
    if _field(spec, 3, wire=0) != 0:
        rules.append("add_dummy_prefix")
    if _field(spec, 4, wire=0) != 0:
        rules.append("remove_extra_whitespaces")
    if _field(spec, 5, wire=0) not in (None, 1):
        rules.append("escape_whitespaces off")
    if _field(proto, 5, wire=2) is not None:
        rules.append("a denormalizer")
    return ", ".join(rules)


def _proto(tok: Tokenizer) -> bytes:
    import base64

    return base64.b64decode(tok.to_dict()["sentencepiece_model"])


def _varint(data: bytes, pos: int) -> tuple[int, int]:
    value = shift = 0
    while True:
        b = data[pos]
        pos += 1
        value |= (b & 0x7F) << shift
        shift += 7
        if b < 0x80:
            return value, pos


def _field(data: bytes, number: int, *, wire: int) -> Any:
    """The last value of field ``number`` in a protobuf message (varint or bytes)."""
    pos, found = 0, None
    while pos < len(data):
        key, pos = _varint(data, pos)
        kind = key & 7
        if kind == 0:
            value, pos = _varint(data, pos)
        elif kind == 2:
            size, pos = _varint(data, pos)
            value, pos = data[pos : pos + size], pos + size
        elif kind in (1, 5):
            size = 8 if kind == 1 else 4
            value, pos = data[pos : pos + size], pos + size
        else:
            raise SymatoError(f"sentencepiece model proto: wire type {kind} not understood")
        if key >> 3 == number and kind == wire:
            found = value
    return found


# ---------------------------------------------------------------------- the probe
def probe_texts(tok: Tokenizer) -> list[str]:
    """Text that exercises a pipeline: every piece's name as text (``<0x41>``,
    ``<|endoftext|>``, ``<unk>`` too), alone and run together, and a line of everything
    else (syllables, whitespace runs, U+2581, emoji, a control character)."""
    pieces = [p.replace(SP_SPACE, " ") for p in tok.codec.pieces]
    texts = [*pieces, "".join(pieces), " ".join(pieces), "\n".join(pieces[::-1]),
             "Nước Việt Nam hình chữ S. ĐIỀU 7, ok \u2581 x\u2581\u2581y  \t\r\n😀 \x00"]
    return [t for t in texts if t]


def disagreement(tok: Tokenizer, backend: Any) -> str | None:
    """The first probe text whose ids or decoding differ between ``backend`` and ``tok``."""
    backend.encode_special_tokens = True
    for text in probe_texts(tok):
        ids = tok.encode(text)
        if backend.encode(text, add_special_tokens=False).ids != ids:
            return text[:80]
        if backend.decode(ids, skip_special_tokens=False) != tok.decode(ids):
            return text[:80]
    return None

