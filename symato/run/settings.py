"""The settings of one training run: the contract between the grid and the trainer.

Why a module of its own: a run is fully described by its ``settings.json``, so the grid
(which writes it), the trainer (which reads it), the evaluation and the report must agree
on its keys, types and allowed values. They live here, in the package, so an installed
package knows them without the workflow's schema files. The shared settings (the ones
``config.yaml`` sets under ``train.settings``) are also the schema of that config section:
``workflow/schemas/train.schema.yaml`` holds a placeholder that ``symato.config`` fills
from :func:`shared_schema`, so the two cannot drift apart (``tests/test_config.py``).

``symato settings`` writes one run's settings.json from command-line options (the
workflow's ``run_settings`` rule); a budget in bytes of text is turned into tokens and
steps there, from the tokenizer's shard manifest.

Two guards stop absurd work before it is queued (docs/training.md, "Guards"): a budget
that passes over the train split's text more than ``max_epochs`` times, and a run beyond
the sanity limits ``MAX_PARAMS``/``MAX_TOKENS`` without ``allow_large``.
"""

from __future__ import annotations

import argparse
import json
import math
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from symato.errors import SymatoError
from symato.io import read_json, write_json_atomic
from symato.spec import Option, object_schema


@dataclass(frozen=True)
class Setting(Option):
    """One key of settings.json. ``shared`` settings come from ``train.settings`` (with
    per-architecture overrides) and have a default; the others are set by the grid for
    each run. ``optional`` keys exist only for some runs."""

    shared: bool = False
    optional: bool = False
    short: str = ""
    guard: bool = False
    omit_default: bool = False  # written to settings.json only when not at its default
    init: bool = False  # a setting of a run that starts from a model (needs init_from)
    from_recipe: bool = False
    wsd_only: bool = False

    @property
    def parse(self) -> Any:
        """As ``Option.parse``; a mapping (``branches``) is given as JSON."""
        return json.loads if self.kind is dict else super().parse

    def json_schema(self) -> dict[str, Any]:
        """As ``Option.json_schema``; a recipe setting also takes ``"recipe"`` or null (the
        architecture's recipe value, its default)."""
        out = super().json_schema()
        if not self.from_recipe:
            return out
        value = {k: v for k, v in out.items() if k not in ("description", "default")}
        return {"description": out["description"], "default": RECIPE,
                "anyOf": [value, {"enum": [RECIPE, None]}]}


RECIPE = "recipe"  # a recipe setting's config value meaning "the architecture's recipe"


def _guard(name: str, kind: type, default: Any, help: str, **limits: Any) -> Setting:
    """A shared setting that guards against mistakes and changes nothing that is trained.

    Why optional: it is written to settings.json only when it differs from its default
    (``ordered``), so adding a guard to the contract reruns no finished run.
    """
    return Setting(name, kind, help, default=default, shared=True, optional=True,
                   guard=True, omit_default=True, **limits)


def _extra(name: str, kind: type, default: Any, help: str) -> Setting:
    """A shared setting for what else a run writes beside its results (another log
    format): it changes nothing that is trained or measured.

    Why optional, as a guard: written to settings.json only off its default, so adding it
    to the contract reruns no finished run; set on, it is a setting like any other (in the
    rules' params: the runs it belongs to retrain, to write what it asks for).
    """
    return Setting(name, kind, help, default=default, shared=True, optional=True,
                   omit_default=True)


def _shared(name: str, kind: type, default: Any, help: str, **limits: Any) -> Setting:
    return Setting(name, kind, help, default=default, shared=True, **limits)


def _init(name: str, kind: type, default: Any, help: str, **limits: Any) -> Setting:
    """A shared setting of a run that starts from an existing model (``init_from``,
    docs/transfer.md). Written to settings.json only when not at its default, so adding
    these settings reruns no finished run; a run starting elsewhere has another
    settings.json, hence other params and another checkpoint digest (it reruns)."""
    return Setting(name, kind, help, default=default, shared=True, optional=True,
                   omit_default=True, init=True, **limits)


def _recipe(name: str, kind: type, help: str, **limits: Any) -> Setting:
    """A shared setting whose default is the architecture's recipe value
    (``symato.models.registry.Recipe``); settings.json always holds the value used."""
    return Setting(name, kind, help + "; default: the architecture's recipe", default=RECIPE,
                   shared=True, from_recipe=True, **limits)


def _varied(name: str, short: str, kind: type, default: Any, help: str,
            **limits: Any) -> Setting:
    """A shared setting a sub-grid may vary (``vary:``); ``short`` names it in run names."""
    return Setting(name, kind, help, default=default, shared=True, short=short, **limits)


# Every key of settings.json, in the order it is written (and passed on command lines).
SETTINGS: tuple[Setting, ...] = (
    Setting("tokenizer", str, "tokenizer name (results/vocab/{tokenizer}.json)"),
    Setting("run", str, "run name, e.g. rwkv4-L4-D128-T200k"),
    Setting("arch", str, "architecture (a name of symato.models.registry)"),
    Setting("n_layer", int, "number of blocks", minimum=1),
    Setting("n_embd", int, "model width", minimum=1),
    Setting("tokens", int, "training token budget", minimum=1),
    Setting("steps", int, "optimizer steps = ceil(tokens / (batch_size * ctx_len))", minimum=1),
    Setting("text_bytes", int, "byte-budget runs: UTF-8 bytes of training text asked for",
            minimum=1, optional=True),
    Setting("unique_bytes", int, "repeated-data runs: UTF-8 bytes of unique text the "
            "text_bytes are drawn from (a fixed prefix of the shuffled train split, "
            "symato.data.loader.unique_subset), trained in text_bytes / unique_bytes epochs",
            minimum=1, optional=True),
    _shared("ctx_len", int, 128, "training window in tokens", minimum=1),
    _shared("batch_size", int, 16, "global batch (windows) per optimizer step", minimum=1),
    _shared("grad_accum", int, 1, "micro-batches per step; must divide batch_size", minimum=1),
    _varied("lr", "lr", float, 0.004, "peak learning rate", above=0),
    _varied("lr_min", "lrmin", float, 0.0004, "learning rate at the end of the decay", above=0),
    _varied("warmup", "wu", float, 0.05, "linear warmup, as a share of the run's steps",
            minimum=0, below=1),
    _shared("schedule", str, "cosine", "learning-rate decay after warmup: cosine and "
            "exponential over the whole run; wsd = warmup, stable (constant lr), then a "
            "1-sqrt decay over the last 'decay' share of the steps (a WSD sub-grid trains "
            "one stable run and branches every budget off it, docs/training.md)",
            choices=("cosine", "exponential", "wsd")),
    Setting("decay", float, "schedule wsd: share of the run's steps in the final 1-sqrt decay "
            "to lr_min (0: none, the stable run of WSD branches); a WSD run's name says it "
            "(-wsd0.2), so a WSD run never shares a name with a cosine one", default=0.2,
            shared=True, optional=True, wsd_only=True, minimum=0, below=1, short="wsd"),
    Setting("warmup_steps", int, "schedule wsd: warmup in steps, in place of the share "
            "'warmup' (WSD branches share their stable run's warmup)", optional=True,
            minimum=0),
    Setting("branches", dict, "stable run of WSD branches: branch run -> the step at which "
            "the run saves its resumable state for it (DIR/branches/{run}.pt)", optional=True),
    Setting("branch_from", str, "WSD branch: the stable run's saved state it starts from",
            optional=True),
    Setting("recipe", str, "the architecture's training recipe these settings follow "
            "(symato.models.registry.RECIPES; its per-parameter rules apply)"),
    _recipe("weight_decay", float, "AdamW weight decay of the recipe's decayed parameters",
            minimum=0),
    _recipe("beta1", float, "AdamW beta1", minimum=0, below=1),
    _recipe("beta2", float, "AdamW beta2", minimum=0, below=1),
    _recipe("eps", float, "AdamW epsilon", above=0),
    _recipe("l2wrap", float, "L2Wrap numerator: the largest logit of each token gets the "
            "gradient l2wrap / (B T) x its value; 0 = off", minimum=0),
    _recipe("layerwise_lr", bool, "apply the recipe's per-parameter learning-rate "
            "multipliers (false: all 1)"),
    _shared("grad_clip", float, 1.0, "max gradient norm; 0 = off", minimum=0),
    _varied("seed", "s", int, 1234, "random seed (init and data order); a sub-grid's "
            "vary: {seed: [...]} trains replicates", minimum=0),
    _shared("precision", str, "auto", "auto = bf16 autocast on a CUDA device with bf16, "
            "else fp32; bf16 where the device cannot is an error",
            choices=("auto", "fp32", "bf16")),
    _shared("compile", bool, False, "torch.compile the model"),
    _shared("wkv_backend", str, "auto", "the WKV operator of RWKV runs: auto = the compiled "
            "kernel of the device (a kernel that cannot be built stops the run), cpu|cuda by "
            "name, torch = the ~100x slower pure-PyTorch loop; unused by other architectures",
            choices=("auto", "cuda", "cpu", "torch")),
    _shared("eval_interval", int, 25, "steps between validation evals; 0 = end only", minimum=0),
    _shared("eval_windows", int, 16, "validation windows per training-time eval", minimum=1),
    _shared("log_interval", int, 1, "steps between metrics.jsonl lines (each holds the means of "
            "its steps; the device is read once per line)", minimum=1),
    _shared("checkpoint_steps", int, 50, "checkpoint every N steps; 0 = off", minimum=0),
    _shared("checkpoint_minutes", float, 10, "checkpoint every M minutes; 0 = off", minimum=0),
    _shared("device", str, "auto", "auto = cuda when the run holds a GPU, else cpu",
            choices=("auto", "cpu", "cuda")),
    _shared("threads", int, 1, "torch CPU threads per run (fixed: determinism)", minimum=1),
    _shared("head_size", int, 16, "attention head width: n_head = n_embd / head_size",
            minimum=1),
    _varied("split_syllables", "split", float, 0.0, "symato+N: probability that a whole "
            "syllable of a training window is written as sym + marktone", minimum=0, below=1),
    _guard("max_epochs", float, 1.0, "most passes a run's budget may make over the train "
           "split's text (tokens / train tokens, or bytes / train bytes); a budget beyond "
           "it is a config error. Raise it for a study of repeated data", above=0),
    _guard("allow_large", bool, False, "allow a run beyond the sanity limits (about "
           "1e10 block parameters, 12 x n_layer x n_embd^2; 1e11 tokens or bytes of text)"),
    _extra("tensorboard", bool, False, "also write TensorBoard event files of the "
           "metrics.jsonl scalars into the run's tb/ folder (needs the extra "
           "symato[tensorboard])"),
    _init("init_from", str, "", "start from an existing model instead of random weights: "
          "run:PATH (a run folder, its model.pt, or a training state checkpoint.pt), "
          "rwkv-pth:PATH (RWKV-4 / RWKV-7 x070 .pth), hf:PATH (a Hugging Face folder: "
          "config.json + safetensors); a bare path is recognized. Empty: random init"),
    _init("init_tokenizer", str, "", "init_from's tokenizer when the source does not carry "
          "it: rwkv-world, a symato vocabulary file, a tokenizer.json or a folder holding "
          "one. Empty: the source's own (a run's vocabulary, an HF folder's tokenizer.json)"),
    _init("init_transplant", str, "compose", "a source tokenizer other than the run's: "
          "compose (rows of target ids the source spells with several tokens are the mean "
          "of theirs) or random (the control); copied rows are copied either way",
          choices=("compose", "random")),
    _init("init_optimizer", bool, False, "restore the AdamW state of init_from (only a "
          "training state of this pipeline with the run's vocabulary has one); false: a "
          "fresh optimizer"),
    _init("init_warmup", bool, True, "a run from init_from warms its learning rate up "
          "again (its own schedule from step 0); false: no warmup, the peak lr at once"),
    _init("train_layers", str, "all", "the parameters trained: all, head (final norm and "
          "output), embeddings+head, last-N (the last N blocks and the head); the rest "
          "stay as initialized"),
    Setting("shards_dir", str, "token shards folder (manifest.json, {split}/*.arrow)"),
    Setting("vocab_file", str, "vocabulary file, embedded into the final model"),
)
SPEC: dict[str, Setting] = {s.name: s for s in SETTINGS}
# The per-run keys of WSD stable and branch runs (symato.run.wsd): set by the grid.
WSD_KEYS = ("warmup_steps", "branches", "branch_from")
# What a byte-budget run leaves open until its tokenizer's shard manifest exists.
RESOLVED_KEYS = ("tokens", "steps")
# Sanity limits (docs/training.md, "Guards"): a run beyond them needs allow_large: true.
# The GPU grid's largest run (L12-D768, 700 MB of text) is far below both.
MAX_PARAMS = 10**10  # block parameters, estimated by block_params()
MAX_TOKENS = 10**11  # training tokens; a byte budget's bytes of text are held to it too


def shared_names() -> tuple[str, ...]:
    """The settings ``train.settings`` and ``train.arch_overrides`` may set."""
    return tuple(s.name for s in SETTINGS if s.shared)


def varied_names() -> dict[str, str]:
    """Settings a sub-grid may vary, with the short code that names them in run names."""
    return {s.name: s.short for s in SETTINGS if s.short}


def varied_schema() -> dict[str, Any]:
    """The JSON schema of a sub-grid's ``vary:`` (setting -> list of values)."""
    props = {s.name: {"type": "array", "minItems": 1, "items": s.json_schema()}
             for s in SETTINGS if s.short}
    for prop in props.values():
        prop["items"].pop("default", None)
    return {"type": "object", "additionalProperties": False, "properties": props}


def shared_schema() -> dict[str, Any]:
    """The JSON schema of ``train.settings`` (filled into the workflow's train schema)."""
    return object_schema(s for s in SETTINGS if s.shared)


def default_settings(
    *, tokenizer: str, arch: str, n_layer: int, n_embd: int, tokens: int, shards_dir: str,
    vocab_file: str, run: str | None = None, **shared: Any,
) -> dict[str, Any]:
    """A complete, checked settings dict for one run outside the grid (tests, benchmarks):
    the shared defaults with ``shared`` on top; steps from ``tokens``; a plain run name."""
    unknown = sorted(set(shared) - set(shared_names()) - set(RESOLVED_KEYS) - set(WSD_KEYS))
    if unknown:
        raise SymatoError(f"default_settings: unknown settings {unknown}")
    values = with_recipe({s.name: s.default for s in SETTINGS if s.shared} | shared, arch,
                         "default_settings")
    values.setdefault("steps", steps_for(tokens, values))
    settings = ordered({**values, "tokenizer": tokenizer, "arch": arch, "n_layer": n_layer,
                        "n_embd": n_embd, "tokens": tokens, "shards_dir": shards_dir,
                        "vocab_file": vocab_file,
                        "run": run or f"{arch}-L{n_layer}-D{n_embd}-T{tokens}"})
    check_settings(settings, "default_settings")
    return settings


def with_recipe(values: dict[str, Any], arch: str, where: str) -> dict[str, Any]:
    """``values`` with ``recipe`` set to ``arch``'s recipe name and every recipe setting
    that is missing, null or ``"recipe"`` set to the recipe's value (a copy)."""
    from symato.models.registry import recipe_of

    recipe = recipe_of(arch, where)
    out = dict(values)
    for key, value in recipe.settings().items():
        if out.get(key, RECIPE) in (RECIPE, None):
            out[key] = value
    out["recipe"] = recipe.name
    return out


def ordered(settings: dict[str, Any]) -> dict[str, Any]:
    """``settings`` in the contract's key order, whatever order it was built in, without
    the guards and extras that are at their default.

    Why: Snakemake compares a rule's params as text, so the same settings must always
    be written the same way, or a config with its keys reordered would rerun every run.
    """
    wsd = settings.get("schedule") == "wsd"
    return {s.name: settings[s.name] for s in SETTINGS if s.name in settings
            and not (s.omit_default and settings[s.name] == s.default)
            and not (s.wsd_only and not wsd)}


def setting(settings: dict[str, Any], name: str) -> Any:
    """A setting's value, or its default where it is left out (a guard at its default)."""
    return settings.get(name, SPEC[name].default)


def check_settings(settings: dict[str, Any], where: str, pending: tuple[str, ...] = ()) -> None:
    """Reject missing, unknown or out-of-range settings, naming the key and ``where``.

    ``pending`` keys may be absent (a byte-budget run before its tokens are resolved).
    """
    required = {s.name for s in SETTINGS if not s.optional}
    missing = sorted(required - set(settings) - set(pending))
    unknown = sorted(set(settings) - set(SPEC))
    if missing or unknown:
        raise SymatoError(f"{where}: missing settings {missing}, unknown settings {unknown}")
    for key, value in settings.items():
        SPEC[key].check(value, where)
    from symato.models.registry import get_architecture

    entry = get_architecture(settings["arch"], where)
    entry.check_shape(settings, where)
    if entry.recipe is not None and settings["recipe"] != entry.recipe.name:
        raise SymatoError(f"{where}: recipe {settings['recipe']!r} is not the {entry.name} "
                          f"recipe {entry.recipe.name!r} (settings written by another version?)")
    if settings["batch_size"] % settings["grad_accum"]:
        raise SymatoError(f"{where}: batch_size {settings['batch_size']} is not divisible by "
                          f"grad_accum {settings['grad_accum']}")
    if not settings["lr_min"] <= settings["lr"]:
        raise SymatoError(f"{where}: need lr_min <= lr, got lr_min={settings['lr_min']}, "
                          f"lr={settings['lr']}")
    check_wsd(settings, where)
    check_unique(settings, where)
    check_init(settings, where)
    backend, device = settings.get("wkv_backend"), settings.get("device")
    if {backend, device} == {"cpu", "cuda"}:  # caught here, not in the job after queueing
        raise SymatoError(f"{where}: wkv_backend {backend!r} cannot run on device {device!r}; "
                          "use wkv_backend auto (the compiled kernel of the run's device)")
    check_scale(settings, where)


# ----------------------------------------------------------------------------- schedule
def warmup_steps_of(settings: dict[str, Any]) -> int:
    """Warmup steps: ``warmup_steps`` where set (WSD branches), else the share ``warmup``
    of the run's steps, rounded.

    Why a share: a fixed step count is a different part of every run in a grid whose
    budgets span 30x, which biases small-budget runs (mostly warmup) against large ones.
    WSD branches instead share one warmup, their stable run's (``symato.run.wsd``).
    """
    if "warmup_steps" in settings:
        return int(settings["warmup_steps"])
    if setting(settings, "init_from") and not setting(settings, "init_warmup"):
        return 0
    return round(settings["warmup"] * settings["steps"])


def decay_steps_of(steps: int, decay: float) -> int:
    """Steps of a WSD run's final decay: the share ``decay`` of ``steps``, rounded, at
    least 1 when ``decay`` > 0 (a decay that rounds to nothing would silently skip it)."""
    return max(1, round(decay * steps)) if decay > 0 else 0


def decay_start(settings: dict[str, Any]) -> int:
    """The first decaying step of a WSD run (0-based): ``steps - decay_steps``; the state
    after this many steps is where its branch leaves the stable run."""
    return settings["steps"] - decay_steps_of(settings["steps"], setting(settings, "decay"))


def check_wsd(settings: dict[str, Any], where: str) -> None:
    """The WSD keys fit together: only on schedule wsd, warmup ends before the decay, a
    stable run (``branches``) has no decay and ends at its last branch point."""
    wsd_keys = sorted(k for k in WSD_KEYS if k in settings)
    if settings.get("schedule") != "wsd":
        if wsd_keys:
            raise SymatoError(f"{where}: {wsd_keys} need schedule 'wsd', got "
                              f"{settings.get('schedule')!r}")
        return
    branches = settings.get("branches")
    if branches is not None:
        steps = list(branches.values())
        if not branches or not all(isinstance(n, str) for n in branches) or not all(
                isinstance(v, int) and not isinstance(v, bool) and v >= 1 for v in steps):
            raise SymatoError(f"{where}: branches must map run names to steps >= 1, got "
                              f"{branches!r}")
        if "branch_from" in settings or setting(settings, "decay") != 0:
            raise SymatoError(f"{where}: a stable run (branches) has decay 0 and no "
                              "branch_from")
        if "steps" in settings and max(steps) != settings["steps"]:
            raise SymatoError(f"{where}: a stable run trains to its last branch point "
                              f"{max(steps)}, but steps is {settings['steps']}")
    if "steps" in settings and warmup_steps_of(settings) > decay_start(settings):
        raise SymatoError(f"{where}: warmup ({warmup_steps_of(settings)} steps) runs into the "
                          f"decay (from step {decay_start(settings)} of {settings['steps']}); "
                          "lower warmup or decay (WSD: warmup + decay must stay below 1)")


TRAIN_LAYERS = re.compile(r"all|head|embeddings\+head|last-([1-9][0-9]*)")


def check_train_layers(value: str, n_layer: int, where: str) -> None:
    """``all``, ``head``, ``embeddings+head`` or ``last-N`` with N <= n_layer."""
    match = TRAIN_LAYERS.fullmatch(value)
    if not match:
        raise SymatoError(f"{where}: train_layers {value!r} is not one of all, head, "
                          "embeddings+head, last-N")
    if match.group(1) and int(match.group(1)) > n_layer:
        raise SymatoError(f"{where}: train_layers {value!r}: the model has {n_layer} layers")


def check_init(settings: dict[str, Any], where: str) -> None:
    """The init settings fit together, and the source's header (a run's settings.json,
    a Hugging Face config.json; JSON only) fits the run's architecture and shape."""
    check_train_layers(setting(settings, "train_layers"), settings["n_layer"], where)
    if not setting(settings, "init_from"):
        used = sorted(s.name for s in SETTINGS if s.init and s.name != "train_layers"
                      and s.name in settings and settings[s.name] != s.default)
        if used:
            raise SymatoError(f"{where}: {used} need init_from (a model to start from)")
        return
    from symato.interop.imports import check_header

    check_header(settings, where)


def check_unique(settings: dict[str, Any], where: str) -> None:
    """A repeated-data run (``unique_bytes``) has a byte budget at least as large, and a
    cosine or exponential schedule (WSD branches share one stable run's data order)."""
    if "unique_bytes" not in settings:
        return
    if "text_bytes" not in settings:
        raise SymatoError(f"{where}: unique_bytes needs a budget in bytes of text "
                          "(text_bytes, a sub-grid's bytes:)")
    if settings["unique_bytes"] > settings["text_bytes"]:
        raise SymatoError(f"{where}: unique_bytes {settings['unique_bytes']} is more than the "
                          f"text trained on, text_bytes {settings['text_bytes']}")
    if settings.get("schedule") == "wsd":
        raise SymatoError(f"{where}: unique_bytes (repeated epochs) is not available with "
                          "schedule wsd")


# ----------------------------------------------------------------------------- guards
def block_params(n_layer: int, n_embd: int) -> int:
    """Parameters of a model's blocks, embeddings left out: 12 x n_layer x n_embd².

    Why an estimate: counting exactly means building the model (importing torch), which
    the Snakefile must not do while parsing. Every registered architecture is within
    about 10% above it (more at tiny widths): a Transformer block holds 12 d² weights.
    """
    return 12 * n_layer * n_embd**2


def check_scale(settings: dict[str, Any], where: str) -> None:
    """Refuse a run beyond the sanity limits unless its ``allow_large`` is true."""
    if setting(settings, "allow_large"):
        return
    params = block_params(settings["n_layer"], settings["n_embd"])
    counts = [("block parameters (12 x n_layer x n_embd^2)", params, MAX_PARAMS)]
    counts += [(label, settings[key], MAX_TOKENS) for key, label in
               (("tokens", "training tokens"), ("text_bytes", "bytes of training text"))
               if key in settings]
    for label, count, limit in counts:
        if count > limit:
            raise SymatoError(f"{where}: {count:.3g} {label} is beyond the sanity limit of "
                              f"{limit:.0e}; if this run is meant, set allow_large: true "
                              "(train.settings or train.arch_overrides; docs/training.md)")


def check_passes(settings: dict[str, Any], train: dict[str, int], source: str,
                 where: str) -> float:
    """Refuse a budget that passes over the train split's text more than ``max_epochs``
    times; returns the passes. ``train``: the split's ``tokens`` and ``bytes`` (from
    ``source``, a shard manifest).

    A repeated-data run (``unique_bytes``) names its repetition on purpose: it is held
    to its unique text fitting in the train split instead, and returns its epochs.
    """
    if "unique_bytes" in settings:
        if settings["unique_bytes"] > train["bytes"]:
            raise SymatoError(
                f"{where}: run {settings['tokenizer']}/{settings['run']}: its unique text of "
                f"{settings['unique_bytes']} bytes is more than the training text, which "
                f"holds {train['bytes']} bytes ({train['tokens']} tokens; train split of "
                f"{source}). Lower unique_bytes or use a bigger corpus")
        return settings["text_bytes"] / settings["unique_bytes"]
    unit = "bytes" if "text_bytes" in settings else "tokens"
    if train[unit] <= 0:
        raise SymatoError(f"{where}: run {settings['tokenizer']}/{settings['run']}: the train "
                          f"split of {source} holds no {unit}; nothing to train on")
    if unit == "bytes":
        budget, passes = f"{settings['text_bytes']} bytes of text", \
            settings["text_bytes"] / train["bytes"]
    else:
        budget, passes = f"{settings['tokens']} tokens", settings["tokens"] / train["tokens"]
    limit = setting(settings, "max_epochs")
    if passes > limit:
        raise SymatoError(
            f"{where}: run {settings['tokenizer']}/{settings['run']}: its budget of {budget} "
            f"is {passes:.4g} passes over the training text, which holds {train['bytes']} "
            f"bytes ({train['tokens']} tokens; train split of {source}), and max_epochs is "
            f"{limit:g}. Lower the budget or use a bigger corpus; a study of repeated data "
            f"sets max_epochs: {math.ceil(passes * 100) / 100:g} or more (train.settings or "
            "train.arch_overrides; docs/training.md)")
    return passes


def load_settings(path: str | Path) -> dict[str, Any]:
    """Read and check a settings.json (every required key of the contract, nothing else)."""
    settings = read_json(path, "settings file")
    if not isinstance(settings, dict):
        raise SymatoError(f"settings file {path} must hold a JSON object")
    check_settings(settings, f"settings file {path}")
    return settings


# ----------------------------------------------------------------------------- budgets
def steps_for(tokens: int, settings: dict[str, Any]) -> int:
    """Optimizer steps for a token budget: ceil(tokens / (batch_size * ctx_len)), >= 1."""
    return max(1, math.ceil(tokens / (settings["batch_size"] * settings["ctx_len"])))


def resolve_text_bytes(text_bytes: int, manifest_path: str | Path) -> tuple[int, dict[str, int]]:
    """Tokens worth ``text_bytes`` of training text for one tokenizer's shards.

    tokens = round(text_bytes * train tokens / train bytes), the train split's own
    bytes per token (end-of-text tokens included, as training windows include them).
    Returns (tokens, the train split's ``tokens`` and ``bytes``).
    """
    counts = train_split(manifest_path)
    return max(1, round(text_bytes * counts["tokens"] / counts["bytes"])), counts


def train_split(manifest_path: str | Path) -> dict[str, int]:
    """The ``tokens`` and ``bytes`` of a shard manifest's train split (checked)."""
    manifest = read_json(manifest_path, "shard manifest")
    splits = manifest.get("splits") if isinstance(manifest, dict) else None
    train = splits.get("train") if isinstance(splits, dict) else None
    if not isinstance(train, dict):
        raise SymatoError(f"shard manifest {manifest_path}: missing key 'splits.train'")
    counts = {}
    for key in ("tokens", "bytes"):
        value = train.get(key)
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise SymatoError(f"shard manifest {manifest_path}: key 'splits.train.{key}' must be "
                              f"a positive integer, got {value!r}")
        counts[key] = value
    return counts


# ----------------------------------------------------------------------------- command line
def command_args(settings: dict[str, Any], wsd_plan: dict[str, Any] | None = None) -> list[str]:
    """The ``symato settings`` options for ``settings``, in the contract's order.

    A byte-budget run gets ``--text-bytes N --manifest {shards_dir}/manifest.json`` in
    place of ``--tokens``/``--steps``; a byte-budget WSD run (branch or stable) also
    gets ``--wsd-plan JSON``, its ladder's budgets (``symato.run.wsd``).
    """
    args: list[str] = []
    byte_budget = "text_bytes" in settings
    for spec in SETTINGS:
        if spec.name not in settings or (byte_budget and spec.name in RESOLVED_KEYS):
            continue
        value = settings[spec.name]
        args += [f"--{spec.name.replace('_', '-')}", _option_text(value)]
    if byte_budget:
        args += ["--manifest", f"{settings['shards_dir']}/manifest.json"]
    if wsd_plan is not None:
        args += ["--wsd-plan", json.dumps(wsd_plan, sort_keys=True, separators=(",", ":"))]
    return args


def _option_text(value: Any) -> str:
    """A setting's value as its command-line text (parsed back by ``Setting.parse``)."""
    if isinstance(value, dict):
        return json.dumps(value, sort_keys=True, separators=(",", ":"))
    if isinstance(value, bool):
        return str(value).lower()
    return value if isinstance(value, str) else repr(value)


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="symato settings",
        description="Write one run's settings.json; every setting is a required option, "
        "except that a byte budget (--text-bytes N --manifest FILE) replaces --tokens and "
        "--steps, which are then computed from the manifest's train split.",
    )
    parser.add_argument("--out", required=True, help="settings.json to write")
    for spec in SETTINGS:
        required = not spec.optional and spec.name not in RESOLVED_KEYS
        parser.add_argument(f"--{spec.name.replace('_', '-')}", dest=spec.name, type=spec.parse,
                            required=required, help=spec.help)
    parser.add_argument("--manifest", type=Path,
                        help="with --text-bytes: the tokenizer's shards manifest.json")
    parser.add_argument("--wsd-plan", type=json.loads,
                        help="with --text-bytes, a WSD branch or stable run: its ladder's "
                        'budgets as JSON, {"decay": D, "budgets": {RUN: BYTES, ...}}')
    return parser


def main(argv: list[str]) -> int:
    """``symato settings --out FILE --KEY VALUE ...``: check and write settings.json."""
    args = vars(_parser().parse_args(argv))
    out = Path(args.pop("out"))
    where = f"symato settings (for {out})"
    manifest = args.pop("manifest")
    wsd_plan = args.pop("wsd_plan")
    args = {k: v for k, v in args.items() if v is not None or not SPEC[k].optional}
    if args.get("text_bytes") is None:
        args.pop("text_bytes", None)
        if manifest is not None or None in (args["tokens"], args["steps"]):
            raise SymatoError(f"{where}: give --tokens and --steps, or --text-bytes and "
                              f"--manifest (a byte budget), not a mix")
    else:
        if manifest is None or (args["tokens"], args["steps"]) != (None, None):
            raise SymatoError(f"{where}: --text-bytes needs --manifest and replaces --tokens "
                              f"and --steps")
        args = _resolve(args, manifest, where)
        if wsd_plan is not None:
            from symato.run.wsd import resolve_plan

            args = resolve_plan(args, wsd_plan, lambda n: steps_for(
                resolve_text_bytes(n, manifest)[0], args))
    if wsd_plan is not None and "text_bytes" not in args:
        raise SymatoError(f"{where}: --wsd-plan is for byte budgets (--text-bytes)")
    settings = ordered(args)
    check_settings(settings, where)
    write_json_atomic(out, settings)
    return 0


def _resolve(args: dict[str, Any], manifest: Path, where: str) -> dict[str, Any]:
    """A byte-budget run's settings with ``tokens`` and ``steps`` filled in from ``manifest``."""
    check_settings({k: v for k, v in args.items() if v is not None}, where, RESOLVED_KEYS)
    tokens, train = resolve_text_bytes(args["text_bytes"], manifest)
    args["tokens"], args["steps"] = tokens, steps_for(tokens, args)
    print(f"{args['text_bytes']} bytes of text at {train['bytes'] / train['tokens']:.4f} bytes per "
          f"token (train split of {manifest}) -> tokens {tokens}, steps {args['steps']}")
    passes = check_passes(args, train, str(manifest), where)
    if "unique_bytes" in args:
        print(f"{passes:.4g} epochs over {args['unique_bytes']} bytes of unique text")
    elif passes > 1:
        print(f"note: {passes:.4g} passes over the training text (max_epochs "
              f"{setting(args, 'max_epochs'):g}): windows repeat text")
    return args
