"""The byte-level peer: kind ``bytes`` (256 UTF-8 byte values, then the specials).

The floor of the tokenizer comparison: every text is its UTF-8 bytes, one id each.
"""

from __future__ import annotations

import re
from typing import Any

from symato.text.codecs.base import BYTE_PIECES, N_BYTES, Codec, DecodeTables, utf8


class BytesCodec(Codec):
    """One id per byte; no file section beyond the specials."""

    def __init__(self, data: dict[str, Any], match: re.Match[str], where: str) -> None:
        self.pieces = (*BYTE_PIECES, *data["specials"])
        self.byte_ids = tuple(range(N_BYTES))
        own = [bytes([b]) for b in range(N_BYTES)] + [utf8(p) for p in data["specials"]]
        self.tables = DecodeTables.own_only(own)

    def encode(self, text: str) -> list[int]:
        return list(utf8(text))
