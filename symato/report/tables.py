"""Reading the runs table (runs.csv) and writing the fitted-parameter table.

``read_runs`` parses the rows ``symato collect`` wrote (numbers checked, errors naming
file, line and column; runs without a loss reported, not dropped); ``table_rows`` and
``write_table`` flatten a fits document into one CSV row per (group, law, parameter).
Why apart from the fit: the file formats change for reasons of their own (a new column,
a new grouping) and the tokenizer study reads and writes the same tables.
"""

from __future__ import annotations

import csv
import io
import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from symato.errors import SymatoError
from symato.io import atomic_path
from symato.report.constrained import is_repeated
from symato.report.laws import FITTED, LAW_N, LAW_ND
from symato.report.lrchoice import TUNED_SETTINGS

GROUP_COLUMNS = ("tokenizer", "arch")
PARAMS_COLUMNS = {"total": "params", "non_embedding": "params_non_embedding"}


def _float_cell(value: str, path: Path, line: int, column: str, required: bool) -> float | None:
    """Parse one numeric cell; errors name the file, line and column."""
    text = (value or "").strip()
    if text == "" or text.lower() == "nan":
        if required:
            raise SymatoError(f"{path}:{line}: column {column!r} is empty")
        return None
    try:
        x = float(text)
    except ValueError:
        raise SymatoError(f"{path}:{line}: column {column!r} is not a number: {text!r}") from None
    if not math.isfinite(x) or x <= 0:
        raise SymatoError(f"{path}:{line}: column {column!r} must be a positive number, got {text}")
    return x


def read_runs(
    path: Path, params_key: str, keep_failed: bool = False, repeated: bool = False
) -> tuple[list[dict[str, Any]], list[str], list[str]]:
    """Rows with numeric params/tokens/loss(/flops); rows with no loss are set aside.

    Returns (rows, grouping columns present, notes about set-aside rows). A run without
    a loss (e.g. it diverged) is reported, not fitted and not silently dropped; with
    ``keep_failed`` it is also returned with ``loss`` None, for ``choose_runs`` (a
    diverged learning rate is a result of its sweep). Runs that repeated their text
    (``unique_tokens`` below ``tokens``) are set aside with a note unless ``repeated``
    (``symato fit``: the data-constrained law, ``symato.report.constrained``).
    """
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise SymatoError(f"cannot read runs table {path}: {exc}") from None
    reader = csv.DictReader(io.StringIO(text, newline=""))
    header = reader.fieldnames or []
    needed = [params_key, "tokens", "loss"]
    missing = [c for c in needed if c not in header]
    if missing:
        raise SymatoError(f"{path}: missing column(s) {', '.join(missing)} (header: {header})")
    groups = [c for c in GROUP_COLUMNS if c in header]
    rows, notes = [], []
    for line, rec in enumerate(reader, start=2):
        loss = _float_cell(rec["loss"], path, line, "loss", required=False)
        label = rec.get("run") or f"line {line}"
        if loss is None:
            notes.append(f"{path}:{line}: run {label} has no loss; not fitted")
            if not keep_failed:
                continue
        row: dict[str, Any] = {c: rec[c] for c in groups}
        row.update({
            "_line": line,
            "loss": loss,
            params_key: _float_cell(rec[params_key], path, line, params_key, loss is not None),
            "tokens": _float_cell(rec["tokens"], path, line, "tokens", loss is not None),
        })
        if rec.get("run"):
            row["run"] = rec["run"]
        for column in ("flops", "n_layer", "n_embd", "unique_tokens", *TUNED_SETTINGS):
            if column in header:
                row[column] = _float_cell(rec[column], path, line, column, False)
        if "seed" in header:  # a seed may be 0
            text = (rec["seed"] or "").strip()
            try:
                row["seed"] = int(float(text)) if text else None
            except ValueError:
                raise SymatoError(f"{path}:{line}: column 'seed' is not a number: {text!r}"
                                  ) from None
        if not repeated and is_repeated(row):
            notes.append(f"{path}:{line}: run {label} repeats its text (unique_tokens < "
                         "tokens); only the data-constrained fit reads it")
            continue
        rows.append(row)
    return rows, groups, notes



TABLE_FIELDS = ["group", *GROUP_COLUMNS, "law", "status", "n_runs", "parameter", "value",
                "ci_low", "ci_high", "reason"]


def table_rows(groups: dict[str, dict[str, Any]]) -> list[dict[str, Any]]:
    """The fitted-parameter table: one row per (group, law, parameter)."""
    out = []
    for key, g in groups.items():
        for fit in g["fits"].values():
            base = {"group": key, **{c: g["by"].get(c, "") for c in GROUP_COLUMNS},
                    "law": fit["law"], "status": fit["status"], "n_runs": fit["n_runs"]}
            if fit["status"] not in FITTED:
                out.append({**base, "reason": fit["reason"]})
                continue
            names = fit.get("parameters") or (LAW_ND.names if fit["law"] == LAW_ND.name
                                              else LAW_N.names)
            for name in names:
                low, high = fit["ci"].get(name, [None, None])
                out.append({**base, "parameter": name, "value": fit[name],
                            "ci_low": low, "ci_high": high, "reason": fit.get("reason")})
    return out


def write_table(path: Path, rows: list[dict[str, Any]],
                columns: Sequence[str] = tuple(TABLE_FIELDS)) -> None:
    """Write a table as CSV (atomically): the parameter table by default; floats to 6
    significant digits, blanks for None."""
    with atomic_path(path) as tmp, open(tmp, "w", newline="", encoding="utf-8") as fh:
        writer = csv.DictWriter(fh, fieldnames=list(columns), lineterminator="\n")
        writer.writeheader()
        for r in rows:
            writer.writerow({k: _fmt(r.get(k)) for k in columns})


def _fmt(value: Any) -> Any:
    if isinstance(value, float):
        return f"{value:.6g}"
    return "" if value is None else value
