"""Eager-mode training and evaluation without importing ``torch._dynamo``.

Why: torch imports its compiler front end, ``torch._dynamo`` (1.5-2 s on the 2-core demo
machine, about a fifth of a small demo training job), the first time a process calls
anything torch wraps with ``torch._disable_dynamo``: ``Optimizer.__init__``,
``zero_grad``, ``state_dict``, every ``step`` (its ``_use_grad`` wrapper imports it to
place graph breaks) and every ``torch.library.custom_op`` kernel (the WKV operators).
Those wrappers only matter while ``torch.compile`` traces; a run with ``compile: false``
never traces, so the trainer and evaluation skip them:

* :class:`AdamW` is ``torch.optim.AdamW`` whose five wrapped methods call the function the
  wrapper wraps (``__wrapped__``), under ``torch.no_grad()`` for ``step`` as the wrapper
  does for a non-differentiable optimizer. Same arithmetic, same state-dict format.
* :func:`skip_custom_op_dynamo_guard` marks the package's custom ops (``symato::*``) as
  already guarded, the cache entry ``torch._disable_dynamo`` fills on its first call.

Both fall back to torch's own path wherever torch's internals differ from what they
expect (a newer torch may then import ``torch._dynamo`` again: slower, never different);
tests/test_eager.py checks, on the pinned torch, that a training run imports no
``torch._dynamo`` and that :class:`AdamW` steps equal ``torch.optim.AdamW``'s bit for bit.
With ``compile: true`` the trainer uses ``torch.optim.AdamW`` and marks nothing.
"""

from __future__ import annotations

import types
from collections.abc import Callable
from typing import Any

import torch

_BASE = torch.optim.AdamW


def _unwrapped(name: str) -> Callable[..., Any]:
    """The function under torch's wrapper of ``AdamW.<name>`` (the wrapper itself if
    this torch has none)."""
    method = getattr(_BASE, name)
    return getattr(method, "__wrapped__", method)


class AdamW(torch.optim.AdamW):
    """``torch.optim.AdamW`` for eager runs: identical updates, no ``torch._dynamo`` import."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        if kwargs.get("differentiable"):
            raise ValueError("symato.run.eager.AdamW is for non-differentiable optimizers; "
                             "use torch.optim.AdamW")
        super().__init__(*args, **kwargs)

    def add_param_group(self, param_group: dict[str, Any]) -> None:
        _unwrapped("add_param_group")(self, param_group)

    def zero_grad(self, set_to_none: bool = True) -> None:
        _unwrapped("zero_grad")(self, set_to_none)

    def state_dict(self) -> dict[str, Any]:
        return _unwrapped("state_dict")(self)

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        _unwrapped("load_state_dict")(self, state_dict)

    @torch.no_grad()
    def step(self, closure: Callable[[], float] | None = None) -> float | None:
        return _unwrapped("step")(self, closure)


def _guard_code() -> types.CodeType | None:
    """The code object of the wrapper ``torch._disable_dynamo`` returns (None if absent)."""
    disable = getattr(torch, "_disable_dynamo", None)
    if disable is None:
        return None
    wrapper = disable(lambda: None)
    return getattr(wrapper, "__code__", None)


def skip_custom_op_dynamo_guard(prefix: str = "symato::") -> int:
    """Mark the kernels of the custom ops named ``prefix*`` as already guarded against
    dynamo, so calling them does not import ``torch._dynamo``; returns how many were
    marked (0 where this torch keeps its custom ops differently). Only for processes
    that never call ``torch.compile``."""
    code = _guard_code()
    try:
        from torch._library.custom_ops import OPDEFS
    except ImportError:
        return 0
    marked = 0
    for name, opdef in list(OPDEFS.items()):
        if not name.startswith(prefix):
            continue
        for kernel in getattr(opdef, "_backend_fns", {}).values():
            inner = getattr(kernel, "__wrapped__", None)
            if code is not None and getattr(kernel, "__code__", None) is code and inner:
                inner.__dynamo_disable = inner
                marked += 1
    return marked
