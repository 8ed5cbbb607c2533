"""The architectures the pipeline can train: one entry each, the only list of them.

Why a registry: the grid, the trainer, checkpoints, the run-name pattern and the config
schema's allowed values all need "which architectures exist and how is each built".
Each reads it from here, so adding an architecture is its model file plus one entry
below (docs/architecture.md walks through an example).

Entries name their classes by module path and are imported only when a model is built:
the Snakefile reads this registry while parsing, and must not pay for importing torch.
"""

from __future__ import annotations

import importlib
from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

from symato.errors import SymatoError


@dataclass(frozen=True)
class Architecture:
    """One trainable architecture.

    ``heads`` says how the run setting ``head_size`` shapes the model: ``"n_head"``
    (attention: n_head = n_embd / head_size), ``"head_size"`` (passed as is) or
    ``"none"`` (unused); ``head_multiple`` is what the head size must be a multiple of
    (2 where rotary embeddings rotate pairs of dimensions). ``defaults`` are training
    settings this architecture uses
    unless ``train.arch_overrides`` says otherwise. ``run_fields`` are the settings that
    name a run (``{arch}-L{n_layer}-D{n_embd}-...``). ``operator`` names the compiled
    operator's kernel family (``symato.models.ops.extension.FAMILIES``) when the model has
    one: the run setting ``wkv_backend`` then reaches its config, training waits for the
    family's kernels (rule ``build_kernels``) and records the backend that ran; ``""``
    for architectures without one (their record says ``none``).
    """

    name: str
    module: str
    model_class: str
    config_class: str
    summary: str
    heads: str = "none"
    head_multiple: int = 1
    defaults: Mapping[str, Any] = field(default_factory=lambda: MappingProxyType({}))
    run_fields: tuple[str, ...] = ("n_layer", "n_embd")
    operator: str = ""

    def classes(self) -> tuple[type, type]:
        """(model class, config class), imported on first use."""
        module = importlib.import_module(self.module)
        return getattr(module, self.model_class), getattr(module, self.config_class)

    def check_shape(self, settings: Mapping[str, Any], where: str) -> None:
        """Reject a width the head size does not divide (for head-shaped architectures)."""
        if self.heads == "none":
            return
        width, head = settings["n_embd"], settings["head_size"]
        if width % head:
            raise SymatoError(f"{where}: {self.name} width {width} is not divisible by "
                              f"head_size {head}")
        if head % self.head_multiple:
            raise SymatoError(f"{where}: {self.name} needs a head_size that is a multiple of "
                              f"{self.head_multiple}, got {head}")

    def model_kwargs(self, settings: Mapping[str, Any]) -> dict[str, Any]:
        """The model-config keys a run's settings fix beyond the vocabulary size."""
        kwargs = {"n_layer": settings["n_layer"], "n_embd": settings["n_embd"],
                  "ctx_len": settings["ctx_len"]}
        if self.heads == "n_head":
            kwargs["n_head"] = settings["n_embd"] // settings["head_size"]
        elif self.heads == "head_size":
            kwargs["head_size"] = settings["head_size"]
        if self.operator:
            kwargs["wkv_backend"] = settings["wkv_backend"]
        return kwargs

    def kernel_kind(self, settings: Mapping[str, Any]) -> str | None:
        """The compiled kernel kind (``cpu``/``cuda``) a run of these settings loads, or
        None when it loads none (no operator, or ``wkv_backend: torch``)."""
        backend = settings["wkv_backend"]
        if not self.operator or backend == "torch":
            return None
        return settings["device"] if backend == "auto" else backend

    def resolve_backend(self, backend: str, device: Any, dtype: Any) -> str:
        """The operator backend a run on ``device`` will use (building its kernel now if
        needed; a kernel that cannot be built is an error naming cause and fix), or
        ``"none"`` for an architecture without a compiled operator."""
        if not self.operator:
            return "none"
        from symato.models.ops.extension import operator_module

        return operator_module(self.operator).resolve_backend(backend, device, dtype)

    def backend_used(self) -> str:
        """The backend the operator's latest call ran (``"none"`` without an operator or
        before any call)."""
        if not self.operator:
            return "none"
        from symato.models.ops.extension import operator_module

        return operator_module(self.operator).last_backend_used()


ARCHITECTURES: dict[str, Architecture] = {
    arch.name: arch
    for arch in (
        Architecture("rwkv", "symato.models.rwkv", "RWKV", "RWKVConfig",
                     "RWKV-4: linear-time recurrence (the WKV operator), no attention",
                     operator="wkv"),
        Architecture("gpt", "symato.models.gpt", "GPT", "GPTConfig",
                     "GPT-2-style Transformer: LayerNorm, learned positions, GELU MLP",
                     heads="n_head"),
        Architecture("rwkv7", "symato.models.rwkv7", "RWKV7", "RWKV7Config",
                     "RWKV-7 'Goose' (x070): matrix-valued state, in-context learning rate",
                     heads="head_size", operator="wkv7"),
        Architecture("llama", "symato.models.llama", "Llama", "LlamaConfig",
                     "Transformer++: RMSNorm, rotary positions, SwiGLU, no biases",
                     heads="n_head", head_multiple=2),
    )
}


def get_architecture(name: str, where: str = "") -> Architecture:
    """The registry entry ``name``; an unknown name is an error listing the known ones."""
    if name not in ARCHITECTURES:
        prefix = f"{where}: " if where else ""
        raise SymatoError(f"{prefix}unknown architecture {name!r}; known: {list(ARCHITECTURES)}")
    return ARCHITECTURES[name]


def architecture_of(model: Any) -> str:
    """The registry name of a model instance built from one of the entries."""
    for arch in ARCHITECTURES.values():
        if type(model).__name__ == arch.model_class and type(model).__module__ == arch.module:
            return arch.name
    raise SymatoError(f"not a symato model: {type(model).__name__}")
