"""The data-constrained law (symato.report.constrained): it recovers known constants from
synthetic runs, refuses what the runs cannot determine, and `symato fit` fits it when a
runs table repeats text."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest

from symato.report.constrained import (
    effective_data,
    epochs_worth,
    fit_constrained,
    predict,
)

# Muennighoff et al. 2023: R_D* = 15.4, alpha = beta = 0.353; E, A, B of our choosing.
TRUE = {"E": 1.87, "A": 406.4, "alpha": 0.353, "B": 410.7, "beta": 0.353, "R_D_star": 15.4}


def _synthetic(noise: float, seed: int = 0, sizes=(1e6, 3e6, 1e7, 3e7)):
    """Runs at 4 sizes x 3 unique sizes x 6 epoch counts, losses with lognormal noise."""
    rng = np.random.default_rng(seed)
    rows = [(n, u * e, u) for n in sizes for u in (1e8, 3e8, 1e9)
            for e in (1, 2, 4, 8, 16, 40)]
    n, tokens, unique = (np.array(c) for c in zip(*rows, strict=True))
    loss = predict(TRUE, n, unique, tokens / unique) * np.exp(rng.normal(0, noise, len(n)))
    return n, tokens, unique, loss


def test_effective_data_and_worth() -> None:
    assert effective_data(100, 1, 15.4) == pytest.approx(100)  # one epoch: all fresh
    assert effective_data(100, 1e6, 15.4) == pytest.approx(100 * 16.4)  # saturates
    # the marginal worth exp(-R/R*) is a half at 1 + R* ln 2 epochs
    e = epochs_worth(15.4, 0.5)
    h = 1e-4
    slope = (effective_data(1, e + h, 15.4) - effective_data(1, e - h, 15.4)) / (2 * h)
    assert slope == pytest.approx(0.5, rel=1e-5)
    assert epochs_worth(15.4, 0.9) == pytest.approx(1 + 15.4 * np.log(10 / 9))


def test_recovers_the_published_constants_inside_the_intervals() -> None:
    fit = fit_constrained(*_synthetic(noise=0.003), n_bootstrap=25, seed=1)
    assert fit.status == "ok", fit.reason
    for key in ("R_D_star", "alpha", "beta"):
        low, high = fit.ci[key]
        assert low <= TRUE[key] <= high, (key, fit.params[key], fit.ci[key])
    assert fit.params["R_D_star"] == pytest.approx(15.4, rel=0.3)
    doc = fit.to_json()
    assert doc["epochs_worth_half"] == pytest.approx(1 + fit.params["R_D_star"] * np.log(2))
    assert doc["ci"]["epochs_worth_half"][0] <= doc["epochs_worth_half"]


def test_exact_data_recovers_the_constants_closely() -> None:
    fit = fit_constrained(*_synthetic(noise=0.0), n_bootstrap=0)
    for key, value in TRUE.items():
        assert fit.params[key] == pytest.approx(value, rel=0.05), key


def test_one_model_size_folds_the_model_term_into_e() -> None:
    n, tokens, unique, loss = _synthetic(noise=0.0, sizes=(1e7,))
    fit = fit_constrained(n, tokens, unique, loss, n_bootstrap=0)
    assert fit.form is not None and not fit.form.with_n
    assert "A" not in fit.params
    assert fit.params["E"] == pytest.approx(TRUE["E"] + TRUE["A"] * 1e7 ** -TRUE["alpha"],
                                            rel=0.05)
    assert fit.params["R_D_star"] == pytest.approx(15.4, rel=0.1)


def test_refuses_runs_that_never_repeat_and_flags_a_bound() -> None:
    n, tokens, unique, loss = _synthetic(noise=0.0)
    fresh = tokens == unique
    fit = fit_constrained(n[fresh], tokens[fresh], unique[fresh], loss[fresh])
    assert fit.status == "too_few_runs" and "repeat their text" in fit.reason
    few = fit_constrained(n[:5], tokens[:5], unique[:5], loss[:5])
    assert few.status == "too_few_runs" and "at least 6 runs" in few.reason
    # repetition exactly as good as fresh text: R_D* runs to the top of its box
    flat = {**TRUE, "R_D_star": 1e9}
    at = fit_constrained(n, tokens, unique, predict(flat, n, unique, tokens / unique),
                         n_bootstrap=0)
    assert at.status == "at_bound" and "R_D_star" in at.at_bound


def test_symato_fit_fits_the_law_when_the_table_repeats_text(tmp_path: Path) -> None:
    from symato.report.fit import main

    n, tokens, unique, loss = _synthetic(noise=0.002)
    path = tmp_path / "runs.csv"
    with path.open("w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["tokenizer", "arch", "run", "params", "tokens", "unique_tokens", "loss"])
        for i, row in enumerate(zip(n, tokens, unique, loss, strict=True)):
            w.writerow(["symato", "rwkv4", f"r{i}", *row])
    assert main(["--runs", str(path), "--out", str(tmp_path / "fits.json"),
                 "--bootstrap", "20"]) == 0
    group = json.loads((tmp_path / "fits.json").read_text())["groups"]["symato/rwkv4"]
    assert group["law"] == "L(N,D')"
    assert group["R_D_star"] > 0 and len(group["ci"]["R_D_star"]) == 2
    assert {"E", "A", "B", "alpha", "beta"} <= set(group)
    # the plain L(N, D) is fitted on the fresh runs alone
    assert group["fits"]["L_ND"]["n_runs"] == int((tokens == unique).sum())
    table = list(csv.DictReader((tmp_path / "fits.csv").open()))
    assert any(r["parameter"] == "R_D_star" and r["law"] == "L(N,D')" for r in table)


def _study_table(path: Path) -> Path:
    """A runs.csv of a small repetition study: 2 tokenizers, 3 sizes on fresh text, one
    size at 3 unique sizes x up to 4 epochs (losses from the law, symato a bit lower)."""
    header = ["tokenizer", "arch", "run", "n_layer", "n_embd", "params", "tokens",
              "text_bytes", "unique_tokens", "unique_bytes", "epochs", "loss", "flops"]
    rows = []
    for tok, shift, bpt in (("symato", 0.0, 3.0), ("sp-bpe2816", 0.05, 3.5)):
        for layers, width, n in ((1, 32, 1e5), (2, 48, 3e5), (2, 64, 6e5)):
            for b in (10_000, 30_000, 100_000, 300_000):
                for u in (10_000, 30_000, 100_000, b):
                    if u > b or (u != b and layers > 1):
                        continue
                    unique, tokens = u / bpt, b / bpt
                    loss = float(predict(TRUE, n, unique, tokens / unique)) + shift
                    name = f"rwkv4-L{layers}-D{width}-B{b // 1000}k" + (
                        f"-U{u // 1000}k" if u != b else "")
                    rows.append([tok, "rwkv4", name, layers, width, n, tokens, b, unique, u,
                                 tokens / unique, loss, 6 * n * tokens])
    rows = list({(r[0], r[2]): r for r in rows}.values())
    with path.open("w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(header)
        w.writerows(rows)
    return path


def test_figure_and_summary_of_a_repetition_study(tmp_path: Path) -> None:
    from _workflow import load_script

    from symato.report import figures, summary
    from symato.report.fit import main

    runs_csv = _study_table(tmp_path / "runs.csv")
    assert main(["--runs", str(runs_csv), "--out", str(tmp_path / "fits.json"),
                 "--bootstrap", "10"]) == 0
    fits = figures.load_fits(tmp_path / "fits.json")
    runs = figures.load_runs(runs_csv, repeated=True)
    assert len(figures.load_runs(runs_csv)) == len(runs) - 12  # repeated runs left out
    study = figures.repetition_runs(runs)
    assert set(study["size"]) == {"L1-D32"} and study["fresh"].sum() == 8
    style = figures.Style(["rwkv4"], ["symato", "sp-bpe2816"])
    fig = load_script("repetition").draw(runs, fits, style)
    figures.save_figure(fig, tmp_path / "r.png", tmp_path / "r.svg", dpi=50)
    svg = (tmp_path / "r.svg").read_text()
    assert "10k bytes unique" in svg and "fresh text" in svg
    text = summary.repetition_section(runs, fits)
    assert "| symato | rwkv4 |" in text and "R_D* [95% CI]" in text
    # symato is lower in every cell, fresh or repeated: the ranking holds everywhere
    assert "holds in 6 of 6 repeated cells" in text
    assert "No run repeats" in summary.repetition_section(figures.load_runs(runs_csv), fits)


def test_a_group_of_repeated_runs_only_fits_the_constrained_law() -> None:
    from symato.report.fit import fit_group

    n, tokens, unique, loss = _synthetic(noise=0.0)
    rows = [{"params": a, "tokens": b, "unique_tokens": c, "loss": d, "run": f"r{i}"}
            for i, (a, b, c, d) in enumerate(zip(n, tokens, unique, loss, strict=True))
            if b > c]
    out = fit_group(rows, "params", 0, 0)
    assert out["law"] == "L(N,D')" and out["fits"]["L_NDU"]["status"] == "ok"
    assert out["R_D_star"] == pytest.approx(15.4, rel=0.05) and out["n_runs"] == len(rows)


def test_repetition_cells_average_seeds_and_leave_out_other_recipes(tmp_path: Path) -> None:
    """A fresh cell with seed replicates and a learning-rate sweep beside it: the figure
    and summary get one row, the mean of the configured recipe's seeds (the sweep's
    rates are other recipes, not more of the cell)."""
    import pandas as pd

    from symato.report import figures

    runs = figures.load_runs(_study_table(tmp_path / "runs.csv"), repeated=True)
    base = runs[(runs["tokenizer"] == "symato") & (runs["run"] == "rwkv4-L1-D32-B100k")]
    assert len(base) == 1
    extra = pd.concat([base.assign(run="rwkv4-L1-D32-B100k-s2", loss=base["loss"] + 0.2),
                       base.assign(run="rwkv4-L1-D32-B100k-lr0.002", loss=base["loss"] - 5)])
    before = figures.repetition_runs(runs)
    after = figures.repetition_runs(pd.concat([runs, extra], ignore_index=True))
    assert len(after) == len(before)
    cell = (after["tokenizer"] == "symato") & (after["text_bytes"] == 100000) & after["fresh"]
    assert after.loc[cell, "replicates"].tolist() == [2]
    assert after.loc[cell, "loss"].iloc[0] == pytest.approx(float(base["loss"].iloc[0]) + 0.1)
