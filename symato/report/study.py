"""The tokenizer study: bits per byte against training *text*, per tokenizer; `symato study`.

Why a fit of its own: the scaling fits (``symato fit``) put training tokens on the D axis,
and a token means a different amount of text for every tokenizer, so their curves cannot
be laid over each other. Here D is **bytes of training text seen**,

    D = tokens trained x the tokenizer's train-split bytes per token (tokenizers.csv),

the same axis for every tokenizer. That is the text a run actually saw: a byte-budget
run trains on whole steps, a little more than its budget (up to one step's tokens), and a
token-budget run has a text size too. Per (tokenizer, architecture) the same
L(N, D) = E + A/N^α + B/D^β as ``symato.report.laws`` fits it (Huber on log-loss,
variable projection, bootstrap over runs), on the runs the learning-rate choice rule keeps
(``symato.report.lrchoice.choose_runs``).

Which runs: the architectures trained with two or more tokenizers, and of those the
model sizes (layers x width) trained with two or more tokenizers; a size only one
tokenizer has (an architecture ladder's extra size) is not part of the comparison.

Crossovers: at each model size, where two tokenizers' curves cross inside the text
range both measured there. Each tokenizer's N is its own total (or non-embedding)
parameter count at that size: the tokenizer changes the embedding, and that is part of
what is compared. Point and interval both come from a paired bootstrap (CROSSOVER_RULE):
per architecture, each replicate draws grid cells (model size x budget) with
replacement from the cells any tokenizer was trained at, and every tokenizer's fit of
that replicate uses its runs in the drawn cells, so replicate i of two tokenizers
resampled the same cells even where one of them lacks a cell (it then just has no run
there). A crossover is a number only when at least CROSSOVER_MIN_SHARE of the bootstrap
pairs cross inside the range; else it is "not_determined", with the share. A failed fit
gives "not_computed" with the reason; a fit with a parameter at its search bound is
computed and flagged. Without a bootstrap (``--bootstrap 0``) the full fit's crossing is
reported without an interval ("none" where it does not cross).

Seed replicates (runs that differ only in the seed): the bootstrap also resamples the
replicates inside each drawn cell, so seed noise enters the intervals; a crossover that
is a number with cells resampled alone but not with the replicates is "not_resolved".
A difference of two tokenizers at one cell is resolved by the replicates only beyond
DIFFERENCE_SE standard errors (``cell_differences``), and ``ranking_agreement`` gives
how often two tokenizers' order at the smallest size holds at the largest, over seeds.
"""

from __future__ import annotations

import argparse
import csv
import itertools
import math
import sys
from pathlib import Path
from typing import Any

import numpy as np

from symato.errors import SymatoError
from symato.io import write_json_atomic
from symato.report.fit import CURVE_POINTS
from symato.report.laws import (
    CI_LEVEL,
    FITTED,
    HUBER_DELTA,
    LAW_ND,
    FitResult,
    fit_law,
    interval,
    predict,
)
from symato.report.lrchoice import TUNED_SETTINGS, choose_runs, replicate_key, split_run_name
from symato.report.tables import PARAMS_COLUMNS, read_runs, table_rows, write_table

# Points of the log grid a difference of two curves is scanned on for sign changes.
SCAN_POINTS = 400
# The share of bootstrap pairs that must cross inside the measured range for a
# crossover to be reported as a number (with an interval); below it the crossover is
# "not determined in range". 1/2 is also what keeps the point inside its interval.
CROSSOVER_MIN_SHARE = 0.5
CROSSOVER_RULE = (
    "A crossover is reported as a number only when at least half of the bootstrap pairs "
    "(the two tokenizers' fits of one replicate) cross inside the text range both measured; "
    "otherwise it is 'not determined in range', with the share of pairs that cross. The "
    "number is the median of the crossing pairs' crossovers (each pair's first crossing in "
    "the direction most pairs cross in); the interval is the 2.5-97.5 percentiles over all "
    "pairs, a pair without a crossing counted below the range when the tokenizer better "
    "above the crossover already wins at the range's low end, else above it (an open end: "
    "'< low', '> high'). So the number always lies inside its interval."
)
CROSSOVER_COLUMNS = ["arch", "size", "a", "b", "status", "text_bytes", "ci_low", "ci_high",
                     "ci_low_open", "ci_high_open", "crossings", "better_below",
                     "better_above", "better", "range_low", "range_high", "bootstrap_pairs",
                     "bootstrap_crossing", "bootstrap_share", "cells_only_share", "notes",
                     "reason"]


def bytes_per_token(path: Path) -> dict[str, float]:
    """Train-split bytes per token of each tokenizer in tokenizers.csv (``symato collect``)."""
    try:
        with open(path, newline="", encoding="utf-8") as fh:
            rows = list(csv.DictReader(fh))
    except (OSError, UnicodeDecodeError) as exc:
        raise SymatoError(f"cannot read tokenizer table {path}: {exc}") from None
    out = {}
    for line, rec in enumerate(rows, start=2):
        if rec.get("split") != "train":
            continue
        for key in ("tokenizer", "tokens", "bytes"):
            if not rec.get(key):
                raise SymatoError(f"{path}:{line}: column {key!r} is empty or missing")
        try:
            tokens, text = float(rec["tokens"]), float(rec["bytes"])
        except ValueError:
            raise SymatoError(f"{path}:{line}: 'tokens' and 'bytes' must be numbers") from None
        if tokens <= 0 or text <= 0:
            raise SymatoError(f"{path}:{line}: 'tokens' and 'bytes' must be positive")
        out[rec["tokenizer"]] = text / tokens
    return out


def study_rows(rows: list[dict[str, Any]], bpt: dict[str, float], where: str) -> list[dict]:
    """The runs of the comparison, each with ``text`` = bytes of training text seen.

    Keeps the architectures with >= 2 tokenizers and, within each, the sizes trained with
    >= 2 tokenizers. Every run needs ``n_layer`` and ``n_embd`` (runs.csv has them).
    """
    for r in rows:
        if r.get("n_layer") is None or r.get("n_embd") is None:
            raise SymatoError(f"{where}: run {r.get('run', r.get('_line'))} has no "
                              "n_layer/n_embd (needed to compare tokenizers at a size)")
        if r["tokenizer"] not in bpt:
            raise SymatoError(f"{where}: tokenizer {r['tokenizer']!r} has no train split in "
                              "the tokenizer table (its bytes per token are unknown)")
    toks_at: dict[tuple[Any, ...], set[str]] = {}
    for r in rows:
        toks_at.setdefault((r["arch"], r["n_layer"], r["n_embd"]), set()).add(r["tokenizer"])
    out = [{**r, "text": r["tokens"] * bpt[r["tokenizer"]]} for r in rows
           if len(toks_at[(r["arch"], r["n_layer"], r["n_embd"])]) >= 2]
    return sorted(out, key=lambda r: (r["arch"], r["tokenizer"], r["n_layer"], r["n_embd"],
                                      r["text"]))


def equally_tuned(rows: list[dict[str, Any]]) -> tuple[list[dict[str, Any]], list[str]]:
    """The rows the comparison may use, and a note per learning-rate sweep set aside.

    Why: the fits keep the best run of each learning-rate sweep. Where, at one
    architecture, size and budget, only some tokenizers were swept (the demo sweeps
    symato's architecture runs), their best-of-three would be compared with the others'
    single configured run: an advantage of tuning, not of the tokenizer. In such a cell
    only the configured runs (no ``-lr``/``-lrmin`` suffix) take part; where every
    tokenizer has the same sweep, each keeps its best run.
    """
    def tuned(r: dict[str, Any]) -> tuple[str | None, tuple[tuple[str, float], ...]]:
        if not r.get("run"):
            return None, ()
        base, varied = split_run_name(r["run"])
        return base, tuple(sorted((k, v) for k, v in varied.items()
                                  if k in TUNED_SETTINGS))

    swept: dict[tuple[Any, ...], dict[Any, set]] = {}
    for r in rows:
        base, values = tuned(r)
        swept.setdefault((r.get("arch"), base), {}).setdefault(r.get("tokenizer"), set()).add(
            values)
    kept, notes = [], []
    for r in rows:
        base, values = tuned(r)
        cell = swept[(r.get("arch"), base)]
        if values and len({frozenset(v) for v in cell.values()}) > 1:
            notes.append(f"run {r.get('tokenizer')}/{r['run']}: a learning-rate sweep the other "
                         "tokenizers of its size and budget did not get (the study compares "
                         "their configured runs)")
            continue
        kept.append(r)
    return kept, notes


def budget_of(run: str | None) -> str | None:
    """The budget field of a run name: ``rwkv4-L2-D64-B600k-lr0.002`` -> ``B600k``."""
    if not run:
        return None
    return split_run_name(run)[0].rsplit("-", 1)[-1]


def size_name(n_layer: float, n_embd: float) -> str:
    """(2, 64) -> 'L2-D64', as in config sizes."""
    return f"L{int(n_layer)}-D{int(n_embd)}"


def cell_of(r: dict[str, Any]) -> tuple[int, int, str]:
    """A run's grid cell: model size and budget (the budget field of its name, or its
    token count when it has no name). Tokenizers are paired cell by cell."""
    return (int(r["n_layer"]), int(r["n_embd"]), budget_of(r.get("run")) or str(r["tokens"]))


def paired_resamples(
    by_tokenizer: dict[str, list[dict[str, Any]]], n_bootstrap: int, seed: int,
    replicates: bool = True,
) -> dict[str, list[np.ndarray]]:
    """Per tokenizer, one index array (into its runs) per bootstrap replicate, all drawn
    from one draw of grid cells: replicate i of every tokenizer resampled the same cells.

    Why not each fit's own draw of its runs: those pair only when every tokenizer has
    exactly the same cells in the same order; one missing run (a failed run, a sweep
    set aside) would silently unpair every replicate.

    Seed replicates: where a tokenizer has k > 1 runs in a drawn cell (runs that differ
    only in the seed), ``replicates`` draws k of them with replacement, independently per
    tokenizer and per drawn cell, so seed noise enters the intervals. Seeds are not
    paired across tokenizers: the same seed gives another vocabulary other initial
    weights and other token windows. The cells come from their own generator, so the
    cell draw is the same with and without replicate resampling (and as before seeds
    existed).
    """
    cells = sorted({cell_of(r) for group in by_tokenizer.values() for r in group})
    rows_at = {tok: {c: [i for i, r in enumerate(group) if cell_of(r) == c] for c in cells}
               for tok, group in by_tokenizer.items()}
    rng = np.random.default_rng(seed)
    inner = np.random.default_rng([seed, 1])
    out: dict[str, list[np.ndarray]] = {tok: [] for tok in by_tokenizer}
    for _ in range(n_bootstrap):
        drawn = [cells[j] for j in rng.integers(0, len(cells), size=len(cells))]
        for tok, at in rows_at.items():
            idx: list[int] = []
            for c in drawn:
                mine = at[c]
                if replicates and len(mine) > 1:
                    idx.extend(mine[j] for j in inner.integers(0, len(mine), size=len(mine)))
                else:
                    idx.extend(mine)
            out[tok].append(np.array(idx, dtype=int))
    return out


def has_replicates(rows: list[dict[str, Any]]) -> bool:
    """Whether some tokenizer has two or more runs in one grid cell of one architecture."""
    cells = [(r["tokenizer"], r["arch"], cell_of(r)) for r in rows]
    return len(cells) != len(set(cells))


def fit_groups(
    rows: list[dict[str, Any]], params_key: str, n_bootstrap: int, seed: int,
    replicates: bool = True,
) -> tuple[dict[str, dict[str, Any]], dict[str, FitResult]]:
    """L(N, D) with D in text bytes per (tokenizer, arch): JSON entries and the raw fits.

    ``replicates``: resample the seed replicates inside each drawn cell
    (``paired_resamples``); False resamples cells only (for "not resolved")."""
    by_group: dict[tuple[str, str], list[dict[str, Any]]] = {}
    for r in rows:
        by_group.setdefault((r["tokenizer"], r["arch"]), []).append(r)
    text_range = {arch: (min(r["text"] for r in rows if r["arch"] == arch),
                         max(r["text"] for r in rows if r["arch"] == arch))
                  for arch in {r["arch"] for r in rows}}
    resamples: dict[tuple[str, str], list[np.ndarray]] = {}
    for arch in sorted(text_range):
        mine = {tok: g for (tok, a), g in by_group.items() if a == arch}
        for tok, idx in paired_resamples(mine, n_bootstrap, seed, replicates).items():
            resamples[(tok, arch)] = idx
    entries, results = {}, {}
    for (tok, arch), group in sorted(by_group.items()):
        key = f"{tok}/{arch}"
        n = np.array([r[params_key] for r in group], dtype=float)
        d = np.array([r["text"] for r in group], dtype=float)
        loss = np.array([r["loss"] for r in group], dtype=float)
        result = fit_law(LAW_ND, n, d, loss, seed=seed,
                                 resamples=resamples[(tok, arch)])
        results[key] = result
        entry: dict[str, Any] = {"by": {"tokenizer": tok, "arch": arch}, **result.to_json()}
        entry["fits"] = {"L_ND": result.to_json()}
        entry["runs"] = [{"run": r.get("run"), "size": size_name(r["n_layer"], r["n_embd"]),
                          "budget": budget_of(r.get("run")), "params": r[params_key],
                          "tokens": r["tokens"], "text": r["text"], "loss": r["loss"],
                          "seed": replicate_seed(r)}
                         for r in group]
        entry["sizes"] = _sizes(group, params_key)
        if result.fitted:
            entry["curves"] = [_curve(result, s["params"], text_range[arch], s["size"])
                               for s in entry["sizes"]]
        entries[key] = entry
    return entries, results


def _sizes(group: list[dict[str, Any]], params_key: str) -> list[dict[str, Any]]:
    """The model sizes of one group with their N (median over the size's runs)."""
    by_size: dict[tuple[float, float], list[float]] = {}
    for r in group:
        by_size.setdefault((r["n_layer"], r["n_embd"]), []).append(r[params_key])
    return [{"size": size_name(*k), "n_layer": int(k[0]), "n_embd": int(k[1]),
             "params": float(np.median(v))} for k, v in sorted(by_size.items())]


def _curve(result: FitResult, params: float, text_range: tuple[float, float],
           size: str) -> dict[str, Any]:
    """The fitted loss against text at one size, with its pointwise bootstrap band."""
    d = np.geomspace(text_range[0] / 1.2, text_range[1] * 1.2, CURVE_POINTS)
    out = {"size": size, "params": params, "text": d.tolist(),
           "loss": predict(result.params, params, d).tolist()}
    if result.samples is not None and len(result.samples):
        preds = np.array([predict(result.law.to_named(x), params, d)
                          for x in result.samples])
        low, high = interval(preds, axis=0)
        out["low"], out["high"] = low.tolist(), high.tolist()
    return out


# ------------------------------------------------------------------------------ replicates
# A difference between two tokenizers at one grid cell is resolved by the seed replicates
# when it exceeds DIFFERENCE_SE standard errors.
DIFFERENCE_SE = 2.0
DIFFERENCE_RULE = (
    "At a grid cell (architecture, model size, budget) where both tokenizers have two or "
    "more seed replicates, the difference of their mean bits per byte is resolved when it "
    "exceeds 2 standard errors, SE = sqrt(s_a^2/n_a + s_b^2/n_b) (sample standard "
    "deviations over seeds; seeds are not paired across tokenizers); otherwise it is 'not "
    "resolved'. Where either tokenizer has a single run, the replicate noise is unknown "
    "('single run'): the difference is a number without a noise level. With 2-3 seeds, "
    "2 SE is a screen, not a 95% test."
)


def replicate_seed(r: dict[str, Any]) -> float | None:
    """A run's seed: the runs table's ``seed`` column, else its name's ``-s`` suffix,
    else None (the configured seed of a table without the column)."""
    if r.get("seed") is not None:
        return float(r["seed"])
    return replicate_key(r["run"])[1] if r.get("run") else None


def _cell_losses(rows: list[dict[str, Any]]) -> dict[tuple[Any, ...], dict[str, list[float]]]:
    """(arch, size, budget) -> tokenizer -> the losses of its replicates there."""
    out: dict[tuple[Any, ...], dict[str, list[float]]] = {}
    for r in rows:
        n_layer, n_embd, budget = cell_of(r)
        key = (r["arch"], size_name(n_layer, n_embd), budget)
        out.setdefault(key, {}).setdefault(r["tokenizer"], []).append(float(r["loss"]))
    return out


def difference(losses_a: list[float], losses_b: list[float]) -> dict[str, Any]:
    """Mean difference a - b of two tokenizers' replicates at one cell, with DIFFERENCE_RULE."""
    na, nb = len(losses_a), len(losses_b)
    ma, mb = float(np.mean(losses_a)), float(np.mean(losses_b))
    out: dict[str, Any] = {"n_a": na, "n_b": nb, "mean_a": ma, "mean_b": mb,
                           "difference": ma - mb}
    if na < 2 or nb < 2:
        return {**out, "se": None, "status": "single_run"}
    se = math.sqrt(np.var(losses_a, ddof=1) / na + np.var(losses_b, ddof=1) / nb)
    resolved = abs(ma - mb) > DIFFERENCE_SE * se
    return {**out, "se": se, "status": "resolved" if resolved else "not_resolved"}


def cell_differences(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Every pair of tokenizers at every cell both trained at, with DIFFERENCE_RULE's
    status and the better tokenizer where the difference is resolved or a single run."""
    out = []
    for (arch, size, budget), by_tok in sorted(
            _cell_losses(rows).items(),
            key=lambda kv: (kv[0][0], _size_key(kv[0][1]), _budget_key(kv[0][2]))):
        for a, b in itertools.combinations(sorted(by_tok), 2):
            d = difference(by_tok[a], by_tok[b])
            better = None if d["status"] == "not_resolved" else (a if d["difference"] < 0
                                                                  else b)
            out.append({"arch": arch, "size": size, "budget": budget, "a": a, "b": b, **d,
                        "better": better})
    return out


def ranking_agreement(rows: list[dict[str, Any]]) -> dict[str, Any]:
    """How often two tokenizers' order at the smallest size equals their order at the
    largest size, over seeds (DataDecide, Magnusson et al. 2025).

    Per architecture and budget, the smallest and largest model sizes of the study there;
    per pair of tokenizers, every seed both have at the smallest size; a seed agrees when
    the sign of its loss_a - loss_b equals the sign at the largest size, where each
    tokenizer's loss is the mean of its replicates there (one run when it has none).
    So the share says how often one small-scale run predicts the large-scale order, the
    question DataDecide asks, and it needs replicates only at the cheap size.
    ``pairs``: one record per pair (``seeds``, ``agree``, ``share``); ``overall``: pooled
    over every pair's seeds.
    """
    at: dict[tuple[Any, ...], dict[Any, float]] = {}
    for r in rows:
        n_layer, n_embd, budget = cell_of(r)
        at.setdefault((r["arch"], budget, r["tokenizer"], (n_layer, n_embd)), {})[
            replicate_seed(r)] = float(r["loss"])
    records = []
    for arch, budget in sorted({(k[0], k[1]) for k in at},
                               key=lambda k: (k[0], _budget_key(k[1]))):
        here = {k: v for k, v in at.items() if k[:2] == (arch, budget)}
        sizes = sorted({k[3] for k in here})
        if len(sizes) < 2:
            continue
        small, large = sizes[0], sizes[-1]
        toks = sorted({k[2] for k in here})
        for a, b in itertools.combinations(toks, 2):
            cols = [here.get((arch, budget, t, s), {}) for t in (a, b) for s in (small, large)]
            seeds = sorted(set(cols[0]) & set(cols[2]), key=_seed_order)
            if not seeds or not cols[1] or not cols[3]:
                continue
            # a - b at the largest size: the means of the replicates there
            at_large = np.sign(np.mean(list(cols[1].values())) - np.mean(list(cols[3].values())))
            per_seed = []
            for sd in seeds:
                at_small = np.sign(cols[0][sd] - cols[2][sd])  # a - b at the smallest size
                per_seed.append({"seed": sd, "a_better_small": bool(at_small < 0),
                                 "a_better_large": bool(at_large < 0),
                                 "agree": bool(at_small == at_large)})
            agree = sum(p["agree"] for p in per_seed)
            records.append({"arch": arch, "budget": budget, "a": a, "b": b,
                            "small": size_name(*small), "large": size_name(*large),
                            "seeds": len(seeds), "agree": agree, "share": agree / len(seeds),
                            "per_seed": per_seed})
    total = sum(r["seeds"] for r in records)
    agree = sum(r["agree"] for r in records)
    return {"rule": "per architecture and budget, per pair of tokenizers: the share of "
                    "seeds whose order of the pair at the smallest model size equals its "
                    "order at the largest (mean of the replicates there; DataDecide, "
                    "Magnusson et al. 2025)",
            "pairs": records,
            "overall": {"pairs": len(records), "comparisons": total, "agree": agree,
                        "share": agree / total if total else None}}


def _seed_order(seed: float | None) -> float:
    return -1.0 if seed is None else seed


def _size_key(size: str) -> tuple[int, ...]:
    """'L2-D64' -> (2, 64), for sorting sizes by number."""
    return tuple(int(part[1:]) for part in size.split("-"))


def _budget_key(budget: str) -> tuple[str, float]:
    """A budget field ('B200k', 'T30k') or a token count, sorted by kind, then size."""
    scale = {"k": 1e3, "M": 1e6, "G": 1e9}
    number = budget[1:] if budget[:1] in ("B", "T") else budget
    try:
        value = float(number[:-1]) * scale[number[-1]] if number[-1:] in scale \
            else float(number)
    except ValueError:
        return (budget, math.inf)
    return (budget[:1] if budget[:1] in ("B", "T") else "", value)


# ------------------------------------------------------------------------------ crossovers
def crossings(law_a: dict[str, float], n_a: float, law_b: dict[str, float], n_b: float,
              low: float, high: float) -> list[float]:
    """Text sizes in [low, high] where L_a(n_a, D) = L_b(n_b, D), in increasing order.

    The difference of two such laws, c + B_a D^-β_a - B_b D^-β_b, changes sign at most
    twice; a scan of SCAN_POINTS log-spaced points finds each sign change and Brent's
    method refines it (in log D).
    """
    from scipy.optimize import brentq

    if not 0 < low < high:
        return []

    def diff(log_d: Any) -> Any:
        d = np.exp(log_d)
        return predict(law_a, n_a, d) - predict(law_b, n_b, d)

    grid = np.linspace(math.log(low), math.log(high), SCAN_POINTS)
    values = np.asarray(diff(grid), dtype=float)
    out = []
    for i in range(len(grid) - 1):
        if values[i] == 0.0:
            out.append(math.exp(grid[i]))
        elif values[i] * values[i + 1] < 0:
            out.append(math.exp(brentq(lambda x: float(diff(x)), grid[i], grid[i + 1],
                                       xtol=1e-10)))
    if values[-1] == 0.0:
        out.append(math.exp(grid[-1]))
    return out


def crossover(
    a: str, b: str, arch: str, size: dict[str, Any], fits: dict[str, FitResult],
    sizes: dict[str, dict[str, float]], ranges: dict[str, tuple[float, float]],
    fits_cells: dict[str, FitResult] | None = None,
) -> dict[str, Any]:
    """Where ``a``'s and ``b``'s fitted curves cross at one model size, with an interval.

    ``fits`` by tokenizer, ``sizes`` (tokenizer -> size -> N), ``ranges`` (tokenizer ->
    the text range it measured at this size). ``fits_cells``: the same fits with a
    bootstrap over cells only (no replicate resampling), given where the architecture
    has seed replicates: a crossover that passes the rule there but not once the
    replicates are resampled is ``not_resolved`` (replicate noise does not resolve it).
    """
    name = size["size"]
    out: dict[str, Any] = {"arch": arch, "size": name, "a": a, "b": b}
    failed = [f"{t}'s L(N,D) was not fitted ({fits[t].reason})" for t in (a, b)
              if not fits[t].fitted]
    if failed:
        return {**out, "status": "not_computed", "reason": "; ".join(failed)}
    low, high = max(ranges[a][0], ranges[b][0]), min(ranges[a][1], ranges[b][1])
    out["range"] = [low, high]
    if not low < high:
        return {**out, "status": "not_computed",
                "reason": "the two tokenizers' measured text ranges do not overlap"}
    fa, fb, na, nb = fits[a], fits[b], sizes[a][name], sizes[b][name]
    notes = [f"{t}'s fit has {', '.join(fits[t].at_bound)} at the search bound"
             for t in (a, b) if fits[t].at_bound]
    point = crossings(fa.params, na, fb.params, nb, low, high)
    boot = _paired_crossings(fa, fb, na, nb, low, high)
    out["crossings"] = point  # the full fit's, for reference; the number is the rule's
    out["notes"] = notes
    if len(point) > 1:
        notes.append(f"the full fit crosses {len(point)} times in the range")
    rule = crossover_rule(boot, _a_below(fa.params, fb.params, na, nb, low, high, point))
    out["bootstrap"] = {"pairs": rule["pairs"], "crossing": rule["crossing"],
                        "share": rule["share"], "min_share": CROSSOVER_MIN_SHARE}
    if rule["pairs"] == 0:  # no bootstrap: the full fit's crossing, without an interval
        if not point:
            return {**out, "status": "none", "better": a if _a_wins(
                fa.params, fb.params, na, nb, low, high) else b}
        a_below = _a_below(fa.params, fb.params, na, nb, low, high, point)
        return {**out, "status": "crossover", "text_bytes": point[0],
                "better_below": a if a_below else b, "better_above": b if a_below else a}
    if rule["status"] != "crossover":
        better = a if _a_wins(fa.params, fb.params, na, nb, low, high) else b
        if fits_cells is not None and all(fits_cells[t].fitted for t in (a, b)):
            cells = crossover_rule(_paired_crossings(fits_cells[a], fits_cells[b], na, nb,
                                                     low, high), rule["a_below"])
            out["bootstrap_cells"] = {"pairs": cells["pairs"], "crossing": cells["crossing"],
                                      "share": cells["share"]}
            if cells["status"] == "crossover":
                return {**out, "status": "not_resolved", "better": better}
        return {**out, "status": "not_determined", "better": better}
    below = a if rule["a_below"] else b
    return {**out, "status": "crossover", "text_bytes": rule["point"], "ci": rule["ci"],
            "ci_open": rule["ci_open"], "better_below": below,
            "better_above": b if below == a else a}


def crossover_rule(boot: list[tuple[list[float], bool]], fit_a_below: bool | None
                   ) -> dict[str, Any]:
    """The crossover of one pair at one size from its bootstrap pairs (CROSSOVER_RULE).

    ``boot``: per bootstrap pair, its crossings in the range (increasing) and whether
    ``a`` has the lower loss at the range's low end. ``fit_a_below``: the direction of
    the full fit's first crossing (None when it does not cross), for ties.

    A crossing's direction is which tokenizer is better just below it; crossings
    alternate in direction, so it follows from the low end's winner. The direction most
    pairs cross in is the crossover's (ties: the full fit's, else ``a`` better below).
    Each pair contributes its first crossing in that direction, or, without one, a
    censored value: -inf (below the range) when the tokenizer better above the crossover
    already wins at the range's low end, else +inf (above it). ``share`` is the share of
    pairs with a crossing in the range; the status is ``crossover`` when it is at least
    CROSSOVER_MIN_SHARE, else ``not_determined``. Then ``point`` is the median of the
    crossing pairs' values and ``ci`` the CI_LEVEL percentiles of all pairs' (order
    statistics, no interpolation; an infinite end is open). With a share of at least
    1/2 the crossing values fill the middle half of the sorted values, so their median
    lies inside the interval (it is clipped to it all the same).
    """
    pairs = len(boot)
    counts = {d: sum(any(_direction(i, low_a) == d for i in range(len(c))) for c, low_a in boot)
              for d in (True, False)}
    if counts[True] != counts[False]:
        a_below = counts[True] > counts[False]
    else:
        a_below = True if fit_a_below is None else fit_a_below
    values = []
    for c, low_a in boot:
        hit = [x for i, x in enumerate(c) if _direction(i, low_a) == a_below]
        if hit:
            values.append(hit[0])
        else:  # the tokenizer better above the crossover wins at the low end: it is below
            values.append(-math.inf if low_a != a_below else math.inf)
    crossing = counts[a_below]
    share = crossing / pairs if pairs else 0.0
    out: dict[str, Any] = {"pairs": pairs, "crossing": crossing, "share": share,
                           "a_below": a_below}
    if not pairs or share < CROSSOVER_MIN_SHARE:
        return {**out, "status": "not_determined"}
    lo, hi = 100 * (1 - CI_LEVEL) / 2, 100 * (1 + CI_LEVEL) / 2
    ends = (float(np.percentile(values, lo, method="lower")),
            float(np.percentile(values, hi, method="higher")))
    point = float(np.median([v for v in values if math.isfinite(v)]))
    point = min(max(point, ends[0]), ends[1])
    return {**out, "status": "crossover", "point": point,
            "ci": [x if math.isfinite(x) else None for x in ends],
            "ci_open": [not math.isfinite(ends[0]), not math.isfinite(ends[1])]}


def _direction(index: int, a_wins_low: bool) -> bool:
    """Whether ``a`` is better just below a pair's ``index``-th crossing."""
    return a_wins_low if index % 2 == 0 else not a_wins_low


def _a_below(law_a: dict[str, float], law_b: dict[str, float], na: float, nb: float,
             low: float, high: float, point: list[float]) -> bool | None:
    """Whether ``a`` is better below the full fit's first crossing (None: no crossing)."""
    if not point:
        return None
    return _direction(0, _a_wins_at(law_a, law_b, na, nb, low))


def _a_wins_at(law_a: dict[str, float], law_b: dict[str, float], na: float, nb: float,
               d: float) -> bool:
    return bool(predict(law_a, na, d) < predict(law_b, nb, d))


def _a_wins(law_a: dict[str, float], law_b: dict[str, float], na: float, nb: float,
            low: float, high: float) -> bool:
    """Whether ``a`` has the lower loss in the middle (log scale) of [low, high]."""
    mid = math.sqrt(low * high)
    return bool(predict(law_a, na, mid) < predict(law_b, nb, mid))


def _paired_crossings(fa: FitResult, fb: FitResult, na: float, nb: float,
                      low: float, high: float) -> list[tuple[list[float], bool]]:
    """Per bootstrap pair (replicates both fits used, by replicate id): its crossings in
    [low, high], and whether ``a`` has the lower loss at ``low`` (which gives each
    crossing's direction, and where a pair without one puts it)."""
    if fa.samples is None or fb.samples is None:
        return []
    b_by_id = dict(zip(fb.sample_ids, fb.samples, strict=True))
    out = []
    for rid, xa in zip(fa.sample_ids, fa.samples, strict=True):
        if rid in b_by_id:
            la, lb = fa.law.to_named(xa), fb.law.to_named(b_by_id[rid])
            out.append((crossings(la, na, lb, nb, low, high),
                        _a_wins_at(la, lb, na, nb, low)))
    return out


def all_crossovers(rows: list[dict[str, Any]], entries: dict[str, dict[str, Any]],
                   results: dict[str, FitResult], params_key: str,
                   results_cells: dict[str, FitResult] | None = None) -> list[dict]:
    """Every pair of tokenizers at every model size both were trained at, per architecture.

    ``results_cells``: fits bootstrapped over cells only (``fit_groups(replicates=False)``),
    used for the architectures with seed replicates ("not resolved")."""
    out = []
    for arch in sorted({r["arch"] for r in rows}):
        mine = [r for r in rows if r["arch"] == arch]
        toks = sorted({r["tokenizer"] for r in mine})
        fits = {t: results[f"{t}/{arch}"] for t in toks}
        cells_only = ({t: results_cells[f"{t}/{arch}"] for t in toks}
                      if results_cells is not None and has_replicates(mine) else None)
        sizes = {t: {s["size"]: s["params"] for s in entries[f"{t}/{arch}"]["sizes"]}
                 for t in toks}
        for n_layer, n_embd in sorted({(r["n_layer"], r["n_embd"]) for r in mine}):
            name = size_name(n_layer, n_embd)
            here = [r for r in mine if (r["n_layer"], r["n_embd"]) == (n_layer, n_embd)]
            ranges = {t: (min(r["text"] for r in here if r["tokenizer"] == t),
                          max(r["text"] for r in here if r["tokenizer"] == t))
                      for t in toks if any(r["tokenizer"] == t for r in here)}
            for a, b in itertools.combinations(sorted(ranges), 2):
                out.append(crossover(a, b, arch, {"size": name}, fits, sizes, ranges,
                                     cells_only))
    return out


def crossover_rows(records: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Flat rows of crossovers.csv."""
    out = []
    for c in records:
        ci = c.get("ci") or [None, None]
        ci_open = c.get("ci_open") or [None, None]
        rng = c.get("range") or [None, None]
        boot = c.get("bootstrap", {})
        cells = c.get("bootstrap_cells", {})
        out.append({**{k: c.get(k) for k in ("arch", "size", "a", "b", "status",
                                             "better_below", "better_above", "better",
                                             "reason")},
                    "text_bytes": c.get("text_bytes"), "ci_low": ci[0], "ci_high": ci[1],
                    "ci_low_open": ci_open[0], "ci_high_open": ci_open[1],
                    "crossings": " ".join(f"{x:.6g}" for x in c.get("crossings", [])),
                    "range_low": rng[0], "range_high": rng[1],
                    "bootstrap_pairs": boot.get("pairs"),
                    "bootstrap_crossing": boot.get("crossing"),
                    "bootstrap_share": boot.get("share"),
                    "cells_only_share": cells.get("share"),
                    "notes": "; ".join(c.get("notes", []))})
    return out


def run_study(runs: Path, tokenizers: Path, params_column: str, n_bootstrap: int,
              seed: int) -> dict[str, Any]:
    """The study document (study.json) from runs.csv and tokenizers.csv."""
    params_key = PARAMS_COLUMNS[params_column]
    rows, _, without_loss = read_runs(runs, params_key, keep_failed=True)
    rows, unequal = equally_tuned(rows)
    rows, _, set_aside = choose_runs(rows)
    set_aside += unequal
    if any("tokenizer" not in r or "arch" not in r for r in rows):
        raise SymatoError(f"{runs}: the study needs the columns 'tokenizer' and 'arch'")
    rows = study_rows(rows, bytes_per_token(tokenizers), str(runs))
    entries, results = fit_groups(rows, params_key, n_bootstrap, seed)
    results_cells = None
    if n_bootstrap and has_replicates(rows):
        # Only the architectures with replicates read these cell-only fits (all_crossovers);
        # the bootstrap draws are seeded per architecture, so the subset changes none.
        with_reps = {a for a in {r["arch"] for r in rows}
                     if has_replicates([r for r in rows if r["arch"] == a])}
        results_cells = fit_groups([r for r in rows if r["arch"] in with_reps], params_key,
                                   n_bootstrap, seed, replicates=False)[1]
    return {
        "loss": "bits_per_byte",
        "d_axis": "bytes of training text seen = tokens trained x train-split bytes per token",
        "params_column": params_column,
        "bootstrap": n_bootstrap,
        "seed": seed,
        "huber_delta": HUBER_DELTA,
        "crossover_rule": CROSSOVER_RULE,
        "crossover_min_share": CROSSOVER_MIN_SHARE,
        "runs_without_loss": without_loss,
        "set_aside": set_aside,
        "groups": entries,
        "crossovers": all_crossovers(rows, entries, results, params_key, results_cells),
        "difference_rule": DIFFERENCE_RULE,
        "differences": cell_differences(rows),
        "ranking_agreement": ranking_agreement(rows),
    }


def main(argv: list[str]) -> int:
    """`symato study --runs CSV --tokenizers CSV --out JSON [--csv CSV] [--crossovers CSV]`."""
    p = argparse.ArgumentParser(prog="symato study", description=__doc__.split("\n")[0])
    p.add_argument("--runs", required=True, type=Path, help="runs table (symato collect)")
    p.add_argument("--tokenizers", required=True, type=Path,
                   help="tokenizer table (symato collect): train-split bytes per token")
    p.add_argument("--out", required=True, type=Path, help="study JSON to write")
    p.add_argument("--csv", type=Path, help="fitted parameters (default: --out with .csv)")
    p.add_argument("--crossovers", type=Path, help="crossover table to write")
    p.add_argument("--params-column", choices=sorted(PARAMS_COLUMNS), default="total")
    p.add_argument("--bootstrap", type=int, default=100, help="bootstrap replicates (0: no CIs)")
    p.add_argument("--seed", type=int, default=0, help="bootstrap seed")
    args = p.parse_args(argv)
    if args.bootstrap < 0:
        raise SymatoError(f"--bootstrap must be >= 0, got {args.bootstrap}")
    doc = run_study(args.runs, args.tokenizers, args.params_column, args.bootstrap, args.seed)
    for note in doc["runs_without_loss"] + doc["set_aside"]:
        print(f"symato study: {note}", file=sys.stderr)
    write_json_atomic(args.out, doc)
    write_table(args.csv or args.out.with_suffix(".csv"), table_rows(doc["groups"]))
    if args.crossovers:
        write_table(args.crossovers, crossover_rows(doc["crossovers"]), CROSSOVER_COLUMNS)
    ok = sum(g["status"] in FITTED for g in doc["groups"].values())
    found = sum(c["status"] == "crossover" for c in doc["crossovers"])
    print(f"symato study: {len(doc['groups'])} tokenizer group(s), {ok} fitted; "
          f"{len(doc['crossovers'])} pairs at a size, {found} crossing -> {args.out}",
          file=sys.stderr)
    return 0
