"""Tests of the RWKV-7 WKV operator (symato/models/ops/wkv7.py, kernels/wkv7_*): the reference
against a literal float64 loop, gradcheck of the reference and of the C++ kernel, the C++
kernel and the CUDA kernel's source (emulated on the CPU) against the reference, long
inputs, the custom ops under opcheck and torch.compile, and the error paths.

The naive loop here is written entry by entry from the recurrence, with Python floats, on
purpose differently from the reference's batched matrix form. A compiled kernel that should
build and does not makes its tests FAIL: only a missing GPU, or a missing toolchain where
SYMATO_REQUIRE_KERNELS does not demand it, skips (tests/_kernels.py).
"""

from __future__ import annotations

import math
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from _kernels import require_kernel

import symato.models.ops.extension as wkv_loader
import symato.models.ops.wkv7 as wkv7_ops
from symato.errors import SymatoError
from symato.models.ops.extension import toolchain_missing
from symato.models.ops.wkv7 import last_backend_used, resolve_backend, wkv7

HAS_CUDA = torch.cuda.is_available()
needs_cuda = pytest.mark.skipif(not HAS_CUDA, reason="no CUDA GPU on this machine")
KERNELS = Path(__file__).resolve().parent.parent / "kernels"
NAMES = ["r", "w", "k", "v", "a", "b", "state"]


def make_inputs(B, T, H, N, dtype=torch.float64, seed=0, with_state=True):
    """Inputs shaped like the model's: w = -softplus(-x) - 0.5 (decay in (0.545, 1)),
    a = -kk, b = kk * lr with kk unit-norm per head and lr in (0, 1)."""
    g = torch.Generator().manual_seed(seed)

    def randn(*shape):
        return torch.randn(*shape, generator=g, dtype=torch.float64)

    r, k, v = randn(B, T, H, N), randn(B, T, H, N), randn(B, T, H, N)
    w = -F.softplus(-randn(B, T, H, N)) - 0.5
    kk = F.normalize(randn(B, T, H, N), dim=-1)
    lr = torch.sigmoid(randn(B, T, H, N))
    state = randn(B, H, N, N) if with_state else None
    xs = [x.to(dtype) for x in (r, w, k, v, -kk, kk * lr)]
    sdt = torch.float64 if dtype == torch.float64 else torch.float32
    return xs, None if state is None else state.to(sdt)


def naive_wkv7(r, w, k, v, a, b, state=None):
    """The recurrence entry by entry in Python floats (float64):
    S[i][j] <- S[i][j] d_j + (sum_l S[i][l] a_l) b_j + v_i k_j;  y_i = sum_j S[i][j] r_j."""
    B, T, H, N = r.shape
    y = torch.zeros(B, T, H, N, dtype=torch.float64)
    s_out = torch.zeros(B, H, N, N, dtype=torch.float64)
    for bi in range(B):
        for h in range(H):
            S = [[0.0] * N for _ in range(N)]
            if state is not None:
                S = [[float(state[bi, h, i, j]) for j in range(N)] for i in range(N)]
            for t in range(T):
                x = [[float(z[bi, t, h, j]) for j in range(N)] for z in (r, w, k, v, a, b)]
                rr, ww, kk, vv, aa, bb = x
                d = [math.exp(-math.exp(wj)) for wj in ww]
                for i in range(N):
                    sa = sum(S[i][j] * aa[j] for j in range(N))
                    S[i] = [S[i][j] * d[j] + sa * bb[j] + vv[i] * kk[j] for j in range(N)]
                    y[bi, t, h, i] = sum(S[i][j] * rr[j] for j in range(N))
            s_out[bi, h] = torch.tensor(S, dtype=torch.float64)
    return y, s_out


def rel_err(a, b):
    a, b = a.detach().double().cpu(), b.detach().double().cpu()
    return ((a - b).norm() / b.norm().clamp_min(1e-30)).item()


def grads_of(backend, xs, state, gy, gs):
    """(y, new_state, [grads of the six inputs and the state]) for one backend."""
    ins = [x.clone().requires_grad_(True) for x in (*xs, state)]
    y, ns = wkv7(*ins, backend=backend)
    torch.autograd.backward([y, ns], [gy.to(y.dtype), gs.to(ns.dtype)])
    return y.detach(), ns.detach(), [x.grad for x in ins]


def random_like(shape, dtype=torch.float64, seed=99):
    return torch.randn(*shape, generator=torch.Generator().manual_seed(seed), dtype=dtype)


@pytest.fixture(scope="module")
def cpu_ext():
    return require_kernel("cpu", "wkv7")  # a failed build fails the tests that use it


@pytest.fixture(scope="module")
def emulated():
    return require_kernel("cuda-emulated", "wkv7")


# ----------------------------------------------------------------------------- reference


@pytest.mark.parametrize("with_state", [False, True])
def test_reference_matches_naive_loop(with_state):
    xs, s = make_inputs(2, 6, 2, 3, seed=1, with_state=with_state)
    y, ns = wkv7(*xs, s, backend="torch")
    y_ref, s_ref = naive_wkv7(*xs, s)
    assert last_backend_used() == "torch"
    torch.testing.assert_close(y, y_ref, rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(ns, s_ref, rtol=1e-12, atol=1e-12)


def test_naive_loop_is_the_recurrence_for_one_step():
    """One step by hand: S = S0 diag(d) + (S0 a) b^T + v k^T, y = S r."""
    xs, s = make_inputs(1, 1, 1, 2, seed=2)
    r, w, k, v, a, b = (x[0, 0, 0] for x in xs)
    S0 = s[0, 0]
    S = S0 * torch.exp(-torch.exp(w))[None, :] + torch.outer(S0 @ a, b) + torch.outer(v, k)
    y, ns = naive_wkv7(*xs, s)
    torch.testing.assert_close(ns[0, 0], S, rtol=1e-14, atol=1e-14)
    torch.testing.assert_close(y[0, 0, 0], S @ r, rtol=1e-14, atol=1e-14)


@pytest.mark.parametrize("backend", ["torch", "cpu"])
def test_state_chaining_equals_one_call(backend, cpu_ext):
    """T1 then T2 with the carried state == T1 + T2 in one call: outputs, state and the
    gradients of every input (the state passes gradients between the calls)."""
    xs, s = make_inputs(2, 23, 2, 4, seed=3)
    gy = random_like((2, 23, 2, 4))
    one = [x.clone().requires_grad_(True) for x in (*xs, s)]
    y1, s1 = wkv7(*one, backend=backend)
    two = [x.clone().requires_grad_(True) for x in (*xs, s)]
    ya, sa = wkv7(*(x[:, :9] for x in two[:6]), two[6], backend=backend)
    yb, sb = wkv7(*(x[:, 9:] for x in two[:6]), sa, backend=backend)
    y2 = torch.cat([ya, yb], 1)
    torch.testing.assert_close(y2, y1, rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(sb, s1, rtol=1e-12, atol=1e-12)
    ((y1 * gy).sum() + s1.sum()).backward()
    ((y2 * gy).sum() + sb.sum()).backward()
    for name, p, q in zip(NAMES, two, one, strict=True):
        torch.testing.assert_close(p.grad, q.grad, rtol=1e-10, atol=1e-12, msg=name)


@pytest.mark.parametrize("backend", ["torch", "cpu"])
@pytest.mark.parametrize("with_state", [False, True])
def test_gradcheck_float64(backend, with_state, cpu_ext):
    """All six inputs and the state, against finite differences (w at any value: the
    kernels' d(decay)/dw is exact, not the model's clamp)."""
    xs, s = make_inputs(2, 5, 2, 3, seed=4, with_state=with_state)
    if s is None:
        s = torch.zeros(2, 2, 3, 3, dtype=torch.float64)
    xs[1] = xs[1] + 0.3 * random_like(xs[1].shape, seed=5)  # some w above the clamp
    ins = [x.clone().requires_grad_(True) for x in (*xs, s)]
    assert torch.autograd.gradcheck(lambda *t: wkv7(*t, backend=backend), ins)


# ----------------------------------------------------------------------------- cpu kernel


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_cpu_matches_reference(dtype, cpu_ext):
    """C++ kernel vs the reference in float64 on the same (rounded) inputs.

    Tolerances: both compute in float32 with N-term dot products per step, so y, the
    state and the gradients differ from float64 by a relative ~1e-7 * sqrt(N T); 1e-5
    leaves a 10x margin. bfloat16 outputs are rounded to 8 bits of mantissa (relative
    error up to 2^-9 = 2e-3 per element, ~1e-3 in norm): 1e-2.
    """
    B, T, H, N = 2, 37, 3, 8
    xs, s = make_inputs(B, T, H, N, seed=6)
    xs = [x.to(dtype).double() for x in xs]  # the reference sees the kernel's inputs
    s = s.float().double()
    gy, gs = random_like((B, T, H, N), seed=7).to(dtype).double(), random_like(s.shape, seed=8)
    y_ref, s_ref, g_ref = grads_of("torch", xs, s, gy, gs)
    y, ns, g = grads_of("cpu", [x.to(dtype) for x in xs], s.float(), gy.to(dtype), gs.float())
    assert last_backend_used() == "cpu"
    assert y.dtype == dtype and ns.dtype == torch.float32
    tol = 1e-5 if dtype == torch.float32 else 1e-2
    assert rel_err(y, y_ref) <= tol
    assert rel_err(ns, s_ref) <= 1e-5  # the state is float32 in both cases
    for name, a, b in zip(NAMES, g, g_ref, strict=True):
        assert a.dtype == (dtype if name != "state" else torch.float32), name
        assert rel_err(a, b) <= tol, name


def test_cpu_float32_matches_torch_float32(cpu_ext):
    """Same float32 inputs through autograd of the reference and the C++ backward."""
    xs, s = make_inputs(2, 40, 2, 16, torch.float32, seed=9)
    gy, gs = random_like((2, 40, 2, 16), torch.float32), random_like(s.shape, torch.float32)
    y_t, s_t, g_t = grads_of("torch", xs, s, gy, gs)
    y_c, s_c, g_c = grads_of("cpu", xs, s, gy, gs)
    assert rel_err(y_c, y_t) <= 1e-5 and rel_err(s_c, s_t) <= 1e-5
    for name, a, b in zip(NAMES, g_c, g_t, strict=True):
        assert rel_err(a, b) <= 1e-5, name


def test_long_sequence_stays_bounded_and_accurate(cpu_ext):
    """T = 16,384: the decay keeps the state bounded, and float32 stays within 1e-5 of
    float64 for y, the state and every gradient over the whole length."""
    B, T, H, N = 1, 16384, 2, 8
    xs, s = make_inputs(B, T, H, N, seed=10)
    with torch.no_grad():
        y64, s64 = wkv7(*xs, s, backend="torch")  # the reference, forward only
    gy, gs = random_like((B, T, H, N), seed=11), random_like(s.shape, seed=12)
    y, ns, g = grads_of("cpu", [x.float() for x in xs], s.float(), gy.float(), gs.float())
    _, _, g64 = grads_of("cpu", xs, s, gy, gs)  # float64 kernel: gradchecked above
    assert torch.isfinite(ns).all() and ns.abs().max() < 100
    assert rel_err(y, y64) <= 1e-5 and rel_err(ns, s64) <= 1e-5
    for name, a, b in zip(NAMES, g, g64, strict=True):
        assert torch.isfinite(a).all(), name
        assert rel_err(a, b) <= 1e-5, name


# ----------------------------------------------------------------------------- the ops


def test_custom_ops_pass_opcheck(cpu_ext):
    """The fake (shape) and autograd registrations agree with the real kernels, which is
    what torch.compile and torch.export rely on."""
    xs, s = make_inputs(2, 9, 2, 4, torch.float32, seed=13)
    args = (*[x.requires_grad_() for x in xs], s, "cpu", True)
    torch.library.opcheck(wkv7_ops._wkv7_forward, args)
    gy, gs = random_like((2, 9, 2, 4), torch.float32), random_like(s.shape, torch.float32)
    empty = s.new_empty(0)
    bargs = (*[x.detach() for x in xs], s, empty, empty, gy, gs, "cpu")
    torch.library.opcheck(wkv7_ops._wkv7_backward, bargs)


def test_torch_compile_fullgraph_matches_eager(cpu_ext):
    """fullgraph=True fails on any graph break: resolving the backend and calling the
    kernel must both stay in one graph; the gradients equal eager mode's."""
    xs, s = make_inputs(2, 11, 2, 4, torch.float32, seed=14)

    def f(r, w, k, v, a, b, s):
        y, ns = wkv7(r, torch.tanh(w), k, v, a, b, state=s)
        return (y * y).sum() + ns.square().sum()

    eager = [x.clone().requires_grad_(True) for x in (*xs, s)]
    f(*eager).backward()
    traced = [x.clone().requires_grad_(True) for x in (*xs, s)]
    torch._dynamo.reset()
    torch.compile(f, fullgraph=True, backend="aot_eager")(*traced).backward()
    assert last_backend_used() == "cpu"
    for name, a, b in zip(NAMES, traced, eager, strict=True):
        assert torch.equal(a.grad, b.grad), name


# ----------------------------------------------------------------------------- errors


def test_bad_inputs_name_the_argument():
    xs, s = make_inputs(2, 4, 2, 3, torch.float32, seed=15)
    r, w, k, v, a, b = xs
    cases = [
        ((r, w, k, v[:, :2], a, b), None, "v shape"),
        ((r, w, k, v, a, b.double()), None, "b dtype"),
        ((r[0], w, k, v, a, b), None, "r must be"),
        ((r.half(), *(x.half() for x in xs[1:])), None, "r has dtype"),
        ((r, w.to("meta"), k, v, a, b), None, "w is on meta"),
        ((r, w, k, v, a, b), s[:, :, :2], "state must have shape"),
        ((r, w, k, v, a, b), s.to("meta"), "state is on meta"),
        ((r, w, k, v, a, b), s.long(), "state must be floating"),
        ((r, w, k, 3.0, a, b), None, "v must be a tensor"),
    ]
    for args, state, match in cases:
        with pytest.raises(SymatoError, match=match):
            wkv7(*args, state=state, backend="torch")
    with pytest.raises(SymatoError, match="backend must be one of"):
        wkv7(*xs, backend="tpu")
    with pytest.raises(SymatoError, match="'cuda' needs CUDA tensors"):
        wkv7(*xs, backend="cuda")
    with pytest.raises(SymatoError, match="no compiled kernel for meta"):
        wkv7(*(x.to("meta") for x in xs))


def test_auto_uses_the_cpu_kernel(cpu_ext):
    assert resolve_backend("auto", torch.device("cpu"), torch.float32) == "cpu"
    assert resolve_backend("auto", torch.device("cpu"), torch.float64) == "cpu"
    with pytest.raises(SymatoError, match=r"not torch\.float64; cast the inputs"):
        resolve_backend("auto", torch.device("cuda"), torch.float64)
    xs, _ = make_inputs(1, 3, 1, 2, torch.float32, seed=16)
    y, s = wkv7(*xs)
    assert last_backend_used() == "cpu" and s.dtype == torch.float32 and y.shape == xs[0].shape


def test_failed_build_is_an_error_not_a_fallback(monkeypatch, tmp_path):
    """A kernel that cannot be built: 'auto' raises a SymatoError with the compiler's
    error and the fix (never runs the slow loop silently); 'torch' by name still runs."""
    if toolchain_missing("cpu") is not None:
        pytest.skip(f"no toolchain to fail with: {toolchain_missing('cpu')}")
    bad = tmp_path / "kernels"
    bad.mkdir()
    (bad / "wkv7_cpu.cpp").write_text("this is not C++\n")
    monkeypatch.setenv("SYMATO_KERNELS_DIR", str(bad))
    monkeypatch.setenv("SYMATO_BUILD_DIR", str(tmp_path / "build"))
    monkeypatch.setattr(wkv_loader, "_extensions", {})
    monkeypatch.setattr(wkv_loader, "_build_errors", {})
    xs, _ = make_inputs(1, 3, 1, 2, torch.float32, seed=17)
    for backend in ("auto", "cpu"):
        with pytest.raises(SymatoError) as info:
            wkv7(*xs, backend=backend)
        msg = str(info.value)
        assert "cpu kernel could not be built" in msg and "error" in msg
        assert "fix:" in msg and "backend='torch'" in msg
    wkv7(*xs, backend="torch")
    assert last_backend_used() == "torch"


def test_empty_sequence_returns_the_state():
    xs, s = make_inputs(2, 0, 2, 3, torch.float32, seed=18)
    y, ns = wkv7(*xs, s)
    assert y.shape == (2, 0, 2, 3)
    torch.testing.assert_close(ns, s)


# ------------------------------------------- the CUDA kernel source itself, on the CPU
# kernels/wkv7_cuda.cu compiled with plain g++ against kernels/wkv_host_emulation.h: one OS
# thread per CUDA thread, a real barrier for __syncthreads, shuffles through a block buffer.
# This runs the kernels' indexing, chunking, checkpoints, the two copies of dS and their
# shuffle reductions, and bfloat16 I/O (not the GPU's memory model or its expf rounding:
# benchmarks/gpu/run.sh covers those).


@pytest.mark.slow  # builds a third extension (about 30 s on 2 cores), once
@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
@pytest.mark.parametrize("shape", [(2, 37, 2, 16), (1, 50, 1, 32), (1, 21, 1, 64), (2, 1, 1, 16)])
def test_cuda_kernel_source_emulated_on_cpu(emulated, dtype, shape):
    """Forward and backward of the .cu against float64: T covers a partial chunk of 16
    and a partial sub-chunk of 4; N = 16, 32, 64 are G = 1, 2, 4 lanes per row."""
    B, T, H, N = shape
    xs, s = make_inputs(B, T, H, N, seed=19)
    xs = [x.to(dtype).double() for x in xs]
    s = s.float().double()
    gy, gs = random_like((B, T, H, N), seed=20).to(dtype).double(), random_like(s.shape, seed=21)
    y_ref, s_ref, g_ref = grads_of("torch", xs, s, gy, gs)
    io = [x.to(dtype) for x in xs]
    y, ns, ckpt, sa = emulated.forward(*io, s.float(), True)
    assert ckpt.shape == (B, H, (T + 15) // 16, N, N) and sa.shape == (B, T, H, N)
    got = emulated.backward(*io, s.float(), ckpt, sa, gy.to(dtype), gs.float())
    tol = 1e-5 if dtype == torch.float32 else 1e-2
    assert y.dtype == dtype and rel_err(y, y_ref) <= tol
    assert rel_err(ns, s_ref) <= 1e-5
    for name, a, b in zip(NAMES, got, g_ref, strict=True):
        assert rel_err(a, b) <= tol, name


@pytest.mark.slow  # shares the emulated build
@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_cuda_path_of_the_op_emulated_on_cpu(emulated, dtype):
    """The Python side of the CUDA backend (saved checkpoints and sa, their fake shapes,
    the backward's argument order, casts back to the callers' dtypes) end to end through
    the custom ops and autograd, with the CUDA kernels' source emulated on the CPU."""
    B, T, H, N = 2, 29, 1, 16
    xs, s = make_inputs(B, T, H, N, seed=22)
    xs = [x.to(dtype).double() for x in xs]
    ref = [x.clone().requires_grad_(True) for x in (*xs, s.float().double())]
    y_ref, s_ref = wkv7(*ref, backend="torch")
    (y_ref.square().sum() + s_ref.square().sum()).backward()
    ins = [x.to(dtype).clone().requires_grad_(True) for x in xs]
    ins.append(s.float().clone().requires_grad_(True))
    y, ns = wkv7_ops._wkv7_compiled(*ins, "cuda-emulated")
    (y.float().square().sum() + ns.square().sum()).backward()
    tol = 1e-5 if dtype == torch.float32 else 2e-2
    assert y.dtype == dtype and ns.dtype == torch.float32
    assert rel_err(y, y_ref) <= tol
    for name, a, b in zip(NAMES, ins, ref, strict=True):
        assert a.grad.dtype == a.dtype, name
        assert rel_err(a.grad, b.grad) <= tol, name
    with torch.no_grad():  # no gradient wanted: nothing kept
        out = wkv7_ops._wkv7_forward(*[x.detach() for x in ins], "cuda-emulated", False)
    assert out[2].numel() == 0 and out[3].numel() == 0


@pytest.mark.slow  # 16,384 steps of 16 emulated threads
def test_cuda_kernel_source_emulated_long_sequence(emulated):
    B, T, H, N = 1, 16384, 1, 16
    xs, s = make_inputs(B, T, H, N, seed=23)
    xs = [x.float().double() for x in xs]
    s = s.float().double()
    gy, gs = random_like((B, T, H, N), seed=24), random_like(s.shape, seed=25)
    _, _, g64 = grads_of("cpu", xs, s, gy, gs)
    with torch.no_grad():
        y64, s64 = wkv7(*xs, s, backend="cpu")
    io = [x.float() for x in xs]
    y, ns, ckpt, sa = emulated.forward(*io, s.float(), True)
    got = emulated.backward(*io, s.float(), ckpt, sa, gy.float(), gs.float())
    assert torch.isfinite(ns).all()
    assert rel_err(y, y64) <= 1e-5 and rel_err(ns, s64) <= 1e-5
    for name, a, b in zip(NAMES, got, g64, strict=True):
        assert rel_err(a, b) <= 1e-5, name


@pytest.mark.skipif(shutil.which("nvcc") is None, reason="no nvcc on this machine")
def test_cuda_source_compiles_for_sm90(tmp_path):
    """nvcc builds every instantiation for sm_90 (Hopper) without a GPU."""
    out = subprocess.run(
        ["nvcc", "-arch=sm_90", "-O3", "-Xptxas", "-v", "-c", str(KERNELS / "wkv7_cuda.cu"),
         "-o", str(tmp_path / "wkv7.o")],
        capture_output=True, text=True, check=False,
    )
    assert out.returncode == 0, out.stderr[-3000:]
    assert out.stderr.count("Compiling entry function") == 12  # {fwd, bwd} x {f32, bf16} x 3 N


# ----------------------------------------------------------------------------- real GPU


@needs_cuda
@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
@pytest.mark.parametrize("shape", [(2, 37, 2, 64), (1, 300, 3, 32), (2, 1000, 1, 16)])
def test_cuda_matches_reference(dtype, shape, cpu_ext):
    require_kernel("cuda", "wkv7")
    B, T, H, N = shape
    xs, s = make_inputs(B, T, H, N, seed=26)
    xs = [x.to(dtype).double() for x in xs]
    s = s.float().double()
    gy, gs = random_like((B, T, H, N), seed=27).to(dtype).double(), random_like(s.shape, seed=28)
    y_ref, s_ref, g_ref = grads_of("cpu", xs, s, gy, gs)
    dev = [x.to(dtype).cuda() for x in xs]
    y, ns, g = grads_of("cuda", dev, s.float().cuda(), gy.to(dtype).cuda(), gs.float().cuda())
    tol = 1e-5 if dtype == torch.float32 else 1e-2
    assert rel_err(y, y_ref) <= tol and rel_err(ns, s_ref) <= 1e-5
    for name, a, b in zip(NAMES, g, g_ref, strict=True):
        assert rel_err(a, b) <= tol, name


@needs_cuda
def test_cuda_long_sequence(cpu_ext):
    require_kernel("cuda", "wkv7")
    xs, s = make_inputs(1, 16384, 2, 64, torch.float32, seed=29)
    dev = [x.cuda().requires_grad_(True) for x in (*xs, s)]
    y, ns = wkv7(*dev, backend="cuda")
    (y.sum() + ns.sum()).backward()
    assert torch.isfinite(ns).all() and all(torch.isfinite(x.grad).all() for x in dev)
    with torch.no_grad():
        y64, _ = wkv7(*(x.double() for x in xs), s.double(), backend="cpu")
    assert rel_err(y, y64) <= 1e-5


def test_inference_calls_the_kernels_without_the_custom_op_dispatch() -> None:
    """Under no_grad outside tracing both operators call their CPU kernel directly (the
    custom op's dispatch imports torch._dynamo, ~2 s per evaluation process), with the
    same outputs as the differentiable custom-op path."""
    require_kernel("cpu", "wkv4")
    require_kernel("cpu", "wkv7")
    code = """
import sys, torch
from symato.models.ops import wkv4, wkv7
torch.manual_seed(0)
B, T, C, H, N = 2, 19, 16, 2, 8
w, u = -torch.rand(C) - 0.1, torch.randn(C)
k, v = torch.randn(B, T, C), torch.randn(B, T, C)
r, k7, v7, a = (torch.randn(B, T, H, N) for _ in range(4))
w7 = -torch.rand(B, T, H, N) - 0.1
kk = torch.nn.functional.normalize(torch.randn(B, T, H, N), dim=-1)
with torch.no_grad():
    y4, s4 = wkv4.wkv4(w, u, k, v, backend="cpu")
    y7, s7 = wkv7.wkv7(r, w7, k7, v7, -kk, kk * a.sigmoid(), backend="cpu")
assert "torch._dynamo" not in sys.modules, "inference went through the custom-op dispatch"
g4 = wkv4.wkv4(w.requires_grad_(), u, k, v, backend="cpu")
g7 = wkv7.wkv7(r.requires_grad_(), w7, k7, v7, -kk, kk * a.sigmoid(), backend="cpu")
for x, y in zip((y4, s4, y7, s7), (*g4, *g7)):
    assert torch.equal(x, y.detach()), (x - y).abs().max()
print("ok")
"""
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         timeout=300)
    assert out.returncode == 0 and "ok" in out.stdout, out.stderr[-3000:]
