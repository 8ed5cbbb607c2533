"""Scale-out: the workflow on a real (one-node) Slurm through profiles/slurm, and the GPU cap.

The Slurm tests install the Debian packages if needed, start munged, slurmctld and slurmd
(tests/slurm/harness.py) and stop exactly those pids at the end. They run:
1. a small stand-in workflow (tests/slurm/Snakefile): CPU jobs, a localrule, two GPU
   training jobs on the cluster's two fake GPUs (one of them a two-process torchrun
   group), evaluation, and a failing branch, compared file by file with a local run;
2. the real workflow on a tiny config: data stages, one training run, its evaluation,
   compared with a local run of the same config;
3. preemption: a real training run preempted (PreemptMode=REQUEUE) by a job in a
   higher-priority partition resumes under the same job id, bit for bit.

Only the values that depend on node size are scaled down for the 2-CPU test node (train
`cpus_per_gpu`) and the first status check is sooner; everything else is profiles/slurm.
"""

from __future__ import annotations

import importlib.util
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
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


def snakemake_cmd(args: list[str], timeout: int) -> list[str]:
    """Snakemake under `timeout -s INT` (it ignores SIGTERM while jobs run)."""
    return [
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


def snakemake(args: list[str], env: dict[str, str], log: Path, timeout: int = 420) -> int:
    """Run Snakemake to the end; stopped with SIGINT on timeout."""
    with open(log, "w") as fh:
        return subprocess.run(
            snakemake_cmd(args, timeout),
            env=env,
            stdout=fh,
            stderr=subprocess.STDOUT,
            cwd=REPO,
            check=False,
        ).returncode


def local_env() -> dict[str, str]:
    """Environment of a local reference run: nothing that points at a cluster."""
    return {k: v for k, v in os.environ.items() if not k.startswith(("SLURM_", "SBATCH_"))}


def slurm_args() -> list[str]:
    """profiles/slurm as shipped, with the node-size-dependent CPU requests scaled down."""
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
        # The kernel build asks for 4 CPUs; the test node may have fewer, and Slurm
        # would keep a job that no node can hold pending forever (docs/cluster.md).
        "--set-threads",
        "build_kernels=1",
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
    "clean": {"val_fraction": 0.2},
    "train": {
        "grids": [
            {
                "name": "tiny",
                "tokenizers": ["symato"],
                "archs": ["rwkv4", "gpt"],
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
            "warmup": 0.1,
            "device": "cpu",  # the cluster's GPUs are fake; gpus_per_run still asks Slurm
            "max_epochs": 10.0,  # 4000 tokens repeat the tiny corpus's text (issue #21)
        },
        "arch_overrides": {"gpt": {"device": "cuda"}},
        "gpus_per_run": 1,
        "retries": 0,
    },
    "eval": {"restoration_syllables": 50, "prompts": [""], "sample_tokens": 8},
}
GOOD, BAD = "results/runs/symato/rwkv4-L1-D32-T4k", "results/runs/symato/gpt-L1-D32-T4k"
TIMING = ("tokens_per_second", "seconds", "mfu")


def real_workdir(root: Path) -> Path:
    (root / "input").mkdir(parents=True)
    shutil.copy(REPO / "tests" / "data" / "pipeline_vi.txt", root / "input" / "vi.txt")
    (root / "config.yaml").write_text(yaml.safe_dump(TINY, allow_unicode=True))
    return root


def data_files(root: Path) -> dict[str, bytes]:
    """Every data-stage output (not runs and their evaluation groups' files, logs,
    benchmarks, Slurm logs, kernel build records: those hold build and training times)."""
    skip = {"runs", "evals", "logs", "benchmarks", "kernels"}
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

    from symato.run.checkpoint import read_payload

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
    train_job = next(j for j, p in SUBMITTED.findall(text) if "rwkv4-L1-D32" in p)
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


# Preemption: one training run of the real workflow, preempted mid-run by a job in the
# cluster's higher-priority partition (PreemptType=preempt/partition_prio,
# PreemptMode=REQUEUE, tests/slurm/harness.py), must resume from its checkpoint under the
# same Slurm job id and end bit for bit where an uninterrupted local run ends.
PREEMPT_STEPS = 1000  # ~10 s of training here: room to preempt after the first checkpoint
PREEMPT = {
    "corpus": TINY["corpus"],
    "tokenizers": ["symato"],
    "clean": {"val_fraction": 0.2},
    "train": {
        "grids": [
            {
                "name": "preempt",
                "tokenizers": ["symato"],
                "archs": ["rwkv4"],
                "sizes": ["L1-D32"],
                "tokens": [PREEMPT_STEPS * 4 * 32],
            }
        ],
        "settings": {
            "ctx_len": 32,
            "batch_size": 4,
            "eval_interval": 0,
            "eval_windows": 2,
            "threads": 1,
            "warmup": 0.1,
            "device": "cpu",
            "checkpoint_steps": 10,
            "log_interval": 10,
            "max_epochs": 100.0,  # 128k tokens: ~55 passes over the tiny corpus's text
        },
        "gpus_per_run": 0,  # a CPU job: the preemptor needs the node's CPUs
        "retries": 0,  # a failed attempt would end the run: only Slurm's requeue reruns it
    },
}
PREEMPT_RUN = "results/runs/symato/rwkv4-L1-D32-T128k"
PREEMPT_LOG = "results/logs/train/symato/rwkv4-L1-D32-T128k.log"
SIGTERM_LINE = re.compile(r"SIGTERM: saved checkpoint at step (\d+); exiting 143\b")
STATUS_CHECK = "Checking the status of"  # the plugin's debug line, once per status query


def wait_for(what: str, check, timeout: float, proc: subprocess.Popen | None = None):
    """Poll `check()` until it returns something truthy; fail naming `what` on timeout,
    or at once when `proc` (which must stay alive meanwhile) has exited."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = check()
        if value:
            return value
        if proc is not None and proc.poll() is not None:
            pytest.fail(f"Snakemake exited ({proc.returncode}) while waiting for {what}")
        time.sleep(0.2)
    pytest.fail(f"timed out after {timeout:.0f}s waiting for {what}")


def squeue_state(jobid: str, env: dict[str, str]) -> tuple[str, str]:
    """(state, reason) of one job as squeue shows it; ("", "") when it is unknown."""
    out = subprocess.run(
        ["squeue", "-h", "--states=all", "-j", jobid, "-o", "%T|%r"],
        env=env,
        capture_output=True,
        text=True,
        check=False,
    ).stdout.strip()
    state, _, reason = out.partition("|")
    return state, reason


def read_text(path: Path) -> str:
    return path.read_text(errors="replace") if path.exists() else ""


def stop(proc: subprocess.Popen) -> None:
    """Ctrl-C for Snakemake (`timeout` relays SIGINT), then kill; it cancels its jobs."""
    if proc.poll() is None:
        proc.send_signal(signal.SIGINT)
        try:
            proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=10)


def cluster_report(cluster, root: Path, log: Path) -> str:
    """What to read when a Slurm test fails: Snakemake, the rule's and Slurm's logs."""
    parts = [f"--- snakemake log {log}\n{read_text(log)[-5000:]}"]
    logs = [*sorted((root / "results" / "logs" / "slurm").rglob("*.log")), root / PREEMPT_LOG]
    logs += [cluster.root / "log" / "slurmctld.log", cluster.root / "log" / "slurmd.log"]
    parts += [f"--- {p}\n{read_text(p)[-3000:]}" for p in logs]
    queue = subprocess.run(
        ["squeue", "--states=all"], env=cluster.env, capture_output=True, text=True, check=False
    )
    return "\n".join([*parts, f"--- squeue\n{queue.stdout}{queue.stderr}"])


def preempt_node(cluster, out: Path) -> str:
    """Submit a job to the higher-tier partition asking for every CPU of the node: Slurm
    preempts (requeues) whatever runs there. Returns its job id."""
    cmd = ["sbatch", "--parsable", "-p", harness.URGENT_PARTITION, "-c", str(cluster.cpus)]
    cmd += ["--mem", "100", "-o", str(out), "--wrap", "sleep 1"]
    return subprocess.run(
        cmd, env=cluster.env, capture_output=True, text=True, check=True
    ).stdout.strip()


def untimed(record: dict) -> dict:
    """A metrics or metadata record without its timing fields (they differ run to run)."""
    return {k: v for k, v in record.items() if not any(t in k for t in TIMING)}


def assert_bitwise_same_run(a: Path, b: Path) -> None:
    """Same weights, model metadata and metrics.jsonl lines, exactly (timings aside)."""
    import torch

    from symato.run.checkpoint import read_payload

    pa, pb = read_payload(a), read_payload(b)
    assert pa["state_dict"].keys() == pb["state_dict"].keys()
    for name, tensor in pa["state_dict"].items():
        assert torch.equal(pb["state_dict"][name], tensor), name
    assert untimed(pb["meta"]) == untimed(pa["meta"])
    logs = [[untimed(json.loads(line)) for line in (d / "metrics.jsonl").open()] for d in (a, b)]
    assert logs[1] == logs[0]
    assert logs[0][-1]["step"] == pa["meta"]["step"]


@pytest.mark.slow
@pytest.mark.root
def test_preempted_training_resumes_on_slurm(cluster, tmp_path):
    """A preempted (PreemptMode=REQUEUE) training job: SIGTERM -> checkpoint -> exit 143,
    Slurm requeues the same job id, Snakemake keeps waiting and succeeds, the second
    attempt resumes from the checkpoint and ends bit for bit like an uninterrupted run."""
    import torch

    local = tmp_path / "local"
    (local / "input").mkdir(parents=True)
    shutil.copy(REPO / "tests" / "data" / "pipeline_vi.txt", local / "input" / "vi.txt")
    (local / "config.yaml").write_text(yaml.safe_dump(PREEMPT, allow_unicode=True))

    def args(root: Path, *targets: str) -> list[str]:
        config = ["--configfile", str(root / "config.yaml")]
        return [*targets, "-s", str(REPO / "Snakefile"), *config, "-d", str(root)]

    # The data and the kernel build here, so that the Slurm run's one job is the training.
    targets = args(local, "data", "results/kernels/cpu.json")
    rc = snakemake([*targets, "--cores", "2"], local_env(), tmp_path / "data.log")
    assert rc == 0, read_text(tmp_path / "data.log")[-4000:]
    # The Slurm run starts from the same data (mtimes kept: Snakemake sees it up to date).
    remote = tmp_path / "slurm"
    shutil.copytree(local, remote, ignore=shutil.ignore_patterns("locks"))
    model = f"{PREEMPT_RUN}/model.pt"
    rc = snakemake([*args(local, model), "--cores", "2"], local_env(), tmp_path / "local.log")
    assert rc == 0, read_text(tmp_path / "local.log")[-4000:]

    log = tmp_path / "slurm.log"
    env = cluster.env
    with open(log, "w") as fh:
        proc = subprocess.Popen(
            snakemake_cmd([*args(remote, model), "--verbose", *slurm_args()], 300),
            env=env,
            stdout=fh,
            stderr=subprocess.STDOUT,
            cwd=REPO,
        )
    try:
        jobid = wait_for(
            "the train job's sbatch submission",
            lambda: next(
                (j for j, path in SUBMITTED.findall(read_text(log)) if "rule_train" in path),
                None,
            ),
            120,
            proc,
        )
        wait_for(
            "the trainer's first checkpoint",
            (remote / PREEMPT_RUN / "checkpoint.pt").exists,
            120,
            proc,
        )
        assert squeue_state(jobid, env)[0] == "RUNNING"

        urgent = preempt_node(cluster, tmp_path / "urgent.log")
        wait_for(
            "the training job to be requeued (PENDING)",
            lambda: squeue_state(jobid, env)[0] == "PENDING",
            60,
            proc,
        )
        # The trainer finished its step, saved and said so before the step ended.
        stopped = wait_for(
            "the trainer's SIGTERM message",
            lambda: SIGTERM_LINE.search(read_text(remote / PREEMPT_LOG)),
            60,
            proc,
        )
        step = int(stopped.group(1))
        assert 0 < step < PREEMPT_STEPS, f"preempted at step {step}: not mid-run"
        saved = torch.load(remote / PREEMPT_RUN / "checkpoint.pt", weights_only=True)
        assert saved["step"] == step

        # Snakemake queries the requeued job at least once and keeps waiting for it.
        checks = read_text(log).count(STATUS_CHECK)
        wait_for(
            "a status query while the job is requeued",
            lambda: read_text(log).count(STATUS_CHECK) > checks,
            90,
            proc,
        )
        state, reason = squeue_state(jobid, env)
        assert state == "PENDING", (state, reason)
        if reason == "BeginTime":  # Slurm holds a requeued job ~2 minutes; skip the wait
            subprocess.run(
                ["scontrol", "update", f"JobId={jobid}", "StartTime=now"], env=env, check=True
            )
        rc = proc.wait(timeout=240)
        assert rc == 0, f"Snakemake failed (rc={rc})"
    except BaseException:
        stop(proc)
        print(cluster_report(cluster, remote, log))
        raise

    text = read_text(log)
    # One sbatch submission, one Slurm job, run twice.
    assert submitted_rules(text)[0] == {"train": 1}, text[-3000:]
    assert re.findall(r"^rule (\w+):$", text, re.M) == ["train"]
    info = scontrol_job(jobid, env)
    assert "JobState=COMPLETED" in info and "Restarts=1 " in info, info
    ctld = read_text(cluster.root / "log" / "slurmctld.log")
    assert (
        f"preempted JobId={jobid} has been requeued to reclaim resources for JobId={urgent}" in ctld
    )
    print(f"Slurm job {jobid} preempted at step {step} of {PREEMPT_STEPS}, requeued, rerun")
    # The second attempt resumed from the preemption checkpoint and finished.
    final_log = read_text(remote / PREEMPT_LOG)
    assert re.search(rf"resumed from \S+checkpoint.pt at step {step}\n", final_log), final_log
    assert f"done: {PREEMPT_STEPS} steps" in final_log, final_log

    # Bit for bit what the uninterrupted local run produced (CPU, one thread, every RNG in
    # the checkpoint): weights, metadata and the training log, timings aside.
    assert_bitwise_same_run(local / PREEMPT_RUN, remote / PREEMPT_RUN)
