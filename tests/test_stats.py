"""Syllable statistics: per-shard counting and the merge, on small real cleaned shards."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from symato.cli import main as cli
from symato.data import stats


def _clean_shard(path: Path, texts: list[str]) -> Path:
    table = pa.table({"doc_id": [f"d{i}" for i in range(len(texts))],
                      "source": ["test"] * len(texts), "text": texts})
    pq.write_table(table, path)
    return path


@pytest.fixture
def merged(tmp_path: Path) -> Path:
    a = _clean_shard(tmp_path / "a.parquet", ["Hoà bình, hòa bình!", "HOÀ ABC xyz 123."])
    b = _clean_shard(tmp_path / "b.parquet", ["Tiếng Việt có dấu.\n\nXin chào Việt Nam"])
    out = tmp_path / "stats"
    for shard in (a, b):
        assert cli(["stats", "--clean", str(shard), "--out", str(out / "shards" / shard.name)]) == 0
    shard_files = [str(out / "shards" / s.name) for s in (a, b)]
    assert cli(["stats", "merge", *shard_files, "--out", str(out), "--top", "5"]) == 0
    return out


def test_syllable_table(merged: Path) -> None:
    syl = pd.read_parquet(merged / "syllables.parquet")
    assert list(syl.columns[:4]) == ["syllable", "sym", "marktone", "count"]
    counts = dict(zip(syl["syllable"], syl["count"], strict=True))
    # "Hoà", "hòa" (old placement) and "HOÀ" meet under the canonical new form "hoà"
    assert counts == {"hoà": 3, "bình": 2, "việt": 2, "tiếng": 1, "có": 1, "dấu": 1,
                      "xin": 1, "chào": 1, "nam": 1}
    row = syl[syl["syllable"] == "việt"].iloc[0]
    assert row["sym"] == "viet" and row["marktone"] == 1 * 6 + 5  # circumflex, nặng
    syms = pd.read_parquet(merged / "syms.parquet")
    assert syms["count"].sum() == syl["count"].sum() == 13
    assert syms.iloc[0]["sym"] == "hoa"


def test_classes_case_coverage(merged: Path) -> None:
    classes = pd.read_csv(merged / "token_classes.csv").set_index("class")["count"].to_dict()
    # letters: 13 syllables, ABC + xyz; non-letters: , ! 1 2 3 . .
    assert classes == {"vietnamese_syllable": 13, "other_alphabetic": 2, "non_alphabetic": 7}
    case = pd.read_csv(merged / "case.csv").set_index("case")["count"].to_dict()
    assert case == {"lower": 6, "title": 6, "upper": 1}
    top = pd.read_csv(merged / "top_non_syllables.csv")
    assert set(top["letter_run"]) == {"abc", "xyz"}
    cov = pd.read_csv(merged / "coverage.csv")
    assert list(cov["level"]) == [0.99, 0.999, 0.9999]
    assert (cov["syllables"] == 9).all() and (cov["syms"] <= 9).all()
    for png in stats.PLOTS:
        assert (merged / png).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    summary = (merged / "summary.md").read_text()
    assert "13 syllable occurrences" in summary and "| hoà | hoa | 2 | 3 |" in summary


def test_coverage_needed() -> None:
    assert stats.coverage_needed([1, 50, 4, 30, 15], [0.5, 0.8, 0.99, 0.999]) == [1, 2, 4, 5]
    assert stats.coverage_needed([], [0.99]) == [0]


def test_missing_and_bad_shards(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    missing = tmp_path / "nope.parquet"
    assert cli(["stats", "--clean", str(missing), "--out", str(tmp_path / "o.parquet")]) == 1
    assert f"cleaned shard not found: {missing}" in capsys.readouterr().err
    pq.write_table(pa.table({"body": ["x"]}), tmp_path / "wrong.parquet")
    assert cli(["stats", "--clean", str(tmp_path / "wrong.parquet"),
                "--out", str(tmp_path / "o.parquet")]) == 1
    assert "wrong.parquet has no 'text' column" in capsys.readouterr().err
    assert not (tmp_path / "o.parquet").exists()
    assert cli(["stats", "merge", str(tmp_path / "wrong.parquet"), "--out", str(tmp_path)]) == 1
    assert "wrong.parquet has columns ['body']" in capsys.readouterr().err


def test_empty_corpus_gives_zero_tables(tmp_path: Path) -> None:
    shard = _clean_shard(tmp_path / "e.parquet", [])
    assert cli(["stats", "--clean", str(shard), "--out", str(tmp_path / "s" / "e.parquet")]) == 0
    assert cli(["stats", "merge", str(tmp_path / "s" / "e.parquet"), "--out", str(tmp_path)]) == 0
    classes = pd.read_csv(tmp_path / "token_classes.csv")
    assert classes["count"].sum() == 0
    assert len(pd.read_parquet(tmp_path / "syllables.parquet")) == 0
    assert "0 syllable occurrences" in (tmp_path / "summary.md").read_text()
