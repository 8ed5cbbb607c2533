"""Scaling-law fits: L(N) = E + A·N^-α and L(N, D) = E + A/N^α + B/D^β; `symato fit`.

The command: read the runs table, keep one run per learning-rate sweep, and fit every
group (tokenizer/architecture) of runs: L(N) at one token budget, L(N, D) on all, each
with bootstrap intervals; the compute-optimal frontier of the runs and, from a
determined L(N, D), the optimal allocation of a FLOP budget. Writes the fits JSON and
the parameter table.

Where the parts are: the laws and their fit in ``symato.report.laws``, the learning-rate
choice in ``symato.report.lrchoice``, reading runs.csv and writing the parameter table in
``symato.report.tables``. This module only puts them together per group, so a new law or
a new column touches the module of its job.

Input: a CSV with columns ``params``, ``tokens``, ``loss`` (bits per byte) and optional
grouping columns ``tokenizer``, ``arch`` (and ``flops`` for the compute frontier).
"""

from __future__ import annotations

import argparse
import math
import sys
from pathlib import Path
from typing import Any

import numpy as np

from symato.errors import SymatoError
from symato.io import write_json_atomic
from symato.report.constrained import is_repeated, with_constrained
from symato.report.laws import (
    HUBER_DELTA,
    LAW_N,
    LAW_ND,
    MIN_DISTINCT_D,
    MIN_DISTINCT_N,
    MIN_RUNS_N,
    MIN_RUNS_ND,
    STATUS_AT_BOUND,
    STATUS_OK,
    FitResult,
    fit_law,
    interval,
    optimal_allocation,
    optimal_curve,
    predict,
)
from symato.report.lrchoice import CHOICE_RULE, TUNED_SETTINGS, choose_runs
from symato.report.tables import PARAMS_COLUMNS, read_runs, table_rows, write_table

CURVE_POINTS = 60


def compute_frontier(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Runs on the compute-optimal frontier: no run with at most their FLOPs has lower loss."""
    with_flops = [r for r in rows if r.get("flops") is not None and math.isfinite(r["flops"])]
    frontier, best = [], math.inf
    for r in sorted(with_flops, key=lambda r: (r["flops"], r["loss"])):
        if r["loss"] < best:
            best = r["loss"]
            frontier.append(
                {k: r[k] for k in ("run", "params", "tokens", "flops", "loss") if k in r}
            )
    return frontier



def _curve(result: FitResult, n: np.ndarray) -> dict[str, list[float]]:
    """L(N) with a pointwise bootstrap band over the group's size range (for the plots)."""
    grid = np.geomspace(n.min() / 1.5, n.max() * 1.5, CURVE_POINTS)
    out = {"params": grid.tolist(), "loss": predict(result.params, grid).tolist()}
    if result.samples is not None and len(result.samples):
        preds = np.array([predict(result.law.to_named(x), grid) for x in result.samples])
        low, high = interval(preds, axis=0)
        out["low"], out["high"] = low.tolist(), high.tolist()
    return out


def _ln_budget(d: np.ndarray, n: np.ndarray) -> float:
    """The token budget L(N) is fitted at: the one with the most distinct sizes (ties: largest).

    Why: L(N) has no data term, so mixing budgets would fold the data effect into the
    size exponent; at one budget it is the clean "loss vs size at D tokens" curve.
    """
    budgets = np.unique(d)
    return float(max(budgets, key=lambda b: (len(np.unique(n[d == b])), b)))


def fit_group(
    rows: list[dict[str, Any]], params_key: str, n_bootstrap: int, seed: int
) -> dict[str, Any]:
    """Both laws, the frontier and the headline fit for one group of runs; with runs that
    repeat their text, the data-constrained law too (on all runs; the others on the
    fresh ones), and it is the headline when fitted."""
    everything, rows = rows, [r for r in rows if not is_repeated(r)]
    if not rows:  # every run repeats its text: only the data-constrained law applies
        return with_constrained({"status": "too_few_runs", "reason": "no fresh-data runs",
                                 "fits": {}, "frontier": []}, everything, params_key,
                                n_bootstrap, seed)
    n = np.array([r[params_key] for r in rows], dtype=float)
    d = np.array([r["tokens"] for r in rows], dtype=float)
    loss = np.array([r["loss"] for r in rows], dtype=float)
    at = _ln_budget(d, n)
    sel = d == at
    fits = {"L_N": fit_law(LAW_N, n[sel], d[sel], loss[sel], n_bootstrap, seed),
            "L_ND": fit_law(LAW_ND, n, d, loss, n_bootstrap, seed)}
    # The headline: L(N, D) before L(N), a determined fit before one at a bound.
    headline = min((fits["L_ND"], fits["L_N"]),
                   key=lambda f: (f.status != STATUS_OK, not f.fitted))
    out: dict[str, Any] = headline.to_json()
    if not headline.fitted:
        out["reason"] = "; ".join(f.reason for f in fits.values() if f.reason)
    out["fits"] = {key: f.to_json() for key, f in fits.items()}
    out["fits"]["L_N"]["tokens"] = float(at)
    out["fits"]["L_N"]["runs_at_other_budgets"] = int((~sel).sum())
    out["n_runs"] = len(rows)
    out["runs"] = [r.get("run", f"row{r['_line']}") for r in rows]
    if fits["L_N"].fitted:
        out["fits"]["L_N"]["curve"] = _curve(fits["L_N"], n[sel])
    out["frontier"] = compute_frontier([{**r, "params": r[params_key]} for r in rows])
    nd = fits["L_ND"]
    flops = [r.get("flops") for r in rows]
    if nd.status == "ok" and all(f is not None and math.isfinite(f) for f in flops):
        k = float(np.median(np.array(flops, dtype=float) / (n * d)))
        alloc = optimal_allocation(nd.params, k)
        if alloc["status"] == "ok":
            span = np.geomspace(min(flops) / 2, max(flops) * 2, CURVE_POINTS)
            alloc["curve"] = optimal_curve(nd.params, alloc, span)
        out["fits"]["L_ND"]["optimal_allocation"] = alloc
    if len(everything) > len(rows):  # repeated text: symato.report.constrained
        out = with_constrained(out, everything, params_key, n_bootstrap, seed)
    return out



def fit_table(
    rows: list[dict[str, Any]],
    groups: list[str],
    params_key: str,
    n_bootstrap: int,
    seed: int,
) -> dict[str, dict[str, Any]]:
    """Fit every group (keyed ``tokenizer/arch`` or ``all`` when ungrouped)."""
    by_group: dict[tuple[str, ...], list[dict[str, Any]]] = {}
    for r in rows:
        by_group.setdefault(tuple(r[c] for c in groups), []).append(r)
    out = {}
    for values in sorted(by_group):
        key = "/".join(values) if groups else "all"
        result = fit_group(by_group[values], params_key, n_bootstrap, seed)
        out[key] = {"by": dict(zip(groups, values, strict=True)), **result}
    return out



def main(argv: list[str]) -> int:
    """`symato fit --runs CSV --out JSON [--csv CSV] [--params-column total|non_embedding]`."""
    p = argparse.ArgumentParser(prog="symato fit", description=__doc__.split("\n")[0])
    p.add_argument("--runs", required=True, type=Path, help="runs table (params, tokens, loss)")
    p.add_argument("--out", required=True, type=Path, help="fits JSON to write")
    p.add_argument("--csv", type=Path, help="parameter table (default: --out with .csv)")
    p.add_argument("--params-column", choices=sorted(PARAMS_COLUMNS), default="total",
                   help="N = total parameters (column 'params') or non-embedding ones")
    p.add_argument("--bootstrap", type=int, default=100, help="bootstrap replicates (0: no CIs)")
    p.add_argument("--seed", type=int, default=0, help="bootstrap seed")
    args = p.parse_args(argv)
    if args.bootstrap < 0:
        raise SymatoError(f"--bootstrap must be >= 0, got {args.bootstrap}")
    params_key = PARAMS_COLUMNS[args.params_column]
    rows, groups, notes = read_runs(args.runs, params_key, keep_failed=True, repeated=True)
    rows, sweeps, set_aside = choose_runs(rows)
    for note in notes + set_aside:
        print(f"symato fit: {note}", file=sys.stderr)
    fitted = fit_table(rows, groups, params_key, args.bootstrap, args.seed)
    doc = {
        "loss": "bits_per_byte",
        "params_column": args.params_column,
        "group_columns": groups,
        "huber_delta": HUBER_DELTA,
        "bootstrap": args.bootstrap,
        "seed": args.seed,
        "min_runs": {"L(N)": MIN_RUNS_N, "L(N,D)": MIN_RUNS_ND,
                     "distinct_sizes": MIN_DISTINCT_N, "distinct_token_counts": MIN_DISTINCT_D},
        "runs_without_loss": notes,
        "lr_choice": {"rule": CHOICE_RULE, "tuned": list(TUNED_SETTINGS), "sweeps": sweeps},
        "set_aside": set_aside,
        "groups": fitted,
    }
    write_json_atomic(args.out, doc)
    write_table(args.csv or args.out.with_suffix(".csv"), table_rows(fitted))
    ok = sum(g["status"] == STATUS_OK for g in fitted.values())
    pinned = sum(g["status"] == STATUS_AT_BOUND for g in fitted.values())
    edge = sum(bool(sw["at_edge"]) for sw in sweeps)
    print(f"symato fit: {len(fitted)} group(s), {ok} fitted, {pinned} at a bound, {len(rows)} runs "
          f"({len(notes)} without loss, {len(set_aside)} set aside); {len(sweeps)} "
          f"learning-rate sweep(s), {edge} best at an edge -> {args.out}", file=sys.stderr)
    return 0
