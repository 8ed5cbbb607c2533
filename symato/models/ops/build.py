"""``symato build --device cpu|cuda --out FILE``: build every operator's kernels once.

Why a step of its own: a workflow starts many training jobs, and each used to build the
extensions itself on first use, into one shared folder. A build is a minute of compiler
time per family; doing it once, in the job the training jobs wait for (rule
``build_kernels``, rules/train.smk), means one log to read when it fails, no training job
that dies minutes in on a compiler error, and jobs that only load a finished binary.

The kernels go where every job looks for them, ``$SYMATO_BUILD_DIR/<family>/<target>-<hash>``
(``symato.models.ops.extension``), so the build job and the training jobs must see the
same ``SYMATO_BUILD_DIR``, compiler (``CXX``), CPU (for ``cpu``), environment (torch
installation, kernel sources' folder) and, for CUDA, toolkit (``CUDA_HOME``: set it
explicitly, since torch's own guess may differ between shells) and architecture; a job
whose build command differs builds its own copy under its own key instead of loading a
wrong binary or rebuilding the workflow's. A killed ``symato build`` leaves no compiler
running and no lock that blocks the next one.

FILE records what was built: device type, torch and CUDA versions, compiler, nvcc, the
CUDA target and each family's folder, hash and library. A failure exits 1 with the
loader's cause-and-fix message and writes no record.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from typing import Any

import torch

from symato.errors import SymatoError
from symato.io import write_json_atomic
from symato.models.ops import extension
from symato.run.precision import device_name


def build_all(device: str, verbose: bool = False) -> dict[str, Any]:
    """Build (or load) every family's ``device`` kernels; return the record."""
    if device not in extension.DEVICE_TARGETS:
        raise SymatoError(f"symato build: --device must be one of {extension.DEVICE_TARGETS}, "
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
        "compiler_version": extension.compiler_version(),
        "cpu": device_name(torch.device("cpu")),
        "families": families,
    }
    if device == "cuda":
        record |= {"cuda_target": extension.cuda_target(), "cuda_home": extension.cuda_home(),
                   "nvcc": extension.nvcc_version(),
                   "device_name": torch.cuda.get_device_name() if torch.cuda.is_available()
                   else None}
    return record


def main(argv: list[str]) -> int:
    """``symato build --device cpu|cuda --out FILE``: 0 when every family built."""
    p = argparse.ArgumentParser(
        prog="symato build",
        description="Build every operator's compiled kernels for one device type into "
        "$SYMATO_BUILD_DIR (default ~/.cache/symato), once, and record what was built.")
    p.add_argument("--device", required=True, choices=extension.DEVICE_TARGETS,
                   help="the device type the training jobs run on")
    p.add_argument("--out", required=True, type=Path, help="the build record (JSON) to write")
    p.add_argument("--verbose", action="store_true", help="show the compiler's commands")
    args = p.parse_args(argv)
    record = build_all(args.device, args.verbose)
    write_json_atomic(args.out, record)
    print(f"symato build: {len(record['families'])} families for {args.device} -> {args.out}",
          file=sys.stderr)
    return 0
