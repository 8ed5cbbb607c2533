"""Cleaning (symato.data.clean): normalization, filters, global dedup, report, determinism,
and a real Snakemake run of the corpus/cleaning rules."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import unicodedata
from collections import Counter
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from symato.data import clean, corpus
from symato.data.clean import normalize_paragraph, paragraph_verdict, vietnamese_share

REPO = Path(__file__).resolve().parents[1]
SNAKEMAKE = REPO / ".venv" / "bin" / "snakemake"
VI = "Hôm nay trời đẹp quá, chúng tôi đi chơi ở Hà Nội."
VI2 = "Việt Nam là một quốc gia nằm ở phía đông bán đảo Đông Dương."
EN = "The quick brown fox jumps over the lazy dog near the river bank."


def norm(text: str, style: str = "new") -> tuple[str, Counter]:
    repaired: Counter = Counter()
    out, _ = normalize_paragraph(text, style, repaired)
    return out, repaired


def test_nfc_lookalikes_controls_whitespace() -> None:
    nfd = unicodedata.normalize("NFD", VI)
    assert norm(nfd)[0] == VI
    out, rep = norm("ðẹp  quá\u200b Ðà\tNẵng\x00\x07 \n\n  \n  hay\r\n")
    assert out == "đẹp quá Đà Nẵng\nhay"
    assert rep["lookalike_paragraphs"] == 1
    assert rep["nul_chars"] == 1
    assert rep["control_chars"] == 2  # BEL + zero-width space


def test_tone_style_new_and_old() -> None:
    assert norm("hóa thúy khỏe", "new")[0] == "hoá thuý khoẻ"
    assert norm("hoá thuý khoẻ", "old")[0] == "hóa thúy khỏe"
    out, rep = norm("hoá", "new")
    assert out == "hoá" and rep["tone_placement_paragraphs"] == 0


def test_vietnamese_share_and_verdicts() -> None:
    assert vietnamese_share(VI) == 1.0
    assert vietnamese_share(EN) < 0.3
    assert vietnamese_share("12345 !!!") == 0.0
    assert paragraph_verdict("", 0.0, 10, 100, 0.5) == "empty"
    assert paragraph_verdict("ngắn", 1.0, 10, 100, 0.5) == "too_short"
    assert paragraph_verdict(VI * 5, 1.0, 10, 100, 0.5) == "too_long"
    assert paragraph_verdict(EN, vietnamese_share(EN), 10, 100, 0.5) == "not_vietnamese"
    assert paragraph_verdict(VI, 1.0, 10, 100, 0.5) == ""


def run_pipeline(work: Path, sources: dict[str, list[Path]], shards: int = 3, **filt) -> dict:
    """Read, filter, dedup, write and report through the commands' main(argv)."""
    reports = []
    for name, files in sources.items():
        report = work / "raw" / name / "read.json"
        argv = ["--source", name, "--format", "text", "--shards", str(shards)]
        argv += ["--out-dir", str(work / "raw" / name), "--report", str(report)]
        assert corpus.main(argv + [str(f) for f in files]) == 0
        reports.append(report)
    ids = [f"{k:04d}" for k in range(shards)]
    opts = [x for k, v in filt.items() for x in (f"--{k.replace('_', '-')}", str(v))]
    for k in ids:
        raws = [str(work / "raw" / name / f"{k}.parquet") for name in sources]
        out, rep = work / "work" / f"{k}.parquet", work / "work" / f"{k}.filter.json"
        assert clean.main(["filter", *opts, "--out", str(out), "--report", str(rep), *raws]) == 0
        reports.append(rep)
    dups = work / "work" / "dups.parquet"
    assert (
        clean.main(
            ["dedup", "--out", str(dups), *[str(work / "work" / f"{k}.parquet") for k in ids]]
        )
        == 0
    )
    for k in ids:
        rep = work / "work" / f"{k}.write.json"
        argv = ["write", "--work", str(work / "work" / f"{k}.parquet"), "--duplicates", str(dups)]
        argv += ["--train", str(work / "clean" / "train" / f"{k}.parquet"), "--val",
                 str(work / "clean" / "val" / f"{k}.parquet"), "--val-fraction", "0.2",
                 "--report", str(rep)]
        assert clean.main(argv) == 0
        reports.append(rep)
    assert clean.report_main(["--out", str(work / "report.json"), *map(str, reports)]) == 0
    return json.loads((work / "report.json").read_text())


def clean_rows(work: Path) -> list[dict]:
    rows = []
    for path in sorted((work / "clean").glob("*/*.parquet")):
        rows += pq.read_table(path).to_pylist()
    return rows


@pytest.fixture
def inputs(tmp_path: Path) -> dict[str, list[Path]]:
    """Two sources sharing a paragraph, with every kind of bad input."""
    a = tmp_path / "in" / "a.txt"
    a.parent.mkdir()
    paras = [VI, VI2, "ngắn", EN, VI, "ðẹp lắm, hôm nay trời đẹp quá đi thôi"]
    tail = b"\n\n\xff\xfe broken\n\n" + "Có\x00 NUL ở đây nhé bạn ơi\n".encode()
    a.write_bytes("\n\n".join(paras).encode() + tail)
    b = tmp_path / "in" / "b.txt"
    b.write_text(f"{VI2}\n\n" + "\n\n".join(f"Câu số {i} của tôi rất hay." for i in range(30)))
    english = tmp_path / "in" / "english.txt"
    english.write_text("\n\n".join([EN] * 3 + ["Another English paragraph of some length."]))
    empty = tmp_path / "in" / "empty.txt"
    empty.write_bytes(b"")
    return {"a": [a, empty], "b": [b, english]}


def test_report_adds_up_and_dedup_is_global(tmp_path: Path, inputs) -> None:
    report = run_pipeline(tmp_path / "w", inputs)
    assert report["balanced"] is True
    for entry in [*report["sources"].values(), report["total"]]:
        for unit in ("documents", "paragraphs", "bytes"):
            dropped = sum(c[unit] for c in entry["dropped"].values())
            assert entry["kept"][unit] + dropped == entry["seen"][unit]
    a, b = report["sources"]["a"], report["sources"]["b"]
    assert a["dropped"]["invalid_utf8"]["paragraphs"] == 1
    assert a["dropped"]["too_short"]["paragraphs"] == 1
    assert a["dropped"]["not_vietnamese"]["paragraphs"] == 1
    assert a["repaired"]["nul_chars"] == 1 and a["repaired"]["lookalike_paragraphs"] == 1
    assert b["dropped"]["not_vietnamese"]["paragraphs"] == 4  # the English file
    assert a["files"]["empty"] == 1
    # VI appears twice in a, VI2 once in a and once in b: one copy of each survives.
    texts = [r["text"] for r in clean_rows(tmp_path / "w")]
    assert texts.count(VI) == 1 and texts.count(VI2) == 1
    assert report["total"]["dropped"]["duplicate"]["paragraphs"] == 2
    assert "đẹp lắm, hôm nay trời đẹp quá đi thôi" in texts
    assert "Có NUL ở đây nhé bạn ơi" in texts
    ids = [r["doc_id"] for r in clean_rows(tmp_path / "w")]
    assert len(ids) == len(set(ids)) == report["total"]["kept"]["documents"]


def test_outputs_are_byte_identical_across_runs(tmp_path: Path, inputs) -> None:
    run_pipeline(tmp_path / "one", inputs)
    run_pipeline(tmp_path / "two", inputs)
    names = [f"clean/{s}/{k:04d}.parquet" for k in range(3) for s in ("train", "val")]
    for name in ["report.json", *names]:
        assert (tmp_path / "one" / name).read_bytes() == (tmp_path / "two" / name).read_bytes()


def test_split_is_decided_per_document_and_reported(tmp_path: Path, inputs) -> None:
    report = run_pipeline(tmp_path, inputs)
    docs = {s: [] for s in ("train", "val")}
    for s in docs:
        for path in sorted((tmp_path / "clean" / s).glob("*.parquet")):
            docs[s] += pq.read_table(path)["doc_id"].to_pylist()
    assert docs["val"] and docs["train"] and not set(docs["val"]) & set(docs["train"])
    assert all(clean.split_of(d, 0.2) == s for s, ids in docs.items() for d in ids)
    out = report["total"]["output"]
    assert out["val_documents"] == len(docs["val"]) and out["train_documents"] == len(docs["train"])
    assert out["train_bytes"] + out["val_bytes"] == out["bytes"]


def test_thresholds_change_the_result(tmp_path: Path, inputs) -> None:
    loose = run_pipeline(tmp_path / "loose", inputs, min_paragraph_chars=1, min_vietnamese_share=0)
    assert "too_short" not in loose["total"]["dropped"]
    assert "not_vietnamese" not in loose["total"]["dropped"]


def _dedup(work: Path, shards: int, val_fraction: str, reports: list[Path]) -> int:
    """The dedup step as the workflow calls it, on run_pipeline's work files."""
    argv = ["dedup", "--val-fraction", val_fraction, "--out", str(work / "work" / "dups.parquet")]
    argv += [x for r in reports for x in ("--report", str(r))]
    return clean.main(argv + [str(work / "work" / f"{k:04d}.parquet") for k in range(shards)])


def test_nothing_kept_stops_at_dedup_naming_each_source(tmp_path: Path, inputs) -> None:
    """A corpus whose every file is empty or dropped stops at cleaning, before any
    cleaned shard is written, saying what each source lost and why."""
    sources = {"a": [inputs["a"][1]], "b": [inputs["b"][1]]}  # empty.txt, english.txt
    with pytest.raises(clean.SymatoError) as error:
        run_pipeline(tmp_path, sources)
    text = str(error.value)
    assert text.startswith("nothing is left after cleaning")
    assert "no source yielded" in text  # run_pipeline's dedup is given no reports
    reports = sorted(tmp_path.glob("raw/*/read.json")) + sorted(tmp_path.glob("work/*.json"))
    with pytest.raises(clean.SymatoError) as error:
        _dedup(tmp_path, 3, "0.2", reports)
    lines = str(error.value).splitlines()
    assert lines[1].startswith("  source 'a': 1 files (1 empty), 0 documents")
    assert lines[2].startswith("  source 'b': 1 files, 4 documents, 4 paragraphs")
    assert "dropped: not_vietnamese 4 documents / 4 paragraphs" in lines[2]
    assert not (tmp_path / "clean").exists() and not (tmp_path / "work/dups.parquet").exists()


def test_an_empty_split_stops_at_dedup(tmp_path: Path) -> None:
    one = tmp_path / "one.txt"
    one.write_text(VI)  # one document: it goes to train or to val, never both
    run_pipeline(tmp_path / "w", {"one": [one]})
    assert _dedup(tmp_path / "w", 3, "0", []) == 0  # no validation split asked for
    for fraction, empty in (("0.999999", "train"), ("0.000001", "val")):
        with pytest.raises(clean.SymatoError, match=f"the {empty} split is empty after cleaning"):
            _dedup(tmp_path / "w", 3, fraction, [])


def test_clean_report_rejects_unbalanced_reports(tmp_path: Path) -> None:
    bad = tmp_path / "r.json"
    counts = {"documents": 1, "paragraphs": 1, "bytes": 5}
    bad.write_text(json.dumps({"sources": {"x": {"seen": counts}}}))
    with pytest.raises(clean.SymatoError, match="source 'x' does not add up"):
        clean.merge_reports([bad], {})


# ---------------------------------------------------------------------------------------
# A real Snakemake run of the corpus + cleaning rules only.


def snakemake(workdir: Path, *args: str) -> subprocess.CompletedProcess:
    cmd = [str(SNAKEMAKE), "-s", str(REPO / "Snakefile"), "--directory", str(workdir)]
    cmd += ["--configfile", str(workdir / "config.yaml"), *args]
    env = {**os.environ, "PYTHONDONTWRITEBYTECODE": "1"}
    return subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=600)


TARGETS = ["results/clean/report.json"] + [
    f"results/clean/{split}/{k:04d}.parquet" for k in range(2) for split in ("train", "val")
]


def write_config(workdir: Path, **clean_opts) -> None:
    lines = [
        "corpus:",
        "  shards: 2",
        "  sources:",
        '    - {name: a, format: text, paths: ["in/a.txt", "in/empty.txt"]}',
        '    - {name: b, format: text, paths: ["in/b*.txt", "in/english.txt"]}',
    ]
    if clean_opts:
        lines.append("clean:")
        lines += [f"  {k}: {v}" for k, v in clean_opts.items()]
    (workdir / "config.yaml").write_text("\n".join(lines) + "\n")


@pytest.mark.slow
@pytest.mark.skipif(not SNAKEMAKE.exists(), reason="needs the project's .venv snakemake")
def test_snakemake_corpus_and_clean_rules(tmp_path: Path, inputs) -> None:
    work = tmp_path
    write_config(work)
    first = snakemake(work, "--cores", "2", *TARGETS)
    assert first.returncode == 0, first.stderr[-3000:]
    report = json.loads((work / "results/clean/report.json").read_text())
    assert report["balanced"] and set(report["sources"]) == {"a", "b"}
    for rule in ("corpus_shard", "clean_filter", "clean_write", "clean_dedup"):
        assert (work / "results" / "logs" / rule).is_dir()
        assert (work / "results" / "benchmarks" / rule).is_dir()
    again = snakemake(work, "--cores", "2", *TARGETS)
    assert again.returncode == 0 and "Nothing to be done" in again.stdout + again.stderr
    # Same outputs with one core: deduplication does not depend on job order.
    saved = {p: (work / p).read_bytes() for p in TARGETS}
    shutil.rmtree(work / "results")
    assert snakemake(work, "--cores", "1", *TARGETS).returncode == 0
    assert all((work / p).read_bytes() == data for p, data in saved.items())
    # A changed threshold reruns cleaning, not reading.
    write_config(work, min_paragraph_chars=3)
    dry = snakemake(work, "-n", "--cores", "2", *TARGETS)
    assert dry.returncode == 0, dry.stderr[-2000:]
    assert "clean_filter" in dry.stdout and "corpus_shard" not in dry.stdout


@pytest.mark.slow
@pytest.mark.skipif(not SNAKEMAKE.exists(), reason="needs the project's .venv snakemake")
def test_snakemake_bad_config_fails_before_any_job(tmp_path: Path, inputs) -> None:
    (tmp_path / "config.yaml").write_text(
        'corpus:\n  sources:\n    - {name: a, format: text, paths: ["in/a.txt", "nothing/*.txt"]}\n'
    )
    proc = snakemake(tmp_path, "--cores", "1", *TARGETS)
    assert proc.returncode != 0
    assert "corpus.sources[0].paths[1]" in proc.stderr and "nothing/*.txt" in proc.stderr
    assert not (tmp_path / "results").exists()
    (tmp_path / "config.yaml").write_text("clean:\n  min_vietnamese_shar: 0.3\n")
    proc = snakemake(tmp_path, "--cores", "1", *TARGETS)
    assert proc.returncode != 0 and "min_vietnamese_shar" in proc.stderr


@pytest.mark.slow
@pytest.mark.skipif(not SNAKEMAKE.exists(), reason="needs the project's .venv snakemake")
def test_snakemake_stops_at_cleaning_when_nothing_is_kept(tmp_path: Path, inputs) -> None:
    """Sources of an empty file and English text only: the workflow stops at clean_dedup
    (no cleaned shard, no statistics), its log naming each source's drops."""
    (tmp_path / "config.yaml").write_text(
        "corpus:\n  shards: 2\n  sources:\n"
        '    - {name: a, format: text, paths: ["in/empty.txt"]}\n'
        '    - {name: b, format: text, paths: ["in/english.txt"]}\n'
    )
    proc = snakemake(tmp_path, "--cores", "2", "data")
    assert proc.returncode != 0
    assert "clean_dedup" in proc.stdout + proc.stderr
    log = (tmp_path / "results/logs/clean_dedup/clean_dedup.log").read_text()
    assert "nothing is left after cleaning" in log
    assert "source 'a': 1 files (1 empty)" in log and "not_vietnamese 4 documents" in log
    assert not (tmp_path / "results/clean/train").exists()
    assert not (tmp_path / "results/stats").exists()
