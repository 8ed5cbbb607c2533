"""The architectures the pipeline compares, behind one constructor.

RWKV-4 (``rwkv``), GPT (``gpt``), RWKV-7 (``rwkv7``) and Transformer++ (``llama``).
All share one interface so the trainer, evaluation, generation and restoration
never branch on the architecture: ``model(idx) -> logits (B, T, V)``, ``.config`` (a
dataclass), ``param_counts()``, ``flops_per_token()``, ``init_state(batch_size)``,
``forward_step(idx, state) -> (logits, new_state)`` and ``max_context`` (None when the
model has no context limit at inference).
"""

from __future__ import annotations

from dataclasses import asdict
from typing import Any

from torch import nn

from symato.errors import SymatoError
from symato.models.common import make_config
from symato.models.gpt import GPT, GPTConfig
from symato.models.llama import Llama, LlamaConfig
from symato.models.rwkv import RWKV, RWKVConfig
from symato.models.rwkv7 import RWKV7, RWKV7Config

__all__ = [
    "ARCHS",
    "GPT",
    "RWKV",
    "RWKV7",
    "GPTConfig",
    "Llama",
    "LlamaConfig",
    "RWKV7Config",
    "RWKVConfig",
    "arch_of",
    "build_model",
    "config_dict",
    "model_from_config",
]

ARCHS = ("rwkv", "gpt", "rwkv7", "llama")
# arch name -> (model class, config class); the order of ARCHS is the order of the docs.
_CLASSES: dict[str, tuple[type[nn.Module], type]] = {
    "rwkv": (RWKV, RWKVConfig),
    "gpt": (GPT, GPTConfig),
    "rwkv7": (RWKV7, RWKV7Config),
    "llama": (Llama, LlamaConfig),
}


def build_model(
    arch: str,
    *,
    vocab_size: int,
    n_layer: int,
    n_embd: int,
    n_head: int | None = None,
    ctx_len: int,
    **extra: Any,
) -> nn.Module:
    """Build an untrained model. ``n_head`` is ignored by RWKV-4; RWKV-7 takes its head
    size from it (``n_embd / n_head``) unless ``extra`` gives ``head_size``. ``extra`` are
    config keys such as ``wkv_backend`` (RWKV) or ``tie_weights`` (GPT); unknown keys are
    errors."""
    shape = {"vocab_size": vocab_size, "n_layer": n_layer, "n_embd": n_embd, "ctx_len": ctx_len}
    if arch not in _CLASSES:
        raise SymatoError(f"unknown model arch {arch!r}; expected one of {list(ARCHS)}")
    if arch in ("gpt", "llama"):
        if n_head is None:
            raise SymatoError(f"{arch} model config: n_head is required")
        shape["n_head"] = n_head
    if arch == "rwkv7" and n_head is not None and "head_size" not in extra:
        if n_head < 1 or n_embd % n_head:
            raise SymatoError(
                f"rwkv7 model config: n_embd ({n_embd}) must be divisible by n_head ({n_head})"
            )
        shape["head_size"] = n_embd // n_head
    return model_from_config(arch, {**shape, **extra})


def arch_of(model: nn.Module) -> str:
    """The arch name of a model built here (one of ``ARCHS``)."""
    for arch, (cls, _) in _CLASSES.items():
        if isinstance(model, cls):
            return arch
    raise SymatoError(f"not a symato model: {type(model).__name__}")


def config_dict(model: nn.Module) -> dict[str, Any]:
    """The model's config as a plain dict (what checkpoints and settings store)."""
    return asdict(model.config)


def model_from_config(arch: str, config: dict[str, Any]) -> nn.Module:
    """Rebuild an (untrained) model from ``arch`` and a ``config_dict`` result."""
    if arch not in _CLASSES:
        raise SymatoError(f"unknown model arch {arch!r}; expected one of {list(ARCHS)}")
    model_cls, config_cls = _CLASSES[arch]
    return model_cls(make_config(config_cls, f"{arch} model config", **config))
