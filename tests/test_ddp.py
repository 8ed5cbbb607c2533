"""Data-parallel training under torchrun: 2 CPU processes (gloo) == 1 process.

Every process draws the same global batch and trains on its half; DDP averages the
gradients, so the losses and weights must match a single process with the same global
batch up to float summation order.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from _train_fixtures import (
    make_settings,
    read_metrics,
    restore_torch_globals,  # noqa: F401  (autouse fixture)
)

from symato.run.checkpoint import load_model
from symato.run.train import main


@pytest.mark.slow
def test_two_gloo_processes_match_one(tmp_path: Path) -> None:
    settings = make_settings(tmp_path, steps=12, grad_accum=2, checkpoint_steps=5)
    assert main(["--settings", str(settings), "--out", str(tmp_path / "one")]) == 0
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node",
           "2", "-m", "symato.cli", "train", "--settings", str(settings),
           "--out", str(tmp_path / "two")]  # fmt: skip
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=240,
                              env={**os.environ, "OMP_NUM_THREADS": "1"})
    except subprocess.TimeoutExpired as exc:
        raise AssertionError(f"torchrun hung; its output: {exc.stdout!r} {exc.stderr!r}") from None
    assert proc.returncode == 0, proc.stderr[-3000:]
    one, two = read_metrics(tmp_path / "one"), read_metrics(tmp_path / "two")
    assert [r["step"] for r in one] == [r["step"] for r in two]
    assert [r["train_loss"] for r in two] == pytest.approx([r["train_loss"] for r in one],
                                                           rel=1e-4)  # fmt: skip
    assert two[-1]["val_loss"] == pytest.approx(one[-1]["val_loss"], rel=1e-4)
    m1, meta1 = load_model(tmp_path / "one")
    m2, meta2 = load_model(tmp_path / "two")
    assert meta2["world_size"] == 2 and meta2["train_tokens"] == meta1["train_tokens"]
    for (name, a), (_, b) in zip(m1.state_dict().items(), m2.state_dict().items(), strict=True):
        assert torch.allclose(a, b, rtol=1e-3, atol=1e-5), name
