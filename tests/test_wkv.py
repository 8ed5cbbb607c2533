"""Tests of the WKV operator (symato/models/ops/wkv4.py, kernels/): every backend against an
independent float64 reference, gradcheck, stability at large |k|, chunked state passing.

The reference here is written differently from the kernels on purpose: it evaluates the
weighted average directly (softmax over all past positions plus the initial state as one
extra pseudo-token), so a shared mistake in the max-tracking recurrence cannot hide.
The C++ extension is built once per process (symato.models.ops.extension caches it). A
kernel that should build and does not FAILS its tests; only an absent toolchain (or GPU)
skips (tests/_kernels.py).
"""

from __future__ import annotations

import shutil
import subprocess
import warnings
from pathlib import Path

import pytest
import torch
from _kernels import require_kernel

import symato.models.ops.extension as extension
import symato.models.ops.wkv4 as wkv_ops
from symato.errors import SymatoError
from symato.models.ops.extension import KernelBuildError, compiler, toolchain_missing
from symato.models.ops.wkv4 import (
    INIT_PP,
    available_backends,
    compile_defines,
    initial_state,
    last_backend_used,
    resolve_backend,
    wkv4,
)

HAS_CUDA = torch.cuda.is_available()
needs_cuda = pytest.mark.skipif(not HAS_CUDA, reason="no CUDA GPU on this machine")


def naive_wkv(w, u, k, v, state=None):
    """Float64 weighted average, O(T^2): y_t = sum_i softmax(E_t)_i * value_i."""
    w, u, k, v = (x.double() for x in (w, u, k, v))
    B, T, C = k.shape
    if state is None:
        state = initial_state(B, C, dtype=torch.float64)
    aa0, bb0, pp0 = state.double().unbind(1)
    t = torch.arange(T, dtype=torch.float64)
    # exponent of past token i seen at step t: (t - 1 - i) * w + k_i, for i < t
    lag = (t[:, None] - 1 - t[None, :])  # (T, T)
    E = lag[None, :, :, None] * w + k[:, None, :, :]  # (B, T, T, C)
    mask = (t[None, :] < t[:, None])[None, :, :, None]
    E = E.masked_fill(~mask, float("-inf"))
    cur = (u + k)  # (B, T, C): the current token, with bonus u
    # the initial state as a pseudo-token: weight bb0 * e^(pp0 + t w), value aa0 / bb0
    with torch.no_grad():
        has_state = bb0 > 0
    init_e = torch.where(
        has_state[:, None, :],
        torch.log(bb0.clamp_min(1e-300))[:, None, :] + pp0[:, None, :] + t[None, :, None] * w,
        torch.tensor(float("-inf"), dtype=torch.float64),
    )
    init_v = torch.where(has_state, aa0 / bb0.clamp_min(1e-300), torch.zeros_like(aa0))
    allE = torch.cat([E, cur[:, :, None, :], init_e[:, :, None, :]], 2)  # (B, T, T+2, C)
    past_v = v[:, None, :, :].expand(B, T, T, C)
    init_v = init_v[:, None, None, :].expand(B, T, 1, C)
    allV = torch.cat([past_v, v[:, :, None, :], init_v], 2)
    return (torch.softmax(allE, 2) * allV).sum(2)


def rand_inputs(B, T, C, dtype=torch.float32, kscale=1.0, seed=0, with_state=False):
    g = torch.Generator().manual_seed(seed)
    w = -torch.exp(torch.randn(C, generator=g, dtype=torch.float64) - 1)
    u = torch.randn(C, generator=g, dtype=torch.float64)
    k = torch.randn(B, T, C, generator=g, dtype=torch.float64) * kscale
    v = torch.randn(B, T, C, generator=g, dtype=torch.float64)
    state = None
    if with_state:
        state = initial_state(B, C, dtype=torch.float64)
        state[:, 0] = torch.randn(B, C, generator=g, dtype=torch.float64)
        state[:, 1] = torch.rand(B, C, generator=g, dtype=torch.float64) + 0.5
        state[:, 2] = torch.randn(B, C, generator=g, dtype=torch.float64)
    sdt = torch.float64 if dtype == torch.float64 else torch.float32
    cw = torch.float64 if dtype == torch.float64 else torch.float32
    return (
        w.to(cw),
        u.to(cw),
        k.to(dtype),
        v.to(dtype),
        None if state is None else state.to(sdt),
    )


def rel_err(a, b):
    a, b = a.double(), b.double()
    return ((a - b).norm() / b.norm().clamp_min(1e-30)).item()


CPU_BACKENDS = ["torch", "cpu"]
KERNELS = Path(__file__).resolve().parents[1] / "kernels"


def use(backend: str) -> None:
    """A test of the ``cpu`` backend needs its kernel: built, or skipped only where the
    C++ toolchain is absent (a failed build fails the test)."""
    if backend == "cpu":
        require_kernel("cpu")


def test_naive_reference_matches_definition():
    """The O(T^2) reference equals a literal float64 sum for a tiny case."""
    w, u, k, v, _ = rand_inputs(1, 4, 2, torch.float64)
    y = naive_wkv(w, u, k, v)
    for t in range(4):
        num = torch.exp(u + k[0, t]) * v[0, t]
        den = torch.exp(u + k[0, t])
        for i in range(t):
            e = torch.exp((t - 1 - i) * w + k[0, i])
            num, den = num + e * v[0, i], den + e
        torch.testing.assert_close(y[0, t], num / den, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("backend", CPU_BACKENDS)
@pytest.mark.parametrize("dtype", [torch.float64, torch.float32, torch.bfloat16])
@pytest.mark.parametrize("with_state", [False, True])
def test_forward_matches_reference(backend, dtype, with_state):
    use(backend)
    w, u, k, v, s = rand_inputs(3, 37, 21, dtype, with_state=with_state, seed=1)
    y, new_state = wkv4(w, u, k, v, s, backend=backend)
    assert last_backend_used() == backend
    assert y.dtype == dtype and y.shape == k.shape
    assert new_state.shape == (3, 3, 21)
    ref = naive_wkv(w, u, k, v, s)
    tol = {torch.float64: 1e-12, torch.float32: 1e-5, torch.bfloat16: 1e-2}[dtype]
    assert rel_err(y, ref) <= tol


@pytest.mark.parametrize("backend", CPU_BACKENDS)
@pytest.mark.parametrize("with_state", [False, True])
def test_gradcheck_float64(backend, with_state):
    use(backend)
    w, u, k, v, s = rand_inputs(2, 6, 5, torch.float64, with_state=with_state, seed=2)
    if s is None:
        s = initial_state(2, 5, dtype=torch.float64)
    inputs = [x.clone().requires_grad_(True) for x in (w, u, k, v, s)]
    assert torch.autograd.gradcheck(lambda *a: wkv4(*a, backend=backend), inputs)


def test_cpu_gradients_match_torch_float32():
    """Backward of the C++ kernel == autograd through the reference loop, in float32."""
    require_kernel("cpu")
    w, u, k, v, s = rand_inputs(2, 40, 33, torch.float32, with_state=True, seed=3)
    g = torch.Generator().manual_seed(9)
    gy = torch.randn(k.shape, generator=g)
    gs = torch.randn(s.shape, generator=g)
    grads = {}
    for backend in ("torch", "cpu"):
        ins = [x.clone().requires_grad_(True) for x in (w, u, k, v, s)]
        y, ns = wkv4(*ins, backend=backend)
        torch.autograd.backward([y, ns], [gy, gs])
        grads[backend] = [x.grad for x in ins]
    names = ["w", "u", "k", "v", "state"]
    for name, a, b in zip(names, grads["cpu"], grads["torch"], strict=True):
        assert rel_err(a, b) < 1e-4, name


@pytest.mark.parametrize("backend", CPU_BACKENDS)
@pytest.mark.parametrize("kscale", [80.0, 500.0])
def test_large_k_stays_finite(backend, kscale):
    use(backend)
    w, u, k, v, _ = rand_inputs(2, 50, 8, torch.float32, kscale=kscale, seed=4)
    ins = [x.clone().requires_grad_(True) for x in (w, u, k, v)]
    y, s = wkv4(*ins, backend=backend)
    (y.sum() + s[:, :2].sum()).backward()
    assert torch.isfinite(y).all() and torch.isfinite(s).all()
    for x in ins:
        assert torch.isfinite(x.grad).all()
    assert rel_err(y, naive_wkv(w, u, k, v)) <= 1e-5


@pytest.mark.parametrize("backend", CPU_BACKENDS)
def test_chunked_calls_equal_one_call(backend):
    """Training long sequences in chunks: passing the state on gives the same y and
    the same gradients as one call over the whole sequence."""
    use(backend)
    w, u, k, v, _ = rand_inputs(2, 30, 6, torch.float64, seed=5)
    ins1 = [x.clone().requires_grad_(True) for x in (w, u, k, v)]
    y1, s1 = wkv4(*ins1, backend=backend)
    ins2 = [x.clone().requires_grad_(True) for x in (w, u, k, v)]
    w2, u2, k2, v2 = ins2
    state, ys = None, []
    for a, b in ((0, 7), (7, 8), (8, 30)):
        y, state = wkv4(w2, u2, k2[:, a:b], v2[:, a:b], state, backend=backend)
        ys.append(y)
    y2 = torch.cat(ys, 1)
    torch.testing.assert_close(y2, y1, rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(state, s1, rtol=1e-12, atol=1e-12)
    g = torch.randn(y1.shape, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    (y1 * g).sum().backward()
    (y2 * g).sum().backward()
    for a, b in zip(ins1, ins2, strict=True):
        torch.testing.assert_close(b.grad, a.grad, rtol=1e-10, atol=1e-12)


def test_state_matches_rwkv_package_update():
    """Our state is the rwkv package's (att_aa, att_bb, att_pp): same exact update."""
    w, u, k, v, _ = rand_inputs(1, 5, 4, torch.float32, seed=6)
    aa, bb, pp = torch.zeros(4), torch.zeros(4), torch.zeros(4) - 1e30  # rwkv's init
    for t in range(5):  # the rwkv package's att_one update, written out
        kk, vv = k[0, t], v[0, t]
        ww = w + pp
        p = torch.maximum(ww, kk)
        e1, e2 = torch.exp(ww - p), torch.exp(kk - p)
        aa, bb, pp = e1 * aa + e2 * vv, e1 * bb + e2, p
    for backend in ("torch", "cpu"):
        use(backend)
        _, s = wkv4(w, u, k, v, backend=backend)
        torch.testing.assert_close(s[0], torch.stack([aa, bb, pp]), rtol=1e-6, atol=1e-6)


def test_initial_state_and_empty_sequence():
    s = initial_state(2, 3)
    assert s.dtype == torch.float32 and (s[:, 2] == INIT_PP).all() and (s[:, :2] == 0).all()
    w, u, k, v, _ = rand_inputs(2, 0, 3)
    y, ns = wkv4(w, u, k, v, s)
    assert y.shape == (2, 0, 3)
    torch.testing.assert_close(ns, s)


def test_bad_inputs_name_the_argument():
    w, u, k, v, _ = rand_inputs(2, 4, 3)
    with pytest.raises(SymatoError, match="v shape"):
        wkv4(w, u, k, v[:, :2])
    with pytest.raises(SymatoError, match="w must have shape"):
        wkv4(w[:2], u, k, v)
    with pytest.raises(SymatoError, match="state must have shape"):
        wkv4(w, u, k, v, torch.zeros(2, 3, 4))
    with pytest.raises(SymatoError, match="backend must be one of"):
        wkv4(w, u, k, v, backend="tpu")
    with pytest.raises(SymatoError, match="needs CUDA tensors"):
        wkv4(w, u, k, v, backend="cuda")


def test_auto_resolves_and_reports():
    """auto = the device's compiled kernel; a dtype it does not take (float16, float64 on
    CUDA) is an error naming the dtype and the fix, never a quiet switch to the slow loop."""
    require_kernel("cpu")
    assert available_backends()[:2] == ["torch", "cpu"]
    assert resolve_backend("auto", torch.device("cpu"), torch.float32) == "cpu"
    assert resolve_backend("auto", torch.device("cpu"), torch.float64) == "cpu"
    for device, dtype in (("cpu", torch.float16), ("cuda", torch.float64)):
        with pytest.raises(SymatoError, match=rf"backend auto .* not {dtype}; cast the inputs "
                                              r"to float32 or bfloat16.*backend='torch'"):
            resolve_backend("auto", torch.device(device), dtype)
    assert resolve_backend("torch", torch.device("cpu"), torch.float16) == "torch"
    w, u, k, v, _ = rand_inputs(1, 3, 2)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # a working build must not warn
        wkv4(w, u, k, v)
    assert last_backend_used() == "cpu"
    with pytest.raises(SymatoError, match="no compiled kernel for meta"):
        wkv4(*(x.to("meta") for x in (w, u, k, v)))
    with pytest.raises(SymatoError, match="backend 'cpu' takes float32, bfloat16, float64"):
        wkv4(w, u, k.half(), v.half(), backend="cpu")


def test_failed_build_is_an_error_not_a_fallback(monkeypatch, tmp_path):
    """A broken kernel source: 'auto' and 'cpu' raise an error with the compiler's error
    and the fix; the slow loop never runs unasked (it used to, after one warning)."""
    if toolchain_missing("cpu") is not None:
        pytest.skip(f"no toolchain to fail with: {toolchain_missing('cpu')}")
    bad = tmp_path / "kernels"
    bad.mkdir()
    (bad / "wkv4_cpu.cpp").write_text("this is not C++\n")
    monkeypatch.setenv("SYMATO_KERNELS_DIR", str(bad))
    monkeypatch.setenv("SYMATO_BUILD_DIR", str(tmp_path / "build"))
    monkeypatch.setattr(extension, "_extensions", {})
    monkeypatch.setattr(extension, "_build_errors", {})
    w, u, k, v, _ = rand_inputs(1, 3, 2)
    for backend in ("auto", "cpu", "auto"):  # the third: the cached failure, same message
        with pytest.raises(KernelBuildError) as info:
            wkv4(w, u, k, v, backend=backend)
        msg = str(info.value)
        assert "wkv4: the cpu kernel could not be built" in msg and "error" in msg, msg
        assert f"sources in {bad} do not compile" in msg and "backend='torch'" in msg, msg
    assert isinstance(info.value, SymatoError)  # the CLI prints it as one clean error
    assert available_backends()[:1] == ["torch"] and "cpu" not in available_backends()
    wkv4(w, u, k, v, backend="torch")
    assert last_backend_used() == "torch"


def test_init_pp_is_defined_once_in_python():
    """The empty state's pp is INIT_PP here; the CUDA source takes it as -DWKV4_INIT_PP and
    refuses to compile without it (the value used to be written three times)."""
    (define,) = compile_defines()
    assert define == f"-DWKV4_INIT_PP={INIT_PP!r}f" and float(define.split("=")[1][:-1]) == INIT_PP
    source = (KERNELS / "wkv4_cuda.cu").read_text()
    assert "1e38" not in source and "constexpr float INIT_PP = WKV4_INIT_PP;" in source
    if toolchain_missing("cpu") is not None:
        pytest.skip(toolchain_missing("cpu"))
    cmd = [compiler(), "-E", "-x", "c++", "-DWKV_HOST_EMULATION", str(KERNELS / "wkv4_cuda.cu"),
           "-o", "/dev/null"]
    bare = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    assert bare.returncode != 0 and "WKV4_INIT_PP is not defined" in bare.stderr
    ok = subprocess.run([*cmd, define], capture_output=True, text=True, timeout=120)
    assert ok.returncode == 0, ok.stderr


@pytest.mark.skipif(shutil.which("nvcc") is None, reason="no nvcc on this machine")
def test_cuda_source_compiles_for_sm90_with_the_python_define(tmp_path):
    """nvcc builds the kernels for sm_90 (Hopper) without a GPU, with INIT_PP from Python."""
    cmd = ["nvcc", "-arch=sm_90", "-O3", "-Xptxas", "-v", "-c", str(KERNELS / "wkv4_cuda.cu"),
           "-o", str(tmp_path / "wkv.o"), *compile_defines()]
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
    assert out.returncode == 0, out.stderr[-3000:]
    assert out.stderr.count("Compiling entry function") == 4  # {fwd, bwd} x {f32, bf16}


# ----------------------------------------------------------------------------- the op


def test_custom_op_registration_passes_opcheck():
    """The fake (shape) and autograd registrations agree with the real kernel, which is
    what torch.compile and torch.export rely on."""
    require_kernel("cpu")
    w, u, k, v, s = rand_inputs(2, 9, 5, with_state=True)
    args = (w, u, k.requires_grad_(), v.requires_grad_(), s, "cpu", True)
    torch.library.opcheck(wkv_ops._wkv4_forward, args)


def test_torch_compile_traces_the_op_without_a_graph_break():
    """fullgraph=True fails on any graph break: resolving the backend and calling the
    compiled kernel must both stay in one graph, forward and backward."""
    require_kernel("cpu")
    w, u, k, v, s = rand_inputs(2, 11, 6, with_state=True)

    def f(w, u, k, v, s):
        y, ns = wkv4(w, u, k, v, state=s)
        return (y * y).sum() + ns[:, :2].sum()

    eager = [x.clone().requires_grad_(True) for x in (w, u, k, v, s)]
    f(*eager).backward()
    traced = [x.clone().requires_grad_(True) for x in (w, u, k, v, s)]
    torch._dynamo.reset()
    torch.compile(f, fullgraph=True, backend="aot_eager")(*traced).backward()
    assert last_backend_used() == "cpu"
    for a, b in zip(traced, eager, strict=True):
        assert torch.equal(a.grad, b.grad)


# ----------------------------------------------------------------------------- CUDA


@needs_cuda
@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
@pytest.mark.parametrize("shape", [(2, 37, 40), (1, 300, 64), (2, 1000, 33)])
def test_cuda_forward_backward_match_reference(dtype, shape):
    require_kernel("cuda")
    B, T, C = shape
    w, u, k, v, s = rand_inputs(B, T, C, torch.float64, with_state=True, seed=7)
    g = torch.Generator().manual_seed(8)
    gy = torch.randn(B, T, C, generator=g, dtype=torch.float64)
    gs = torch.randn(B, 3, C, generator=g, dtype=torch.float64)
    ins = [x.clone().requires_grad_(True) for x in (w, u, k, v, s)]
    y_ref, s_ref = wkv4(*ins, backend="torch")
    torch.autograd.backward([y_ref, s_ref], [gy, gs])
    dev = [x.detach().cuda() for x in (w, u, k, v, s)]
    dev = [
        dev[0].float(),
        dev[1].float(),
        dev[2].to(dtype),
        dev[3].to(dtype),
        dev[4].float(),
    ]
    dev = [x.requires_grad_(True) for x in dev]
    y, ns = wkv4(*dev, backend="cuda")
    torch.autograd.backward([y, ns], [gy.cuda().to(dtype), gs.cuda().float()])
    tol = 1e-5 if dtype == torch.float32 else 1e-2
    assert rel_err(y.cpu(), y_ref) <= tol
    # the state's representation may differ by rounding; the represented values may not
    ns = ns.detach().cpu().double()
    assert rel_err(ns[:, :2] * ns[:, 2:].exp(), s_ref[:, :2] * s_ref[:, 2:].exp()) <= tol
    for name, a, b in zip(["w", "u", "k", "v", "state"], dev, ins, strict=True):
        assert rel_err(a.grad.cpu(), b.grad) <= tol, name


@needs_cuda
def test_cuda_long_sequence_and_large_k():
    require_kernel("cuda")
    w, u, k, v, _ = rand_inputs(1, 16384, 64, torch.float32, kscale=80.0, seed=9)
    dev = [x.cuda().requires_grad_(True) for x in (w, u, k, v)]
    y, _s = wkv4(*dev, backend="cuda")
    y.sum().backward()
    assert torch.isfinite(y).all() and all(torch.isfinite(x.grad).all() for x in dev)
    require_kernel("cpu")
    y_cpu, _ = wkv4(w, u, k, v, backend="cpu")
    assert rel_err(y.cpu(), y_cpu) <= 1e-5


# ------------------------------------------------- the CUDA kernel's algorithm, on CPU
# No GPU is lent to every session, so the chunked scan that kernels/wkv4_cuda.cu runs is
# emulated here step for step (segments of SEG steps, local summaries, combine, the reverse
# scan with multiplier m and the max-path flag), in float64, and checked against autograd
# through the reference. A mistake in the algorithm (not in CUDA details) fails here.

SEG = 8


def _update(s, w, k, v):
    aa, bb, pp = s
    x = w + pp
    q = torch.maximum(x, k)
    e1, e2 = torch.exp(x - q), torch.exp(k - q)
    return (e1 * aa + e2 * v, e1 * bb + e2, q), (x >= k)


def _combine(s, loc, nw):
    x = s[2] + nw
    q = torch.maximum(x, loc[2])
    e1, e2 = torch.exp(x - q), torch.exp(loc[2] - q)
    return (e1 * s[0] + e2 * loc[0], e1 * s[1] + e2 * loc[1], q)


def _step_vals(s, w, u, k, v):
    aa, bb, pp = s
    x = u + k
    q = torch.maximum(pp, x)
    e1, e2 = torch.exp(pp - q), torch.exp(x - q)
    d = e1 * bb + e2
    y = (e1 * aa + e2 * v) / d
    xs = w + pp
    qs = torch.maximum(xs, k)
    return y, e1 / d, e2 / d, torch.exp(xs - qs), torch.exp(k - qs), xs >= k


def chunked_forward(w, u, k, v, s0):
    """Forward as the CUDA kernel does it: summaries, an ordered combine, replay."""
    B, T, C = k.shape
    segs = [(a, min(a + SEG, T)) for a in range(0, T, SEG)]
    empty = (torch.zeros(B, C, dtype=k.dtype), torch.zeros(B, C, dtype=k.dtype),
             torch.full((B, C), INIT_PP, dtype=k.dtype))
    summaries = []
    for a, b in segs:  # step 1 (parallel on the GPU)
        s = empty
        for t in range(a, b):
            s, _ = _update(s, w, k[:, t], v[:, t])
        summaries.append(s)
    carry, ckpts = tuple(s0.unbind(1)), []
    for (a, b), loc in zip(segs, summaries, strict=True):  # step 2 (one warp per tile)
        ckpts.append(carry)
        carry = _combine(carry, loc, (b - a) * w)
    ys = []
    for (a, b), s in zip(segs, ckpts, strict=True):  # step 3 (parallel)
        for t in range(a, b):
            ys.append(_step_vals(s, w, u, k[:, t], v[:, t])[0])
            s, _ = _update(s, w, k[:, t], v[:, t])
    return torch.stack(ys, 1), torch.stack(carry, 1), ckpts


def chunked_backward(w, u, k, v, s0, s_out, ckpts, gy, gs):
    """Backward as the CUDA kernel does it: per-segment reverse folds, a reverse scan."""
    B, T, C = k.shape
    segs = [(a, min(a + SEG, T)) for a in range(0, T, SEG)]
    states = []  # per segment: states before each step, from its checkpoint
    for (a, b), s in zip(segs, ckpts, strict=True):
        row = []
        for t in range(a, b):
            row.append(s)
            s, _ = _update(s, w, k[:, t], v[:, t])
        states.append(row)
    local = []
    for (a, b), row in zip(segs, states, strict=True):  # fold, zero incoming gradient
        la, lb, m = 0 * w, 0 * w, 1 + 0 * w
        anyk = torch.zeros(B, C, dtype=torch.bool)
        for t in reversed(range(a, b)):
            y, r1, _, e1, _, dw = _step_vals(row[t - a], w, u, k[:, t], v[:, t])
            la, lb, m = gy[:, t] * r1 + e1 * la, -gy[:, t] * r1 * y + e1 * lb, m * e1
            anyk = anyk | ~dw
        local.append((la, lb, m, anyk))
    ga, gb = gs[:, 0], gs[:, 1]
    G = gs[:, 2] - ga * s_out[:, 0] - gb * s_out[:, 1]
    alive = torch.ones(B, C, dtype=torch.bool)
    incoming = [None] * len(segs)
    for j in reversed(range(len(segs))):  # reverse scan
        incoming[j] = (ga, gb, alive)
        la, lb, m, anyk = local[j]
        ga, gb, alive = m * ga + la, m * gb + lb, alive & ~anyk
    gk, gv = torch.zeros_like(k), torch.zeros_like(v)
    gw, gu = torch.zeros_like(k[:, 0]), torch.zeros_like(k[:, 0])
    for j, ((a, b), row) in enumerate(zip(segs, states, strict=True)):  # replay back
        a_, b_, al = incoming[j]
        for t in reversed(range(a, b)):
            st = row[t - a]
            y, r1, r2, e1, e2, dw = _step_vals(st, w, u, k[:, t], v[:, t])
            direct = gy[:, t] * r2 * (v[:, t] - y)
            gk[:, t] = direct + e2 * (v[:, t] * a_ + b_) + torch.where(al & ~dw, G, 0 * G)
            gv[:, t] = gy[:, t] * r2 + e2 * a_
            gu = gu + direct
            gw = gw + e1 * (a_ * st[0] + b_ * st[1]) + torch.where(al & dw, G, 0 * G)
            al = al & dw
            a_, b_ = gy[:, t] * r1 + e1 * a_, -gy[:, t] * r1 * y + e1 * b_
    gpp = ga * s0[:, 0] + gb * s0[:, 1] + torch.where(alive, G, 0 * G)
    return gw.sum(0), gu.sum(0), gk, gv, torch.stack([ga, gb, gpp], 1)


@pytest.mark.parametrize("T", [1, 8, 21, 40])
def test_cuda_algorithm_emulated_matches_autograd(T):
    w, u, k, v, s = rand_inputs(2, T, 5, torch.float64, with_state=True, seed=10 + T)
    g = torch.Generator().manual_seed(11)
    gy = torch.randn(k.shape, generator=g, dtype=torch.float64)
    gs = torch.randn(s.shape, generator=g, dtype=torch.float64)
    ins = [x.clone().requires_grad_(True) for x in (w, u, k, v, s)]
    y_ref, s_ref = wkv4(*ins, backend="torch")
    torch.autograd.backward([y_ref, s_ref], [gy, gs])
    y, s_out, ckpts = chunked_forward(w, u, k, v, s)
    torch.testing.assert_close(y, y_ref, rtol=1e-10, atol=1e-12)
    torch.testing.assert_close(s_out, s_ref, rtol=1e-10, atol=1e-12)
    grads = chunked_backward(w, u, k, v, s, s_out, ckpts, gy, gs)
    for name, a, ref in zip(["w", "u", "k", "v", "state"], grads, ins, strict=True):
        torch.testing.assert_close(a, ref.grad, rtol=1e-9, atol=1e-10, msg=name)


# ------------------------------------------- the CUDA kernel source itself, on the CPU
# kernels/wkv4_cuda.cu compiled with plain g++ against kernels/wkv_host_emulation.h: one OS
# thread per CUDA thread, a real barrier for __syncthreads. This runs the exact indexing,
# tiling, shared-memory scans and bfloat16 I/O of the GPU kernels (not float rounding of the
# GPU's expf, and not the GPU's memory model: benchmarks/gpu/run.sh covers those).


@pytest.fixture(scope="module")
def cuda_emulated():
    return require_kernel("cuda-emulated")  # a failed build fails the tests using it


@pytest.mark.slow  # builds a second extension (about a minute on 2 cores), once
@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
@pytest.mark.parametrize("shape", [(2, 37, 40), (1, 300, 33), (2, 1, 5)])
def test_cuda_kernel_source_emulated_on_cpu(cuda_emulated, dtype, shape):
    B, T, C = shape
    w, u, k, v, s = rand_inputs(B, T, C, torch.float64, with_state=True, seed=12)
    g = torch.Generator().manual_seed(13)
    gy = torch.randn(B, T, C, generator=g, dtype=torch.float64)
    gs = torch.randn(B, 3, C, generator=g, dtype=torch.float64)
    # the reference sees exactly the rounded inputs the kernel sees
    k, v, gy = (x.to(dtype).double() for x in (k, v, gy))
    w, u = w.float().double(), u.float().double()
    ins = [x.clone().requires_grad_(True) for x in (w, u, k, v, s)]
    y_ref, s_ref = wkv4(*ins, backend="torch")
    torch.autograd.backward([y_ref, s_ref], [gy, gs])

    f32 = [w.float(), u.float(), k.to(dtype), v.to(dtype), s.float()]
    y, ns, ckpt = cuda_emulated.forward(*f32, True)
    assert ckpt.shape == (B, (T + 7) // 8, 3, C)
    gw, gu, gk, gv, gsi = cuda_emulated.backward(*f32, ns, ckpt, gy.to(dtype), gs.float())
    tol = 1e-5 if dtype == torch.float32 else 1e-2
    assert y.dtype == gk.dtype == gv.dtype == dtype
    assert rel_err(y, y_ref) <= tol
    ns = ns.double()
    assert rel_err(ns[:, :2] * ns[:, 2:].exp(), s_ref[:, :2] * s_ref[:, 2:].exp()) <= 1e-5
    got = [gw.sum(0), gu.sum(0), gk, gv, gsi]
    for name, a, ref in zip(["w", "u", "k", "v", "state"], got, ins, strict=True):
        assert rel_err(a, ref.grad) <= tol, name


@pytest.mark.slow  # shares the emulated build with the test above
@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_cuda_path_of_the_op_emulated_on_cpu(cuda_emulated, dtype):
    """The Python side of the CUDA backend (saving checkpoints, their fake shape, the
    backward's argument order, casts back to the callers' dtypes) run end to end through
    the custom op and autograd, with the CUDA kernels' source emulated on the CPU."""
    B, T, C = 2, 29, 7
    w, u, k, v, s = rand_inputs(B, T, C, torch.float64, with_state=True, seed=21)
    k, v = k.to(dtype).double(), v.to(dtype).double()
    w, u = w.float().double(), u.float().double()
    ref = [x.clone().requires_grad_(True) for x in (w, u, k, v, s)]
    y_ref, s_ref = wkv4(*ref, backend="torch")
    (y_ref.square().sum() + s_ref[:, :2].sum()).backward()

    ins = [x.float() for x in (w, u)] + [x.to(dtype) for x in (k, v)] + [s.float()]
    ins = [x.clone().requires_grad_(True) for x in ins]
    y, ns = wkv_ops._wkv4_compiled(*ins, "cuda-emulated")
    (y.float().square().sum() + ns[:, :2].sum()).backward()
    tol = 1e-5 if dtype == torch.float32 else 2e-2
    assert y.dtype == dtype and ns.dtype == torch.float32
    assert rel_err(y, y_ref) <= tol
    for name, a, b in zip(["w", "u", "k", "v", "state"], ins, ref, strict=True):
        assert a.grad.dtype == a.dtype, name
        assert rel_err(a.grad, b.grad) <= tol, name
    with torch.no_grad():  # no gradient wanted: no checkpoints kept
        _, _, ckpt = wkv_ops._wkv4_forward(*[x.detach() for x in ins], "cuda-emulated", False)
    assert ckpt.numel() == 0
