"""Data-parallel training under torchrun: 2 CPU processes (gloo) == 1 process.

Every process draws the same global batch and trains on its half; DDP averages the
gradients, so the losses and weights must match a single process with the same global
batch up to float summation order.
"""

from __future__ import annotations

import json
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
from symato.run.settings import load_settings
from symato.run.train import Trainer, main


def _torchrun(args: list[str], timeout: int = 240, **env: str) -> subprocess.CompletedProcess:
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node",
           "2", *args]  # fmt: skip
    try:
        return subprocess.run(cmd, capture_output=True, text=True, timeout=timeout,
                              env={**os.environ, "OMP_NUM_THREADS": "1", **env})
    except subprocess.TimeoutExpired as exc:
        raise AssertionError(f"torchrun hung; its output: {exc.stdout!r} {exc.stderr!r}") from None


# Run by each of the two processes: build the trainer (same seed, same initial weights),
# validate once, write this rank's result.
VALIDATE = """
import gc, json, os, sys
from pathlib import Path
from symato.run.settings import load_settings
from symato.run.train import Trainer
trainer = Trainer(load_settings(sys.argv[1]), Path(sys.argv[2]), resume=False)
result = trainer.validate()
Path(sys.argv[2], f"rank{os.environ['RANK']}.json").write_text(json.dumps(result))
dist = trainer.dist
trainer.net = trainer.model = trainer.optimizer = None
del trainer
gc.collect()
dist.close()
"""


@pytest.mark.slow
def test_validation_split_across_two_processes_equals_one(tmp_path: Path) -> None:
    """Each process evaluates its share of the eval windows (3 and 4 of 7 here) and the
    sums are all-reduced: both get the single-process value."""
    settings = make_settings(tmp_path, eval_windows=7)
    one = Trainer(load_settings(settings), tmp_path / "one", resume=False).validate()
    script = tmp_path / "validate.py"
    script.write_text(VALIDATE)
    (tmp_path / "two").mkdir()
    proc = _torchrun([str(script), str(settings), str(tmp_path / "two")])
    assert proc.returncode == 0, proc.stderr[-3000:]
    ranks = [json.loads((tmp_path / "two" / f"rank{r}.json").read_text()) for r in (0, 1)]
    assert ranks[0] == ranks[1]
    assert ranks[0] == pytest.approx(list(one), rel=1e-6)


@pytest.mark.slow
def test_two_gloo_processes_match_one(tmp_path: Path) -> None:
    settings = make_settings(tmp_path, steps=12, grad_accum=2, checkpoint_steps=5)
    assert main(["--settings", str(settings), "--out", str(tmp_path / "one")]) == 0
    proc = _torchrun(["-m", "symato.cli", "train", "--settings", str(settings),
                      "--out", str(tmp_path / "two")])
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


@pytest.mark.slow  # torch.compile in two processes and one: about a minute on 2 cores
def test_compiled_model_under_ddp_matches_one_process(tmp_path: Path) -> None:
    """``compile: true`` under torchrun: the inner module is compiled, then wrapped in DDP
    (PyTorch's documented order); Dynamo still sees the active DDP module and hands the
    graph to DDPOptimizer (its log line proves it), and 2 processes train what 1 does."""
    settings = make_settings(tmp_path, steps=4, grad_accum=2, checkpoint_steps=0,
                             eval_interval=0, compile=True)
    assert main(["--settings", str(settings), "--out", str(tmp_path / "one")]) == 0
    proc = _torchrun(["-m", "symato.cli", "train", "--settings", str(settings),
                      "--out", str(tmp_path / "two")], timeout=400,
                     TORCH_LOGS="torch._dynamo.backends.distributed")
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "DDPOptimizer used bucket cap" in proc.stderr
    one, two = read_metrics(tmp_path / "one"), read_metrics(tmp_path / "two")
    assert [r["train_loss"] for r in two] == pytest.approx([r["train_loss"] for r in one],
                                                           rel=1e-4)  # fmt: skip
