"""Guards against absurd work (issue #21): a budget that repeats the training text more
than ``max_epochs`` times, and a run beyond the sanity limits without ``allow_large``, are
config errors before any job where they can be known, naming the run and the numbers."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml
from _workflow import CORPUS, REPO, SNAKEMAKE, prepared, tiny_data_config
from test_grid_bytes import byte_config, real_shards

from symato.errors import SymatoError
from symato.run.grid import check_budgets, expand_grid
from symato.run.settings import (
    MAX_PARAMS,
    MAX_TOKENS,
    block_params,
    command_args,
    default_settings,
)
from symato.run.settings import main as settings_main

TINY_RUN = {"name": "tiny", "tokenizers": ["symato"], "archs": ["rwkv4"], "sizes": ["L1-D32"]}


def tiny_grid(**budget: list[int]) -> dict:
    """The demo config with one symato sub-grid of ``budget`` (tokens= or bytes=)."""
    config = yaml.safe_load((REPO / "config.yaml").read_text(encoding="utf-8"))
    config["train"]["grids"] = [{**TINY_RUN, **budget}]
    return config


# ----------------------------------------------------------------- sanity limits
@pytest.mark.parametrize(("size", "budget", "named"), [
    ("L100-D65536", {"tokens": [1000]}, r"rwkv4-L100-D65536-T1k: 5\.15e\+12 block parameters"),
    ("L1-D32", {"tokens": [10**12]}, r"rwkv4-L1-D32-T1000G: 1e\+12 training tokens .* 1e\+11"),
    ("L1-D32", {"bytes": [10**12]}, r"rwkv4-L1-D32-B1000G: 1e\+12 bytes of training text"),
])
def test_beyond_the_sanity_limits_needs_allow_large(size, budget, named) -> None:
    config = tiny_grid(**budget)
    config["train"]["grids"][0]["sizes"] = [size]
    with pytest.raises(SymatoError, match=rf"config train\.grids\[0\]: run {named}.*allow_large"):
        expand_grid(prepared(config))
    config["train"]["settings"]["allow_large"] = True
    (run,) = expand_grid(prepared(config))
    assert run["settings"]["allow_large"] is True  # a guard off its default is recorded


def test_the_gpu_grid_is_within_the_limits() -> None:
    from snakemake.utils import update_config

    config = yaml.safe_load((REPO / "config.yaml").read_text(encoding="utf-8"))
    update_config(config, yaml.safe_load((REPO / "config-gpu.yaml").read_text(encoding="utf-8")))
    runs = expand_grid(prepared(config))
    assert len(runs) == 570  # 504 + symato-words11008 (48) + the epochs study (18)
    biggest = max(block_params(r["n_layer"], r["n_embd"]) for r in runs)
    assert biggest < MAX_PARAMS / 100
    assert max(r["text_bytes"] or r["tokens"] for r in runs) < MAX_TOKENS / 100


def test_block_params_estimates_every_architecture() -> None:
    """12 x n_layer x n_embd^2 is within 10% of the real counts (vocabulary of 100)."""
    import torch

    from symato.models import model_for_run
    from symato.models.registry import ARCHITECTURES

    for arch in ARCHITECTURES:
        s = default_settings(tokenizer="symato", arch=arch, n_layer=12, n_embd=768, tokens=10,
                             shards_dir="x", vocab_file="y")
        with torch.device("meta"):
            model = model_for_run(s, 100)
        real = sum(p.numel() for p in model.parameters())
        assert 1.0 <= real / block_params(12, 768) < 1.1, arch


def test_guards_at_their_default_are_not_recorded() -> None:
    """So that adding a guard to the contract reruns no finished run (params unchanged)."""
    for run in expand_grid(prepared(tiny_grid(tokens=[1000]))):
        assert "max_epochs" not in run["settings"] and "allow_large" not in run["settings"]
        assert "--max-epochs" not in command_args(run["settings"])
    s = default_settings(tokenizer="symato", arch="gpt", n_layer=1, n_embd=32, tokens=10,
                         shards_dir="x", vocab_file="y", max_epochs=1.0)
    assert "max_epochs" not in s


# ------------------------------------------------------- repetition: the settings job
def test_settings_job_refuses_a_byte_budget_beyond_the_text(tmp_path: Path) -> None:
    manifest = real_shards(tmp_path, ("symato",))["symato"]
    train = json.loads(manifest.read_text())["splits"]["train"]
    entry = next(r for r in expand_grid(byte_config([20000]), results=str(tmp_path / "results"))
                 if r["tokenizer"] == "symato" and r["text_bytes"] == 20000)
    out = tmp_path / "settings.json"
    passes = 20000 / train["bytes"]
    with pytest.raises(SymatoError, match=(
            rf"run symato/rwkv4-L2-D64-B20k: its budget of 20000 bytes of text is {passes:.4g} "
            rf"passes over the training text, which holds {train['bytes']} bytes "
            rf"\({train['tokens']} tokens; train split of .*manifest.json\), and max_epochs is 1")):
        settings_main(["--out", str(out), *command_args(entry["settings"])])
    assert not out.exists()
    # the repeated-data setting allows it, and is recorded
    args = command_args({**entry["settings"], "max_epochs": 4.0})
    assert settings_main(["--out", str(out), *args]) == 0
    assert json.loads(out.read_text())["max_epochs"] == 4.0


def test_check_budgets_reads_existing_manifests_only(tmp_path: Path) -> None:
    runs = expand_grid(prepared(tiny_grid(tokens=[10000])))
    check_budgets(runs, tmp_path / "results")  # no shards yet: nothing to check against
    real_shards(tmp_path, ("symato",))
    with pytest.raises(SymatoError, match=r"config train.grids \(tiny\): run symato/rwkv4-L1-D32"
                       r"-T10k: its budget of 10000 tokens is 4\.\d+ passes"):
        check_budgets(runs, tmp_path / "results")
    (tmp_path / "results/shards/symato/manifest.json").write_text("{}")
    check_budgets(runs, tmp_path / "results")  # unreadable: left to the jobs that read it


# ------------------------------------------------ repetition: before any job (Snakefile)
def _dry_run(work: Path, *config: str) -> subprocess.CompletedProcess[str]:
    cmd = [str(SNAKEMAKE), "-s", str(REPO / "Snakefile"), "--directory", str(work),
           "--configfile", str(work / "config.yaml"), "-n", "-q", *config]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=240, check=False)


def test_snakefile_refuses_repetition_of_existing_shards(tmp_path: Path) -> None:
    (tmp_path / "input").mkdir()
    shutil.copy(CORPUS, tmp_path / "input" / "vi.txt")
    config = tiny_data_config(tokenizers=["symato"])
    config["train"]["grids"][0]["tokens"] = [10000]
    config["train"]["settings"] = {}  # max_epochs at its default, 1
    (tmp_path / "config.yaml").write_text(yaml.safe_dump(config))
    assert _dry_run(tmp_path).returncode == 0  # no shards: the jobs will know
    real_shards(tmp_path, ("symato",))
    proc = _dry_run(tmp_path)
    out = proc.stdout + proc.stderr
    assert proc.returncode != 0
    assert "config error: config train.grids (tiny): run symato/rwkv4-L1-D32-T10k" in out
    assert "max_epochs" in out and not (tmp_path / "results/runs").exists()
    allowed = _dry_run(tmp_path, "--config", "train={settings: {max_epochs: 5}}")
    assert allowed.returncode == 0, allowed.stderr[-2000:]
