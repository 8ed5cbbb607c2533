"""An evaluation group's file and the runs' metrics.json unpacked from it.

``symato evaluate --run A --run B ... --group-out FILE`` (symato.run.evaluate) scores a
group of runs in one process and writes every run's metrics, or the error that stopped
it, into one file; rules/eval.smk then writes each run's ``metrics.json`` from it with
``symato evaluate unpack``. Why a module of its own: the unpacking is a job per run, and
this module imports neither torch nor the models, so such a job takes a fraction of a
second instead of the seconds an import of torch costs.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from symato.errors import SymatoError
from symato.io import read_json, write_json_atomic

GROUP_FORMAT = "symato-eval-group/1"


def group_document(results: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """The group file's content: ``{"format", "runs": {run folder: {"metrics"} | {"error"}}}``."""
    return {"format": GROUP_FORMAT, "runs": results}


def unpack_group(group_file: str | Path, run_dir: str | Path, out: str | Path) -> None:
    """Write one run's metrics from its group's file, or fail with the error its
    evaluation recorded."""
    doc = read_json(Path(group_file), "evaluation group file")
    if doc.get("format") != GROUP_FORMAT or not isinstance(doc.get("runs"), dict):
        raise SymatoError(f"{group_file}: not an evaluation group file ({GROUP_FORMAT})")
    entry = doc["runs"].get(str(Path(run_dir)))
    if entry is None:
        raise SymatoError(f"{group_file} has no run {run_dir}: its group was evaluated "
                          f"without it; rerun the group's evaluate job")
    if "error" in entry:
        raise SymatoError(f"evaluation of {run_dir} failed: {entry['error']} (recorded in "
                          f"{group_file}; once the cause is fixed, delete that file or rerun "
                          f"with --forcerun evaluate to evaluate the group again)")
    write_json_atomic(Path(out), entry["metrics"])


def unpack_main(argv: list[str]) -> int:
    """``symato evaluate unpack --group FILE --run DIR [--out FILE]``."""
    p = argparse.ArgumentParser(prog="symato evaluate unpack",
                                description="Write one run's metrics.json from its "
                                            "evaluation group's file.")
    p.add_argument("--group", required=True, help="the group file (symato evaluate --group-out)")
    p.add_argument("--run", required=True, help="the run folder, as the group file names it")
    p.add_argument("--out", help="output file (default RUN/metrics.json)")
    args = p.parse_args(argv)
    unpack_group(args.group, args.run, args.out or Path(args.run) / "metrics.json")
    return 0
