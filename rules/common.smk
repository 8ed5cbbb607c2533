# Shared helpers for every rules file: how to call the CLI, where logs go, targets.

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
RESULTS = "results"
RESOURCES = "resources"
LOGS = f"{RESULTS}/logs"
BENCH = f"{RESULTS}/benchmarks"

# Each rules file appends its final outputs here; `rule all` asks for all of them.
TARGETS: dict[str, list] = {"data": [], "runs": [], "report": []}


def all_targets() -> list:
    """Every final output of the workflow, in stage order."""
    return [path for paths in TARGETS.values() for path in paths]
