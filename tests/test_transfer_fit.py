"""The transfer law fit (symato.report.transfer): synthetic runs drawn from a known scratch
law L(N, D) and a known D_T = k D_F^α N^β are recovered inside the bootstrap intervals."""

from __future__ import annotations

import json
import math

import numpy as np
import pandas as pd
import pytest

from symato.cli import main as cli_main
from symato.errors import SymatoError
from symato.report.transfer import (
    BEYOND,
    NEGATIVE,
    NO_CURVE,
    OK,
    figure_data,
    invert,
    law_dt,
    markdown_table,
    saving,
    scratch_loss,
    stops_paying,
    transfer_fit,
)

# The truth the synthetic runs are drawn from: bits per byte against text bytes.
E, A, ALPHA_N, B, BETA_D = 0.8, 40.0, 0.35, 30.0, 0.3
K, ALPHA, BETA = 3.0, 0.4, 0.5
SIZES = (1e5, 4e5, 1.6e6)
SCRATCH_TEXT = tuple(np.geomspace(1e5, 1e7, 6))
TRANSFER_TEXT = (1e5, 3e5, 1e6, 3e6)


def true_loss(n: float, d: float) -> float:
    return E + A * n ** -ALPHA_N + B * d ** -BETA_D


def true_dt(d_f: float, n: float) -> float:
    return K * d_f ** ALPHA * n ** BETA


def row(n: float, d: float, loss: float, init: str = "", **extra: object) -> dict:
    return {"tokenizer": "symato", "arch": "rwkv4", "params": n, "text": d, "loss": loss,
            "init_from": init, **extra}


def synth(seed: int, noise: float = 0.002, sizes: tuple[float, ...] = SIZES,
          transfer_text: tuple[float, ...] = TRANSFER_TEXT, k: float = K) -> pd.DataFrame:
    """Scratch runs on L(N, D), transferred runs at L(N, D_F + D_T), log-normal noise."""
    rng = np.random.default_rng(seed)
    rows = []
    for n in sizes:
        for d in SCRATCH_TEXT:
            rows.append(row(n, d, true_loss(n, d) * math.exp(noise * rng.standard_normal())))
        for d in transfer_text:
            d_t = k * d ** ALPHA * n ** BETA
            loss = true_loss(n, d + d_t) * math.exp(noise * rng.standard_normal())
            rows.append(row(n, d, loss, init=f"en-{n:g}/model.pt"))
    return pd.DataFrame(rows)


def group(doc: dict) -> dict:
    return doc["groups"]["symato/rwkv4"]


def test_inversion_is_exact_on_the_curve() -> None:
    curve = np.array([1.2, 30.0, 0.3])
    d = np.geomspace(1e3, 1e9, 25)
    np.testing.assert_allclose(invert(curve, scratch_loss(curve, d)), d, rtol=1e-10)
    assert invert(curve, 1.2) == np.inf and invert(curve, 1.0) == np.inf  # at/below E
    assert np.isnan(invert(np.array([1.2, 0.0, 0.3]), 2.0))  # flat curve: no D_E
    assert np.isnan(invert(np.array([1.2, 3.0, 0.0]), 2.0))


def test_noise_free_runs_give_the_true_transfer() -> None:
    for form in ("per_size", "joint"):
        g = group(transfer_fit(synth(0, noise=0.0), n_bootstrap=0, form=form))
        for r in g["runs"]:
            assert r["status"] == OK
            assert r["D_E"] == pytest.approx(r["D_F"] + true_dt(r["D_F"], r["params"]), rel=1e-6)
        law = g["law"]
        assert (law["k"], law["alpha"], law["beta"]) == pytest.approx((K, ALPHA, BETA), rel=1e-6)
        for s in g["scratch"]:
            assert s["beta"] == pytest.approx(BETA_D, rel=1e-6)
            assert s["E"] == pytest.approx(E + A * s["params"] ** -ALPHA_N, rel=1e-6)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_known_law_recovered_inside_intervals(seed: int) -> None:
    law = group(transfer_fit(synth(seed), n_bootstrap=100, seed=seed))["law"]
    assert law["status"] == "ok" and law["n_runs"] == 12
    assert law["bootstrap"]["used"] >= 90
    for name, truth in (("k", K), ("alpha", ALPHA), ("beta", BETA)):
        low, high = law["ci"][name]
        assert low <= truth <= high, (name, truth, law["ci"][name])
        assert low <= law[name] <= high


def test_joint_scratch_law_recovers_with_tighter_intervals() -> None:
    per_size = group(transfer_fit(synth(1), n_bootstrap=60, seed=1))["law"]
    joint = group(transfer_fit(synth(1), n_bootstrap=60, seed=1, form="joint"))["law"]
    for name, truth in (("alpha", ALPHA), ("beta", BETA)):
        low, high = joint["ci"][name]
        assert low <= truth <= high
        assert high - low < per_size["ci"][name][1] - per_size["ci"][name][0]


def test_negative_transfer_and_beyond_scratch_are_kept_not_fitted() -> None:
    n = SIZES[1]
    runs = pd.concat([synth(0, noise=0.0), pd.DataFrame([
        row(n, 2e5, true_loss(n, 2e5) + 0.05, init="bad", run="worse"),  # above the curve
        row(n, 5e5, E + A * n ** -ALPHA_N - 0.01, init="great", run="floor"),  # below E
    ])], ignore_index=True)
    g = group(transfer_fit(runs, n_bootstrap=20))
    by_run = {r["run"]: r for r in g["runs"]}
    worse, floor = by_run["worse"], by_run["floor"]
    assert worse["status"] == NEGATIVE and worse["D_T"] < 0 and worse["D_E"] < 2e5
    assert worse["saving"] < 0
    assert floor["status"] == BEYOND and floor["D_E"] is None and floor["D_T"] is None
    assert floor["saving"] == 1.0
    assert g["excluded"] == {NEGATIVE: 1, BEYOND: 1, NO_CURVE: 0}
    assert g["law"]["n_runs"] == 12  # the other runs: fitted as before
    assert g["law"]["alpha"] == pytest.approx(ALPHA, rel=1e-6)
    json.dumps(g, allow_nan=False)  # strict JSON: an infinite D_E is said by its status
    table = markdown_table(transfer_fit(runs, n_bootstrap=5))
    assert "beyond_scratch" in table and "negative_transfer" in table and "| ∞" in table


def test_refusals_say_why() -> None:
    runs = synth(0, noise=0.0)
    small = SIZES[0]
    # a size with too few scratch runs: its transferred runs have no D_E
    thin = runs[~((runs["params"] == small) & (runs["init_from"] == "")
                  & (runs["text"] > 1e6))]
    g = group(transfer_fit(thin, n_bootstrap=0))
    rec = next(s for s in g["scratch"] if s["params"] == small)
    assert rec["status"] == "not_fitted" and "at least 4 scratch runs, got 3" in rec["reason"]
    assert g["excluded"][NO_CURVE] == 4 and g["law"]["n_runs"] == 8
    # two fine-tuning budgets: not fitted
    two = synth(0, noise=0.0, transfer_text=(1e5, 1e6))
    law = group(transfer_fit(two, n_bootstrap=0))["law"]
    assert law["status"] == "not_fitted"
    assert "3 distinct fine-tuning budgets D_F, got 2" in law["reason"]
    # too few runs
    few = synth(0, noise=0.0, sizes=(1e5,), transfer_text=(1e5, 3e5, 1e6))
    law = group(transfer_fit(few, n_bootstrap=0))["law"]
    assert law["status"] == "not_fitted" and "at least 4 runs" in law["reason"]
    # the joint scratch law needs three sizes
    g = group(transfer_fit(synth(0, sizes=SIZES[:2]), n_bootstrap=0, form="joint"))
    assert all("3 model sizes, got 2" in s["reason"] for s in g["scratch"])
    assert g["law"]["status"] == "not_fitted"


def test_transplant_variants_are_fitted_apart_against_the_same_scratch_runs() -> None:
    compose = synth(0, noise=0.0).assign(init_transplant="compose")
    random = synth(0, noise=0.0, k=1.0).assign(init_transplant="random")
    runs = pd.concat([compose, random[random["init_from"] != ""]], ignore_index=True)
    runs.loc[runs["init_from"] == "", "init_transplant"] = np.nan  # scratch: no transplant
    doc = transfer_fit(runs, n_bootstrap=10)
    assert sorted(doc["groups"]) == ["symato/rwkv4/init_transplant=compose",
                                     "symato/rwkv4/init_transplant=random"]
    for name, k in (("compose", K), ("random", 1.0)):
        g = doc["groups"][f"symato/rwkv4/init_transplant={name}"]
        assert g["by"]["init_transplant"] == name
        assert g["n_scratch"] == 18 and g["n_transferred"] == 12
        assert g["law"]["k"] == pytest.approx(k, rel=1e-6)


def test_one_size_folds_n_into_k() -> None:
    n = SIZES[2]
    law = group(transfer_fit(synth(0, noise=0.0, sizes=(n,)), n_bootstrap=10))["law"]
    assert law["status"] == "ok" and law["beta"] is None and "folded" in law["model_term"]
    assert law["k"] == pytest.approx(K * n ** BETA, rel=1e-6)
    assert law["alpha"] == pytest.approx(ALPHA, rel=1e-6)
    assert "beta" not in law["ci"]


def test_where_it_stops_paying() -> None:
    theta = np.array([math.log(K), ALPHA, BETA])
    for n in SIZES:
        d = stops_paying(theta, n, 0.1)
        assert saving(law_dt(theta, d, n), d) == pytest.approx(0.1, rel=1e-9)
        assert saving(law_dt(theta, d * 2, n), d * 2) < 0.1 < saving(law_dt(theta, d / 2, n), d / 2)
    assert stops_paying(np.array([0.0, 1.2, 0.0]), 1e5) == np.inf
    g = group(transfer_fit(synth(0), n_bootstrap=40))
    for s in g["stops_paying"]["sizes"]:
        truth = float(stops_paying(theta, s["params"], 0.1))
        assert s["ci"][0] <= s["D_F"] <= s["ci"][1]
        assert s["ci"][0] <= truth <= s["ci"][1]
    grid = {(c["params"], c["D_F"]): c for c in g["law_grid"]}
    assert len(grid) == len(SIZES) * len(TRANSFER_TEXT)


def test_figure_data_has_curves_and_points() -> None:
    doc = transfer_fit(synth(0), n_bootstrap=10)
    fig = figure_data(doc)["symato/rwkv4"]
    assert [s["params"] for s in fig["sizes"]] == list(SIZES)
    for s in fig["sizes"]:
        assert len(s["scratch"]["text"]) == len(SCRATCH_TEXT)
        assert len(s["transferred"]["loss"]) == len(TRANSFER_TEXT)
        curve = s["curve"]
        assert len(curve["loss"]) == len(curve["low"]) == len(curve["text"])
        band = zip(curve["low"], curve["loss"], curve["high"], strict=True)
        assert all(lo <= x <= hi for lo, x, hi in band)
        assert len(s["transfer"]["D_T"]) == len(TRANSFER_TEXT)
        assert len(s["law"]["D_T"]) == len(s["law"]["low"])


def test_cli_reads_runs_csv_and_writes_strict_json(tmp_path, capsys) -> None:
    frame = synth(0)
    # as runs.csv has them: tokens and a tokenizer table, init_from empty for scratch
    frame["tokens"] = frame.pop("text") / 4.0
    frame["run"] = [f"run{i}" for i in range(len(frame))]
    frame["lr"] = 0.002
    frame.loc[len(frame)] = {**frame.iloc[0].to_dict(), "loss": np.nan, "run": "diverged"}
    # a learning-rate sweep at a scratch cell: its worse rate is not part of the curve
    first = frame.iloc[0].to_dict()
    frame.loc[0, "run"] = "rwkv4-L2-D64-B100k"
    frame.loc[len(frame)] = {**first, "run": "rwkv4-L2-D64-B100k-lr0.01",
                             "lr": 0.01, "loss": first["loss"] + 0.3}
    runs = tmp_path / "runs.csv"
    frame.to_csv(runs, index=False)
    toks = tmp_path / "tokenizers.csv"
    toks.write_text("tokenizer,split,tokens,bytes\nsymato,train,100,400\n", encoding="utf-8")
    out, md = tmp_path / "transfer.json", tmp_path / "transfer.md"
    assert cli_main(["transfer-fit", "--runs", str(runs), "--tokenizers", str(toks),
                     "--out", str(out), "--markdown", str(md), "--bootstrap", "20"]) == 0
    doc = json.loads(out.read_text(encoding="utf-8"))
    g = doc["groups"]["symato/rwkv4"]
    assert g["n_scratch"] == 18 and g["n_transferred"] == 12  # the diverged run: dropped
    assert doc["runs_without_loss"] == [f"{runs}:32: run diverged has no loss; not fitted"]
    assert "run diverged has no loss" in capsys.readouterr().err
    (sweep,) = doc["lr_choice"]["sweeps"]
    assert sweep["chosen"] == "rwkv4-L2-D64-B100k"
    assert min(r["D_F"] for r in g["runs"]) == pytest.approx(1e5)
    assert "D_T = k * D_F^alpha * N^beta: k = " in md.read_text(encoding="utf-8")
    # without text, text_bytes or a tokenizer table: a clear error
    assert cli_main(["transfer-fit", "--runs", str(runs), "--out", str(out)]) == 1
    assert "no text column" in capsys.readouterr().err


def test_bad_tables_are_errors_naming_the_line(tmp_path) -> None:
    frame = synth(0).drop(columns=["text"])
    with pytest.raises(SymatoError, match="no text column"):
        transfer_fit(frame)
    bad = synth(0)
    bad.loc[3, "text"] = -1.0
    with pytest.raises(SymatoError, match=r"runs:5: 'text' must be a positive number"):
        transfer_fit(bad)
    with pytest.raises(SymatoError, match="missing column"):
        transfer_fit(synth(0).drop(columns=["params"]))


def test_collect_puts_a_started_runs_init_settings_in_runs_csv(tmp_path):
    """runs.csv carries init_from (empty: from scratch) and, for a started run, its init
    settings with the defaults that settings.json leaves out, which the law groups by."""
    import json

    from symato.report.collect import run_row

    def run(name: str, **settings):
        folder = tmp_path / "symato" / name
        folder.mkdir(parents=True)
        (folder / "settings.json").write_text(json.dumps(
            {"tokenizer": "symato", "arch": "rwkv4", "run": name, "text_bytes": 100000,
             "tokens": 44000, **settings}))
        (folder / "metrics.json").write_text(json.dumps(
            {"params_total": 1000, "train_tokens": 44032, "bits_per_byte": 2.1}))
        return run_row(folder)

    scratch = run("rwkv4-L1-D32-B100k")
    assert scratch["init_from"] is None and scratch["init_transplant"] is None
    started = run("rwkv4-L1-D32-B100k-from_en", init_from="run:results/runs/en/x",
                  init_transplant="random")
    assert started["init_from"] == "run:results/runs/en/x"
    assert started["init_transplant"] == "random" and started["train_layers"] == "all"
    assert started["init_tokenizer"] is None  # empty default: the source's own
