"""The RWKV-4 WKV operator: one function, three interchangeable backends.

``wkv(w, u, k, v, state=None, backend="auto") -> (y, new_state)`` computes, for each
batch row and channel, the decayed weighted average of the values seen so far
(docs/wkv.md has the math). Why three backends:

- ``torch``: a readable pure-PyTorch loop over time. It is the reference the others are
  tested against, and the fallback when a compiled backend cannot be built.
- ``cpu``: C++ with OpenMP (``kernels/wkv_cpu.cpp``), so CPU training of small models
  is practical.
- ``cuda``: a chunked parallel scan over time (``kernels/wkv_cuda.cu``), so training is
  limited by memory bandwidth rather than by one thread walking all of T.

The state is ``(B, 3, C)``: numerator ``aa``, denominator ``bb`` and max exponent ``pp``,
the RNN-state convention of the RWKV-4 runtime (ChatRWKV's ``att_aa/att_bb/att_pp``), so
a state from this operator can be fed to the ``rwkv`` package and back. It is float32
(float64 when k/v are float64, which gradcheck needs).

Compiled backends are built on first use with ``torch.utils.cpp_extension.load``
(ninja) into ``$SYMATO_BUILD_DIR/<family>/<kind>-<hash>`` (default
``~/.cache/symato/...``; family ``wkv`` here, ``wkv7`` for the RWKV-7 operator in
``symato.models.ops.wkv7``, which shares this loader through ``load_extension(kind, family=...)``);
the hash covers the kernel sources, compile flags, torch version and CPU, so an edit to
a kernel rebuilds it and different machines sharing a home folder never share a binary.
Kernel sources are looked up in ``$SYMATO_KERNELS_DIR``, then the repository's
``kernels/`` (editable installs), then ``symato/kernels/`` (package data).

The compiled kernels are the custom operators ``symato::wkv_forward`` and
``symato::wkv_backward``, so ``torch.compile`` traces an RWKV model as one graph.
"""

from __future__ import annotations

import hashlib
import os
import platform
import shutil
import threading
import warnings
from collections.abc import Callable
from pathlib import Path
from types import ModuleType

import torch

from symato.errors import SymatoError

__all__ = [
    "BACKENDS",
    "FAMILIES",
    "INIT_PP",
    "available_backends",
    "explain_build_failure",
    "initial_state",
    "last_backend_used",
    "load_extension",
    "resolve_backend",
    "wkv",
    "wkv_torch",
]

BACKENDS = ("auto", "cuda", "cpu", "torch")
# The max exponent of an empty state. Finite (not -inf) so that "pp - max(pp, x)" stays
# finite; exp(-1e38 - x) underflows to exactly 0 for any realistic x. The rwkv package
# uses -1e30, which is equivalent.
INIT_PP = -1e38

_CPU_FLAGS = ["-O3", "-fopenmp", "-march=native"]  # C++ standard: torch picks it
_CPU_LDFLAGS = ["-fopenmp"]
_CUDA_FLAGS = ["-O3", "-lineinfo"]  # no fast-math: accurate expf and division

_lock = threading.Lock()
_extensions: dict[str, ModuleType | None] = {}
_build_errors: dict[str, str] = {}
_warned: set[str] = set()
_last_used: list[str] = ["none"]


# ----------------------------------------------------------------------------- helpers


def initial_state(batch: int, channels: int, device=None, dtype=torch.float32) -> torch.Tensor:
    """The empty RNN state: aa = bb = 0, pp = INIT_PP (no token seen yet)."""
    s = torch.zeros(batch, 3, channels, device=device, dtype=dtype)
    s[:, 2].fill_(INIT_PP)
    return s


def _state_dtype(k: torch.Tensor) -> torch.dtype:
    return torch.float64 if k.dtype == torch.float64 else torch.float32


def _check_inputs(w, u, k, v, state) -> None:
    """Shape/dtype/device validation with messages that name the offending argument."""
    if k.dim() != 3:
        raise SymatoError(f"wkv: k must be (B, T, C), got shape {tuple(k.shape)}")
    if v.shape != k.shape:
        raise SymatoError(f"wkv: v shape {tuple(v.shape)} != k shape {tuple(k.shape)}")
    if v.dtype != k.dtype:
        raise SymatoError(f"wkv: v dtype {v.dtype} != k dtype {k.dtype}")
    if k.dtype not in (torch.float32, torch.float64, torch.bfloat16, torch.float16):
        raise SymatoError(f"wkv: unsupported k/v dtype {k.dtype}")
    B, _, C = k.shape
    for name, p in (("w", w), ("u", u)):
        if p.shape != (C,):
            raise SymatoError(f"wkv: {name} must have shape ({C},), got {tuple(p.shape)}")
    if state is not None and state.shape != (B, 3, C):
        raise SymatoError(f"wkv: state must have shape ({B}, 3, {C}), got {tuple(state.shape)}")
    for name, t in (("w", w), ("u", u), ("v", v), ("state", state)):
        if t is not None and t.device != k.device:
            raise SymatoError(f"wkv: {name} is on {t.device} but k is on {k.device}")


# ----------------------------------------------------------------------------- torch


def wkv_torch(w, u, k, v, state=None):
    """Pure-PyTorch reference: the exact max-tracking update of the RWKV-4 runtime.

    Autograd differentiates through the loop, so this backend needs no hand-written
    backward; it is slow (O(T) small kernel launches) and meant as the ground truth.
    """
    B, T, C = k.shape
    cdt = _state_dtype(k)
    if state is None:
        state = initial_state(B, C, k.device, cdt)
    w, u = w.to(cdt), u.to(cdt)
    aa, bb, pp = state.to(cdt).unbind(1)
    kf, vf = k.to(cdt), v.to(cdt)
    ys = []
    for t in range(T):
        kk, vv = kf[:, t], vf[:, t]
        ww = u + kk
        q = torch.maximum(pp, ww)
        e1, e2 = torch.exp(pp - q), torch.exp(ww - q)
        ys.append((e1 * aa + e2 * vv) / (e1 * bb + e2))
        ww = w + pp
        q = torch.maximum(ww, kk)
        e1, e2 = torch.exp(ww - q), torch.exp(kk - q)
        aa, bb, pp = e1 * aa + e2 * vv, e1 * bb + e2, q
    y = torch.stack(ys, 1) if ys else kf.new_zeros(B, 0, C)
    return y.to(k.dtype), torch.stack([aa, bb, pp], 1)


# ----------------------------------------------------------------------------- building


# Kernel families: each compiled kind of each operator, as (sources compiled, other files
# the build reads). One table, so both operators share one loader, one source lookup and
# one hashed build-folder scheme: $SYMATO_BUILD_DIR/<family>/<kind>-<hash>.
FAMILIES: dict[str, dict[str, tuple[tuple[str, ...], tuple[str, ...]]]] = {
    "wkv": {
        "cpu": (("wkv_cpu.cpp",), ()),
        "cuda": (("wkv_cuda_bind.cpp", "wkv_cuda.cu"), ()),
        # the CUDA kernels compiled for the CPU (tests)
        "cuda-emulated": (("wkv_cuda_emulate.cpp",), ("wkv_cuda.cu", "wkv_host_emulation.h")),
    },
    "wkv7": {
        "cpu": (("wkv7_cpu.cpp",), ()),
        "cuda": (("wkv7_cuda_bind.cpp", "wkv7_cuda.cu"), ()),
        "cuda-emulated": (("wkv7_cuda_emulate.cpp",), ("wkv7_cuda.cu", "wkv_host_emulation.h")),
    },
}


def _kernels_dir(family: str = "wkv") -> Path:
    """Where the kernel sources live: ``$SYMATO_KERNELS_DIR``, else the package data
    ``symato.kernels`` (the repository's ``kernels/`` folder, mapped by pyproject.toml,
    in a checkout and in an installed wheel alike)."""
    from importlib import resources

    env = os.environ.get("SYMATO_KERNELS_DIR")
    candidates = [Path(env)] if env else []
    candidates.append(Path(str(resources.files("symato.kernels"))))
    marker = FAMILIES[family]["cpu"][0][0]
    for cand in candidates:
        if (cand / marker).is_file():
            return cand
    raise SymatoError(
        f"{family}: kernel sources not found; looked in "
        + ", ".join(str(c) for c in candidates)
        + " (a symato install without its kernels: reinstall it with `pip install .`)"
    )


def _cpu_fingerprint() -> str:
    """CPU model + flags: -march=native binaries must not travel between machines."""
    try:
        text = Path("/proc/cpuinfo").read_text()
        keep = [ln for ln in text.splitlines() if ln.startswith(("model name", "flags"))][:2]
        return "\n".join(keep)
    except OSError:
        return platform.processor()


def _sources(kind: str, family: str = "wkv") -> list[Path]:
    d = _kernels_dir(family)
    return [d / name for name in FAMILIES[family][kind][0]]


def _hashed_files(kind: str, family: str = "wkv") -> list[Path]:
    """Every file the build reads (sources and included kernel files)."""
    d = _kernels_dir(family)
    return [*_sources(kind, family), *(d / name for name in FAMILIES[family][kind][1])]


def _build_dir(kind: str, flags: list[str], family: str = "wkv") -> tuple[Path, str]:
    srcs = _hashed_files(kind, family)
    h = hashlib.sha256()
    for s in srcs:
        h.update(s.name.encode())
        h.update(s.read_bytes())
    h.update(" ".join(flags).encode())
    h.update(torch.__version__.encode())
    h.update(str(torch.version.cuda).encode())
    h.update(_cpu_fingerprint().encode())
    digest = h.hexdigest()[:16]
    root = os.environ.get("SYMATO_BUILD_DIR")
    base = Path(root) if root else Path.home() / ".cache" / "symato"
    return base / family / f"{kind}-{digest}", digest


def load_extension(
    kind: str,
    verbose: bool = False,
    family: str = "wkv",
    check: Callable[[str, ModuleType], None] | None = None,
) -> ModuleType:
    """Build (or load from the cache) the ``cpu`` or ``cuda`` extension of ``family``
    (``wkv``: RWKV-4, ``wkv7``: RWKV-7); raise RuntimeError on failure.

    ``cuda-emulated`` builds the CUDA kernels' source for the CPU (one OS thread per CUDA
    thread; kernels/wkv_host_emulation.h) so tests can run them where there is no GPU.
    ``check(kind, module)`` runs once after a build (e.g. the checkpoint interval the
    Python side assumes); its failure counts as a failed build.

    One build per process: later calls return the cached module (or re-raise the
    cached failure) so a test suite pays for the compile once.
    """
    if family not in FAMILIES:
        raise SymatoError(f"wkv: no kernel family named {family!r}")
    if kind not in FAMILIES[family]:
        raise SymatoError(f"{family}: no compiled backend named {kind!r}")
    if family == "wkv" and check is None:
        check = _check_checkpoint_interval
    key = kind if family == "wkv" else f"{family}:{kind}"
    with _lock:
        if key in _extensions:
            mod = _extensions[key]
            if mod is None:
                raise RuntimeError(_build_errors[key])
            return mod
        try:
            mod = _build(kind, verbose, family)
            if check is not None:
                check(kind, mod)
        except Exception as exc:  # compiler missing, nvcc error, ...
            _extensions[key] = None
            _build_errors[key] = f"{family}: building the {kind} extension failed: {exc}"
            raise RuntimeError(_build_errors[key]) from exc
        _extensions[key] = mod
        return mod


def _check_checkpoint_interval(kind: str, mod: ModuleType) -> None:
    """The op's fake implementation predicts the checkpoint shape; it must match."""
    if _has_checkpoints(kind) and mod.checkpoint_interval() != _CKPT_INTERVAL:
        raise SymatoError(
            f"wkv: the {kind} kernels keep a state every {mod.checkpoint_interval()} steps, "
            f"symato/wkv.py expects {_CKPT_INTERVAL}: update _CKPT_INTERVAL"
        )


def _build(kind: str, verbose: bool, family: str = "wkv") -> ModuleType:
    from torch.utils.cpp_extension import load

    sources = [str(s) for s in _sources(kind, family)]
    if kind in ("cpu", "cuda-emulated"):
        flags = list(_CPU_FLAGS) if kind == "cpu" else ["-O1"]
        build_dir, digest = _build_dir(kind, flags, family)
        build_dir.mkdir(parents=True, exist_ok=True)
        return load(
            name=f"symato_{family}_{kind.replace('-', '_')}_{digest}",
            sources=sources,
            extra_cflags=flags,
            extra_ldflags=_CPU_LDFLAGS,
            build_directory=str(build_dir),
            verbose=verbose,
        )
    arch = os.environ.get("SYMATO_CUDA_ARCH")  # e.g. "9.0"; default: the visible GPU
    if arch:
        os.environ["TORCH_CUDA_ARCH_LIST"] = arch
    flags = list(_CUDA_FLAGS)
    target = os.environ.get("TORCH_CUDA_ARCH_LIST", "")
    if not target and torch.cuda.is_available():  # torch builds for the visible GPU then
        target = "gpu{}.{}".format(*torch.cuda.get_device_capability())
    build_dir, digest = _build_dir(kind, [*flags, target], family)
    build_dir.mkdir(parents=True, exist_ok=True)
    return load(
        name=f"symato_{family}_cuda_{digest}",
        sources=sources,
        extra_cflags=["-O3"],
        extra_cuda_cflags=flags,
        build_directory=str(build_dir),
        verbose=verbose,
    )


def explain_build_failure(family: str, kind: str, exc: BaseException) -> str:
    """A build failure as cause + fix, for an error message a user can act on.

    Why: torch's build error is a wall of compiler output; what a user needs is its first
    error lines and the one thing to change (a compiler, CUDA_HOME, a torch/nvcc version
    match), or the name of the slow backend to ask for instead.
    """
    text = str(exc)
    lines = [ln.strip() for ln in text.splitlines() if ln.strip()]
    errs = [ln for ln in lines if "error" in ln.lower() and "Error building" not in ln]
    head = "\n    ".join((errs or lines)[:6])[:1500]
    if kind == "cuda":
        from torch.utils.cpp_extension import CUDA_HOME

        facts = f"torch {torch.__version__} (CUDA {torch.version.cuda}), CUDA_HOME={CUDA_HOME}"
        if torch.version.cuda is None:
            fix = "this torch has no CUDA: install a CUDA build of torch"
        elif CUDA_HOME is None:
            fix = "nvcc not found: install the CUDA toolkit, set CUDA_HOME (/usr/local/cuda)"
        else:
            fix = (
                f"check that nvcc under CUDA_HOME matches torch's CUDA {torch.version.cuda} "
                "and supports this GPU (SYMATO_CUDA_ARCH / TORCH_CUDA_ARCH_LIST)"
            )
    else:
        from torch.utils.cpp_extension import is_ninja_available

        compiler = os.environ.get("CXX", "c++")
        facts = f"torch {torch.__version__}, compiler {shutil.which(compiler) or compiler}"
        if "kernel sources not found" in text:
            fix = "point $SYMATO_KERNELS_DIR at the repository's kernels/ folder"
        elif shutil.which(compiler) is None:
            fix = f"no {compiler}: install a C++ compiler with OpenMP (apt-get install g++)"
        elif not is_ninja_available():
            fix = "ninja not found: pip install ninja"
        else:
            fix = (
                f"the sources in {_kernels_dir(family)} do not compile with {compiler}: "
                "check $SYMATO_KERNELS_DIR and the compiler (g++ >= 9 with OpenMP)"
            )
    return (
        f"{family}: the {kind} kernel could not be built ({facts}).\n"
        f"  cause: {head}\n"
        f"  fix: {fix}; or ask for the slow pure-PyTorch loop by name: backend='torch'"
    )


def _warn_once(key: str, message: str) -> None:
    if key not in _warned:
        _warned.add(key)
        warnings.warn(message, RuntimeWarning, stacklevel=3)


def resolve_backend(backend: str, device: torch.device, dtype: torch.dtype) -> str:
    """The backend that will actually run for ``backend`` on tensors of this device/dtype.

    ``auto`` picks ``cuda`` for CUDA tensors and ``cpu`` for CPU tensors, and falls back
    to ``torch`` with ONE warning per process when the extension cannot be built.
    An explicit ``cpu``/``cuda`` that cannot run is an error, not a silent fallback.
    """
    if backend not in BACKENDS:
        raise SymatoError(f"wkv: backend must be one of {BACKENDS}, got {backend!r}")
    if backend == "torch":
        return "torch"
    want = backend
    if backend == "auto":
        want = "cuda" if device.type == "cuda" else "cpu"
        if device.type not in ("cuda", "cpu"):
            return "torch"
        if dtype == torch.float16 or (want == "cuda" and dtype == torch.float64):
            return "torch"  # kernels: float32/bfloat16 (+ float64 on CPU) only
    if want == "cuda" and device.type != "cuda":
        raise SymatoError(f"wkv: backend 'cuda' needs CUDA tensors, got {device}")
    if want == "cpu" and device.type != "cpu":
        raise SymatoError(f"wkv: backend 'cpu' needs CPU tensors, got {device}")
    try:
        load_extension(want)
    except RuntimeError as exc:
        if backend != "auto":
            raise
        _warn_once(want, f"{exc}\nwkv: falling back to the slow pure-PyTorch backend.")
        return "torch"
    return want


@torch.compiler.assume_constant_result
def _resolve_traced(backend: str, device: torch.device, dtype: torch.dtype) -> str:
    """``resolve_backend`` for code torch.compile traces: run once while tracing (it may
    build an extension, under a lock) and kept in the graph as a constant, so resolving
    is no graph break. The compiled graph is guarded on device and dtype."""
    return resolve_backend(backend, device, dtype)


def available_backends() -> list[str]:
    """Backends usable in this process (builds the extensions if needed)."""
    out = ["torch"]
    for kind in ("cpu", "cuda"):
        if kind == "cuda" and not torch.cuda.is_available():
            continue
        try:
            load_extension(kind)
            out.append(kind)
        except RuntimeError:
            pass
    return out


def last_backend_used() -> str:
    """Name of the backend the most recent ``wkv`` call ran ("none" before any call)."""
    return _last_used[0]


# ----------------------------------------------------------------------------- the op


# The compiled kernels are registered as two PyTorch custom operators. Why: torch.compile
# then traces a whole RWKV model as one graph (the op is opaque to it, with a "fake"
# implementation that gives output shapes), where an autograd.Function over an extension
# would be a graph break; and autograd, torch.compile and torch.export all see one
# forward/backward pair with a single definition. Kinds with checkpoints ("cuda", and
# "cuda-emulated", the CUDA source compiled for the CPU that tests run) keep the state
# every few steps for the backward; the "cpu" kind recomputes from the start.
_CKPT_INTERVAL = 8  # must equal kernels/wkv_cuda.cu's; checked when the extension loads


def _has_checkpoints(kind: str) -> bool:
    return kind.startswith("cuda")


def _checkpoint_shape(kind: str, save: bool, k: torch.Tensor) -> tuple[int, ...]:
    B, T, C = k.shape
    if not (save and _has_checkpoints(kind)):
        return (0,)
    return (B, (T + _CKPT_INTERVAL - 1) // _CKPT_INTERVAL, 3, C)


@torch.library.custom_op("symato::wkv_forward", mutates_args=())
def _wkv_forward(
    w: torch.Tensor, u: torch.Tensor, k: torch.Tensor, v: torch.Tensor,
    state: torch.Tensor, kind: str, save: bool,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(y, new_state, checkpoints): checkpoints is empty unless ``kind`` keeps them."""
    ext = load_extension(kind)
    if _has_checkpoints(kind):
        return tuple(ext.forward(w, u, k, v, state, save))
    y, s_out = ext.forward(w, u, k, v, state)
    return y, s_out, state.new_empty(0)


@_wkv_forward.register_fake
def _(w, u, k, v, state, kind, save):
    ckpt = state.new_empty(_checkpoint_shape(kind, save, k))
    return torch.empty_like(k), torch.empty_like(state), ckpt


@torch.library.custom_op("symato::wkv_backward", mutates_args=())
def _wkv_backward(
    w: torch.Tensor, u: torch.Tensor, k: torch.Tensor, v: torch.Tensor,
    state: torch.Tensor, s_out: torch.Tensor, ckpt: torch.Tensor,
    gy: torch.Tensor, gs: torch.Tensor, kind: str,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """(gw, gu, gk, gv, gstate); gw and gu per batch row, summed by the caller."""
    ext = load_extension(kind)
    if _has_checkpoints(kind):
        return tuple(ext.backward(w, u, k, v, state, s_out, ckpt, gy, gs))
    return tuple(ext.backward(w, u, k, v, state, s_out, gy, gs))


@_wkv_backward.register_fake
def _(w, u, k, v, state, s_out, ckpt, gy, gs, kind):
    B, _, C = k.shape
    gw, gu = state.new_empty(B, C), state.new_empty(B, C)
    return gw, gu, torch.empty_like(k), torch.empty_like(v), torch.empty_like(state)


def _setup_context(ctx, inputs, output) -> None:
    w, u, k, v, state, kind, _ = inputs
    _, s_out, ckpt = output
    ctx.save_for_backward(w, u, k, v, state, s_out, ckpt)
    ctx.kind = kind
    ctx.mark_non_differentiable(ckpt)


def _backward(ctx, gy, gs, _gckpt):
    """Only the inputs are saved: the kernels recompute the per-step states, which costs
    a little compute but no B*T*C*3 activation memory. Per-row w/u partial sums are
    reduced here in a fixed order, so the gradient is deterministic."""
    w, u, k, v, state, s_out, ckpt = ctx.saved_tensors
    gy = torch.zeros_like(k) if gy is None else gy.to(k.dtype).contiguous()
    gs = torch.zeros_like(s_out) if gs is None else gs.contiguous()
    gw, gu, gk, gv, gstate = _wkv_backward(w, u, k, v, state, s_out, ckpt, gy, gs, ctx.kind)
    return gw.sum(0), gu.sum(0), gk, gv, gstate, None, None


_wkv_forward.register_autograd(_backward, setup_context=_setup_context)


def _wkv_compiled(w, u, k, v, state, kind: str):
    """Run a compiled ``kind`` through the custom op; casts are traced, so autograd
    takes gradients back to the callers' dtypes."""
    cdt = _state_dtype(k)
    save = torch.is_grad_enabled() and any(
        t.requires_grad for t in (w, u, k, v, state)
    )
    y, s_out, _ = _wkv_forward(
        w.to(cdt).contiguous(), u.to(cdt).contiguous(), k.contiguous(), v.contiguous(),
        state.to(cdt).contiguous(), kind, save,
    )
    return y, s_out


# ----------------------------------------------------------------------------- entry


def wkv(w, u, k, v, state=None, backend: str = "auto"):
    """RWKV-4 WKV: ``y[b,t,c]`` = decayed weighted average of ``v`` by ``exp(k)``.

    Args:
        w: (C,) decay, ``-exp(time_decay)`` (must be < 0 for a decaying average).
        u: (C,) bonus of the current token, ``time_first``.
        k, v: (B, T, C), float32, bfloat16 or float64 (float16 runs on ``torch``).
        state: optional (B, 3, C) (aa, bb, pp) from a previous call; None = empty.
        backend: ``auto`` | ``cuda`` | ``cpu`` | ``torch``.

    Returns:
        ``(y, new_state)``: y (B, T, C) in k's dtype, new_state (B, 3, C) float32
        (float64 for float64 inputs). Differentiable in w, u, k, v and state.
    """
    _check_inputs(w, u, k, v, state)
    B, T, C = k.shape
    chosen = _resolve_traced(backend, k.device, k.dtype)
    if state is None:
        state = initial_state(B, C, k.device, _state_dtype(k))
    _last_used[0] = chosen
    if chosen == "torch" or T == 0:
        return wkv_torch(w, u, k, v, state)
    if chosen == "cpu" and k.dtype == torch.float16:
        raise SymatoError("wkv: backend 'cpu' supports float32/bfloat16/float64, not float16")
    if chosen == "cuda" and k.dtype not in (torch.float32, torch.bfloat16):
        raise SymatoError(f"wkv: backend 'cuda' supports float32/bfloat16, not {k.dtype}")
    return _wkv_compiled(w, u, k, v, state, chosen)
