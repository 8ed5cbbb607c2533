"""The sections of results/summary.md: the key results tables as plain Markdown.

Why besides the HTML report: people read results in a terminal or a repository
browser, and a Markdown table diffs well between pipeline runs. Each section function
turns one result (the runs, the fitted laws with their intervals or why a group was
not fitted, the compute-optimal frontier, the tokenizer comparison) into Markdown; the
document's layout (title, order, wording around them) is workflow/scripts/summary.py,
which the rule results_summary runs. The sections stay here because they are the
numbers themselves, formatted one way, and tests check them without Snakemake.
"""

from __future__ import annotations

import math
from typing import Any

import pandas as pd

from symato.report.figures import budget_note, equal_size_table

RUN_FIELDS = [("tokenizer", "tokenizer"), ("arch", "arch"), ("run", "run"),
              ("params", "params"), ("params_non_embedding", "non-emb. params"),
              ("tokens", "tokens"), ("flops", "FLOPs"), ("loss", "bits/byte"),
              ("bits_per_syllable", "bits/syllable"),
              ("restoration_accuracy", "restoration acc."), ("backend", "backend"),
              ("precision", "precision"), ("device_name", "device")]


def fmt(value: Any) -> str:
    """Numbers to 4 significant digits, big ones in engineering-ish form; blanks as '–'."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "–"
    if isinstance(value, (int, float)):
        v = float(value)
        if v != 0 and (abs(v) >= 1e5 or abs(v) < 1e-3):
            return f"{v:.3e}"
        return f"{v:.4g}"
    return str(value).replace("|", "\\|")


def table(header: list[str], rows: list[list[Any]]) -> str:
    """A GitHub-flavoured Markdown table."""
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(fmt(c) for c in r) + " |" for r in rows]
    return "\n".join(lines)


def runs_section(runs: pd.DataFrame) -> str:
    """Every run with its size, budget, compute and final metrics; runs without a loss counted."""
    if not len(runs):
        return "No runs yet."
    present = [(c, h) for c, h in RUN_FIELDS if c in runs.columns]
    rows = runs.sort_values(["tokenizer", "arch", "params", "tokens"])
    body = [[r[c] for c, _ in present] for _, r in rows.iterrows()]
    no_loss = int(runs["loss"].isna().sum()) if "loss" in runs.columns else 0
    note = f"\n\n{no_loss} run(s) have no bits per byte (not fitted)." if no_loss else ""
    return table([h for _, h in present], body) + note


def _with_ci(fit: dict[str, Any], name: str) -> str:
    """A fitted value with its bootstrap interval in brackets (when there is one)."""
    if name not in fit:
        return "–"
    low, high = fit.get("ci", {}).get(name, (None, None))
    ci = f" [{fmt(low)}, {fmt(high)}]" if low is not None else ""
    return f"{fmt(fit[name])}{ci}"


def fits_section(fits: dict[str, Any]) -> str:
    """Both laws per group with intervals; unfitted or bound-pinned laws listed with why."""
    groups = fits.get("groups", {})
    if not groups:
        return "No fits (no fits file)."
    header = ["group", "law", "status", "runs", "E", "A", "alpha", "B", "beta"]
    rows, reasons = [], []
    for key, g in groups.items():
        for fit in g["fits"].values():
            law = fit["law"]
            if law == "L(N)" and "tokens" in fit:
                law = f"L(N) at D={fmt(fit['tokens'])}"
            if fit["status"] != "ok":
                rows.append([key, law, fit["status"], fit["n_runs"]] + ["–"] * 5)
                reasons.append(f"- {key} {fit['law']}: {fit['reason']}")
                continue
            pinned = fit.get("at_bound", [])
            status = "ok" if not pinned else "ok, at bound"
            rows.append([key, law, status, fit["n_runs"],
                         *(_with_ci(fit, p) for p in ("E", "A", "alpha", "B", "beta"))])
            if pinned:
                reasons.append(f"- {key} {fit['law']}: {', '.join(pinned)} at the edge of the "
                               "search box; the runs do not determine it (treat as unfitted)")
    level = next((f.get("ci_level") for g in groups.values() for f in g["fits"].values()
                  if "ci_level" in f), 0.95)
    intro = (f"Loss in bits per byte; N = {fits.get('params_column', 'total')} parameters, "
             f"D = training tokens. Brackets: {level:.0%} bootstrap intervals "
             f"({fits.get('bootstrap', '?')} resamples of runs); Huber δ = "
             f"{fits.get('huber_delta', '?')} on log-loss.\n\n")
    text = intro + table(header, rows)
    if reasons:
        text += "\n\nNot fitted, or not determined by the runs:\n" + "\n".join(reasons)
    return text


def frontier_section(fits: dict[str, Any]) -> str:
    """The runs on each group's compute frontier and the L(N, D) optimal allocation."""
    rows = []
    for key, g in fits.get("groups", {}).items():
        for f in g.get("frontier", []):
            rows.append([key, f.get("run", "–"), f.get("params"), f.get("tokens"), f["flops"],
                         f["loss"]])
        alloc = g.get("fits", {}).get("L_ND", {}).get("optimal_allocation", {})
        if alloc.get("status") == "ok":
            rows.append([key, f"L(N,D) optimum: N ∝ C^{alloc['n_opt_exponent']:.3f}, "
                              f"D ∝ C^{alloc['d_opt_exponent']:.3f}", None, None, None, None])
    if not rows:
        return "No run has training FLOPs recorded."
    return table(["group", "run", "params", "tokens", "FLOPs", "bits/byte"], rows)


def tokenizer_section(toks: pd.DataFrame, runs: pd.DataFrame) -> str:
    """Tokens per syllable and per byte, then bits per byte at equal model size."""
    parts = []
    if len(toks):
        rows = [[r["tokenizer"], r["split"], r.get("vocab_size"), r["tokens"],
                 r["tokens_per_syllable"], r["tokens_per_byte"]]
                for _, r in toks.sort_values(["tokenizer", "split"]).iterrows()]
        parts.append(table(["tokenizer", "split", "vocab", "tokens", "tokens/syllable",
                            "tokens/byte"], rows))
    else:
        parts.append("No shard manifests.")
    eq = equal_size_table(runs)
    if eq is not None and len(eq):
        cols = sorted(eq.columns)
        rows = [[f"{a} L{int(layer)}-D{int(d)}", b, *(row[c] for c in cols)]
                for (a, layer, d, b), row in eq.iterrows()]
        budgets = list(eq.index.get_level_values("budget"))
        parts.append("Bits per byte at equal model size (same layers and width), "
                     f"trained on {' / '.join(dict.fromkeys(budgets))}:\n\n"
                     + table(["model", "budget", *cols], rows)
                     + "\n\n" + budget_note(budgets))
    else:
        parts.append("No model size was trained with two or more tokenizers.")
    return "\n\n".join(parts)
