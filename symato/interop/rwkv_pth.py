"""``symato export --format rwkv``: an RWKV checkpoint as a plain ``.pth`` state dict.

Why: the ``rwkv`` package (ChatRWKV's runtime) and the tools around it read exactly
this file: a flat ``{name: tensor}`` dict with the released checkpoints' names. Our
parameter names already are those names, so the export is the state dict itself, on
CPU, contiguous, in the chosen dtype, with nothing else in the file (the runtime treats
every key as a weight).

* RWKV-4 (``rwkv4``): ``time_decay`` raw; the package loads it as it is.
* RWKV-7 (``rwkv7``): the x070 layout; the package loads it with ``RWKV_V7_ON=1`` set
  before ``import rwkv.model``, and it opens ``MODEL + ".pth"``, so pass the path
  without the suffix. It reads the head size from ``blocks.0.att.r_k`` (H, N), so any
  head size works on CPU; its CUDA kernel is compiled for N = 64 only.
"""

from __future__ import annotations

import os

import torch
from torch import Tensor, nn

from symato.errors import SymatoError
from symato.io import atomic_path

DTYPES = {"fp32": torch.float32, "bf16": torch.bfloat16, "fp16": torch.float16}


def rwkv_state_dict(model: nn.Module, dtype: torch.dtype = torch.float32) -> dict[str, Tensor]:
    """The ``.pth`` dict of an RWKV-4 or RWKV-7 model (copies on CPU in ``dtype``).

    RWKV-4's ``time_decay`` and ``time_first`` stay float32 whatever ``dtype`` is: the
    runtime computes ``-exp(time_decay)`` from them and half precision would shift every
    decay. (The RWKV-7 runtime casts every tensor to its own dtype, so nothing is kept.)
    """
    from symato.models.rwkv4 import RWKV4
    from symato.models.rwkv7 import RWKV7

    if not isinstance(model, RWKV4 | RWKV7):
        raise SymatoError(
            f"only RWKV models (rwkv4, rwkv7) can be exported, got {type(model).__name__}"
        )
    out = {}
    for name, tensor in model.state_dict().items():
        keep_fp32 = name.endswith((".time_decay", ".time_first"))
        out[name] = tensor.detach().to("cpu", torch.float32 if keep_fp32 else dtype).contiguous()
    return out


def export_rwkv(
    ckpt: str | os.PathLike[str], out: str | os.PathLike[str], dtype: str = "fp32"
) -> int:
    """Export checkpoint ``ckpt`` (file or run dir) to ``out``; return the tensor count."""
    from symato.run.checkpoint import load_model

    if dtype not in DTYPES:
        raise SymatoError(f"--dtype must be one of {sorted(DTYPES)}, got {dtype!r}")
    if not str(out).endswith(".pth"):
        raise SymatoError(f"--out {out}: the rwkv package expects a file name ending in .pth")
    model, _ = load_model(ckpt)
    state = rwkv_state_dict(model, DTYPES[dtype])
    with atomic_path(out) as tmp:
        torch.save(state, tmp)
    return len(state)
