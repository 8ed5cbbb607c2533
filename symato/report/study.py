"""The tokenizer study: bits per byte against training *text*, per tokenizer; `symato study`.

Why a fit of its own: the scaling fits (``symato fit``) put training tokens on the D axis,
and a token means a different amount of text for every tokenizer, so their curves cannot
be laid over each other. Here D is **bytes of training text seen**,

    D = tokens trained x the tokenizer's train-split bytes per token (tokenizers.csv),

the same axis for every tokenizer. That is the text a run actually saw: a byte-budget
run trains on whole steps, a little more than its budget (up to one step's tokens), and a
token-budget run has a text size too. Per (tokenizer, architecture) the same
L(N, D) = E + A/N^α + B/D^β as ``symato.report.fit`` is fitted (Huber on log-loss,
variable projection, bootstrap over runs), on the runs the learning-rate choice rule keeps
(``symato.report.fit.choose_runs``).

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
from symato.report import fit as scaling

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
                     "bootstrap_crossing", "bootstrap_share", "notes", "reason"]


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
        base, varied = scaling.split_run_name(r["run"])
        return base, tuple(sorted((k, v) for k, v in varied.items()
                                  if k in scaling.TUNED_SETTINGS))

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
    """The budget field of a run name: ``rwkv-L2-D64-B600k-lr0.002`` -> ``B600k``."""
    if not run:
        return None
    return scaling.split_run_name(run)[0].rsplit("-", 1)[-1]


def size_name(n_layer: float, n_embd: float) -> str:
    """(2, 64) -> 'L2-D64', as in config sizes."""
    return f"L{int(n_layer)}-D{int(n_embd)}"


def cell_of(r: dict[str, Any]) -> tuple[int, int, str]:
    """A run's grid cell: model size and budget (the budget field of its name, or its
    token count when it has no name). Tokenizers are paired cell by cell."""
    return (int(r["n_layer"]), int(r["n_embd"]), budget_of(r.get("run")) or str(r["tokens"]))


def paired_resamples(
    by_tokenizer: dict[str, list[dict[str, Any]]], n_bootstrap: int, seed: int
) -> dict[str, list[np.ndarray]]:
    """Per tokenizer, one index array (into its runs) per bootstrap replicate, all drawn
    from one draw of grid cells: replicate i of every tokenizer resampled the same cells.

    Why not each fit's own draw of its runs: those pair only when every tokenizer has
    exactly the same cells in the same order; one missing run (a failed run, a sweep
    set aside) would silently unpair every replicate.
    """
    cells = sorted({cell_of(r) for group in by_tokenizer.values() for r in group})
    rows_at = {tok: {c: [i for i, r in enumerate(group) if cell_of(r) == c] for c in cells}
               for tok, group in by_tokenizer.items()}
    rng = np.random.default_rng(seed)
    out: dict[str, list[np.ndarray]] = {tok: [] for tok in by_tokenizer}
    for _ in range(n_bootstrap):
        drawn = [cells[j] for j in rng.integers(0, len(cells), size=len(cells))]
        for tok, at in rows_at.items():
            out[tok].append(np.array([i for c in drawn for i in at[c]], dtype=int))
    return out


def fit_groups(
    rows: list[dict[str, Any]], params_key: str, n_bootstrap: int, seed: int
) -> tuple[dict[str, dict[str, Any]], dict[str, scaling.FitResult]]:
    """L(N, D) with D in text bytes per (tokenizer, arch): JSON entries and the raw fits."""
    by_group: dict[tuple[str, str], list[dict[str, Any]]] = {}
    for r in rows:
        by_group.setdefault((r["tokenizer"], r["arch"]), []).append(r)
    text_range = {arch: (min(r["text"] for r in rows if r["arch"] == arch),
                         max(r["text"] for r in rows if r["arch"] == arch))
                  for arch in {r["arch"] for r in rows}}
    resamples: dict[tuple[str, str], list[np.ndarray]] = {}
    for arch in sorted(text_range):
        mine = {tok: g for (tok, a), g in by_group.items() if a == arch}
        for tok, idx in paired_resamples(mine, n_bootstrap, seed).items():
            resamples[(tok, arch)] = idx
    entries, results = {}, {}
    for (tok, arch), group in sorted(by_group.items()):
        key = f"{tok}/{arch}"
        n = np.array([r[params_key] for r in group], dtype=float)
        d = np.array([r["text"] for r in group], dtype=float)
        loss = np.array([r["loss"] for r in group], dtype=float)
        result = scaling.fit_law(scaling.LAW_ND, n, d, loss, seed=seed,
                                 resamples=resamples[(tok, arch)])
        results[key] = result
        entry: dict[str, Any] = {"by": {"tokenizer": tok, "arch": arch}, **result.to_json()}
        entry["fits"] = {"L_ND": result.to_json()}
        entry["runs"] = [{"run": r.get("run"), "size": size_name(r["n_layer"], r["n_embd"]),
                          "budget": budget_of(r.get("run")), "params": r[params_key],
                          "tokens": r["tokens"], "text": r["text"], "loss": r["loss"]}
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


def _curve(result: scaling.FitResult, params: float, text_range: tuple[float, float],
           size: str) -> dict[str, Any]:
    """The fitted loss against text at one size, with its pointwise bootstrap band."""
    d = np.geomspace(text_range[0] / 1.2, text_range[1] * 1.2, scaling.CURVE_POINTS)
    out = {"size": size, "params": params, "text": d.tolist(),
           "loss": scaling.predict(result.params, params, d).tolist()}
    if result.samples is not None and len(result.samples):
        preds = np.array([scaling.predict(result.law.to_named(x), params, d)
                          for x in result.samples])
        low, high = scaling.interval(preds, axis=0)
        out["low"], out["high"] = low.tolist(), high.tolist()
    return out


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
        return scaling.predict(law_a, n_a, d) - scaling.predict(law_b, n_b, d)

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
    a: str, b: str, arch: str, size: dict[str, Any], fits: dict[str, scaling.FitResult],
    sizes: dict[str, dict[str, float]], ranges: dict[str, tuple[float, float]],
) -> dict[str, Any]:
    """Where ``a``'s and ``b``'s fitted curves cross at one model size, with an interval.

    ``fits`` by tokenizer, ``sizes`` (tokenizer -> size -> N), ``ranges`` (tokenizer ->
    the text range it measured at this size).
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
        return {**out, "status": "not_determined",
                "better": a if _a_wins(fa.params, fb.params, na, nb, low, high) else b}
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
    lo, hi = 100 * (1 - scaling.CI_LEVEL) / 2, 100 * (1 + scaling.CI_LEVEL) / 2
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
    return bool(scaling.predict(law_a, na, d) < scaling.predict(law_b, nb, d))


def _a_wins(law_a: dict[str, float], law_b: dict[str, float], na: float, nb: float,
            low: float, high: float) -> bool:
    """Whether ``a`` has the lower loss in the middle (log scale) of [low, high]."""
    mid = math.sqrt(low * high)
    return bool(scaling.predict(law_a, na, mid) < scaling.predict(law_b, nb, mid))


def _paired_crossings(fa: scaling.FitResult, fb: scaling.FitResult, na: float, nb: float,
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
                   results: dict[str, scaling.FitResult], params_key: str) -> list[dict]:
    """Every pair of tokenizers at every model size both were trained at, per architecture."""
    out = []
    for arch in sorted({r["arch"] for r in rows}):
        mine = [r for r in rows if r["arch"] == arch]
        toks = sorted({r["tokenizer"] for r in mine})
        fits = {t: results[f"{t}/{arch}"] for t in toks}
        sizes = {t: {s["size"]: s["params"] for s in entries[f"{t}/{arch}"]["sizes"]}
                 for t in toks}
        for n_layer, n_embd in sorted({(r["n_layer"], r["n_embd"]) for r in mine}):
            name = size_name(n_layer, n_embd)
            here = [r for r in mine if (r["n_layer"], r["n_embd"]) == (n_layer, n_embd)]
            ranges = {t: (min(r["text"] for r in here if r["tokenizer"] == t),
                          max(r["text"] for r in here if r["tokenizer"] == t))
                      for t in toks if any(r["tokenizer"] == t for r in here)}
            for a, b in itertools.combinations(sorted(ranges), 2):
                out.append(crossover(a, b, arch, {"size": name}, fits, sizes, ranges))
    return out


def crossover_rows(records: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Flat rows of crossovers.csv."""
    out = []
    for c in records:
        ci = c.get("ci") or [None, None]
        ci_open = c.get("ci_open") or [None, None]
        rng = c.get("range") or [None, None]
        boot = c.get("bootstrap", {})
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
                    "notes": "; ".join(c.get("notes", []))})
    return out


def run_study(runs: Path, tokenizers: Path, params_column: str, n_bootstrap: int,
              seed: int) -> dict[str, Any]:
    """The study document (study.json) from runs.csv and tokenizers.csv."""
    params_key = scaling.PARAMS_COLUMNS[params_column]
    rows, _, without_loss = scaling.read_runs(runs, params_key, keep_failed=True)
    rows, unequal = equally_tuned(rows)
    rows, _, set_aside = scaling.choose_runs(rows)
    set_aside += unequal
    if any("tokenizer" not in r or "arch" not in r for r in rows):
        raise SymatoError(f"{runs}: the study needs the columns 'tokenizer' and 'arch'")
    rows = study_rows(rows, bytes_per_token(tokenizers), str(runs))
    entries, results = fit_groups(rows, params_key, n_bootstrap, seed)
    return {
        "loss": "bits_per_byte",
        "d_axis": "bytes of training text seen = tokens trained x train-split bytes per token",
        "params_column": params_column,
        "bootstrap": n_bootstrap,
        "seed": seed,
        "huber_delta": scaling.HUBER_DELTA,
        "crossover_rule": CROSSOVER_RULE,
        "crossover_min_share": CROSSOVER_MIN_SHARE,
        "runs_without_loss": without_loss,
        "set_aside": set_aside,
        "groups": entries,
        "crossovers": all_crossovers(rows, entries, results, params_key),
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
    p.add_argument("--params-column", choices=sorted(scaling.PARAMS_COLUMNS), default="total")
    p.add_argument("--bootstrap", type=int, default=100, help="bootstrap replicates (0: no CIs)")
    p.add_argument("--seed", type=int, default=0, help="bootstrap seed")
    args = p.parse_args(argv)
    if args.bootstrap < 0:
        raise SymatoError(f"--bootstrap must be >= 0, got {args.bootstrap}")
    doc = run_study(args.runs, args.tokenizers, args.params_column, args.bootstrap, args.seed)
    for note in doc["runs_without_loss"] + doc["set_aside"]:
        print(f"symato study: {note}", file=sys.stderr)
    write_json_atomic(args.out, doc)
    scaling.write_table(args.csv or args.out.with_suffix(".csv"), scaling.table_rows(doc["groups"]))
    if args.crossovers:
        scaling.write_table(args.crossovers, crossover_rows(doc["crossovers"]), CROSSOVER_COLUMNS)
    ok = sum(g["status"] in scaling.FITTED for g in doc["groups"].values())
    found = sum(c["status"] == "crossover" for c in doc["crossovers"])
    print(f"symato study: {len(doc['groups'])} tokenizer group(s), {ok} fitted; "
          f"{len(doc['crossovers'])} pairs at a size, {found} crossing -> {args.out}",
          file=sys.stderr)
    return 0
