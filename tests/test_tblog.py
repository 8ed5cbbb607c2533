"""TensorBoard event files (run setting ``tensorboard``, symato.run.tblog): the same
scalars as metrics.jsonl, a missing extra stopping the run before training, and a lean
training process either way."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from _train_fixtures import make_settings, read_metrics

from symato.run.settings import command_args, default_settings, ordered
from symato.run.settings import main as settings_main
from symato.run.tblog import TB_DIR, TOKENS_PREFIX, EventLog, scalars

pytest.importorskip("tensorboard")
from tensorboard.backend.event_processing.event_accumulator import (
    EventAccumulator,
)

ROOT = Path(__file__).resolve().parents[1]

_RUN = """
import json, sys
{block}
from symato.run.train import main
try:
    code = main(["--settings", sys.argv[1], "--out", sys.argv[2]])
except Exception as exc:
    code = f"{{type(exc).__name__}}: {{exc}}"
print(json.dumps({{"code": code, "dynamo": "torch._dynamo" in sys.modules,
                  "pandas": "pandas" in sys.modules}}))
"""


def _train(settings: Path, out: Path, block: str = "") -> dict:
    """Train in a fresh process (what it imports is then its own); its report line."""
    result = subprocess.run([sys.executable, "-c", _RUN.format(block=block), str(settings),
                             str(out)], capture_output=True, text=True, cwd=ROOT, check=False)
    assert result.returncode == 0, result.stderr[-2000:]
    return json.loads(result.stdout.strip().splitlines()[-1])


def _events(run_dir: Path) -> dict[str, list[tuple[int, float]]]:
    """Every scalar series of a run's event files: tag -> [(step, value)]."""
    acc = EventAccumulator(str(run_dir / TB_DIR), size_guidance={"scalars": 0})
    acc.Reload()
    return {tag: [(e.step, e.value) for e in acc.Scalars(tag)] for tag in acc.Tags()["scalars"]}


def _expected(records: list[dict]) -> dict[str, list[tuple[int, float]]]:
    """The series metrics.jsonl says the event files hold (values as float32, TensorBoard's
    scalar type): each key against the step and against the tokens."""
    out: dict[str, list[tuple[int, float]]] = {}
    for rec in records:
        for key, value in scalars(rec).items():
            out.setdefault(key, []).append((rec["step"], float(np.float32(value))))
            out.setdefault(TOKENS_PREFIX + key, []).append((rec["tokens"],
                                                            float(np.float32(value))))
    return out


@pytest.mark.slow
def test_event_files_hold_the_metrics_scalars(tmp_path: Path) -> None:
    """A tiny run with tensorboard on: its event files' scalars, read back with
    TensorBoard's own reader, equal metrics.jsonl's on both axes; the process imports
    neither dynamo nor pandas (tests/test_eager.py's lean-process check, setting on)."""
    settings = make_settings(tmp_path, tensorboard=True, log_interval=3)
    out = tmp_path / "run"
    assert _train(settings, out) == {"code": 0, "dynamo": False, "pandas": False}
    records = read_metrics(out)
    assert any("val_bpb" in r for r in records) and len(records) >= 5
    events = _events(out)
    assert events == _expected(records)
    assert {"train_loss", "lr", "tokens_per_second", "val_bpb",
            TOKENS_PREFIX + "val_bpb"} <= set(events)


@pytest.mark.slow
def test_tensorboard_off_writes_no_event_files(tmp_path: Path) -> None:
    settings = make_settings(tmp_path, steps=4, eval_interval=0)
    assert _train(settings, tmp_path / "run")["code"] == 0
    assert not (tmp_path / "run" / TB_DIR).exists()


def test_missing_extra_stops_the_run_before_training(tmp_path: Path) -> None:
    """Without TensorBoard (its import blocked in a fresh process) the run stops with the
    extra's install command, before it writes a single metrics line."""
    settings = make_settings(tmp_path, tensorboard=True)
    block = "sys.modules['torch.utils.tensorboard'] = None  # as if not installed"
    report = _train(settings, tmp_path / "run", block)
    assert report["code"].startswith("SymatoError: run gpt-L1-D16-T10k: setting tensorboard "
                                     "is on, but TensorBoard cannot be imported")
    assert "pip install 'symato[tensorboard]'" in report["code"]
    assert not (tmp_path / "run" / "metrics.jsonl").exists()


def test_a_resumed_log_is_rewritten_from_the_records(tmp_path: Path) -> None:
    """The event files on disk may be ahead of a checkpoint: a resumed run's log holds
    exactly the records of its state, then what it adds (as metrics.jsonl)."""
    records = [{"step": s, "tokens": 128 * s, "train_loss": 5.0 / s, "lr": 0.001 * s,
                "tokens_per_second": 1000.0 + s} for s in range(1, 7)]
    log = EventLog(tmp_path, records)  # the first attempt got to step 6
    log.close()
    log = EventLog(tmp_path, records[:3])  # resumed from the checkpoint at step 3
    log.add({**records[3], "train_loss": 9.5, "val_bpb": 2.25})
    log.close()
    assert _events(tmp_path) == _expected([*records[:3], {**records[3], "train_loss": 9.5,
                                                          "val_bpb": 2.25}])


def test_setting_recorded_only_when_on(tmp_path: Path) -> None:
    """Off (its default) it is not in settings.json nor on the settings command line, so
    adding it to the contract reruns no finished run; on, it is recorded."""
    base = {"tokenizer": "symato", "arch": "gpt", "n_layer": 1, "n_embd": 32, "tokens": 10,
            "shards_dir": "x", "vocab_file": "y"}
    off = default_settings(**base, tensorboard=False)
    assert "tensorboard" not in off and "--tensorboard" not in command_args(off)
    on = default_settings(**base, tensorboard=True)
    assert on["tensorboard"] is True
    assert command_args(on)[command_args(on).index("--tensorboard") + 1] == "true"
    assert ordered({**on, "tensorboard": False}) == off
    out = tmp_path / "settings.json"  # the workflow's settings job reads it back
    assert settings_main(["--out", str(out), *command_args(on)]) == 0
    assert json.loads(out.read_text()) == on
