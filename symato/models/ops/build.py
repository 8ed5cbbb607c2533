"""``symato build --device cpu|cuda --out FILE``: build every operator's kernels once.

Why a step of its own: a workflow starts many training jobs, and each used to build the
extensions itself on first use, into one shared folder. A build is a minute of compiler
time per family; doing it once, in the job the training jobs wait for (rule
``build_kernels``, rules/train.smk), means one log to read when it fails, no training job
that dies minutes in on a compiler error, and jobs that only load a finished binary.

The kernels go where every job looks for them, ``$SYMATO_BUILD_DIR/<family>/<kind>-<hash>``
(``symato.models.ops.extension``), so the build job and the training jobs must see the
same ``SYMATO_BUILD_DIR``, compiler, CPU and (for CUDA) architecture; a job on a machine
that differs builds its own copy under its own key instead of loading a wrong binary.

FILE records what was built: device kind, torch and CUDA versions, compiler, nvcc, the
CUDA target and each family's folder, hash and library. A failure exits 1 with the
loader's cause-and-fix message and writes no record.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import torch

from symato.errors import SymatoError
from symato.io import write_json_atomic
from symato.models.ops import extension
from symato.run.precision import device_name


def _first_line(cmd: list[str]) -> str | None:
    """The first output line of a version command, or None when it does not run."""
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=60)
    except (OSError, subprocess.TimeoutExpired):
        return None
    lines = (proc.stdout or proc.stderr).strip().splitlines()
    return lines[0] if proc.returncode == 0 and lines else None


def _nvcc_version() -> str | None:
    """nvcc's "release" line (e.g. "Cuda compilation tools, release 12.8, V12.8.93")."""
    home = extension.cuda_home()
    if home is None:
        return None
    try:
        text = subprocess.run([str(Path(home) / "bin" / "nvcc"), "--version"],
                              capture_output=True, text=True, timeout=60).stdout
    except (OSError, subprocess.TimeoutExpired):
        return None
    return next((ln.strip() for ln in text.splitlines() if "release" in ln), None)


def build_all(device: str, verbose: bool = False) -> dict[str, Any]:
    """Build (or load) every family's ``device`` kernels; return the record."""
    if device not in extension.DEVICE_KINDS:
        raise SymatoError(f"symato build: --device must be one of {extension.DEVICE_KINDS}, "
                          f"got {device!r}")
    families: dict[str, Any] = {}
    for name in extension.FAMILIES:
        t0 = time.perf_counter()
        module = extension.load_extension(device, verbose, family=name)
        folder, digest = extension.build_dir(name, device)
        families[name] = {"build_dir": str(folder), "hash": digest, "library": module.__file__,
                          "seconds": round(time.perf_counter() - t0, 2)}
        print(f"symato build: {name} {device} kernel in {folder} "
              f"({families[name]['seconds']} s)", file=sys.stderr)
    record: dict[str, Any] = {
        "device": device,
        "torch_version": str(torch.__version__),
        "torch_cuda": torch.version.cuda,
        "compiler": extension.compiler(),
        "compiler_version": _first_line([extension.compiler(), "--version"]),
        "cpu": device_name(torch.device("cpu")),
        "families": families,
    }
    if device == "cuda":
        record |= {"cuda_target": extension.cuda_target(), "cuda_home": extension.cuda_home(),
                   "nvcc": _nvcc_version(),
                   "device_name": torch.cuda.get_device_name() if torch.cuda.is_available()
                   else None}
    return record


def main(argv: list[str]) -> int:
    """``symato build --device cpu|cuda --out FILE``: 0 when every family built."""
    p = argparse.ArgumentParser(
        prog="symato build",
        description="Build every operator's compiled kernels for one device kind into "
        "$SYMATO_BUILD_DIR (default ~/.cache/symato), once, and record what was built.")
    p.add_argument("--device", required=True, choices=extension.DEVICE_KINDS,
                   help="the device kind the training jobs run on")
    p.add_argument("--out", required=True, type=Path, help="the build record (JSON) to write")
    p.add_argument("--verbose", action="store_true", help="show the compiler's commands")
    args = p.parse_args(argv)
    record = build_all(args.device, args.verbose)
    write_json_atomic(args.out, record)
    print(f"symato build: {len(record['families'])} families for {args.device} -> {args.out}",
          file=sys.stderr)
    return 0
