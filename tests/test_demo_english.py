"""The English source corpus: the one table of demo sources with its ``language`` field,
``symato demo --language en``, and cleaning with ``--language en|vi|any``.

The cleaning tests run the real commands (read, filter, dedup, write, report) on
tests/data/source_en.txt, a small English text written for these tests with two
Vietnamese paragraphs, one Russian and one too short among it.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from symato.data import clean, corpus, demo
from symato.errors import SymatoError

REPO = Path(__file__).resolve().parents[1]
SNAKEMAKE = REPO / ".venv" / "bin" / "snakemake"
SAMPLE = REPO / "tests" / "data" / "source_en.txt"
ENGLISH = {
    "libreoffice-help-en-us",
    "manpages",
    "coreutils",
    "diffutils",
    "maint-guide",
    "debian-handbook",
    "firefox-esr-l10n-en-gb",
}


# ---------------------------------------------------------------------------------------
# The source table


def test_one_table_every_source_tagged_with_its_language() -> None:
    pins = demo.load_pins()
    for registry in ("pypi", "debian"):
        for pin in pins[registry]:
            assert pin["language"] in demo.LANGUAGES, pin
            assert re.fullmatch(r"[0-9a-f]{64}", pin["sha256"])
            assert pin["license"] and pin["version"] and pin["content"]
    en = demo.pins_for(pins, "en")
    assert en["pypi"] == []
    assert {p["package"] for p in en["debian"]} == ENGLISH
    vi = demo.pins_for(pins, "vi")
    assert [p["name"] for p in vi["pypi"]] == ["underthesea"]
    assert len(vi["debian"]) == 5 and all(p["language"] == "vi" for p in vi["debian"])
    # The handbook is one .deb for both languages: same pin, different folder.
    books = [p for p in pins["debian"] if p["package"] == "debian-handbook"]
    assert sorted(p["language"] for p in books) == ["en", "vi"]
    assert len({(p["version"], p["sha256"]) for p in books}) == 1
    assert books[0]["include"] != books[1]["include"]


def test_pins_for_rejects_untagged_sources_and_unknown_languages() -> None:
    pins = demo.load_pins()
    with pytest.raises(SymatoError, match="demo language 'fr'"):
        demo.pins_for(pins, "fr")
    bad = dict(pins, debian=[*pins["debian"], dict(pins["debian"][0], language=None)])
    bad["debian"][-1].pop("language")
    with pytest.raises(SymatoError, match=r"debian\[12\] \(libreoffice-help-vi\): 'language'"):
        demo.pins_for(bad, "vi")
    book = next(p for p in pins["debian"] if p["package"] == "debian-handbook")
    twice = dict(pins, debian=[*pins["debian"], dict(book, version="12.0")])
    with pytest.raises(SymatoError, match="debian-handbook is pinned twice with different"):
        demo.pins_for(twice, "en")


def test_deb_name_and_spec_name_the_architecture() -> None:
    pins = {p["package"]: p for p in demo.pins_for(demo.load_pins(), "en")["debian"]}
    assert demo._deb_name(pins["coreutils"]) == "coreutils_9.1-1_amd64.deb"
    assert demo._deb_spec(pins["coreutils"]) == "coreutils:amd64=9.1-1"
    assert demo._deb_name(pins["diffutils"]) == "diffutils_3.8-4_amd64.deb"  # epoch dropped
    assert demo._deb_spec(pins["maint-guide"]) == "maint-guide=1.2.53"
    assert demo._deb_name(pins["maint-guide"]) == "maint-guide_1.2.53_all.deb"


def test_english_corpus_without_apt_is_an_error_naming_each_source(tmp_path: Path) -> None:
    """English has no PyPI part: without apt there is nothing, and the error says why."""
    argv = ["--language", "en", "--no-apt", "--cache", str(tmp_path / "c"),
            "--out", str(tmp_path / "en.jsonl"), "--manifest", str(tmp_path / "m.json")]
    with pytest.raises(SymatoError, match=r"the en demo corpus is empty \(libreoffice-help-en"):
        demo.main(argv)
    assert not (tmp_path / "en.jsonl").exists()


@pytest.mark.slow
def test_build_english_demo_from_debian(tmp_path: Path) -> None:
    """Downloads the pinned English packages (about 7 MB; skipped without apt-get), then
    checks the corpus and what each language filter makes of it."""
    if not (shutil.which("apt-get") and shutil.which("dpkg-deb")):
        pytest.skip("apt-get/dpkg-deb not available: the English corpus needs Debian packages")
    cache, out, manifest = tmp_path / "cache", tmp_path / "en.jsonl", tmp_path / "m.json"
    argv = ["--language", "en", "--cache", str(cache), "--out", str(out),
            "--manifest", str(manifest)]
    assert demo.main(argv) == 0
    info = json.loads(manifest.read_text())
    assert info["language"] == "en"
    assert {e["name"] for e in info["sources"]} == ENGLISH
    used = [e for e in info["sources"] if e["status"] == "used"]
    assert len(used) >= 5 and all(e["language"] == "en" for e in used)
    assert all((cache / "licenses" / f"{e['name']}.copyright").exists() for e in used)
    assert info["output"]["bytes"] > 5_000_000  # the Vietnamese demo's size class
    docs = [json.loads(line) for line in out.read_text(encoding="utf-8").splitlines()]
    assert len(docs) == info["output"]["documents"]
    assert any("New Maintainers" in d["text"] for d in docs)
    # Cleaning as English keeps nearly everything; cleaning as Vietnamese keeps little.
    work = tmp_path / "w"
    en = _clean(work / "en", {"demo_en": [out]}, "en", fmt="demo", shards=1)["total"]
    vi = _clean(work / "vi", {"demo_en": [out]}, "vi", fmt="demo", shards=1)["total"]
    # (duplicates aside: the help repeats its navigation and boilerplate on every page)
    assert en["kept"]["bytes"] + en["dropped"]["duplicate"]["bytes"] > 0.95 * en["seen"]["bytes"]
    assert en["dropped"]["not_english"]["bytes"] < 0.02 * en["seen"]["bytes"]
    assert vi["kept"]["bytes"] < 0.1 * vi["seen"]["bytes"]


# ---------------------------------------------------------------------------------------
# Cleaning with a language


def test_english_share() -> None:
    assert clean.english_share("The quick brown fox jumps over the lazy dog.") == 1.0
    assert clean.english_share("Hà Nội là thủ đô của Việt Nam") == pytest.approx(1 / 8)
    assert clean.english_share("Москва — столица России.") == 0.0
    assert clean.english_share("12345 !!! --") == 0.0
    assert clean.english_share("a naïve café owner") == 0.5


def test_verdict_reason_follows_the_language() -> None:
    vi, en = "Hôm nay trời đẹp quá, chúng tôi đi chơi.", "The quick brown fox jumps over it."
    for text, lang, want in [
        (en, "vi", "not_vietnamese"),
        (vi, "vi", ""),
        (en, "en", ""),
        (vi, "en", "not_english"),
        (vi, "any", ""),
        (en, "any", ""),
    ]:
        share = clean.language_share(text, clean.vietnamese_share(text), lang)
        assert clean.paragraph_verdict(text, share, 10, 1000, 0.5, lang) == want, (text, lang)
    assert clean.paragraph_verdict("short", 1.0, 10, 1000, 0.5, "en") == "too_short"
    with pytest.raises(SymatoError, match="clean language 'fr'"):
        clean.language_share(en, 0.0, "fr")


def _clean(work: Path, sources: dict[str, list[Path]], language: str, fmt: str = "text",
           shards: int = 2) -> dict:
    """Read, filter (as ``language``), dedup, write and report through the commands."""
    reports = []
    for name, files in sources.items():
        report = work / "raw" / name / "read.json"
        argv = ["--source", name, "--format", fmt, "--shards", str(shards),
                "--out-dir", str(work / "raw" / name), "--report", str(report)]
        assert corpus.main(argv + [str(f) for f in files]) == 0
        reports.append(report)
    ids = [f"{k:04d}" for k in range(shards)]
    for k in ids:
        raws = [str(work / "raw" / name / f"{k}.parquet") for name in sources]
        out, rep = work / "work" / f"{k}.parquet", work / "work" / f"{k}.filter.json"
        argv = ["filter", "--language", language, "--out", str(out), "--report", str(rep)]
        assert clean.main(argv + raws) == 0
        reports.append(rep)
    dups = work / "work" / "dups.parquet"
    assert clean.main(["dedup", "--out", str(dups), *[str(work / "work" / f"{k}.parquet")
                                                      for k in ids]]) == 0
    for k in ids:
        rep = work / "work" / f"{k}.write.json"
        argv = ["write", "--work", str(work / "work" / f"{k}.parquet"), "--duplicates",
                str(dups), "--train", str(work / "clean" / "train" / f"{k}.parquet"), "--val",
                str(work / "clean" / "val" / f"{k}.parquet"), "--val-fraction", "0.2",
                "--report", str(rep)]
        assert clean.main(argv) == 0
        reports.append(rep)
    settings = ["--setting", f"language={language}"]
    assert clean.report_main(["--out", str(work / "report.json"), *settings,
                              *map(str, reports)]) == 0
    return json.loads((work / "report.json").read_text())


def _paragraphs(report: dict, reason: str) -> int:
    return report["total"]["dropped"].get(reason, {}).get("paragraphs", 0)


@pytest.mark.parametrize(
    ("language", "kept", "drops"),
    [
        ("en", 8, {"not_english": 3, "too_short": 1}),
        ("vi", 2, {"not_vietnamese": 9, "too_short": 1}),
        ("any", 11, {"too_short": 1}),
    ],
)
def test_cleaning_keeps_the_corpus_language(
    tmp_path: Path, language: str, kept: int, drops: dict[str, int]
) -> None:
    """The same 12 paragraphs through the real cleaning, with per-reason accounting."""
    report = _clean(tmp_path, {"en_sample": [SAMPLE]}, language)
    total = report["total"]
    assert report["balanced"] is True and report["settings"] == {"language": language}
    assert total["seen"]["paragraphs"] == 12
    assert total["kept"]["paragraphs"] == kept
    assert {r: c["paragraphs"] for r, c in total["dropped"].items()} == drops
    for unit in ("documents", "paragraphs", "bytes"):
        dropped = sum(c[unit] for c in total["dropped"].values())
        assert total["kept"][unit] + dropped == total["seen"][unit]
    if language == "en":
        assert _paragraphs(report, "not_vietnamese") == 0


def test_clean_filter_rejects_a_bad_english_share(tmp_path: Path) -> None:
    argv = ["filter", "--language", "en", "--min-english-share", "1.5",
            "--out", str(tmp_path / "w.parquet"), "--report", str(tmp_path / "r.json"),
            str(tmp_path / "missing.parquet")]
    with pytest.raises(SymatoError, match="--min-english-share must be between 0 and 1"):
        clean.main(argv)


# ---------------------------------------------------------------------------------------
# The setting through the workflow (corpus + cleaning rules only)


def _snakemake(workdir: Path, *args: str) -> subprocess.CompletedProcess:
    cmd = [str(SNAKEMAKE), "-s", str(REPO / "Snakefile"), "--directory", str(workdir),
           "--configfile", str(workdir / "config.yaml"), *args]
    env = {**os.environ, "PYTHONDONTWRITEBYTECODE": "1"}
    return subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=600)


@pytest.mark.slow
@pytest.mark.skipif(not SNAKEMAKE.exists(), reason="needs the project's .venv snakemake")
def test_snakemake_cleans_an_english_corpus_with_clean_language_en(tmp_path: Path) -> None:
    """The sample cleaned as Vietnamese (the default) keeps its two Vietnamese paragraphs;
    ``clean.language: en`` reruns cleaning and keeps the English ones; an unknown
    language fails before any job."""
    folder = tmp_path / "in"
    folder.mkdir()
    paragraphs = SAMPLE.read_text(encoding="utf-8").split("\n\n")
    for i, para in enumerate(paragraphs):  # one document per paragraph
        (folder / f"p{i:02d}.txt").write_text(para, encoding="utf-8")
    corpus_cfg = ("corpus:\n  shards: 2\n  sources:\n"
                  '    - {name: en, format: text, paths: ["in/*.txt"]}\n')
    config = tmp_path / "config.yaml"
    config.write_text(corpus_cfg + "clean:\n  language: fr\n")
    proc = _snakemake(tmp_path, "--cores", "1", "results/clean/report.json")
    assert proc.returncode != 0 and "clean.language: 'fr' is not one of" in proc.stderr
    assert not (tmp_path / "results").exists()
    config.write_text(corpus_cfg + "clean:\n  val_fraction: 0.5\n")
    proc = _snakemake(tmp_path, "--cores", "2", "results/clean/report.json")
    assert proc.returncode == 0, proc.stderr[-3000:]
    report = json.loads((tmp_path / "results/clean/report.json").read_text())
    assert report["settings"]["language"] == "vi"  # the default, recorded
    assert report["total"]["kept"]["paragraphs"] == 2  # the two Vietnamese ones
    assert report["total"]["dropped"]["not_vietnamese"]["paragraphs"] == 9
    config.write_text(corpus_cfg + "clean:\n  val_fraction: 0.5\n  language: en\n")
    proc = _snakemake(tmp_path, "--cores", "2", "results/clean/report.json")
    assert proc.returncode == 0, proc.stderr[-3000:]
    report = json.loads((tmp_path / "results/clean/report.json").read_text())
    assert report["settings"]["language"] == "en"
    total = report["total"]
    assert total["kept"]["paragraphs"] == 8
    assert {r: c["paragraphs"] for r, c in total["dropped"].items()} == {
        "not_english": 3,
        "too_short": 1,
    }
