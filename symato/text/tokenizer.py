"""``Tokenizer``: lossless encode/decode for every vocabulary kind, one thin facade.

Kinds: ``symato`` (bytes + 18 marktones + case + specials + syms), ``symato+N`` (plus N
whole lower-case syllables), ``symato-bpeV`` (V ids in all: symato plus byte-pair merges
for the text between syllables), ``symato-wordsV`` (symato plus whole syllables and
whole multi-syllable words), and the peers ``bytes`` and ``sentencepiece`` used by the
pipeline's tokenizer comparison. All share one interface and one invariant:
``decode(encode(s)) == s`` for every str and ``decode_bytes(encode_bytes(b)) == b`` for
every byte string.

Who does what: this class holds the file format (``format``, ``version``, ``kind``,
``specials``, ``tone_style``, checked the same for every kind) and the public API. The
kind's codec (``symato.text.kinds`` names it; ``symato.text.codecs``) reads its own keys
of the file, encodes, and publishes its ``DecodeTables``; decoding is one state machine
over those tables, the compiled loop (``symato.text.fastdecode``) for ids it takes and
the readable reference (``symato.text.decoding``) for the rest and by name
(``decoder="python"``). ``stream_decoder`` decodes incrementally (generation prints as
it samples).
"""

from __future__ import annotations

import array
import base64
import copy
import os
import re
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from symato.errors import SymatoError
from symato.text import decoding, fastdecode
from symato.text import syllable as S
from symato.text.codecs.base import (
    CASE,
    EOT,
    MT,
    SURROGATES,
    SYM,
    WHOLE,
    Codec,
    DecodeTables,
    bad,
    to_text,
)
from symato.text.kinds import kind_of, name_pattern

FORMAT = "symato-vocab"
# 2: the grammar accepts the dictionary syllables of docs/tokenizer.md (2,275 syms).
# Version-1 files of the bytes and sentencepiece kinds mean the same and still load;
# version-1 symato files list the old 2,256 syms and are refused with how to rebuild.
VERSION = 2
SYMATO_SIZE = 2816


class Tokenizer:
    """A vocabulary plus its encoder and decoder; build with ``default``, ``from_file``,
    ``from_dict`` or ``symato.text.vocab.build_vocab``."""

    def __init__(self, data: dict[str, Any], *, source: str = "<dict>") -> None:
        self._data = copy.deepcopy(data)
        self._source = source
        codec_class, match = self._validate_header()
        self.kind: str = data["kind"]
        self.tone_style: str = data.get("tone_style", "new")
        self._codec: Codec = codec_class(self._data, match, source)
        self._tables: DecodeTables = self._codec.tables
        self._piece_ids = {p: i for i, p in enumerate(self._codec.pieces)}
        t = self._tables
        self._marktone_ids = tuple(sorted((i for i in range(t.size) if t.cls[i] == MT),
                                          key=t.arg.__getitem__))
        if len(self._piece_ids) != len(self._codec.pieces):
            raise bad(source, "duplicate pieces")
        self._decoder = fastdecode.default_decoder()  # of calls that name none
        self._cdec: Any = None  # the compiled decoder, built on first use
        self._hot: Any = None  # the compiled decoder once built, if it is the default

    # ------------------------------------------------------------------ construction
    def _validate_header(self) -> tuple[type[Codec], re.Match[str]]:
        """Check what every kind's file has; return the kind's codec class and the
        match of the kind's pattern (its parameters)."""
        d, where = self._data, self._source
        if not isinstance(d, dict):
            raise bad(where, "top level is not a JSON object")
        if d.get("format") != FORMAT:
            raise bad(where, f"key 'format' is {d.get('format')!r}, expected {FORMAT!r}")
        name = d.get("kind")
        if not isinstance(name, str) or not re.fullmatch(name_pattern(), name):
            raise bad(where, f"key 'kind' is {name!r}")
        kind, match = kind_of(name, where)
        codec_class = kind.codec_class()
        version = d.get("version")
        if version in (1, VERSION) and version < codec_class.min_version:
            raise SymatoError(
                f"vocabulary {where} (kind {name!r}) was built with format version 1, whose "
                f"syllable grammar had 2,256 syms; the grammar now has {len(S.all_syms())}. "
                f"Rebuild it: `symato vocab --name {name} ...` (in the pipeline: "
                "`snakemake --forcerun vocab`), and retrain models that used it")
        if version not in (1, VERSION):
            raise bad(where, f"key 'version' is {version!r}, expected {VERSION}")
        if d.get("tone_style", "new") not in S.STYLES:
            raise bad(where, f"key 'tone_style' is {d.get('tone_style')!r}")
        specials = d.get("specials")
        if not (isinstance(specials, list) and specials and specials[0] == EOT
                and all(isinstance(s, str) and s for s in specials)
                and len(set(specials)) == len(specials)):
            raise bad(where, f"key 'specials' must list unique non-empty strings, first {EOT!r}")
        return codec_class, match

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
        return self._tables.size

    @property
    def codec(self) -> Codec:
        """The kind's codec (``symato.text.codecs``): its encoder and decode tables."""
        return self._codec

    @property
    def decode_tables(self) -> DecodeTables:
        """What every decoder walks (``symato.text.codecs.base.DecodeTables``)."""
        return self._tables

    @property
    def decoder(self) -> str:
        """The decoder implementation of calls that name none: ``c`` (compiled), or
        ``python`` when ``$SYMATO_DECODER`` asked for it (``symato.text.fastdecode``)."""
        return self._decoder

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
        """The 18 marktone ids in marktone order (empty for kinds without syllables)."""
        return self._marktone_ids

    def is_syllable_start(self, token_id: int) -> bool:
        """True for the ids a syllable starts with: case, sym and whole-syllable ids.

        Why: a single space between two syllables is implicit, so code that lays out ids
        by hand (restoration) must know which ids begin a syllable; merges and bytes
        (also ids >= 256 in symato-bpe) do not."""
        return 0 <= token_id < self._tables.size and self._tables.cls[token_id] in (CASE, SYM,
                                                                                    WHOLE)

    def is_merge(self, token_id: int) -> bool:
        """True for the byte-pair merge ids of a symato-bpe vocabulary."""
        return self._codec.is_merge(token_id)

    def marktone_index(self, token_id: int) -> int | None:
        """Marktone 0..17 of a marktone id, else None."""
        t = self._tables
        if 0 <= token_id < t.size and t.cls[token_id] == MT:
            return t.arg[token_id]
        return None

    def sym_of(self, token_id: int) -> str | None:
        """The sym of a sym id, else None."""
        return self._codec.sym_of(token_id)

    def sym_id(self, sym: str) -> int | None:
        """The id of ``sym`` (None for kinds without syms or unknown syms)."""
        return self._codec.sym_id(sym)

    def whole_id(self, sym_id: int, marktone: int) -> int | None:
        """The whole-syllable id (symato+N) of the syllable ``sym marktone``, else None."""
        return self._codec.whole_id(sym_id, marktone)

    def id_to_piece(self, token_id: int) -> str:
        """The piece name of an id (bytes are ``<0xNN>``; whole syllables ``=syllable``)."""
        self._check_ids([token_id])
        return self._codec.pieces[token_id]

    def piece_to_id(self, piece: str) -> int:
        """The id of a piece name; KeyError-free: raises SymatoError for unknown pieces."""
        try:
            return self._piece_ids[piece]
        except KeyError:
            raise SymatoError(f"unknown piece {piece!r} in vocabulary {self._source}") from None

    def non_syllable_runs(self, text: str) -> list[bytes]:
        """The maximal non-syllable runs of ``text`` (what symato-bpe learns merges from);
        only kinds with syllables have them."""
        return self._codec.non_syllable_runs(text)

    def _check_ids(self, ids: Iterable[int]) -> None:
        n = self._tables.size
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
        return self._codec.encode(text)

    def encode_batch(self, texts: Sequence[str]) -> list[list[int]]:
        """``encode`` for each text (one shared cache)."""
        return [self._codec.encode(t) for t in texts]

    def encode_bytes(self, data: bytes) -> list[int]:
        """Token ids of raw bytes that need not be valid UTF-8 (bad bytes become byte tokens)."""
        text = bytes(data).decode("utf-8", "surrogateescape")
        byte_ids = self._codec.byte_ids
        out: list[int] = []
        pos = 0
        for m in SURROGATES.finditer(text):
            out += self.encode(text[pos : m.start()])
            out += [byte_ids[b] for b in m.group().encode("utf-8", "surrogateescape")]
            pos = m.end()
        out += self.encode(text[pos:])
        return out

    # ------------------------------------------------------------------ decoding
    def decode(self, ids: Iterable[int], decoder: str | None = None) -> str:
        """The text of ``ids``; invalid UTF-8 from byte tokens becomes U+FFFD.

        ``decoder``: ``c`` or ``python`` (``symato.text.fastdecode``); None for the
        default (``self.decoder``). Every decoder gives the same text."""
        hot = self._hot
        if hot is not None and decoder is None:  # one C call: a token, a line, a document
            got = hot.decode(ids)
            if got is not None:
                return got
        return self._decode_named(ids, decoder, True)

    def decode_bytes(self, ids: Iterable[int], decoder: str | None = None) -> bytes:
        """The exact bytes of ``ids`` (inverse of ``encode_bytes``); ``decoder`` as in
        ``decode``."""
        hot = self._hot
        if hot is not None and decoder is None:
            got = hot.decode_bytes(ids)
            if got is not None:
                return got
        return self._decode_named(ids, decoder, False)

    def _decode_named(self, ids: Iterable[int], decoder: str | None, text: bool
                      ) -> str | bytes:
        """Decode with the decoder named (or the default): the compiled loop for what it
        takes, else the reference, after checking the ids (a bad one is reported)."""
        name = self._decoder if decoder is None else fastdecode.check_decoder(decoder)
        if not isinstance(ids, (list, tuple, np.ndarray)):
            ids = list(ids)  # an iterator is read once; the checking path needs every id
        if name == "c":
            dec = self._c_decoder()
            got = dec.decode(ids) if text else dec.decode_bytes(ids)
            if got is not None:
                return got
        ids = self._checked(ids)
        data = decoding.decode_all(self._tables, ids)
        return to_text(data) if text else data

    def _checked(self, ids: Sequence[int] | np.ndarray) -> list[int]:
        """The ids as a list of ints, or SymatoError naming the first bad one."""
        arr = _as_id_array(ids)
        if arr is not None and not (arr.size and (arr.max() >= self._tables.size
                                                  or (arr.dtype.kind == "i" and arr.min() < 0))):
            return arr.tolist()
        self._check_ids(ids)
        return [int(t) for t in ids]

    def _strict(self, ids: Sequence[int]) -> list[int]:
        """The ids as ints after checking each (the stream decoder's check: no bools)."""
        self._check_ids(ids)
        return [int(t) for t in ids]

    def _c_decoder(self) -> Any:
        """The compiled decoder of this vocabulary (tables built on first use: ~0.05 s,
        ~2 MB), or SymatoError naming cause and fix if the extension is missing."""
        if self._cdec is None:
            self._cdec = fastdecode.build_decoder(self._tables)
        if self._decoder == "c":
            self._hot = self._cdec
        return self._cdec

    def stream_decoder(self, decoder: str | None = None) -> StreamDecoder:
        """An incremental decoder: ``feed(ids)`` returns the text that is final so far,
        ``finish()`` the rest; together exactly ``decode`` of all the ids. ``decoder``
        as in ``decode``."""
        name = self._decoder if decoder is None else fastdecode.check_decoder(decoder)
        return StreamDecoder(self._tables, self._c_decoder() if name == "c" else None,
                             self._strict)


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


class StreamDecoder:
    """Decodes ids as they come (``Tokenizer.stream_decoder``).

    ``feed(ids)`` returns the text that no later id can change: a sym waits for its
    marktone (and a case token for its sym), and bytes that end in an incomplete UTF-8
    sequence wait for the rest. ``finish()`` returns what is still held, decoded as
    ``decode`` would at the end (a bare sym, U+FFFD for a cut sequence). So for every
    split of ``ids``, the outputs joined equal ``tokenizer.decode(ids)``.

    With the compiled decoder the state lives in the compiled stream (one C call per
    ``feed``); ids it does not take go through the checking reference decoder on that
    state (the two share one state layout).
    """

    def __init__(self, tables: DecodeTables, compiled: Any, check) -> None:
        self._tables = tables
        self._c = compiled.stream() if compiled is not None else None
        self._check = check  # ids -> list of ints, or SymatoError naming a bad one
        self._state: decoding.State = decoding.START  # the reference decoder's
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
        the reference decoder on the compiled stream's state)."""
        c = self._c
        ids = list(ids)
        got = c.feed(ids)
        if got is not None:
            return got
        ids = self._check(ids)
        case, sym, prev, self._held = c.state
        self._state = (case, sym, bool(prev))
        out = self._feed_python(ids)
        case, sym, prev = self._state
        c.state = (case, sym, int(prev), self._held)
        return out

    def _feed_python(self, ids: Iterable[int]) -> str:
        ids = self._check(list(ids))
        data, self._state = decoding.decode(self._tables, ids, self._state)
        data = self._held + data
        cut = decoding.utf8_cut(data)
        self._held = data[cut:]
        return to_text(data[:cut])

    def finish(self) -> str:
        """The rest: a pending sym and held bytes; the decoder starts afresh after it."""
        if self._c is not None:
            return self._c.finish()
        data = self._held + decoding.flush(self._tables, self._state)
        self._held, self._state = b"", decoding.START
        return to_text(data)


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
