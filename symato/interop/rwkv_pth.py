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
import re
from typing import Any

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


# --------------------------------------------------------------------------- import
# The inverse of the export: a ``.pth`` of the RWKV-LM layout (our export, BlinkDL's
# released checkpoints) as symato's (arch, config, state). Names are the same both ways;
# what differs is what each writer leaves in or out, handled here:
# * RWKV-7: the authors' code creates the value-residual path ``v0/v1/v2`` in layer 0
#   too, where it is never used; ours has none there, so those three are dropped.
# * vectors saved flat or as (1, 1, C) (mixes, decays, ``r_k`` as (C,) or (H, N)) are
#   reshaped to ours when only their shape's 1s differ; matrices are never reshaped.
# * every tensor becomes float32 (released files are bf16 or fp16).
RWKV7_LAYER0_UNUSED = ("blocks.0.att.v0", "blocks.0.att.v1", "blocks.0.att.v2")
_BLOCK = re.compile(r"^blocks\.(\d+)\.")


def read_rwkv_pth(path: str | os.PathLike[str]) -> dict[str, Tensor]:
    """The flat ``{name: tensor}`` dict of an RWKV ``.pth``, loaded weights-only: a file
    that would need unpickling code is refused, never executed."""
    from symato.run.checkpoint import load_weights_only

    state = load_weights_only(path, "RWKV checkpoint")
    if not isinstance(state, dict) or not state or not all(
            isinstance(k, str) and isinstance(v, Tensor) for k, v in state.items()):
        raise SymatoError(f"{path}: not an RWKV checkpoint (a flat dict of named tensors, "
                          "as BlinkDL's .pth files and symato export --format rwkv write)")
    return state


def rwkv_arch_of(state: dict[str, Tensor], where: str) -> str:
    """``rwkv7`` (x070: ``blocks.0.att.r_k``) or ``rwkv4`` (``blocks.0.att.time_first``)."""
    if "blocks.0.att.r_k" in state:
        return "rwkv7"
    if "blocks.0.att.time_first" in state:
        return "rwkv4"
    raise SymatoError(f"{where}: neither RWKV-7 x070 (no tensor 'blocks.0.att.r_k') nor "
                      "RWKV-4 (no tensor 'blocks.0.att.time_first'); other RWKV versions "
                      "(5, 6) are not supported")


def _tensor(state: dict[str, Tensor], name: str, where: str) -> Tensor:
    if name not in state:
        raise SymatoError(f"{where}: tensor {name!r} missing")
    return state[name]


def _rwkv7_config(state: dict[str, Tensor], base: dict[str, Any], where: str) -> dict[str, Any]:
    """RWKV-7's head size (from ``r_k``, (H, N)) and low-rank rule (from the LoRA widths)."""
    from symato.models.rwkv7 import LORA_RULES, RWKV7Config

    r_k = _tensor(state, "blocks.0.att.r_k", where)
    if r_k.ndim != 2:
        raise SymatoError(f"{where}: tensor 'blocks.0.att.r_k' has shape {tuple(r_k.shape)}; "
                          "the head size is read from its (heads, head size) shape")
    config = {**base, "head_size": int(r_k.shape[1])}
    layer = 1 if base["n_layer"] > 1 else 0
    have = {"w": _tensor(state, f"blocks.{layer}.att.w1", where).shape[1],
            "a": _tensor(state, f"blocks.{layer}.att.a1", where).shape[1],
            "g": _tensor(state, f"blocks.{layer}.att.g1", where).shape[1]}
    if f"blocks.{layer}.att.v1" in state:
        have["v"] = state[f"blocks.{layer}.att.v1"].shape[1]
    for rule in LORA_RULES:
        ranks = RWKV7Config(**config, lora=rule).ranks
        if all(ranks[p] == int(n) for p, n in have.items()):
            return {**config, "lora": rule}
    raise SymatoError(f"{where}: low-rank widths {have} (tensors blocks.{layer}.att.w1/a1/v1/g1)"
                      f" follow no rule symato's RWKV-7 knows ({list(LORA_RULES)}; "
                      "symato/models/rwkv7.py LORA_FACTORS)")


def from_rwkv_state(state: dict[str, Tensor], where: str, ctx_len: int = 1024
                    ) -> tuple[str, dict[str, Any], dict[str, Tensor]]:
    """``(arch, config, state)`` of symato for an RWKV ``.pth`` dict.

    Shapes are read from the tensors: vocabulary and width from ``emb.weight``, layers
    from the ``blocks.N.`` names, RWKV-7's head size and LoRA rule from ``r_k`` and the
    LoRA widths. ``ctx_len`` (not in the file: a training setting) goes into the config.
    Every tensor of ours must be there with our shape (up to the vectors' 1s), and every
    tensor of the file must be ours (or layer 0's unused RWKV-7 value residual), else an
    error naming ``where`` and the tensor.
    """
    arch = rwkv_arch_of(state, where)
    emb = _tensor(state, "emb.weight", where)
    layers = {int(m.group(1)) for k in state if (m := _BLOCK.match(k))}
    if emb.ndim != 2 or not layers:
        raise SymatoError(f"{where}: tensor 'emb.weight' must be (vocab, width) and the file "
                          "must hold blocks.N tensors")
    base = {"vocab_size": int(emb.shape[0]), "n_layer": max(layers) + 1,
            "n_embd": int(emb.shape[1]), "ctx_len": ctx_len}
    config = _rwkv7_config(state, base, where) if arch == "rwkv7" else base
    theirs = {k: v for k, v in state.items() if not (arch == "rwkv7" and k in RWKV7_LAYER0_UNUSED)}
    return arch, config, fit_state(theirs, expected_shapes(arch, config), where)


def expected_shapes(arch: str, config: dict[str, Any]) -> dict[str, tuple[int, ...]]:
    """Every tensor name and shape of symato's ``arch`` model of ``config``, without
    allocating its weights (built on the ``meta`` device)."""
    from symato.models import model_from_config

    with torch.device("meta"):
        model = model_from_config(arch, config)
    return {k: tuple(v.shape) for k, v in model.state_dict().items()}


def fit_state(state: dict[str, Tensor], shapes: dict[str, tuple[int, ...]], where: str,
              skip: tuple[str, ...] = ()) -> dict[str, Tensor]:
    """``state`` as float32 tensors of exactly the names and ``shapes`` of a model.

    A vector stored flat or with extra 1s (``(C,)`` for ``(1, 1, C)``) is reshaped;
    any other shape difference, a missing or an extra tensor is an error naming
    ``where`` and the tensor. ``skip``: names whose shape is not checked (vocabulary
    rows, which a transplant replaces).
    """
    missing = sorted(set(shapes) - set(state))
    extra = sorted(set(state) - set(shapes))
    if missing:
        raise SymatoError(f"{where}: tensor {missing[0]!r} missing"
                          f"{f' (and {len(missing) - 1} more)' if len(missing) > 1 else ''}")
    if extra:
        raise SymatoError(f"{where}: tensor {extra[0]!r} is not part of the model"
                          f"{f' (and {len(extra) - 1} more)' if len(extra) > 1 else ''}")
    out: dict[str, Tensor] = {}
    for name, want in shapes.items():
        t = state[name].detach().to("cpu", torch.float32)
        have = tuple(t.shape)
        if have != want and name not in skip:
            squeezed = [n for n in have if n != 1], [n for n in want if n != 1]
            if squeezed[0] != squeezed[1] or len(squeezed[1]) > 1:
                raise SymatoError(f"{where}: tensor {name!r} has shape {list(have)}, the "
                                  f"model needs {list(want)}")
            t = t.reshape(want)
        out[name] = t.contiguous()
    return out
