"""What the architectures share: parameter counting and the training-FLOPs convention.

Why one place: the scaling fits compare RWKV, GPT and Llama runs on the same axes
(parameters, compute). If each model counted in its own way, a difference in the fits
could come from bookkeeping rather than from the architectures. docs/models.md writes
the formulas out.

Convention (Kaplan et al. 2020, "6N"):

* ``total`` — every distinct trainable parameter (a tied matrix counts once).
* ``non_embedding`` — ``total`` minus the lookup tables: the token embedding and, for GPT,
  the learned position embedding. The output head stays in: it is a matrix multiply that
  every token pays for. (With a tied GPT head the shared matrix is an embedding for this
  count; its matmul is added back to the compute below.)
* ``flops_per_token`` — training FLOPs per token, forward + backward:
  ``6 * (non_embedding + tied_head) + 6 * n_layer * ctx_len * n_embd`` where the second
  term (attention scores and their weighted sum over the context) only exists for GPT
  and Llama. RWKV-4's WKV recurrence costs O(n_embd) per token per layer and is left
  out, like the LayerNorms and element-wise operations; RWKV-7's state update costs
  O(head_size * n_embd) and is added by that model (``27 * n_layer * head_size *
  n_embd``, docs/models.md says why).
"""

from __future__ import annotations

from dataclasses import fields
from typing import Any

from torch import nn

from symato.errors import SymatoError


def count_parameters(model: nn.Module, embedding_names: tuple[str, ...]) -> dict[str, int]:
    """Return ``{"total", "non_embedding"}`` for ``model``.

    ``embedding_names`` are the state-dict names of the lookup tables. Parameters shared
    between modules (weight tying) are counted once, by identity.
    """
    params = dict(model.named_parameters())  # named_parameters() already dedups shared ones
    for name in embedding_names:
        if name not in params:
            raise SymatoError(f"internal: {type(model).__name__} has no parameter {name!r}")
    total = sum(p.numel() for p in params.values())
    emb = sum(params[name].numel() for name in embedding_names)
    return {"total": total, "non_embedding": total - emb}


def training_flops_per_token(
    matmul_params: int, n_layer: int, ctx_len: int, n_embd: int, attention: bool
) -> float:
    """Training FLOPs per token: 6 per matmul parameter, plus the attention term.

    The factor 6 is 2 (multiply + add) for the forward pass and 4 for the backward pass
    (gradients with respect to both the activations and the weights).
    """
    flops = 6.0 * matmul_params
    if attention:
        flops += 6.0 * n_layer * ctx_len * n_embd
    return flops


def make_config(cls: type, where: str, **values: Any) -> Any:
    """Build the dataclass ``cls`` from keyword values, naming unknown keys in the error.

    Why: configs come from settings files and checkpoints; a typo such as ``n_embed``
    must fail loudly instead of silently keeping a default.
    """
    known = {f.name for f in fields(cls)}
    unknown = sorted(set(values) - known)
    if unknown:
        raise SymatoError(
            f"{where}: unknown {cls.__name__} key(s) {unknown}; known keys: {sorted(known)}"
        )
    try:
        return cls(**values)
    except TypeError as exc:  # a required key is missing
        raise SymatoError(f"{where}: cannot build {cls.__name__}: {exc}") from None
