"""What every codec shares: the id layout's fixed part, the decode tables, the protocol.

Why one table shape for every encoding: decoding is one state machine (the compiled
loop of ``_fastdecode.c`` and its readable Python twin, ``symato.text.decoding``) over
per-id classes; a codec only fills the tables. An id either writes its own bytes
(``OWN``: a byte, special, merge, reserved id or sentencepiece piece) or is part of a
syllable (``MT`` marktone, ``CASE`` Title/UPPER, ``SYM`` sym, ``WHOLE`` a whole
syllable or word written in one of three cases). A new encoding is a new codec that
fills the same tables; the decoders do not change.
"""

from __future__ import annotations

import codecs as _codecs
import re
from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import Any

from symato.errors import SymatoError
from symato.text import syllable as S

EOT = "<|endoftext|>"
N_BYTES = 256
MT_BASE = N_BYTES  # 256..273: the 18 marktones
TITLE_ID = MT_BASE + S.MARKTONES  # 274
UPPER_ID = TITLE_ID + 1  # 275
SPECIAL_BASE = UPPER_ID + 1  # 276: <|endoftext|>, then the other specials
SYMATO_BASE = SPECIAL_BASE + 1 + len(S.all_syms())  # 2552: the ids before a kind's own
OWN, MT, CASE, SYM, WHOLE = range(5)  # id classes (the same numbers in _fastdecode.c)
BARE = S.MARKTONES  # the form index of a sym written without a marktone
FORMS = S.MARKTONES + 1  # per sym: the 18 marktones, then the bare sym


def _marktone_piece(mt: int) -> str:
    """Readable marktone names: the vowel a/â/ă carrying that mark and tone, in <>."""
    mark, tone = divmod(mt, 6)
    base = ("a", "â", "ă")[mark]
    return "<" + S.put_tone(base, 0, tone) + ">"


BYTE_PIECES = tuple(f"<0x{b:02X}>" for b in range(N_BYTES))
MARKTONE_PIECES = tuple(_marktone_piece(mt) for mt in range(S.MARKTONES))
CASE_PIECES = ("<Title>", "<UPPER>")
SURROGATES = re.compile("[\ud800-\udfff]+")


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


ERRORS = "symato-surrogates"  # the name _fastdecode.c decodes with
_codecs.register_error(ERRORS, _recover_surrogates)


def to_text(data: bytes) -> str:
    """Decoded bytes as text: lone surrogates kept, other invalid UTF-8 as U+FFFD."""
    return data.decode("utf-8", ERRORS)


def utf8(text: str) -> bytes:
    """UTF-8 of any str, lone surrogates included."""
    return text.encode("utf-8", "surrogatepass")


def bad(where: str, msg: str) -> SymatoError:
    """The error of a corrupt vocabulary file, naming it."""
    return SymatoError(f"corrupt vocabulary {where}: {msg}")


@dataclass(frozen=True)
class DecodeTables:
    """Everything decoding needs, as plain values: the public output of every codec.

    ``cls[t]`` is id t's class (``OWN``, ``MT``, ``CASE``, ``SYM``, ``WHOLE``) and
    ``arg[t]`` its argument (marktone 0..17; case 1 Title / 2 UPPER; sym index; whole
    index). ``own[t]`` is the bytes an ``OWN`` id writes (empty for the others).
    ``sym_forms[s][m * 3 + c]`` is sym s with marktone m (``BARE`` = 18: the bare sym,
    also what an illegal pair writes) in case c (0 lower, 1 Title, 2 UPPER);
    ``whole_forms[w][c]`` is whole entry w (a syllable, or a word of several) in case c.
    Syllables and wholes are written without the implicit space; the decoder adds one
    between two of them.
    """

    cls: bytes
    arg: tuple[int, ...]
    own: tuple[bytes, ...]
    sym_forms: tuple[tuple[bytes, ...], ...] = ()
    whole_forms: tuple[tuple[bytes, bytes, bytes], ...] = ()

    @property
    def size(self) -> int:
        """Number of ids."""
        return len(self.cls)

    @classmethod
    def own_only(cls, own: list[bytes] | tuple[bytes, ...]) -> DecodeTables:
        """The tables of a codec whose every id writes its own bytes (bytes, sentencepiece)."""
        return cls(bytes(len(own)), (0,) * len(own), tuple(own))


class Codec(ABC):
    """One encoding of text into ids: owns its vocabulary-file section, its encoder and
    its decode tables.

    A subclass reads and validates its keys of the vocabulary dict in ``__init__``
    (errors via ``bad(where, ...)`` naming the key), sets ``pieces`` (the piece name of
    every id), ``tables`` (``DecodeTables``) and ``byte_ids`` (the id of each byte value:
    the fallback ``encode_bytes`` uses for bytes that are not UTF-8), and implements
    ``encode``. The syllable queries below answer for codecs without syllables; the
    syllable codecs override them. ``min_version`` is the oldest file-format version
    whose files of this codec still mean the same.
    """

    min_version = 1
    pieces: tuple[str, ...]
    tables: DecodeTables
    byte_ids: tuple[int, ...]

    @abstractmethod
    def __init__(self, data: dict[str, Any], match: re.Match[str], where: str) -> None:
        """Read and check the codec's keys of the vocabulary ``data`` (file ``where``);
        ``match`` is the kind pattern's match of the file's ``kind`` (its parameters)."""

    @abstractmethod
    def encode(self, text: str) -> list[int]:
        """Token ids of ``text`` (any str, lone surrogates included); lossless."""

    def sym_id(self, sym: str) -> int | None:
        """The id of ``sym`` (None without syms)."""
        return None

    def sym_of(self, token_id: int) -> str | None:
        """The sym of a sym id, else None."""
        return None

    def whole_id(self, sym_id: int, marktone: int) -> int | None:
        """The whole-syllable id of ``sym marktone``, else None."""
        return None

    def is_merge(self, token_id: int) -> bool:
        """True for a byte-pair merge id."""
        return False

    def non_syllable_runs(self, text: str) -> list[bytes]:
        """The maximal non-syllable runs of ``text`` (what symato-bpe learns from)."""
        raise SymatoError(f"{type(self).__name__}: this kind has no syllables, hence no "
                          "non-syllable runs")
