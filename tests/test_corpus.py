"""Reading sources into raw shards (symato.data.corpus): formats, bad input, streaming."""

from __future__ import annotations

import gzip
import json
import subprocess
import sys
import time
import tracemalloc
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import zstandard

from symato.data.corpus import main, resolve_sources, shard_source
from symato.errors import SymatoError

VI = "Hôm nay trời đẹp quá, chúng tôi đi chơi ở Hà Nội."
VI2 = "Việt Nam là một quốc gia nằm ở phía đông bán đảo Đông Dương."


def raw_rows(out_dir: Path) -> list[dict]:
    """All rows of every raw shard in a folder, in shard order."""
    rows = []
    for path in sorted(out_dir.glob("*.parquet")):
        rows += pq.read_table(path).to_pylist()
    return rows


def shard(tmp_path: Path, files: list[Path], fmt: str = "text", **kw) -> tuple[dict, list]:
    """Run ``symato shard`` through its main(argv); return (report, rows)."""
    out = tmp_path / "raw"
    report = tmp_path / "read.json"
    argv = ["--source", "s", "--format", fmt, "--shards", "3", "--out-dir", str(out)]
    argv += ["--report", str(report)]
    for key, value in kw.items():
        argv += [f"--{key.replace('_', '-')}", str(value)]
    assert main(argv + [str(f) for f in files]) == 0
    return json.loads(report.read_text())["sources"]["s"], raw_rows(out)


def test_text_paragraphs_and_counts(tmp_path: Path) -> None:
    f = tmp_path / "a.txt"
    f.write_text(f"{VI}\nmore line\n\n\n{VI2}\r\n\n  \n", encoding="utf-8")
    report, rows = shard(tmp_path, [f])
    assert sorted(r["paragraphs"][0] for r in rows) == sorted([f"{VI}\nmore line", VI2])
    assert report["seen"] == {
        "documents": 2,
        "paragraphs": 2,
        "bytes": len(f"{VI}\nmore line".encode()) + len(VI2.encode()),
    }
    assert len({r["doc_id"] for r in rows}) == 2
    assert all(r["source"] == "s" for r in rows)
    assert len(list((tmp_path / "raw").glob("*.parquet"))) == 3  # empty shards exist too


def test_unit_line_makes_one_document_per_line(tmp_path: Path) -> None:
    f = tmp_path / "a.txt"
    f.write_text(f"{VI}\n{VI2}\n\n{VI}\n", encoding="utf-8")
    report, rows = shard(tmp_path, [f], unit="line")
    assert report["seen"]["documents"] == 3
    assert sorted(r["paragraphs"][0] for r in rows) == sorted([VI, VI2, VI])


@pytest.mark.parametrize("suffix", [".txt.gz", ".txt.zst"])
def test_compressed_text_reads_like_plain(tmp_path: Path, suffix: str) -> None:
    data = f"{VI}\n\n{VI2}\n".encode()
    f = tmp_path / f"a{suffix}"
    f.write_bytes(gzip.compress(data) if suffix.endswith("gz") else zstandard.compress(data))
    _, rows = shard(tmp_path, [f])
    assert sorted(r["paragraphs"][0] for r in rows) == sorted([VI, VI2])


@pytest.mark.parametrize("suffix", [".txt.gz", ".txt.zst"])
def test_truncated_compressed_file_fails_naming_it(tmp_path: Path, suffix: str) -> None:
    data = (f"{VI}\n\n" * 2000).encode()
    packed = gzip.compress(data) if suffix.endswith("gz") else zstandard.compress(data)
    f = tmp_path / f"cut{suffix}"
    f.write_bytes(packed[: len(packed) // 2])
    with pytest.raises(SymatoError, match=r"cut\.txt\.(gz|zst).*truncated"):
        shard(tmp_path, [f])
    assert not list((tmp_path / "raw").glob("*.parquet"))  # no partial shard survives


def test_truncated_gz_cli_exit_code_and_message(tmp_path: Path) -> None:
    f = tmp_path / "cut.txt.gz"
    f.write_bytes(gzip.compress((VI * 500).encode())[:60])
    proc = subprocess.run(
        [
            *[sys.executable, "-m", "symato", "corpus", "--source", "s", "--format", "text"],
            *["--shards", "1", "--out-dir", str(tmp_path / "o"), "--report", str(tmp_path / "r")],
            str(f),
        ],
        capture_output=True,
        text=True,
    )
    assert proc.returncode == 1
    assert "cut.txt.gz" in proc.stderr and "Traceback" not in proc.stderr


def test_invalid_utf8_empty_file_and_nul_are_counted(tmp_path: Path) -> None:
    bad = tmp_path / "bad.txt"
    bad.write_bytes(b"\xff\xfe broken " + VI.encode() + b"\n\n" + VI2.encode() + b"\x00\n")
    empty = tmp_path / "empty.txt"
    empty.write_bytes(b"")
    report, rows = shard(tmp_path, [bad, empty])
    assert report["files"] == {"seen": 2, "empty": 1}
    assert report["dropped"]["invalid_utf8"]["paragraphs"] == 1
    assert report["dropped"]["invalid_utf8"]["documents"] == 1
    assert [r["paragraphs"] for r in rows] == [[VI2 + "\x00"]]  # NUL goes on to cleaning


def test_fifty_mb_single_line_is_streamed(tmp_path: Path) -> None:
    big = tmp_path / "big.txt"
    line = ("Hà Nội " * 1000).encode()
    with open(big, "wb") as fh:
        fh.write(VI.encode() + b"\n\n")
        for _ in range(50 * (1 << 20) // len(line)):
            fh.write(line)
        fh.write(b"\n\n" + VI2.encode() + b"\n")
    tracemalloc.start()
    start = time.perf_counter()
    tally = shard_source([big], "s", "text", tmp_path / "raw", 2, cap=1 << 20)
    elapsed = time.perf_counter() - start
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    assert tally.dropped["too_long"]["paragraphs"] == 1
    assert tally.dropped["too_long"]["bytes"] > 50_000_000
    assert tally.seen["documents"] == 3
    assert peak < 16 << 20, f"peak Python memory {peak / 1e6:.1f} MB"
    assert elapsed < 30
    assert sorted(r["paragraphs"][0] for r in raw_rows(tmp_path / "raw")) == sorted([VI, VI2])


def test_jsonl_records_paragraphs_and_bad_line(tmp_path: Path) -> None:
    f = tmp_path / "a.jsonl"
    recs = [{"body": f"{VI}\n\n{VI2}"}, {"body": None}, {"body": ""}]
    f.write_text("\n".join(json.dumps(r, ensure_ascii=False) for r in recs) + "\n\n")
    report, rows = shard(tmp_path, [f], fmt="jsonl", text_field="body")
    assert [r["paragraphs"] for r in rows] == [[VI, VI2]]
    assert report["seen"]["documents"] == 3
    assert report["dropped"]["empty"]["documents"] == 2
    f.write_text(json.dumps({"body": VI}) + "\n{not json\n")
    with pytest.raises(SymatoError, match=r"a\.jsonl:2: invalid JSON"):
        shard(tmp_path, [f], fmt="jsonl", text_field="body")
    f.write_text(json.dumps({"text": VI}) + "\n")
    with pytest.raises(SymatoError, match=r"a\.jsonl:1: no field 'body'"):
        shard(tmp_path, [f], fmt="jsonl", text_field="body")


def test_jsonl_invalid_utf8_line_is_counted(tmp_path: Path) -> None:
    f = tmp_path / "a.jsonl"
    lone_surrogate = b'{"text": "ok\\ud800"}\n'  # valid JSON, but not encodable text
    f.write_bytes(b'{"text": "\xff\xfe"}\n' + lone_surrogate + json.dumps({"text": VI}).encode())
    report, rows = shard(tmp_path, [f], fmt="jsonl")
    assert report["dropped"]["invalid_utf8"] == {"documents": 2, "paragraphs": 2, "bytes": 19}
    assert len(rows) == 1


def test_parquet_column_and_missing_column(tmp_path: Path) -> None:
    f = tmp_path / "a.parquet"
    pq.write_table(pa.table({"content": [VI, None, VI2]}), f)
    report, rows = shard(tmp_path, [f], fmt="parquet", text_field="content")
    assert sorted(r["paragraphs"][0] for r in rows) == sorted([VI, VI2])
    assert report["dropped"]["empty"]["documents"] == 1
    with pytest.raises(SymatoError, match=r"a\.parquet: no column 'text'.*content"):
        shard(tmp_path, [f], fmt="parquet")


def test_shard_assignment_is_stable(tmp_path: Path) -> None:
    f = tmp_path / "a.txt"
    f.write_text("\n\n".join(f"{VI} {i}" for i in range(50)), encoding="utf-8")
    shard(tmp_path / "one", [f])
    shard(tmp_path / "two", [f])
    for a in sorted((tmp_path / "one" / "raw").glob("*.parquet")):
        assert a.read_bytes() == (tmp_path / "two" / "raw" / a.name).read_bytes()


def test_resolve_sources_errors_name_the_key(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "d").mkdir()
    (tmp_path / "d" / "x.txt").write_text(VI)
    good = resolve_sources(
        {"sources": [{"name": "a", "format": "text", "paths": ["d/*.txt"]}]}, "demo.jsonl"
    )
    assert good[0]["files"] == ["d/x.txt"] and good[0]["text_field"] == "text"
    assert resolve_sources({}, "demo.jsonl")[0]["files"] == ["demo.jsonl"]
    cases = [
        (
            [{"name": "a", "format": "text", "paths": ["d/*.txt", "e/*"]}],
            r"sources\[0\]\.paths\[1\]",
        ),
        ([{"name": "a", "format": "jsonl"}], r"sources\[0\]\.paths"),
        ([{"name": "a", "format": "demo"}, {"name": "a", "format": "demo"}], "duplicate"),
        ([{"name": "a", "format": "demo", "paths": ["d/*"]}], "takes no paths"),
    ]
    for sources, pattern in cases:
        with pytest.raises(SymatoError, match=pattern):
            resolve_sources({"sources": sources}, "demo.jsonl")
