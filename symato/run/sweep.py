"""Learning-rate sweeps that bracket their optimum: which runs form a sweep, the rule that
decides whether a sweep needs one more rate, and the settings of that extension run.

Why a module: the workflow (rules/train.smk: an extension run's settings; rules/sweep.smk:
the checkpoint that decides), the ``symato sweep`` command and the tests must give the
same answers. A sweep of the grid is the set of runs that differ only in ``lr``: same
tokenizer, architecture, size, budget and every other setting, the seed and other varied
settings included (their run names agree once the ``-lr`` suffix is taken off; that name
is the sweep's name, e.g. ``rwkv4-L1-D32-B100k``). A sweep has two or more rates.

After every run of a sweep is evaluated, :func:`decide` picks its best rate (the lowest
``bits_per_byte``; ties, within a relative ``TIE_RTOL``, go to the configured rate, i.e.
the run without a ``-lr`` suffix, then to the lower rate: the rule of the report's
``symato.report.lrchoice.choose_runs``). Best rate strictly inside the range: the optimum is
bracketed. At an edge, the sweep is extended by one rate past that edge, the edge rate
times (or divided by) the ratio between the edge rate and its neighbour (``x2`` for
0.002, 0.004, 0.008), until the optimum is bracketed or ``max_extensions`` rates were
added (config ``train.lr_bracket.max_extensions``; 0 turns extension off).

An extension run is a grid run like any ``vary: {lr: [...]}`` run: the sweep's settings
with only ``lr`` (and the name, ``...-lr0.016``) changed. In particular it keeps the
sweep's ``lr_min``, as a varied ``lr`` does: it must, since the same name must mean the
same settings whether the run came from an extension or from a later config that lists
the rate. A rate below ``lr_min`` would break ``lr_min <= lr``, so a sweep stops
extending downwards there (status ``lr_min``, reported as not bracketed).
"""

from __future__ import annotations

import argparse
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from symato.errors import SymatoError
from symato.io import read_json, write_json_atomic
from symato.run.grid import format_value, join_name, split_name
from symato.run.settings import (
    RESOLVED_KEYS,
    check_settings,
    load_settings,
    ordered,
)

# Losses within this relative distance of the best count as tied (the report's rule:
# symato.report.lrchoice.TIE_RTOL, checked equal by tests/test_sweep.py).
TIE_RTOL = 1e-9
# Significant digits of an extension rate: 0.004 * 1.5 is 0.006, not 0.006000000000000001,
# so that run names stay short and the same rate always gets the same name.
RATE_DIGITS = 6
# Every decision's ``status``.
STATUSES = ("bracketed", "extend", "limit_reached", "lr_min", "invalid_rate")



@dataclass(frozen=True)
class Sweep:
    """One learning-rate sweep of the grid.

    ``runs``: (lr, run name) of each grid run, by rate then name; ``settings``: the
    settings of one of them (the template of an extension run: every setting but ``lr``
    and ``run`` is the same for all of them).
    """

    tokenizer: str
    name: str
    arch: str
    runs: tuple[tuple[float, str], ...]
    settings: dict[str, Any]

    @property
    def rates(self) -> list[float]:
        """The configured rates, ascending, each once."""
        return sorted({lr for lr, _ in self.runs})


# ----------------------------------------------------------------------------- names
def sweep_name(run: str) -> str:
    """The name of the sweep a run belongs to: its name without the ``-lr`` suffix."""
    head, varied = split_name(run)
    varied.pop("lr", None)
    return join_name(head, varied)


def has_rate_suffix(run: str) -> bool:
    """Whether a run's name carries a ``-lr`` suffix (False: the configured rate)."""
    return "lr" in split_name(run)[1]


def rate_run_name(run: str, lr: float) -> str:
    """The name of the run like ``run`` but at rate ``lr``: ``rwkv4-L1-D32-B100k-s2`` at
    0.016 -> ``rwkv4-L1-D32-B100k-lr0.016-s2`` (the suffix order of ``run_name``)."""
    head, varied = split_name(run)
    return join_name(head, {**varied, "lr": format_value(lr)})


# ----------------------------------------------------------------------------- sweeps
def find_sweeps(runs: list[dict[str, Any]]) -> list[Sweep]:
    """The learning-rate sweeps among the grid's runs (``symato.run.grid.expand_grid``):
    groups of runs named alike but for ``-lr``, with two or more rates; in grid order.

    WSD runs (``schedule: wsd``) are left out: each rate of a WSD sub-grid is a branch of
    its own stable run, so an extension rate would need a stable run of its own; their
    best rate is still chosen by the fits (``symato.report.lrchoice.choose_runs``), but the
    DAG does not extend them.
    """
    groups: dict[tuple[str, str], list[dict[str, Any]]] = {}
    for r in runs:
        if r["settings"].get("schedule") == "wsd":
            continue
        groups.setdefault((r["tokenizer"], sweep_name(r["run"])), []).append(r)
    sweeps = []
    for (tok, name), members in groups.items():
        if len({m["settings"]["lr"] for m in members}) < 2:
            continue
        _check_same_but_lr(tok, name, members)
        pairs = sorted((float(m["settings"]["lr"]), m["run"]) for m in members)
        sweeps.append(Sweep(tok, name, members[0]["arch"], tuple(pairs),
                            dict(members[0]["settings"])))
    return sweeps


def _check_same_but_lr(tok: str, name: str, members: list[dict[str, Any]]) -> None:
    """Refuse a "sweep" whose runs differ in more than ``lr`` (run names that do not say
    every difference would be a grid bug: an extension must change one thing only)."""
    def rest(settings: dict[str, Any]) -> dict[str, Any]:
        return {k: v for k, v in settings.items() if k not in ("lr", "run")}

    first = rest(members[0]["settings"])
    for m in members[1:]:
        other = rest(m["settings"])
        if other != first:
            keys = sorted(k for k in set(first) | set(other) if first.get(k) != other.get(k))
            raise SymatoError(f"learning-rate sweep {tok}/{name}: runs {members[0]['run']} and "
                              f"{m['run']} differ in {keys}, not only in lr")


def sweep_index(sweeps: list[Sweep]) -> dict[tuple[str, str], Sweep]:
    """Sweeps by (tokenizer, sweep name)."""
    return {(s.tokenizer, s.name): s for s in sweeps}


# ----------------------------------------------------------------------------- extension runs
def extension_settings(settings: dict[str, Any], lr: float,
                       where: str = "learning-rate sweep") -> dict[str, Any]:
    """The settings of a sweep's run at rate ``lr``, from any run of the sweep: the same
    settings with ``lr`` and the run name changed, ``lr_min`` kept (module docstring).

    A byte-budget template whose ``tokens``/``steps`` are not resolved yet (the grid's
    settings) stays unresolved: ``symato settings`` resolves it as for any run. Errors
    (a rate that is not positive and finite, or below ``lr_min``) name the run.
    """
    if isinstance(lr, bool) or not isinstance(lr, (int, float)) or not math.isfinite(lr) \
            or lr <= 0:
        raise SymatoError(f"{where}: learning rate {lr!r} must be a positive, finite number")
    out = ordered({**settings, "lr": float(lr), "run": rate_run_name(settings["run"], lr)})
    pending = RESOLVED_KEYS if "text_bytes" in out else ()
    check_settings(out, f"{where}: run {out['tokenizer']}/{out['run']}", pending=pending)
    return out


def lookup_extension(sweeps: dict[tuple[str, str], Sweep], tokenizer: str,
                     run: str) -> dict[str, Any] | None:
    """The settings of ``tokenizer/run`` if it names a rate of a known sweep that the grid
    does not list (an extension run); None when it names no sweep."""
    sweep = sweeps.get((tokenizer, sweep_name(run)))
    rate = split_name(run)[1].get("lr")
    if sweep is None or rate is None:
        return None
    settings = extension_settings(sweep.settings, float(rate),
                                  f"learning-rate sweep {tokenizer}/{sweep.name}")
    if settings["run"] != run:  # e.g. lr0.0160: not the name the sweep would give
        raise SymatoError(f"run {tokenizer}/{run}: not a canonical run name; the rate "
                          f"{rate} is written {settings['run']}")
    return settings


# ----------------------------------------------------------------------------- the decision
@dataclass(frozen=True)
class Point:
    """One evaluated run of a sweep: its rate, name, bits per byte and whether an
    extension added it."""

    lr: float
    run: str
    bits_per_byte: float
    extension: bool = False


def rounded_rate(value: float) -> float:
    """``value`` to ``RATE_DIGITS`` significant digits (stable names, module docstring)."""
    return float(f"{value:.{RATE_DIGITS}g}")


def best_rate(points: list[Point]) -> tuple[float, list[dict[str, Any]]]:
    """The best rate of a sweep, and one row per rate (ascending): ``lr``,
    ``bits_per_byte`` (the mean of the rate's runs: a rate listed twice, e.g. as
    ``-lr0.004`` beside the configured run, is one rate), ``runs``, ``configured``,
    ``extension``. Ties: ``TIE_RTOL``, then the configured rate, then the lower rate."""
    by_rate: dict[float, list[Point]] = {}
    for p in points:
        by_rate.setdefault(p.lr, []).append(p)
    rows = []
    for lr in sorted(by_rate):
        same = sorted(by_rate[lr], key=lambda p: p.run)
        rows.append({"lr": lr,
                     "bits_per_byte": sum(p.bits_per_byte for p in same) / len(same),
                     "runs": [p.run for p in same],
                     "configured": any(not has_rate_suffix(p.run) for p in same),
                     "extension": all(p.extension for p in same)})
    low = min(r["bits_per_byte"] for r in rows)
    tied = [r for r in rows if r["bits_per_byte"] <= low * (1 + TIE_RTOL)]
    best = min(tied, key=lambda r: (not r["configured"], r["lr"]))
    return best["lr"], rows


def decide(points: list[Point], *, max_extensions: int, lr_min: float,
           template: str, where: str) -> dict[str, Any]:
    """Whether a sweep's optimum is bracketed and, if not, the rate to run next.

    ``points``: every evaluated run of the sweep, extensions included; ``template``: any
    run name of the sweep (names the next run); ``where`` starts error messages. The
    result is the decision record written to results/sweeps/ (docs/scaling.md):
    ``rates`` (rows of :func:`best_rate`), ``configured_rates``, ``extension_rates``,
    ``extension_runs`` (in the order they were added), ``best_lr``, ``best_run``,
    ``edge`` (``low``/``high``/None), ``bracketed``, ``extensions_used``,
    ``max_extensions``, ``limit_reached``, ``status`` (one of ``STATUSES``), ``reason``,
    ``step_factor``, ``next_lr`` and ``next_run`` (None: the sweep is final).
    """
    if len({p.lr for p in points}) < 2:
        raise SymatoError(f"{where}: a sweep needs two or more rates, got "
                          f"{sorted({p.lr for p in points})}")
    best, rows = best_rate(points)
    rates = [r["lr"] for r in rows]
    edge = "low" if best == rates[0] else "high" if best == rates[-1] else None
    ext_runs = [p.run for p in points if p.extension]
    used = len({p.lr for p in points if p.extension})
    record = {
        "rates": rows, "best_lr": best,
        "best_run": next(r["runs"][0] for r in rows if r["lr"] == best),
        "configured_rates": [r["lr"] for r in rows if not r["extension"]],
        "extension_rates": [r["lr"] for r in rows if r["extension"]],
        "extension_runs": ext_runs, "edge": edge, "bracketed": edge is None,
        "extensions_used": used, "max_extensions": max_extensions,
        "limit_reached": False, "step_factor": None, "next_lr": None, "next_run": None,
    }
    return {**record, **_next_step(rates, edge, used, max_extensions, lr_min, template)}


def _next_step(rates: list[float], edge: str | None, used: int, max_extensions: int,
               lr_min: float, template: str) -> dict[str, Any]:
    """The status part of a decision: bracketed, or the next rate past the edge, or why
    there is none."""
    if edge is None:
        return {"status": "bracketed", "reason": "the best rate lies inside the sweep"}
    side = "lowest" if edge == "low" else "highest"
    if used >= max_extensions:
        return {"status": "limit_reached", "limit_reached": True,
                "reason": f"the best rate is the {side} one run and the limit of "
                          f"{max_extensions} extension(s) is reached"}
    factor = rates[1] / rates[0] if edge == "low" else rates[-1] / rates[-2]
    edge_rate = rates[0] if edge == "low" else rates[-1]
    nxt = edge_rate / factor if edge == "low" else edge_rate * factor
    nxt = rounded_rate(nxt) if math.isfinite(nxt) else nxt
    step = {"step_factor": factor}
    if not (math.isfinite(nxt) and nxt > 0 and (nxt < rates[0] or nxt > rates[-1])):
        return {**step, "status": "invalid_rate",
                "reason": f"the next rate past the {side} one, {nxt!r}, is not a positive, "
                          f"finite rate beyond the sweep"}
    if nxt < lr_min:
        return {**step, "status": "lr_min",
                "reason": f"the next lower rate {format_value(nxt)} would be below the "
                          f"sweep's lr_min {format_value(lr_min)}"}
    return {**step, "status": "extend", "next_lr": nxt, "next_run": rate_run_name(template, nxt),
            "reason": f"the best rate is the {side} one run: extend to {format_value(nxt)}"}


# ----------------------------------------------------------------------------- command line
def read_point(metrics_path: str | Path, extension: bool) -> tuple[Point, dict[str, Any]]:
    """One evaluated run: ``bits_per_byte`` of its metrics.json and the settings.json
    beside it (its rate, name and the settings that must match the rest of the sweep)."""
    metrics_path = Path(metrics_path)
    metrics = read_json(metrics_path, "run metrics")
    bpb = metrics.get("bits_per_byte") if isinstance(metrics, dict) else None
    if isinstance(bpb, bool) or not isinstance(bpb, (int, float)) or not math.isfinite(bpb) \
            or bpb <= 0:
        raise SymatoError(f"{metrics_path}: key 'bits_per_byte' must be a positive number, got "
                          f"{bpb!r} (the run failed or its evaluation is incomplete: rerun it)")
    settings = load_settings(metrics_path.parent / "settings.json")
    return Point(float(settings["lr"]), settings["run"], float(bpb), extension), settings


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="symato sweep",
        description="Decide one round of a learning-rate sweep from its evaluated runs: "
        "bracketed, or the next rate past the edge (docs/scaling.md). Each metrics.json "
        "needs the run's settings.json beside it.")
    parser.add_argument("--out", required=True, type=Path, help="decision JSON to write")
    parser.add_argument("--tokenizer", required=True)
    parser.add_argument("--sweep", required=True, help="sweep name (run name without -lr)")
    parser.add_argument("--max-extensions", required=True, type=int,
                        help="most rates the sweep may add (0: none)")
    parser.add_argument("--extension", action="append", default=[], type=Path,
                        help="metrics.json of an extension run (repeat, in the order added)")
    parser.add_argument("metrics", nargs="+", type=Path,
                        help="metrics.json of each configured run of the sweep")
    return parser


def main(argv: list[str]) -> int:
    """``symato sweep``: write one decision of a learning-rate sweep (atomically)."""
    args = _parser().parse_args(argv)
    where = f"learning-rate sweep {args.tokenizer}/{args.sweep}"
    if args.max_extensions < 0:
        raise SymatoError(f"{where}: --max-extensions must be >= 0, got {args.max_extensions}")
    read = [read_point(p, False) for p in args.metrics]
    read += [read_point(p, True) for p in args.extension]
    for (point, settings), path in zip(read, [*args.metrics, *args.extension], strict=True):
        if settings["tokenizer"] != args.tokenizer or sweep_name(point.run) != args.sweep:
            raise SymatoError(f"{where}: {path} is run {settings['tokenizer']}/{point.run}, "
                              "not a run of this sweep")
    _check_same_but_lr(args.tokenizer, args.sweep,
                       [{"run": p.run, "settings": s} for p, s in read])
    first = read[0][1]
    decision = decide([p for p, _ in read], max_extensions=args.max_extensions,
                      lr_min=float(first["lr_min"]), template=first["run"], where=where)
    write_json_atomic(args.out, {"tokenizer": args.tokenizer, "sweep": args.sweep,
                                 "arch": first["arch"], **decision})
    print(f"{where}: {decision['status']}: {decision['reason']} -> {args.out}")
    return 0


def final_main(argv: list[str]) -> int:
    """``symato sweep final --step FILE --out FILE``: a sweep's last decision (one that
    asks for no further rate) copied to its stable path, checked."""
    parser = argparse.ArgumentParser(prog="symato sweep final",
                                     description="Write a sweep's final decision.")
    parser.add_argument("--step", required=True, type=Path, help="the last round's decision")
    parser.add_argument("--out", required=True, type=Path)
    args = parser.parse_args(argv)
    decision = read_decision(args.step)
    if decision["next_run"] is not None:
        raise SymatoError(f"{args.step}: not final, it asks for run {decision['next_run']}")
    write_json_atomic(args.out, decision)
    print(f"{decision['tokenizer']}/{decision['sweep']}: {decision['status']} -> {args.out}")
    return 0


def read_decision(path: str | Path) -> dict[str, Any]:
    """A decision file written by ``symato sweep`` (checked for the keys readers use)."""
    decision = read_json(path, "learning-rate sweep decision")
    needed = ("tokenizer", "sweep", "rates", "status", "next_run", "extension_runs",
              "bracketed", "limit_reached", "best_lr", "max_extensions")
    missing = [k for k in needed if not isinstance(decision, dict) or k not in decision]
    if missing:
        raise SymatoError(f"{path}: missing key(s) {missing} (not a sweep decision?)")
    return decision
