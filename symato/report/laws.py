"""The scaling laws L(N) = E + A·N^-α and L(N, D) = E + A/N^α + B/D^β and their fit.

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

This module is the math only (arrays in, parameters and intervals out), apart from
which runs are fitted (``symato.report.lrchoice``), how the runs table is read and the
parameter table written (``symato.report.tables``) and what ``symato fit`` does per group
of runs (``symato.report.fit``), so the fit can be read, tested and reused (the tokenizer
study fits in bytes of text with it) without the rest. It also holds what follows from a
fitted L(N, D): the compute-optimal allocation of a FLOP budget.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from symato.errors import SymatoError

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
