"""Scale-out: the workflow on a real (one-node) Slurm through profiles/slurm, and the GPU cap.

The Slurm tests install the Debian packages if needed, start munged, slurmctld and slurmd
(tests/slurm/harness.py) and stop exactly those pids at the end. They run:
1. a small stand-in workflow (tests/slurm/Snakefile): CPU jobs, a localrule, two GPU
   training jobs on the cluster's two fake GPUs (one of them a two-process torchrun
   group), evaluation, and a failing branch, compared file by file with a local run;
2. the real workflow on a tiny config: data stages, one training run, its evaluation,
   compared with a local run of the same config.

Only the values that depend on node size are scaled down for the 2-CPU test node (train
`cpus_per_gpu`) and the first status check is sooner; everything else is profiles/slurm.
"""

from __future__ import annotations

import importlib.util
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
from collections import Counter
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[1]
HERE = Path(__file__).resolve().parent / "slurm"
PROFILE = REPO / "profiles" / "slurm"
SUBMITTED = re.compile(r"Job \d+ has been submitted with SLURM jobid (\d+) \(log: (\S+)\)")

_spec = importlib.util.spec_from_file_location("symato_slurm_harness", HERE / "harness.py")
harness = importlib.util.module_from_spec(_spec)
sys.modules[_spec.name] = harness  # dataclasses look their module up there
_spec.loader.exec_module(harness)


def snakemake(args: list[str], env: dict[str, str], log: Path, timeout: int = 420) -> int:
    """Run Snakemake; stop it with SIGINT on timeout (it ignores SIGTERM while jobs run)."""
    cmd = [
        "timeout",
        "-s",
        "INT",
        "-k",
        "30",
        str(timeout),
        sys.executable,
        "-m",
        "snakemake",
        *args,
    ]
    with open(log, "w") as fh:
        return subprocess.run(
            cmd, env=env, stdout=fh, stderr=subprocess.STDOUT, cwd=REPO, check=False
        ).returncode


def local_env() -> dict[str, str]:
    """Environment of a local reference run: nothing that points at a cluster."""
    return {k: v for k, v in os.environ.items() if not k.startswith(("SLURM_", "SBATCH_"))}


def slurm_args() -> list[str]:
    """profiles/slurm as shipped, with the node-size-dependent CPU request scaled down."""
    profile = yaml.safe_load((PROFILE / "config.yaml").read_text())
    train = dict(profile["set-resources"]["train"], cpus_per_gpu=1)
    # --set-resources on the command line replaces the profile's whole list: repeat it.
    overrides = [f"train:{key}={value}" for key, value in train.items()]
    return [
        "--workflow-profile",
        str(PROFILE),
        "--slurm-init-seconds-before-status-checks",
        "2",
        "--set-resources",
        *overrides,
    ]


def submitted_rules(log_text: str) -> tuple[Counter, set[str]]:
    """Per rule, how many sbatch submissions Snakemake reported; and the Slurm job ids."""
    rules: Counter = Counter()
    ids = set()
    for jobid, path in SUBMITTED.findall(log_text):
        rule = next(p for p in Path(path).parts if p.startswith("rule_"))[len("rule_") :]
        rules[rule] += 1
        ids.add(jobid)
    return rules, ids


def tree(root: Path, patterns: list[str]) -> dict[str, bytes]:
    return {
        str(p.relative_to(root)): p.read_bytes() for pat in patterns for p in sorted(root.glob(pat))
    }


@pytest.fixture(scope="module")
def cluster():
    reason = harness.unavailable_reason()
    if reason:
        pytest.skip(f"real Slurm unavailable: {reason}")
    if importlib.util.find_spec("snakemake_executor_plugin_slurm") is None:
        pytest.skip("snakemake-executor-plugin-slurm missing: pip install -e '.[slurm]'")
    # Not under pytest's 0700 temp dirs: munged (user munge) must reach its socket.
    root = Path(tempfile.mkdtemp(prefix="symato-slurm-"))
    try:
        harness.install_packages(root / "apt.log")
    except harness.HarnessError as exc:
        pytest.skip(f"cannot install Slurm: {exc}")
    c = harness.Cluster(root)
    c.up()
    pids = {name: proc.pid for name, proc in c.procs.items()}
    try:
        yield c
    finally:
        c.down()
        alive = [
            n
            for n, pid in pids.items()
            if Path(f"/proc/{pid}").exists()
            and "zombie" not in Path(f"/proc/{pid}/status").read_text().lower()
        ]
        assert not alive, f"daemons still running after stop: {alive}"
        assert not harness.DEFAULT_CONF.is_symlink(), "test slurm.conf link left behind"
        shutil.rmtree(root, ignore_errors=True)


@pytest.mark.slow
@pytest.mark.root
def test_stand_in_workflow_on_slurm(cluster, tmp_path):
    """Every non-local job goes through sbatch, GPU jobs get their GPUs as one process
    group, outputs equal a local run, and a failing job fails cleanly under keep-going."""
    snakefile = str(HERE / "Snakefile")
    local, remote = tmp_path / "local", tmp_path / "slurm"
    rc = snakemake(
        ["-s", snakefile, "-d", str(local), "--cores", "2"], local_env(), tmp_path / "local.log"
    )
    assert rc == 0, (tmp_path / "local.log").read_text()[-4000:]

    log = tmp_path / "slurm.log"
    rc = snakemake(
        ["-s", snakefile, "-d", str(remote), "--config", "with_failure=1", *slurm_args()],
        cluster.env,
        log,
    )
    text = log.read_text()
    assert rc not in (0, 124, 137), f"expected a failed workflow (boom), rc={rc}\n{text[-4000:]}"

    rules, ids = submitted_rules(text)
    # retries: 1 in the profile -> boom is submitted twice; summary is a localrule.
    assert rules == {"shard": 3, "train": 2, "evaluate": 2, "boom": 2}, (rules, text[-3000:])
    for name in ("shard_0", "shard_1", "shard_2", "evaluate_one", "evaluate_two"):
        assert (remote / "where" / f"{name}.txt").read_text().split()[0] in ids, name
    assert (remote / "where" / "summary.txt").read_text().strip() == "local"
    # Slurm allocated the GPUs the rule asked for, to one job running one torchrun group.
    assert (remote / "where" / "train_one.txt").read_text().split()[1] == "gpus=0"
    assert (remote / "where" / "train_two.txt").read_text().split()[1] == "gpus=0,1"
    assert (remote / "runs" / "two" / "model.txt").read_text().startswith("world_size=2 ")

    # Same bytes as the local run, for every output of the jobs that succeeded.
    patterns = ["data/*.txt", "runs/*/*.txt", "summary.txt"]
    assert tree(remote, patterns) == tree(local, patterns)
    assert len(tree(local, patterns)) == 8

    # The failing job: reported, its partial output removed, its dependant never run,
    # its Slurm log kept for the user.
    assert "Error in rule boom" in text
    assert not (remote / "boom.txt").exists()
    assert not (remote / "after_boom.txt").exists()
    assert list((remote / "results" / "logs" / "slurm" / "rule_boom").glob("*.log"))


@pytest.mark.slow
def test_local_gpu_cap(tmp_path):
    """Locally, GPU jobs never hold more GPUs together than CUDA_VISIBLE_DEVICES offers;
    without GPUs a GPU request is scaled down to 0; --resources gpu=N overrides."""

    def run(visible: str, *extra: str) -> list[str]:
        work = tmp_path / f"w{len(list(tmp_path.iterdir()))}"
        env = {**local_env(), "CUDA_VISIBLE_DEVICES": visible}
        rc = snakemake(
            ["-s", str(HERE / "gpucap.smk"), "-d", str(work), "--cores", "4", *extra],
            env,
            tmp_path / "cap.log",
            timeout=120,
        )
        assert rc == 0, (tmp_path / "cap.log").read_text()[-3000:]
        return sorted(p.read_text().strip() for p in (work / "granted").glob("*.txt"))

    assert run("0") == ["gpu=1 concurrent=1"] * 4
    granted = run("", "--config", "want=2")
    assert len(granted) == 4 and all(line.startswith("gpu=0 ") for line in granted)
    granted = run("0,1", "--config", "want=3")
    assert len(granted) == 4 and all(line.startswith("gpu=2 ") for line in granted)
    assert run("", "--resources", "gpu=1") == ["gpu=1 concurrent=1"] * 4


# The real workflow: data stages on one shard, one training run on one (fake) GPU and its
# evaluation; a second run asks for CUDA, which the node lacks, so its training job fails
# like a real misconfigured GPU job would. (gpus_per_run 1, not 2: two-process gloo runs
# of the trainer can deadlock in torch's process-group teardown after finishing; the
# stand-in workflow covers torchrun with two GPUs inside a Slurm job.)
TINY = {
    "corpus": {
        "sources": [{"name": "vi", "format": "text", "paths": ["input/*.txt"]}],
        "shards": 1,
    },
    "tokenizers": ["symato"],
    "tokenize": {"val_fraction": 0.2},
    "train": {
        "grids": [
            {
                "name": "tiny",
                "tokenizers": ["symato"],
                "archs": ["rwkv", "gpt"],
                "sizes": ["L1-D32"],
                "tokens": [4000],
            }
        ],
        "settings": {
            "ctx_len": 32,
            "batch_size": 4,
            "eval_interval": 0,
            "eval_windows": 2,
            "threads": 1,
            "warmup_steps": 2,
            "device": "cpu",  # the cluster's GPUs are fake; gpus_per_run still asks Slurm
        },
        "arch_overrides": {"gpt": {"device": "cuda"}},
        "gpus_per_run": 1,
        "retries": 0,
    },
    "eval": {"restoration_syllables": 50, "prompts": [""], "sample_tokens": 8},
}
GOOD, BAD = "results/runs/symato/rwkv-L1-D32-T4k", "results/runs/symato/gpt-L1-D32-T4k"
TIMING = ("tokens_per_second", "seconds", "mfu")


def real_workdir(root: Path) -> Path:
    (root / "input").mkdir(parents=True)
    shutil.copy(REPO / "tests" / "data" / "pipeline_vi.txt", root / "input" / "vi.txt")
    (root / "config.yaml").write_text(yaml.safe_dump(TINY, allow_unicode=True))
    return root


def data_files(root: Path) -> dict[str, bytes]:
    """Every data-stage output (not runs, logs, benchmarks, Slurm logs)."""
    skip = {"runs", "logs", "benchmarks"}
    return {
        str(p.relative_to(root)): p.read_bytes()
        for p in sorted((root / "results").rglob("*"))
        if p.is_file() and p.relative_to(root / "results").parts[0] not in skip
    }


def close(a, b, where: str) -> None:
    """Same numbers up to float rounding; timing fields are skipped."""
    if isinstance(a, dict):
        assert a.keys() == b.keys(), where
        for key in a:
            if not any(t in key for t in TIMING):
                close(a[key], b[key], f"{where}.{key}")
    elif isinstance(a, float):
        assert b == pytest.approx(a, rel=1e-5, abs=1e-7), where
    elif isinstance(a, list):
        assert len(a) == len(b), where
        for i, (x, y) in enumerate(zip(a, b, strict=True)):
            close(x, y, f"{where}[{i}]")
    else:
        assert a == b, where


def scontrol_job(jobid: str, env: dict[str, str]) -> str:
    return subprocess.run(
        ["scontrol", "show", "job", jobid], env=env, capture_output=True, text=True, check=True
    ).stdout


@pytest.mark.slow
@pytest.mark.root
def test_real_workflow_on_slurm(cluster, tmp_path):
    """Data stages byte for byte, training within tolerance, every non-local job through
    sbatch, the GPU run as one job holding both GPUs, the failed run cleaned up."""
    import torch

    from symato.checkpoint import read_payload

    local, remote = real_workdir(tmp_path / "local"), real_workdir(tmp_path / "slurm")
    common = ["-s", str(REPO / "Snakefile"), "--configfile"]
    rc = snakemake(
        [
            "data",
            f"{GOOD}/metrics.json",
            *common,
            str(local / "config.yaml"),
            "-d",
            str(local),
            "--cores",
            "2",
        ],
        local_env(),
        tmp_path / "local.log",
    )
    assert rc == 0, (tmp_path / "local.log").read_text()[-4000:]

    log = tmp_path / "slurm.log"
    rc = snakemake(
        ["data", "runs", *common, str(remote / "config.yaml"), "-d", str(remote), *slurm_args()],
        cluster.env,
        log,
        timeout=540,
    )
    text = log.read_text()
    assert rc not in (0, 124, 137), f"the gpt run must fail, rc={rc}\n{text[-4000:]}"

    # Every job Snakemake ran as a `rule` (not a `localrule`) was an sbatch submission.
    rules, _ = submitted_rules(text)
    started = Counter(re.findall(r"^rule (\w+):$", text, re.M))
    assert rules == started, (rules, started)
    assert rules["train"] == 2 and rules["evaluate"] == 1 and rules["tokenize"] == 1
    heavy = {"corpus_shard", "clean_filter", "clean_write", "stats_shard", "vocab", "tokenize"}
    assert heavy <= set(rules), rules
    assert not heavy & set(re.findall(r"^localrule (\w+):$", text, re.M))

    # The GPU run: one Slurm job holding the GPU, a single task.
    train_job = next(j for j, p in SUBMITTED.findall(text) if "rwkv-L1-D32" in p)
    info = scontrol_job(train_job, cluster.env)
    assert re.search(r"TresPerJob=gres:gpu:1\b", info) and "NumTasks=1 " in info, info
    assert "CpusPerTres=gres:gpu:1" in info, info  # cpus_per_gpu
    assert "JobState=COMPLETED" in info, info

    assert data_files(remote) == data_files(local) and len(data_files(local)) > 10
    a, b = read_payload(local / GOOD), read_payload(remote / GOOD)
    assert a["meta"]["world_size"] == b["meta"]["world_size"] == 1
    for name, tensor in a["state_dict"].items():
        torch.testing.assert_close(b["state_dict"][name], tensor, rtol=1e-5, atol=1e-6)
    close(
        json.loads((local / GOOD / "metrics.json").read_text()),
        json.loads((remote / GOOD / "metrics.json").read_text()),
        "metrics.json",
    )
    steps = [
        [json.loads(line) for line in (d / GOOD / "metrics.jsonl").read_text().splitlines()]
        for d in (local, remote)
    ]
    close(steps[0], steps[1], "metrics.jsonl")

    # The failed run: reported, its outputs removed, its evaluation never started.
    assert re.search(r"Error in rule train:[\s\S]{0,400}gpt-L1-D32", text)
    for name in ("model.pt", "metrics.jsonl", "metrics.json"):
        assert not (remote / BAD / name).exists(), name
