"""The syllable table: kinds ``symato`` and ``symato+N``.

Ids: 256 bytes, 18 marktones, ``<Title>``, ``<UPPER>``, the specials, every sym of the
grammar (in the file's order), reserved ids up to ``size``, then the N whole lower-case
syllables of ``symato+N`` (``=syllable``).

A letter run that is a legal syllable written canonically (NFC, the vocabulary's tone
style, lower/Title/UPPER) becomes ``[case] sym marktone`` (or ``[case] syllable`` for a
whole-syllable token); anything else becomes UTF-8 byte tokens. One ASCII space between
two syllables is implicit: not emitted, restored by the decoder.

Speed: text is split on spaces and each space-free chunk is looked up in a dict cache
(chunk -> tokens); Vietnamese is mostly short repeated words, so after warm-up encoding
is one dict lookup per word.
"""

from __future__ import annotations

import re
from itertools import pairwise
from typing import Any

from symato.text import syllable as S
from symato.text.codecs.base import (
    BARE,
    BYTE_PIECES,
    CASE,
    CASE_PIECES,
    MARKTONE_PIECES,
    MT,
    MT_BASE,
    N_BYTES,
    SYM,
    TITLE_ID,
    UPPER_ID,
    WHOLE,
    Codec,
    DecodeTables,
    bad,
    utf8,
)

CACHE_LIMIT = 1 << 20  # chunks; a cache is cleared when it grows past this
CACHE_CHUNK = 64  # longest chunk (characters) worth caching
SPACE = 0x20
Chunk = tuple[tuple[int, ...], bool, bool]  # tokens, starts with a syllable, ends with one


class TableCodec(Codec):
    """``symato`` / ``symato+N``: bytes, marktones, case, specials, syms, whole syllables.

    Subclasses (``MergesCodec``, ``WordsCodec``) insert their own ids after the syms with
    ``_extra_pieces`` and encode on top of ``encode_chunk``.
    """

    min_version = 2  # version-1 files listed the old grammar's 2,256 syms

    def __init__(self, data: dict[str, Any], match: re.Match[str], where: str) -> None:
        self.where = where
        self.tone_style: str = data.get("tone_style", "new")
        syms, syllables = data.get("syms"), data.get("syllables", [])
        if not isinstance(syms, list) or not isinstance(syllables, list):
            raise bad(where, "keys 'syms' and 'syllables' must be lists")
        self._check_syms(syms)
        self._check_syllables(syllables, self._syllables_expected(match))
        self.syms, self.syllables = tuple(syms), tuple(syllables)
        pieces: list[str] = [*BYTE_PIECES, *MARKTONE_PIECES, *CASE_PIECES, *data["specials"]]
        self.sym_base = len(pieces)
        pieces += syms
        extra_own = self._extra_pieces(data, match, len(pieces))
        pieces += [name for name, _ in extra_own]
        wholes, before_reserved = self._wholes(data, match, len(pieces))
        if before_reserved:
            self.syl_base = len(pieces)
            pieces += ["=" + w for w in wholes]
        size = data.get("size", len(pieces))
        if not isinstance(size, int) or size < len(pieces):
            raise bad(where, f"key 'size' is {size!r}, below the {len(pieces)} ids it needs")
        pieces += [f"<|reserved_{i}|>" for i in range(size - len(pieces))]
        if not before_reserved:
            self.syl_base = len(pieces)
            pieces += ["=" + w for w in wholes]
        self.pieces = tuple(pieces)
        self.byte_ids = tuple(range(N_BYTES))
        self.sym_ids = {s: self.sym_base + i for i, s in enumerate(syms)}
        self.whole_ids = {w: self.syl_base + i for i, w in enumerate(wholes)}
        self.syl_ids = {w: i for w, i in self.whole_ids.items() if " " not in w}
        self.tables = self._tables(extra_own, wholes)
        self._cache: dict[str, Chunk] = {}

    # ------------------------------------------------------------------ the file section
    def _syllables_expected(self, match: re.Match[str]) -> int:
        """How many whole syllables the kind's name asks for (the N of symato+N)."""
        return int(match.group(1)) if match.groups() and match.group(1) else 0

    def _extra_pieces(self, data: dict[str, Any], match: re.Match[str], base: int
                      ) -> list[tuple[str, bytes]]:
        """Ids a subclass adds after the syms, from ``base``: (piece name, own bytes)."""
        return []

    def _wholes(self, data: dict[str, Any], match: re.Match[str], base: int
                ) -> tuple[list[str], bool]:
        """The lower-case text of each whole id (a syllable, or a word of several
        separated by one space) and whether they come right after ``base`` (else after
        the reserved ids, at the end: symato+N's layout)."""
        return list(self.syllables), False

    def _check_syms(self, syms: list[Any]) -> None:
        legal = set(S.all_syms())
        for i, sym in enumerate(syms):
            if not isinstance(sym, str) or sym not in legal:
                raise bad(self.where, f"'syms'[{i}] = {sym!r} is not a sym of the grammar")
        if len(set(syms)) != len(syms):
            raise bad(self.where, "'syms' has duplicates")
        missing = len(legal) - len(syms)
        if missing:
            raise bad(self.where, f"'syms' lacks {missing} legal syms (all must be present)")

    def _check_syllables(self, syllables: list[Any], expected: int) -> None:
        legal = set(S.all_syllables(self.tone_style))
        for i, syl in enumerate(syllables):
            if not isinstance(syl, str) or syl not in legal:
                raise bad(self.where, f"'syllables'[{i}] = {syl!r} is not a canonical syllable")
        if len(set(syllables)) != len(syllables):
            raise bad(self.where, "'syllables' has duplicates")
        if expected != len(syllables):
            if not expected:
                raise bad(self.where, "this kind must not list 'syllables'")
            raise bad(self.where, f"the kind needs {expected} syllables, has {len(syllables)}")

    # ------------------------------------------------------------------ decode tables
    def _tables(self, extra_own: list[tuple[str, bytes]], wholes: list[str]) -> DecodeTables:
        """Per id its class, argument and own bytes; per sym its 19 x 3 forms; per whole
        syllable its 3 forms (``DecodeTables``)."""
        v = len(self.pieces)
        cls, arg = bytearray(v), [0] * v
        own = [bytes([b]) for b in range(N_BYTES)] + [utf8(p) for p in self.pieces[N_BYTES:]]
        extra_base = self.sym_base + len(self.syms)
        for k, (_, data) in enumerate(extra_own):
            own[extra_base + k] = data  # a merge's piece name is not its bytes

        def mark(t: int, k: int, a: int) -> None:
            cls[t], arg[t], own[t] = k, a, b""

        for m in range(S.MARKTONES):
            mark(MT_BASE + m, MT, m)
        mark(TITLE_ID, CASE, 1)
        mark(UPPER_ID, CASE, 2)
        composed = self._composed = S.composed_table(self.tone_style)
        sym_forms = []
        for i, sym in enumerate(self.syms):
            mark(self.sym_base + i, SYM, i)
            bare = [utf8(S.apply_case(sym, c)) for c in S.CASES]
            forms: list[bytes] = []
            for m in range(S.MARKTONES + 1):
                form = composed.get((sym, m)) if m != BARE else None
                forms += [utf8(S.apply_case(form, c)) for c in S.CASES] if form else bare
            sym_forms.append(tuple(forms))
        for w in range(len(wholes)):
            mark(self.syl_base + w, WHOLE, w)
        whole_forms = tuple(tuple(utf8(" ".join(S.apply_case(x, c) for x in w.split(" ")))
                                  for c in S.CASES) for w in wholes)
        return DecodeTables(bytes(cls), tuple(arg), tuple(own), tuple(sym_forms), whole_forms)

    # ------------------------------------------------------------------ queries
    def sym_id(self, sym: str) -> int | None:
        return self.sym_ids.get(sym)

    def sym_of(self, token_id: int) -> str | None:
        if self.sym_base <= token_id < self.sym_base + len(self.syms):
            return self.syms[token_id - self.sym_base]
        return None

    def whole_id(self, sym_id: int, marktone: int) -> int | None:
        sym = self.sym_of(sym_id)
        form = self._composed.get((sym, marktone)) if sym else None
        return self.syl_ids.get(form) if form else None

    # ------------------------------------------------------------------ encoding
    def encode(self, text: str) -> list[int]:
        cache = self._cache
        if len(cache) > CACHE_LIMIT:
            cache.clear()
        chunk = self.encode_chunk
        parts = text.split(" ")
        first = parts[0]
        e = cache.get(first) or chunk(first)
        out = list(e[0])
        ext, app = out.extend, out.append
        prev = e[2]
        for w in parts[1:]:
            e = cache.get(w) or chunk(w)
            if not (prev and e[1]):
                app(SPACE)
            ext(e[0])
            prev = e[2]
        return out

    def encode_chunk(self, chunk: str) -> Chunk:
        """Tokens of a space-free chunk, whether it starts / ends with a syllable (cached)."""
        got = self._cache.get(chunk)
        if got is not None:
            return got
        toks: list[int] = []
        pos, starts, ends = 0, False, False
        for m in S.LETTER_RUN.finditer(chunk):
            start, end = m.span()
            if start > pos:
                toks += utf8(chunk[pos:start])
            run = self.encode_syllable(m.group())
            toks += run if run is not None else utf8(m.group())
            if start == 0:
                starts = run is not None
            ends = run is not None and end == len(chunk)
            pos = end
        if pos < len(chunk):
            toks += utf8(chunk[pos:])
        entry = (tuple(toks), starts, ends)
        if len(chunk) <= CACHE_CHUNK:  # long chunks (URLs, base64, ...) rarely repeat
            self._cache[chunk] = entry
        return entry

    def encode_syllable(self, word: str) -> list[int] | None:
        """``[case] sym marktone`` / ``[case] syllable`` for a canonical syllable, else None."""
        found = S.canonical(word, self.tone_style)
        if found is None:
            return None
        syl, lower = found
        toks = [] if syl.case == "lower" else [TITLE_ID if syl.case == "title" else UPPER_ID]
        whole = self.syl_ids.get(lower)
        if whole is not None:
            toks.append(whole)
        else:
            toks += (self.sym_ids[syl.sym], MT_BASE + syl.marktone)
        return toks

    def chunk_parts(self, chunk: str) -> tuple[bytes, list[int | bytes], bytes, bool]:
        """A space-free chunk as (bytes before its first syllable, the syllable tokens
        and the byte runs between them in order, bytes after its last syllable, whether
        it has a syllable): the split symato-bpe merges by."""
        toks = self.encode_chunk(chunk)[0]
        syl = [i for i, t in enumerate(toks) if t >= N_BYTES]  # case, sym, marktone, whole
        if not syl:
            return bytes(toks), [], b"", False
        items: list[int | bytes] = [toks[syl[0]]]
        for prev, i in pairwise(syl):
            if i > prev + 1:
                items.append(bytes(toks[prev + 1 : i]))
            items.append(toks[i])
        return bytes(toks[: syl[0]]), items, bytes(toks[syl[-1] + 1 :]), True

    def runs_and_tokens(self, text: str, parts, run) -> list[int]:
        """Walk the chunks of ``text`` joining the byte runs that span chunks (the space
        between two chunks is implicit only between two syllables); ``run`` turns each
        complete run into ids. Shared by symato-bpe's encoding and ``non_syllable_runs``."""
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

    def non_syllable_runs(self, text: str) -> list[bytes]:
        """The maximal non-syllable runs of ``text`` (in no particular order), spaces
        included: the bytes plain symato writes as byte tokens, cut where a syllable
        stands (what symato-bpe merges, and learns its merges from)."""
        runs: list[bytes] = []

        def parts(w: str) -> tuple[bytes, tuple[int, ...], bytes, bool]:
            head, items, tail, has_syl = self.chunk_parts(w)
            runs.extend(x for x in items if isinstance(x, bytes))
            return head, (), tail, has_syl

        def run(data: bytes) -> tuple[int, ...]:
            runs.append(data)
            return ()

        self.runs_and_tokens(text, parts, run)
        return runs
