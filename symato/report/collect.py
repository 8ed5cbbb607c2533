"""`symato collect`: every run's evaluation and training log into flat CSV tables.

Why one flat table: the fits, the plots and the summary all read the same numbers, and
a CSV is something a researcher can open in a spreadsheet or paste into a paper. Three
tables come out:

- runs (``results/scaling/runs.csv``): one row per run from its ``settings.json`` and
  ``metrics.json``; ``loss`` is bits per byte (comparable across tokenizers), ``params``
  total parameters, ``tokens`` training tokens, ``flops`` training FLOPs as counted by
  the model's own formula. ``text_bytes`` is the budget in bytes of training text of a
  byte-budget run (empty for a token budget) and ``budget`` a label of the budget asked
  for (``300k tokens`` or ``700k text bytes``): runs with the same label are comparable
  across tokenizers. ``unique_tokens``, ``unique_bytes`` and ``epochs`` say how much
  of that was unique text (docs/training.md "Repeated epochs"): a repeated-data run
  (``unique_bytes`` in its settings) trained ``epochs`` = tokens / unique_tokens passes
  over the unique subset of ``unique_bytes`` bytes asked for (``unique_tokens``: that
  subset's tokens for this tokenizer, as the trainer counted them); a fresh-data run has
  unique_tokens = tokens, unique_bytes = text_bytes and epochs 1, and its budget label
  says ``from 30k unique`` only when repeated. ``recipe``, ``weight_decay``, ``beta1``,
  ``beta2``, ``eps``,
  ``l2wrap`` and ``layerwise_lr`` are the training recipe the run's settings.json
  records (empty for runs trained before recipes were recorded); ``head_size`` the
  run's head width (GPT/Llama attention heads, RWKV-7 WKV heads; unused by RWKV-4).
  ``backend`` (the
  operator backend training ran: ``cpu``, ``cuda``,
  ``torch``, or ``none`` for an architecture without a compiled operator), ``precision``
  (``fp32``/``bf16``) and ``device_name`` say what ran, so a speed or loss is read
  knowing its arithmetic; they come from metrics.json only (settings.json holds what was
  asked for, e.g. ``precision: auto``), empty for runs evaluated before they were recorded.
  ``arch`` is the architecture's name of today: a run written under an old name
  (``rwkv``, in a folder ``rwkv-...``) reads as ``rwkv4`` (``symato.models.registry.ALIASES``).
  With ``--lm-eval`` (config ``eval.lm_eval``) each run's ``lm_eval.json`` adds
  ``lmeval_bpb`` and ``lmeval_restore_acc``: the same model exported and scored by
  lm-evaluation-harness (docs/export.md); empty otherwise.
- curves: one row per validation evaluation in each run's ``metrics.jsonl`` (val bits
  per byte against tokens and FLOPs seen), for the training-curve figure.
- tokenizers: per tokenizer and split, tokens per syllable and per byte from the shard
  manifests, for the tokenizer comparison.

A run whose evaluation lacks a number is kept with an empty cell (and counted on
stderr), never dropped.
"""

from __future__ import annotations

import argparse
import csv
import json
import math
import sys
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from symato.errors import SymatoError
from symato.interop.lm_eval_tasks import PPL_TASK, RESTORE_TASK
from symato.io import atomic_path, read_json
from symato.models.registry import canonical_name
from symato.run.grid import format_tokens

# runs.csv columns: (column, source key in metrics.json / settings.json).
RUN_COLUMNS: list[tuple[str, str]] = [
    ("tokenizer", "tokenizer"),
    ("arch", "arch"),
    ("run", "run"),
    ("n_layer", "n_layer"),
    ("n_embd", "n_embd"),
    ("params", "params_total"),
    ("params_non_embedding", "params_non_embedding"),
    ("tokens", "train_tokens"),
    ("text_bytes", "text_bytes"),
    ("unique_tokens", "unique_tokens"),
    ("unique_bytes", "unique_bytes"),
    ("epochs", "epochs"),
    ("flops", "train_flops"),
    ("loss", "bits_per_byte"),
    ("loss_stream", "bits_per_byte_stream"),
    ("bits_per_syllable", "bits_per_syllable"),
    ("loss_nats_per_token", "loss_nats_per_token"),
    ("tokens_per_second", "tokens_per_second"),
    ("restoration_accuracy", "restoration_accuracy"),
    ("restoration_accuracy_split", "restoration_accuracy_split"),
    ("restoration_baseline_accuracy", "restoration_baseline_accuracy"),
    ("restoration_syllables", "restoration_syllables"),
    ("backend", "backend"),
    ("precision", "precision"),
    ("device_name", "device_name"),
    # the settings the studies vary (learning-rate sweep, split-form probability)
    ("lr", "lr"),
    ("lr_min", "lr_min"),
    ("split_syllables", "split_syllables"),
    ("seed", "seed"),  # replicates (vary: {seed: [...]}) differ only in it
    # the training recipe the run followed (symato.models.registry.RECIPES) and its values
    ("recipe", "recipe"),
    ("weight_decay", "weight_decay"),
    ("beta1", "beta1"),
    ("beta2", "beta2"),
    ("eps", "eps"),
    ("l2wrap", "l2wrap"),
    ("layerwise_lr", "layerwise_lr"),
    ("head_size", "head_size"),
    # a run that started from an existing model (docs/transfer.md; empty: from scratch);
    # the transfer law (symato/report/transfer.py) reads these
    ("init_from", "init_from"),
    ("init_tokenizer", "init_tokenizer"),
    ("init_transplant", "init_transplant"),
    ("train_layers", "train_layers"),
]
# lm-evaluation-harness numbers of a run (config eval.lm_eval, rule lm_eval_run), read from
# its lm_eval.json (``symato lm-eval run``) when `symato collect --lm-eval` asks:
# (column, task, metric).
LMEVAL_FILE = "lm_eval.json"
LMEVAL_COLUMNS: list[tuple[str, str, str]] = [
    ("lmeval_bpb", PPL_TASK, "bits_per_byte"),
    ("lmeval_restore_acc", RESTORE_TASK, "acc"),
]
# Text columns; RECORDED ones are what training ran, read from metrics.json alone.
TEXT_COLUMNS = ("tokenizer", "arch", "run", "backend", "precision", "device_name", "recipe",
                "layerwise_lr", "init_from", "init_tokenizer", "init_transplant", "train_layers")
# settings.json leaves these out at their defaults; a started run's row shows the default
INIT_COLUMNS = ("init_tokenizer", "init_transplant", "train_layers")
RECORDED = ("backend", "precision", "device_name")
# Without these a run cannot be placed on any figure: missing is an error, not a blank.
REQUIRED = ("tokenizer", "arch", "run", "params", "tokens")
CURVE_COLUMNS = ["tokenizer", "arch", "run", "params", "step", "tokens", "flops", "val_bpb",
                 "train_loss"]
TOKENIZER_COLUMNS = ["tokenizer", "split", "vocab_size", "documents", "tokens", "syllables",
                     "bytes", "tokens_per_syllable", "tokens_per_byte", "bytes_per_token"]


def _flatten(doc: dict[str, Any]) -> dict[str, Any]:
    """Top-level keys plus those of nested dicts (one level), top level winning."""
    out: dict[str, Any] = {}
    for value in doc.values():
        if isinstance(value, dict):
            out.update({k: v for k, v in value.items() if not isinstance(v, dict)})
    out.update({k: v for k, v in doc.items() if not isinstance(v, dict)})
    return out


def _number(value: Any, where: str, key: str) -> float | None:
    """A finite number or None; anything else is an error naming the file and key."""
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise SymatoError(f"{where}: key {key!r} is not a number: {value!r}")
    return float(value) if math.isfinite(value) else None


def run_row(run_dir: Path) -> dict[str, Any]:
    """One runs.csv row from ``run_dir/metrics.json`` and ``run_dir/settings.json``."""
    metrics_path, settings_path = run_dir / "metrics.json", run_dir / "settings.json"
    metrics = read_json(metrics_path, "run metrics")
    settings = read_json(settings_path, "run settings") if settings_path.exists() else {}
    if not isinstance(metrics, dict) or not isinstance(settings, dict):
        raise SymatoError(f"{run_dir}: metrics.json and settings.json must hold JSON objects")
    check_evaluated_model(run_dir, metrics)
    merged = {**_flatten(settings), **_flatten(metrics)}
    merged.setdefault("run", run_dir.name)
    merged.setdefault("tokenizer", run_dir.parent.name)
    row: dict[str, Any] = {}
    for column, key in RUN_COLUMNS:
        value = metrics.get(key) if column in RECORDED else merged.get(key)
        if column in TEXT_COLUMNS:
            row[column] = (None if value is None else
                           str(value).lower() if isinstance(value, bool) else str(value))
        else:
            row[column] = _number(value, str(metrics_path), key)
        if column in REQUIRED and row[column] is None:
            raise SymatoError(
                f"{metrics_path}: key {key!r} is missing (also not in {settings_path.name})"
            )
    row["arch"] = canonical_name(row["arch"])  # "rwkv" in files written before: rwkv4
    if row["init_from"]:
        from symato.run.settings import setting

        for column in INIT_COLUMNS:
            row[column] = row[column] or (str(setting(settings, column)) or None)
    repetition(row, settings, metrics_path)
    configured = _number(settings.get("tokens"), str(settings_path), "tokens")
    row["budget"] = budget_label(row["text_bytes"], configured or row["tokens"],
                                 settings.get("unique_bytes"))
    row["run_dir"] = run_dir.as_posix()
    return row


def lmeval_row(run_dir: Path) -> dict[str, Any]:
    """The LMEVAL_COLUMNS of one run from ``run_dir/lm_eval.json``; an error naming the
    file when it is missing (the workflow asked for it) or lacks a task."""
    path = run_dir / LMEVAL_FILE
    doc = read_json(path, "lm-eval results")
    tasks = doc.get("tasks") if isinstance(doc, dict) else None
    if not isinstance(tasks, dict):
        raise SymatoError(f"{path}: no 'tasks' object (not written by `symato lm-eval run`?)")
    row: dict[str, Any] = {}
    for column, task, metric in LMEVAL_COLUMNS:
        if not isinstance(tasks.get(task), dict):
            raise SymatoError(f"{path}: no results for task {task!r}")
        row[column] = _number(tasks[task].get(metric), str(path), f"tasks.{task}.{metric}")
    return row


def check_evaluated_model(run_dir: Path, metrics: dict[str, Any]) -> None:
    """metrics.json was computed from the model.pt beside it (by weights digest).

    Why: a metrics.json left from an earlier model (copied back, or a model retrained
    outside the workflow) would put the old model's numbers on the new run's row. Runs
    whose model.pt was deleted to save space, or evaluated before the digest existed,
    are not checked.
    """
    from symato.run.checkpoint import MODEL_FILE, read_meta

    evaluated = metrics.get("model_sha256")
    if evaluated is None or not (run_dir / MODEL_FILE).exists():
        return
    current = read_meta(run_dir / MODEL_FILE).get("weights_sha256")
    if current is not None and current != evaluated:
        raise SymatoError(
            f"{run_dir / 'metrics.json'} evaluated another model than {run_dir / MODEL_FILE} "
            f"holds now (model_sha256 {evaluated[:12]}... vs {current[:12]}...): it is "
            f"stale; rerun the evaluation (snakemake --forcerun evaluate)"
        )


def repetition(row: dict[str, Any], settings: dict[str, Any], metrics_path: Path) -> None:
    """Fill a row's ``unique_tokens``, ``unique_bytes`` and ``epochs``.

    A repeated-data run's unique tokens are the trainer's count (metrics.json, from
    model.pt), its unique bytes the budget asked for (settings.json, as in its name);
    a fresh-data run's text is all unique: unique = trained, one epoch.
    """
    if "unique_bytes" in settings:
        if row["unique_tokens"] is None:
            raise SymatoError(f"{metrics_path}: a repeated-data run (unique_bytes in its "
                              "settings) without 'unique_tokens'; rerun its evaluation")
        row["unique_bytes"] = float(settings["unique_bytes"])
    else:
        row["unique_tokens"], row["unique_bytes"] = row["tokens"], row["text_bytes"]
    row["epochs"] = row["tokens"] / row["unique_tokens"]


def budget_label(text_bytes: float | None, tokens: float,
                 unique_bytes: float | None = None) -> str:
    """What a run's budget fixed: ``700k text bytes`` (byte budget) or ``300k tokens``.

    Why a label: byte-budget runs of different tokenizers train on different token counts,
    so ``tokens`` cannot say which runs belong to one comparison; the label can. A token
    run's label uses its configured budget (settings.json), not the tokens actually
    trained (whole batches), so the label matches the run name.
    """
    if text_bytes is not None and unique_bytes is not None:
        return (f"{format_tokens(int(text_bytes))} text bytes from "
                f"{format_tokens(int(unique_bytes))} unique")
    if text_bytes is not None:
        return f"{format_tokens(int(text_bytes))} text bytes"
    return f"{format_tokens(int(tokens))} tokens"


def curve_rows(run_dir: Path, row: dict[str, Any]) -> list[dict[str, Any]]:
    """Validation points of one run's ``metrics.jsonl`` (lines with ``val_bpb``).

    FLOPs at a point are tokens seen times the run's FLOPs per training token.
    """
    path = run_dir / "metrics.jsonl"
    if not path.exists():
        return []
    per_token = (row["flops"] / row["tokens"]) if row.get("flops") and row["tokens"] else None
    out = []
    with open(path, encoding="utf-8") as fh:
        for line_no, line in enumerate(fh, start=1):
            if not line.strip():
                continue
            try:
                rec = json.loads(line)
            except json.JSONDecodeError as exc:
                raise SymatoError(f"{path}:{line_no}: not valid JSON: {exc.msg}") from None
            where = f"{path}:{line_no}"
            bpb = _number(rec.get("val_bpb"), where, "val_bpb")
            if bpb is None:
                continue
            tokens = _number(rec.get("tokens"), where, "tokens")
            if tokens is None:
                raise SymatoError(f"{where}: line with val_bpb has no 'tokens'")
            out.append({
                "tokenizer": row["tokenizer"], "arch": row["arch"], "run": row["run"],
                "params": row["params"], "step": rec.get("step"), "tokens": tokens,
                "flops": tokens * per_token if per_token else None, "val_bpb": bpb,
                "train_loss": _number(rec.get("train_loss"), where, "train_loss"),
            })
    return out


def tokenizer_rows(manifest_path: Path) -> list[dict[str, Any]]:
    """Tokens per syllable/byte per split of one tokenizer's shard manifest."""
    doc = read_json(manifest_path, "shard manifest")
    splits = doc.get("splits") if isinstance(doc, dict) else None
    if not isinstance(splits, dict):
        raise SymatoError(f"{manifest_path}: missing key 'splits'")
    tokenizer = doc.get("tokenizer") or manifest_path.parent.name
    out = []
    for split, s in sorted(splits.items()):
        where = f"{manifest_path}: splits.{split}"
        nums = {k: _number(s.get(k), where, k) for k in ("documents", "tokens", "syllables",
                                                            "bytes")}
        if nums["tokens"] is None or nums["bytes"] is None:
            raise SymatoError(f"{where}: needs 'tokens' and 'bytes'")
        out.append({
            "tokenizer": tokenizer, "split": split, "vocab_size": doc.get("vocab_size"), **nums,
            "tokens_per_syllable": _ratio(nums["tokens"], nums["syllables"]),
            "tokens_per_byte": _ratio(nums["tokens"], nums["bytes"]),
            "bytes_per_token": _ratio(nums["bytes"], nums["tokens"]),
        })
    return out


def _ratio(a: float | None, b: float | None) -> float | None:
    return a / b if a is not None and b else None


def write_csv(path: Path, columns: list[str], rows: Iterable[dict[str, Any]]) -> int:
    """Write ``rows`` atomically; floats with 8 significant digits, None as empty."""
    n = 0
    with atomic_path(path) as tmp, open(tmp, "w", newline="", encoding="utf-8") as fh:
        writer = csv.DictWriter(fh, fieldnames=columns, lineterminator="\n",
                                extrasaction="ignore")
        writer.writeheader()
        for r in rows:
            writer.writerow({k: _cell(r.get(k)) for k in columns})
            n += 1
    return n


def _cell(value: Any) -> Any:
    if value is None:
        return ""
    if isinstance(value, float):
        return f"{value:.8g}" if not value.is_integer() or abs(value) >= 1e16 else str(int(value))
    return value


def _find_run_dirs(root: Path) -> list[Path]:
    """``root/{tokenizer}/{run}/`` folders holding a metrics.json."""
    return sorted(p.parent for p in root.glob("*/*/metrics.json"))


def main(argv: list[str]) -> int:
    """`symato collect --out CSV [--curves CSV] [--tokenizers CSV] (RUN_DIR... | --runs-root)`."""
    p = argparse.ArgumentParser(prog="symato collect",
                                description="Collect run metrics into CSV tables.")
    p.add_argument("run_dirs", nargs="*", type=Path, help="run folders (metrics.json inside)")
    p.add_argument("--runs-root", type=Path, help="take every results/runs/{tokenizer}/{run}/")
    p.add_argument("--manifests", nargs="*", type=Path, default=[],
                   help="shard manifest.json files for the tokenizer table")
    p.add_argument("--out", required=True, type=Path, help="runs table to write")
    p.add_argument("--curves", type=Path, help="training-curve table to write")
    p.add_argument("--tokenizers", type=Path, help="tokenizer table to write")
    p.add_argument("--lm-eval", action="store_true",
                   help=f"also read each run's {LMEVAL_FILE} (lm-evaluation-harness) into "
                        f"the columns {', '.join(c for c, _, _ in LMEVAL_COLUMNS)}")
    args = p.parse_args(argv)
    run_dirs = list(args.run_dirs) + (_find_run_dirs(args.runs_root) if args.runs_root else [])
    if not run_dirs:
        raise SymatoError("symato collect: no run folders given (positional or --runs-root)")
    rows = [run_row(d) for d in run_dirs]
    for row, d in zip(rows, run_dirs, strict=True):
        row.update(lmeval_row(d) if args.lm_eval else {c: None for c, _, _ in LMEVAL_COLUMNS})
    seen: dict[tuple[str, str], Path] = {}
    for r, d in zip(rows, run_dirs, strict=True):
        key = (r["tokenizer"], r["run"])
        if key in seen:
            raise SymatoError(f"run {key[0]}/{key[1]} appears twice: {seen[key]} and {d}")
        seen[key] = d
    columns = ([c for c, _ in RUN_COLUMNS] + [c for c, _, _ in LMEVAL_COLUMNS]
               + ["budget", "run_dir"])
    write_csv(args.out, columns, rows)
    no_loss = [f"{r['tokenizer']}/{r['run']}" for r in rows if r["loss"] is None]
    msg = f"symato collect: {len(rows)} runs -> {args.out}"
    if no_loss:
        msg += f"; {len(no_loss)} without bits_per_byte: {', '.join(no_loss)}"
    if args.curves:
        curves = [c for r, d in zip(rows, run_dirs, strict=True) for c in curve_rows(d, r)]
        write_csv(args.curves, CURVE_COLUMNS, curves)
        msg += f"; {len(curves)} curve points -> {args.curves}"
    if args.tokenizers:
        toks = [t for m in args.manifests for t in tokenizer_rows(m)]
        write_csv(args.tokenizers, TOKENIZER_COLUMNS, toks)
        msg += f"; {len(args.manifests)} manifests -> {args.tokenizers}"
    print(msg, file=sys.stderr)
    return 0
