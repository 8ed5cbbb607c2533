"""Seed replicates (issue #20, "Noise"): `vary: {seed: [...]}` in the grid, the
learning-rate choice that does not pick among seeds, the summary's replicate statistics,
the tokenizer study's bootstrap inside cells and its 'not resolved' rules, and the
ranking agreement between the smallest and the largest size over seeds."""

from __future__ import annotations

import json
import math
import re

import numpy as np
import pandas as pd
import pytest
import yaml
from _workflow import REPO, load_script, prepared, write_csv

from symato.report import study, summary
from symato.report.fit import main as fit_main
from symato.report.laws import LAW_ND, STATUS_OK, FitResult, predict
from symato.report.lrchoice import CHOICE_RULE, choose_runs, replicate_key, split_run_name
from symato.run.grid import expand_grid, run_name_pattern
from symato.run.settings import command_args


def _config(vary: dict, extra_grid: bool = True) -> dict:
    config = yaml.safe_load((REPO / "config.yaml").read_text(encoding="utf-8"))
    grids = [{"name": "seeds", "tokenizers": ["symato"], "archs": ["gpt"],
              "sizes": ["L1-D32"], "tokens": [30000], "vary": vary}]
    if extra_grid:
        grids.append({"name": "plain", "tokenizers": ["symato"], "archs": ["gpt"],
                      "sizes": ["L1-D32"], "tokens": [30000]})
    config["train"]["grids"] = grids
    return prepared(config)


# ------------------------------------------------------------------------------ the grid
def test_seed_axis_names_the_replicates_and_keeps_the_default_name():
    runs = {r["run"]: r for r in expand_grid(_config({"seed": [1234, 2, 3]}))}
    # the configured seed (1234) keeps the plain name: the run another sub-grid asks for
    assert set(runs) == {"gpt-L1-D32-T30k", "gpt-L1-D32-T30k-s2", "gpt-L1-D32-T30k-s3"}
    assert runs["gpt-L1-D32-T30k"]["grids"] == ["seeds", "plain"]
    assert {name: r["settings"]["seed"] for name, r in runs.items()} == {
        "gpt-L1-D32-T30k": 1234, "gpt-L1-D32-T30k-s2": 2, "gpt-L1-D32-T30k-s3": 3}
    args = command_args(runs["gpt-L1-D32-T30k-s2"]["settings"])
    assert args[args.index("--seed") + 1] == "2"  # settings.json records the seed
    assert all(re.fullmatch(run_name_pattern(), name) for name in runs)
    # with other varied settings: the suffixes in name order, seed between lr and split
    config = _config({"seed": [1, 2], "lr": [0.003]}, extra_grid=False)
    names = sorted(r["run"] for r in expand_grid(config))
    assert names == ["gpt-L1-D32-T30k-lr0.003-s1", "gpt-L1-D32-T30k-lr0.003-s2"]
    assert all(re.fullmatch(run_name_pattern(), name) for name in names)
    assert replicate_key("gpt-L1-D32-T30k-lr0.003-s2") == ("gpt-L1-D32-T30k-lr0.003", 2)
    assert replicate_key("rwkv4-L2-D64-B300k-s3-split0.1") == (
        "rwkv4-L2-D64-B300k-split0.1", 3)
    assert replicate_key("gpt-L1-D32-T30k") == ("gpt-L1-D32-T30k", None)
    assert split_run_name("rwkv4-L2-D64-B300k-split0.1") == (
        "rwkv4-L2-D64-B300k", {"split_syllables": 0.1})


def test_demo_grid_replicates_what_the_issue_asks():
    """The demo repeats with 3 seeds the tokenizer study at one size (every tokenizer,
    every budget) and the architecture comparison at one size; the configured seed's
    runs keep their names (no rerun of existing runs)."""
    config = prepared(yaml.safe_load((REPO / "config.yaml").read_text(encoding="utf-8")))
    runs = expand_grid(config)
    seeds: dict[tuple, set] = {}
    for r in runs:
        base = re.sub(r"-s[0-9]+$", "", r["run"])
        seeds.setdefault((r["tokenizer"], base), set()).add(r["settings"]["seed"])
        assert bool(re.search(r"-s[0-9]+$", r["run"])) == (r["settings"]["seed"] != 1234)
    tripled = {k for k, v in seeds.items() if len(v) >= 3}
    for tok in config["tokenizers"]:
        for budget in ("10k", "30k", "100k", "300k"):
            assert (tok, f"rwkv4-L1-D32-B{budget}") in tripled, (tok, budget)
    for arch in ("rwkv4", "gpt", "rwkv7", "llama"):
        assert ("symato", f"{arch}-L2-D48-B100k") in tripled, arch


# ------------------------------------------------------------ the learning-rate choice
def _row(run: str, loss: float | None, lr: float, seed: int, tok: str = "symato",
         line: int = 0) -> dict:
    return {"tokenizer": tok, "arch": "rwkv4", "run": run, "loss": loss, "lr": lr,
            "lr_min": 0.0004, "seed": seed, "params": 1e5, "tokens": 1e5, "_line": line}


def test_choice_does_not_pick_among_seeds():
    # one learning rate, three seeds: every replicate is fitted, and there is no sweep
    rows = [_row("rwkv4-L1-D32-B200k", 2.0, 0.004, 1234, line=1),
            _row("rwkv4-L1-D32-B200k-s2", 1.8, 0.004, 2, line=2),
            _row("rwkv4-L1-D32-B200k-s3", 2.3, 0.004, 3, line=3)]
    kept, sweeps, notes = choose_runs(rows)
    assert [r["run"] for r in kept] == [r["run"] for r in rows]
    assert sweeps == [] and notes == []
    # a sweep with seeds: the value with the lower *mean* wins (not the luckiest seed),
    # and all its replicates are kept
    swept = [*rows, _row("rwkv4-L1-D32-B200k-lr0.008", 1.7, 0.008, 1234, line=4),  # lucky
             _row("rwkv4-L1-D32-B200k-lr0.008-s2", 2.5, 0.008, 2, line=5),
             _row("rwkv4-L1-D32-B200k-lr0.008-s3", 2.4, 0.008, 3, line=6)]
    kept, sweeps, _ = choose_runs(swept)
    assert [r["run"] for r in kept] == [r["run"] for r in rows]
    (sweep,) = sweeps
    assert sweep["chosen"] == "rwkv4-L1-D32-B200k" and sweep["at_edge"] == {"lr": "low"}
    assert [(r["lr"], r["replicates"]) for r in sweep["runs"]] == [(0.004, 3), (0.008, 3)]
    assert sweep["runs"][0]["loss"] == pytest.approx((2.0 + 1.8 + 2.3) / 3)
    assert sweep["runs"][1]["replicate_runs"] == ["rwkv4-L1-D32-B200k-lr0.008",
                                                 "rwkv4-L1-D32-B200k-lr0.008-s2",
                                                 "rwkv4-L1-D32-B200k-lr0.008-s3"]
    assert "Seed replicates" in CHOICE_RULE
    # a failed replicate is not counted in its value's mean and not fitted
    failed = [*rows[:2], _row("rwkv4-L1-D32-B200k-s3", None, 0.004, 3)]
    kept, _, _ = choose_runs(failed)
    assert [r["run"] for r in kept] == ["rwkv4-L1-D32-B200k", "rwkv4-L1-D32-B200k-s2"]


def test_fit_uses_every_replicate_as_a_point(tmp_path):
    rows = []
    for layers, width in ((1, 32), (2, 48), (2, 64), (3, 96)):
        n = 12 * layers * width**2
        for seed, noise in ((1234, 0.0), (2, 0.01), (3, -0.01)):
            suffix = "" if seed == 1234 else f"-s{seed}"
            rows.append({"tokenizer": "symato", "arch": "gpt",
                         "run": f"gpt-L{layers}-D{width}-B200k{suffix}", "params": n,
                         "tokens": 87000, "loss": 1.2 + 40 * n**-0.35 + noise, "lr": 0.006,
                         "seed": seed})
    path = write_csv(tmp_path / "runs.csv", rows)
    out = tmp_path / "fits.json"
    assert fit_main(["--runs", str(path), "--out", str(out), "--bootstrap", "0"]) == 0
    group = json.loads(out.read_text())["groups"]["symato/gpt"]
    assert group["n_runs"] == 12 and group["fits"]["L_N"]["n_runs"] == 12
    assert json.loads(out.read_text())["lr_choice"]["sweeps"] == []


# ------------------------------------------------------------------- summary: replicates
def test_replicates_section_gives_n_mean_sd_and_range():
    runs = pd.DataFrame([{**r, "params": 1e5, "tokens": 1e5} for r in [
        {"tokenizer": "symato", "arch": "rwkv4", "run": "rwkv4-L1-D32-B100k", "seed": 1234,
         "loss": 2.0, "restoration_accuracy": 0.5},
        {"tokenizer": "symato", "arch": "rwkv4", "run": "rwkv4-L1-D32-B100k-s2", "seed": 2,
         "loss": 2.2, "restoration_accuracy": 0.6},
        {"tokenizer": "symato", "arch": "rwkv4", "run": "rwkv4-L1-D32-B100k-s3", "seed": 3,
         "loss": 2.4, "restoration_accuracy": 0.7},
        {"tokenizer": "bytes", "arch": "rwkv4", "run": "rwkv4-L1-D32-B100k", "seed": 1234,
         "loss": 2.5, "restoration_accuracy": None},
        {"tokenizer": "bytes", "arch": "rwkv4", "run": "rwkv4-L1-D32-B100k-s2", "seed": 2,
         "loss": 2.7, "restoration_accuracy": None},
        {"tokenizer": "bytes", "arch": "rwkv4", "run": "rwkv4-L2-D64-B100k", "seed": 1234,
         "loss": 1.9, "restoration_accuracy": None},  # a single run: not a replicated cell
    ]])
    text = summary.replicates_section(runs)
    lines = [line for line in text.splitlines() if line.startswith("| ")]
    assert len(lines) == 3  # header + 2 replicated cells
    assert "| symato | rwkv4-L1-D32-B100k | 2, 3, 1234 | 3 | 2.2 | 0.2 | 2–2.4 | 3 | 0.6 | 0.1 | " \
           "0.5–0.7 |" in text
    assert "| bytes | rwkv4-L1-D32-B100k | 2, 1234 | 2 | 2.6 | 0.1414 | 2.5–2.7 | 0 | – | – | – |" \
        in text
    assert "rwkv4-L2-D64" not in text
    assert "No replicated runs" in summary.replicates_section(runs.iloc[[0, 3]])
    doc = load_script("summary").document(runs, {}, pd.DataFrame(), {})
    assert "## Replicates" in doc and "### Ranking agreement" in doc


# -------------------------------------------------------- the study: noise inside cells
def test_bootstrap_resamples_replicates_inside_each_drawn_cell():
    rows = [{"tokenizer": tok, "arch": "rwkv4", "run": f"rwkv4-L1-D32-B{b}k{s}",
             "n_layer": 1, "n_embd": 32, "tokens": 1.0, "loss": 1.0}
            for tok in "ab" for b in (10, 30) for s in ("", "-s2", "-s3")]
    by_tok = {t: [r for r in rows if r["tokenizer"] == t] for t in "ab"}
    with_reps = study.paired_resamples(by_tok, n_bootstrap=40, seed=0)
    cells_only = study.paired_resamples(by_tok, n_bootstrap=40, seed=0, replicates=False)
    repeated = 0
    for i, (ia, ib) in enumerate(zip(with_reps["a"], with_reps["b"], strict=True)):
        # the same cells, three draws per drawn cell, each inside its cell
        cells = [study.cell_of(by_tok["a"][j]) for j in cells_only["a"][i]]
        assert sorted(study.cell_of(by_tok["a"][j]) for j in ia) == sorted(cells)
        assert sorted(study.cell_of(by_tok["b"][j]) for j in ib) == sorted(cells)
        assert len(ia) == len(cells_only["a"][i]) == 6
        repeated += len(set(ia.tolist())) < len(set(cells_only["a"][i].tolist()))
    assert repeated > 10  # replicates are drawn with replacement
    # cells only: every replicate of a drawn cell, as before seeds existed
    assert all(len(set(idx.tolist())) % 3 == 0 for idx in cells_only["a"])
    assert study.has_replicates(rows) and not study.has_replicates(
        [r for r in rows if "-s" not in r["run"]])


def test_a_difference_within_replicate_noise_is_not_resolved():
    def rows(losses: dict[str, list[float]]) -> list[dict]:
        return [{"tokenizer": tok, "arch": "rwkv4", "n_layer": 2, "n_embd": 64,
                 "run": f"rwkv4-L2-D64-B100k{'' if i == 0 else f'-s{i + 1}'}", "loss": x,
                 "tokens": 1.0} for tok, xs in losses.items() for i, x in enumerate(xs)]

    # without replicates the difference is a number (no noise level known)
    (single,) = study.cell_differences(rows({"a": [2.00], "b": [2.05]}))
    assert single["status"] == "single_run" and single["difference"] == pytest.approx(-0.05)
    assert single["better"] == "a"
    # the same means with large seed noise: not resolved
    (noisy,) = study.cell_differences(rows({"a": [1.80, 2.20, 2.00], "b": [2.25, 1.85, 2.05]}))
    assert noisy["difference"] == pytest.approx(-0.05) and noisy["status"] == "not_resolved"
    assert noisy["better"] is None and noisy["se"] > 0.05 / 2
    # small seed noise: resolved
    (quiet,) = study.cell_differences(rows({"a": [1.99, 2.01, 2.00], "b": [2.04, 2.06, 2.05]}))
    assert quiet["status"] == "resolved" and quiet["better"] == "a"
    text = summary.differences_section({"difference_rule": study.DIFFERENCE_RULE,
                                        "differences": [single, {**noisy, "arch": "rwkv4"}]})
    assert "not resolved" in text and "2 standard errors" in text
    assert "single" not in text.split("\n\n", 1)[1]  # single runs are not listed


def _fit(crossing_samples: list[float], b: float = 300.0) -> FitResult:
    """A fitted L(N, D) = E + b/sqrt(D) whose bootstrap samples differ only in E (one
    sample per value); the full fit has the first sample's E."""
    law = {"E": crossing_samples[0], "A": 0.0, "alpha": 0.5, "B": b, "beta": 0.5}
    result = FitResult(LAW_ND, STATUS_OK, 12, params=dict(law))
    raw = [[e, law["A"], law["alpha"], law["B"], law["beta"]] for e in crossing_samples]
    result.samples, result.sample_ids = np.array(raw), list(range(len(raw)))
    return result


def test_a_crossover_replicate_noise_does_not_resolve_is_reported_as_such():
    """b = E 0.8 + 363/sqrt(D) crosses a = E 1.0 + 300/sqrt(D) at 99k bytes. Bootstrap
    over cells only: every pair crosses in [20k, 600k]; with the replicates resampled
    inside the cells a's E wanders so that most pairs do not cross: not resolved."""
    b = _fit([0.8] * 10, b=363.0)
    a_cells = _fit([1.0] * 10)
    a_noisy = _fit([1.0, 1.0, 1.0, 0.7, 0.7, 0.7, 0.7, 0.7, 0.7, 0.7])
    sizes = {"a": {"L2-D64": 1e5}, "b": {"L2-D64": 1e5}}
    ranges = {"a": (20_000.0, 600_000.0), "b": (20_000.0, 600_000.0)}
    clear = study.crossover("a", "b", "rwkv4", {"size": "L2-D64"}, {"a": a_cells, "b": b},
                            sizes, ranges)
    assert clear["status"] == "crossover"
    assert clear["text_bytes"] == pytest.approx((63 / 0.2) ** 2, rel=1e-6)
    noisy = study.crossover("a", "b", "rwkv4", {"size": "L2-D64"}, {"a": a_noisy, "b": b},
                            sizes, ranges, fits_cells={"a": a_cells, "b": b})
    assert noisy["status"] == "not_resolved" and "text_bytes" not in noisy
    assert noisy["bootstrap"]["crossing"] == 3 and noisy["bootstrap_cells"]["crossing"] == 10
    # without the cells-only fits (no replicates) the same is just not determined
    plain = study.crossover("a", "b", "rwkv4", {"size": "L2-D64"}, {"a": a_noisy, "b": b},
                            sizes, ranges)
    assert plain["status"] == "not_determined"
    text = summary.crossover_section({"crossovers": [noisy]})
    assert "Not resolved by the seed replicates" in text and "3 of 10 pairs cross" in text
    (row,) = study.crossover_rows([noisy])
    assert row["status"] == "not_resolved" and row["cells_only_share"] == 1.0


# ------------------------------------------------------------- ranking agreement (DataDecide)
def _ranking_rows() -> list[dict]:
    """At the large size the replicate means order a (1.55) < b (1.6) < c (1.6375).
    a vs b: a better at the small size in every seed -> 4 of 4 agree. a vs c: c better
    small in seeds 1 and 4 -> 2 of 4. b vs c: likewise -> 2 of 4."""
    losses = {  # tokenizer -> size -> seed -> loss
        "a": {(1, 32): [2.0, 2.0, 2.0, 2.0], (3, 96): [1.5, 1.5, 1.5, 1.7]},
        "b": {(1, 32): [2.1, 2.1, 2.1, 2.1], (3, 96): [1.6, 1.6, 1.6, 1.6]},
        "c": {(1, 32): [1.9, 2.2, 2.2, 1.9], (3, 96): [1.8, 1.55, 1.55, 1.65]},
    }
    rows = []
    for tok, by_size in losses.items():
        for (layers, width), values in by_size.items():
            for seed, loss in zip((1, 2, 3, 4), values, strict=True):
                rows.append({"tokenizer": tok, "arch": "rwkv4", "n_layer": layers,
                             "n_embd": width, "run": f"rwkv4-L{layers}-D{width}-B100k-s{seed}",
                             "seed": seed, "loss": loss, "tokens": 1.0})
    # a middle size does not count; another budget with one size has no ranking
    rows.append({**rows[0], "n_layer": 2, "n_embd": 64, "run": "rwkv4-L2-D64-B100k-s1"})
    rows.append({**rows[0], "run": "rwkv4-L1-D32-B300k-s1"})
    return rows


def test_ranking_agreement_over_seeds():
    agreement = study.ranking_agreement(_ranking_rows())
    pairs = {(p["a"], p["b"]): p for p in agreement["pairs"]}
    assert set(pairs) == {("a", "b"), ("a", "c"), ("b", "c")}
    assert [(pairs[k]["agree"], pairs[k]["seeds"]) for k in sorted(pairs)] == [
        (4, 4), (2, 4), (2, 4)]
    assert pairs[("a", "c")]["share"] == 0.5
    assert pairs[("a", "b")]["small"] == "L1-D32" and pairs[("a", "b")]["large"] == "L3-D96"
    assert agreement["overall"] == {"pairs": 3, "comparisons": 12, "agree": 8,
                                    "share": pytest.approx(8 / 12)}
    text = summary.ranking_section({"ranking_agreement": agreement})
    assert "| rwkv4 | 100k bytes | a vs c | L1-D32 → L3-D96 | 2/4 | 0.5 |" in text
    assert "overall 8 of 12 comparisons" in text


def test_ranking_agreement_with_seeds_at_the_small_size_only():
    """Replicates at the cheap size only (the demo): each small seed is compared with
    the large size's single run."""
    rows = [r for r in _ranking_rows() if r["n_layer"] != 3 or r["seed"] == 1]
    pairs = {(p["a"], p["b"]): p for p in study.ranking_agreement(rows)["pairs"]}
    # large (seed 1 only): a 1.5 < b 1.6 < c 1.8; a vs c small: c better in seeds 1, 4
    assert pairs[("a", "c")]["seeds"] == 4 and pairs[("a", "c")]["agree"] == 2
    assert pairs[("a", "b")]["agree"] == 4


def test_study_cli_with_replicates(tmp_path):
    """End to end: seeds in runs.csv, the study writes differences, the ranking agreement
    and a cells-only share for the crossovers."""
    laws = {"a": {"E": 1.0, "A": 30.0, "alpha": 0.3, "B": 300.0, "beta": 0.5},
            "b": {"E": 0.8, "A": 30.0, "alpha": 0.3, "B": 363.0, "beta": 0.5}}
    rng = np.random.default_rng(0)
    rows = []
    for tok, law in laws.items():
        for (layers, width), n in {(2, 64): 1e5, (4, 256): 1e6, (8, 1024): 1e7}.items():
            for text in (20_000, 60_000, 200_000, 600_000):
                for seed in (1234, 2):
                    suffix = "" if seed == 1234 else f"-s{seed}"
                    loss = float(predict(law, n, text) * math.exp(rng.normal(0, 0.003)))
                    rows.append({"tokenizer": tok, "arch": "rwkv4", "seed": seed,
                                 "run": f"rwkv4-L{layers}-D{width}-B{text // 1000}k{suffix}",
                                 "n_layer": layers, "n_embd": width, "params": n,
                                 "tokens": text / 2, "loss": loss})
    runs = write_csv(tmp_path / "runs.csv", rows)
    toks = write_csv(tmp_path / "tokenizers.csv",
                     [{"tokenizer": t, "split": "train", "tokens": 1000, "bytes": 2000}
                      for t in laws])
    out = tmp_path / "study.json"
    assert study.main(["--runs", str(runs), "--tokenizers", str(toks), "--out", str(out),
                       "--crossovers", str(tmp_path / "x.csv"), "--bootstrap", "8"]) == 0
    doc = json.loads(out.read_text())
    assert doc["groups"]["a/rwkv4"]["n_runs"] == 24
    assert len(doc["differences"]) == 12
    assert {d["status"] for d in doc["differences"]} <= {"resolved", "not_resolved"}
    assert doc["ranking_agreement"]["overall"]["comparisons"] == 8  # 4 budgets x 2 seeds
    assert all("bootstrap_cells" in c for c in doc["crossovers"]
               if c["status"] in ("not_determined", "not_resolved"))
    assert "cells_only_share" in (tmp_path / "x.csv").read_text().splitlines()[0]


def test_collect_puts_the_seed_in_runs_csv(tmp_path):
    from symato.report.collect import RUN_COLUMNS, run_row

    run = tmp_path / "symato" / "rwkv4-L1-D32-B100k-s2"
    run.mkdir(parents=True)
    (run / "settings.json").write_text(json.dumps({"tokenizer": "symato", "arch": "rwkv4",
                                                   "run": run.name, "seed": 2,
                                                   "text_bytes": 100000, "tokens": 44000}))
    (run / "metrics.json").write_text(json.dumps({"params_total": 1000, "train_tokens": 44032,
                                                  "bits_per_byte": 2.1}))
    row = run_row(run)
    assert row["seed"] == 2 and "seed" in [c for c, _ in RUN_COLUMNS]
