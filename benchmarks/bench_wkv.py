"""Benchmark of the WKV operators on CPU: the C++ backend vs the pure-PyTorch reference.

Times forward+backward (the training cost) through the public entry points
(``symato.models.ops.wkv4.wkv4`` for RWKV-4, ``symato.models.ops.wkv7.wkv7`` for RWKV-7
with ``--op wkv7``), side by side in one run, and prints a Markdown table with the machine
named (``lscpu`` model name, core count, torch threads). The GPU numbers come from
``benchmarks/gpu/run.sh`` (the GPU suite), which needs a GPU machine.

    .venv/bin/python benchmarks/bench_wkv.py              # (8, 256, 256), the issue's shape
    .venv/bin/python benchmarks/bench_wkv.py --shape 4 1024 512 --repeats 3
    .venv/bin/python benchmarks/bench_wkv.py --op wkv7    # (B,T,H,N) = (4, 256, 8, 64)
"""

from __future__ import annotations

import argparse
import platform
import subprocess
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from symato.io import write_json_atomic
from symato.models.ops.extension import load_extension
from symato.models.ops.wkv4 import wkv4
from symato.models.ops.wkv7 import wkv7
from symato.run.precision import device_name


def machine() -> str:
    """CPU model and core count as lscpu reports them (falls back to platform)."""
    try:
        out = subprocess.run(["lscpu"], capture_output=True, text=True, check=True).stdout
        info = dict(line.split(":", 1) for line in out.splitlines() if ":" in line)
        model = info.get("Model name", platform.processor()).strip()
        cpus = info.get("CPU(s)", "?").strip()
    except (OSError, subprocess.CalledProcessError):
        model, cpus = platform.processor(), "?"
    return f"{model}, {cpus} CPUs, torch {torch.__version__} with {torch.get_num_threads()} threads"


def time_fwd_bwd(backend: str, B: int, T: int, C: int, dtype, repeats: int) -> tuple[float, float]:
    """Best-of-``repeats`` seconds for forward and for forward+backward."""
    g = torch.Generator().manual_seed(0)
    w = (-torch.exp(torch.randn(C, generator=g) - 1)).requires_grad_(True)
    u = torch.randn(C, generator=g).requires_grad_(True)
    k = torch.randn(B, T, C, generator=g).to(dtype).requires_grad_(True)
    v = torch.randn(B, T, C, generator=g).to(dtype).requires_grad_(True)
    fwd, fb = [], []
    for _ in range(repeats):
        t0 = time.perf_counter()
        with torch.no_grad():
            wkv4(w, u, k, v, backend=backend)
        fwd.append(time.perf_counter() - t0)
        t0 = time.perf_counter()
        y, s = wkv4(w, u, k, v, backend=backend)
        (y.float().sum() + s[:, :2].sum()).backward()
        fb.append(time.perf_counter() - t0)
    return min(fwd), min(fb)


def time_wkv7(backend: str, shape: list[int], dtype, repeats: int) -> tuple[float, float]:
    """Best-of-``repeats`` seconds for forward and forward+backward of ``wkv7``, on
    inputs shaped like the model's (decay in (0.545, 1), a = -kk, b = kk * lr)."""
    g = torch.Generator().manual_seed(0)
    r, w, k, v, kk, lr = (torch.randn(*shape, generator=g) for _ in range(6))
    w = -torch.nn.functional.softplus(-w) - 0.5
    kk = torch.nn.functional.normalize(kk, dim=-1)
    xs = [x.to(dtype).requires_grad_(True) for x in (r, w, k, v, -kk, kk * torch.sigmoid(lr))]
    fwd, fb = [], []
    for _ in range(repeats):
        t0 = time.perf_counter()
        with torch.no_grad():
            wkv7(*xs, backend=backend)
        fwd.append(time.perf_counter() - t0)
        t0 = time.perf_counter()
        y, s = wkv7(*xs, backend=backend)
        (y.float().sum() + s.sum()).backward()
        fb.append(time.perf_counter() - t0)
    return min(fwd), min(fb)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="bench_wkv.py", description=__doc__.split("\n")[0])
    p.add_argument("--op", choices=["wkv4", "wkv7"], default="wkv4", help="RWKV-4 or RWKV-7")
    p.add_argument("--shape", type=int, nargs="+", default=None,
                   help="B T C for wkv4 (default 8 256 256), B T H N for wkv7 (4 256 8 64)")
    p.add_argument("--repeats", type=int, default=10, help="best of N (torch: of min(N, 3))")
    p.add_argument("--dtype", choices=["float32", "bfloat16"], default="float32")
    p.add_argument("--threads", type=int, default=0, help="torch/OpenMP threads (0: default)")
    p.add_argument("--json", help="also write the numbers to this JSON file")
    args = p.parse_args(argv)
    shape = args.shape or ([8, 256, 256] if args.op == "wkv4" else [4, 256, 8, 64])
    if len(shape) != (3 if args.op == "wkv4" else 4):
        p.error(f"--shape takes {'B T C' if args.op == 'wkv4' else 'B T H N'} for --op {args.op}")
    dtype = getattr(torch, args.dtype)
    if args.threads:
        torch.set_num_threads(args.threads)
    if args.op == "wkv4":
        load_extension("cpu", family="wkv4")  # build outside the timed region

        def run(name: str, dims: list[int] = shape) -> tuple[float, float]:
            return time_fwd_bwd(name, *dims, dtype, 1)

        small = [1, 8, 16]
    else:
        load_extension("cpu", family="wkv7")

        def run(name: str, dims: list[int] = shape) -> tuple[float, float]:
            return time_wkv7(name, dims, dtype, 1)

        small = [1, 8, 1, 16]
    run("cpu", small)  # warm-up
    # Interleaved rounds, best of each: on a shared machine the load changes from second
    # to second, and interleaving gives both backends the same chances of a quiet moment.
    best: dict[str, list[float]] = {"cpu": [1e9, 1e9], "torch": [1e9, 1e9]}
    for r in range(args.repeats):
        for name in ("cpu", "torch") if r < 3 else ("cpu",):
            f, fb = run(name)
            best[name] = [min(best[name][0], f), min(best[name][1], fb)]
    rows = {name: (f, fb) for name, (f, fb) in best.items()}
    print(f"machine: {machine()}")
    dims = "B,T,C" if args.op == "wkv4" else "B,T,H,N"
    print(f"{args.op}: shape ({dims}) = {tuple(shape)}, {args.dtype}, "
          f"best of {args.repeats} (torch: of 3)\n")
    print("| backend | precision | device | forward ms | forward+backward ms "
          "| fwd+bwd speedup vs torch |")
    print("|---|---|---|---|---|---|")
    device = device_name(torch.device("cpu"))
    for name, (f, fb) in rows.items():
        print(f"| {name} | {args.dtype} | {device} | {f * 1e3:.2f} | {fb * 1e3:.2f} "
              f"| {rows['torch'][1] / fb:.1f}x |")
    if args.json:
        write_json_atomic(args.json, {
            "machine": machine(), "op": args.op, "shape": shape, "dtype": args.dtype,
            "seconds": {k: {"forward": f, "forward_backward": fb} for k, (f, fb) in rows.items()},
        })
    return 0


if __name__ == "__main__":
    sys.exit(main())
