"""Never stale, never silently wrong (issue #21): what a checkpoint, a model.pt and a
metrics.json record about their origin, who checks it, and the clear errors for
non-finite models, foreign vocabularies and bad token ids.

The stale-checkpoint case runs through the real Snakemake workflow (``slow``); the rest
use tiny synthetic runs."""

from __future__ import annotations

import json
import math
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import yaml
from _train_fixtures import (
    make_settings,
    make_shards,
    read_metrics,
    restore_torch_globals,  # noqa: F401  (autouse fixture)
)
from _workflow import CORPUS, REPO, SNAKEMAKE, tiny_data_config

from symato.data.loader import TokenDataset
from symato.errors import SymatoError
from symato.io import write_json_atomic
from symato.run.checkpoint import load_model, read_meta, read_payload
from symato.run.provenance import run_inputs, weights_digest
from symato.run.settings import load_settings
from symato.run.train import CHECKPOINT_FILE, Trainer, main, strict_json_line


def _train(settings: Path, out: Path, resume: bool = True) -> int:
    argv = ["--settings", str(settings), "--out", str(out)]
    return main([*argv, "--resume", "auto"] if resume else argv)


def _interrupted(settings: Path, out: Path, steps: int = 3) -> None:
    """Leave ``out`` as a run killed after ``steps`` steps leaves it: a checkpoint."""
    trainer = Trainer(load_settings(settings), out, resume=False)
    out.mkdir(parents=True, exist_ok=True)
    for _ in range(steps):
        trainer.train_step()
    trainer.checkpoint()


def _cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "symato.cli", *args], capture_output=True,
                          text=True, timeout=300, check=False)


# ----------------------------------------------------------------------------- checkpoints
def test_checkpoint_of_changed_inputs_is_not_resumed(tmp_path: Path,
                                                     capsys: pytest.CaptureFixture) -> None:
    settings = make_settings(tmp_path, steps=8)
    run = tmp_path / "run"
    _interrupted(settings, run)
    # the vocabulary changes content (same settings, same path): the checkpoint is stale
    (tmp_path / "vocab.json").write_text(json.dumps({"kind": "test", "size": 24, "v": 2}))
    capsys.readouterr()
    assert _train(settings, run) == 0
    log = capsys.readouterr().err
    assert "not resuming" in log and "inputs changed since (vocab" in log
    assert "resumed from" not in log
    assert read_metrics(run)[0]["step"] == 1
    # ...and the run equals a fresh one on the new inputs
    fresh = tmp_path / "fresh"
    assert _train(settings, fresh, resume=False) == 0
    a, b = load_model(run)[0].state_dict(), load_model(fresh)[0].state_dict()
    assert all(torch.equal(a[k], b[k]) for k in a)


def test_checkpoint_of_changed_shards_is_not_resumed(tmp_path: Path,
                                                     capsys: pytest.CaptureFixture) -> None:
    settings = make_settings(tmp_path, steps=8)
    run = tmp_path / "run"
    _interrupted(settings, run)
    shutil.rmtree(tmp_path / "shards")
    make_shards(tmp_path / "shards", seed=1)  # same counts' shape, other token ids
    capsys.readouterr()
    assert _train(settings, run) == 0
    assert "inputs changed since (shards" in capsys.readouterr().err


def test_interrupted_run_resumes_and_finished_run_retrains(
        tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    settings = make_settings(tmp_path, steps=8)
    run = tmp_path / "run"
    _interrupted(settings, run)
    capsys.readouterr()
    assert _train(settings, run) == 0
    assert "at step 3" in capsys.readouterr().err.split("resumed from", 1)[1]
    assert not (run / CHECKPOINT_FILE).exists(), "a finished run removes its checkpoint"
    meta = load_model(run)[1]
    assert meta["inputs"] == run_inputs(load_settings(settings))
    # a rerun of the finished run (snakemake --forcerun) trains anew
    assert _train(settings, run) == 0
    assert "resumed" not in capsys.readouterr().err
    assert read_metrics(run)[0]["step"] == 1


def test_checkpoint_without_digests_is_not_resumed(tmp_path: Path,
                                                   capsys: pytest.CaptureFixture) -> None:
    settings = make_settings(tmp_path, steps=6)
    run = tmp_path / "run"
    _interrupted(settings, run)
    state = torch.load(run / CHECKPOINT_FILE, weights_only=True)
    del state["inputs_json"]  # as written before the digests existed
    torch.save(state, run / CHECKPOINT_FILE)
    capsys.readouterr()
    assert _train(settings, run) == 0
    assert "records no digests of its inputs" in capsys.readouterr().err


# ----------------------------------------------------------------------------- model files
@pytest.fixture
def trained(tmp_path: Path) -> Path:
    """A finished tiny run with a real (bytes) vocabulary, so evaluation can decode."""
    from symato.text.tokenizer import Tokenizer, bytes_dict

    write_json_atomic(tmp_path / "vocab.json", bytes_dict())
    make_shards(tmp_path / "shards", vocab_size=Tokenizer.from_dict(bytes_dict()).vocab_size)
    settings = make_settings(tmp_path, steps=4)
    assert _train(settings, tmp_path / "run", resume=False) == 0
    return tmp_path / "run"


def _rewrite(run: Path, edit, keep_digest: bool) -> Path:
    """model.pt with its weights edited; its recorded digest kept or made to match."""
    payload = read_payload(run)
    edit(payload["state_dict"])
    if not keep_digest:
        payload["meta"]["weights_sha256"] = weights_digest(payload["state_dict"])
    torch.save(payload, run / "model.pt")
    return run / "model.pt"


def test_model_records_its_digest_and_a_damaged_file_is_refused(trained: Path) -> None:
    meta = read_meta(trained)
    assert meta["weights_sha256"] == weights_digest(load_model(trained)[0].state_dict())

    def nudge(state: dict) -> None:
        first = next(iter(state))
        state[first].view(-1)[0] += 1e-3

    _rewrite(trained, nudge, keep_digest=True)
    with pytest.raises(SymatoError, match=r"model.pt: the weights do not match the digest"):
        load_model(trained)


@pytest.mark.parametrize("value", [math.inf, math.nan])
def test_non_finite_weights_stop_evaluate_and_generate(trained: Path, value: float) -> None:
    def poison(state: dict) -> None:
        name = next(k for k in state if k.endswith("weight"))
        state[name].view(-1)[3] = value

    path = _rewrite(trained, poison, keep_digest=False)  # a consistent, but broken, file
    for cmd in (["evaluate", "--run", str(trained), "--restoration-syllables", "0"],
                ["generate", "--ckpt", str(path), "--prompt", "a", "--max-new-tokens", "2"]):
        proc = _cli(*cmd)
        assert proc.returncode == 1, proc.stderr
        assert f"{path}: tensor" in proc.stderr and "non-finite" in proc.stderr
    assert not (trained / "metrics.json").exists()


def test_non_finite_evaluation_result_is_an_error(trained: Path) -> None:
    def overflow(state: dict) -> None:  # finite weights whose logits overflow float32
        for name, t in state.items():
            if t.is_floating_point() and t.ndim == 2:
                t.fill_(3e38 if "head" in name or "wte" in name or "emb" in name else 1e20)

    _rewrite(trained, overflow, keep_digest=False)
    proc = _cli("evaluate", "--run", str(trained), "--restoration-syllables", "0")
    assert proc.returncode == 1
    assert "non-finite number at key" in proc.stderr and "model.pt" in proc.stderr
    assert not (trained / "metrics.json").exists()


def test_evaluation_records_the_model_and_refuses_changed_shards(trained: Path) -> None:
    proc = _cli("evaluate", "--run", str(trained), "--restoration-syllables", "0")
    assert proc.returncode == 0, proc.stderr
    metrics = json.loads((trained / "metrics.json").read_text())
    assert metrics["model_sha256"] == read_meta(trained)["weights_sha256"]
    shards = trained.parent / "shards"
    shutil.rmtree(shards)
    make_shards(shards, seed=3)
    proc = _cli("evaluate", "--run", str(trained), "--restoration-syllables", "0")
    assert proc.returncode == 1
    assert "was trained on other shards" in proc.stderr and str(shards) in proc.stderr


def test_collect_refuses_metrics_of_another_model(trained: Path) -> None:
    from symato.report.collect import run_row

    assert _cli("evaluate", "--run", str(trained), "--restoration-syllables", "0"
                ).returncode == 0
    assert run_row(trained)["loss"] > 0
    _rewrite(trained, lambda s: next(iter(s.values())).mul_(0.5), keep_digest=False)
    with pytest.raises(SymatoError, match=r"metrics.json evaluated another model"):
        run_row(trained)


# ----------------------------------------------------------------------------- strict JSON
def test_json_writers_refuse_non_finite_numbers(tmp_path: Path) -> None:
    with pytest.raises(SymatoError, match=r"out.json: .*non-finite number at key 'a'.b\[1\]"):
        write_json_atomic(tmp_path / "out.json", {"a": {"b": [1.0, math.nan]}})
    assert not (tmp_path / "out.json").exists()
    with pytest.raises(SymatoError, match=r"step 9: grad_norm=inf is not finite"):
        strict_json_line({"step": 9, "grad_norm": math.inf}, "run x, step 9")


# ----------------------------------------------------------------------------- smaller items
def test_token_id_outside_the_vocabulary_names_the_shard(tmp_path: Path) -> None:
    shards = make_shards(tmp_path / "shards", vocab_size=40)
    manifest = json.loads((shards / "manifest.json").read_text())
    manifest["vocab_size"] = 24  # the shards hold ids up to 39
    (shards / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(SymatoError, match=r"token shard .*train/000.arrow: token id \d+ at "
                                          r"token \d+ is outside the vocabulary of 24 ids"):
        TokenDataset(shards, "train", 8)


def test_generate_refuses_another_vocabulary(trained: Path) -> None:
    other = trained.parent / "other.json"
    other.write_text(json.dumps({"kind": "bytes"}))
    proc = _cli("generate", "--ckpt", str(trained), "--vocab", str(other), "--prompt", "a")
    assert proc.returncode == 1
    assert f"{other} is not the vocabulary" in proc.stderr and "omit --vocab" in proc.stderr
    # the model's own vocabulary file is accepted
    own = trained.parent / "vocab.json"
    proc = _cli("generate", "--ckpt", str(trained), "--vocab", str(own), "--prompt", "a",
                "--max-new-tokens", "2")
    assert "is not the vocabulary" not in proc.stderr


@pytest.mark.parametrize(("args", "message"), [
    (["--temperature", "nan"], "argument --temperature: 'nan' is not a finite number >= 0"),
    (["--temperature", "-1"], "is not a finite number >= 0"),
    (["--top-p", "inf"], "argument --top-p: 'inf' is not a finite number in [0.0, 1.0]"),
])
def test_generate_rejects_non_finite_sampling_settings(trained: Path, args: list[str],
                                                       message: str) -> None:
    proc = _cli("generate", "--ckpt", str(trained), *args)
    assert proc.returncode == 2 and message in proc.stderr
    assert "Traceback" not in proc.stderr


@pytest.mark.skipif(torch.cuda.is_available(), reason="needs a machine without CUDA")
@pytest.mark.parametrize("command", ["generate", "evaluate"])
def test_cuda_device_without_cuda_is_a_clear_error(trained: Path, command: str) -> None:
    where = ["--ckpt", str(trained)] if command == "generate" else ["--run", str(trained)]
    proc = _cli(command, *where, "--device", "cuda")
    assert proc.returncode == 1, proc.stderr
    assert "--device cuda: CUDA is not available" in proc.stderr
    assert "Traceback" not in proc.stderr


def test_random_bytes_model_never_advises_unsafe_loading(tmp_path: Path) -> None:
    junk = tmp_path / "model.pt"
    junk.write_bytes(bytes(range(256)) * 20)
    proc = _cli("generate", "--ckpt", str(junk))
    assert proc.returncode == 1
    assert f"cannot read checkpoint {junk}" in proc.stderr
    assert "weights_only" not in proc.stderr and "False" not in proc.stderr


# ----------------------------------------------------------------------------- the workflow
RUN = "gpt-L1-D16-T6k"


def _config(val_fraction: float) -> dict:
    config = tiny_data_config()
    config["tokenizers"] = ["symato"]
    config["clean"] = {"val_fraction": val_fraction}
    config["train"] = {
        "grids": [{"name": "t", "tokenizers": "all", "archs": ["gpt"], "sizes": ["L1-D16"],
                   "tokens": [6000]}],
        "settings": {"ctx_len": 16, "batch_size": 8, "eval_interval": 0, "eval_windows": 2,
                     "checkpoint_steps": 0, "checkpoint_minutes": 0,
                     "max_epochs": 10},  # the tiny corpus holds about 2k training tokens
    }
    return config


def _snakemake(work: Path, config: dict, *args: str) -> str:
    (work / "config.yaml").write_text(yaml.safe_dump(config, allow_unicode=True))
    cmd = [str(SNAKEMAKE), "-s", str(REPO / "Snakefile"), "--directory", str(work),
           "--configfile", str(work / "config.yaml"), "--cores", "2", *args]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=600, check=False)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    return proc.stdout + proc.stderr


@pytest.mark.slow
def test_workflow_never_resumes_a_stale_checkpoint(tmp_path: Path,
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    """The issue's reproduction: a run trained, clean.val_fraction changed (new vocabulary
    and shards), the run retrained by Snakemake; and a --forcerun of a finished run."""
    monkeypatch.chdir(tmp_path)  # the settings' paths are relative to the workflow folder
    (tmp_path / "input").mkdir()
    shutil.copy(CORPUS, tmp_path / "input" / "vi.txt")
    run = tmp_path / "results" / "runs" / "symato" / RUN
    target = f"results/runs/symato/{RUN}/model.pt"
    log = tmp_path / "results" / "logs" / "train" / "symato" / f"{RUN}.log"
    _snakemake(tmp_path, _config(0.2), target)
    old = read_meta(run)
    assert not (run / CHECKPOINT_FILE).exists()
    # an interrupted retraining leaves a checkpoint of the old inputs behind
    _interrupted(run / "settings.json", run, steps=2)

    _snakemake(tmp_path, _config(0.3), target)
    text = log.read_text()
    assert "not resuming" in text and "inputs changed since (shards" in text, text
    assert "resumed from" not in text
    new = read_meta(run)
    assert new["inputs"] == run_inputs(load_settings(run / "settings.json"))
    assert new["inputs"]["shards"] != old["inputs"]["shards"]
    assert new["weights_sha256"] != old["weights_sha256"]
    assert read_metrics(run)[0]["step"] == 1

    _snakemake(tmp_path, _config(0.3), target, "--forcerun", "train")
    text = log.read_text()
    assert "resumed" not in text and "not resuming" not in text and "done:" in text
    assert read_meta(run)["weights_sha256"] == new["weights_sha256"]  # same run, anew
