"""The written Vietnamese syllable: grammar, parsing, composition and tone placement.

Why a closed inventory: the symato tokenizer must decide, for every letter run, whether
it is a Vietnamese syllable it can split into **sym** (letters without vowel marks and
tone) + **marktone** (mark x tone, 18 values) and put back together *exactly*. A grammar
that enumerates every legal onset + rime once gives that decision as a dictionary lookup
(fast) and makes ``compose`` the exact inverse of ``parse`` (lossless).

Conventions:
- ``mark``: 0 none, 1 circumflex (â ê ô), 2 breve or horn (ă ơ ư).
- ``tone``: 0 ngang, 1 sắc, 2 huyền, 3 hỏi, 4 ngã, 5 nặng; ``marktone = mark * 6 + tone``.
- ``sym``: lower-case letters with marks and tone removed; ``đ`` stays the letter ``đ``.
- Tone placement "new" (hoà, thuỷ, khoẻ) or "old" (hòa, thủy, khỏe); they differ only
  for the open rimes oa, oe, uy.
"""

from __future__ import annotations

import functools
import re
import unicodedata
from collections.abc import Iterator
from dataclasses import dataclass

__all__ = [
    "MARKTONES",
    "Syllable",
    "all_syllables",
    "all_syms",
    "apply_case",
    "case_of",
    "compose",
    "is_canonical_syllable",
    "legal_marktones",
    "letter_runs",
    "normalize_tone_placement",
    "parse",
    "put_tone",
    "strip_marks",
]

MARKTONES = 18
STYLES = ("new", "old")
CASES = ("lower", "title", "upper")

# Combining characters, in tone order 1..5 (sắc, huyền, hỏi, ngã, nặng) and mark order 1..2.
_TONE_MARKS = ("\u0301", "\u0300", "\u0309", "\u0303", "\u0323")
_VOWEL_MARK = {"â": 1, "ê": 1, "ô": 1, "ă": 2, "ơ": 2, "ư": 2}
_UNMARK = {"â": "a", "ă": "a", "ê": "e", "ô": "o", "ơ": "o", "ư": "u"}
_MARKED = {("a", 1): "â", ("a", 2): "ă", ("e", 1): "ê", ("o", 1): "ô", ("o", 2): "ơ",
           ("u", 2): "ư"}
_VOWELS = frozenset("aăâeêioôơuưy")
_STOP_CODAS = ("c", "ch", "p", "t")


def _words(text: str) -> list[str]:
    return text.split()


# ---------------------------------------------------------------------------------------
# The grammar. Rimes are written forms (with vowel marks, without tone).

_PLAIN_RIMES = _words("""
a ac ach ai am an ang anh ao ap at au ay
ăc ăm ăn ăng ăp ăt
âc âm ân âng âp ât âu ây
e ec em en eng eo ep et
ê êch êm ên ênh êp êt êu
i ia ich im in inh ip it iu iêc iêm iên iêng iêp iêt iêu
o oc oi om on ong op ot ooc oong
ô ôc ôi ôm ôn ông ôp ôt
ơ ơi ơm ơn ơp ơt
u ua uc ui um un ung up ut uôc uôi uôm uôn uông uôt
ư ưa ưc ưi ưm ưn ưng ưt ưu ươc ươi ươm ươn ương ươp ươt ươu
""")
# Rimes with the medial /w/ (written o before a ă e, u elsewhere).
_MEDIAL_RIMES = _words("""
oa oac oach oai oam oan oang oanh oap oat oao oay oăc oăm oăn oăng oăt
oe oem oen oeo oet uân uâng uât uây uê uêch uên uênh uêt
uy uych uynh uyt uyu uya uyên uyêt uơ
""")
# Without an onset, iê is written yê; "y" alone is a syllable (ý, ỷ).
_BARE_Y_RIMES = ("y", "yêm", "yên", "yêng", "yêt", "yêu")
# Syllables outside the regular onset x rime pattern that the word lists agree on (at
# least two of the five sources of scripts/dictionary_check.py; docs/tokenizer.md):
# labial onsets with the medial in loans that became Vietnamese words (buýt, boa, phuy,
# voan, moay), gi with the medial (gioăng), and rimes that occur with only a few
# onsets (tuýp, tuyn, xoẻng, and the reduplicatives quắp, quạu quọ, quều quào, quềnh
# quoàng, quay quoắt, quờn quới, quấc). For qu the rime is written without the u of qu.
_ATTESTED: dict[str, tuple[str, ...]] = {
    "b": ("oa", "uyt"),
    "gi": ("oăng",),
    "kh": ("uyp",),
    "l": ("uyn",),
    "m": ("oay",),
    "ph": ("uy",),
    "qu": ("ăp", "âc", "au", "êu", "o", "oang", "oăt", "ơi", "ơn", "yp"),
    "t": ("uyn", "uyp"),
    "v": ("oan",),
    "x": ("oeng",),
}
_Y_ONSETS = frozenset(("h", "k", "l", "m", "n", "s", "t", "th", "v"))
_MEDIAL_ONSETS = frozenset(("h", "kh", "ng", "l", "t", "th", "tr", "ch", "d", "đ", "g", "x",
                            "s", "n", "nh", "r"))
_FRONT_ONSETS = frozenset(("k", "gh", "ngh"))  # only before i, e, ê (and y for k)
_BACK_ONSETS = frozenset(("c", "g", "ng"))  # never before i, e, ê, y
_OTHER_ONSETS = ("b", "ch", "d", "đ", "h", "kh", "l", "m", "n", "nh", "p", "ph", "r", "s", "t",
                 "th", "tr", "v", "x")
ONSETS = ("", *sorted({*_OTHER_ONSETS, *_FRONT_ONSETS, *_BACK_ONSETS, "gi", "qu"}))


def _onset_rimes(onset: str) -> list[str]:
    """Written rimes that may follow ``onset``: the regular ones, then the attested extras."""
    return _regular_rimes(onset) + list(_ATTESTED.get(onset, ()))


def _regular_rimes(onset: str) -> list[str]:
    """Written rimes that may follow ``onset`` under the spelling rules (k/gh/ngh, gi, qu)."""
    if onset == "":
        plain = [r for r in _PLAIN_RIMES if not r.startswith("iê")]
        return plain + list(_BARE_Y_RIMES) + _MEDIAL_RIMES
    if onset == "qu":  # the u is the medial: qua = qu + a, quyên = qu + yên
        return [r[1:] for r in _MEDIAL_RIMES] + ["i", "it", "ôc"]
    if onset == "gi":  # gi + in is written gin, gi + iêng giêng (see _inventory)
        # gi + iu and gi + u are both written giu; the dictionaries write giũ, giú (the
        # tone on the u), so giu is gi + u and gi + iu is left out
        return [r for r in _PLAIN_RIMES if r not in ("ia", "iu")]
    if onset in _FRONT_ONSETS:
        rimes = [r for r in _PLAIN_RIMES if r[0] in "ieê"]
        return rimes + (["y"] if onset == "k" else [])
    rimes = list(_PLAIN_RIMES)
    if onset in _BACK_ONSETS:
        rimes = [r for r in rimes if r[0] not in "ieê"]
    if onset in _MEDIAL_ONSETS:
        rimes += _MEDIAL_RIMES
    if onset in _Y_ONSETS:
        rimes.append("y")
    return rimes


def _tone_index(rime: str, style: str) -> int:
    """Index in ``rime`` of the vowel that carries the tone mark.

    Marked vowels win (the last one: ươ -> ơ); with a coda the last vowel; open rimes
    put it on the first vowel of a falling diphthong, the middle of a triphthong, and on
    the second (new style) or first (old style) vowel of oa, oe, uy.
    """
    vowels = [i for i, ch in enumerate(rime) if ch in _VOWELS]
    marked = [i for i in vowels if rime[i] in _VOWEL_MARK]
    if marked:
        return marked[-1]
    if rime[-1] not in _VOWELS:
        return vowels[-1]
    if len(vowels) == 1:
        return vowels[0]
    if len(vowels) == 3:
        return vowels[1]
    if rime in ("oa", "oe", "uy"):
        return vowels[1] if style == "new" else vowels[0]
    return vowels[0]


def put_tone(text: str, index: int, tone: int) -> str:
    """``text`` with tone ``tone`` (0 = none) on the letter at ``index`` (NFC)."""
    if tone == 0:
        return text
    toned = unicodedata.normalize("NFC", text[index] + _TONE_MARKS[tone - 1])
    return text[:index] + toned + text[index + 1:]


def _sym_of(written: str) -> str:
    return "".join(_UNMARK.get(ch, ch) for ch in written)


def _mark_of(written: str) -> int:
    marks = {_VOWEL_MARK[ch] for ch in written if ch in _VOWEL_MARK}
    if len(marks) > 1:
        raise AssertionError(f"grammar bug: {written!r} mixes marks")
    return marks.pop() if marks else 0


@dataclass(frozen=True)
class _Entry:
    """One lower-case toned syllable of the inventory."""

    sym: str
    mark: int
    tone: int
    onset: str
    rime: str  # written rime with marks and tone as it appears in the syllable


@functools.lru_cache(maxsize=1)
def _inventory() -> tuple[dict[str, _Entry], dict[tuple[str, int, str], str]]:
    """Build (lower-case written form in either style -> entry, (sym, mt, style) -> form)."""
    forms: dict[str, _Entry] = {}
    composed: dict[tuple[str, int, str], str] = {}
    for onset in ONSETS:
        for rime in _onset_rimes(onset):
            # gi + a rime starting with i shares that i: gi + in = gin (gìn)
            offset = 1 if onset == "gi" and rime.startswith("i") else len(onset)
            written = onset[:offset] + rime
            sym, mark = _sym_of(written), _mark_of(written)
            stop = rime.endswith(_STOP_CODAS)
            for tone in (1, 5) if stop else range(6):
                for style in STYLES:
                    form = put_tone(written, offset + _tone_index(rime, style), tone)
                    key = (sym, mark * 6 + tone, style)
                    if key in composed:  # gi + iên and gi + ên are both written giên
                        continue
                    composed[key] = form
                    forms.setdefault(form, _Entry(sym, mark, tone, onset, form[offset:]))
    return forms, composed


# ---------------------------------------------------------------------------------------
# Public API


@dataclass(frozen=True)
class Syllable:
    """A parsed syllable; ``text`` is the word as given, the rest describes it."""

    text: str
    case: str
    sym: str
    mark: int
    tone: int
    onset: str
    rime: str

    @property
    def marktone(self) -> int:
        """Index 0..17 of (mark, tone): the token a model predicts after the sym."""
        return self.mark * 6 + self.tone


def case_of(word: str, lower: str) -> str | None:
    """How ``word`` is cased relative to its lower-case form: lower, title, upper or None."""
    if word == lower:
        return "lower"
    if word == lower[:1].upper() + lower[1:]:
        return "title"  # a one-letter word in capitals counts as Title
    if word == lower.upper():
        return "upper"
    return None


def parse(word: str) -> Syllable | None:
    """Parse one word; None unless it is a legal Vietnamese syllable.

    Accepts NFC or NFD and either tone-placement style; the case must be lower, Title or
    UPPER (mixed case like "MóNg" is rejected, as are loans like "Krông").
    """
    nfc = unicodedata.normalize("NFC", word)
    lower = nfc.lower()
    entry = _inventory()[0].get(lower)
    if entry is None:
        return None
    case = case_of(nfc, lower)
    if case is None:
        return None
    return Syllable(word, case, entry.sym, entry.mark, entry.tone, entry.onset, entry.rime)


def apply_case(lower: str, case: str) -> str:
    """A lower-case word written in ``case`` (lower, title or upper)."""
    if case == "lower":
        return lower
    if case == "title":
        return lower[:1].upper() + lower[1:]
    if case == "upper":
        return lower.upper()
    raise ValueError(f"unknown case {case!r} (expected one of {CASES})")



def canonical(word: str, style: str) -> tuple[Syllable, str] | None:
    """``(parsed, lowercase form)`` of a word written exactly as its canonical syllable
    in tone placement ``style`` (so encoding it as sym + marktone + case loses nothing),
    else None: the test every syllable encoder applies before choosing its ids."""
    syl = parse(word)
    if syl is None or syl.text != word:
        return None
    lower = compose(syl.sym, syl.mark, syl.tone, "lower", style)
    if apply_case(lower, syl.case) != word:
        return None
    return syl, lower


def compose(sym: str, mark: int, tone: int, case: str = "lower", style: str = "new") -> str:
    """The written syllable for (sym, mark, tone) in ``case`` and tone ``style``.

    Raises ValueError for a combination that is not a legal syllable.
    """
    if style not in STYLES:
        raise ValueError(f"unknown tone style {style!r} (expected 'new' or 'old')")
    if not (0 <= mark <= 2 and 0 <= tone <= 5):
        raise ValueError(f"mark {mark} / tone {tone} out of range")
    form = _inventory()[1].get((sym, mark * 6 + tone, style))
    if form is None:
        raise ValueError(f"{sym!r} with mark {mark} and tone {tone} is not a syllable")
    return apply_case(form, case)


def composed_table(style: str = "new") -> dict[tuple[str, int], str]:
    """(sym, marktone) -> lower-case syllable, for fast decoding."""
    if style not in STYLES:
        raise ValueError(f"unknown tone style {style!r} (expected 'new' or 'old')")
    return {(s, mt): f for (s, mt, st), f in _inventory()[1].items() if st == style}


@functools.lru_cache(maxsize=2)
def _all_syllables(style: str) -> tuple[str, ...]:
    return tuple(sorted(composed_table(style).values()))


def all_syllables(style: str = "new") -> list[str]:
    """Every legal lower-case toned syllable, canonical in ``style`` (default "new")."""
    return list(_all_syllables(style))


@functools.lru_cache(maxsize=1)
def _syms() -> tuple[str, ...]:
    return tuple(sorted({sym for sym, _, _ in _inventory()[1]}))


def all_syms() -> list[str]:
    """Every sym of the inventory, sorted."""
    return list(_syms())


@functools.lru_cache(maxsize=1)
def _legal() -> dict[str, tuple[int, ...]]:
    table: dict[str, set[int]] = {}
    for sym, mt, _ in _inventory()[1]:
        table.setdefault(sym, set()).add(mt)
    return {sym: tuple(sorted(mts)) for sym, mts in table.items()}


def legal_marktones(sym: str) -> tuple[int, ...]:
    """Marktones 0..17 that make a legal syllable with ``sym`` (empty if not a sym)."""
    return _legal().get(sym, ())


def is_canonical_syllable(word: str, style: str = "new") -> bool:
    """True if ``word`` is a syllable written exactly canonically (NFC, ``style``, case)."""
    syl = parse(word)
    if syl is None:
        return False
    return compose(syl.sym, syl.mark, syl.tone, syl.case, style) == word


# ---------------------------------------------------------------------------------------
# Letter runs: the one definition of a "word".


def _letter_class() -> str:
    """A regex class of every letter (L*) and combining mark (M*) code point."""
    ranges: list[list[int]] = []
    scan = [*range(0x32400), *range(0xE0000, 0xE1000)]  # planes 4-13 hold no letters
    for cp in scan:
        if unicodedata.category(chr(cp))[0] in "LM":
            if ranges and ranges[-1][1] == cp - 1:
                ranges[-1][1] = cp
            else:
                ranges.append([cp, cp])
    return "".join(
        re.escape(chr(a)) if a == b else f"{re.escape(chr(a))}-{re.escape(chr(b))}"
        for a, b in ranges
    )


LETTERS = _letter_class()
LETTER_RUN = re.compile(f"[{LETTERS}]+")


# Letters as Python's regex engine sees them: L* plus the numeric Nl/No characters.
_FAST_RUN = re.compile(r"[^\W\d_]+")


@functools.cache
def _breaks_fast_path(char: str) -> bool:
    """True for characters where ``_FAST_RUN`` and ``LETTER_RUN`` disagree (M*, Nl, No)."""
    cat = unicodedata.category(char)
    return cat[0] == "M" or cat in ("Nl", "No")


def letter_runs(text: str) -> Iterator[tuple[int, int]]:
    r"""Spans (start, end) of maximal runs of letters and combining marks in ``text``.

    Why two patterns: ``LETTER_RUN`` scans a ~700-range character class per character,
    which made syllable counting the slowest part of tokenizing. ``[^\W\d_]`` matches
    the same characters except combining marks (M*) and numeric Nl/No characters, so a
    text whose distinct characters include none of those takes it (2-3x faster); any
    other text takes the reference class. Tests check the two agree on random strings.
    """
    pattern = LETTER_RUN if any(map(_breaks_fast_path, set(text))) else _FAST_RUN
    for m in pattern.finditer(text):
        yield m.span()


def _map_syllables(text: str, fn) -> str:
    def repl(m: re.Match[str]) -> str:
        syl = parse(m.group())
        return m.group() if syl is None else fn(syl)

    return LETTER_RUN.sub(repl, text)


def normalize_tone_placement(text: str, style: str) -> str:
    """Rewrite every Vietnamese syllable of ``text`` in tone ``style`` ("new" or "old").

    Syllables come out NFC; every other run of text is left exactly as it was.
    """
    if style not in STYLES:
        raise ValueError(f"unknown tone style {style!r} (expected 'new' or 'old')")
    return _map_syllables(text, lambda s: compose(s.sym, s.mark, s.tone, s.case, style))


def strip_marks(text: str) -> str:
    """Remove vowel marks and tones from Vietnamese syllables (đ kept); other text as is."""
    return _map_syllables(text, lambda s: apply_case(s.sym, s.case))
