"""The optimizer side of the architectures' training recipes: parameter groups and L2Wrap.

Why here and not in the trainer: the groups are a public view (``parameter_groups``) so a
reader, a test or a benchmark sees exactly which learning-rate multiplier and weight decay
every parameter trains with, without building a trainer. The rules themselves are data in
the registry (``symato.models.registry.Recipe``); docs/models.md cites their sources.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from symato.models.registry import recipe_of


def parameter_groups(model: nn.Module, settings: dict[str, Any]) -> list[dict[str, Any]]:
    """The optimizer groups the trainer uses for ``model`` under run ``settings``.

    Each group is ``{"names": [...], "lr_scale": float, "weight_decay": float, "decay":
    bool}`` (``decay``: the recipe decays these; their ``weight_decay`` is the run's, which
    may be 0, as RWKV-4's recipe has it): the
    trainer's learning rate for the group at every step is ``learning_rate(step) *
    lr_scale``, and AdamW decays it by ``weight_decay`` (the run's ``weight_decay`` for the
    parameters the recipe decays, 0 for the others). Multipliers are the recipe's when the
    run's ``layerwise_lr`` is true, else 1. Groups come in a fixed order (by multiplier,
    then undecayed before decayed), names in ``named_parameters`` order; empty groups are
    left out.
    """
    recipe = recipe_of(settings["arch"], f"run {settings.get('run', '?')}")
    groups: dict[tuple[float, bool], list[str]] = {}
    for name, param in model.named_parameters():
        scale = recipe.lr_scale(name) if settings["layerwise_lr"] else 1.0
        decayed = recipe.decays(name, tuple(param.shape))
        groups.setdefault((scale, decayed), []).append(name)
    return [{"names": names, "lr_scale": scale, "decay": decayed,
             "weight_decay": float(settings["weight_decay"]) if decayed else 0.0}
            for (scale, decayed), names in sorted(groups.items())]


class L2Wrap(torch.autograd.Function):
    """The RWKV authors' L2Wrap: the loss passes through unchanged; in the backward pass
    the largest logit of every token gets the extra gradient ``factor * max``, with
    ``factor = l2wrap / (B * T)``, pushing it towards 0 (RWKV-v4neo and RWKV-v7/train_temp
    ``src/model.py``, numerator 1e-4).

    The extra gradient is multiplied by the loss's incoming gradient: the trainer
    backpropagates ``loss / grad_accum``, so a step of several micro-batches gets what one
    batch of all of them would (the authors' later code says the unscaled form "is buggy
    when grad_output != 1"). With one micro-batch the incoming gradient is 1 and the term
    is exactly the authors'.
    """

    @staticmethod
    def forward(ctx: Any, loss: torch.Tensor, logits: torch.Tensor, l2wrap: float) -> torch.Tensor:
        ctx.save_for_backward(logits)
        ctx.l2wrap = l2wrap
        return loss.view_as(loss)

    @staticmethod
    def backward(ctx: Any, grad_output: torch.Tensor) -> tuple[Any, ...]:
        (logits,) = ctx.saved_tensors
        factor = ctx.l2wrap / (logits.shape[0] * logits.shape[1])
        top, ids = torch.max(logits, -1, keepdim=True)
        grad = torch.zeros_like(logits)
        grad.scatter_(-1, ids, top * factor)
        return grad_output, grad * grad_output.to(grad.dtype), None


def l2wrap(loss: torch.Tensor, logits: torch.Tensor, numerator: float) -> torch.Tensor:
    """``loss`` with the L2Wrap gradient on ``logits`` (B, T, V); ``numerator`` 0 = off."""
    if not numerator:
        return loss
    return L2Wrap.apply(loss, logits, float(numerator))
