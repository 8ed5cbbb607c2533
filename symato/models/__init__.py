"""The architectures the pipeline compares, behind one constructor.

Every model shares one interface so the trainer, evaluation, generation and restoration
never branch on the architecture: ``model(idx) -> logits (B, T, V)``, ``.config`` (a
dataclass), ``param_counts()``, ``flops_per_token()``, ``init_state(batch_size)``,
``forward_step(idx, state) -> (logits, new_state)`` (never changing ``state``; the
Transformers' ``init_state(batch_size, max_len)`` preallocates their KV cache,
``kvcache.py``), ``features(idx)`` and ``project(h)``
(``model(idx)`` in two halves: evaluation projects only the positions it scores) and
``max_context`` (None when the
model has no context limit at inference). Which architectures exist is
``symato.models.registry``; one file per model (``rwkv4.py``, ``gpt.py``, ``rwkv7.py``,
``llama.py``), operators in ``ops/``.
"""

from __future__ import annotations

from dataclasses import asdict
from typing import TYPE_CHECKING, Any

from symato.errors import SymatoError
from symato.models.registry import ARCHITECTURES, architecture_of, get_architecture

if TYPE_CHECKING:
    from torch import nn

# torch is imported when a model is built, not with this package: the Snakefile and the
# small commands (`symato settings`, one per run) read the registry and must not pay
# the ~2 s of importing torch (tests/test_config.py checks it).

__all__ = [
    "ARCHITECTURES",
    "architecture_of",
    "build_model",
    "config_dict",
    "model_for_run",
    "model_from_config",
    "with_backend",
]


def model_from_config(arch: str, config: dict[str, Any]) -> nn.Module:
    """Build an (untrained) ``arch`` model from its config keys; unknown keys are errors.

    ``config`` is a ``config_dict`` result, or shape keys (``vocab_size``, ``n_layer``,
    ``n_embd``, ``ctx_len``, plus ``n_head`` or ``head_size`` where the architecture
    has heads) and options such as ``wkv_backend`` (RWKV) or ``tie_weights`` (GPT).
    """
    from symato.models.common import make_config

    entry = get_architecture(arch)
    model_class, config_class = entry.classes()
    return model_class(make_config(config_class, f"{arch} model config", **config))


def build_model(
    arch: str, *, vocab_size: int, n_layer: int, n_embd: int, ctx_len: int,
    n_head: int | None = None, **extra: Any,
) -> nn.Module:
    """Build an untrained model. ``n_head`` is used by architectures with heads (RWKV-7
    takes its head size as ``n_embd / n_head`` unless ``extra`` gives ``head_size``) and
    ignored by RWKV-4; ``extra`` are config keys such as ``wkv_backend`` (RWKV) or
    ``tie_weights`` (GPT); unknown keys are errors."""
    config = {"vocab_size": vocab_size, "n_layer": n_layer, "n_embd": n_embd, "ctx_len": ctx_len}
    heads = get_architecture(arch).heads
    if n_head is not None and heads == "n_head":
        config["n_head"] = n_head
    elif n_head is not None and heads == "head_size" and "head_size" not in extra:
        if n_head < 1 or n_embd % n_head:
            raise SymatoError(f"{arch} model config: n_embd ({n_embd}) must be divisible by "
                              f"n_head ({n_head})")
        config["head_size"] = n_embd // n_head
    return model_from_config(arch, {**config, **extra})


def model_for_run(settings: dict[str, Any], vocab_size: int) -> nn.Module:
    """An untrained model for a run's settings (its shape from the registry entry)."""
    kwargs = get_architecture(settings["arch"]).model_kwargs(settings)
    return model_from_config(settings["arch"], {"vocab_size": vocab_size, **kwargs})


def config_dict(model: nn.Module) -> dict[str, Any]:
    """The model's config as a plain dict (what checkpoints and settings store).

    ``wkv_backend`` is stored as ``"auto"``: which operator implementation runs is a
    choice of the machine that runs the model, not part of the model (a run trained with
    ``cuda`` must evaluate on a CPU; one trained with ``torch`` must not make every later
    use slow). The backend a training run used is in its checkpoint meta (``backend``);
    loading code takes the backend as an argument (``checkpoint.load_model``).
    """
    config = asdict(model.config)
    if "wkv_backend" in config:
        config["wkv_backend"] = "auto"
    return config


def with_backend(config: dict[str, Any], wkv_backend: str) -> dict[str, Any]:
    """``config`` with its operator backend set to ``wkv_backend`` (a copy; configs of
    architectures without a compiled operator, which have no such key, are returned as
    they are)."""
    if "wkv_backend" not in config:
        return dict(config)
    return {**config, "wkv_backend": wkv_backend}
