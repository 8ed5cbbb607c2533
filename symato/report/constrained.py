"""The data-constrained scaling law (Muennighoff et al. 2023) fitted to repeated-epoch runs.

Why this law: when unique text runs out, the question is what another pass over it is
worth. "Scaling Data-Constrained Language Models" (Muennighoff et al., NeurIPS 2023)
replaces the data term of L(N, D) = E + A/N^α + B/D^β by the *effective* data

    D' = U_D + U_D · R_D* · (1 − exp(−R_D / R_D*)),

with U_D the unique tokens, R_D = epochs − 1 the repetitions beyond the first pass and
R_D* the decay constant: the tokens of repetition R_D are worth exp(−R_D/R_D*) of fresh
ones, and D' saturates at U_D (1 + R_D*) however long training repeats. The paper
fits R_D* = 15.4 (and α = β = 0.353 on its grid). A fresh-data run (R_D = 0) has D' = D.

The model term stays A/N^α with the trained parameters: the effective parameters N' of
the paper (with its R_N*) matter only for models larger than the unique data supports,
which a grid that does not vary size at fixed data cannot measure; they are not fitted.
A group whose runs span fewer than 3 model sizes is fitted without the model term
(E then holds A/N^α of the one size): L = E + B/D'^β.

How: as ``symato.report.fit`` (whose pieces it uses): the Huber loss (δ = 1e-3) of the
log residual, the coefficients (E, A, B) >= 0 by reweighted non-negative least squares
for fixed nonlinear parameters, and those — (α, β, log10 R_D*) — by a grid search then a
pattern search; 95% intervals from a bootstrap over runs. The same refusal rules: too
few runs (2 more than parameters), too few distinct sizes or data amounts, too few
repeated runs (2, at 2 or more distinct epoch counts), and parameters at a bound of the
search box are reported as ``at_bound``.

Worth of repetition: the tokens of repetition R_D are worth exp(−R_D/R_D*) of fresh ones
(the derivative of D' in R_D over U_D), so repeated text is still worth a fraction f of
fresh text up to ``1 + R_D* · ln(1/f)`` epochs: 1 + 0.693 R_D* for a half, 1 + 0.105 R_D*
for nine-tenths (11.7 and 2.6 epochs at the paper's R_D* = 15.4).
"""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from symato.report.laws import (
    BOUND_RTOL,
    CI_LEVEL,
    COARSE_IRLS,
    COEF_RTOL,
    FINAL_IRLS,
    MIN_DISTINCT_D,
    MIN_DISTINCT_N,
    REFINE_IRLS,
    REFINE_ROUNDS,
    STATUS_AT_BOUND,
    STATUS_OK,
    _huber_fit,
    interval,
)

LAW_NAME = "L(N,D')"
KEY = "L_NDU"
# The nonlinear search box: exponents as in fit.py, R_D* from 0.1 (a repetition is
# worth almost nothing) to 1000 (as good as fresh text over any grid we run).
BOUNDS_EXPONENT = (0.0, 3.0)
BOUNDS_LOG_RSTAR = (-1.0, 3.0)
GRID_STEP = 0.5  # of every searched dimension (exponents, log10 R_D*); the pattern search refines
CHUNK = 8  # bootstrap replicates fitted at once (the 3-D grid is memory-hungry)
MIN_REPEATED = 2  # runs with more than one epoch, at >= 2 distinct epoch counts
WORTH = {"half": 0.5, "nine_tenths": 0.9}  # fractions of fresh text reported in epochs


def effective_data(unique: Any, epochs: Any, r_star: Any) -> np.ndarray:
    """D' = U + U · R* · (1 − exp(−(epochs − 1)/R*)), broadcast."""
    unique, r_star = np.asarray(unique, dtype=float), np.asarray(r_star, dtype=float)
    repeats = np.asarray(epochs, dtype=float) - 1.0
    return unique * (1.0 + r_star * -np.expm1(-repeats / r_star))


def epochs_worth(r_star: Any, fraction: float) -> Any:
    """Epochs up to which a repetition is still worth ``fraction`` of fresh text."""
    return 1.0 + np.asarray(r_star, dtype=float) * math.log(1.0 / fraction)


def predict(named: dict[str, float], n: Any, unique: Any, epochs: Any) -> np.ndarray:
    """The law's loss for sizes ``n``, unique tokens and epochs (model term when fitted)."""
    d_eff = effective_data(unique, epochs, named["R_D_star"])
    loss = named["E"] + named["B"] * d_eff ** -named["beta"]
    if "A" in named:
        loss = loss + named["A"] * np.asarray(n, dtype=float) ** -named["alpha"]
    return loss


@dataclass(frozen=True)
class Form:
    """With or without the model term: the nonlinear and the linear parameters."""

    with_n: bool

    @property
    def searched(self) -> tuple[str, ...]:
        return ("alpha", "beta", "log_rstar") if self.with_n else ("beta", "log_rstar")

    @property
    def names(self) -> tuple[str, ...]:
        """Reported parameters, in the order of the raw vector."""
        if self.with_n:
            return ("E", "A", "alpha", "B", "beta", "R_D_star")
        return ("E", "B", "beta", "R_D_star")

    def box(self) -> tuple[np.ndarray, np.ndarray]:
        bounds = [BOUNDS_EXPONENT] * (len(self.searched) - 1) + [BOUNDS_LOG_RSTAR]
        return np.array([b[0] for b in bounds]), np.array([b[1] for b in bounds])

    def to_named(self, raw: np.ndarray) -> dict[str, float]:
        named = dict(zip(self.names, (float(x) for x in raw), strict=True))
        named["R_D_star"] = 10.0 ** named["R_D_star"]
        return named


def _design(form: Form, pts: np.ndarray, log_n: np.ndarray, unique: np.ndarray,
            epochs: np.ndarray, loss: np.ndarray) -> np.ndarray:
    """Columns 1[, N^-α], D'^-β over each run's loss at nonlinear points pts (..., m)."""
    beta, log_r = pts[..., -2:-1], pts[..., -1:]
    log_d = np.log(effective_data(unique, epochs, 10.0 ** log_r))
    cols = [np.ones(log_d.shape)]
    if form.with_n:
        cols.append(np.exp(-pts[..., 0:1] * log_n))
    cols.append(np.exp(-beta * log_d))
    return np.stack(cols, axis=-1) / loss[:, None]


def _search(form: Form, n: np.ndarray, unique: np.ndarray, epochs: np.ndarray,
            loss: np.ndarray, weights: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Raw optimum (coefficients and nonlinear parameters, in ``form.names`` order, R_D*
    as log10) and objective per row of ``weights``: grid, then pattern search."""
    log_n = np.log(n)
    lo, hi = form.box()
    axes = [np.arange(a, b + 1e-9, GRID_STEP) for a, b in zip(lo, hi, strict=True)]
    grid = np.array(list(itertools.product(*axes)))
    reps, runs = weights.shape
    x = _design(form, grid, log_n, unique, epochs, loss)
    _, obj, _ = _huber_fit(np.broadcast_to(x, (reps, *x.shape)),
                           np.broadcast_to(weights[:, None, :], (reps, len(grid), runs)),
                           COARSE_IRLS)
    centre = grid[np.argmin(obj, axis=1)]
    step = np.full(reps, GRID_STEP / 2)
    offsets = np.array(list(itertools.product((-1, 0, 1), repeat=len(lo))), dtype=float)
    middle = int(np.flatnonzero((offsets == 0).all(axis=1))[0])
    every, u = np.arange(reps), None
    for _ in range(REFINE_ROUNDS):
        pts = np.clip(centre[:, None, :] + step[:, None, None] * offsets, lo, hi)
        w = np.broadcast_to(weights[:, None, :], (*pts.shape[:2], runs))
        start = None if u is None else np.broadcast_to(u[:, None, :], w.shape)
        _, obj, last = _huber_fit(_design(form, pts, log_n, unique, epochs, loss), w,
                                  REFINE_IRLS, start)
        best = np.argmin(obj, axis=1)
        stay = obj[every, middle] <= obj[every, best]
        best = np.where(stay, middle, best)
        centre, u = pts[every, best], last[every, best]
        step = np.where(stay, step / 2, step)
    c, obj, _ = _huber_fit(_design(form, centre, log_n, unique, epochs, loss), weights,
                           FINAL_IRLS, u)
    if form.with_n:  # E, A, alpha, B, beta, log R
        cols = [c[:, 0], c[:, 1], centre[:, 0], c[:, 2], centre[:, 1], centre[:, 2]]
    else:  # E, B, beta, log R
        cols = [c[:, 0], c[:, 1], centre[:, 0], centre[:, 1]]
    return np.column_stack(cols), obj


def _pinned(form: Form, raw: np.ndarray, n: np.ndarray, unique: np.ndarray,
            epochs: np.ndarray, loss: np.ndarray) -> list[str]:
    """Parameters at a bound: an exponent or log10 R_D* within BOUND_RTOL of its span
    from an end of the box, a coefficient whose term is below COEF_RTOL of every loss."""
    named = form.to_named(raw)
    terms = {"E": np.full_like(loss, named["E"]),
             "B": named["B"] * effective_data(unique, epochs, named["R_D_star"])
             ** -named["beta"]}
    if form.with_n:
        terms["A"] = named["A"] * n ** -named["alpha"]
    pinned = [k for k, t in terms.items() if np.all(t <= COEF_RTOL * loss)]
    lo, hi = form.box()
    values = [named[k] for k in form.searched[:-1]] + [math.log10(named["R_D_star"])]
    for name, x, low, high in zip(form.searched, values, lo, hi, strict=True):
        if min(x - low, high - x) <= BOUND_RTOL * (high - low):
            pinned.append("R_D_star" if name == "log_rstar" else name)
    return [k for k in form.names if k in pinned]


def _problem(form: Form, n: np.ndarray, d_tokens: np.ndarray, epochs: np.ndarray) -> str | None:
    """Why these runs cannot support the law (None when they can)."""
    need = len(form.names) + 2
    repeated = epochs > 1 + 1e-9
    if len(n) < need:
        return f"{LAW_NAME} needs at least {need} runs, got {len(n)}"
    if form.with_n and len(np.unique(n)) < MIN_DISTINCT_N:
        return f"{LAW_NAME} needs {MIN_DISTINCT_N} distinct model sizes, got {len(np.unique(n))}"
    if len(np.unique(d_tokens)) < MIN_DISTINCT_D:
        return (f"{LAW_NAME} needs runs at {MIN_DISTINCT_D} distinct token counts, got "
                f"{len(np.unique(d_tokens))}")
    if repeated.sum() < MIN_REPEATED or len(np.unique(np.round(epochs[repeated], 6))) < 2:
        return (f"{LAW_NAME} needs at least {MIN_REPEATED} runs that repeat their text, at 2 "
                f"or more epoch counts; got {int(repeated.sum())}")
    return None


@dataclass
class ConstrainedFit:
    """The data-constrained law fitted to one group, in the shape written to JSON."""

    status: str
    n_runs: int
    reason: str | None = None
    form: Form | None = None
    params: dict[str, float] = field(default_factory=dict)
    ci: dict[str, list[float]] = field(default_factory=dict)
    objective: float | None = None
    bootstrap: dict[str, int] = field(default_factory=dict)
    at_bound: list[str] = field(default_factory=list)

    @property
    def fitted(self) -> bool:
        return self.status in (STATUS_OK, STATUS_AT_BOUND)

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"law": LAW_NAME, "status": self.status, "n_runs": self.n_runs}
        if self.reason is not None:
            out["reason"] = self.reason
        if not self.fitted or self.form is None:
            return out
        out.update(self.params)
        out["parameters"] = list(self.form.names)
        out["model_term"] = ("A/N^alpha" if self.form.with_n else
                             "folded into E (fewer than 3 model sizes)")
        for label, fraction in WORTH.items():
            out[f"epochs_worth_{label}"] = float(epochs_worth(self.params["R_D_star"], fraction))
        out["ci"] = self.ci
        out["ci_level"] = CI_LEVEL
        out["huber_objective"] = self.objective
        out["bootstrap"] = self.bootstrap
        if self.at_bound:
            out["at_bound"] = self.at_bound
        return out


def fit_constrained(n: np.ndarray, tokens: np.ndarray, unique: np.ndarray, loss: np.ndarray,
                    n_bootstrap: int = 100, seed: int = 0) -> ConstrainedFit:
    """Fit the data-constrained law to runs: parameters ``n``, tokens trained, unique
    tokens, losses; bootstrap intervals resample whole runs (count weights)."""
    n, tokens, unique, loss = (np.asarray(a, dtype=float) for a in (n, tokens, unique, loss))
    epochs = tokens / unique
    form = Form(with_n=len(np.unique(n)) >= MIN_DISTINCT_N)
    problem = _problem(form, n, tokens, epochs)
    if problem:
        return ConstrainedFit("too_few_runs", len(n), reason=problem)
    rng = np.random.default_rng(seed)
    weights, skipped = [np.ones(len(n))], 0
    for _ in range(n_bootstrap):
        idx = rng.integers(0, len(n), size=len(n))
        if _problem(form, n[idx], tokens[idx], epochs[idx]):  # lost a distinct value
            skipped += 1
            continue
        weights.append(np.bincount(idx, minlength=len(n)).astype(float))
    raws, objs = [], []
    for start in range(0, len(weights), CHUNK):
        raw, obj = _search(form, n, unique, epochs, loss, np.array(weights[start:start + CHUNK]))
        raws.append(raw)
        objs.append(obj)
    raw_all, obj_all = np.concatenate(raws), np.concatenate(objs)
    pinned = _pinned(form, raw_all[0], n, unique, epochs, loss)
    result = ConstrainedFit(
        STATUS_AT_BOUND if pinned else STATUS_OK, len(n), form=form,
        reason=(f"{LAW_NAME}: {', '.join(pinned)} at the edge of the search box; the runs "
                "do not determine " + ("it" if len(pinned) == 1 else "them")) if pinned else None,
        params=form.to_named(raw_all[0]), objective=float(obj_all[0]), at_bound=pinned)
    samples = [form.to_named(x) for x in raw_all[1:]]
    result.bootstrap = {"requested": n_bootstrap, "used": len(samples), "skipped": skipped}
    if samples:
        for key in form.names:
            low, high = interval(np.array([s[key] for s in samples]))
            result.ci[key] = [float(low), float(high)]
        for label, fraction in WORTH.items():  # monotone in R_D*: its interval, mapped
            low, high = result.ci["R_D_star"]
            result.ci[f"epochs_worth_{label}"] = [float(epochs_worth(low, fraction)),
                                                  float(epochs_worth(high, fraction))]
    return result


def is_repeated(row: dict[str, Any]) -> bool:
    """Whether a runs-table row repeated its text: fewer unique tokens than it trained."""
    unique = row.get("unique_tokens")
    return unique is not None and unique < row["tokens"] * (1 - 1e-9)


def fit_rows(rows: list[dict[str, Any]], params_key: str, n_bootstrap: int,
             seed: int) -> dict[str, Any]:
    """The law for one group of runs-table rows (fresh and repeated), as JSON."""
    def column(key: str) -> np.ndarray:
        return np.array([r[key] if r.get(key) is not None else r["tokens"] for r in rows],
                        dtype=float)

    result = fit_constrained(column(params_key), column("tokens"), column("unique_tokens"),
                             np.array([r["loss"] for r in rows], dtype=float),
                             n_bootstrap, seed)
    out = result.to_json()
    out["repeated_runs"] = sum(is_repeated(r) for r in rows)
    return out


HEADLINE_KEYS = ("law", "status", "reason", "E", "A", "alpha", "B", "beta", "ci", "ci_level",
                 "huber_objective", "bootstrap", "at_bound")


def with_constrained(out: dict[str, Any], rows: list[dict[str, Any]], params_key: str,
                     n_bootstrap: int, seed: int) -> dict[str, Any]:
    """A group's fit document (``symato.report.fit.fit_group``, fitted on its fresh runs)
    with the data-constrained law fitted on all its runs added under ``fits.L_NDU``; when
    that law is fitted it is the group's headline (E, A, α, B, β and ``R_D_star`` with
    their intervals under ``ci``), else the group's fresh-data headline stays."""
    fit = fit_rows(rows, params_key, n_bootstrap, seed)
    out = {**out, "fits": {**out["fits"], KEY: fit}, "n_runs": len(rows),
           "runs": [r.get("run", f"row{r.get('_line')}") for r in rows]}
    if fit["status"] in (STATUS_OK, STATUS_AT_BOUND):
        out = {k: v for k, v in out.items() if k not in HEADLINE_KEYS}
        out.update({k: v for k, v in fit.items() if k != "n_runs"})
    return out
