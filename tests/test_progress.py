"""Progress lines (symato.progress): their format, their bounded rate (an injected clock,
no sleeps), the terminal/log/quiet policy, and real stage runs reporting on stderr."""

from __future__ import annotations

import io
import os
import subprocess
import sys
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from _train_fixtures import restore_torch_globals  # noqa: F401  (autouse: torch state put back)

from symato import Tokenizer
from symato.errors import SymatoError
from symato.progress import (
    LOG_SECONDS,
    TTY_SECONDS,
    Progress,
    format_duration,
    format_line,
    parquet_rows,
    resolve_mode,
)

ROOT = Path(__file__).resolve().parents[1]


class Clock:
    """A clock the test moves by hand."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


# ----------------------------------------------------------------------------- format
def test_format_line_with_total_rate_and_eta() -> None:
    assert format_line("symato tokenize 0001.arrow", 1234, 5000, "documents", 10.0) == (
        "symato tokenize 0001.arrow: 1,234/5,000 documents (25%), 123 documents/s, "
        "0:10 elapsed, ETA 0:31")


def test_format_line_bytes_unknown_total_and_notes() -> None:
    assert format_line("x", 12_345_678, None, "bytes", 4.0) == "x: 12.3 MB, 3.1 MB/s, 0:04 elapsed"
    assert format_line("x", 999, 2000, "bytes", 1.0) == (
        "x: 999 B/2.0 kB (50%), 999 B/s, 0:01 elapsed, ETA 0:01")
    # a resumed job: its rate and ETA count only what this process did
    assert format_line("t", 15, 20, "steps", 5.0, rate_done=5, note="loss 3.142") == (
        "t: 15/20 steps (75%), 1 steps/s, 0:05 elapsed, ETA 0:05, loss 3.142")
    # done, or nothing done yet: no ETA
    assert format_line("t", 20, 20, "steps", 0.0) == (
        "t: 20/20 steps (100%), 0 steps/s, 0:00 elapsed")
    assert format_line("t", 0, 3, "runs", 2.0) == "t: 0/3 runs (0%), 0 runs/s, 0:02 elapsed"


def test_format_duration() -> None:
    assert [format_duration(s) for s in (0, 59.4, 61, 3599, 3600, 90061)] == [
        "0:00", "0:59", "1:01", "59:59", "1:00:00", "25:01:01"]


# ----------------------------------------------------------------------------- rate, policy
def test_log_lines_are_rate_limited_whatever_the_record_rate() -> None:
    """Not a terminal: a plain line at most every LOG_SECONDS, however many records, and
    one closing line."""
    clock, out = Clock(), io.StringIO()
    with Progress("job", 800, "records", stream=out, clock=clock, env={}) as p:
        assert p.mode == "log" and p.seconds == LOG_SECONDS
        for _ in range(800):  # 100 s of records, 1/8 s each (exact in binary)
            clock.now += 0.125
            p.update()
    lines = out.getvalue().split("\n")
    assert lines[-1] == "" and "\r" not in out.getvalue()
    assert lines[:-1] == [
        "job: 240/800 records (30%), 8 records/s, 0:30 elapsed, ETA 1:10",
        "job: 480/800 records (60%), 8 records/s, 1:00 elapsed, ETA 0:40",
        "job: 720/800 records (90%), 8 records/s, 1:30 elapsed, ETA 0:10",
        "job: 800/800 records (100%), 8 records/s, 1:40 elapsed",
    ]


def test_terminal_line_is_redrawn_in_place() -> None:
    clock, out = Clock(), Terminal()
    p = Progress("job", None, "bytes", stream=out, clock=clock, env={})
    assert p.mode == "tty" and p.seconds == TTY_SECONDS
    p.update(5_000_000)  # no time has passed: nothing yet
    assert out.getvalue() == ""
    clock.now += 2.0
    p.update(0)
    clock.now += 0.5
    p.update(1)  # within the interval: not drawn
    clock.now += 0.5
    p.update(10, note="ok")
    p.close()
    p.close()  # idempotent
    first = "job: 5.0 MB, 2.5 MB/s, 0:02 elapsed"
    second = "job: 5.0 MB, 1.7 MB/s, 0:03 elapsed, ok"
    assert out.getvalue() == f"\r{first}\r{second}\r{second}\n"


def test_a_shorter_terminal_line_blanks_the_longer_one() -> None:
    clock, out = Clock(), Terminal()
    p = Progress("job", 10, "runs", stream=out, clock=clock, env={})
    clock.now += 1
    p.update(1, note="now a/very/long/run/folder")
    clock.now += 1
    p.update(1, note="")
    long, short = out.getvalue().split("\r")[1:]
    assert len(short) == len(long) and short.endswith(" ")


def test_quiet_and_environment_policy() -> None:
    out = Terminal()
    clock = Clock()
    p = Progress("job", 5, quiet=True, stream=out, clock=clock, env={"SYMATO_PROGRESS": "tty"})
    clock.now += 100
    p.update(5)
    p.close()
    assert p.mode == "off" and out.getvalue() == ""
    assert resolve_mode(False, io.StringIO(), {}) == "log"
    assert resolve_mode(False, Terminal(), {}) == "tty"
    assert resolve_mode(False, Terminal(), {"SYMATO_PROGRESS": "log"}) == "log"
    assert resolve_mode(False, io.StringIO(), {"SYMATO_PROGRESS": "off"}) == "off"
    with pytest.raises(SymatoError, match="SYMATO_PROGRESS='loud'"):
        resolve_mode(False, io.StringIO(), {"SYMATO_PROGRESS": "loud"})
    with pytest.raises(SymatoError, match="SYMATO_PROGRESS_SECONDS='-1'"):
        Progress("job", env={"SYMATO_PROGRESS_SECONDS": "-1"}, stream=io.StringIO())
    p = Progress("job", env={"SYMATO_PROGRESS_SECONDS": "5"}, stream=io.StringIO())
    assert p.seconds == 5.0


def test_each_counts_items_or_their_size(tmp_path: Path) -> None:
    clock, out = Clock(), io.StringIO()
    p = Progress("job", None, "paragraphs", stream=out, clock=clock, env={})
    assert list(p.each([[1, 2], [3]], len)) == [[1, 2], [3]]
    assert p.done == 3
    files = []
    for i, n in enumerate((3, 4)):
        files.append(tmp_path / f"{i}.parquet")
        pq.write_table(pa.table({"a": list(range(n))}), files[-1])
    assert parquet_rows(files) == 7
    assert parquet_rows([*files, tmp_path / "missing.parquet"]) is None


# ----------------------------------------------------------------------------- real stages
def _symato(args: list[str], env: dict[str, str]) -> subprocess.CompletedProcess:
    proc = subprocess.run([sys.executable, "-m", "symato.cli", *args], capture_output=True,
                          text=True, cwd=ROOT, env={**os.environ, **env}, check=False)
    assert proc.returncode == 0, proc.stderr[-2000:]
    return proc


@pytest.fixture(scope="module")
def cleaned(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A cleaned shard (train and val files) and the default vocabulary."""
    root = tmp_path_factory.mktemp("shard")
    Tokenizer.default().save(root / "vocab.json")
    texts = ["Hà Nội là thủ đô của Việt Nam.", "Tiếng Việt có sáu thanh điệu."] * 6
    for split, part in (("train", texts[:9]), ("val", texts[9:])):
        ids = [f"src:{split}{i}" for i in range(len(part))]
        pq.write_table(pa.table({"doc_id": ids, "source": ["src"] * len(part), "text": part}),
                       root / f"{split}.parquet")
    return root


def _tokenize(root: Path, out: str, *extra: str, env: dict[str, str]) -> str:
    args = ["tokenize", "--vocab", str(root / "vocab.json"), "--clean-train",
            str(root / "train.parquet"), "--clean-val", str(root / "val.parquet"),
            "--train", str(root / out / "train.arrow"), "--val", str(root / out / "val.arrow")]
    return _symato([*args, *extra], env).stderr


def test_tokenize_reports_progress_on_stderr_unless_quiet(cleaned: Path) -> None:
    """Forced to a line per record (interval 0), tokenizing writes one per document and
    a closing line; the shards are byte-identical with and without progress, and
    --quiet writes nothing to stderr."""
    loud = _tokenize(cleaned, "loud", env={"SYMATO_PROGRESS": "log",
                                           "SYMATO_PROGRESS_SECONDS": "0"})
    lines = loud.splitlines()
    assert len(lines) == 12 + 1  # 12 documents, then the closing line
    assert lines[0].startswith("symato tokenize train.arrow: 1/12 documents (8%), ")
    assert lines[-1].startswith("symato tokenize train.arrow: 12/12 documents (100%), ")
    assert "documents/s" in lines[-1] and "ETA" in lines[5]
    # by default on a pipe (a log): no periodic line in so short a job, only the closing one
    default = _tokenize(cleaned, "default", env={})
    assert default.splitlines() == [line for line in default.splitlines()
                                    if line.startswith("symato tokenize train.arrow: 12/12")]
    assert len(default.splitlines()) == 1
    quiet = _tokenize(cleaned, "quiet", "--quiet", env={"SYMATO_PROGRESS": "log",
                                                        "SYMATO_PROGRESS_SECONDS": "0"})
    assert quiet == ""
    for split in ("train", "val"):
        data = {(cleaned / d / f"{split}.arrow").read_bytes() for d in ("loud", "default",
                                                                         "quiet")}
        assert len(data) == 1


def test_clean_filter_reports_progress_unless_quiet(tmp_path: Path) -> None:
    raw = tmp_path / "raw.parquet"
    pq.write_table(pa.table({
        "doc_id": ["a:1", "a:2", "a:3"], "source": ["a"] * 3,
        "paragraphs": [["Hà Nội là thủ đô của Việt Nam."], ["Tiếng Việt có sáu thanh điệu."],
                       ["x"]]}), raw)
    runs = {}
    for name, extra in (("loud", []), ("quiet", ["--quiet"])):
        proc = _symato(["clean", "filter", "--out", str(tmp_path / f"{name}.parquet"),
                        "--report", str(tmp_path / f"{name}.json"), *extra, str(raw)],
                       {"SYMATO_PROGRESS": "log", "SYMATO_PROGRESS_SECONDS": "0"})
        runs[name] = proc.stderr
    assert runs["loud"].splitlines()[-1].startswith(
        "symato clean filter loud.parquet: 3/3 documents (100%)")
    assert runs["quiet"] == ""
    assert (tmp_path / "loud.json").read_bytes() == (tmp_path / "quiet.json").read_bytes()


def test_evaluate_reports_runs_done_unless_quiet(tmp_path: Path, capsys: pytest.CaptureFixture,
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    """An evaluation (in this process) reports the run it is scoring and the runs done;
    its metrics are byte-identical with --quiet, which reports nothing."""
    from test_evaluate import _uniform_run

    from symato.run.evaluate import main as evaluate_main

    run, _ = _uniform_run(tmp_path, Tokenizer.default())
    monkeypatch.setenv("SYMATO_PROGRESS", "log")
    monkeypatch.setenv("SYMATO_PROGRESS_SECONDS", "0")
    args = ["--run", str(run), "--prompt", "Hà", "--sample-tokens", "2"]
    capsys.readouterr()
    assert evaluate_main([*args, "--out", str(tmp_path / "loud.json")]) == 0
    lines = capsys.readouterr().err.splitlines()
    assert lines[0].startswith("symato evaluate: 0/1 runs (0%), ")
    assert lines[0].endswith(f", now {run}")
    assert lines[-1].startswith("symato evaluate: 1/1 runs (100%), ")
    assert evaluate_main([*args, "--out", str(tmp_path / "quiet.json"), "--quiet"]) == 0
    assert capsys.readouterr().err == ""
    assert (tmp_path / "loud.json").read_bytes() == (tmp_path / "quiet.json").read_bytes()
