"""Kernel check of the WKV operators: build, correctness against float64, timing.

Step (a) of the GPU suite (``bash benchmarks/gpu/run.sh``; benchmarks/gpu/README.md). Run
alone from the repository root: ``python benchmarks/gpu/kernels.py [--quick] [--out DIR]``.
On a machine with a CUDA GPU it:

1. builds ``kernels/wkv4_cuda.cu`` through ``symato.models.ops.extension.load_extension`` (the
   real build path);
2. checks forward and backward (y, new state, and gradients of w, u, k, v, state) against a
   float64 reference on fresh random inputs at several shapes including T = 16384, in
   float32 (relative error <= 1e-5) and bfloat16 I/O (<= 1e-2), with the CUDA caching
   allocator poisoned with NaN first so an output element the kernel forgets to write shows;
3. times forward and forward+backward at (8,1024,512), (16,1024,1024), (8,4096,2048) for
   our chunked kernel AND a one-thread-per-(b,c) baseline kernel built here, measures a
   device-to-device copy's bandwidth in the same run, and prints a table.

The float64 reference for the large shapes is the C++ CPU backend in float64, itself
checked in tests/test_wkv.py against an O(T^2) weighted average and by gradcheck; small
shapes also use the pure-PyTorch loop in float64 on the GPU. ``--compile-only`` just builds
(works without a GPU when TORCH_CUDA_ARCH_LIST / SYMATO_CUDA_ARCH is set).

The RWKV-7 kernel (kernels/wkv7_cuda.cu) gets the same treatment from
``kernels_wkv7.py`` beside this file, into the same report: correctness, then timings.

``--quick`` checks two small shapes per operator and times the first shape only.
``--device cpu`` checks the C++ CPU kernels the same way (no timing: the CPU kernels are
timed by benchmarks/bench_wkv.py): the smoke mode the test suite runs
(tests/test_gpu_suite.py), so this script's plumbing is tested without a GPU.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))  # symato from this checkout
import kernels_wkv7  # beside this file: its folder is on sys.path when run as a script

from symato.models.ops.extension import build_lock, load_extension
from symato.models.ops.wkv4 import INIT_PP, initial_state, wkv4
from symato.models.ops.wkv7 import load_wkv7_extension

SHAPES_CHECK = [(2, 37, 40), (3, 1000, 96), (1, 16384, 64), (4, 2048, 512)]
SHAPES_TIME = [(8, 1024, 512), (16, 1024, 1024), (8, 4096, 2048)]
SHAPES_QUICK = SHAPES_CHECK[:2]  # --quick: two small shapes, the first timing shape
TOL = {torch.float32: 1e-5, torch.bfloat16: 1e-2}

# One thread per (b, c) walking all of T: the classic RWKV-4 kernel design, for comparison.
# Backward: pass 1 stores the state before every step in a scratch buffer, pass 2 walks back.
# The empty state's pp is symato's INIT_PP, passed as the define BASE_INIT_PP.
BASELINE_CU = r"""
#include <cuda_bf16.h>
#include <cuda_runtime.h>
__device__ __forceinline__ float ld(const float* p) { return *p; }
__device__ __forceinline__ float ld(const __nv_bfloat16* p) { return __bfloat162float(*p); }
__device__ __forceinline__ void st(float* p, float x) { *p = x; }
__device__ __forceinline__ void st(__nv_bfloat16* p, float x) { *p = __float2bfloat16(x); }

template <typename F>
__global__ void base_fwd(int B, int T, int C, const float* w, const float* u, const F* k,
                         const F* v, F* y) {
  const int i = blockIdx.x * blockDim.x + threadIdx.x;
  if (i >= B * C) return;
  const int b = i / C, c = i % C;
  const long off = (long)b * T * C + c;
  const float ww = w[c], uu = u[c];
  float aa = 0.f, bb = 0.f, pp = BASE_INIT_PP;
  for (int t = 0; t < T; ++t) {
    const long j = off + (long)t * C;
    const float kk = ld(k + j), vv = ld(v + j);
    float x = uu + kk, q = fmaxf(pp, x), e1 = expf(pp - q), e2 = expf(x - q);
    st(y + j, (e1 * aa + e2 * vv) / (e1 * bb + e2));
    x = ww + pp; q = fmaxf(x, kk); e1 = expf(x - q); e2 = expf(kk - q);
    aa = e1 * aa + e2 * vv; bb = e1 * bb + e2; pp = q;
  }
}

template <typename F>
__global__ void base_bwd(int B, int T, int C, const float* w, const float* u, const F* k,
                         const F* v, const F* gy, float* scratch, float* gw, float* gu, F* gk,
                         F* gv) {
  const int i = blockIdx.x * blockDim.x + threadIdx.x;
  if (i >= B * C) return;
  const int b = i / C, c = i % C;
  const long off = (long)b * T * C + c;
  const float ww = w[c], uu = u[c];
  float aa = 0.f, bb = 0.f, pp = BASE_INIT_PP;
  for (int t = 0; t < T; ++t) {
    const long j = off + (long)t * C;
    scratch[3 * j] = aa; scratch[3 * j + 1] = bb; scratch[3 * j + 2] = pp;
    const float kk = ld(k + j), vv = ld(v + j);
    const float x = ww + pp, q = fmaxf(x, kk), e1 = expf(x - q), e2 = expf(kk - q);
    aa = e1 * aa + e2 * vv; bb = e1 * bb + e2; pp = q;
  }
  float ga = 0.f, gb = 0.f, sw = 0.f, su = 0.f;
  for (int t = T - 1; t >= 0; --t) {
    const long j = off + (long)t * C;
    const float a0 = scratch[3 * j], b0 = scratch[3 * j + 1], p0 = scratch[3 * j + 2];
    const float kk = ld(k + j), vv = ld(v + j), g = ld(gy + j);
    float x = uu + kk, q = fmaxf(p0, x), e1 = expf(p0 - q), e2 = expf(x - q);
    const float d = e1 * b0 + e2, yy = (e1 * a0 + e2 * vv) / d, r1 = e1 / d, r2 = e2 / d;
    x = ww + p0; q = fmaxf(x, kk);
    const float s1 = expf(x - q), s2 = expf(kk - q);
    const float direct = g * r2 * (vv - yy);
    st(gk + j, direct + s2 * (vv * ga + gb));
    st(gv + j, g * r2 + s2 * ga);
    su += direct;
    sw += s1 * (ga * a0 + gb * b0);
    ga = g * r1 + s1 * ga;
    gb = -g * r1 * yy + s1 * gb;
  }
  gw[i] = sw; gu[i] = su;
}

std::vector<torch::Tensor> fwd(torch::Tensor w, torch::Tensor u, torch::Tensor k,
                               torch::Tensor v) {
  const int B = k.size(0), T = k.size(1), C = k.size(2);
  auto y = torch::empty_like(k);
  const int n = B * C, tpb = 128;
  if (k.scalar_type() == torch::kBFloat16)
    base_fwd<__nv_bfloat16><<<(n + tpb - 1) / tpb, tpb>>>(B, T, C, w.data_ptr<float>(),
        u.data_ptr<float>(), (const __nv_bfloat16*)k.data_ptr(),
        (const __nv_bfloat16*)v.data_ptr(), (__nv_bfloat16*)y.data_ptr());
  else
    base_fwd<float><<<(n + tpb - 1) / tpb, tpb>>>(B, T, C, w.data_ptr<float>(),
        u.data_ptr<float>(), k.data_ptr<float>(), v.data_ptr<float>(), y.data_ptr<float>());
  return {y};
}

std::vector<torch::Tensor> bwd(torch::Tensor w, torch::Tensor u, torch::Tensor k,
                               torch::Tensor v, torch::Tensor gy, torch::Tensor scratch) {
  const int B = k.size(0), T = k.size(1), C = k.size(2);
  auto gk = torch::empty_like(k), gv = torch::empty_like(v);
  auto gw = torch::empty({B, C}, w.options()), gu = torch::empty({B, C}, w.options());
  const int n = B * C, tpb = 128;
  if (k.scalar_type() == torch::kBFloat16)
    base_bwd<__nv_bfloat16><<<(n + tpb - 1) / tpb, tpb>>>(B, T, C, w.data_ptr<float>(),
        u.data_ptr<float>(), (const __nv_bfloat16*)k.data_ptr(),
        (const __nv_bfloat16*)v.data_ptr(), (const __nv_bfloat16*)gy.data_ptr(),
        scratch.data_ptr<float>(), gw.data_ptr<float>(), gu.data_ptr<float>(),
        (__nv_bfloat16*)gk.data_ptr(), (__nv_bfloat16*)gv.data_ptr());
  else
    base_bwd<float><<<(n + tpb - 1) / tpb, tpb>>>(B, T, C, w.data_ptr<float>(),
        u.data_ptr<float>(), k.data_ptr<float>(), v.data_ptr<float>(), gy.data_ptr<float>(),
        scratch.data_ptr<float>(), gw.data_ptr<float>(), gu.data_ptr<float>(),
        gk.data_ptr<float>(), gv.data_ptr<float>());
  return {gw.sum(0), gu.sum(0), gk, gv};
}
"""
BASELINE_CPP = """
#include <torch/extension.h>
std::vector<torch::Tensor> fwd(torch::Tensor w, torch::Tensor u, torch::Tensor k,
                               torch::Tensor v);
std::vector<torch::Tensor> bwd(torch::Tensor w, torch::Tensor u, torch::Tensor k,
                               torch::Tensor v, torch::Tensor gy, torch::Tensor scratch);
"""


def log(msg: str) -> None:
    print(msg, flush=True)


def build_baseline():
    from torch.utils.cpp_extension import load_inline

    root = os.environ.get("SYMATO_BUILD_DIR")  # the package's build cache, as extension.py
    build = (Path(root) if root else Path.home() / ".cache" / "symato") / "wkv-baseline"
    with build_lock(build):  # the loader's SIGKILL-safe lock (a killed build blocks nothing)
        return load_inline(
            name="symato_wkv_baseline",
            cpp_sources=[BASELINE_CPP],
            cuda_sources=["#include <torch/extension.h>\n" + BASELINE_CU],
            functions=["fwd", "bwd"],
            extra_cuda_cflags=["-O3", f"-DBASE_INIT_PP={INIT_PP!r}f"],
            build_directory=str(build),
        )


def rel_err(a: torch.Tensor, b: torch.Tensor) -> float:
    a, b = a.double().cpu(), b.double().cpu()
    return ((a - b).norm() / b.norm().clamp_min(1e-30)).item()


def poison_allocator(nbytes: int) -> None:
    """Fill free cached GPU memory with NaN so that unwritten outputs are caught."""
    junk = torch.full((nbytes // 4,), float("nan"), device="cuda")
    del junk  # back to the caching allocator, NaN-filled, for the next torch.empty


def make_inputs(B, T, C, seed):
    g = torch.Generator().manual_seed(seed)
    w = -torch.exp(torch.randn(C, generator=g, dtype=torch.float64) - 1)
    u = torch.randn(C, generator=g, dtype=torch.float64)
    k = torch.randn(B, T, C, generator=g, dtype=torch.float64) * 3
    v = torch.randn(B, T, C, generator=g, dtype=torch.float64)
    s = initial_state(B, C, dtype=torch.float64)
    s[:, 0] = torch.randn(B, C, generator=g, dtype=torch.float64)
    s[:, 1] = torch.rand(B, C, generator=g, dtype=torch.float64) + 0.5
    s[:, 2] = torch.randn(B, C, generator=g, dtype=torch.float64)
    gy = torch.randn(B, T, C, generator=g, dtype=torch.float64)
    gs = torch.randn(B, 3, C, generator=g, dtype=torch.float64)
    return w, u, k, v, s, gy, gs


def reference(w, u, k, v, s, gy, gs, backend):
    ins = [x.clone().requires_grad_(True) for x in (w, u, k, v, s)]
    y, ns = wkv4(*ins, backend=backend)
    torch.autograd.backward([y, ns], [gy.to(y.device), gs.to(ns.device)])
    return [y.detach().cpu(), ns.detach().cpu()] + [x.grad.cpu() for x in ins]


def check_shape(B, T, C, dtype, seed, device="cuda") -> list[dict]:
    """The ``device`` kernel (``cuda`` or the C++ ``cpu`` one) against float64 references."""
    w, u, k, v, s, gy, gs = make_inputs(B, T, C, seed)
    # the reference sees exactly the rounded inputs the kernel sees
    k, v, gy = (x.to(dtype).double() for x in (k, v, gy))
    w, u = w.float().double(), u.float().double()
    refs = {"cpu-f64": reference(w, u, k, v, s, gy, gs, "cpu")}
    if B * T * C <= 200_000:
        dev64 = [x.to(device) for x in (w, u, k, v, s, gy, gs)]
        refs["torch-f64-gpu" if device == "cuda" else "torch-f64"] = reference(
            *dev64, backend="torch")
    dev = [w.float(), u.float(), k.to(dtype), v.to(dtype), s.float()]
    dev = [x.to(device).requires_grad_(True) for x in dev]
    if device == "cuda":
        poison_allocator(64 * B * T * C + (1 << 24))
    y, ns = wkv4(*dev, backend=device)
    torch.autograd.backward([y, ns], [gy.to(device).to(dtype), gs.to(device).float()])
    if device == "cuda":
        torch.cuda.synchronize()
    got = [y.detach(), ns.detach()] + [x.grad for x in dev]
    names = ["y", "state", "gw", "gu", "gk", "gv", "gstate"]
    rows = []
    for ref_name, ref in refs.items():
        for name, a, b in zip(names, got, ref, strict=True):
            finite = bool(torch.isfinite(a).all())
            if name == "state":  # compare represented values: the max exponent may differ
                a = a.double().cpu()
                a = a[:, :2] * a[:, 2:].exp()
                b = b[:, :2] * b[:, 2:].exp()
            err = rel_err(a, b)
            ok = finite and err <= TOL[dtype]
            rows.append(dict(shape=(B, T, C), dtype=str(dtype).split(".")[-1], ref=ref_name,
                             tensor=name, rel_err=err, finite=finite, ok=ok))
    return rows


def time_ms(fn, iters=20, warmup=3) -> float:
    for _ in range(warmup):
        fn()
    torch.cuda.synchronize()
    times = []
    for _ in range(iters):
        a, b = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        a.record()
        fn()
        b.record()
        torch.cuda.synchronize()
        times.append(a.elapsed_time(b))
    times.sort()
    return times[len(times) // 2]


def copy_bandwidth() -> float:
    """Device-to-device copy bandwidth in bytes/s, counting bytes read + written."""
    n = 1 << 28  # 1 GiB of float32
    src = torch.empty(n, device="cuda")
    dst = torch.empty_like(src)
    ms = time_ms(lambda: dst.copy_(src), iters=10)
    return 2 * n * 4 / (ms * 1e-3)


def time_shape(ext, base, B, T, C, dtype, bw) -> list[dict]:
    g = torch.Generator(device="cuda").manual_seed(0)
    w = -torch.exp(torch.randn(C, device="cuda", generator=g) - 1)
    u = torch.randn(C, device="cuda", generator=g)
    k, v, gy = (torch.randn(B, T, C, device="cuda", generator=g).to(dtype) for _ in range(3))
    s = initial_state(B, C, "cuda")
    gs = torch.zeros(B, 3, C, device="cuda")
    scratch = torch.empty(B * T * C * 3, device="cuda")
    esize = k.element_size()
    bytes_fwd = 3 * B * T * C * esize  # read k, v; write y
    bytes_fb = 8 * B * T * C * esize  # + backward: read k, v, gy; write gk, gv

    def ours_fwd():
        ext.forward(w, u, k, v, s, False)

    def ours_fb():
        _y, ns, ck = ext.forward(w, u, k, v, s, True)
        ext.backward(w, u, k, v, s, ns, ck, gy, gs)

    def base_fwd():
        base.fwd(w, u, k, v)

    def base_fb():
        base.fwd(w, u, k, v)
        base.bwd(w, u, k, v, gy, scratch)

    res = {}
    for name, f in [("ours_fwd", ours_fwd), ("ours_fb", ours_fb), ("base_fwd", base_fwd),
                    ("base_fb", base_fb)]:
        res[name] = time_ms(f)
    rows = []
    for kern in ("ours", "base"):
        rows.append(dict(
            shape=(B, T, C), dtype=str(dtype).split(".")[-1], kernel=kern,
            fwd_ms=res[f"{kern}_fwd"], fb_ms=res[f"{kern}_fb"],
            fwd_bw_frac=bytes_fwd / (res[f"{kern}_fwd"] * 1e-3) / bw,
            fb_bw_frac=bytes_fb / (res[f"{kern}_fb"] * 1e-3) / bw,
            fwd_speedup=res["base_fwd"] / res[f"{kern}_fwd"],
            fb_speedup=res["base_fb"] / res[f"{kern}_fb"],
        ))
    return rows


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="kernels.py", description=__doc__.split("\n")[0])
    p.add_argument("--compile-only", action="store_true", help="only build the extensions")
    p.add_argument("--out", default="results/gpu/kernels",
                   help="folder for kernels.json and kernels.md")
    p.add_argument("--skip-timing", action="store_true")
    p.add_argument("--quick", action="store_true",
                   help="two small check shapes per operator, one timing shape")
    p.add_argument("--device", choices=["cuda", "cpu"], default="cuda",
                   help="cpu: check the C++ CPU kernels instead (no timing; a smoke test)")
    args = p.parse_args(argv)
    device = args.device
    t0 = time.time()
    ext = load_extension(device, verbose=False)
    log(f"built wkv4 {device} extension in {time.time() - t0:.1f}s: {ext.__name__}")
    t0 = time.time()
    ext7 = load_wkv7_extension(device)
    log(f"built wkv7 {device} extension in {time.time() - t0:.1f}s: {ext7.__name__}")
    if args.compile_only:
        if device == "cuda":
            build_baseline()
            log("built baseline kernel")
        log("--compile-only: done")
        return 0
    if device == "cuda" and not torch.cuda.is_available():
        log("no CUDA device visible: nothing to check (--device cpu checks the CPU kernels)")
        return 2
    if device == "cuda":
        prop = torch.cuda.get_device_properties(0)
        device_label = prop.name
        log(f"device: {prop.name}, {prop.multi_processor_count} SMs, torch {torch.__version__}")
    else:
        device_label = f"cpu ({os.cpu_count()} cores)"
        log(f"device: {device_label}, torch {torch.__version__}; no timing on the CPU")
    load_extension("cpu")
    torch.set_num_threads(os.cpu_count() or 1)
    check_rows = []
    for i, (B, T, C) in enumerate(SHAPES_QUICK if args.quick else SHAPES_CHECK):
        for dtype in (torch.float32, torch.bfloat16):
            t1 = time.time()
            rows = check_shape(B, T, C, dtype, seed=100 + i, device=device)
            check_rows += rows
            worst = max(rows, key=lambda r: r["rel_err"] / TOL[dtype])
            status = "ok" if all(r["ok"] for r in rows) else "FAIL"
            log(f"check {(B, T, C)} {worst['dtype']}: {status}; worst {worst['tensor']} "
                f"vs {worst['ref']} rel err {worst['rel_err']:.2e} ({time.time() - t1:.1f}s)")
    check_rows += kernels_wkv7.check_all(log, device, quick=args.quick)
    failed = [r for r in check_rows if not r["ok"]]
    for r in failed:
        log(f"  FAIL {r}")
    time_rows, time7, bw = [], [], None
    if not args.skip_timing and device == "cuda":
        base = build_baseline()
        bw = copy_bandwidth()
        log(f"device-to-device copy bandwidth: {bw / 1e12:.2f} TB/s (read + write)")
        for B, T, C in SHAPES_TIME[:1] if args.quick else SHAPES_TIME:
            for dtype in (torch.float32, torch.bfloat16):
                time_rows += time_shape(ext, base, B, T, C, dtype, bw)
        time7 = kernels_wkv7.time_all(bw, time_ms, log, quick=args.quick)
    lines = [
        f"device: {device_label}; copy bandwidth {bw / 1e12:.2f} TB/s" if bw
        else f"device: {device_label}; no timing",
    ]
    if time_rows:
        lines += [
            "",
            "| (B,T,C) | dtype | kernel | fwd ms | fwd % copy BW | fwd+bwd ms | fwd+bwd % copy BW "
            "| fwd speedup | fwd+bwd speedup |",
            "|---|---|---|---|---|---|---|---|---|",
        ]
    for r in time_rows:
        lines.append(
            f"| {r['shape']} | {r['dtype']} | {r['kernel']} | {r['fwd_ms']:.3f} | "
            f"{100 * r['fwd_bw_frac']:.0f}% | {r['fb_ms']:.3f} | {100 * r['fb_bw_frac']:.0f}% | "
            f"{r['fwd_speedup']:.2f}x | {r['fb_speedup']:.2f}x |"
        )
    table = "\n".join(lines) + ("\n" + kernels_wkv7.table(time7) if time7 else "")
    log(table)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "kernels.md").write_text(table + "\n")
    payload = dict(device=device_label, kernels=device, quick=args.quick, copy_bw=bw,
                   checks=check_rows, timing=time_rows, timing_wkv7=time7,
                   torch=torch.__version__)
    (out / "kernels.json").write_text(json.dumps(payload, indent=1, default=str) + "\n")
    log(f"correctness: {len(check_rows) - len(failed)}/{len(check_rows)} ok")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
