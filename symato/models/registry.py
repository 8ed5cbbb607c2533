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
from symato.models.ops import OPERATORS, operator

# The run settings a recipe gives a value to (``symato.run.settings``: their config
# default is "recipe", resolved per architecture by the grid).
RECIPE_SETTINGS = ("weight_decay", "beta1", "beta2", "eps", "l2wrap", "layerwise_lr")


@dataclass(frozen=True)
class Recipe:
    """How an architecture's authors train it: the optimizer's per-parameter treatment.

    Why data here: the trainer must not branch on the architecture, and a reader must be
    able to check each number against its source (``source``; docs/models.md cites the
    files and commits). What it holds:

    * ``beta1``, ``beta2``, ``eps``, ``weight_decay``: AdamW's settings (the run settings
      of the same names default to these; a config may override each by name).
    * ``lr_scales``: ``(name fragment, multiplier)`` pairs, the first fragment found in a
      parameter's name wins; the trainer's learning rate for that parameter is the
      schedule's times the multiplier at every step (run setting ``layerwise_lr: false``
      turns them all to 1, like the RWKV code's ``--layerwise_lr 0``). A parameter with a
      multiplier is never decayed (both RWKV codebases test the multiplier first).
    * Weight-decay membership: a parameter decays when it has at least two dimensions
      (``decay_squeezed``: after dropping size-1 dimensions, as ``p.squeeze()`` in the
      RWKV code), its name contains ``decay_requires`` (``".weight"`` or anything) and
      none of ``no_decay``.
    * ``l2wrap``: the numerator of the L2Wrap term (``symato.run.recipes.L2Wrap``), 0 = off.
    * ``init``: a one-line summary of the initialization the model file implements.
    """

    name: str
    source: str
    beta1: float
    beta2: float
    eps: float
    weight_decay: float
    lr_scales: tuple[tuple[str, float], ...] = ()
    decay_squeezed: bool = False
    decay_requires: str = ""
    no_decay: tuple[str, ...] = ()
    l2wrap: float = 0.0
    init: str = ""

    def settings(self) -> dict[str, Any]:
        """The run settings this recipe fixes unless a config overrides them by name."""
        return {"weight_decay": self.weight_decay, "beta1": self.beta1, "beta2": self.beta2,
                "eps": self.eps, "l2wrap": self.l2wrap, "layerwise_lr": True}

    def lr_scale(self, name: str) -> float:
        """The learning-rate multiplier of parameter ``name`` (1 unless a fragment matches)."""
        return next((scale for fragment, scale in self.lr_scales if fragment in name), 1.0)

    def decays(self, name: str, shape: tuple[int, ...]) -> bool:
        """Whether weight decay applies to parameter ``name`` of ``shape``."""
        dims = [d for d in shape if d != 1] if self.decay_squeezed else list(shape)
        if len(dims) < 2 or self.decay_requires not in name:
            return False
        if any(fragment in name for fragment, _ in self.lr_scales):
            return False
        return not any(fragment in name for fragment in self.no_decay)


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
    operator (``symato.models.ops.OPERATORS``, also its kernel family) when the model has
    one: the run setting ``wkv_backend`` then reaches its config, training waits for the
    family's kernels (rule ``build_kernels``) and records the backend that ran; ``""``
    for architectures without one (their record says ``none``). ``recipe`` is how the
    architecture's authors train it (:class:`Recipe`).
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
    recipe: Recipe | None = None
    # Config keys added after checkpoints were written, with the value such a checkpoint
    # implies (its model was built before the key existed), for loading old files.
    saved_config_defaults: Mapping[str, Any] = field(
        default_factory=lambda: MappingProxyType({}))

    def __post_init__(self) -> None:
        """An operator name must be one of the operators' table (a typo fails here, when
        the registry is read, not in the first training job)."""
        if self.operator and self.operator not in OPERATORS:
            raise SymatoError(f"architecture {self.name!r}: no operator named "
                              f"{self.operator!r}; known: {list(OPERATORS)}")

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

    def kernel_target(self, settings: Mapping[str, Any]) -> str | None:
        """The compiled kernel target (``cpu``/``cuda``) a run of these settings loads, or
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
        return operator(self.operator).resolve_backend(backend, device, dtype)

    def backend_used(self) -> str:
        """The backend the operator's latest call ran (``"none"`` without an operator or
        before any call)."""
        if not self.operator:
            return "none"
        return operator(self.operator).last_backend_used()


# The authors' recipes (docs/models.md, "Training recipes", has the sources and the
# differences that remain; tests/test_recipes.py checks every parameter against them).
RECIPES: dict[str, Recipe] = {
    "rwkv4": Recipe(
        "rwkv4-v4neo", "BlinkDL/RWKV-LM RWKV-v4neo (src/model.py configure_optimizers, "
        "train.py defaults)", beta1=0.9, beta2=0.99, eps=1e-8, weight_decay=0.0,
        lr_scales=(("time_decay", 2.0), ("time_first", 3.0)), decay_squeezed=True,
        no_decay=("time_mix",), l2wrap=1e-4,
        init="v4neo: time_* ramps, zero att.key/receptance/output and ffn.value/receptance, "
             "orthogonal elsewhere (head x0.5), emb U(-1e-4, 1e-4)"),
    "gpt": Recipe(
        "nanogpt", "karpathy/nanoGPT (model.py configure_optimizers and _init_weights, "
        "train.py defaults)", beta1=0.9, beta2=0.95, eps=1e-8, weight_decay=0.1,
        init="N(0, 0.02); c_proj N(0, 0.02/sqrt(2L)); LayerNorm 1, 0"),
    "rwkv7": Recipe(
        "rwkv7-train_temp", "BlinkDL/RWKV-LM RWKV-v7/train_temp (src/model.py "
        "configure_optimizers and L2Wrap, demo-training-run.sh)", beta1=0.9, beta2=0.99,
        eps=1e-18, weight_decay=0.1, lr_scales=(("att.w0", 2.0),), decay_squeezed=True,
        decay_requires=".weight", l2wrap=1e-4,
        init="x070: module init, then generate_init_weight for the matrices named .weight"),
    "llama": Recipe(
        "transformer++", "Gu & Dao 2023 (Mamba) Transformer++ baseline: AdamW (0.9, 0.95), "
        "wd 0.1; decay grouping of Dao-AILab/flash-attention training/src/optim/"
        "param_grouping.py", beta1=0.9, beta2=0.95, eps=1e-8, weight_decay=0.1,
        decay_requires=".weight", no_decay=("tok_embeddings.",),
        init="N(0, 0.02); attention.wo and feed_forward.w2 N(0, 0.02/sqrt(2L)); RMSNorm 1"),
}

ARCHITECTURES: dict[str, Architecture] = {
    arch.name: arch
    for arch in (
        Architecture("rwkv4", "symato.models.rwkv4", "RWKV4", "RWKV4Config",
                     "RWKV-4: linear-time recurrence (the WKV-4 operator), no attention",
                     operator="wkv4", recipe=RECIPES["rwkv4"]),
        Architecture("gpt", "symato.models.gpt", "GPT", "GPTConfig",
                     "GPT-2-style Transformer: LayerNorm, learned positions, GELU MLP",
                     heads="n_head", recipe=RECIPES["gpt"]),
        Architecture("rwkv7", "symato.models.rwkv7", "RWKV7", "RWKV7Config",
                     "RWKV-7 'Goose' (x070): matrix-valued state, in-context learning rate",
                     heads="head_size", operator="wkv7", recipe=RECIPES["rwkv7"],
                     saved_config_defaults=MappingProxyType({"lora": "capped"})),
        Architecture("llama", "symato.models.llama", "Llama", "LlamaConfig",
                     "Transformer++: RMSNorm, rotary positions, SwiGLU, no biases",
                     heads="n_head", head_multiple=2, recipe=RECIPES["llama"]),
    )
}


# Names architectures went by before, read as today's name wherever a name is read:
# configs (symato.config says so once), checkpoints, settings.json and metrics.json
# written before the rename. RWKV-4 was "rwkv" until it got the version in its name like
# RWKV-7; run folders named "rwkv-..." stay readable (symato collect reads their arch
# from their files), new runs are "rwkv4-...".
ALIASES: Mapping[str, str] = MappingProxyType({"rwkv": "rwkv4"})


def canonical_name(name: str) -> str:
    """Today's name of architecture ``name`` (an old name from :data:`ALIASES` is
    replaced; any other name is returned as it is)."""
    return ALIASES.get(name, name)


def get_architecture(name: str, where: str = "") -> Architecture:
    """The registry entry ``name`` (or of an old name, :data:`ALIASES`); an unknown name
    is an error listing the known ones."""
    name = canonical_name(name)
    if name not in ARCHITECTURES:
        prefix = f"{where}: " if where else ""
        raise SymatoError(f"{prefix}unknown architecture {name!r}; known: {list(ARCHITECTURES)}")
    return ARCHITECTURES[name]


def recipe_of(name: str, where: str = "") -> Recipe:
    """The training recipe of architecture ``name`` (an entry without one is an error)."""
    entry = get_architecture(name, where)
    if entry.recipe is None:
        raise SymatoError(f"{where or 'registry'}: architecture {entry.name!r} has no "
                          "training recipe")
    return entry.recipe


def architecture_of(model: Any) -> str:
    """The registry name of a model instance built from one of the entries."""
    for arch in ARCHITECTURES.values():
        if type(model).__name__ == arch.model_class and type(model).__module__ == arch.module:
            return arch.name
    raise SymatoError(f"not a symato model: {type(model).__name__}")
