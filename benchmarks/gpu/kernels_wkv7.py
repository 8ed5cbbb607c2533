"""Kernel check of the WKV-7 operator (kernels/wkv7_cuda.cu), run by kernels.py beside it.

1. correctness: forward and backward (y, new state, gradients of r, w, k, v, a, b and the
   state) against float64 on fresh model-like inputs, float32 (relative error <= 1e-5) and
   bfloat16 I/O (<= 1e-2), shapes up to T = 16384, with the CUDA caching allocator
   poisoned with NaN first so an output element the kernel forgets to write shows. The
   float64 reference is the C++ kernel in float64 (gradchecked in tests/test_wkv7.py), and
   for small shapes also the pure-PyTorch loop in float64 on the GPU;
2. timing: forward and forward+backward at (B, T, H, N) with H*N = 512, 1024, 2048 and
   N = 64 (the WKV-4 shapes of kernels.py), against the PyTorch reference on the GPU at
   the first shape, with bytes moved and FMA throughput.

Why a module of its own: kernels.py is the WKV-4 check; both write one report. With
``--device cpu`` (kernels.py) the C++ CPU kernel is checked the same way, without timing.
"""

from __future__ import annotations

import time

import torch
import torch.nn.functional as F

from symato.models.ops.wkv7 import load_wkv7_extension, wkv7

SHAPES_CHECK = [(2, 37, 2, 64), (1, 300, 3, 16), (3, 1000, 4, 32), (4, 2048, 8, 64),
                (1, 16384, 2, 64)]
SHAPES_TIME = [(8, 1024, 8, 64), (16, 1024, 16, 64), (8, 4096, 32, 64)]
SHAPES_QUICK = SHAPES_CHECK[:2]  # --quick: two small shapes, the first timing shape
TOL = {torch.float32: 1e-5, torch.bfloat16: 1e-2}
NAMES = ["y", "state", "gr", "gw", "gk", "gv", "ga", "gb", "gstate"]
# FMAs per state entry per step (kernels/wkv7_cuda.cu): forward S a, the update (3), S r;
# backward dS += dy r^T (2 copies), 6 dot products, S_{t-1} u, the 2 dS updates (4), and
# 2.5 recomputed column steps (3 each).
FMA_FWD, FMA_BWD = 5, 2 + 6 + 1 + 4 + 7.5


def rel_err(a: torch.Tensor, b: torch.Tensor) -> float:
    a, b = a.double().cpu(), b.double().cpu()
    return ((a - b).norm() / b.norm().clamp_min(1e-30)).item()


def make_inputs(B, T, H, N, seed, device="cpu"):
    """Model-like inputs in float64: decay in (0.545, 1), a = -kk, b = kk * lr."""
    g = torch.Generator().manual_seed(seed)
    r, w, k, v, kk, lr = (torch.randn(B, T, H, N, generator=g, dtype=torch.float64)
                          for _ in range(6))
    w = -F.softplus(-w) - 0.5
    kk = F.normalize(kk, dim=-1)
    xs = [r, w, k, v, -kk, kk * torch.sigmoid(lr)]
    s = torch.randn(B, H, N, N, generator=g, dtype=torch.float64)
    gy = torch.randn(B, T, H, N, generator=g, dtype=torch.float64)
    gs = torch.randn(B, H, N, N, generator=g, dtype=torch.float64)
    return [x.to(device) for x in (*xs, s, gy, gs)]


def run(backend, xs, s, gy, gs):
    ins = [x.clone().requires_grad_(True) for x in (*xs, s)]
    y, ns = wkv7(*ins, backend=backend)
    torch.autograd.backward([y, ns], [gy.to(y.dtype), gs.to(ns.dtype)])
    return [y.detach(), ns.detach()] + [x.grad for x in ins]


def check_shape(B, T, H, N, dtype, seed, device="cuda") -> list[dict]:
    """The ``device`` kernel (``cuda`` or the C++ ``cpu`` one) against float64 references."""
    *xs, s, gy, gs = make_inputs(B, T, H, N, seed)
    xs = [x.to(dtype).double() for x in xs]  # the references see the kernel's inputs
    s, gy = s.float().double(), gy.to(dtype).double()
    refs = {"cpu-f64": run("cpu", xs, s, gy, gs)}
    if B * T * H * N <= 20_000:
        name = "torch-f64-gpu" if device == "cuda" else "torch-f64"
        refs[name] = run("torch", [x.to(device) for x in xs], s.to(device), gy.to(device),
                         gs.to(device))
    if device == "cuda":
        junk = torch.full((64 * B * T * H * N + (1 << 24),), float("nan"), device="cuda")
        del junk  # the caching allocator hands out NaN-filled memory next
    got = run(device, [x.to(dtype).to(device) for x in xs], s.float().to(device),
              gy.to(dtype).to(device), gs.float().to(device))
    if device == "cuda":
        torch.cuda.synchronize()
    rows = []
    for ref_name, ref in refs.items():
        for name, a, b in zip(NAMES, got, ref, strict=True):
            finite = bool(torch.isfinite(a).all())
            err = rel_err(a, b)
            tol = 1e-5 if name in ("state", "gstate") else TOL[dtype]  # float32 in both
            rows.append(dict(op="wkv7", shape=(B, T, H, N), dtype=str(dtype).split(".")[-1],
                             ref=ref_name, tensor=name, rel_err=err, finite=finite,
                             ok=finite and err <= tol))
    return rows


def check_all(log, device="cuda", quick=False) -> list[dict]:
    rows = []
    for i, shape in enumerate(SHAPES_QUICK if quick else SHAPES_CHECK):
        for dtype in (torch.float32, torch.bfloat16):
            t1 = time.time()
            part = check_shape(*shape, dtype, seed=200 + i, device=device)
            rows += part
            worst = max(part, key=lambda r: r["rel_err"] / TOL[dtype])
            status = "ok" if all(r["ok"] for r in part) else "FAIL"
            log(f"wkv7 check {shape} {worst['dtype']}: {status}; worst {worst['tensor']} vs "
                f"{worst['ref']} rel err {worst['rel_err']:.2e} ({time.time() - t1:.1f}s)")
    return rows


def time_shape(ext, B, T, H, N, dtype, bw, time_ms, with_ref) -> dict:
    *xs, s, gy, gs = make_inputs(B, T, H, N, seed=0, device="cuda")
    xs = [x.to(dtype) for x in xs]
    s, gy, gs = s.float(), gy.to(dtype), gs.float()
    res = {
        "fwd_ms": time_ms(lambda: ext.forward(*xs, s, False)),
        "fb_ms": time_ms(lambda: ext.backward(*xs, s, *ext.forward(*xs, s, True)[2:], gy, gs)),
    }
    if with_ref:  # one run each: the loop launches ~10 kernels per step
        res["ref_fwd_ms"] = time_ms(lambda: wkv7(*xs, s, backend="torch"), iters=1, warmup=1)
        ins = [x.clone().requires_grad_(True) for x in xs]

        def ref_fb():
            y, ns = wkv7(*ins, s, backend="torch")
            torch.autograd.backward([y, ns], [gy, gs])

        res["ref_fb_ms"] = time_ms(ref_fb, iters=1, warmup=1)
    e, n = xs[0].element_size(), B * T * H * N
    saved = 4 * (n * N // 16 + n)  # checkpoints + sa, float32
    bytes_fwd, bytes_fb = 7 * n * e, 7 * n * e + saved + 14 * n * e + saved
    fma = n * N
    return dict(op="wkv7", shape=(B, T, H, N), dtype=str(dtype).split(".")[-1], **res,
                fwd_bw_frac=bytes_fwd / (res["fwd_ms"] * 1e-3) / bw,
                fb_bw_frac=bytes_fb / (res["fb_ms"] * 1e-3) / bw,
                fwd_tflops=2 * FMA_FWD * fma / (res["fwd_ms"] * 1e-3) / 1e12,
                fb_tflops=2 * (FMA_FWD + FMA_BWD) * fma / (res["fb_ms"] * 1e-3) / 1e12)


def time_all(bw, time_ms, log, quick=False) -> list[dict]:
    ext = load_wkv7_extension("cuda")
    rows = []
    for i, shape in enumerate(SHAPES_TIME[:1] if quick else SHAPES_TIME):
        for dtype in (torch.float32, torch.bfloat16):
            rows.append(time_shape(ext, *shape, dtype, bw, time_ms, with_ref=i == 0))
            r = rows[-1]
            log(f"wkv7 time {shape} {r['dtype']}: fwd {r['fwd_ms']:.3f} ms, "
                f"fwd+bwd {r['fb_ms']:.3f} ms")
    return rows


def table(rows: list[dict]) -> str:
    lines = [
        "",
        "WKV-7 (kernels/wkv7_cuda.cu); TFLOP/s counts 2 per FMA of the kernel's own schedule",
        "",
        "| (B,T,H,N) | dtype | fwd ms | fwd % copy BW | fwd TFLOP/s | fwd+bwd ms "
        "| fwd+bwd % copy BW | fwd+bwd TFLOP/s | torch ref fwd / fwd+bwd ms |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        ref = (f"{r['ref_fwd_ms']:.0f} / {r['ref_fb_ms']:.0f}" if "ref_fwd_ms" in r else "-")
        lines.append(
            f"| {r['shape']} | {r['dtype']} | {r['fwd_ms']:.3f} | {100 * r['fwd_bw_frac']:.0f}% "
            f"| {r['fwd_tflops']:.1f} | {r['fb_ms']:.3f} | {100 * r['fb_bw_frac']:.0f}% "
            f"| {r['fb_tflops']:.1f} | {ref} |"
        )
    return "\n".join(lines)
