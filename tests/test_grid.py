"""The run grid: names, settings, and the Snakemake rules' dry-run job counts.

The dry-run tests run real Snakemake on rules/train.smk + rules/eval.smk in a temporary
folder. Data-stage outputs are stand-in files, and `symato` is replaced by a stub that
only creates the expected outputs, so the tests check what reruns, not the training.
"""

from __future__ import annotations

import copy
import csv
import json
import re
import subprocess
from pathlib import Path

import pytest
import yaml
from _workflow import REPO, SNAKEMAKE, prepared, reversed_keys

from symato.errors import SymatoError
from symato.run.grid import eval_groups, expand_grid, format_tokens, run_name_pattern
from symato.run.settings import command_args
from symato.run.settings import main as settings_main
from symato.run.wsd import stable_runs


def demo_config() -> dict:
    return prepared(yaml.safe_load((REPO / "config.yaml").read_text(encoding="utf-8")))


def test_demo_grid_has_the_required_runs() -> None:
    """The demo answers both studies (issues #13, #14) with the sizes they ask for."""
    config = demo_config()
    runs = expand_grid(config)
    base = [r for r in runs if r["settings"]["split_syllables"] == 0
            and r["settings"]["lr"] == _configured_lr(config, r["arch"])]
    # the tokenizer study: every tokenizer at >= 2 sizes and >= 4 text budgets over >= 30x
    study = [r for r in base if "tokenizers" in r["grids"]]
    assert {r["tokenizer"] for r in study} == set(config["tokenizers"])
    for tok in config["tokenizers"]:
        mine = [r for r in study if r["tokenizer"] == tok]
        assert len({(r["n_layer"], r["n_embd"]) for r in mine}) >= 2, tok
        budgets = sorted({r["text_bytes"] for r in mine})
        assert len(budgets) >= 4 and budgets[-1] >= 30 * budgets[0], (tok, budgets)
    # every architecture at >= 4 sizes (an L(N) fit each)
    for arch in ("rwkv4", "gpt", "rwkv7", "llama"):
        sizes = {(r["n_layer"], r["n_embd"]) for r in base
                 if r["arch"] == arch and r["tokenizer"] == "symato"}
        assert len(sizes) >= 4, arch
    # the lr sweep: 3 values at the smallest and the largest size of each architecture
    for arch in ("rwkv4", "gpt", "rwkv7", "llama"):
        sym = [r for r in runs if r["arch"] == arch and r["tokenizer"] == "symato"
               and r["text_bytes"] == 100000 and r["settings"]["split_syllables"] == 0]
        widths = sorted({r["n_embd"] for r in sym})
        for width in (widths[0], widths[-1]):
            lrs = {r["settings"]["lr"] for r in sym if r["n_embd"] == width}
            assert len(lrs) >= 3, (arch, width, lrs)
    # split-form probabilities 0, 0.1 and 0.3 for a symato+N kind
    split = {r["settings"]["split_syllables"] for r in runs
             if r["tokenizer"].startswith("symato+") and r["run"].startswith("rwkv4-L2-D64-B300k")}
    assert {0.0, 0.1, 0.3} <= split
    keys = [(r["tokenizer"], r["run"]) for r in runs]
    assert len(keys) == len(set(keys))  # a run asked for by two sub-grids exists once
    assert all(re.fullmatch(run_name_pattern(), r["run"]) for r in runs)


def _configured_lr(config: dict, arch: str) -> float:
    return config["train"]["arch_overrides"].get(arch, {}).get(
        "lr", config["train"]["settings"]["lr"])


def test_settings_and_overrides() -> None:
    config = demo_config()
    by_name = {(r["tokenizer"], r["run"]): r["settings"] for r in expand_grid(config)}
    gpt = by_name[("symato", "gpt-L2-D64-B100k")]
    rwkv = by_name[("symato", "rwkv4-L2-D64-B100k")]
    assert gpt["lr"] == config["train"]["arch_overrides"]["gpt"]["lr"]
    assert rwkv["lr"] == config["train"]["settings"]["lr"]
    assert gpt["text_bytes"] == 100000 and "steps" not in gpt  # resolved at training
    assert gpt["n_embd"] % gpt["head_size"] == 0
    assert rwkv["shards_dir"] == "results/shards/symato"
    assert rwkv["vocab_file"] == "results/vocab/symato.json"
    # schema defaults fill what config.yaml leaves out
    assert rwkv["beta2"] == 0.99 and rwkv["grad_accum"] == 1
    # device auto follows the GPUs the job declares
    assert rwkv["device"] == "cpu"
    config["train"]["gpus_per_run"] = 1
    assert all(r["settings"]["device"] == "cuda" for r in expand_grid(config))
    # the settings' key order is the contract's, whatever order config.yaml uses
    shuffled = demo_config()
    shuffled["train"]["settings"] = dict(reversed(shuffled["train"]["settings"].items()))
    assert [list(r["settings"]) for r in expand_grid(shuffled)] == [
        list(r["settings"]) for r in expand_grid(demo_config())]


def test_format_tokens() -> None:
    assert [format_tokens(n) for n in (150000, 3_000_000, 2 * 10**9, 1234)] == [
        "150k", "3M", "2G", "1234"]  # fmt: skip


def test_bad_grid_configs_name_the_key() -> None:
    config = demo_config()
    bad = copy.deepcopy(config)
    bad["train"]["grids"][0]["tokenizers"] = ["nope"]
    with pytest.raises(SymatoError, match=r"train.grids\[0\].*'nope'"):
        expand_grid(bad)
    bad = copy.deepcopy(config)
    bad["train"]["grids"][0]["sizes"] = ["L2-D63"]  # 63 not divisible by head_size 16
    bad["train"]["grids"][0]["archs"] = ["gpt"]
    with pytest.raises(SymatoError, match="L2-D63"):
        expand_grid(bad)


def test_run_settings_cli_round_trip(tmp_path: Path) -> None:
    config = demo_config()  # a token budget: a byte budget resolves against a manifest
    config["train"]["grids"] = [{"tokenizers": ["symato"], "archs": ["gpt"],
                                 "sizes": ["L2-D64"], "tokens": [30000]}]
    settings = expand_grid(config)[0]["settings"]
    out = tmp_path / "settings.json"
    assert settings_main(["--out", str(out), *command_args(settings)]) == 0
    assert json.loads(out.read_text()) == settings
    with pytest.raises(SymatoError, match="grad_accum"):
        settings_main(["--out", str(out), *command_args({**settings, "grad_accum": 3})])


def test_rwkv7_and_llama_in_the_grid() -> None:
    """Both new archs expand to runs the train rules accept, with head_size shaping heads."""
    from symato.models import model_for_run

    config = demo_config()
    config["train"]["grids"] = [{"tokenizers": ["symato"], "archs": ["rwkv7", "llama"],
                                 "sizes": ["L2-D64"], "tokens": [30000]}]  # fmt: skip
    runs = {r["run"]: r["settings"] for r in expand_grid(config)}
    assert set(runs) == {"rwkv7-L2-D64-T30k", "llama-L2-D64-T30k"}
    pattern = run_name_pattern()
    assert all(re.fullmatch(pattern, name) for name in [*runs, "rwkv4-L1-D8-B7k", "gpt-L1-D8-T1"])
    assert not re.fullmatch(pattern, "mamba-L2-D64-T30k")
    rwkv7 = model_for_run(runs["rwkv7-L2-D64-T30k"], vocab_size=10)
    assert rwkv7.config.head_size == config["train"]["settings"]["head_size"] == 16
    llama = model_for_run(runs["llama-L2-D64-T30k"], vocab_size=10)
    assert llama.config.n_head == 64 // 16
    config["train"]["grids"][0]["sizes"] = ["L2-D40"]  # 40 is not a multiple of 16
    with pytest.raises(SymatoError, match="L2-D40"):
        expand_grid(config)
    config["train"]["grids"][0]["sizes"] = ["L2-D45"]
    config["train"]["settings"]["head_size"] = 15
    config["train"]["grids"][0]["archs"] = ["llama"]
    with pytest.raises(SymatoError, match="llama needs a head_size that is a multiple of 2"):
        expand_grid(config)


# ----------------------------------------------------------------------------- dry runs
STUB = """#!/bin/sh
cmd=$1; shift
if [ "$cmd $1" = "evaluate unpack" ]; then cmd=unpack; shift; fi
runs=""
while [ $# -gt 0 ]; do case $1 in
  --out) out=$2;; --group-out) out=$2;; --run) runs="$runs $2";; esac; shift; done
case $cmd in
  settings|build|unpack) echo '{}' > "$out";;
  train) case $out in
    */stable/*) echo '{}' > "$out/stable.json"; touch "$out/metrics.jsonl";;  # WSD stable
    *) touch "$out/model.pt" "$out/metrics.jsonl";;
  esac;;
  evaluate)  # one group file with every run's (empty) metrics
    printf '{"format": "symato-eval-group/1", "runs": {' > "$out"; sep=""
    for r in $runs; do printf '%s"%s": {"metrics": {}}' "$sep" "$r" >> "$out"; sep=", "; done
    printf '}}' >> "$out";;
esac
"""

SNAKEFILE = f"""
import os
from symato.config import prepare
configfile: "config.yaml"
prepare(config, "{REPO}/workflow/schemas/config.schema.yaml")
include: "{REPO}/rules/common.smk"
SYMATO = os.path.abspath("stub_symato")
include: "{REPO}/rules/train.smk"
include: "{REPO}/rules/eval.smk"
rule runs:
    input: lambda wildcards: TARGETS["runs"]
"""


def _workdir(tmp_path: Path, config: dict) -> Path:
    (tmp_path / "Snakefile").write_text(SNAKEFILE)
    stub = tmp_path / "stub_symato"
    stub.write_text(STUB)
    stub.chmod(0o755)
    for tok in config["tokenizers"]:
        for path in (f"results/shards/{tok}/manifest.json", f"results/vocab/{tok}.json"):
            (tmp_path / path).parent.mkdir(parents=True, exist_ok=True)
            (tmp_path / path).write_text("{}")
    (tmp_path / "results/stats").mkdir(parents=True)
    (tmp_path / "results/stats/syllables.parquet").write_text("")
    _write_config(tmp_path, config)
    return tmp_path


def _write_config(workdir: Path, config: dict, sort_keys: bool = True) -> None:
    (workdir / "config.yaml").write_text(
        yaml.safe_dump(config, allow_unicode=True, sort_keys=sort_keys))


def _snakemake(workdir: Path, *args: str) -> str:
    proc = subprocess.run([str(SNAKEMAKE), "-s", "Snakefile", "--cores", "2", *args, "--", "runs"],
                          cwd=workdir, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return proc.stdout + proc.stderr


def _group_sets(config: dict) -> dict:
    return eval_groups(expand_grid(config), config["eval"]["group_by"])


def _groups(config: dict) -> int:
    return len(_group_sets(config))


def _changed_groups(before: dict, after: dict) -> tuple[int, int]:
    """(evaluation groups of ``after`` that are new or have other runs than in ``before``,
    the runs in them: each gets its metrics.json again)."""
    old = _group_sets(before)
    changed = [runs for key, runs in _group_sets(after).items() if old.get(key) != runs]
    return len(changed), sum(map(len, changed))


def _job_counts(workdir: Path) -> dict[str, int]:
    """Jobs per rule of a dry run, parsed from Snakemake's 'Job stats' table."""
    out = _snakemake(workdir, "--dry-run", "--quiet", "rules")
    if "Nothing to be done" in out:
        return {}
    table = out.split("Job stats:")[1]
    counts = dict(re.findall(r"^(\w+)\s+(\d+)\s*$", table, flags=re.M))
    return {k: int(v) for k, v in counts.items() if k != "total"}


@pytest.mark.slow
def test_dry_run_job_counts(tmp_path: Path) -> None:
    config = demo_config()
    n, g = len(expand_grid(config)), _groups(config)
    work = _workdir(tmp_path, config)
    # one kernel build (the CPU one) that the RWKV runs wait for; one evaluation job per
    # group (a model shape's budgets and seeds), one metrics.json per run from it
    assert g < n
    stable = len(stable_runs(expand_grid(config)))  # the WSD check's stable runs
    assert stable > 0
    assert _job_counts(work) == {"build_kernels": 1, "run_settings": n, "train": n,
                                 "evaluate": g, "run_metrics": n, "runs": 1,
                                 "stable_settings": stable, "train_stable": stable}
    _snakemake(work, "--quiet", "all")  # stub jobs: outputs and their params recorded
    assert _job_counts(work) == {}
    # the same config with every mapping's keys in another order plans nothing
    _write_config(work, reversed_keys(config), sort_keys=False)
    assert _job_counts(work) == {}

    # one shared setting of one arch -> exactly that arch's runs
    # (lr_min: the sweep runs fix lr by name, so an lr override would miss them, rightly)
    n_gpt = sum(r["arch"] == "gpt" for r in expand_grid(config))
    g_gpt = sum(group.split("-")[0] == "gpt" for _, group in _group_sets(config))
    config["train"]["arch_overrides"]["gpt"]["lr_min"] = 0.00061
    _write_config(work, config)
    assert _job_counts(work) == {"run_settings": n_gpt, "train": n_gpt, "evaluate": g_gpt,
                                 "run_metrics": n_gpt, "runs": 1}  # fmt: skip
    _snakemake(work, "--quiet", "all")

    # the kernel record only orders the jobs (an ancient input): rebuilding the kernels
    # reruns no training run
    forced = _snakemake(work, "--dry-run", "--quiet", "rules", "--forcerun", "build_kernels")
    table = forced.split("Job stats:")[1]
    assert dict(re.findall(r"^(\w+)\s+(\d+)\s*$", table, flags=re.M)) == {
        "build_kernels": "1", "total": "1"}

    # a new size -> only its runs (one per arch and budget of that sub-grid)
    before = copy.deepcopy(config)
    grid = config["train"]["grids"][0]
    grid["sizes"].append("L4-D128")
    toks = config["tokenizers"] if grid["tokenizers"] == "all" else grid["tokenizers"]
    k = len(toks) * len(grid["archs"]) * len(grid.get("tokens") or grid["bytes"])
    new_groups, unpacked = _changed_groups(before, config)  # the groups the new runs join
    assert 0 < new_groups <= len(toks) * len(grid["archs"]) and unpacked >= k
    _write_config(work, config)
    assert _job_counts(work) == {"run_settings": k, "train": k, "evaluate": new_groups,
                                 "run_metrics": unpacked, "runs": 1}
    _snakemake(work, "--quiet", "all")

    # an evaluation setting -> every evaluation, no training
    config["eval"]["restoration_syllables"] = 10
    _write_config(work, config)
    assert _job_counts(work) == {"evaluate": _groups(config), "run_metrics": n + k, "runs": 1}
    _snakemake(work, "--quiet", "all")



def test_dry_run_plans_seed_replicates(tmp_path: Path) -> None:
    """`vary: {seed: [1, 2]}` beside the plain run: three runs planned, the plain one
    under its old name, and Snakemake's run wildcard matches the -s names."""
    config = {"tokenizers": ["symato"],
              "train": {"grids": [
                  {"name": "plain", "tokenizers": "all", "archs": ["gpt"], "sizes": ["L1-D16"],
                   "tokens": [1280]},
                  {"name": "seeds", "tokenizers": "all", "archs": ["gpt"], "sizes": ["L1-D16"],
                   "tokens": [1280], "vary": {"seed": [1, 2]}}],
                  "settings": {"ctx_len": 16, "batch_size": 8}}}  # fmt: skip
    work = _workdir(tmp_path, config)
    assert _job_counts(work) == {"run_settings": 3, "train": 3, "evaluate": 1,
                                 "run_metrics": 3, "runs": 1}  # one group: the 3 seeds
    out = _snakemake(work, "--dry-run")
    planned = set(re.findall(r"results/runs/symato/([^/\s]+)/settings\.json", out))
    assert planned == {"gpt-L1-D16-T1280", "gpt-L1-D16-T1280-s1", "gpt-L1-D16-T1280-s2"}
    # the stub jobs run; the seed is on each run's settings command line
    _snakemake(work, "--quiet", "all")
    assert _job_counts(work) == {}
    runs = {r["run"]: r["settings"]["seed"] for r in expand_grid(prepared(config))}
    assert runs == {"gpt-L1-D16-T1280": 1234, "gpt-L1-D16-T1280-s1": 1,
                    "gpt-L1-D16-T1280-s2": 2}


SNAKEFILE_REAL = SNAKEFILE.replace('SYMATO = os.path.abspath("stub_symato")\n', "")


def _real_workdir(tmp_path: Path, archs: list[str]) -> None:
    """A tiny symato corpus, its vocabulary and a one-size grid of ``archs``, for the real
    `symato` behind the rules."""
    import pandas as pd

    from symato.data.tokenize import write_manifest, write_token_shard
    from symato.text.tokenizer import Tokenizer

    tok = Tokenizer.default()
    texts = ["Hà Nội là thủ đô của Việt Nam.", "Tôi đi học.", "Hôm nay trời đẹp lắm."] * 20
    files = []
    for split in ("train", "val"):
        path = tmp_path / f"results/shards/symato/{split}/000.arrow"
        write_token_shard(path, [f"{split}{i}" for i in range(len(texts))],
                          [[tok.eot_id, *tok.encode(t)] for t in texts], tok.vocab_size,
                          text_bytes=sum(len(t.encode()) for t in texts), syllables=300)
        files.append(path)
    write_manifest(tmp_path / "results/shards/symato", files, "symato")
    tok.save(tmp_path / "results/vocab/symato.json")
    (tmp_path / "results/stats").mkdir(parents=True)
    pd.DataFrame([("là", "la", 2, 5)], columns=["syllable", "sym", "marktone", "count"]).to_parquet(
        tmp_path / "results/stats/syllables.parquet")
    config = {"tokenizers": ["symato"],
              "train": {"grids": [{"tokenizers": "all", "archs": archs, "sizes": ["L1-D16"],
                                   "tokens": [1280]}],
                        "settings": {"ctx_len": 16, "batch_size": 8, "eval_interval": 5,
                                     "max_epochs": 2}},  # 1280 tokens over 880: on purpose
              "eval": {"restoration_syllables": 20, "sample_tokens": 4}}  # fmt: skip
    _write_config(tmp_path, config)
    (tmp_path / "Snakefile").write_text(SNAKEFILE_REAL)


def _check_real_run(tmp_path: Path, arch: str) -> None:
    run = tmp_path / f"results/runs/symato/{arch}-L1-D16-T1280"
    metrics = json.loads((run / "metrics.json").read_text())
    assert metrics["train_tokens"] == 10 * 8 * 16 and metrics["restoration_syllables"] == 20
    assert len((run / "metrics.jsonl").read_text().splitlines()) == 10
    assert (tmp_path / f"results/benchmarks/train/symato/{arch}-L1-D16-T1280.tsv").exists()
    assert "done: 10 steps" in (tmp_path / f"results/logs/train/symato/{arch}-L1-D16-T1280.log"
                                ).read_text()  # fmt: skip


def test_vary_sweeps_settings_and_names_the_runs() -> None:
    config = demo_config()
    config["train"]["grids"] = [{"name": "lr", "tokenizers": ["symato"], "archs": ["gpt"],
                                 "sizes": ["L1-D32"], "tokens": [30000],
                                 "vary": {"lr": [0.002, 0.004, 0.00001], "lr_min": [0.00001]}}]
    runs = {r["run"]: r["settings"] for r in expand_grid(prepared(config))}
    assert set(runs) == {"gpt-L1-D32-T30k-lr0.002-lrmin0.00001",
                         "gpt-L1-D32-T30k-lr0.004-lrmin0.00001",
                         "gpt-L1-D32-T30k-lr0.00001-lrmin0.00001"}
    assert runs["gpt-L1-D32-T30k-lr0.002-lrmin0.00001"]["lr"] == 0.002
    assert all(s["lr_min"] == 0.00001 for s in runs.values())
    assert all(re.fullmatch(run_name_pattern(), name) for name in runs)
    assert not re.fullmatch(run_name_pattern(), "gpt-L1-D32-T30k-xy0.1")
    # a varied value that breaks a rule is named
    config["train"]["grids"][0]["vary"] = {"lr": [0.0001]}  # below lr_min 0.0006 of gpt
    with pytest.raises(SymatoError, match=r"run gpt-L1-D32-T30k-lr0.0001: need lr_min <= lr"):
        expand_grid(prepared(config))
    # a WKV backend for the other device is a config error, before any job is queued
    config["train"]["grids"][0]["vary"] = {}
    config["train"]["settings"].update(wkv_backend="cuda", device="cpu")
    with pytest.raises(SymatoError, match=r"wkv_backend 'cuda' cannot run on device 'cpu'"):
        expand_grid(prepared(config))
    config["train"]["settings"].update(wkv_backend="auto", device="auto")
    # only settings with a short name may vary (the schema says which); seed may
    config["train"]["grids"][0]["vary"] = {"ctx_len": [64, 128]}
    with pytest.raises(SymatoError, match=r"vary: Additional properties .*'ctx_len'"):
        prepared(config)
    config["train"]["grids"][0]["vary"] = {"seed": [1, 2]}
    assert {r["run"] for r in expand_grid(prepared(config))} == {"gpt-L1-D32-T30k-s1",
                                                                  "gpt-L1-D32-T30k-s2"}


@pytest.mark.slow
def test_rules_train_and_evaluate_for_real(tmp_path: Path) -> None:
    """The rules' shell commands with the real `symato`: two tiny runs, trained and scored,
    the RWKV one after the one kernel build; runs.csv says which backend each ran."""
    _real_workdir(tmp_path, ["gpt", "rwkv4"])
    _snakemake(tmp_path, "--quiet", "all")
    for arch in ("gpt", "rwkv4"):
        _check_real_run(tmp_path, arch)
    record = json.loads((tmp_path / "results/kernels/cpu.json").read_text())
    assert record["device"] == "cpu" and set(record["families"]) == {"wkv4", "wkv7"}
    assert all(Path(f["library"]).is_file() for f in record["families"].values())
    assert (tmp_path / "results/benchmarks/build_kernels/cpu.tsv").exists()
    assert "2 families for cpu" in (tmp_path / "results/logs/build_kernels/cpu.log").read_text()
    runs = tmp_path / "results/runs/symato"
    subprocess.run([str(SNAKEMAKE.with_name("symato")), "collect", "--runs-root", str(runs.parent),
                    "--out", str(tmp_path / "runs.csv")], check=True, timeout=300)
    table = {r["arch"]: r for r in csv.DictReader((tmp_path / "runs.csv").open())}
    assert table["rwkv4"]["backend"] == "cpu" and table["gpt"]["backend"] == "none"
    assert {r["precision"] for r in table.values()} == {"fp32"}
    assert all(r["device_name"] for r in table.values())


@pytest.mark.slow
def test_rules_train_rwkv7_and_llama_for_real(tmp_path: Path) -> None:
    """A config with archs [rwkv7, llama] validates, trains and evaluates in the pipeline
    (RWKV-7 with its default wkv_backend "auto": the compiled CPU kernel)."""
    _real_workdir(tmp_path, ["rwkv7", "llama"])
    _snakemake(tmp_path, "--quiet", "all")
    for arch in ("rwkv7", "llama"):
        _check_real_run(tmp_path, arch)


def test_grid_cost_counts_the_grid(tmp_path: Path) -> None:
    """scripts/grid_cost.py expands the same runs as the workflow and counts FLOPs with
    the models' own accounting; a manifest's bytes per token sets a byte budget's tokens."""
    import sys

    manifests = tmp_path / "shards"
    (manifests / "bytes").mkdir(parents=True)
    (manifests / "bytes" / "manifest.json").write_text(json.dumps(
        {"vocab_size": 257, "splits": {"train": {"bytes": 1000, "tokens": 500}}}))
    out = subprocess.run([sys.executable, str(REPO / "scripts" / "grid_cost.py"),
                          "--manifests", str(manifests), "--flops-per-second", "1e12"],
                         capture_output=True, text=True, check=True, timeout=300).stdout
    n = len(expand_grid(demo_config()))
    assert f"total: {n} runs" in out and "hours at 1e+12 FLOP/s" in out
    assert "bytes " + str(manifests / "bytes" / "manifest.json") in out
    rows = dict(re.findall(r"^\| (\w+) \| (L\d+-D\d+) \|", out, flags=re.M))
    assert set(rows) == {"rwkv4", "gpt", "rwkv7", "llama"}
    total = float(re.search(r"tokens, ([0-9.e+]+) training FLOPs", out).group(1))
    assert total > 0
    # Whole steps: 1500 bytes at 2 bytes per token is 750 tokens, one step of 8 x 128.
    one = tmp_path / "one.yaml"
    one.write_text(yaml.safe_dump({"train": {
        "grids": [{"name": "one", "tokenizers": ["bytes"], "archs": ["rwkv4"],
                   "sizes": ["L1-D32"], "bytes": [1500]}],
        "settings": {"batch_size": 8, "ctx_len": 128}}}))
    out = subprocess.run([sys.executable, str(REPO / "scripts" / "grid_cost.py"),
                          "--configfile", str(one), "--manifests", str(manifests)],
                         capture_output=True, text=True, check=True, timeout=300).stdout
    assert "total: 1 runs, 1.02e+03 tokens" in out, out


def test_evaluation_groups() -> None:
    """Which runs share an evaluation job (eval.group_by); a group is never a run name."""
    from symato.errors import SymatoError
    from symato.run.grid import eval_group

    run = "rwkv4-L2-D64-B30k-lr0.002-s2"
    assert eval_group(run) == "rwkv4-L2-D64"
    assert eval_group(run, "architecture") == "rwkv4"
    assert eval_group(run, "run") == run
    # other varied settings keep groups of their own (WSD, split forms)
    assert eval_group("rwkv4-L1-D32-B10k-wsd0.2-s3", "architecture") == "rwkv4-wsd0.2"
    assert eval_group("rwkv4-L2-D64-B300k-split0.1") == "rwkv4-L2-D64-split0.1"
    assert not re.fullmatch(run_name_pattern(), eval_group(run))
    with pytest.raises(SymatoError, match="group_by"):
        eval_group(run, "tokenizer")
