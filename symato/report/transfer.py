"""The transfer law: Vietnamese text that starting from a source model saves; `symato transfer-fit`.

Why: the transfer study asks how much Vietnamese text continued pre-training from a
source model is worth. Following Hernandez et al. 2021 ("Scaling Laws for Transfer"),
a transferred run of size N trained on D_F bytes of Vietnamese text reaching loss L_T
is worth D_E bytes: the text a from-scratch run of the same size needs to reach L_T.
The *effective data transferred* is D_T = D_E - D_F, and the law fitted to it is

    D_T = k · D_F^α · N^β.

How, per (tokenizer, architecture) group of runs:

1. Scratch curves. Per model size, the from-scratch runs (``init_from`` empty) are fitted
   as L(D) = E + B/D^β with the machinery of ``symato.report.laws`` (the same form as its
   L(N), the Huber loss on log residuals, non-negative least squares for (E, B), grid
   and pattern search for β); or, with ``scratch="joint"``, L(N, D) over all sizes, read
   at each size as E + A/N^α + B/D^β. D is bytes of text, as the tokenizer study fits it.
2. Inversion. D_E = (B / (L_T - E))^(1/β). A transferred run with L_T <= E beats every
   loss scratch reaches at its size: D_E is infinite (``beyond_scratch``). A run whose
   loss is at or above the scratch curve at its own D_F has D_T <= 0
   (``negative_transfer``): kept in the table, not fitted (log D_T).
3. The law: log D_T = log k + α log D_F + β log N over the runs with 0 < D_T < ∞, by
   least squares (linear in the logs, so solved exactly: no search is needed). With one
   model size N^β cannot be measured: it is folded into k and only k, α are fitted.
4. Intervals: a bootstrap over runs. Each replicate resamples the scratch runs of every
   size (within the size, so no size loses its curve) and the transferred runs, refits
   the scratch curves, recomputes every D_E and D_T and refits the law. 95% percentile
   intervals, as everywhere in the report.

Where it stops paying: the share of the text saved is D_T/D_E = D_T/(D_T + D_F). By the
law D_T/D_F = k N^β D_F^(α-1), so for α < 1 the saving falls below a fraction f beyond
D_F* = (k N^β (1-f)/f)^(1/(1-α)) (f = SAVING_FRACTION = 10% by default); for α >= 1 it
never falls (reported as no such budget).

Caveat the numbers carry: excluding ``beyond_scratch`` runs (the best transfers) and
``negative_transfer`` runs (the worst) from the log fit conditions on 0 < D_T < ∞; the
counts are reported beside the fit. D_E is an extrapolation wherever L_T lies below the
scratch runs' losses at that size.
"""

from __future__ import annotations

import argparse
import math
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from symato.errors import SymatoError
from symato.io import write_json_atomic
from symato.report.fit import CURVE_POINTS
from symato.report.laws import (
    BOUND_RTOL,
    BOUNDS_EXPONENT,
    CHUNK,
    CI_LEVEL,
    COEF_RTOL,
    LAW_N,
    LAW_ND,
    MIN_DISTINCT_D,
    MIN_DISTINCT_N,
    MIN_RUNS_N,
    MIN_RUNS_ND,
    _fit_weighted,
    _params_at_bound,
    interval,
)
from symato.report.lrchoice import CHOICE_RULE, choose_runs
from symato.report.study import bytes_per_token
from symato.report.tables import GROUP_COLUMNS, PARAMS_COLUMNS

LAW_NAME = "D_T = k * D_F^alpha * N^beta"
SCRATCH_FORMS = ("per_size", "joint")
# Run settings (trainer: init_*) whose values make transferred runs different treatments:
# fitted apart when the runs table has them and they differ.
VARIANT_COLUMNS = ("init_transplant", "init_tokenizer")
SAVING_FRACTION = 0.1
# A scratch curve L(D) = E + B/D^β has 3 parameters: as L(N) in laws.py, 4 runs at 3
# distinct budgets per size. The transfer law has 3 (k, α, β): 2 more runs than that, at
# MIN_DISTINCT_DF budgets, and 2 sizes for β (one size: 2 parameters, 4 runs).
MIN_SCRATCH_RUNS = MIN_RUNS_N
MIN_SCRATCH_BUDGETS = MIN_DISTINCT_N
MIN_DISTINCT_DF = 3
MIN_DT_SIZES = 2
# Per-run statuses. Only "ok" (0 < D_T < inf) enters the log fit.
OK, NEGATIVE, BEYOND, NO_CURVE = "ok", "negative_transfer", "beyond_scratch", "no_scratch_curve"
STATUS_RULE = {
    OK: "0 < D_T < inf: fitted",
    NEGATIVE: "loss at or above the scratch curve at its own D_F: D_T <= 0, not fitted (log)",
    BEYOND: "loss at or below the scratch curve's floor E: D_E infinite, not fitted",
    NO_CURVE: "no scratch curve at its size (too few scratch runs, or a flat curve)",
}


# ------------------------------------------------------------------------- input
def runs_frame(runs: pd.DataFrame, params_key: str,
               bpt: dict[str, float] | None = None, where: str = "runs") -> pd.DataFrame:
    """The runs of the study with ``N``, ``text`` (bytes of Vietnamese text trained on),
    ``loss``, ``transferred`` (``init_from`` set) and the group columns.

    Text: the ``text`` column when present, else tokens x the tokenizer's train-split
    bytes per token (``bpt``, as the tokenizer study), else ``text_bytes`` (the byte
    budget). Rows without a loss are dropped (``transfer_fit`` lists them); errors name the
    table line (header = line 1).
    """
    missing = [c for c in (params_key, "loss") if c not in runs.columns]
    if missing:
        raise SymatoError(f"{where}: missing column(s) {', '.join(missing)}")
    out = runs.reset_index(drop=True).copy()
    out["_line"] = np.arange(len(out)) + 2
    out = out[pd.to_numeric(out["loss"], errors="coerce").notna()].copy()
    for c in GROUP_COLUMNS:
        if c not in out.columns:
            out[c] = ""
    init = out["init_from"] if "init_from" in out.columns else pd.Series("", index=out.index)
    out["init_from"] = init.fillna("").astype(str).str.strip()
    out["transferred"] = out["init_from"] != ""
    if "text" in out.columns:
        text = out["text"]
    elif bpt is not None:
        unknown = sorted(set(out["tokenizer"]) - set(bpt))
        if unknown:
            raise SymatoError(f"{where}: tokenizer(s) {unknown} have no train split in the "
                              "tokenizer table (bytes per token unknown)")
        text = pd.to_numeric(out["tokens"], errors="coerce") * out["tokenizer"].map(bpt)
    elif "text_bytes" in out.columns:
        text = out["text_bytes"]
    else:
        raise SymatoError(f"{where}: no text column ('text', 'text_bytes', or 'tokens' with a "
                          "tokenizer table): D is bytes of text")
    out["text"] = pd.to_numeric(text, errors="coerce")
    out["N"] = pd.to_numeric(out[params_key], errors="coerce")
    out["loss"] = pd.to_numeric(out["loss"], errors="coerce")
    for col in ("text", "N", "loss"):
        bad = out[~(out[col] > 0) | ~np.isfinite(out[col])]
        if len(bad):
            line = int(bad["_line"].iloc[0])
            name = params_key if col == "N" else col
            raise SymatoError(f"{where}:{line}: {name!r} must be a positive number "
                              f"(D is text bytes; N the {params_key} column)")
    return out


# ------------------------------------------------------------------------- scratch curves
def _scratch_problem(d: np.ndarray) -> str | None:
    """Why the scratch runs (budgets ``d``) of one size cannot give a curve."""
    if len(d) < MIN_SCRATCH_RUNS:
        return f"needs at least {MIN_SCRATCH_RUNS} scratch runs, got {len(d)}"
    if len(np.unique(d)) < MIN_SCRATCH_BUDGETS:
        return (f"needs scratch runs at {MIN_SCRATCH_BUDGETS} distinct text budgets, got "
                f"{len(np.unique(d))}")
    return None


def _fit_batched(law: Any, n: np.ndarray, d: np.ndarray, loss: np.ndarray,
                 weights: np.ndarray) -> np.ndarray:
    """``laws._fit_weighted`` over rows of count weights, CHUNK at a time."""
    raws = [_fit_weighted(law, n, d, loss, weights[s:s + CHUNK])[0]
            for s in range(0, len(weights), CHUNK)]
    return np.concatenate(raws)


def _draws(rng: np.random.Generator, groups: Sequence[np.ndarray], n_bootstrap: int
           ) -> list[list[np.ndarray]]:
    """Per replicate, per group of indices, a draw with replacement within the group."""
    return [[g[rng.integers(0, len(g), size=len(g))] if len(g) else g for g in groups]
            for _ in range(n_bootstrap)]


def scratch_curves(n: np.ndarray, d: np.ndarray, loss: np.ndarray, sizes: np.ndarray,
                   draws: list[list[np.ndarray]], form: str
                   ) -> tuple[np.ndarray, list[dict[str, Any]]]:
    """Curves (E, B, β) per replicate and size: array (1 + R, S, 3), NaN where a size has
    no curve in that replicate (row 0: the full fit); and a JSON record per size.

    ``draws``: per replicate, per size, indices into these scratch runs."""
    reps, n_sizes = 1 + len(draws), len(sizes)
    curves = np.full((reps, n_sizes, 3), np.nan)
    at = [np.flatnonzero(n == s) for s in sizes]
    records = [{"params": float(s), "status": "not_fitted", "n_runs": len(i)}
               for s, i in zip(sizes, at, strict=True)]
    if form == "joint":
        problem = _joint_problem(n, d)
        if problem:
            for r in records:
                r["reason"] = problem
            return curves, records
        weights = [np.ones(len(n))]
        for rep in draws:
            idx = np.concatenate(rep)
            ok = _joint_problem(n[idx], d[idx]) is None
            weights.append(np.bincount(idx, minlength=len(n)) if ok else np.zeros(len(n)))
        valid = np.array([w.sum() > 0 for w in weights])
        raw = np.full((reps, 5), np.nan)
        raw[valid] = _fit_batched(LAW_ND, n, d, loss, np.array(weights, float)[valid])
        e, a, alpha, b, beta = raw.T
        for j, s in enumerate(sizes):
            curves[:, j] = np.column_stack([e + a * s ** -alpha, b, beta])
        pinned = _params_at_bound(LAW_ND, raw[0], n, d, loss)
        for j in range(n_sizes):
            records[j].update(_curve_record(curves[:, j], pinned, "L(N,D)"))
        return curves, records
    for j, idx in enumerate(at):
        problem = _scratch_problem(d[idx])
        if problem:
            records[j]["reason"] = problem
            continue
        weights = [np.ones(len(idx))]
        for rep in draws:
            local = np.searchsorted(idx, rep[j])
            ok = len(np.unique(d[rep[j]])) >= MIN_SCRATCH_BUDGETS
            weights.append(np.bincount(local, minlength=len(idx)) if ok else np.zeros(len(idx)))
        valid = np.array([w.sum() > 0 for w in weights])
        raw = np.full((reps, 3), np.nan)
        raw[valid] = _fit_batched(LAW_N, d[idx], d[idx], loss[idx],
                                  np.array(weights, float)[valid])
        curves[:, j] = raw  # LAW_N's (E, A, α) is (E, B, β) with D in place of N
        pinned = _pinned_curve(raw[0], d[idx], loss[idx])
        records[j].update(_curve_record(raw, pinned, "L(D)"))
    return curves, records


def _joint_problem(n: np.ndarray, d: np.ndarray) -> str | None:
    if len(n) < MIN_RUNS_ND:
        return f"the joint L(N,D) needs at least {MIN_RUNS_ND} scratch runs, got {len(n)}"
    if len(np.unique(n)) < MIN_DISTINCT_N:
        return (f"the joint L(N,D) needs scratch runs at {MIN_DISTINCT_N} model sizes, got "
                f"{len(np.unique(n))} (use the per-size curves)")
    if len(np.unique(d)) < MIN_DISTINCT_D:
        return (f"the joint L(N,D) needs scratch runs at {MIN_DISTINCT_D} text budgets, got "
                f"{len(np.unique(d))}")
    return None


def _pinned_curve(raw: np.ndarray, d: np.ndarray, loss: np.ndarray) -> list[str]:
    """Parameters of one L(D) at a bound of the search box (as ``laws``: an exponent
    within BOUND_RTOL of an end, a term below COEF_RTOL of every loss)."""
    e, b, beta = raw
    lo, hi = BOUNDS_EXPONENT
    pinned = [name for name, term in (("E", np.full_like(loss, e)), ("B", b * d ** -beta))
              if np.all(term <= COEF_RTOL * loss)]
    if min(beta - lo, hi - beta) <= BOUND_RTOL * (hi - lo):
        pinned.append("beta")
    return pinned


def _curve_record(curves: np.ndarray, pinned: list[str], law: str) -> dict[str, Any]:
    """A size's scratch curve as JSON: E, B, β of the full fit and their intervals."""
    out: dict[str, Any] = {"law": law, "status": "at_bound" if pinned else "ok",
                           "E": float(curves[0, 0]), "B": float(curves[0, 1]),
                           "beta": float(curves[0, 2])}
    if pinned:
        out["at_bound"] = pinned
    samples = curves[1:][np.isfinite(curves[1:, 0])]
    out["bootstrap_used"] = len(samples)
    if len(samples):
        low, high = interval(samples, axis=0)
        out["ci"] = {k: [float(lo), float(hi)]
                     for k, lo, hi in zip(("E", "B", "beta"), low, high, strict=True)}
    return out


def scratch_loss(curve: np.ndarray, d: Any) -> np.ndarray:
    """L(D) = E + B/D^β of curves (..., 3) at text ``d``."""
    return curve[..., 0] + curve[..., 1] * np.asarray(d, dtype=float) ** -curve[..., 2]


def invert(curve: np.ndarray, loss: Any) -> np.ndarray:
    """D_E = (B/(L - E))^(1/β): the text a scratch run on ``curve`` (..., 3) needs to reach
    ``loss``; +inf where L <= E, NaN where the curve is flat (B = 0 or β = 0)."""
    e, b, beta = curve[..., 0], curve[..., 1], curve[..., 2]
    gap = np.asarray(loss, dtype=float) - e
    flat = ~(b > 0) | ~(beta > 0)
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        d_e = (b / np.where(gap > 0, gap, 1.0)) ** (1.0 / np.where(flat, 1.0, beta))
    return np.where(flat, np.nan, np.where(gap > 0, d_e, np.inf))


def run_status(d_e: float, d_f: float) -> str:
    """A transferred run's status from its D_E and D_F."""
    if math.isnan(d_e):
        return NO_CURVE
    if math.isinf(d_e):
        return BEYOND
    return OK if d_e > d_f else NEGATIVE


# ------------------------------------------------------------------------- the law
def _law_problem(d_f: np.ndarray, n: np.ndarray, with_n: bool) -> str | None:
    """Why these runs (0 < D_T < inf) cannot support the law (None when they can)."""
    need = 5 if with_n else 4
    if len(d_f) < need:
        return f"{LAW_NAME} needs at least {need} runs with 0 < D_T < inf, got {len(d_f)}"
    if len(np.unique(d_f)) < MIN_DISTINCT_DF:
        return (f"{LAW_NAME} needs runs at {MIN_DISTINCT_DF} distinct fine-tuning budgets D_F, "
                f"got {len(np.unique(d_f))}")
    if with_n and len(np.unique(n)) < MIN_DT_SIZES:
        return f"{LAW_NAME} needs {MIN_DT_SIZES} model sizes, got {len(np.unique(n))}"
    return None


def fit_log_law(d_f: np.ndarray, n: np.ndarray, d_t: np.ndarray, with_n: bool,
                weights: np.ndarray | None = None) -> np.ndarray:
    """(log k, α, β) minimising the weighted squared residual of log D_T; β = 0 when
    ``with_n`` is False (one size: folded into k)."""
    cols = [np.ones(len(d_f)), np.log(d_f)] + ([np.log(n)] if with_n else [])
    x, y = np.column_stack(cols), np.log(d_t)
    w = np.sqrt(np.ones(len(d_f)) if weights is None else weights)
    coef = np.linalg.lstsq(x * w[:, None], y * w, rcond=None)[0]
    return np.append(coef, 0.0) if not with_n else coef


def law_dt(theta: np.ndarray, d_f: Any, n: Any) -> np.ndarray:
    """D_T by the law with (log k, α, β) ``theta`` (..., 3)."""
    return np.exp(theta[..., 0] + theta[..., 1] * np.log(d_f) + theta[..., 2] * np.log(n))


def stops_paying(theta: np.ndarray, n: Any, fraction: float = SAVING_FRACTION) -> np.ndarray:
    """The D_F beyond which the law's saving D_T/D_E is below ``fraction``; +inf when α >= 1
    (the saving never falls)."""
    log_k, alpha, beta = theta[..., 0], theta[..., 1], theta[..., 2]
    ratio = fraction / (1.0 - fraction)
    with np.errstate(divide="ignore", over="ignore", invalid="ignore"):
        log_d = (log_k + beta * np.log(n) - math.log(ratio)) / (1.0 - alpha)
        out = np.exp(log_d)
    return np.where(alpha < 1.0, out, np.inf)


def saving(d_t: Any, d_f: Any) -> np.ndarray:
    """D_T/D_E = D_T/(D_T + D_F): the share of the scratch text the start saves (1 for an
    infinite D_T)."""
    d_t, d_f = np.asarray(d_t, dtype=float), np.asarray(d_f, dtype=float)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(np.isinf(d_t), 1.0, d_t / (d_t + d_f))


def _ci(values: np.ndarray) -> list[float | None]:
    """95% interval of bootstrap values that may hold ±inf (then the ends are sample
    values, no interpolation) or NaN (dropped); None for an infinite end or no values."""
    values = np.asarray(values, dtype=float)
    values = values[~np.isnan(values)]
    if not len(values):
        return [None, None]
    if np.all(np.isfinite(values)):
        low, high = interval(values)
    else:
        q = 100 * (1 - CI_LEVEL) / 2
        low, high = np.percentile(values, [q, 100 - q], method="inverted_cdf")
    return [_num(low), _num(high)]


def _num(x: Any) -> float | None:
    """A finite float, or None (strict JSON: an infinite D_E is said by its status)."""
    x = float(x)
    return x if math.isfinite(x) else None


# ------------------------------------------------------------------------- one group
def fit_group(runs: pd.DataFrame, n_bootstrap: int = 100, seed: int = 0,
              form: str = "per_size", fraction: float = SAVING_FRACTION) -> dict[str, Any]:
    """Scratch curves, per-run D_E/D_T, the transfer law and where it stops paying for one
    group (columns ``N``, ``text``, ``loss``, ``transferred``; see ``runs_frame``)."""
    if form not in SCRATCH_FORMS:
        raise SymatoError(f"transfer fit: scratch form must be one of {SCRATCH_FORMS}, "
                          f"got {form!r}")
    scratch, moved = runs[~runs["transferred"]], runs[runs["transferred"]]
    sn, sd, sl = (scratch[c].to_numpy(float) for c in ("N", "text", "loss"))
    tn, tf, tl = (moved[c].to_numpy(float) for c in ("N", "text", "loss"))
    sizes = np.unique(np.concatenate([sn, tn]))
    rng = np.random.default_rng(seed)
    draws = _draws(rng, [np.flatnonzero(sn == s) for s in sizes] + [np.arange(len(tn))],
                   n_bootstrap)
    curves, records = scratch_curves(sn, sd, sl, sizes, [r[:-1] for r in draws], form)
    col = np.searchsorted(sizes, tn)
    d_e = invert(curves[:, col], tl)  # (1 + R, transferred runs)
    d_t = d_e - tf
    status = [run_status(x, f) for x, f in zip(d_e[0], tf, strict=True)]
    out: dict[str, Any] = {"n_scratch": len(scratch), "n_transferred": len(moved),
                           "scratch_form": form, "scratch": records}
    out["runs"] = _run_records(moved, d_e, d_t, status, curves[0, col])
    ok = np.array([s == OK for s in status], dtype=bool)
    out["excluded"] = {s: int(sum(x == s for x in status)) for s in (NEGATIVE, BEYOND, NO_CURVE)}
    out["law"] = _fit_law_boot(tf, tn, d_t, ok, [r[-1] for r in draws], n_bootstrap)
    theta = out["law"].pop("_theta", None)
    if theta is not None:
        out["stops_paying"] = _stops(theta, np.unique(tn), fraction)
        out["law_grid"] = _law_grid(theta, np.unique(tn), np.unique(tf))
    out["_arrays"] = {"curves": curves, "theta": theta, "sizes": sizes}
    return out


def _run_records(moved: pd.DataFrame, d_e: np.ndarray, d_t: np.ndarray, status: list[str],
                 curve: np.ndarray) -> list[dict[str, Any]]:
    at_df = scratch_loss(curve, moved["text"].to_numpy(float))
    out = []
    for i, (_, r) in enumerate(moved.iterrows()):
        rec = {"run": r.get("run") if isinstance(r.get("run"), str) else f"line {r['_line']}",
               "init_from": r["init_from"], "params": float(r["N"]), "D_F": float(r["text"]),
               "loss": float(r["loss"]), "scratch_loss_at_D_F": _num(at_df[i]),
               "D_E": _num(d_e[0, i]), "D_T": _num(d_t[0, i]),
               "saving": _num(saving(d_t[0, i], r["text"])), "status": status[i]}
        rec["D_E_ci"], rec["D_T_ci"] = _ci(d_e[1:, i]), _ci(d_t[1:, i])
        out.append(rec)
    return out


def _fit_law_boot(d_f: np.ndarray, n: np.ndarray, d_t: np.ndarray, ok: np.ndarray,
                  draws: list[np.ndarray], n_bootstrap: int) -> dict[str, Any]:
    """The law on the full fit's ok runs, and on each replicate's drawn runs whose D_T
    (from that replicate's curves) is positive and finite."""
    with_n = len(np.unique(n[ok])) >= MIN_DT_SIZES
    out: dict[str, Any] = {"law": LAW_NAME, "n_runs": int(ok.sum()),
                           "model_term": "N^beta" if with_n else
                           "folded into k (one model size)"}
    problem = _law_problem(d_f[ok], n[ok], with_n)
    if problem:
        return {**out, "status": "not_fitted", "reason": problem}
    theta = fit_log_law(d_f[ok], n[ok], d_t[0, ok], with_n)
    resid = np.log(d_t[0, ok]) - np.log(law_dt(theta, d_f[ok], n[ok]))
    out.update({"status": "ok", "k": float(np.exp(theta[0])), "alpha": float(theta[1]),
                "beta": float(theta[2]) if with_n else None,
                "rms_log_residual": float(np.sqrt(np.mean(resid ** 2)))})
    samples, skipped = [], 0
    for rep, idx in enumerate(draws, start=1):
        good = idx[np.isfinite(d_t[rep, idx]) & (d_t[rep, idx] > 0)]
        if _law_problem(d_f[good], n[good], with_n):
            skipped += 1
            continue
        w = np.bincount(good, minlength=len(d_f)).astype(float)
        use = w > 0
        samples.append(fit_log_law(d_f[use], n[use], d_t[rep, use], with_n, w[use]))
    out["bootstrap"] = {"requested": n_bootstrap, "used": len(samples), "skipped": skipped}
    out["ci_level"] = CI_LEVEL
    thetas = np.array([theta, *samples])
    if samples:
        s = np.array(samples)
        out["ci"] = {"k": [float(np.exp(x)) for x in interval(s[:, 0])],
                     "alpha": [float(x) for x in interval(s[:, 1])]}
        if with_n:
            out["ci"]["beta"] = [float(x) for x in interval(s[:, 2])]
    out["_theta"] = thetas
    return out


def _stops(theta: np.ndarray, sizes: np.ndarray, fraction: float) -> dict[str, Any]:
    """Per size, the D_F beyond which the law's saving is below ``fraction``."""
    per = []
    for s in sizes:
        d = stops_paying(theta, s, fraction)
        per.append({"params": float(s), "D_F": _num(d[0]), "ci": _ci(d[1:]),
                    "never": bool(np.isinf(d[0]))})
    return {"fraction": fraction, "rule": "D_T/D_E < fraction, i.e. D_T/D_F < f/(1-f)",
            "sizes": per}


def _law_grid(theta: np.ndarray, sizes: np.ndarray, budgets: np.ndarray) -> list[dict]:
    """The law's D_T and saving at every (size, D_F) of the transferred runs."""
    out = []
    for s in sizes:
        for b in budgets:
            d_t = law_dt(theta, b, s)
            frac = saving(d_t, b)
            out.append({"params": float(s), "D_F": float(b), "D_T": float(d_t[0]),
                        "D_T_ci": _ci(d_t[1:]), "saving": float(frac[0]),
                        "saving_ci": _ci(frac[1:])})
    return out


# ------------------------------------------------------------------------- all groups
def transfer_fit(runs: pd.DataFrame, params_key: str = "params", n_bootstrap: int = 100,
                 seed: int = 0, form: str = "per_size", fraction: float = SAVING_FRACTION,
                 bpt: dict[str, float] | None = None, where: str = "runs"
                 ) -> dict[str, Any]:
    """The transfer fit of every (tokenizer, arch) group that has transferred runs, as a
    JSON-able dict (``figure_data`` reads it back).

    Transferred runs that differ in a VARIANT_COLUMNS setting (``compose`` vs ``random``
    transplant, another source tokenizer) are fitted apart, each against the same
    scratch runs of its group: with the same seed their bootstrap replicates draw the
    same scratch runs, so the variants' replicates pair."""
    frame = runs_frame(runs, params_key, bpt, where)
    failed = without_loss(runs, where)
    frame, sweeps, set_aside = choose_scratch(frame)
    variants = [c for c in VARIANT_COLUMNS if c in frame.columns]
    for c in variants:
        frame[c] = frame[c].fillna("").astype(str).str.strip()
    groups: dict[str, Any] = {}
    for key, g in frame.groupby(list(GROUP_COLUMNS), sort=True):
        moved = g[g["transferred"]]
        if moved.empty:
            continue
        kinds = moved.groupby(variants, sort=True) if variants else [((), moved)]
        for values, sub in kinds:
            values = values if isinstance(values, tuple) else (values,)
            by = dict(zip(GROUP_COLUMNS, map(str, key), strict=True))
            name = "/".join(str(v) for v in key)
            if len(kinds) > 1:
                by.update(zip(variants, values, strict=True))
                name += "/" + ",".join(f"{c}={v}" for c, v in zip(variants, values, strict=True))
            runs_here = pd.concat([g[~g["transferred"]], sub])
            fitted = fit_group(runs_here, n_bootstrap, seed, form, fraction)
            arrays = fitted.pop("_arrays")
            fitted["figure"] = _figure(runs_here, fitted, arrays)
            groups[name] = {"by": by, **fitted}
    return {"law": LAW_NAME, "loss": "bits_per_byte", "text": "bytes of Vietnamese text",
            "params_column": params_key, "bootstrap": n_bootstrap, "seed": seed,
            "scratch_form": form, "saving_fraction": fraction, "ci_level": CI_LEVEL,
            "statuses": STATUS_RULE, "lr_choice": {"rule": CHOICE_RULE, "sweeps": sweeps},
            "runs_without_loss": failed, "set_aside": set_aside, "groups": groups}


def without_loss(runs: pd.DataFrame, where: str) -> list[str]:
    """A note per run without a loss (it diverged or failed): reported, not fitted."""
    loss = pd.to_numeric(runs["loss"], errors="coerce").to_numpy()
    names = runs["run"] if "run" in runs.columns else pd.Series("", index=runs.index)
    return [f"{where}:{i + 2}: run {names.iloc[i]} has no loss; not fitted"
            for i in np.flatnonzero(np.isnan(loss))]


def choose_scratch(frame: pd.DataFrame) -> tuple[pd.DataFrame, list[dict], list[str]]:
    """The frame with the scratch runs the learning-rate choice keeps
    (``symato.report.lrchoice.choose_runs``, as ``symato fit``): a from-scratch curve
    fitted through a sweep's worse learning rates would lie too high, and every D_T
    would come out too large. The sweep records name each sweep's chosen run.
    Transferred runs are all kept."""
    scratch = frame[~frame["transferred"]]
    rows = [{k: (None if isinstance(v, float) and math.isnan(v) else v) for k, v in r.items()}
            for r in scratch.to_dict("records")]
    kept, sweeps, notes = choose_runs(rows)
    lines = {r["_line"] for r in kept}
    keep = frame["transferred"] | frame["_line"].isin(lines)
    return frame[keep], sweeps, notes


def _figure(g: pd.DataFrame, fitted: dict[str, Any], arrays: dict[str, Any]) -> dict:
    """Per size: scratch points and curve (with band), transferred points; and the law's
    D_T against D_F per size (with band)."""
    curves, theta, sizes = arrays["curves"], arrays["theta"], arrays["sizes"]
    lo, hi = g["text"].min() / 1.5, g["text"].max() * 1.5
    grid = np.geomspace(lo, hi, CURVE_POINTS)
    per_size = []
    for j, s in enumerate(sizes):
        at = g[g["N"] == s]
        entry: dict[str, Any] = {
            "params": float(s),
            "scratch": {"text": at.loc[~at["transferred"], "text"].tolist(),
                        "loss": at.loc[~at["transferred"], "loss"].tolist()},
            "transferred": {"text": at.loc[at["transferred"], "text"].tolist(),
                            "loss": at.loc[at["transferred"], "loss"].tolist()}}
        if np.isfinite(curves[0, j, 0]):
            entry["curve"] = {"text": grid.tolist(),
                              "loss": scratch_loss(curves[0, j], grid).tolist()}
            boot = curves[1:, j][np.isfinite(curves[1:, j, 0])]
            if len(boot):
                low, high = interval(scratch_loss(boot[:, None, :], grid), axis=0)
                entry["curve"]["low"], entry["curve"]["high"] = low.tolist(), high.tolist()
        runs = [r for r in fitted["runs"] if r["params"] == s]
        entry["transfer"] = {"D_F": [r["D_F"] for r in runs], "D_T": [r["D_T"] for r in runs],
                             "status": [r["status"] for r in runs]}
        if theta is not None:
            d_f = np.geomspace(g.loc[g["transferred"], "text"].min() / 1.5,
                               g.loc[g["transferred"], "text"].max() * 1.5, CURVE_POINTS)
            line = law_dt(theta[:, None, :], d_f, s)
            entry["law"] = {"D_F": d_f.tolist(), "D_T": line[0].tolist()}
            if len(theta) > 1:
                low, high = interval(line[1:], axis=0)
                entry["law"]["low"], entry["law"]["high"] = low.tolist(), high.tolist()
        per_size.append(entry)
    return {"sizes": per_size}


def figure_data(doc: dict[str, Any]) -> dict[str, Any]:
    """Per group, per size: the scratch curve and points, the transferred points, and D_T
    against D_F with the law's line (what the figure draws)."""
    return {key: g["figure"] for key, g in doc["groups"].items()}


# ------------------------------------------------------------------------- markdown
def _fmt(x: float | None, digits: int = 3) -> str:
    return "∞" if x is None else f"{x:.{digits}g}"


def _span(ci: list[float | None] | None) -> str:
    if not ci:
        return ""
    return f" [{_fmt(ci[0])}, {_fmt(ci[1]) if ci[1] is not None else '∞'}]"


def markdown_table(doc: dict[str, Any]) -> str:
    """The summary's section: per group the law with its intervals, the runs' D_E, D_T and
    saving, and the budget beyond which the start saves less than the fraction."""
    lines = []
    for key, g in doc["groups"].items():
        law = g["law"]
        lines.append(f"**{key}** ({g['n_transferred']} transferred, {g['n_scratch']} scratch "
                     "runs; text in bytes)")
        lines.append("")
        if law["status"] != "ok":
            lines.append(f"{LAW_NAME}: not fitted: {law['reason']}")
        else:
            ci = law.get("ci", {})
            beta = (f", β = {_fmt(law['beta'])}{_span(ci.get('beta'))}" if law["beta"] is not None
                    else " (one size: N^β folded into k)")
            lines.append(f"{LAW_NAME}: k = {_fmt(law['k'])}{_span(ci.get('k'))}, α = "
                         f"{_fmt(law['alpha'])}{_span(ci.get('alpha'))}{beta}; {law['n_runs']} "
                         f"runs fitted, excluded: " + ", ".join(
                             f"{v} {k}" for k, v in g["excluded"].items()))
        lines += ["", "| N | D_F | bits/byte | scratch at D_F | D_E | D_T | D_T/D_E | status |",
                  "| --- | --- | --- | --- | --- | --- | --- | --- |"]
        for r in sorted(g["runs"], key=lambda r: (r["params"], r["D_F"])):
            d_e = "∞" if r["status"] == BEYOND else _fmt(r["D_E"]) + _span(r["D_E_ci"])
            d_t = "∞" if r["status"] == BEYOND else _fmt(r["D_T"]) + _span(r["D_T_ci"])
            lines.append(f"| {_fmt(r['params'])} | {_fmt(r['D_F'])} | {r['loss']:.4f} | "
                         f"{_fmt(r['scratch_loss_at_D_F'], 4)} | {d_e} | {d_t} | "
                         f"{_fmt(r['saving'], 2)} | {r['status']} |")
        stops = g.get("stops_paying")
        if stops:
            lines.append("")
            for s in stops["sizes"]:
                where = ("never (α >= 1)" if s["never"]
                         else f"D_F > {_fmt(s['D_F'])}{_span(s['ci'])}")
                lines.append(f"- N = {_fmt(s['params'])}: saves less than "
                             f"{stops['fraction']:.0%} of the text for {where}")
        lines.append("")
    return "\n".join(lines) if lines else "No transferred runs.\n"


# ------------------------------------------------------------------------- CLI
def read_table(path: Path) -> pd.DataFrame:
    """runs.csv as a frame (strings kept as text: a run name is never a number)."""
    try:
        return pd.read_csv(path, dtype={"run": str, "init_from": str, "tokenizer": str,
                                        "arch": str}, keep_default_na=True)
    except (OSError, UnicodeDecodeError, pd.errors.ParserError) as exc:
        raise SymatoError(f"cannot read runs table {path}: {exc}") from None


def main(argv: list[str]) -> int:
    """`symato transfer-fit --runs CSV --out JSON [--tokenizers CSV] [--markdown MD]`."""
    p = argparse.ArgumentParser(prog="symato transfer-fit", description=__doc__.split("\n")[0])
    p.add_argument("--runs", required=True, type=Path, help="runs table (init_from column)")
    p.add_argument("--out", required=True, type=Path, help="transfer fit JSON to write")
    p.add_argument("--tokenizers", type=Path,
                   help="tokenizer table: text = tokens x bytes per token (else text_bytes)")
    p.add_argument("--markdown", type=Path, help="also write the summary table here")
    p.add_argument("--params-column", choices=sorted(PARAMS_COLUMNS), default="total",
                   help="N = total parameters (column 'params') or non-embedding ones")
    p.add_argument("--scratch", choices=SCRATCH_FORMS, default="per_size",
                   help="scratch curves: L(D) per size, or the joint L(N, D)")
    p.add_argument("--saving", type=float, default=SAVING_FRACTION,
                   help="fraction of text saved below which transfer 'stops paying'")
    p.add_argument("--bootstrap", type=int, default=100, help="bootstrap replicates")
    p.add_argument("--seed", type=int, default=0, help="bootstrap seed")
    args = p.parse_args(argv)
    if args.bootstrap < 0:
        raise SymatoError(f"--bootstrap must be >= 0, got {args.bootstrap}")
    if not 0 < args.saving < 1:
        raise SymatoError(f"--saving must be in (0, 1), got {args.saving}")
    bpt = bytes_per_token(args.tokenizers) if args.tokenizers else None
    runs = read_table(args.runs)
    doc = transfer_fit(runs, PARAMS_COLUMNS[args.params_column], args.bootstrap, args.seed,
                       args.scratch, args.saving, bpt, str(args.runs))
    write_json_atomic(args.out, doc)
    for note in doc["runs_without_loss"] + doc["set_aside"]:
        print(f"symato transfer-fit: {note}", file=sys.stderr)
    if args.markdown:
        from symato.io import write_text_atomic

        write_text_atomic(args.markdown, markdown_table(doc))
    fitted = sum(g["law"]["status"] == "ok" for g in doc["groups"].values())
    print(f"symato transfer-fit: {len(doc['groups'])} group(s) with transferred runs, "
          f"{fitted} law(s) fitted -> {args.out}", file=sys.stderr)
    return 0
