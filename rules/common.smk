# Shared by every rules file: how to call the CLI, canonical params, targets, GPUs.
# Paths are written out literally in each rule (results/..., resources/...).

import json
import os
import shlex
import sys
from pathlib import Path


def _symato_command() -> str:
    """The `symato` CLI of the Python that runs Snakemake (no PATH activation needed)."""
    script = Path(sys.executable).with_name("symato")
    if script.exists():
        return shlex.quote(str(script))
    return f"{shlex.quote(sys.executable)} -m symato"


SYMATO = _symato_command()

# Each rules file appends its final outputs here; the Snakefile's target rules (all,
# data, runs, report_inputs) ask for them.
TARGETS: dict[str, list] = {"data": [], "runs": [], "report": []}


def all_targets() -> list:
    """Every final output of the workflow, in stage order."""
    return [path for paths in TARGETS.values() for path in paths]


def canonical(value):
    """``value`` with the keys of every mapping in it sorted.

    Why: Snakemake compares a rule's params by their repr, and a dict's repr follows its
    insertion order, i.e. the key order of config.yaml. The same settings written in
    another order (a YAML tool that sorts keys) must not rerun anything.
    """
    if isinstance(value, dict):
        return {key: canonical(value[key]) for key in sorted(value)}
    if isinstance(value, (list, tuple)):
        return [canonical(item) for item in value]
    return value


def cli_options(pairs) -> str:
    """`--name value` options for the shell, from (name, value) pairs, values quoted."""
    return " ".join(
        f"--{name} {shlex.quote(json.dumps(value) if isinstance(value, bool) else str(value))}"
        for name, value in pairs
    )


def gpus_present() -> int:
    """GPUs this machine offers: CUDA_VISIBLE_DEVICES when set, else `nvidia-smi -L`.

    Why not torch: importing it would slow every Snakemake start by seconds.
    """
    import shutil
    import subprocess

    visible = os.environ.get("CUDA_VISIBLE_DEVICES")
    if visible is not None:
        ids = [d.strip() for d in visible.split(",")]
        # CUDA stops at the first invalid id ("" or "-1" hides every GPU).
        return next((i for i, d in enumerate(ids) if d in ("", "-1")), len(ids))
    smi = shutil.which("nvidia-smi")
    if smi is None:
        return 0
    try:
        out = subprocess.run([smi, "-L"], capture_output=True, text=True, timeout=30).stdout
    except (OSError, subprocess.TimeoutExpired):
        return 0
    return sum(1 for line in out.splitlines() if line.startswith("GPU "))


# Snakemake does not limit a `gpu` resource by itself: on a local run, jobs may not hold
# more GPUs together than the machine has (a job asking for more is scaled down to what
# exists, 0 on a CPU machine). `--resources gpu=N` overrides. Not applied under a cluster
# executor, where the submit host may have none and Slurm does the counting. The
# executor is not known yet while the Snakefile is read; a remote executor always has a
# node limit (`jobs`), a local run has none (`-j N` alone becomes `--cores N`).
if (
    workflow.is_main_process
    and workflow.resource_settings.nodes is None
    and "gpu" not in workflow.global_resources
):
    workflow.register_resource("gpu", gpus_present())
