"""Scaling-law fits: L(N) = E + A·N^-α and L(N, D) = E + A/N^α + B/D^β; `symato fit`.

Why this shape of fit: the losses of a small grid of runs span a narrow range, so a
least-squares fit on raw loss is dominated by the largest runs and by outliers. Following
the Chinchilla recipe the misfit of a run is relative, and robust: a Huber loss
(δ = 1e-3) of the log residual log L̂ - log L, quadratic for well-fitted runs and linear
for outliers.

How: variable projection. For fixed exponents (α, β) the law is linear in (E, A, B), and
the best (E, A, B) >= 0 come from iteratively reweighted non-negative least squares
(each step an exact NNLS over the 2^k - 1 supports of k <= 3 coefficients, vectorised;
the weights make its fixed point the Huber optimum). So only (α, β) is searched: a grid
over the exponent box, then a pattern search from its best point. E, A, B >= 0 are the
natural bounds (E = 0: the runs show no floor; reported as at bound), α, β in [0, 3].
Confidence intervals come from a bootstrap that resamples whole runs, as count weights
on the runs, so all replicates are fitted at once. Losses are bits per byte, so fits of
different tokenizers compare.

Input: a CSV with columns ``params``, ``tokens``, ``loss`` (bits per byte) and optional
grouping columns ``tokenizer``, ``arch`` (and ``flops`` for the compute frontier).
"""

from __future__ import annotations

import argparse
import csv
import io
import itertools
import math
import re
import sys
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from symato.errors import SymatoError
from symato.io import atomic_path, write_json_atomic

HUBER_DELTA = 1e-3
# Fewest runs (and distinct values) a law is fitted on. L(N) has 3 free parameters:
# 3 runs interpolate exactly, so the 4th is the first that tests the curve. L(N, D)
# has 5: we want 2 more runs than parameters and at least 3 distinct sizes and token counts.
MIN_RUNS_N = 4
MIN_DISTINCT_N = 3
MIN_RUNS_ND = 7
MIN_DISTINCT_D = 3
CI_LEVEL = 0.95
# Statuses of a fitted law. "ok": every parameter inside its search box. "at_bound": one
# or more parameters at (within BOUND_RTOL of) a bound of the box, E's lower bound
# included (E -> 0 is a real outcome of a small grid: the runs do not show a floor): the
# curve describes the runs, but those parameters are not measured by them. Any other
# status (too_few_runs) has no parameters.
STATUS_OK = "ok"
STATUS_AT_BOUND = "at_bound"
FITTED = (STATUS_OK, STATUS_AT_BOUND)
BOUND_RTOL = 1e-4  # of an exponent's span (3e-4 for [0, 3])


def interval(values: np.ndarray, axis: int | None = None) -> tuple[Any, Any]:
    """The central CI_LEVEL interval (2.5 and 97.5 percentiles) of bootstrap values."""
    lo, hi = 100 * (1 - CI_LEVEL) / 2, 100 * (1 + CI_LEVEL) / 2
    return np.percentile(values, lo, axis=axis), np.percentile(values, hi, axis=axis)
GROUP_COLUMNS = ("tokenizer", "arch")
PARAMS_COLUMNS = {"total": "params", "non_embedding": "params_non_embedding"}
CURVE_POINTS = 60

# The exponent search: a grid of step GRID_STEP over BOUNDS_EXPONENT (16 x 16 points for
# L(N, D)), scored with COARSE_IRLS reweighting steps, then REFINE_ROUNDS rounds of a
# pattern search (3 x 3 neighbours; the step halves when none is better), each point
# scored with REFINE_IRLS steps warm-started from the centre's weights, and FINAL_IRLS
# steps at the optimum. Replicates are fitted CHUNK at a time (memory).
GRID_STEP = 0.2
COARSE_IRLS = 12
REFINE_IRLS = 6
REFINE_ROUNDS = 40
FINAL_IRLS = 60
CHUNK = 32
RIDGE = 1e-12  # on the column-normalised normal equations (alpha = 0 makes N^-α = 1 = E's)
BOUNDS_COEF = (0.0, math.inf)  # E, A, B
BOUNDS_EXPONENT = (0.0, 3.0)
# A coefficient is at its bound 0 when its term is below COEF_RTOL of every run's loss.
# Why 1e-3: the Huber objective's delta is 1e-3 on log-loss, so a term contributing less
# than 0.1% of every loss is below what the fit resolves (the demo's symato/rwkv L(N, D)
# came out "ok" with E = 7e-5 against losses of 1.7-4.4 under a 1e-9 rule).
COEF_RTOL = 1e-3


@dataclass
class Law:
    """One functional form: which inputs it uses and how its raw parameters map to names."""

    name: str  # "L(N)" or "L(N,D)"
    key: str  # "L_N" or "L_ND"
    names: tuple[str, ...]  # reported names, in the order of the raw vector
    uses_tokens: bool
    min_runs: int

    def bounds(self) -> list[tuple[float, float]]:
        """The search box, in the order of the raw vector (E, A, α[, B, β])."""
        b = [BOUNDS_COEF, BOUNDS_COEF, BOUNDS_EXPONENT]
        return b + ([BOUNDS_COEF, BOUNDS_EXPONENT] if self.uses_tokens else [])

    def names_raw_order(self) -> tuple[str, ...]:
        """Reported names in the order of the raw parameter vector."""
        return ("E", "A", "alpha", "B", "beta") if self.uses_tokens else ("E", "A", "alpha")

    def to_named(self, raw: np.ndarray) -> dict[str, float]:
        """Raw (E, A, α[, B, β]) to reported names."""
        out = {"E": float(raw[0]), "A": float(raw[1]), "alpha": float(raw[2])}
        if self.uses_tokens:
            out.update({"B": float(raw[3]), "beta": float(raw[4])})
        return {k: out[k] for k in self.names}


LAW_N = Law("L(N)", "L_N", ("E", "A", "alpha"), False, MIN_RUNS_N)
LAW_ND = Law("L(N,D)", "L_ND", ("E", "A", "B", "alpha", "beta"), True, MIN_RUNS_ND)


def predict(named: dict[str, float], n: Any, d: Any = None) -> np.ndarray:
    """The law's loss at sizes ``n`` (and tokens ``d`` when it has a B term)."""
    n = np.asarray(n, dtype=float)
    loss = named["E"] + named["A"] * n ** (-named["alpha"])
    if "B" in named:
        loss = loss + named["B"] * np.asarray(d, dtype=float) ** (-named["beta"])
    return loss


def _subsets(k: int) -> list[list[int]]:
    """The non-empty supports of k coefficients."""
    return [list(s) for r in range(1, k + 1) for s in itertools.combinations(range(k), r)]


def _wnnls(x: np.ndarray, u: np.ndarray) -> np.ndarray:
    """min over c >= 0 of sum u·(x c - 1)², batched over leading axes: x (..., n, k),
    u (..., n). Exact: the least-squares solution on every support, the best feasible one
    (the NNLS optimum is the unconstrained one on its own support)."""
    xu = x * u[..., None]
    m = np.einsum("...ni,...nj->...ij", xu, x)
    v = xu.sum(axis=-2)
    scale = np.sqrt(np.maximum(np.einsum("...ii->...i", m), 1e-300))
    m = m / (scale[..., :, None] * scale[..., None, :])
    v = v / scale
    best_c, best_q = np.zeros(v.shape), np.zeros(v.shape[:-1])  # c = 0: q = 0
    for sub in _subsets(x.shape[-1]):
        ms = m[..., sub, :][..., :, sub] + RIDGE * np.eye(len(sub))
        cs = np.linalg.solve(ms, v[..., sub, None])[..., 0]
        q = -(cs * v[..., sub]).sum(-1)  # c'Mc - 2v'c at the support's solution
        better = (cs >= 0).all(-1) & (q < best_q)
        if better.any():
            full = np.zeros(v.shape)
            full[..., sub] = cs
            best_c = np.where(better[..., None], full, best_c)
            best_q = np.where(better, q, best_q)
    return best_c / scale


def _huber_fit(x: np.ndarray, w: np.ndarray, iters: int, u: np.ndarray | None = None
               ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Coefficients c >= 0 minimising the mean Huber/δ of the log residuals
    log(x c) (count weights w), by ``iters`` reweighting steps from weights ``u``
    (default w). Returns (c, objective, the last weights) batched like ``_wnnls``.

    Each step is a weighted NNLS on the relative residual r = x c - 1 with weights
    ψ(log(1 + r)) / (r (1 + r)): its stationary points are those of the Huber objective
    on log residuals (the Chinchilla objective), reached by a fixed-point iteration.
    """
    u = w if u is None else u
    for _ in range(iters):
        r = np.einsum("...nk,...k->...n", x, _wnnls(x, u)) - 1.0
        u = w * _irls_weight(r)
    c = _wnnls(x, u)
    r = np.log(np.maximum(np.einsum("...nk,...k->...n", x, c), 1e-300))
    a = np.abs(r)
    h = np.where(a <= HUBER_DELTA, 0.5 * r * r, HUBER_DELTA * (a - 0.5 * HUBER_DELTA))
    return c, (w * h).sum(-1) / (HUBER_DELTA * w.sum(-1)), u


def _irls_weight(r: np.ndarray) -> np.ndarray:
    """ψ(log(1 + r)) / (r (1 + r)) for relative residuals r (1 at r = 0)."""
    one = np.maximum(1.0 + r, 1e-300)
    psi = np.clip(np.log(one), -HUBER_DELTA, HUBER_DELTA)
    small = np.abs(r) < 1e-12
    return np.where(small, 1.0, psi / np.where(small, 1.0, r)) / one


def _design(exps: np.ndarray, log_n: np.ndarray, log_d: np.ndarray | None,
            loss: np.ndarray) -> np.ndarray:
    """Columns 1, N^-α[, D^-β], each over the run's loss, for exponents exps (..., m):
    x (..., n, k), so that x c - 1 is the relative residual of c = (E, A[, B])."""
    cols = [np.ones((*exps.shape[:-1], len(log_n))), np.exp(-exps[..., 0:1] * log_n)]
    if log_d is not None:
        cols.append(np.exp(-exps[..., 1:2] * log_d))
    return np.stack(cols, axis=-1) / loss[:, None]


def _fit_weighted(law: Law, n: np.ndarray, d: np.ndarray, loss: np.ndarray,
                  weights: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The raw optimum (E, A, α[, B, β]) and objective for each row of ``weights``
    (R, runs): count weights of a bootstrap replicate, ones for the full fit."""
    log_n = np.log(n)
    log_d = np.log(d) if law.uses_tokens else None
    dims = 2 if law.uses_tokens else 1
    lo, hi = BOUNDS_EXPONENT
    grid = np.array(list(itertools.product(np.arange(lo, hi + 1e-9, GRID_STEP), repeat=dims)))
    reps, runs = weights.shape
    x = _design(grid, log_n, log_d, loss)  # (G, n, k)
    _, obj, _ = _huber_fit(np.broadcast_to(x, (reps, *x.shape)),
                           np.broadcast_to(weights[:, None, :], (reps, len(grid), runs)),
                           COARSE_IRLS)
    centre = grid[np.argmin(obj, axis=1)]  # (R, m)
    step = np.full(reps, GRID_STEP / 2)
    offsets = np.array(list(itertools.product((-1, 0, 1), repeat=dims)), dtype=float)
    middle = int(np.flatnonzero((offsets == 0).all(axis=1))[0])
    every = np.arange(reps)
    u = None
    for _ in range(REFINE_ROUNDS):
        pts = np.clip(centre[:, None, :] + step[:, None, None] * offsets, lo, hi)  # (R, P, m)
        w = np.broadcast_to(weights[:, None, :], (*pts.shape[:2], runs))
        start = None if u is None else np.broadcast_to(u[:, None, :], w.shape)
        _, obj, last = _huber_fit(_design(pts, log_n, log_d, loss), w, REFINE_IRLS, start)
        best = np.argmin(obj, axis=1)
        stay = obj[every, middle] <= obj[every, best]  # move only to a strictly better point
        best = np.where(stay, middle, best)
        centre, u = pts[every, best], last[every, best]
        step = np.where(stay, step / 2, step)
    c, obj, _ = _huber_fit(_design(centre, log_n, log_d, loss), weights, FINAL_IRLS, u)
    cols = [c[:, 0], c[:, 1], centre[:, 0]]
    if law.uses_tokens:
        cols += [c[:, 2], centre[:, 1]]
    return np.column_stack(cols), obj


def _params_at_bound(law: Law, raw: np.ndarray, n: np.ndarray, d: np.ndarray,
                     loss: np.ndarray) -> list[str]:
    """Names of the parameters the optimum pins to a box bound: an exponent within
    BOUND_RTOL of its span from an end, a coefficient whose term is below COEF_RTOL of
    every run's loss (E = 0 included).

    Why: a fit whose exponent sits on its bound (say a flat loss curve driving alpha to
    its maximum) is not a measurement of that exponent, and must not read like one.
    """
    named = law.to_named(raw)
    terms = {"E": np.full_like(loss, named["E"]), "A": named["A"] * n ** -named["alpha"]}
    if law.uses_tokens:
        terms["B"] = named["B"] * d ** -named["beta"]
    pinned = []
    for name, x, (low, high) in zip(law.names_raw_order(), raw, law.bounds(), strict=True):
        if name in terms:
            if np.all(terms[name] <= COEF_RTOL * loss):
                pinned.append(name)
        elif min(x - low, high - x) <= BOUND_RTOL * (high - low):
            pinned.append(name)
    return pinned


def bound_reason(law: Law, pinned: list[str]) -> str:
    """The reason written with an ``at_bound`` status."""
    return (f"{law.name}: {', '.join(pinned)} at the edge of the search box; the runs do not "
            "determine " + ("it" if len(pinned) == 1 else "them"))


def _data_problem(law: Law, n: np.ndarray, d: np.ndarray) -> str | None:
    """Why these runs cannot support ``law`` (None when they can)."""
    if len(n) < law.min_runs:
        return f"{law.name} needs at least {law.min_runs} runs, got {len(n)}"
    if len(np.unique(n)) < MIN_DISTINCT_N:
        return (f"{law.name} needs at least {MIN_DISTINCT_N} distinct model sizes, "
                f"got {len(np.unique(n))}")
    if law.uses_tokens and len(np.unique(d)) < MIN_DISTINCT_D:
        return (
            f"{law.name} needs runs at at least {MIN_DISTINCT_D} distinct data sizes D "
            f"(token counts; bytes of text in the tokenizer study), got {len(np.unique(d))}"
        )
    return None


@dataclass
class FitResult:
    """One law fitted to one group, in the shape written to JSON."""

    law: Law
    status: str
    n_runs: int
    reason: str | None = None
    params: dict[str, float] = field(default_factory=dict)
    ci: dict[str, list[float]] = field(default_factory=dict)
    objective: float | None = None
    bootstrap: dict[str, int] = field(default_factory=dict)
    samples: np.ndarray | None = None  # bootstrap parameter vectors (raw), for bands
    # which replicate (0..n_bootstrap-1) each row of ``samples`` is: fits of other groups
    # with the same seed and row order drew the same run indices, so they pair by it
    sample_ids: list[int] = field(default_factory=list)
    at_bound: list[str] = field(default_factory=list)  # parameters pinned to a box bound

    @property
    def fitted(self) -> bool:
        """Whether there are parameters (status ok or at_bound)."""
        return self.status in FITTED

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"law": self.law.name, "status": self.status, "n_runs": self.n_runs}
        if self.reason is not None:
            out["reason"] = self.reason
        if not self.fitted:
            return out
        out.update(self.params)
        out["ci"] = self.ci
        out["ci_level"] = CI_LEVEL
        out["huber_objective"] = self.objective
        out["bootstrap"] = self.bootstrap
        if self.at_bound:
            out["at_bound"] = self.at_bound
        return out


def fit_law(
    law: Law,
    n: np.ndarray,
    d: np.ndarray,
    loss: np.ndarray,
    n_bootstrap: int = 100,
    seed: int = 0,
    resamples: Sequence[np.ndarray] | None = None,
) -> FitResult:
    """Fit ``law`` to runs (sizes ``n``, tokens ``d``, losses ``loss``) with bootstrap CIs.

    Each bootstrap replicate resamples runs with replacement (count weights on the runs)
    and is refitted by the same search as the full fit, all replicates at once.
    Replicates that lose the needed distinct sizes or token counts are skipped and
    counted. ``resamples`` replaces the draws (one index
    array per replicate, into these runs; ``n_bootstrap`` is then its length): how
    several groups share one draw of grid cells, for a paired bootstrap
    (``symato.report.study``).
    """
    problem = _data_problem(law, n, d)
    if problem:
        return FitResult(law, "too_few_runs", len(n), reason=problem)
    if not len(n) == len(d) == len(loss):
        raise SymatoError(f"{law.name} fit: sizes, tokens and losses differ in length")
    if resamples is None:
        rng = np.random.default_rng(seed)
        resamples = [rng.integers(0, len(n), size=len(n)) for _ in range(n_bootstrap)]
    n_bootstrap = len(resamples)
    weights, ids, skipped = [np.ones(len(n))], [], 0
    for replicate, idx in enumerate(resamples):
        idx = np.asarray(idx, dtype=int)
        thin_d = law.uses_tokens and len(np.unique(d[idx])) < MIN_DISTINCT_D
        if len(np.unique(n[idx])) < MIN_DISTINCT_N or thin_d:
            skipped += 1
            continue
        weights.append(np.bincount(idx, minlength=len(n)).astype(float))
        ids.append(replicate)
    raws, objs = [], []
    for start in range(0, len(weights), CHUNK):
        raw, obj = _fit_weighted(law, n, d, loss, np.array(weights[start:start + CHUNK]))
        raws.append(raw)
        objs.append(obj)
    raw_all, obj_all = np.concatenate(raws), np.concatenate(objs)
    best, obj = raw_all[0], float(obj_all[0])
    samples = list(raw_all[1:])
    pinned = _params_at_bound(law, best, n, d, loss)
    result = FitResult(law, STATUS_AT_BOUND if pinned else STATUS_OK, len(n),
                       reason=bound_reason(law, pinned) if pinned else None,
                       params=law.to_named(best), objective=obj, sample_ids=ids,
                       at_bound=pinned)
    result.bootstrap = {"requested": n_bootstrap, "used": len(samples), "skipped": skipped}
    if samples:
        arr = np.array(samples)
        result.samples = arr
        named = [law.to_named(x) for x in arr]
        for key in law.names:
            low, high = interval(np.array([s[key] for s in named]))
            result.ci[key] = [float(low), float(high)]
    return result


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


def optimal_allocation(named: dict[str, float], flops_per_param_token: float) -> dict[str, Any]:
    """Compute-optimal N and D for budget C = k·N·D under a fitted L(N, D).

    Minimising A/N^α + B/D^β with D = C/(kN) gives N_opt = G·(C/k)^(β/(α+β)) with
    G = (αA/(βB))^(1/(α+β)), and D_opt = (C/k)/N_opt.
    """
    a, b = named["alpha"], named["beta"]
    if a <= 0 or b <= 0:
        return {"status": "degenerate", "reason": "an exponent is 0: no interior optimum"}
    g = (a * named["A"] / (b * named["B"])) ** (1.0 / (a + b))
    return {
        "status": "ok",
        "flops_per_param_token": flops_per_param_token,
        "n_opt_exponent": b / (a + b),
        "d_opt_exponent": a / (a + b),
        "G": g,
    }


def optimal_curve(named: dict[str, float], alloc: dict[str, Any], flops: np.ndarray) -> dict:
    """L at the compute-optimal (N, D) for each budget in ``flops``."""
    c = np.asarray(flops, dtype=float) / alloc["flops_per_param_token"]
    n_opt = alloc["G"] * c ** alloc["n_opt_exponent"]
    d_opt = c / n_opt
    loss = predict(named, n_opt, d_opt)
    return {"flops": flops.tolist(), "params": n_opt.tolist(), "tokens": d_opt.tolist(),
            "loss": loss.tolist()}


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
    from symato.report.constrained import is_repeated, with_constrained

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


# ---------------------------------------------------------------- the learning-rate choice

# Settings a sub-grid's ``vary:`` *tunes*: of the runs that differ only in these, the fits
# keep the one with the lowest bits per byte. Any other varied setting (split_syllables)
# changes what is trained, not how well it is tuned, so its runs are a study of their own
# and are not fitted (unless at the setting's default value).
TUNED_SETTINGS = ("lr", "lr_min")
# Losses within this relative distance of the best count as tied.
TIE_RTOL = 1e-9
CHOICE_RULE = (
    "Runs that differ only in a tuned setting (lr, lr_min: same tokenizer, architecture, "
    "size and budget) form one sweep; the fits keep its run with the lowest validation "
    "bits per byte. Ties (within a relative 1e-9) go to the configured value (the run "
    "without a -lr suffix), then to the lower learning rate. A chosen value that is the "
    "lowest or highest one swept is at the edge: the optimum is not bracketed. A run "
    "without a loss (it diverged or failed) is never chosen and counts as worse than "
    "every run with one, so a diverged higher rate brackets the optimum from above. "
    "Seed replicates (-s suffixes) are not a sweep: a value's replicates are scored by "
    "their mean, and every replicate of the chosen value is fitted."
)


def split_run_name(run: str) -> tuple[str, dict[str, float]]:
    """A run name without its varied-setting suffixes, and those settings' values.

    ``rwkv-L2-D64-B200k-lr0.002`` -> ``("rwkv-L2-D64-B200k", {"lr": 0.002})``; the inverse
    of ``symato.run.grid.run_name``'s suffixes (short names from the settings contract).
    """
    from symato.run.grid import split_name

    base, varied = split_name(run)
    return base, {key: float(value) for key, value in varied.items()}


def _is_default(setting: str, value: float) -> bool:
    from symato.run.settings import SPEC

    return math.isclose(value, float(SPEC[setting].default), rel_tol=0, abs_tol=1e-12)


def replicate_key(run: str) -> tuple[str, float | None]:
    """A run name without its seed suffix, and that seed (None when the name has none).

    ``rwkv-L2-D64-B200k-lr0.002-s2`` -> ``("rwkv-L2-D64-B200k-lr0.002", 2.0)``: runs with
    the same key are replicates (they differ only in the seed). The other suffixes keep
    the order ``symato.run.grid.run_name`` writes them in.
    """
    from symato.run.settings import varied_names

    base, varied = split_run_name(run)
    seed = varied.pop("seed", None)
    shorts = varied_names()
    return base + "".join(f"-{shorts[k]}{format_number(varied[k])}" for k in sorted(varied)), seed


def choose_runs(
    rows: list[dict[str, Any]],
) -> tuple[list[dict[str, Any]], list[dict[str, Any]], list[str]]:
    """Apply the learning-rate choice rule (``CHOICE_RULE``) to the runs to be fitted.

    Returns (the rows to fit, one record per sweep, notes on the rows set aside
    because another varied setting is off its default). Rows without a run name are
    kept as they are. Rows whose ``loss`` is None (``read_runs(keep_failed=True)``) take
    part in their sweep as failed runs and are never kept. A sweep is a group of runs
    with two or more values of a tuned setting; its record: ``tokenizer``, ``arch``,
    ``base`` (the run name without tuned suffixes), ``runs`` (``run``, ``lr``,
    ``lr_min``, ``loss`` each, by learning rate; ``failed`` on a run without a loss),
    ``chosen`` (its run; None when every run failed), ``lr`` and ``lr_min`` (its
    values), ``swept`` (tuned settings with more than one value) and ``at_edge``
    (setting -> ``"low"`` or ``"high"`` where the chosen value is the smallest or
    largest swept, failed runs included).

    Seed replicates (``-s`` suffixes, ``vary: {seed: [...]}``) are not a sweep: the runs
    of one tuned value that differ only in the seed are scored together by their mean
    loss (``loss``; ``replicates`` counts the seeds measured, ``replicate_runs`` names
    them), and every measured replicate of the chosen value is kept, each a point of
    the fits. Choosing the best seed would pick luck.

    WSD runs (``-wsd`` suffix, ``schedule: wsd``) are fitted like any run, but in a cell
    (seeds pooled) that also has a measured cosine run they are the WSD check
    (summary.md compares the two): the cosine runs are fitted, the WSD runs set aside, so
    no cell counts twice.
    """
    kept: list[dict[str, Any]] = []
    sweeps: dict[tuple[Any, ...], list[dict[str, Any]]] = {}
    notes = []
    cosine_cells = {(r.get("tokenizer"), r.get("arch"), replicate_key(r["run"])[0])
                    for r in rows if r.get("run") and r.get("loss") is not None
                    and "decay" not in split_run_name(r["run"])[1]}
    for r in rows:
        if not r.get("run"):
            if r.get("loss") is not None:
                kept.append(r)
            continue
        base, varied = split_run_name(r["run"])
        cell = (r.get("tokenizer"), r.get("arch"), replicate_key(without_schedule(r["run"]))[0])
        if "decay" in varied and cell in cosine_cells:
            notes.append(f"run {r.get('tokenizer', '')}/{r['run']}: a WSD branch beside the "
                         "cosine run of its cell (the WSD check in summary.md; not fitted)")
            continue
        other = {k: v for k, v in varied.items()
                 if k not in (*TUNED_SETTINGS, *REPLICATE_SETTINGS, *SCHEDULE_SETTINGS)
                 and not _is_default(k, v)}
        if other:
            what = ", ".join(f"{k} = {format_number(v)}" for k, v in sorted(other.items()))
            notes.append(f"run {r.get('tokenizer', '')}/{r['run']}: {what} (a study of its own; "
                         "not fitted)")
            continue
        tuned = {k: (r.get(k) if r.get(k) is not None else varied.get(k)) for k in TUNED_SETTINGS}
        entry = {**r, "_base": base, "_tuned": tuned, "_configured": not (set(varied) &
                                                                            set(TUNED_SETTINGS))}
        sweeps.setdefault((r.get("tokenizer"), r.get("arch"), base, "decay" in varied),
                          []).append(entry)
    records = []
    for (tok, arch, base, _), group in sweeps.items():
        values = _by_tuned_value(group)
        measured = [v for v in values if v["loss"] is not None]
        best = _best_of(measured) if measured else None
        if best is not None:
            kept.extend({k: v for k, v in r.items() if k not in _CHOICE_KEYS}
                        for r in best["_members"] if r["loss"] is not None)
        record = _sweep_record(tok, arch, base, values, best)
        if record["swept"]:
            records.append(record)
    kept.sort(key=lambda r: r.get("_line", 0))
    return kept, records, notes


# Settings whose varied runs are replicates of one another, not a sweep (choose_runs).
REPLICATE_SETTINGS = ("seed",)
# Settings a run's name carries for its schedule (WSD: -wsd0.2), not a study of their own.
SCHEDULE_SETTINGS = ("decay",)
_SCHEDULE_PART = re.compile(r"-wsd[0-9.]+(?=-|$)")


def without_schedule(run: str) -> str:
    """A WSD run's name without its ``-wsd`` part: the name of the cosine run of its cell
    (``rwkv-L1-D32-B30k-wsd0.2-s2`` -> ``rwkv-L1-D32-B30k-s2``)."""
    return _SCHEDULE_PART.sub("", run)
_CHOICE_KEYS = ("_base", "_tuned", "_configured")  # bookkeeping of choose_runs only


def _by_tuned_value(group: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """One entry per tuned value of a sweep group: its seed replicates together, scored by
    their mean loss (None when every replicate failed), named by one of them (the run
    without a seed suffix, else the first by name)."""
    by_value: dict[tuple[Any, ...], list[dict[str, Any]]] = {}
    for r in group:
        key = tuple(inf_if_none(r["_tuned"][k]) for k in TUNED_SETTINGS)
        by_value.setdefault(key, []).append(r)
    out = []
    for runs in by_value.values():
        # Runs of one value and one seed are the same run asked for twice (a suffix at
        # its default, e.g. -split0): the better one stands for them.
        by_seed: dict[Any, list[dict[str, Any]]] = {}
        for r in runs:
            seed = r.get("seed") if r.get("seed") is not None else replicate_key(r["run"])[1]
            by_seed.setdefault(seed, []).append(r)
        members = [min(same, key=lambda r: (r["loss"] is None, inf_if_none(r["loss"]),
                                            r["run"])) for same in by_seed.values()]
        members.sort(key=lambda r: (replicate_key(r["run"])[1] is not None, r["run"]))
        losses = [r["loss"] for r in members if r["loss"] is not None]
        out.append({"run": members[0]["run"], "_tuned": members[0]["_tuned"],
                    "_configured": members[0]["_configured"], "_members": members,
                    "loss": float(np.mean(losses)) if losses else None,
                    "replicates": len(losses)})
    return out


def _best_of(group: list[dict[str, Any]]) -> dict[str, Any]:
    """Lowest loss; ties to the configured value, then the lower lr and lr_min."""
    low = min(r["loss"] for r in group)
    tied = [r for r in group if r["loss"] <= low * (1 + TIE_RTOL)]
    inf = math.inf
    return min(tied, key=lambda r: (not r["_configured"],
                                    *(inf if r["_tuned"][k] is None else r["_tuned"][k]
                                      for k in TUNED_SETTINGS), r["run"]))


def _sweep_record(tok: Any, arch: Any, base: str, by_value: list[dict[str, Any]],
                  best: dict[str, Any] | None) -> dict[str, Any]:
    def entry(v: dict[str, Any]) -> dict[str, Any]:
        out = {"run": v["run"], **v["_tuned"], "loss": v["loss"]}
        if len(v["_members"]) > 1:
            out["replicates"] = v["replicates"]
            out["replicate_runs"] = [r["run"] for r in v["_members"]]
        return {**out, **({"failed": True} if v["loss"] is None else {})}

    runs = sorted((entry(v) for v in by_value),
                  key=lambda r: tuple(inf_if_none(r[k]) for k in TUNED_SETTINGS))
    swept, at_edge = [], {}
    for key in TUNED_SETTINGS:
        values = sorted({r[key] for r in runs if r[key] is not None})
        if len(values) < 2:
            continue
        swept.append(key)
        chosen = None if best is None else best["_tuned"][key]
        if chosen is not None and chosen == values[0]:
            at_edge[key] = "low"
        elif chosen is not None and chosen == values[-1]:
            at_edge[key] = "high"
    tuned = best["_tuned"] if best is not None else dict.fromkeys(TUNED_SETTINGS)
    return {"tokenizer": tok, "arch": arch, "base": base, "runs": runs,
            "chosen": None if best is None else best["run"], **tuned,
            "loss": None if best is None else best["loss"], "swept": swept,
            "at_edge": at_edge, "failed": [r["run"] for r in runs if r.get("failed")]}


def inf_if_none(value: float | None) -> float:
    """Sort key helper: unknown values last."""
    return math.inf if value is None else value


def format_number(value: float) -> str:
    """A setting's value as written in run names (0.002, not 2e-03)."""
    return np.format_float_positional(float(value), trim="-")


# ---------------------------------------------------------------- reading the runs table


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
    from symato.report.constrained import is_repeated  # it imports this module

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
