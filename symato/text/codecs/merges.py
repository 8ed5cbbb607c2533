"""The syllable table with byte-pair merges: kind ``symato-bpeV`` (V ids in all).

Every Vietnamese syllable stays ``[case] sym marktone`` (so diacritic restoration keeps
working); each maximal *non-syllable run* (the bytes between two syllables, spaces
included) is encoded with byte-pair merges learned from training text
(``symato.text.bpe``). Ids: symato's bytes, marktones, case, specials and syms, then
the merges (piece ``+text``, or ``<+0xHEX>`` if not UTF-8), then reserved ids up to V.
The file section: ``merges`` (pairs of hex byte strings) and ``size`` (= V).
"""

from __future__ import annotations

import re
from typing import Any

from symato.text.bpe import BpeCodec
from symato.text.codecs.base import bad
from symato.text.codecs.table import CACHE_CHUNK, CACHE_LIMIT, TableCodec


def merge_piece(data: bytes) -> str:
    """Readable, unique piece name of a merge: ``+`` and its text, or its hex if it is
    not valid UTF-8."""
    try:
        return "+" + data.decode("utf-8")
    except UnicodeDecodeError:
        return f"<+0x{data.hex().upper()}>"


class MergesCodec(TableCodec):
    """symato plus byte-pair merges of the non-syllable runs."""

    def _syllables_expected(self, match: re.Match[str]) -> int:
        return 0

    def _extra_pieces(self, data: dict[str, Any], match: re.Match[str], base: int
                      ) -> list[tuple[str, bytes]]:
        self.bpe = BpeCodec(data.get("merges"), base, self.where)
        self.merge_base = base
        size = int(match.group(1))
        if data.get("size") != size:
            raise bad(self.where, f"key 'size' is {data.get('size')!r}, the kind says {size}")
        self._bpe_cache: dict[str, tuple[bytes, tuple[int, ...], bytes, bool]] = {}
        return [(merge_piece(b), b) for b in self.bpe.token_bytes]

    def is_merge(self, token_id: int) -> bool:
        return self.merge_base <= token_id < self.merge_base + len(self.bpe.token_bytes)

    def encode(self, text: str) -> list[int]:
        """The symato tokens with each maximal non-syllable run merged."""
        if len(self._cache) > CACHE_LIMIT:
            self._cache.clear()
        return self.runs_and_tokens(text, self._bpe_chunk, self.bpe.encode_run)

    def _bpe_chunk(self, chunk: str) -> tuple[bytes, tuple[int, ...], bytes, bool]:
        """``chunk_parts`` with the inner runs merged into ids (cached per chunk)."""
        got = self._bpe_cache.get(chunk)
        if got is not None:
            return got
        head, items, tail, has_syl = self.chunk_parts(chunk)
        body: list[int] = []
        for item in items:
            if isinstance(item, bytes):
                body += self.bpe.encode_run(item)
            else:
                body.append(item)
        got = (head, tuple(body), tail, has_syl)
        if len(chunk) <= CACHE_CHUNK:
            if len(self._bpe_cache) > CACHE_LIMIT:
                self._bpe_cache.clear()
            self._bpe_cache[chunk] = got
        return got
