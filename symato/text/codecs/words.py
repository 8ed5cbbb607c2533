"""The syllable table with whole words: kind ``symato-wordsV`` (V ids in all).

Why: a symato token is at most one syllable, yet most Vietnamese words are two
("Việt Nam", "ngôn ngữ", "thành phố"); a tokenizer that spends one token per syllable
cannot reach sentencepiece BPE's tokens per word. This kind keeps symato (every
syllable can still be ``[case] sym marktone``, every other byte a byte token, so it is
lossless like every kind) and adds what it learns from the train split: byte-pair
merges for the text between syllables (symato-bpe's, ``symato.text.bpe``) and
*entries*: whole syllables (one id instead of sym + marktone) and whole words of 2 to
4 syllables (one id across the implicit single space between them).

Case: an entry is stored lower case and written in one of three cases by the case
token before it, as a whole syllable is: none = lower, ``<Title>`` = every syllable
Title ("Hà Nội", "Việt Nam"), ``<UPPER>`` = every syllable UPPER ("VIỆT NAM"). So a
word token covers only syllables that share one case; "Ngôn ngữ" at a sentence start
is ``<Title> ngôn`` and then entries for "ngữ ...". Runs of syllables are cut where the
case changes before any entry is applied.

Ids: symato's 256 bytes, 18 marktones, ``<Title>``, ``<UPPER>``, specials and every sym,
then the merges (pieces ``+text`` as in symato-bpe), then the entries in the order they
were learned (piece ``=text``: ``=việt``, ``=việt nam``), then reserved ids up to V. The
file section: ``merges`` (as symato-bpe's) and ``words``, the entries in order:
``["việt"]`` is a whole syllable, ``["việt", "nam"]`` the merge of two units, each a
syllable or an earlier merge's text ("hồ chí" + "minh").

Learning (byte-pair encoding over syllables, ``learn_words``): start from every
syllable as its own unit, sym + marktone (2 ids; +1 for a case token). Repeatedly add
the entry that saves the most tokens on the train text: either the whole-syllable id
of the syllable that stands alone most often (saves 1 per occurrence), or the merge of
the two adjacent units that are most often side by side within one case-uniform run
(saves their cost minus one per occurrence, plus the case token of one of them),
until no candidate occurs ``min_count`` times. The byte merges are learned as
symato-bpe learns them (each saves its count). The V - 2552 ids go to whichever list's
next item saves more (``_split``: both lists keep their order, and a greedy list's
prefix is what it learns with a smaller budget).

Encoding: each maximal non-syllable run goes through the merges (as symato-bpe); inside
each case-uniform run of syllables the entries' merges apply in learned order (as BPE
does), and each unit is written as its entry's id, or as sym + marktone when it is a
syllable without one. Syllable merges never cross anything but the implicit single
space: a run of syllables ends at any other byte, so a word's id never depends on the
text around the run. Speed: a run is also cut between two syllables that are adjacent
in no word (no merge can join them, so the result is the same), which leaves short
pieces whose units are cached.
"""

from __future__ import annotations

import heapq
import re
from collections import Counter
from collections.abc import Iterator
from itertools import pairwise
from pathlib import Path
from typing import Any

from symato.errors import SymatoError
from symato.text import syllable as S
from symato.text.bpe import learn_merges, merges_to_json
from symato.text.codecs.base import (
    EOT,
    MT_BASE,
    SYMATO_BASE,
    TITLE_ID,
    UPPER_ID,
    bad,
    utf8,
)
from symato.text.codecs.merges import MergesCodec
from symato.text.codecs.table import CACHE_CHUNK, CACHE_LIMIT

MAX_SYLLABLES = 4  # longest word entry
_CASE = {"lower": 0, "title": 1, "upper": 2}
_CASE_IDS = ((), (TITLE_ID,), (UPPER_ID,))
Syl = tuple[str, int]  # (lower-case syllable, case 0 lower / 1 Title / 2 UPPER)
Items = tuple[tuple[bytes | Syl, ...], bool, bool]  # chunk items, starts / ends with a syllable


class WordsCodec(MergesCodec):
    """symato plus byte-pair merges, whole syllables and whole words (the module
    docstring); the merges' file section and ids are symato-bpe's."""

    def _wholes(self, data: dict[str, Any], match: re.Match[str], base: int
                ) -> tuple[list[str], bool]:
        entries = data.get("words")
        if not isinstance(entries, list):
            raise bad(self.where, "key 'words' must be a list")
        self.ranks: dict[tuple[str, str], int] = {}
        texts = _check_entries(entries, set(S.all_syllables(self.tone_style)), self.where,
                               self.ranks)
        # adjacent syllables inside some word: a run can be cut between any other two, as
        # no merge ever joins them (so the pieces are short, and cached)
        self.bigrams = {p for t in texts for p in pairwise(t.split(" "))}
        self._items: dict[str, Items] = {}
        self._units: dict[tuple[str, ...], tuple[str, ...]] = {}
        self._syl_tokens: dict[str, tuple[int, ...]] = {}
        return texts, True

    # ------------------------------------------------------------------ encoding
    def encode(self, text: str) -> list[int]:
        out: list[int] = []
        for item in self._stream(text):
            if type(item) is list:
                self._write_run(item, out)
            else:
                out += self.bpe.encode_run(item)
        return out

    def _stream(self, text: str) -> Iterator[bytes | list[Syl]]:
        """``text`` as alternating non-syllable runs (maximal, spaces included) and runs
        of syllables (syllables with only the implicit single space between them)."""
        cache = self._items
        if len(cache) > CACHE_LIMIT:
            cache.clear()
        run: list[Syl] = []
        pending = b""
        prev_ends = False
        for k, chunk in enumerate(text.split(" ")):
            items, starts, ends = cache.get(chunk) or self._chunk_items(chunk)
            if k and not (prev_ends and starts):
                if run:
                    yield run
                    run = []
                pending += b" "
            for item in items:
                if type(item) is bytes:
                    if run:
                        yield run
                        run = []
                    pending += item
                else:
                    if pending:
                        yield pending
                        pending = b""
                    run.append(item)
            prev_ends = ends
        if run:
            yield run
        if pending:
            yield pending

    def _chunk_items(self, chunk: str) -> Items:
        """A space-free chunk as byte runs and syllables (cached)."""
        items: list[bytes | Syl] = []
        pos, starts, ends = 0, False, False
        for m in S.LETTER_RUN.finditer(chunk):
            start, end = m.span()
            if start > pos:
                items.append(utf8(chunk[pos:start]))
            syl = self._syllable(m.group())
            items.append(syl if syl is not None else utf8(m.group()))
            if start == 0:
                starts = syl is not None
            ends = syl is not None and end == len(chunk)
            pos = end
        if pos < len(chunk):
            items.append(utf8(chunk[pos:]))
        entry = (tuple(items), starts, ends)
        if len(chunk) <= CACHE_CHUNK:
            self._items[chunk] = entry
        return entry

    def _syllable(self, word: str) -> Syl | None:
        """(lower, case) of a canonical syllable, else None (the test of ``encode_syllable``)."""
        found = S.canonical(word, self.tone_style)
        if found is None:
            return None
        syl, lower = found
        if lower not in self._syl_tokens:
            self._syl_tokens[lower] = ((self.whole_ids[lower],) if lower in self.whole_ids
                                       else (self.sym_ids[syl.sym], MT_BASE + syl.marktone))
        return lower, _CASE[syl.case]

    def _write_run(self, run: list[Syl], out: list[int]) -> None:
        """The ids of a run of syllables: per case-uniform stretch cut where no word
        spans, its units."""
        bigrams, start = self.bigrams, 0
        for i in range(1, len(run) + 1):
            if (i == len(run) or run[i][1] != run[start][1]
                    or (run[i - 1][0], run[i][0]) not in bigrams):
                case = _CASE_IDS[run[start][1]]
                lowers = tuple(s for s, _ in run[start:i])
                for unit in self._merge(lowers) if i - start > 1 else lowers:
                    out += case
                    got = self.whole_ids.get(unit)
                    if got is not None:
                        out.append(got)
                    else:
                        out += self._syl_tokens[unit]
                start = i

    def _merge(self, lowers: tuple[str, ...]) -> tuple[str, ...]:
        """The units of a case-uniform stretch: the merges applied in learned order."""
        got = self._units.get(lowers)
        if got is not None:
            return got
        units = list(lowers)
        ranks = self.ranks
        while len(units) > 1:
            best, where = None, -1
            for i in range(len(units) - 1):
                r = ranks.get((units[i], units[i + 1]))
                if r is not None and (best is None or r < best):
                    best, where = r, i
            if best is None:
                break
            units[where : where + 2] = [units[where] + " " + units[where + 1]]
        got = tuple(units)
        if len(lowers) <= 8:
            if len(self._units) > CACHE_LIMIT:
                self._units.clear()
            self._units[lowers] = got
        return got

    def learning_runs(self, text: str) -> Iterator[tuple[str, Any]]:
        """What ``build`` counts: ``("bytes", run)`` for each non-syllable run and
        ``("syllables", (lower syllables, case))`` for each case-uniform stretch."""
        for item in self._stream(text):
            if type(item) is not list:
                yield "bytes", item
                continue
            start = 0
            for i in range(1, len(item) + 1):
                if i == len(item) or item[i][1] != item[start][1]:
                    yield "syllables", (tuple(s for s, _ in item[start:i]), item[start][1])
                    start = i


def _check_entries(entries: list[Any], legal: set[str], where: str,
                   ranks: dict[tuple[str, str], int]) -> list[str]:
    """The text of each entry of the file's ``words``; fills ``ranks`` with the merges."""
    texts: list[str] = []
    seen: set[str] = set()
    for k, entry in enumerate(entries):
        # each side a syllable of the grammar or an earlier word; a one-side entry whose
        # side is an earlier word repeats it, which the last test refuses
        ok = isinstance(entry, list) and len(entry) in (1, 2) and all(
            isinstance(x, str) and (x in legal or (" " in x and x in seen)) for x in entry)
        text = " ".join(entry) if ok else ""
        if not ok or text.count(" ") >= MAX_SYLLABLES or text in seen:
            raise bad(where, f"'words'[{k}] = {entry!r} is not a new syllable or a merge of "
                             f"two syllables or earlier words (at most {MAX_SYLLABLES} "
                             "syllables)")
        if len(entry) == 2:
            ranks[(entry[0], entry[1])] = k
        seen.add(text)
        texts.append(text)
    return texts


# ---------------------------------------------------------------------- learning
def learn_words(runs: Counter[tuple[tuple[str, ...], int]], n_entries: int,
                min_count: int = 2, savings: list[int] | None = None) -> list[list[str]]:
    """Up to ``n_entries`` entries (whole syllables and merges) from case-uniform runs
    and their counts, greedily by tokens saved (the module docstring); ``savings``, if
    given, gets each entry's saving."""
    seqs = [list(r) for r, _ in runs]
    counts = list(runs.values())
    cased = [case != 0 for _, case in runs]
    whole: set[str] = set()
    alone: Counter[str] = Counter()  # occurrences of a syllable as a unit of its own
    pairs: Counter[tuple[str, str]] = Counter()  # occurrences of two adjacent units
    pairs_cased: Counter[tuple[str, str]] = Counter()
    where: dict[tuple[str, str], set[int]] = {}
    for i, seq in enumerate(seqs):
        for s in seq:
            alone[s] += counts[i]
        _add_pairs(seq, i, counts[i], cased[i], pairs, pairs_cased, where, +1)

    def cost(u: str) -> int:
        return 1 if " " in u or u in whole else 2

    def saving(key: tuple[str, Any]) -> int:
        if key[0] == "whole":
            n = alone[key[1]]
            return 0 if key[1] in whole or n < min_count else n
        a, b = key[1]
        if pairs[key[1]] < min_count:
            return 0
        return pairs[key[1]] * (cost(a) + cost(b) - 1) + pairs_cased[key[1]]

    def push(key: tuple[str, Any]) -> None:
        got = saving(key)
        if got > 0:
            heapq.heappush(heap, (-got, key))

    heap: list[tuple[int, tuple[str, Any]]] = []
    for s in alone:
        push(("whole", s))
    for p in pairs:
        if _length(p) <= MAX_SYLLABLES:
            push(("pair", p))
    entries: list[list[str]] = []
    while heap and len(entries) < n_entries:
        neg, key = heapq.heappop(heap)
        now = saving(key)
        if now != -neg:  # stale: the saving fell since it was pushed
            push(key)
            continue
        if savings is not None:
            savings.append(now)
        if key[0] == "whole":
            whole.add(key[1])
            entries.append([key[1]])
            continue
        a, b = key[1]
        entries.append([a, b])
        for p in _merge_everywhere(key[1], seqs, counts, cased, pairs, pairs_cased, where,
                                   alone):
            if _length(p) <= MAX_SYLLABLES:
                push(("pair", p))
    return entries


def _length(pair: tuple[str, str]) -> int:
    return pair[0].count(" ") + pair[1].count(" ") + 2


def _add_pairs(seq: list[str], i: int, count: int, cased: bool, pairs: Counter,
               pairs_cased: Counter, where: dict, sign: int) -> None:
    for p in pairwise(seq):
        pairs[p] += sign * count
        if cased:
            pairs_cased[p] += sign * count
        if sign > 0:
            where.setdefault(p, set()).add(i)


def _merge_everywhere(pair: tuple[str, str], seqs: list[list[str]], counts: list[int],
                      cased: list[bool], pairs: Counter, pairs_cased: Counter, where: dict,
                      alone: Counter) -> set[tuple[str, str]]:
    """Merge ``pair`` in every run holding it; update the counts; return the new pairs."""
    a, b = pair
    joined = a + " " + b
    new: set[tuple[str, str]] = set()
    for i in sorted(where.pop(pair, ())):
        seq, count = seqs[i], counts[i]
        out: list[str] = []
        k = 0
        while k < len(seq):
            if k + 1 < len(seq) and seq[k] == a and seq[k + 1] == b:
                out.append(joined)
                for u in (a, b):
                    if " " not in u:
                        alone[u] -= count
                k += 2
            else:
                out.append(seq[k])
                k += 1
        if len(out) == len(seq):
            continue
        _add_pairs(seq, i, count, cased[i], pairs, pairs_cased, where, -1)
        _add_pairs(out, i, count, cased[i], pairs, pairs_cased, where, +1)
        new |= {p for p in pairwise(out) if joined in p}
        seqs[i] = out
    pairs.pop(pair, None)
    pairs_cased.pop(pair, None)
    return new


def words_dict(syms: list[str], entries: list[list[str]], *, size: int,
               merges: list[list[str]] | None = None, tone_style: str = "new",
               meta: dict[str, Any] | None = None) -> dict[str, Any]:
    """The vocabulary dict of a symato-words tokenizer (``size`` ids in all; ``merges``
    as symato-bpe's, hex pairs)."""
    from symato.text.tokenizer import FORMAT, VERSION

    return {"format": FORMAT, "version": VERSION, "kind": f"symato-words{size}",
            "tone_style": tone_style, "size": size, "specials": [EOT], "syms": list(syms),
            "merges": [list(m) for m in merges or []], "words": [list(e) for e in entries],
            "meta": dict(meta or {})}


def build(name: str, match: re.Match[str], inputs: dict[str, list[Path]],
          options: dict[str, Any]) -> Any:
    """symato-wordsV from the syms table (their order) and the train text (the entries);
    ``options``: ``tone_style``, ``bpe_min_count`` (occurrences an entry needs)."""
    from symato.text import vocab as V
    from symato.text.tokenizer import Tokenizer

    V._allow(name, options, {"tone_style", "bpe_min_count"})
    size, tone_style = int(match.group(1)), options.get("tone_style", "new")
    min_count = int(options.get("bpe_min_count", 2))
    if tone_style not in S.STYLES:
        raise SymatoError(f"tone style {tone_style!r} is not 'new' or 'old'")
    syms, meta = V._sym_order(V._one(inputs, "syms"))
    if size <= SYMATO_BASE:
        raise SymatoError(f"{name}: needs more than the {SYMATO_BASE} ids of symato's bytes, "
                          "marktones, case tokens, specials and syms")
    files = inputs.get("text", [])
    plain = Tokenizer.from_dict(words_dict(syms, [], size=SYMATO_BASE + 1,
                                           tone_style=tone_style)).codec
    runs: dict[str, Counter[Any]] = {"bytes": Counter(), "syllables": Counter()}
    documents = 0
    for text in V._documents(files):
        for what, run in plain.learning_runs(text):
            runs[what][run] += 1
        documents += 1
    budget = size - SYMATO_BASE
    byte_savings: list[int] = []
    word_savings: list[int] = []
    merges = learn_merges(runs["bytes"], budget, min_count, byte_savings)
    entries = learn_words(runs["syllables"], budget, min_count, word_savings)
    n_merges, n_entries = _split(byte_savings, word_savings, budget)
    merges, entries = merges[:n_merges], entries[:n_entries]
    n_words = sum(len(e) == 2 for e in entries)
    meta = {**meta, "entries_requested": budget, "merges": n_merges,
            "whole_syllables": n_entries - n_words, "words": n_words, "min_count": min_count,
            "documents": documents, "text_files": len(files)}
    return Tokenizer.from_dict(words_dict(syms, entries, size=size,
                                          merges=merges_to_json(merges),
                                          tone_style=tone_style, meta=meta))


def _split(first: list[int], second: list[int], budget: int) -> tuple[int, int]:
    """How many of each learned list to keep: take the larger next saving of the two
    (each list keeps its own order, and a prefix of a greedy list is what the learner
    gives for a smaller budget), until ``budget`` ids are used or both lists are."""
    i = j = 0
    while i + j < budget and (i < len(first) or j < len(second)):
        if j >= len(second) or (i < len(first) and first[i] > second[j]):
            i += 1
        else:
            j += 1
    return i, j
