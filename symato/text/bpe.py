"""Byte-pair merges for the text symato does not cover (the ``symato-bpeV`` kind).

Why: about one word-or-symbol in five of running Vietnamese text is not a syllable
(numbers, Latin words, punctuation, markup), and plain symato spends one token per UTF-8
byte on them. This kind keeps every Vietnamese syllable as ``[case] sym marktone`` (so
diacritic restoration keeps working) and encodes each *non-syllable run* (a maximal
stretch of bytes between two syllables, with the spaces in it) with byte-pair merges
learned from training text.

Pre-splitting, so that merges never cross a word boundary: a run is cut into pieces by
``PIECE`` (on bytes, so invalid UTF-8 is no special case): a letter run, a digit run or
a punctuation run, each with at most one space before it, and a space at the very end of
the run (the one before the next syllable) kept with the piece before it; other
whitespace runs are pieces of their own (all but the last space when a word follows).
Bytes >= 0x80 count as letters (the UTF-8 of letters, accented or not, and of
non-ASCII symbols). Merges are learned on the pieces' bytes and applied in learned order
within each piece, so every piece, hence every run, decodes to exactly its bytes.

The merges are stored in the vocabulary as pairs of hex byte strings (``[["2c", "20"],
...]`` = ``, `` + `` `` ``), each side a byte or an earlier merge's result, so a file does
not depend on where the merge ids start.
"""

from __future__ import annotations

import heapq
import re
from collections import Counter
from collections.abc import Iterable, Sequence
from itertools import pairwise

from symato.errors import SymatoError

PIECE = re.compile(
    rb" ?(?:[A-Za-z\x80-\xff]+|[0-9]+|[^\sA-Za-z0-9\x80-\xff]+)(?: \Z)?|\s+(?!\S)|\s+"
)
_CACHE_LIMIT = 1 << 18  # runs / pieces cached; the caches are cleared past this
_CACHE_RUN = 64  # longest run (bytes) worth caching


def pieces(run: bytes) -> list[bytes]:
    """The pre-split pieces of one non-syllable run (they concatenate to ``run``)."""
    return PIECE.findall(run)


def learn_merges(run_counts: Counter[bytes], n_merges: int, min_count: int = 2,
                 savings: list[int] | None = None) -> list[tuple[bytes, bytes]]:
    """Learn up to ``n_merges`` byte-pair merges from non-syllable runs and their counts.

    ``savings``, if given, gets each merge's count (the tokens it saves on the runs):
    how symato-wordsV weighs merges against its syllable entries.

    Classic BPE over the pre-split pieces: repeatedly merge the most frequent adjacent
    pair (ties: the smaller left bytes, then right bytes, so the result is the same on
    every machine) until ``n_merges`` merges or no pair occurs ``min_count`` times.
    Only the words containing the merged pair are revisited, so a merge costs time in
    proportion to where it occurs, not to the corpus.
    """
    piece_counts: Counter[bytes] = Counter()
    for run, count in run_counts.items():
        for piece in pieces(run):
            if len(piece) > 1:
                piece_counts[piece] += count
    words = [list(p) for p in piece_counts]
    counts = list(piece_counts.values())
    token_bytes = [bytes([b]) for b in range(256)]
    pair_count: Counter[tuple[int, int]] = Counter()
    where: dict[tuple[int, int], set[int]] = {}
    for wi, word in enumerate(words):
        for pair in pairwise(word):
            pair_count[pair] += counts[wi]
            where.setdefault(pair, set()).add(wi)

    def entry(pair: tuple[int, int]) -> tuple[int, bytes, bytes, tuple[int, int]]:
        return (-pair_count[pair], token_bytes[pair[0]], token_bytes[pair[1]], pair)

    heap = [entry(p) for p in pair_count]
    heapq.heapify(heap)
    merges: list[tuple[bytes, bytes]] = []
    while heap and len(merges) < n_merges:
        neg, _, _, pair = heapq.heappop(heap)
        if -neg != pair_count[pair]:  # stale entry: the count changed since it was pushed
            continue
        if -neg < min_count:
            break
        new_id = len(token_bytes)
        token_bytes.append(token_bytes[pair[0]] + token_bytes[pair[1]])
        merges.append((token_bytes[pair[0]], token_bytes[pair[1]]))
        if savings is not None:
            savings.append(-neg)
        changed: set[tuple[int, int]] = set()
        for wi in where.pop(pair, ()):
            word, count = words[wi], counts[wi]
            merged = _merge(word, pair, new_id)
            if len(merged) == len(word):
                continue
            for p in pairwise(word):
                pair_count[p] -= count
                changed.add(p)
            for p in pairwise(merged):
                pair_count[p] += count
                where.setdefault(p, set()).add(wi)
                changed.add(p)
            words[wi] = merged
        pair_count.pop(pair, None)
        changed.discard(pair)
        for p in changed:
            if pair_count[p] > 0:
                heapq.heappush(heap, entry(p))
            else:
                pair_count.pop(p, None)
    return merges


def _merge(word: list[int], pair: tuple[int, int], new_id: int) -> list[int]:
    """``word`` with every non-overlapping occurrence of ``pair`` (left to right) merged."""
    a, b = pair
    out: list[int] = []
    i, n = 0, len(word)
    while i < n:
        if i + 1 < n and word[i] == a and word[i + 1] == b:
            out.append(new_id)
            i += 2
        else:
            out.append(word[i])
            i += 1
    return out


def merges_to_json(merges: Sequence[tuple[bytes, bytes]]) -> list[list[str]]:
    """Merges as JSON-able pairs of hex strings."""
    return [[a.hex(), b.hex()] for a, b in merges]


class BpeCodec:
    """Applies stored merges to non-syllable runs; ids of merge k are ``base + k``.

    Why a class: the rank table and two caches (pieces and whole runs; both repeat a lot
    in running text: ``, ``, ``. ``, years) live with the tokenizer that owns them.
    """

    def __init__(self, merges: object, base: int, where: str) -> None:
        if not isinstance(merges, list):
            raise SymatoError(f"corrupt vocabulary {where}: key 'merges' must be a list")
        ids: dict[bytes, int] = {bytes([b]): b for b in range(256)}
        self.ranks: dict[tuple[int, int], tuple[int, int]] = {}
        self.token_bytes: list[bytes] = []
        for k, pair in enumerate(merges):
            try:
                left, right = (bytes.fromhex(x) for x in pair)
                a, b = ids[left], ids[right]
            except (TypeError, ValueError, KeyError):
                raise SymatoError(
                    f"corrupt vocabulary {where}: 'merges'[{k}] = {pair!r} is not a pair of "
                    "hex byte strings that are bytes or earlier merges") from None
            joined = left + right
            if joined in ids:
                raise SymatoError(f"corrupt vocabulary {where}: 'merges'[{k}] repeats "
                                  f"{joined!r}")
            ids[joined] = base + k
            self.ranks[(a, b)] = (k, base + k)
            self.token_bytes.append(joined)
        self._pieces: dict[bytes, tuple[int, ...]] = {}
        self._runs: dict[bytes, tuple[int, ...]] = {}

    def encode_piece(self, piece: bytes) -> tuple[int, ...]:
        """Token ids of one pre-split piece: its bytes, merged in learned order."""
        got = self._pieces.get(piece)
        if got is not None:
            return got
        word = list(piece)
        ranks = self.ranks
        while len(word) > 1:
            best = None
            for pair in pairwise(word):
                r = ranks.get(pair)
                if r is not None and (best is None or r < best[1]):
                    best = (pair, r)
            if best is None:
                break
            word = _merge(word, best[0], best[1][1])
        got = tuple(word)
        if len(self._pieces) > _CACHE_LIMIT:
            self._pieces.clear()
        self._pieces[piece] = got
        return got

    def encode_run(self, run: bytes) -> tuple[int, ...]:
        """Token ids of one non-syllable run."""
        got = self._runs.get(run)
        if got is not None:
            return got
        enc = self.encode_piece
        out: list[int] = []
        for piece in PIECE.findall(run):
            out += enc(piece)
        got = tuple(out)
        if len(run) <= _CACHE_RUN:
            if len(self._runs) > _CACHE_LIMIT:
                self._runs.clear()
            self._runs[run] = got
        return got


def count_runs(runs: Iterable[bytes]) -> Counter[bytes]:
    """How often each run occurs (the learner's input)."""
    return Counter(runs)
