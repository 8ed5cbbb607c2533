"""The trainer on tiny synthetic runs: learning, schedule, resume, preemption, guards."""

from __future__ import annotations

import itertools
import math
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from _train_fixtures import (
    make_settings,
    read_metrics,
    restore_torch_globals,  # noqa: F401  (autouse fixture)
)
from torch._dynamo.utils import counters

from symato.errors import SymatoError
from symato.run.checkpoint import load_model
from symato.run.train import (
    CHECKPOINT_FILE,
    EXIT_PREEMPTED,
    METRICS_FILE,
    Trainer,
    learning_rate,
    load_settings,
    main,
    warmup_steps,
    window_share,
)


def _train(settings: Path, out: Path, resume: bool = False) -> int:
    argv = ["--settings", str(settings), "--out", str(out)]
    return main([*argv, "--resume", "auto"] if resume else argv)


def _weights(run: Path) -> dict[str, torch.Tensor]:
    model, _ = load_model(run)
    return model.state_dict()


def _assert_same_run(a: Path, b: Path) -> None:
    """Bitwise-equal final weights and identical per-step losses."""
    wa, wb = _weights(a), _weights(b)
    assert wa.keys() == wb.keys()
    for key in wa:
        assert torch.equal(wa[key], wb[key]), key
    la = [(r["step"], r["train_loss"], r.get("val_loss")) for r in read_metrics(a)]
    lb = [(r["step"], r["train_loss"], r.get("val_loss")) for r in read_metrics(b)]
    assert la == lb


@pytest.mark.parametrize("arch", ["gpt", "rwkv4"])
def test_training_lowers_the_loss(tmp_path: Path, arch: str) -> None:
    settings = make_settings(tmp_path, arch=arch, run=f"{arch}-L1-D16-T4k", steps=30)
    assert _train(settings, tmp_path / "run") == 0
    recs = read_metrics(tmp_path / "run")
    assert [r["step"] for r in recs] == list(range(1, 31))
    first, last = recs[0], recs[-1]
    assert last["train_loss"] < first["train_loss"] - 0.5
    evals = [r for r in recs if "val_loss" in r]
    assert [r["step"] for r in evals] == [10, 20, 30]
    assert evals[-1]["val_loss"] < evals[0]["val_loss"]
    assert all(r["val_bpb"] > 0 and math.isfinite(r["val_bpb"]) for r in evals)
    assert {"tokens", "lr", "grad_norm", "tokens_per_second"} <= set(last)
    model, meta = load_model(tmp_path / "run")
    assert meta["train_tokens"] == 30 * 8 * 16
    assert meta["train_flops"] == pytest.approx(model.flops_per_token() * meta["train_tokens"])
    assert meta["tokenizer"] == {"kind": "test", "size": 24}  # vocab embedded
    assert meta["settings"] == load_settings(settings)
    # what actually ran: precision auto is fp32 on CPU, no TF32 there
    assert meta["precision"] == "fp32" and meta["tf32"] is False
    assert meta["torch_version"] == torch.__version__
    assert isinstance(meta["device_name"], str) and meta["device_name"]
    # the operator backend that ran: RWKV's C++ kernel (auto on CPU), none for GPT
    assert meta["backend"] == {"rwkv4": "cpu", "gpt": "none"}[arch]
    if arch == "rwkv4":
        assert model.config.wkv_backend == "auto"  # the setting's default reached the model


def test_same_seed_same_bits_and_seed_matters(tmp_path: Path) -> None:
    a = make_settings(tmp_path / "a", steps=8)
    b = make_settings(tmp_path / "b", steps=8)
    c = make_settings(tmp_path / "c", steps=8, seed=8)
    for s in (a, b, c):
        assert _train(s, s.parent / "run") == 0
    _assert_same_run(tmp_path / "a/run", tmp_path / "b/run")
    assert read_metrics(tmp_path / "a/run")[-1]["train_loss"] != read_metrics(
        tmp_path / "c/run")[-1]["train_loss"]  # fmt: skip


def test_grad_accumulation_matches_one_big_batch(tmp_path: Path) -> None:
    one = make_settings(tmp_path / "one", steps=6)
    two = make_settings(tmp_path / "two", steps=6, grad_accum=2)
    for s in (one, two):
        assert _train(s, s.parent / "run") == 0
    l1 = [r["train_loss"] for r in read_metrics(tmp_path / "one/run")]
    l2 = [r["train_loss"] for r in read_metrics(tmp_path / "two/run")]
    assert l1 == pytest.approx(l2, rel=1e-5)


def test_interval_means_equal_per_step_reading(tmp_path: Path) -> None:
    """With log_interval 4 the loop reads the device once per line; each line's loss and
    grad norm are exactly the means of the per-step values a log_interval-1 run reads,
    and the training itself is untouched (same weights)."""
    each = make_settings(tmp_path / "each", steps=12, eval_interval=0)
    every4 = make_settings(tmp_path / "every4", steps=12, eval_interval=0, log_interval=4)
    for s in (each, every4):
        assert _train(s, s.parent / "run") == 0
    per_step = {r["step"]: r for r in read_metrics(tmp_path / "each/run")}
    lines = read_metrics(tmp_path / "every4/run")
    assert [r["step"] for r in lines] == [1, 4, 8, 12]
    previous = 0
    for line in lines:
        steps = range(previous + 1, line["step"] + 1)
        for key in ("train_loss", "grad_norm"):
            values = [per_step[i][key] for i in steps]
            assert line[key] == sum(values) / len(values), (line["step"], key)
        assert line["lr"] == per_step[line["step"]]["lr"]
        assert line["tokens_per_second"] > 0
        previous = line["step"]
    assert lines[-1]["val_loss"] == per_step[12]["val_loss"]
    wa, wb = _weights(tmp_path / "each/run"), _weights(tmp_path / "every4/run")
    assert all(torch.equal(wa[k], wb[k]) for k in wa)


def test_window_share_splits_the_eval_windows() -> None:
    for n in range(12):
        for world in range(1, 5):
            shares = [window_share(n, rank, world) for rank in range(world)]
            assert [i for a, b in shares for i in range(a, b)] == list(range(n))
            sizes = [b - a for a, b in shares]
            assert max(sizes) - min(sizes) <= 1


def test_schedules() -> None:
    base = {"lr": 1e-2, "lr_min": 1e-3, "warmup": 0.2, "steps": 20}  # 4 warmup steps
    for schedule in ("cosine", "exponential"):
        s = {**base, "schedule": schedule}
        lrs = [learning_rate(i, s) for i in range(20)]
        assert lrs[:4] == pytest.approx([2.5e-3, 5e-3, 7.5e-3, 1e-2])
        assert lrs[4] == pytest.approx(1e-2) and lrs[-1] == pytest.approx(1e-3)
        assert all(x >= y for x, y in itertools.pairwise(lrs[4:]))
    mid = learning_rate(4 + 15 // 2, {**base, "schedule": "exponential", "steps": 20})
    assert 1e-3 < mid < 1e-2
    # the warmup is a share of the run: the same share of a 10x longer run is 10x the steps
    assert warmup_steps({**base, "steps": 200}) == 40 and warmup_steps({**base, "warmup": 0}) == 0
    assert learning_rate(0, {**base, "warmup": 0, "schedule": "cosine"}) == pytest.approx(1e-2)


def _start(settings: Path, out: Path, resume: bool = False) -> subprocess.Popen:
    cmd = [sys.executable, "-m", "symato.cli", "train", "--settings", str(settings),
           "--out", str(out)] + (["--resume", "auto"] if resume else [])  # fmt: skip
    return subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)


def _wait_for_steps(proc: subprocess.Popen, run: Path, steps: int) -> None:
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        path = run / "metrics.jsonl"
        if path.exists() and len(path.read_text().splitlines()) >= steps:
            return
        assert proc.poll() is None, proc.stderr.read().decode() if proc.stderr else ""
        time.sleep(0.005)
    raise AssertionError("training subprocess made no progress")


# A model big enough that a step takes some milliseconds: the kill lands mid-run.
SLOW = {"n_layer": 2, "n_embd": 64, "head_size": 16, "ctx_len": 32, "steps": 60,
        "checkpoint_steps": 7, "run": "gpt-L2-D64-T30k", "eval_interval": 20}  # fmt: skip


@pytest.mark.slow
@pytest.mark.parametrize("log_interval", [1, 5])
def test_resume_after_sigkill_equals_uninterrupted(tmp_path: Path, log_interval: int) -> None:
    """With log_interval 5 the checkpoints (every 7 steps) fall inside a metrics interval:
    the resumed run must continue that interval's sums and log the same means."""
    ref = make_settings(tmp_path / "ref", **SLOW, log_interval=log_interval)
    assert _train(ref, tmp_path / "ref/run") == 0
    settings = make_settings(tmp_path / "killed", **SLOW, log_interval=log_interval)
    run = tmp_path / "killed/run"
    proc = _start(settings, run)
    lines = 16 if log_interval == 1 else 4  # step 16 or 15: past the first checkpoint
    _wait_for_steps(proc, run, lines)
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=60)
    assert proc.returncode == -signal.SIGKILL
    done = read_metrics(run)
    assert len(done) >= lines and done[-1]["step"] < SLOW["steps"], "the kill must land mid-run"
    assert not (run / "model.pt").exists()
    assert (run / CHECKPOINT_FILE).exists()
    assert _train(settings, run, resume=True) == 0
    _assert_same_run(tmp_path / "ref/run", run)


@pytest.mark.slow
def test_sigterm_saves_and_exits_nonzero_then_resumes(tmp_path: Path) -> None:
    ref = make_settings(tmp_path / "ref", **SLOW)
    assert _train(ref, tmp_path / "ref/run") == 0
    settings = make_settings(tmp_path / "term", **SLOW)
    run = tmp_path / "term/run"
    proc = _start(settings, run)
    _wait_for_steps(proc, run, 3)
    proc.send_signal(signal.SIGTERM)
    proc.wait(timeout=60)
    assert proc.returncode == EXIT_PREEMPTED
    state = torch.load(run / CHECKPOINT_FILE, weights_only=True)
    assert state["step"] == len(read_metrics(run)) < SLOW["steps"]
    assert _train(settings, run, resume=True) == 0
    _assert_same_run(tmp_path / "ref/run", run)


def test_corrupt_checkpoint_is_a_clear_error(tmp_path: Path) -> None:
    settings = make_settings(tmp_path, steps=4)
    run = tmp_path / "run"
    run.mkdir()
    (run / CHECKPOINT_FILE).write_bytes(b"PK\x03\x04 not really a checkpoint")
    with pytest.raises(SymatoError, match=r"checkpoint .*checkpoint.pt is corrupt"):
        _train(settings, run, resume=True)
    # without --resume auto the checkpoint is ignored and overwritten
    assert _train(settings, run) == 0


def test_checkpoint_of_other_settings_starts_fresh(tmp_path: Path) -> None:
    run = tmp_path / "run"
    assert _train(make_settings(tmp_path, steps=4, lr=0.02), run) == 0
    assert _train(make_settings(tmp_path, steps=6), run, resume=True) == 0
    fresh = tmp_path / "fresh"
    assert _train(make_settings(tmp_path, steps=6), fresh) == 0
    _assert_same_run(run, fresh)


def test_nan_loss_names_the_step_and_keeps_the_checkpoint(tmp_path: Path) -> None:
    settings = load_settings(make_settings(tmp_path, steps=10, checkpoint_steps=0))
    run = tmp_path / "run"
    run.mkdir()
    trainer = Trainer(settings, run, resume=False)
    for _ in range(4):
        trainer.train_step()
    trainer.checkpoint()
    good = (run / CHECKPOINT_FILE).read_bytes()
    with torch.no_grad():
        next(trainer.model.parameters()).fill_(float("nan"))
    with pytest.raises(SymatoError, match=r"loss became nan at step 5.*last good checkpoint"):
        trainer.run()
    assert (run / CHECKPOINT_FILE).read_bytes() == good
    assert not (run / "model.pt").exists()


@pytest.mark.parametrize("checkpoint_steps", [0, 4])
def test_nan_between_log_lines_names_its_first_step(tmp_path: Path,
                                                    checkpoint_steps: int) -> None:
    """Losses are read only at metrics lines (every 5 steps here) and checkpoints, yet the
    error names step 3, the first bad one, not the step where it was read; a checkpoint due
    after the bad step (step 4) is not written, the good one stays."""
    settings = load_settings(make_settings(tmp_path, steps=10, log_interval=5, eval_interval=0,
                                           checkpoint_steps=checkpoint_steps))
    run = tmp_path / "run"
    run.mkdir()
    trainer = Trainer(settings, run, resume=False)
    for _ in range(2):
        trainer.train_step()
    trainer.checkpoint()
    good = (run / CHECKPOINT_FILE).read_bytes()
    with torch.no_grad():
        next(trainer.model.parameters()).fill_(float("nan"))
    with pytest.raises(SymatoError, match=r"loss became nan at step 3;.*last good checkpoint"):
        trainer.run()
    assert trainer.step == (4 if checkpoint_steps else 5)  # where the guard read the device
    assert (run / CHECKPOINT_FILE).read_bytes() == good
    assert not (run / "model.pt").exists()
    assert not (run / METRICS_FILE).exists()  # no line was written after the bad step


def test_bf16_on_cpu_is_refused_before_training(tmp_path: Path) -> None:
    """precision bf16 used to run as plain float32 on CPU without a word; now it is an
    error naming the setting and the fixes, raised before anything is written."""
    settings = make_settings(tmp_path, precision="bf16")
    run = tmp_path / "run"
    with pytest.raises(SymatoError, match=r"precision='bf16' cannot be honoured on a CPU "
                                          r"device; set precision to 'fp32' or 'auto'.*CUDA"):
        _train(settings, run)
    assert not run.exists()
    for asked in ("fp32", "auto"):
        s = load_settings(make_settings(tmp_path / asked, precision=asked))
        trainer = Trainer(s, tmp_path / asked / "run", resume=False)
        assert (trainer.precision, trainer.bf16, trainer.tf32) == ("fp32", False, False)


def test_broken_compiler_fails_the_run_with_cause_and_fix(tmp_path: Path) -> None:
    """Issue #12: with wkv_backend auto a kernel build that failed used to fall back to the
    pure-PyTorch loop (100x slower) after one warning in the log. Now `symato train` with
    a compiler that does not work exits 1, naming cause and fix, before writing anything."""
    settings = make_settings(tmp_path, arch="rwkv4", run="rwkv4-L1-D16-T4k", steps=3)
    run = tmp_path / "run"
    env = {**os.environ, "CXX": "/bin/false", "SYMATO_BUILD_DIR": str(tmp_path / "build")}
    proc = subprocess.run([sys.executable, "-m", "symato.cli", "train", "--settings",
                           str(settings), "--out", str(run)],
                          capture_output=True, text=True, env=env, timeout=600)
    assert proc.returncode == 1, proc.stderr[-2000:]
    err = proc.stderr
    assert "symato train: error: wkv4: the cpu kernel could not be built" in err, err
    assert "compiler /bin/false" in err and "fix: the compiler /bin/false does not run" in err
    assert "wkv_backend: torch" in err and "Traceback" not in err
    assert not run.exists()


def test_torch_backend_by_name_runs_and_is_recorded(tmp_path: Path) -> None:
    """The slow loop runs when asked for by name, and the record says so."""
    settings = make_settings(tmp_path, arch="rwkv4", run="rwkv4-L1-D16-T4k", steps=2,
                             wkv_backend="torch", eval_interval=0)
    assert _train(settings, tmp_path / "run") == 0
    model, meta = load_model(tmp_path / "run")
    assert meta["backend"] == "torch"  # recorded in meta; the model loads with "auto"
    assert model.config.wkv_backend == "auto"
    gpt = load_settings(make_settings(tmp_path / "gpt", wkv_backend="torch"))
    assert Trainer(gpt, tmp_path / "gpt" / "run", resume=False).backend == "none"


def test_bad_settings_name_the_file_and_key(tmp_path: Path) -> None:
    path = make_settings(tmp_path)
    text = path.read_text().replace('"schedule": "cosine"', '"schedule": "linear"')
    path.write_text(text)
    with pytest.raises(SymatoError, match=r"settings.json.*schedule='linear'"):
        load_settings(path)
    os.remove(path)
    with pytest.raises(SymatoError, match="settings file not found"):
        load_settings(path)


@pytest.mark.slow  # torch.compile of forward and backward: about 30 s on 2 cores
def test_compiled_rwkv_run_matches_eager(tmp_path: Path) -> None:
    """``compile: true`` traces RWKV with its WKV custom op as one graph (no graph break:
    symato/models/ops/wkv4.py) and trains the same model as eager mode, to float rounding."""
    torch._dynamo.reset()
    over = {"arch": "rwkv4", "run": "rwkv4-L1-D16-T4k", "steps": 6, "eval_interval": 0}
    eager = make_settings(tmp_path / "e", **over)
    compiled = make_settings(tmp_path / "c", **over, compile=True)
    assert _train(eager, tmp_path / "e" / "run") == 0
    counters.clear()
    assert _train(compiled, tmp_path / "c" / "run") == 0
    assert not counters["graph_break"], dict(counters["graph_break"])
    le = [r["train_loss"] for r in read_metrics(tmp_path / "e" / "run")]
    lc = [r["train_loss"] for r in read_metrics(tmp_path / "c" / "run")]
    assert len(le) == len(lc) == 6
    assert lc == pytest.approx(le, rel=1e-4)
    we, wc = _weights(tmp_path / "e" / "run"), _weights(tmp_path / "c" / "run")
    assert we.keys() == wc.keys()  # no "_orig_mod." prefixes from the compiled wrapper
    for key in we:
        torch.testing.assert_close(wc[key], we[key], rtol=1e-3, atol=1e-5, msg=key)


def test_weight_decay_only_on_weight_matrices() -> None:
    from symato.models import build_model
    from symato.run.train import decays

    rwkv7 = build_model("rwkv7", vocab_size=30, n_layer=2, n_embd=32, n_head=2, ctx_len=8,
                        wkv_backend="torch")
    decayed = {n for n, p in rwkv7.named_parameters() if decays(n, p)}
    assert "blocks.1.att.key.weight" in decayed and "head.weight" in decayed
    assert "blocks.1.att.w1" not in decayed and "blocks.1.att.x_r" not in decayed  # LoRA, mix
    assert "blocks.0.ln1.weight" not in decayed  # 1-D
    rwkv = build_model("rwkv4", vocab_size=30, n_layer=1, n_embd=16, ctx_len=8)
    mixes = [n for n, p in rwkv.named_parameters() if "time_mix" in n]
    assert mixes and not any(decays(n, p) for n, p in rwkv.named_parameters() if n in mixes)
