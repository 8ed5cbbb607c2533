"""Warmup-stable-decay (WSD) branches: one stable run per budget ladder, one short decay
branch per budget (Hägele et al. 2024, "Scaling Laws and Compute-Optimal Training
Beyond Fixed Training Durations"; MiniCPM's WSD schedule).

Why: a cosine run's schedule depends on its length, so every budget of a sub-grid is a
run from scratch. A WSD run holds the learning rate constant after its warmup and
decays only over its last ``decay`` share of steps, so all budgets of a ladder share
their first steps: one *stable* run trains them once, saving its full resumable state
at each budget's branch point, and each budget's *branch* continues from that state
and decays over the rest. A branch is the WSD run of its budget trained straight
through (same steps, same batches, same weights, bit for bit on CPU) at a fraction of
the cost: docs/training.md, "WSD branches".

The rules this module implements, in one place for the grid, ``symato settings`` (byte
budgets, resolved from the shard manifest) and ``scripts/grid_cost.py``:

* **Group**: the WSD runs of one tokenizer whose settings differ only in their budget
  (tokens or text bytes, never mixed) form one ladder, whatever sub-grids asked for
  them.
* **Warmup**: every branch of a ladder has the same warmup, ``warmup_steps = round(warmup
  x steps of the ladder's smallest budget)``, so the stable run's first steps are the
  first steps of every branch. (A share of each budget's own steps would make the
  ladder's runs diverge from step 1.)
* **Branch point** of a budget of ``N`` steps: ``N - decay_steps``, with ``decay_steps =
  round(decay x N)`` (at least 1 when decay > 0): the branch trains steps
  ``[N - decay_steps, N)`` with the 1-sqrt decay.
* **Stable run**: named like the ladder's largest budget
  (``results/stable/{tokenizer}/{largest run}/``), schedule wsd with ``decay`` 0, trained
  to the largest branch point; ``branches`` maps each branch run to its branch point and
  the stable run saves ``branches/{run}.pt`` there.
"""

from __future__ import annotations

import json
from collections import defaultdict
from collections.abc import Mapping
from typing import Any

from symato.errors import SymatoError
from symato.run.settings import check_settings, decay_steps_of, ordered

STABLE_ROOT = "stable"  # results/stable/{tokenizer}/{stable run}/
BRANCHES_DIR = "branches"  # the stable run's saved states, one per branch run
STABLE_MARKER = "stable.json"  # written when the stable run is done: its branch states
BUDGET_KEYS = ("run", "tokens", "steps", "text_bytes")  # what differs within a ladder


def plan(steps: Mapping[str, int], warmup: float, decay: float) -> tuple[int, dict[str, int]]:
    """(warmup steps, branch point of each run) for a ladder of runs of ``steps`` each."""
    if not steps:
        raise SymatoError("WSD plan: a ladder needs at least one budget")
    warmup_steps = round(warmup * min(steps.values()))
    points = {name: n - decay_steps_of(n, decay) for name, n in steps.items()}
    short = sorted(name for name, at in points.items() if at < 1)
    if short:
        raise SymatoError(f"WSD runs {short}: {min(steps.values())} steps leave no stable "
                          f"step before the decay (decay {decay}); raise the budget or use "
                          "another schedule")
    return warmup_steps, points


def stable_dir(results: str, tokenizer: str, stable: str) -> str:
    """The stable run's folder (outside results/runs: it is not a run of the report)."""
    return f"{results}/{STABLE_ROOT}/{tokenizer}/{stable}"


def branch_state(results: str, tokenizer: str, stable: str, run: str) -> str:
    """The stable run's saved state that branch ``run`` starts from."""
    return f"{stable_dir(results, tokenizer, stable)}/{BRANCHES_DIR}/{run}.pt"


def marker_of(branch_from: str) -> str:
    """The stable run's marker file, from a branch's ``branch_from`` path."""
    stable = branch_from.rsplit("/", 2)[0]
    return f"{stable}/{STABLE_MARKER}"


def complete_branch(settings: dict[str, Any], steps: Mapping[str, int]) -> dict[str, Any]:
    """A branch run's settings with its ladder's shared warmup filled in."""
    warmup_steps, _ = plan(steps, settings["warmup"], settings["decay"])
    return ordered({**settings, "warmup_steps": warmup_steps})


def complete_stable(settings: dict[str, Any], steps: Mapping[str, int],
                    decay: float) -> dict[str, Any]:
    """A stable run's settings (decay 0) with warmup, branch points, steps and tokens."""
    warmup_steps, points = plan(steps, settings["warmup"], decay)
    top = max(points.values())
    return ordered({**settings, "warmup_steps": warmup_steps, "branches": dict(sorted(
        points.items())), "steps": top, "tokens": top * settings["batch_size"] *
        settings["ctx_len"]})


def resolve_plan(args: dict[str, Any], wsd_plan: Mapping[str, Any],
                 steps_of_bytes: Any) -> dict[str, Any]:
    """``symato settings``: a byte-budget WSD run completed from its ladder's budgets.

    ``wsd_plan`` is ``{"decay": d, "budgets": {run: text bytes}}`` (from the grid), with
    ``"stable": true`` for the stable run (named like its longest branch, so the name
    cannot tell); ``steps_of_bytes(n)`` resolves n bytes of text to steps with the shard
    manifest.
    """
    steps = {name: steps_of_bytes(int(b)) for name, b in wsd_plan["budgets"].items()}
    if wsd_plan.get("stable"):
        return complete_stable(args, steps, float(wsd_plan["decay"]))
    return complete_branch(args, steps)


# ----------------------------------------------------------------------------- the grid
def link_branches(runs: list[dict[str, Any]], results: str) -> list[dict[str, Any]]:
    """Turn the grid's WSD runs into branches of stable runs (in place; returns ``runs``).

    Each WSD run gets ``branch_from`` (and, for token budgets, ``warmup_steps``) in its
    settings, ``stable`` (its stable run's entry) and ``wsd_plan`` (byte budgets: what
    ``symato settings`` needs to resolve the ladder; None for token budgets).
    """
    ladders: dict[tuple[str, str], list[dict[str, Any]]] = defaultdict(list)
    for r in runs:
        if r["settings"]["schedule"] == "wsd":
            rest = {k: v for k, v in r["settings"].items() if k not in BUDGET_KEYS}
            kind = "bytes" if "text_bytes" in r["settings"] else "tokens"
            ladders[(r["tokenizer"], kind + json.dumps(rest, sort_keys=True))].append(r)
    for members in ladders.values():
        _link(members, results)
    return runs


def _budget(r: dict[str, Any]) -> int:
    return r["tokens"] if r["tokens"] is not None else r["text_bytes"]


def _link(members: list[dict[str, Any]], results: str) -> None:
    """Link one ladder: its stable run's entry, each branch's settings."""
    top = max(members, key=_budget)
    tok, stable_name, decay = top["tokenizer"], top["run"], top["settings"]["decay"]
    by_bytes = top["text_bytes"] is not None
    wsd_plan = {"decay": decay, "budgets": {r["run"]: r["text_bytes"] for r in members}} \
        if by_bytes else None
    steps = {r["run"]: r["settings"]["steps"] for r in members} if not by_bytes else {}
    base = {k: v for k, v in top["settings"].items() if k not in ("tokens", "steps")}
    stable = ordered({**base, "run": stable_name, "decay": 0.0})
    if not by_bytes:
        stable = complete_stable(stable, steps, decay)
    where = f"config train: stable run {stable_dir(results, tok, stable_name)}"
    check_settings(stable, where, pending=("tokens", "steps") if by_bytes else ())
    entry = {"tokenizer": tok, "run": stable_name, "arch": top["arch"],
             "n_layer": top["n_layer"], "n_embd": top["n_embd"], "settings": stable,
             "wsd_plan": {**wsd_plan, "stable": True} if wsd_plan else None,
             "branches": sorted(r["run"] for r in members)}
    for r in members:
        s = {**r["settings"], "branch_from": branch_state(results, tok, stable_name, r["run"])}
        s = complete_branch(s, steps) if not by_bytes else ordered(s)
        pending = ("tokens", "steps") if by_bytes else ()
        check_settings(s, f"config train: run {tok}/{r['run']}", pending=pending)
        r.update(settings=s, stable=entry, wsd_plan=wsd_plan)


def stable_runs(runs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The stable runs of the grid's WSD branches, each once, in a stable order."""
    seen: dict[tuple[str, str], dict[str, Any]] = {}
    for r in runs:
        entry = r.get("stable")
        if entry is not None:
            seen.setdefault((entry["tokenizer"], entry["run"]), entry)
    return list(seen.values())

