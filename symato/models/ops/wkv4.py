"""The RWKV-4 WKV operator: one function, three interchangeable backends.

``wkv4(w, u, k, v, state=None, backend="auto") -> (y, new_state)`` computes, for each
batch row and channel, the decayed weighted average of the values seen so far
(docs/wkv.md has the math). Why three backends:

- ``torch``: a readable pure-PyTorch loop over time. It is the reference the others are
  tested against, and runs only when asked for by name (it is ~100x slower).
- ``cpu``: C++ with OpenMP (``kernels/wkv4_cpu.cpp``), so CPU training of small models
  is practical.
- ``cuda``: a chunked parallel scan over time (``kernels/wkv4_cuda.cu``), so training is
  limited by memory bandwidth rather than by one thread walking all of T.

The state is ``(B, 3, C)``: numerator ``aa``, denominator ``bb`` and max exponent ``pp``,
the RNN-state convention of the RWKV-4 runtime (ChatRWKV's ``att_aa/att_bb/att_pp``), so
a state from this operator can be fed to the ``rwkv`` package and back. It is float32
(float64 when k/v are float64, which gradcheck needs).

This module's ``OPERATOR`` (:class:`symato.models.ops.base.Operator`, family ``wkv4``)
holds what it shares with RWKV-7's operator: the backend policy (``auto`` takes the
compiled kernel of the device and a kernel that cannot be built is an error naming cause
and fix), the record of the backend that ran, and loading and checking the extension.
The empty state's ``pp`` (``INIT_PP``) is defined here only; the CUDA source receives it
as the define ``WKV4_INIT_PP`` (:func:`compile_defines`).

The compiled kernels are the custom operators ``symato::wkv4_forward`` and
``symato::wkv4_backward``, so ``torch.compile`` traces an RWKV model as one graph.
"""

from __future__ import annotations

import torch

from symato.errors import SymatoError
from symato.models.ops import extension
from symato.models.ops.base import Operator, has_checkpoints

__all__ = [
    "BACKENDS",
    "CKPT_INTERVAL",
    "INIT_PP",
    "OPERATOR",
    "available_backends",
    "check_extension",
    "compile_defines",
    "initial_state",
    "last_backend_used",
    "resolve_backend",
    "wkv4",
    "wkv4_torch",
]

BACKENDS = extension.BACKENDS
# The max exponent of an empty state. Finite (not -inf) so that "pp - max(pp, x)" stays
# finite; exp(-1e38 - x) underflows to exactly 0 for any realistic x. The rwkv package
# uses -1e30, which is equivalent. The CUDA kernels get it as -DWKV4_INIT_PP.
INIT_PP = -1e38
# The CUDA kernels keep the state every CKPT_INTERVAL steps for the backward; must equal
# kernels/wkv4_cuda.cu's (checked when the extension loads).
CKPT_INTERVAL = 8

OPERATOR = Operator("wkv4", __name__, CKPT_INTERVAL,
                    defines=(f"-DWKV4_INIT_PP={INIT_PP!r}f",))
compile_defines = OPERATOR.compile_defines
check_extension = OPERATOR.check_extension
resolve_backend = OPERATOR.resolve_backend
available_backends = OPERATOR.available_backends
last_backend_used = OPERATOR.last_backend_used
_resolve_traced = OPERATOR.traced_resolver()


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
        raise SymatoError(f"wkv4: k must be (B, T, C), got shape {tuple(k.shape)}")
    if v.shape != k.shape:
        raise SymatoError(f"wkv4: v shape {tuple(v.shape)} != k shape {tuple(k.shape)}")
    if v.dtype != k.dtype:
        raise SymatoError(f"wkv4: v dtype {v.dtype} != k dtype {k.dtype}")
    if k.dtype not in (torch.float32, torch.float64, torch.bfloat16, torch.float16):
        raise SymatoError(f"wkv4: unsupported k/v dtype {k.dtype}")
    B, _, C = k.shape
    for name, p in (("w", w), ("u", u)):
        if p.shape != (C,):
            raise SymatoError(f"wkv4: {name} must have shape ({C},), got {tuple(p.shape)}")
    if state is not None and state.shape != (B, 3, C):
        raise SymatoError(f"wkv4: state must have shape ({B}, 3, {C}), got {tuple(state.shape)}")
    for name, t in (("w", w), ("u", u), ("v", v), ("state", state)):
        if t is not None and t.device != k.device:
            raise SymatoError(f"wkv4: {name} is on {t.device} but k is on {k.device}")


# ----------------------------------------------------------------------------- torch


def wkv4_torch(w, u, k, v, state=None):
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


# ----------------------------------------------------------------------------- the op


# The compiled kernels are registered as two PyTorch custom operators. Why: torch.compile
# then traces a whole RWKV model as one graph (the op is opaque to it, with a "fake"
# implementation that gives output shapes), where an autograd.Function over an extension
# would be a graph break; and autograd, torch.compile and torch.export all see one
# forward/backward pair with a single definition. Targets with checkpoints ("cuda", and
# "cuda-emulated", the CUDA source compiled for the CPU that tests run) keep the state
# every CKPT_INTERVAL steps for the backward; the "cpu" target recomputes from the start.


def _saved_shapes(target: str, save: bool, k: torch.Tensor) -> tuple[int, ...]:
    """The shape of the checkpoints the forward keeps, (B, ceil(T / CKPT_INTERVAL), 3, C),
    or an empty one."""
    B, T, C = k.shape
    n = OPERATOR.checkpoints(target, save, T)
    return (B, n, 3, C) if n else (0,)


def _forward_kernel(
    w: torch.Tensor, u: torch.Tensor, k: torch.Tensor, v: torch.Tensor,
    state: torch.Tensor, target: str, save: bool,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(y, new_state, checkpoints): checkpoints is empty unless ``target`` keeps them."""
    ext = OPERATOR.load(target)
    if has_checkpoints(target):
        return tuple(ext.forward(w, u, k, v, state, save))
    y, s_out = ext.forward(w, u, k, v, state)
    return y, s_out, state.new_empty(0)


@torch.library.custom_op("symato::wkv4_forward", mutates_args=())
def _wkv4_forward(
    w: torch.Tensor, u: torch.Tensor, k: torch.Tensor, v: torch.Tensor,
    state: torch.Tensor, target: str, save: bool,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """The kernel as a custom op: traced as one node by torch.compile, with autograd."""
    return _forward_kernel(w, u, k, v, state, target, save)


@_wkv4_forward.register_fake
def _(w, u, k, v, state, target, save):
    ckpt = state.new_empty(_saved_shapes(target, save, k))
    return torch.empty_like(k), torch.empty_like(state), ckpt


@torch.library.custom_op("symato::wkv4_backward", mutates_args=())
def _wkv4_backward(
    w: torch.Tensor, u: torch.Tensor, k: torch.Tensor, v: torch.Tensor,
    state: torch.Tensor, s_out: torch.Tensor, ckpt: torch.Tensor,
    gy: torch.Tensor, gs: torch.Tensor, target: str,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """(gw, gu, gk, gv, gstate); gw and gu per batch row, summed by the caller."""
    ext = OPERATOR.load(target)
    if has_checkpoints(target):
        return tuple(ext.backward(w, u, k, v, state, s_out, ckpt, gy, gs))
    return tuple(ext.backward(w, u, k, v, state, s_out, gy, gs))


@_wkv4_backward.register_fake
def _(w, u, k, v, state, s_out, ckpt, gy, gs, target):
    B, _, C = k.shape
    gw, gu = state.new_empty(B, C), state.new_empty(B, C)
    return gw, gu, torch.empty_like(k), torch.empty_like(v), torch.empty_like(state)


def _setup_context(ctx, inputs, output) -> None:
    w, u, k, v, state, target, _ = inputs
    _, s_out, ckpt = output
    ctx.save_for_backward(w, u, k, v, state, s_out, ckpt)
    ctx.target = target
    ctx.mark_non_differentiable(ckpt)


def _backward(ctx, gy, gs, _gckpt):
    """Only the inputs are saved: the kernels recompute the per-step states, which costs
    a little compute but no B*T*C*3 activation memory. Per-row w/u partial sums are
    reduced here in a fixed order, so the gradient is deterministic."""
    w, u, k, v, state, s_out, ckpt = ctx.saved_tensors
    gy = torch.zeros_like(k) if gy is None else gy.to(k.dtype).contiguous()
    gs = torch.zeros_like(s_out) if gs is None else gs.contiguous()
    gw, gu, gk, gv, gstate = _wkv4_backward(w, u, k, v, state, s_out, ckpt, gy, gs, ctx.target)
    return gw.sum(0), gu.sum(0), gk, gv, gstate, None, None


_wkv4_forward.register_autograd(_backward, setup_context=_setup_context)


def _wkv4_compiled(w, u, k, v, state, target: str):
    """Run a compiled ``target`` through the custom op; casts are traced, so autograd
    takes gradients back to the callers' dtypes."""
    cdt = _state_dtype(k)
    op, save = OPERATOR.custom_op_or_kernel(_wkv4_forward, _forward_kernel, (w, u, k, v, state))
    y, s_out, _ = op(
        w.to(cdt).contiguous(), u.to(cdt).contiguous(), k.contiguous(), v.contiguous(),
        state.to(cdt).contiguous(), target, save,
    )
    return y, s_out


# ----------------------------------------------------------------------------- entry


def wkv4(w, u, k, v, state=None, backend: str = "auto"):
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
    OPERATOR.record(chosen)
    if chosen == "torch" or T == 0:
        return wkv4_torch(w, u, k, v, state)
    return _wkv4_compiled(w, u, k, v, state, chosen)
