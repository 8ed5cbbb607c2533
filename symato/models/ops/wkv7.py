"""The RWKV-7 ("Goose", x070) WKV operator: one function, three backends.

``wkv7(r, w, k, v, a, b, state=None, backend="auto") -> (y, new_state)`` runs, for every
batch row and head, the matrix-valued recurrence of RWKV-7 (docs/wkv.md, "WKV-7"):

    S_t = S_{t-1} diag(d_t) + (S_{t-1} a_t) b_t^T + v_t k_t^T,   y_t = S_t r_t,

with the per-step decay ``d_t = exp(-exp(w_t))``. ``w`` comes in this log-log form, as
the released RWKV-7 kernels take it, because a decay near 1 is exactly what bfloat16
cannot hold (0.999 rounds to 1.0) while its log-log (about -6.9) is held to 3 digits.
The state ``S[b, h, i, j]`` is indexed (value dim i, key dim j), the ``rwkv`` package's
``att_kv`` layout, so states move between the two.

Why three backends:

- ``torch``: a readable loop over time in PyTorch ops; autograd does the backward. It
  is the ground truth the kernels are tested against, and runs only when asked for by
  name (float64 on CUDA, which the CUDA kernel does not take, included).
- ``cpu``: C++/OpenMP over (batch, head) with a hand-written backward
  (``kernels/wkv7_cpu.cpp``); float32, bfloat16 and float64 (so gradcheck covers it).
- ``cuda``: one block per (batch, head), threads over the state's rows, a checkpointed
  backward (``kernels/wkv7_cuda.cu``); float32 or bfloat16 I/O, float32 state.

``auto`` takes the compiled kernel of the tensors' device and FAILS with a SymatoError
naming cause and fix when it cannot be built: a silent fall back to the slow loop would
make a training run 100x slower without anyone noticing (project policy).

This module's ``OPERATOR`` (:class:`symato.models.ops.base.Operator`, family ``wkv7``)
holds what it shares with RWKV-4's operator: the backend policy, the record of the
backend that ran, loading and checking the extension. The kernels reach PyTorch as the
custom operators ``symato::wkv7_forward`` and ``symato::wkv7_backward``, so
``torch.compile`` traces a model that uses ``wkv7`` as one graph.
"""

from __future__ import annotations

from types import ModuleType

import torch

from symato.errors import SymatoError
from symato.models.ops import extension
from symato.models.ops.base import Operator, has_checkpoints

__all__ = [
    "BACKENDS",
    "CKPT_INTERVAL",
    "CUDA_HEAD_SIZES",
    "OPERATOR",
    "available_backends",
    "check_extension",
    "last_backend_used",
    "load_wkv7_extension",
    "resolve_backend",
    "wkv7",
    "wkv7_torch",
]

BACKENDS = extension.BACKENDS
# The CUDA kernels keep the state every CKPT_INTERVAL steps for the backward (checked
# against kernels/wkv7_cuda.cu when the extension loads) and support these head sizes.
CKPT_INTERVAL = 16
CUDA_HEAD_SIZES = (16, 32, 64)
_IO_DTYPES = (torch.float32, torch.bfloat16, torch.float64)
_NAMES = ("r", "w", "k", "v", "a", "b")

OPERATOR = Operator("wkv7", __name__, CKPT_INTERVAL)
check_extension = OPERATOR.check_extension
resolve_backend = OPERATOR.resolve_backend
available_backends = OPERATOR.available_backends
last_backend_used = OPERATOR.last_backend_used
_resolve_traced = OPERATOR.traced_resolver()


# ----------------------------------------------------------------------------- helpers


def _state_dtype(x: torch.Tensor) -> torch.dtype:
    return torch.float64 if x.dtype == torch.float64 else torch.float32


def _check_inputs(tensors: tuple, state) -> None:
    """Shape/dtype/device validation with messages that name the offending argument."""
    for name, t in zip(_NAMES, tensors, strict=True):
        if not isinstance(t, torch.Tensor):
            raise SymatoError(f"wkv7: {name} must be a tensor, got {type(t).__name__}")
    r = tensors[0]
    if r.dim() != 4:
        raise SymatoError(f"wkv7: r must be (B, T, H, N), got shape {tuple(r.shape)}")
    if r.dtype not in _IO_DTYPES:
        raise SymatoError(f"wkv7: r has dtype {r.dtype}; use float32, bfloat16 or float64")
    for name, t in zip(_NAMES[1:], tensors[1:], strict=True):
        if t.shape != r.shape:
            raise SymatoError(f"wkv7: {name} shape {tuple(t.shape)} != r shape {tuple(r.shape)}")
        if t.dtype != r.dtype:
            raise SymatoError(f"wkv7: {name} dtype {t.dtype} != r dtype {r.dtype}")
        if t.device != r.device:
            raise SymatoError(f"wkv7: {name} is on {t.device} but r is on {r.device}")
    if state is None:
        return
    B, _, H, N = r.shape
    if not isinstance(state, torch.Tensor):
        raise SymatoError(f"wkv7: state must be a tensor or None, got {type(state).__name__}")
    if state.shape != (B, H, N, N):
        raise SymatoError(
            f"wkv7: state must have shape ({B}, {H}, {N}, {N}), got {tuple(state.shape)}"
        )
    if not state.is_floating_point():
        raise SymatoError(f"wkv7: state must be floating point, got {state.dtype}")
    if state.device != r.device:
        raise SymatoError(f"wkv7: state is on {state.device} but r is on {r.device}")


# ----------------------------------------------------------------------------- torch


def wkv7_torch(r, w, k, v, a, b, state=None):
    """Pure-PyTorch reference: the recurrence as written, one time step per iteration.

    Autograd differentiates through the loop (it keeps every state: B*H*N*N per step,
    fine for tests, not for training). Math in float32 (float64 for float64 inputs).
    """
    B, T, H, N = r.shape
    io, cdt = r.dtype, _state_dtype(r)
    S = r.new_zeros(B, H, N, N, dtype=cdt) if state is None else state.to(cdt)
    r, k, v, a, b = (x.to(cdt) for x in (r, k, v, a, b))
    d = torch.exp(-torch.exp(w.to(cdt)))
    ys = []
    for t in range(T):
        sa = S @ a[:, t, :, :, None]  # (B, H, N, 1): S_{t-1} a_t, one value per row i
        decayed = S * d[:, t, :, None, :]  # column j scaled by d_j: S diag(d)
        S = decayed + sa * b[:, t, :, None, :] + v[:, t, :, :, None] * k[:, t, :, None, :]
        ys.append((S @ r[:, t, :, :, None])[..., 0])
    y = torch.stack(ys, 1) if ys else r.new_zeros(B, 0, H, N)
    return y.to(io), S


# ----------------------------------------------------------------------------- building


def load_wkv7_extension(target: str, verbose: bool = False) -> ModuleType:
    """Build (or load from its folder) the ``cpu``, ``cuda`` or ``cuda-emulated`` WKV-7
    extension; a failed build raises ``KernelBuildError`` (a SymatoError) with its cause
    and fix (kept by name for the GPU check scripts: ``OPERATOR.load``)."""
    return OPERATOR.load(target, verbose)


# ----------------------------------------------------------------------------- the op


# Targets with checkpoints ("cuda" and "cuda-emulated", the CUDA source compiled for the
# CPU that tests run) keep, when a gradient is wanted, the state every CKPT_INTERVAL
# steps, (B, H, ceil(T/16), N, N) float32, and sa_t = S_{t-1} a_t, (B, T, H, N) float32;
# the backward recomputes the states in between. The "cpu" target keeps nothing and
# recomputes from the input state (memory is not what limits CPU training).


def _saved_shapes(target: str, save: bool, r: torch.Tensor) -> tuple[tuple, tuple]:
    """The shapes of the checkpoints and of sa the forward keeps, or empty ones."""
    B, T, H, N = r.shape
    n = OPERATOR.checkpoints(target, save, T)
    return ((B, H, n, N, N), (B, T, H, N)) if n else ((0,), (0,))


def _forward_kernel(
    r: torch.Tensor, w: torch.Tensor, k: torch.Tensor, v: torch.Tensor,
    a: torch.Tensor, b: torch.Tensor, state: torch.Tensor, target: str, save: bool,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """(y, new_state, checkpoints, sa): the last two are empty unless ``target`` keeps them."""
    ext = OPERATOR.load(target)
    if has_checkpoints(target):
        return tuple(ext.forward(r, w, k, v, a, b, state, save))
    y, s_out = ext.forward(r, w, k, v, a, b, state)
    return y, s_out, state.new_empty(0), state.new_empty(0)


@torch.library.custom_op("symato::wkv7_forward", mutates_args=())
def _wkv7_forward(
    r: torch.Tensor, w: torch.Tensor, k: torch.Tensor, v: torch.Tensor,
    a: torch.Tensor, b: torch.Tensor, state: torch.Tensor, target: str, save: bool,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """The kernel as a custom op: traced as one node by torch.compile, with autograd."""
    return _forward_kernel(r, w, k, v, a, b, state, target, save)


@_wkv7_forward.register_fake
def _(r, w, k, v, a, b, state, target, save):
    ck, sa = _saved_shapes(target, save, r)
    return torch.empty_like(r), torch.empty_like(state), state.new_empty(ck), state.new_empty(sa)


@torch.library.custom_op("symato::wkv7_backward", mutates_args=())
def _wkv7_backward(
    r: torch.Tensor, w: torch.Tensor, k: torch.Tensor, v: torch.Tensor,
    a: torch.Tensor, b: torch.Tensor, state: torch.Tensor, ckpt: torch.Tensor,
    sa: torch.Tensor, gy: torch.Tensor, gs: torch.Tensor, target: str,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor,
           torch.Tensor, torch.Tensor]:
    """(gr, gw, gk, gv, ga, gb, gstate)."""
    ext = OPERATOR.load(target)
    if has_checkpoints(target):
        return tuple(ext.backward(r, w, k, v, a, b, state, ckpt, sa, gy, gs))
    return tuple(ext.backward(r, w, k, v, a, b, state, gy, gs))


@_wkv7_backward.register_fake
def _(r, w, k, v, a, b, state, ckpt, sa, gy, gs, target):
    return (*(torch.empty_like(x) for x in (r, w, k, v, a, b)), torch.empty_like(state))


def _setup_context(ctx, inputs, output) -> None:
    r, w, k, v, a, b, state, target, _ = inputs
    _, _, ckpt, sa = output
    ctx.save_for_backward(r, w, k, v, a, b, state, ckpt, sa)
    ctx.target = target
    ctx.mark_non_differentiable(ckpt, sa)


def _backward(ctx, gy, gs, _gckpt, _gsa):
    """Only the inputs (and, on CUDA, the sparse checkpoints) are saved: the kernels
    recompute the per-step states rather than keeping B*H*N*N floats per step."""
    r, w, k, v, a, b, state, ckpt, sa = ctx.saved_tensors
    gy = torch.zeros_like(r) if gy is None else gy.to(r.dtype).contiguous()
    gs = torch.zeros_like(state) if gs is None else gs.to(state.dtype).contiguous()
    grads = _wkv7_backward(r, w, k, v, a, b, state, ckpt, sa, gy, gs, ctx.target)
    return (*grads, None, None)


_wkv7_forward.register_autograd(_backward, setup_context=_setup_context)


def _wkv7_compiled(r, w, k, v, a, b, state, target: str):
    """Run a compiled ``target`` through the custom op; the state cast is traced, so
    autograd takes its gradient back to the caller's dtype."""
    op, save = OPERATOR.custom_op_or_kernel(_wkv7_forward, _forward_kernel,
                                            (r, w, k, v, a, b, state))
    y, s_out, _, _ = op(
        *(x.contiguous() for x in (r, w, k, v, a, b)),
        state.to(_state_dtype(r)).contiguous(), target, save,
    )
    return y, s_out


# ----------------------------------------------------------------------------- entry


def wkv7(r, w, k, v, a, b, state=None, backend: str = "auto"):
    """RWKV-7 WKV: ``S_t = S_{t-1} diag(exp(-exp(w_t))) + (S_{t-1} a_t) b_t^T + v_t k_t^T``,
    ``y_t = S_t r_t``, per batch row and head.

    Args:
        r, w, k, v, a, b: (B, T, H, N), one dtype: float32 or bfloat16 (float64 on
            ``cpu``/``torch``, for gradcheck). ``w`` is the log-log decay (decay
            ``exp(-exp(w))``); the model passes ``a = -kk``, ``b = kk * a_lr``.
        state: optional (B, H, N, N) state ``S[b, h, value i, key j]`` from a previous
            call; None = zeros.
        backend: ``auto`` | ``cuda`` | ``cpu`` | ``torch``.

    Returns:
        ``(y, new_state)``: y (B, T, H, N) in r's dtype; new_state (B, H, N, N) float32
        (float64 for float64 inputs). Differentiable in all six inputs and the state.
    """
    tensors = (r, w, k, v, a, b)
    _check_inputs(tensors, state)
    B, _, H, N = r.shape
    chosen = _resolve_traced(backend, r.device, r.dtype)
    if chosen.startswith("cuda") and N not in CUDA_HEAD_SIZES:
        raise SymatoError(
            f"wkv7: the cuda kernel takes head size N in {CUDA_HEAD_SIZES}, got N={N}; "
            "use backend='torch' for other head sizes"
        )
    if state is None:
        state = r.new_zeros(B, H, N, N, dtype=_state_dtype(r))
    OPERATOR.record(chosen)
    if chosen == "torch" or r.numel() == 0:
        return wkv7_torch(r, w, k, v, a, b, state)
    return _wkv7_compiled(r, w, k, v, a, b, state, chosen)
