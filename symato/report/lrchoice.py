"""The learning-rate choice: which run of each learning-rate sweep the fits keep.

Runs that differ only in a tuned setting (``lr``, ``lr_min``) form a sweep; the fits keep
the one with the lowest validation bits per byte (``CHOICE_RULE`` says the whole rule,
and is written into the fits JSON). Seed replicates are scored together, WSD branches
beside their cosine run are set aside, and runs varying any other setting are a study of
their own. The helpers that read a run's name for this (``split_run_name``,
``replicate_key``, ``without_schedule``) live here too; the summary and the figures use
them.

Why a module of its own: this is a decision about the experiment (which runs count),
not fit math, and ``symato.run.sweep`` mirrors its tie rule (``TIE_RTOL``) when it
decides whether to extend a sweep, so both sides of that contract are easy to find.
"""

from __future__ import annotations

import math
import re
from typing import Any

import numpy as np

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

    ``rwkv4-L2-D64-B200k-lr0.002`` -> ``("rwkv4-L2-D64-B200k", {"lr": 0.002})``; the inverse
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

    ``rwkv4-L2-D64-B200k-lr0.002-s2`` -> ``("rwkv4-L2-D64-B200k-lr0.002", 2.0)``: runs with
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
    (``rwkv4-L1-D32-B30k-wsd0.2-s2`` -> ``rwkv4-L1-D32-B30k-s2``)."""
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
