"""The run grid: which training runs a config asks for, their names and settings.

Why a module (and not Python inside the rules): the Snakemake rules, the tests and the
report all need the same answer to "which runs exist and with which settings". The
grid is the union of the sub-grids in ``config["train"]["grids"]``; each sub-grid is a
product tokenizers x archs x sizes x budgets. A run is named
``{arch}-L{n_layer}-D{n_embd}-T{tokens}`` (e.g. ``rwkv4-L4-D128-T200k``) and lives in
``results/runs/{tokenizer}/{run}/``.

Budgets come in two kinds. A token budget (``tokens:``, run ``...-T200k``) fixes the
tokens trained on; a byte budget (``bytes:``, run ``...-B700k``) fixes the UTF-8 bytes of
training *text*, so tokenizers can be compared on the same amount of text. A byte
budget's tokens depend on the tokenizer's bytes per token, known only once the corpus
is tokenized: the grid leaves ``tokens`` and ``steps`` open and ``symato settings
--text-bytes N --manifest FILE`` resolves them from the shard manifest's train split.

A run's settings are the shared ``train.settings``, then the architecture's registry
defaults, then ``train.arch_overrides[arch]``, then the sub-grid's ``vary`` values, plus
the size, budget and data paths; the optimizer settings left at ``recipe`` take the
architecture's training recipe (``symato.models.registry.Recipe``). A varied setting
names the run: ``...-T300k-lr0.002`` (``symato.run.settings.varied_names`` gives each
setting's short name). ``vary: {seed: [...]}`` trains replicates (``...-T300k-s2``); a
seed equal to the run's configured seed adds no suffix, so that run keeps its name.
The config must already be complete (``symato.config.prepare``
fills every default).

Repeated text: a sub-grid with ``bytes:`` may add ``unique_bytes:``, the unique text each
budget is drawn from; every pair with unique bytes below the budget is a run trained in
``bytes / unique_bytes`` epochs over a fixed subset of the train split, named by both
(``rwkv4-L1-D32-B300k-U30k``; docs/training.md "Repeated epochs"). A pair whose unique text
equals its budget is the fresh-data run of that budget (``...-B300k``, shared with the
other studies); a pair with more unique text than budget is no run.

Every run is checked as it is expanded, so a config error stops the Snakefile before any
job: sizes and budgets beyond the sanity limits (``symato.run.settings.check_scale``),
and, where a tokenizer's shards already exist, budgets that repeat their training text
more than ``max_epochs`` times (:func:`check_budgets`).
"""

from __future__ import annotations

import itertools
import re
from pathlib import Path
from typing import Any

import numpy as np

from symato.errors import SymatoError
from symato.models.registry import ARCHITECTURES, get_architecture
from symato.run.settings import (
    RESOLVED_KEYS,
    SPEC,
    check_passes,
    check_settings,
    ordered,
    steps_for,
    train_split,
    varied_names,
    with_recipe,
)
from symato.run.wsd import link_branches

_SIZE_RE = re.compile(r"^L([1-9][0-9]*)-D([1-9][0-9]*)$")


def parse_size(name: str) -> tuple[int, int]:
    """``"L4-D128"`` -> ``(4, 128)``; anything else is a config error naming the size."""
    match = _SIZE_RE.match(name)
    if not match:
        raise SymatoError(
            f"config train.grids: size {name!r} is not of the form L<layers>-D<width>"
        )
    return int(match.group(1)), int(match.group(2))


def format_tokens(tokens: int) -> str:
    """A short, exact count for run names: 200000 -> 200k, 3000000 -> 3M."""
    for suffix, unit in (("G", 10**9), ("M", 10**6), ("k", 10**3)):
        if tokens % unit == 0:
            return f"{tokens // unit}{suffix}"
    return str(tokens)


def format_value(value: float) -> str:
    """A varied setting's value in a run name: plain decimals, no exponent (0.00001),
    so that "-" only ever separates name fields."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise SymatoError(f"run names: cannot format {value!r}")
    return np.format_float_positional(float(value), trim="-")


def run_name(
    arch: str, n_layer: int, n_embd: int, tokens: int | None = None,
    text_bytes: int | None = None, varied: dict[str, Any] | None = None,
    unique_bytes: int | None = None, init: str | None = None,
) -> str:
    """The folder name of one run: ``rwkv4-L4-D128-T200k`` (tokens) or ``...-B700k`` (bytes),
    ``...-B700k-U70k`` (bytes drawn from that much unique text: repeated epochs),
    ``...-from_en`` (started from the model its sub-grid's ``init`` names ``en``), then
    ``-{short}{value}`` for each varied setting in name order (``...-lr0.002``)."""
    if (tokens is None) == (text_bytes is None):
        raise SymatoError("run_name: give exactly one of tokens and text_bytes")
    budget = f"T{format_tokens(tokens)}" if tokens is not None else f"B{format_tokens(text_bytes)}"
    if unique_bytes is not None and unique_bytes != text_bytes:
        budget += f"-U{format_tokens(unique_bytes)}"
    if init is not None:
        budget += f"-{INIT_PREFIX}{init}"
    shorts = varied_names()
    suffix = "".join(f"-{shorts[key]}{format_value(varied[key])}" for key in sorted(varied or {}))
    return f"{arch}-L{n_layer}-D{n_embd}-{budget}{suffix}"


INIT_PREFIX = "from_"  # run-name part of a sub-grid's init: ...-B300k-from_en
# A sub-grid's ``init`` keys -> run settings (docs/transfer.md); ``from`` may name the
# run's {arch}, {size}, {n_layer}, {n_embd} and {tokenizer}.
INIT_KEYS = {"from": "init_from", "tokenizer": "init_tokenizer",
             "transplant": "init_transplant", "optimizer": "init_optimizer",
             "warmup": "init_warmup", "train_layers": "train_layers"}
_SUFFIX_RE = re.compile(r"^([a-z]+)([0-9]+(?:\.[0-9]+)?)$")


def split_name(run: str) -> tuple[str, dict[str, str]]:
    """The inverse of :func:`run_name`'s suffixes: a run name's head
    (``arch-Ln-Dd-Bbudget``) and its varied settings (name -> value as written), e.g.
    ``rwkv4-L1-D32-B100k-lr0.002-s2`` -> ``("rwkv4-L1-D32-B100k", {"lr": "0.002",
    "seed": "2"})``."""
    by_short = {short: name for name, short in varied_names().items()}
    fields, varied = run.split("-"), {}
    while len(fields) > 1 and (match := _SUFFIX_RE.match(fields[-1])) \
            and match.group(1) in by_short:
        varied[by_short[match.group(1)]] = match.group(2)
        fields.pop()
    return "-".join(fields), varied


def join_name(head: str, varied: dict[str, str]) -> str:
    """The inverse of :func:`split_name`: suffixes in :func:`run_name`'s order."""
    shorts = varied_names()
    return head + "".join(f"-{shorts[key]}{varied[key]}" for key in sorted(varied))


def run_name_pattern() -> str:
    """A regular expression that matches every run name of every registered architecture."""
    archs = "|".join(re.escape(name) for name in ARCHITECTURES)
    shorts = "|".join(re.escape(s) for s in sorted(set(varied_names().values()),
                                                  key=lambda s: (-len(s), s)))
    return (rf"({archs})-L[0-9]+-D[0-9]+-[TB][0-9]+[kMG]?(-U[0-9]+[kMG]?)?"
            rf"(-{INIT_PREFIX}[a-z0-9]+)?(-({shorts})[0-9.]+)*")


_BUDGET_PART = re.compile(r"-[TB][0-9]+[kMG]?(-U[0-9]+[kMG]?)?(?=-|$)")
_SEED_LR_PART = re.compile(r"-(s|lr|lrmin)[0-9][0-9.]*(?=-|$)")
_SIZE_PART = re.compile(r"-L[0-9]+-D[0-9]+(?=-|$)")
EVAL_GROUPINGS = ("run", "shape", "architecture")


def eval_group(run: str, by: str = "shape") -> str:
    """The evaluation group of a grid run (config ``eval.group_by``):

    - ``shape``: its name without budget, seed and learning rate
      (``rwkv4-L2-D64-B30k-lr0.002-s2`` -> ``rwkv4-L2-D64``);
    - ``architecture``: without the size too (-> ``rwkv4``);
    - ``run``: the run alone (its own name).

    Other varied settings (``-split0.1``, ``-wsd0.2``) keep their own groups. Why groups:
    the runs of a group share one evaluation process (rules/eval.smk), which reads the
    validation text, the tokenizer and the restoration input once; a retrained run
    re-evaluates its group, so large models on a cluster want small groups (``run``) and
    the small models of a 2-core demo large ones. A group's name never has a budget, so
    it is never a run's name.
    """
    if by not in EVAL_GROUPINGS:
        raise SymatoError(f"eval.group_by must be one of {EVAL_GROUPINGS}, got {by!r}")
    if by == "run":
        return run
    group = _SEED_LR_PART.sub("", _BUDGET_PART.sub("", run, count=1))
    return _SIZE_PART.sub("", group, count=1) if by == "architecture" else group


def eval_groups(runs: list[dict[str, Any]], by: str = "shape"
                ) -> dict[tuple[str, str], list[str]]:
    """(tokenizer, group) -> the names of its runs, in grid order."""
    groups: dict[tuple[str, str], list[str]] = {}
    for r in runs:
        groups.setdefault((r["tokenizer"], eval_group(r["run"], by)), []).append(r["run"])
    return groups


def shared_settings(train: dict[str, Any], arch: str) -> dict[str, Any]:
    """``train.settings``, the architecture's defaults, then ``train.arch_overrides[arch]``;
    recipe settings left at ``recipe`` (or null) take the architecture's recipe value."""
    merged = {**train["settings"], **get_architecture(arch).defaults,
              **train["arch_overrides"].get(arch, {})}
    return with_recipe(merged, arch, f"config train (arch {arch})")


def run_settings(
    config: dict, tokenizer: str, arch: str, size: str, tokens: int | None,
    results: str = "results", text_bytes: int | None = None, where: str = "config train",
    varied: dict[str, Any] | None = None, fixed: dict[str, Any] | None = None,
    unique_bytes: int | None = None, init: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """The settings of one run, in the contract's key order (``symato.run.settings``).

    For a byte budget (``text_bytes``) ``tokens`` and ``steps`` are left open;
    ``unique_bytes`` below it makes a repeated-data run (equal: the fresh run). ``fixed``:
    settings the sub-grid sets without naming them (its ``schedule``). ``init``: the
    sub-grid's model to start from (its ``name`` names the run). Errors start with
    ``where`` and name the run.
    """
    train = config["train"]
    n_layer, n_embd = parse_size(size)
    fixed = {**(fixed or {}), **init_settings(init, where, arch=arch, size=size,
                                              n_layer=n_layer, n_embd=n_embd,
                                              tokenizer=tokenizer)}
    configured = {**shared_settings(train, arch), **fixed}
    shared = {**configured, **(varied or {})}
    # A seed equal to the run's configured one names no replicate: that run keeps its
    # name (and is the same run as the one another sub-grid asks for without vary).
    named = {k: v for k, v in (varied or {}).items()
             if not (k == "seed" and v == configured["seed"])}
    if shared.get("schedule") == "wsd":  # the name says the schedule (-wsd0.2)
        named.setdefault("decay", shared.get("decay", SPEC["decay"].default))
    elif "decay" in named:
        raise SymatoError(f"{where}: 'decay' (varied {named['decay']}) is a setting of "
                          f"schedule wsd, but these runs' schedule is {shared['schedule']!r}: "
                          "give the sub-grid `schedule: wsd` or drop decay")
    if shared["device"] == "auto":  # a job that declared no GPU must not take one
        shared["device"] = "cuda" if int(train["gpus_per_run"]) > 0 else "cpu"
    if text_bytes is None:
        budget = {"tokens": int(tokens), "steps": steps_for(int(tokens), shared)}
    else:
        budget = {"text_bytes": int(text_bytes)}
        if unique_bytes is not None and unique_bytes != text_bytes:
            budget["unique_bytes"] = int(unique_bytes)
    settings = ordered({
        **shared,
        "tokenizer": tokenizer,
        "run": run_name(arch, n_layer, n_embd, tokens, text_bytes, named,
                        budget.get("unique_bytes"), init["name"] if init else None),
        "arch": arch,
        "n_layer": n_layer,
        "n_embd": n_embd,
        **budget,
        "shards_dir": f"{results}/shards/{tokenizer}",
        "vocab_file": f"{results}/vocab/{tokenizer}.json",
    })
    pending = RESOLVED_KEYS if text_bytes is not None else ()
    check_settings(settings, f"{where}: run {settings['run']}", pending=pending)
    return settings


def expand_grid(config: dict, results: str = "results") -> list[dict[str, Any]]:
    """All runs of a complete config, in a stable order, each once (WSD stable runs are
    not runs of the grid: ``symato.run.wsd.stable_runs`` lists them).

    Each entry has ``tokenizer``, ``run``, ``arch``, ``n_layer``, ``n_embd``, ``tokens``
    (None for a byte budget: resolved later), ``text_bytes`` (None for a token budget),
    ``grids`` (names of the sub-grids asking for it) and ``settings`` (the full dict, or
    for a byte budget all but ``tokens`` and ``steps``).
    """
    all_tokenizers = list(config["tokenizers"])
    runs: dict[tuple[str, str], dict[str, Any]] = {}
    for i, grid in enumerate(config["train"]["grids"]):
        where = f"train.grids[{i}]"
        tokenizers = all_tokenizers if grid["tokenizers"] == "all" else grid["tokenizers"]
        for tok in tokenizers:
            if tok not in all_tokenizers:
                raise SymatoError(
                    f"config {where}: tokenizer {tok!r} is not in tokenizers {all_tokenizers}"
                )
        points = itertools.product(tokenizers, grid["archs"], grid["sizes"],
                                   _budgets(grid, where), _variations(grid))
        for tok, arch, size, (tokens, text_bytes, unique), varied in points:
            s = run_settings(config, tok, arch, size, tokens, results, text_bytes,
                             where=f"config {where}", varied=varied, fixed=_fixed(grid),
                             unique_bytes=unique, init=grid.get("init"))
            entry = runs.setdefault((tok, s["run"]), _entry(s))
            if entry["settings"] != s:
                raise SymatoError(f"config {where}: run {tok}/{s['run']} is asked for again "
                                  f"with other settings")
            entry["grids"].append(grid.get("name", f"grid{i}"))
    # WSD runs become branches of stable runs (symato.run.wsd: entries gain "stable").
    return link_branches(list(runs.values()), results)


def init_settings(init: dict[str, Any] | None, where: str, **fields: Any) -> dict[str, Any]:
    """The run settings of a sub-grid's ``init`` (none without one): ``from`` with the
    run's fields filled in (``results/runs/{tokenizer}/{arch}-{size}-B3M``)."""
    if not init:
        return {}
    try:
        source = str(init["from"]).format(**fields)
    except (KeyError, IndexError, ValueError) as exc:
        raise SymatoError(f"{where}: init.from {init['from']!r}: {exc} is not one of "
                          f"{sorted(fields)}") from None
    out = {INIT_KEYS[k]: v for k, v in init.items() if k in INIT_KEYS}
    return {**out, "init_from": source}


def _fixed(grid: dict) -> dict[str, Any]:
    """Settings a sub-grid sets for all its runs without naming them: ``schedule``
    (``schedule: wsd`` makes its budgets branches of stable runs, docs/training.md)."""
    return {"schedule": grid["schedule"]} if "schedule" in grid else {}


def _variations(grid: dict) -> list[dict[str, Any]]:
    """Every combination of the sub-grid's ``vary`` values ([{}] when it varies nothing)."""
    vary = grid.get("vary") or {}
    keys = sorted(vary)
    return [dict(zip(keys, values, strict=True))
            for values in itertools.product(*(vary[k] for k in keys))]


def _budgets(grid: dict, where: str) -> list[tuple[int | None, int | None, int | None]]:
    """(tokens, text_bytes, unique_bytes) of one sub-grid: exactly one of its
    ``tokens``/``bytes``; with ``unique_bytes``, every (bytes, unique) pair with unique
    text up to the budget (unique_bytes None: fresh text)."""
    if ("tokens" in grid) == ("bytes" in grid):
        raise SymatoError(f"config {where}: give exactly one of the keys 'tokens' (token "
                          f"budgets) and 'bytes' (budgets in bytes of training text)")
    if "unique_bytes" in grid and "bytes" not in grid:
        raise SymatoError(f"config {where}: 'unique_bytes' (repeated epochs) needs budgets "
                          "in bytes of text ('bytes'), not 'tokens'")
    if "tokens" in grid:
        return [(int(t), None, None) for t in grid["tokens"]]
    if "unique_bytes" not in grid:
        return [(None, int(b), None) for b in grid["bytes"]]
    pairs = [(None, int(b), int(u)) for b in grid["bytes"] for u in grid["unique_bytes"]
             if u <= b]
    if not pairs:
        raise SymatoError(f"config {where}: every unique_bytes {grid['unique_bytes']} is more "
                          f"than every budget {grid['bytes']}; no run repeats its text")
    return pairs


def _entry(settings: dict[str, Any]) -> dict[str, Any]:
    keys = ("tokenizer", "run", "arch", "n_layer", "n_embd")
    return {**{k: settings[k] for k in keys}, "tokens": settings.get("tokens"),
            "text_bytes": settings.get("text_bytes"), "unique_bytes": settings.get("unique_bytes"),
            "grids": [], "settings": settings}


def check_budgets(runs: list[dict[str, Any]], results: str | Path = "results") -> None:
    """Refuse, before any job, a run whose budget passes over the training text of its
    tokenizer's existing shards more than ``max_epochs`` times.

    Only shards already built can say how much text there is; a byte-budget run whose
    shards do not exist yet is checked when ``symato settings`` resolves it. A manifest
    that cannot be read is left to the jobs that read it.
    """
    manifests: dict[str, dict[str, int] | None] = {}
    for r in runs:
        path = Path(results) / "shards" / r["tokenizer"] / "manifest.json"
        if r["tokenizer"] not in manifests:
            manifests[r["tokenizer"]] = _existing_split(path)
        train = manifests[r["tokenizer"]]
        if train is not None:
            check_passes(r["settings"], train, str(path),
                         f"config train.grids ({', '.join(r['grids'])})")


def _existing_split(manifest: Path) -> dict[str, int] | None:
    """The train split's counts of an existing, readable manifest; else None."""
    if not manifest.is_file():
        return None
    try:
        return train_split(manifest)
    except SymatoError:
        return None
