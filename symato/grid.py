"""The run grid: which training runs the config asks for, their names and settings.

Why a module (and not Python inside the rules): the Snakemake rules, the tests and the
report all need the same answer to "which runs exist and with which settings". The
grid is the union of the sub-grids in ``config["train"]["grids"]``; each sub-grid is a
product tokenizers x archs x sizes x budgets. A run is named
``{arch}-L{n_layer}-D{n_embd}-T{tokens}`` (e.g. ``rwkv-L4-D128-T200k``) and lives in
``results/runs/{tokenizer}/{run}/``.

Budgets come in two kinds. A token budget (``tokens:``, run ``...-T200k``) fixes the
tokens trained on; a byte budget (``bytes:``, run ``...-B700k``) fixes the UTF-8 bytes of
training *text*, so tokenizers can be compared on the same amount of text. A byte
budget's tokens depend on the tokenizer's bytes per token, known only once the corpus
is tokenized: the grid leaves ``tokens`` and ``steps`` open and ``symato run-settings
--text-bytes N --manifest FILE`` resolves them from the shard manifest's train split.

A run's settings are the shared ``train.settings`` with the arch's
``train.arch_overrides`` on top, plus the size, budget and data paths. Every setting
is passed to ``symato run-settings`` on the command line (rule ``params:``), so
changing one setting reruns exactly the runs whose settings changed.
"""

from __future__ import annotations

import argparse
import math
import re
import shlex
from collections.abc import Callable
from pathlib import Path
from typing import Any

from symato.errors import SymatoError
from symato.io import read_json, write_json_atomic

ARCHS = ("rwkv", "gpt", "rwkv7", "llama")
# Archs whose width is split into heads of head_size channels.
HEADED_ARCHS = ("gpt", "rwkv7", "llama")
SCHEDULES = ("cosine", "exponential")
PRECISIONS = ("auto", "fp32", "bf16")
DEVICES = ("auto", "cpu", "cuda")


def _bool(text: str) -> bool:
    """Parse a boolean written by ``settings_args`` (or by hand)."""
    lowered = str(text).strip().lower()
    if lowered in ("1", "true", "yes", "on"):
        return True
    if lowered in ("0", "false", "no", "off"):
        return False
    raise ValueError(f"not a boolean: {text!r}")


# Every key of settings.json: (type, help). The trainer requires exactly these keys.
SETTINGS_SPEC: dict[str, tuple[Callable[[str], Any], str]] = {
    "tokenizer": (str, "tokenizer name (results/vocab/{tokenizer}.json)"),
    "run": (str, "run name, e.g. rwkv-L4-D128-T200k"),
    "arch": (str, "architecture: rwkv, gpt, rwkv7 or llama"),
    "n_layer": (int, "number of blocks"),
    "n_embd": (int, "model width"),
    "n_head": (int, "heads = n_embd / head_size (GPT, Llama, RWKV-7; recorded for RWKV-4)"),
    "ctx_len": (int, "training window length in tokens"),
    "batch_size": (int, "global batch per optimizer step, in windows"),
    "grad_accum": (int, "micro-batches per optimizer step (per process)"),
    "tokens": (int, "training token budget"),
    "steps": (int, "optimizer steps = ceil(tokens / (batch_size * ctx_len))"),
    "lr": (float, "peak learning rate"),
    "lr_min": (float, "final learning rate of the decay"),
    "warmup_steps": (int, "linear warmup steps"),
    "schedule": (str, "learning-rate decay after warmup: cosine or exponential"),
    "weight_decay": (float, "AdamW weight decay (matrices only)"),
    "beta1": (float, "AdamW beta1"),
    "beta2": (float, "AdamW beta2"),
    "eps": (float, "AdamW epsilon"),
    "grad_clip": (float, "max gradient norm (0 = no clipping)"),
    "seed": (int, "random seed (init and data order)"),
    "precision": (str, "auto (fp32 on CPU, bf16 autocast on CUDA), fp32 or bf16"),
    "compile": (_bool, "wrap the model in torch.compile"),
    "eval_interval": (int, "steps between validation evaluations (0 = only at the end)"),
    "eval_windows": (int, "validation windows per evaluation during training"),
    "log_interval": (int, "steps between metrics.jsonl lines"),
    "checkpoint_steps": (int, "checkpoint every N steps (0 = off)"),
    "checkpoint_minutes": (float, "checkpoint every M minutes (0 = off)"),
    "device": (str, "auto, cpu or cuda"),
    "threads": (int, "torch CPU threads (fixed for reproducibility)"),
    "shards_dir": (str, "token shards folder (manifest.json, {split}/*.arrow)"),
    "vocab_file": (str, "vocabulary file, embedded into the final model"),
}
# Keys settings.json holds only for some runs. Why optional (not in SETTINGS_SPEC): token
# runs' settings.json and their run-settings command must stay exactly as before, or every
# finished token run would rerun.
OPTIONAL_SETTINGS: dict[str, tuple[Callable[[str], Any], str]] = {
    "text_bytes": (int, "byte-budget runs: UTF-8 bytes of training text the budget asks for"),
}
# What a byte-budget run leaves open until its tokenizer's manifest exists.
RESOLVED_KEYS = ("tokens", "steps")

# Settings that come from train.settings / train.arch_overrides in config.yaml.
SHARED_KEYS = (
    "ctx_len", "batch_size", "grad_accum", "lr", "lr_min", "warmup_steps", "schedule",
    "weight_decay", "beta1", "beta2", "eps", "grad_clip", "seed", "precision", "compile",
    "eval_interval", "eval_windows", "log_interval", "checkpoint_steps", "checkpoint_minutes",
    "device", "threads", "head_size",
)  # fmt: skip

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
    """A short, exact token count for run names: 200000 -> 200k, 3000000 -> 3M."""
    for suffix, unit in (("G", 10**9), ("M", 10**6), ("k", 10**3)):
        if tokens % unit == 0:
            return f"{tokens // unit}{suffix}"
    return str(tokens)


def run_name(
    arch: str, n_layer: int, n_embd: int, tokens: int | None = None,
    text_bytes: int | None = None,
) -> str:
    """The folder name of one run: ``rwkv-L4-D128-T200k`` (tokens) or ``...-B700k`` (bytes)."""
    if (tokens is None) == (text_bytes is None):
        raise SymatoError("run_name: give exactly one of tokens and text_bytes")
    budget = f"T{format_tokens(tokens)}" if tokens is not None else f"B{format_tokens(text_bytes)}"
    return f"{arch}-L{n_layer}-D{n_embd}-{budget}"


def _key(section: dict, key: str, where: str) -> Any:
    if key not in section:
        raise SymatoError(f"config {where}: missing key {key!r}")
    return section[key]


def run_settings(
    config: dict, tokenizer: str, arch: str, size: str, tokens: int | None,
    results: str = "results", text_bytes: int | None = None,
) -> dict[str, Any]:
    """The settings of one run: every key of ``SETTINGS_SPEC`` for a token budget; for a
    byte budget (``text_bytes``) ``text_bytes`` in place of ``tokens`` and ``steps``."""
    train = _key(config, "train", "")
    shared = dict(_key(train, "settings", "train"))
    shared.update(train.get("arch_overrides", {}).get(arch, {}))
    for key in SHARED_KEYS:
        _key(shared, key, "train.settings")
    n_layer, n_embd = parse_size(size)
    head_size = int(shared.pop("head_size"))
    if arch not in ARCHS:
        raise SymatoError(f"config train.grids: unknown arch {arch!r}; known: {list(ARCHS)}")
    if arch in HEADED_ARCHS and n_embd % head_size:
        raise SymatoError(
            f"config train: size {size} width {n_embd} is not divisible by head_size {head_size}"
        )
    if arch == "llama" and head_size % 2:
        raise SymatoError(f"config train: llama needs an even head_size (RoPE rotates pairs of "
                          f"dimensions), got {head_size}")
    n_head = max(1, n_embd // head_size)
    if shared["device"] == "auto":  # a job that declared no GPU must not take one
        shared["device"] = "cuda" if int(train.get("gpus_per_run", 0)) > 0 else "cpu"
    # Key order matters: Snakemake records params as text, so a token run's dict must
    # keep exactly this order or every finished run would rerun.
    if text_bytes is None:
        budget = {"tokens": int(tokens), "steps": steps_for(int(tokens), shared)}
    else:
        budget = {"text_bytes": int(text_bytes)}
    settings = {
        **shared,
        "tokenizer": tokenizer,
        "run": run_name(arch, n_layer, n_embd, tokens, text_bytes),
        "arch": arch,
        "n_layer": n_layer,
        "n_embd": n_embd,
        "n_head": n_head,
        **budget,
        "shards_dir": f"{results}/shards/{tokenizer}",
        "vocab_file": f"{results}/vocab/{tokenizer}.json",
    }
    pending = RESOLVED_KEYS if text_bytes is not None else ()
    check_settings(settings, "config train", pending=pending)
    return settings


def steps_for(tokens: int, settings: dict[str, Any]) -> int:
    """Optimizer steps for a token budget: ceil(tokens / (batch_size * ctx_len)), >= 1."""
    return max(1, math.ceil(tokens / (settings["batch_size"] * settings["ctx_len"])))


def resolve_text_bytes(text_bytes: int, manifest_path: str | Path) -> tuple[int, dict[str, int]]:
    """Tokens worth ``text_bytes`` of training text for one tokenizer's shards.

    tokens = round(text_bytes * train tokens / train bytes), the train split's own
    bytes per token (end-of-text tokens included, as training windows include them).
    Returns (tokens, the train split's ``tokens`` and ``bytes``).
    """
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
    return max(1, round(text_bytes * counts["tokens"] / counts["bytes"])), counts


SCHEMA_DIR = Path(__file__).resolve().parents[1] / "workflow" / "schemas"


def with_defaults(section: dict | None, schema_name: str) -> dict:
    """A copy of a config section with the schema's defaults filled in (two levels deep).

    Why here: Snakemake's ``validate`` does not apply defaults inside a ``$ref``'d
    section file, so the grid would see a bare section. Defaults still live only in the
    schema; this reads them from there.
    """
    import yaml

    schema = yaml.safe_load((SCHEMA_DIR / schema_name).read_text(encoding="utf-8"))
    out = dict(section or {})
    for key, sub in schema.get("properties", {}).items():
        if "default" in sub and key not in out:
            out[key] = sub["default"]
        ref = sub.get("$ref", "")
        if ref.startswith("#/$defs/") and isinstance(out.get(key), dict):
            props = schema["$defs"][ref.rsplit("/", 1)[1]].get("properties", {})
            out[key] = {k: v["default"] for k, v in props.items() if "default" in v} | out[key]
    return out


def expand_grid(config: dict, results: str = "results") -> list[dict[str, Any]]:
    """All runs of the config, in a stable order, each once.

    Each entry has ``tokenizer``, ``run``, ``arch``, ``n_layer``, ``n_embd``, ``tokens``
    (None for a byte budget: resolved later), ``text_bytes`` (None for a token budget),
    ``grids`` (names of the sub-grids asking for it) and ``settings`` (the full dict, or
    for a byte budget all but ``tokens`` and ``steps``).
    """
    config = {**config, "train": with_defaults(config.get("train"), "train.schema.yaml")}
    train = config["train"]
    all_tokenizers = list(config.get("tokenizers", []))
    runs: dict[tuple[str, str], dict[str, Any]] = {}
    for i, grid in enumerate(_key(train, "grids", "train")):
        where = f"train.grids[{i}]"
        tokenizers = _key(grid, "tokenizers", where)
        if tokenizers == "all":
            tokenizers = all_tokenizers
        for tok in tokenizers:
            if tok not in all_tokenizers:
                raise SymatoError(
                    f"config {where}: tokenizer {tok!r} is not in tokenizers {all_tokenizers}"
                )
            budgets = _budgets(grid, where)
            for arch in _key(grid, "archs", where):
                for size in _key(grid, "sizes", where):
                    for tokens, text_bytes in budgets:
                        s = run_settings(config, tok, arch, size, tokens, results, text_bytes)
                        entry = runs.setdefault((tok, s["run"]), _entry(s))
                        entry["grids"].append(grid.get("name", f"grid{i}"))
    return list(runs.values())


def _budgets(grid: dict, where: str) -> list[tuple[int | None, int | None]]:
    """(tokens, text_bytes) pairs of one sub-grid: exactly one of its ``tokens``/``bytes``."""
    if ("tokens" in grid) == ("bytes" in grid):
        raise SymatoError(f"config {where}: give exactly one of the keys 'tokens' (token "
                          f"budgets) and 'bytes' (budgets in bytes of training text)")
    if "tokens" in grid:
        return [(int(t), None) for t in grid["tokens"]]
    return [(None, int(b)) for b in grid["bytes"]]


def _entry(settings: dict[str, Any]) -> dict[str, Any]:
    keys = ("tokenizer", "run", "arch", "n_layer", "n_embd")
    return {**{k: settings[k] for k in keys}, "tokens": settings.get("tokens"),
            "text_bytes": settings.get("text_bytes"), "grids": [], "settings": settings}


def check_settings(settings: dict[str, Any], where: str, pending: tuple[str, ...] = ()) -> None:
    """Reject missing, unknown or out-of-range settings, naming the key and ``where``.

    ``pending`` keys may be absent (a byte-budget run before its tokens are resolved).
    """
    missing = sorted(set(SETTINGS_SPEC) - set(settings) - set(pending))
    unknown = sorted(set(settings) - set(SETTINGS_SPEC) - set(OPTIONAL_SETTINGS))
    if missing or unknown:
        raise SymatoError(f"{where}: missing settings {missing}, unknown settings {unknown}")
    if pending:  # check the rest with stand-ins for the open keys
        settings = {**{k: 1 for k in pending}, **settings}
    if "text_bytes" in settings and int(settings["text_bytes"]) < 1:
        raise SymatoError(f"{where}: text_bytes must be >= 1, got {settings['text_bytes']!r}")
    choices = {"arch": ARCHS, "schedule": SCHEDULES, "precision": PRECISIONS, "device": DEVICES}
    for key, allowed in choices.items():
        if settings[key] not in allowed:
            raise SymatoError(f"{where}: {key}={settings[key]!r}, expected one of {list(allowed)}")
    positive = ("n_layer", "n_embd", "n_head", "ctx_len", "batch_size", "grad_accum", "steps")
    for key in (*positive, "tokens", "threads", "eval_windows", "log_interval"):
        if int(settings[key]) < 1:
            raise SymatoError(f"{where}: {key} must be >= 1, got {settings[key]!r}")
    if settings["batch_size"] % settings["grad_accum"]:
        raise SymatoError(
            f"{where}: batch_size {settings['batch_size']} is not divisible by "
            f"grad_accum {settings['grad_accum']}"
        )
    if not 0 < settings["lr_min"] <= settings["lr"]:
        raise SymatoError(
            f"{where}: need 0 < lr_min <= lr, got lr_min={settings['lr_min']}, lr={settings['lr']}"
        )


def settings_args(settings: dict[str, Any]) -> str:
    """The ``symato run-settings`` arguments for ``settings`` (shell-quoted, stable order).

    A byte-budget run gets ``--text-bytes N --manifest {shards_dir}/manifest.json`` in
    place of ``--tokens``/``--steps``; a token run's arguments are exactly as they always were.
    """
    parts = []
    byte_budget = "text_bytes" in settings
    for key in SETTINGS_SPEC:
        if byte_budget and key in RESOLVED_KEYS:
            continue
        value = settings[key]
        text = str(value).lower() if isinstance(value, bool) else repr(value)
        if isinstance(value, str):
            text = value
        parts.append(f"--{key.replace('_', '-')} {shlex.quote(text)}")
    if byte_budget:
        manifest = shlex.quote(f"{settings['shards_dir']}/manifest.json")
        parts.append(f"--text-bytes {int(settings['text_bytes'])} --manifest {manifest}")
    return " ".join(parts)


def _settings_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="symato run-settings",
        description="Write one run's settings.json; every setting is a required option, "
        "except that a byte budget (--text-bytes N --manifest FILE) replaces --tokens and "
        "--steps, which are then computed from the manifest's train split.",
    )
    parser.add_argument("--out", required=True, help="settings.json to write")
    for key, (kind, help_text) in SETTINGS_SPEC.items():
        parser.add_argument(f"--{key.replace('_', '-')}", dest=key, type=kind,
                            required=key not in RESOLVED_KEYS, help=help_text)  # fmt: skip
    for key, (kind, help_text) in OPTIONAL_SETTINGS.items():
        parser.add_argument(f"--{key.replace('_', '-')}", dest=key, type=kind, help=help_text)
    parser.add_argument("--manifest", type=Path,
                        help="with --text-bytes: the tokenizer's shards manifest.json")
    return parser


def settings_main(argv: list[str]) -> int:
    """``symato run-settings --out FILE --KEY VALUE ...``: validate and write settings.json."""
    args = vars(_settings_parser().parse_args(argv))
    out = Path(args.pop("out"))
    where = f"symato run-settings (for {out})"
    manifest = args.pop("manifest")
    if args["text_bytes"] is None:
        del args["text_bytes"]
        if manifest is not None or None in (args["tokens"], args["steps"]):
            raise SymatoError(f"{where}: give --tokens and --steps, or --text-bytes and "
                              f"--manifest (a byte budget), not a mix")
    else:
        if manifest is None or (args["tokens"], args["steps"]) != (None, None):
            raise SymatoError(f"{where}: --text-bytes needs --manifest and replaces --tokens "
                              f"and --steps")
        args = _resolve(args, manifest, where)
    check_settings(args, where)
    write_json_atomic(out, args)
    return 0


def _resolve(args: dict[str, Any], manifest: Path, where: str) -> dict[str, Any]:
    """A byte-budget run's settings with ``tokens`` and ``steps`` filled in from ``manifest``."""
    check_settings({k: v for k, v in args.items() if v is not None}, where, RESOLVED_KEYS)
    tokens, train = resolve_text_bytes(args["text_bytes"], manifest)
    args["tokens"], args["steps"] = tokens, steps_for(tokens, args)
    print(f"{args['text_bytes']} bytes of text at {train['bytes'] / train['tokens']:.4f} bytes per "
          f"token (train split of {manifest}) -> tokens {tokens}, steps {args['steps']}")
    if tokens > train["tokens"]:
        print(f"note: {tokens} tokens is more than the train split's {train['tokens']}: "
              f"windows repeat text")
    return args
