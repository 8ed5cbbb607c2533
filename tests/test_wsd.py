"""WSD schedule and decay branches: the schedule's shape, a branch equal to its WSD run
trained straight through, exact resume of stable runs and branches, the grid's stable
runs and branch points (token and byte budgets) and a real Snakemake run of a ladder.

Why these tests: a branch is only a valid data point of a scaling fit if it *is* the
run of its budget; the cheap way (branching off one stable run) must give the same
weights as the expensive way, bit for bit on CPU, kills included.
"""

from __future__ import annotations

import itertools
import json
import signal
from pathlib import Path
from typing import Any

import pytest
import torch
from _train_fixtures import (
    make_settings,
    read_metrics,
    restore_torch_globals,  # noqa: F401  (autouse fixture)
)
from _workflow import prepared, tiny_data_config
from test_train import _start, _train, _wait_for_steps, _weights

from symato.errors import SymatoError
from symato.run.checkpoint import load_model
from symato.run.grid import expand_grid
from symato.run.provenance import file_digest
from symato.run.settings import (
    check_settings,
    command_args,
    decay_start,
    load_settings,
    resolve_text_bytes,
    steps_for,
)
from symato.run.settings import main as settings_main
from symato.run.train import CHECKPOINT_FILE, learning_rate, load_checkpoint
from symato.run.wsd import plan, stable_runs

KEYS = ("step", "tokens", "train_loss", "grad_norm", "lr", "val_loss", "val_bpb")


# ----------------------------------------------------------------------------- schedule
def test_wsd_schedule_shape() -> None:
    s = {"lr": 1e-2, "lr_min": 1e-3, "warmup": 0.1, "steps": 20, "schedule": "wsd",
         "decay": 0.25}  # 2 warmup steps, decay over steps 15..19
    lrs = [learning_rate(i, s) for i in range(20)]
    assert lrs[:2] == pytest.approx([5e-3, 1e-2])
    assert lrs[2:15] == [1e-2] * 13  # stable: exactly lr
    assert decay_start(s) == 15
    decay = lrs[15:]
    assert all(x > y for x, y in itertools.pairwise([1e-2, *decay]))
    assert decay[-1] == pytest.approx(1e-3)
    # 1-sqrt: lr_min + (lr - lr_min)(1 - sqrt(p)), p = k / 5 after the k-th decay step
    assert decay == pytest.approx([1e-3 + 9e-3 * (1 - (k / 5) ** 0.5) for k in range(1, 6)])
    # warmup_steps (a ladder's shared warmup) replaces the share; decay 0 never decays
    assert learning_rate(3, {**s, "warmup_steps": 5}) == pytest.approx(8e-3)
    assert {learning_rate(i, {**s, "decay": 0.0}) for i in range(2, 20)} == {1e-2}
    # a tiny decay share still decays one step, to lr_min
    assert learning_rate(19, {**s, "decay": 0.01}) == pytest.approx(1e-3)


def test_wsd_plan_and_checks(tmp_path: Path) -> None:
    warmup, points = plan({"a": 10, "b": 30, "c": 100}, warmup=0.1, decay=0.2)
    assert warmup == 1 and points == {"a": 8, "b": 24, "c": 80}
    with pytest.raises(SymatoError, match=r"WSD runs \['a'\].*no stable step"):
        plan({"a": 1, "b": 30}, warmup=0.1, decay=0.2)
    base = load_settings(make_settings(tmp_path))
    bad = {**base, "schedule": "cosine", "warmup_steps": 2}
    with pytest.raises(SymatoError, match=r"\['warmup_steps'\] need schedule 'wsd'"):
        check_settings(bad, "here")
    wsd = {**base, "schedule": "wsd", "decay": 0.5, "warmup": 0.6}
    with pytest.raises(SymatoError, match=r"here: warmup \(12 steps\) runs into the decay"):
        check_settings(wsd, "here")
    stable = {**base, "schedule": "wsd", "decay": 0.0, "branches": {"x": 10}}
    with pytest.raises(SymatoError, match="trains to its last branch point 10, but steps is 20"):
        check_settings(stable, "here")


# ------------------------------------------------------------------- branch == straight
def _ladder(root: Path, budgets: dict[str, int], **over: Any) -> dict[str, Path]:
    """Settings files of a WSD ladder in ``root``: ``straight/{run}`` (each budget trained
    straight through), ``stable`` and ``branch/{run}`` (branches off the stable run)."""
    decay = over.pop("decay", 0.2)
    common = {"schedule": "wsd", **over}
    warmup, points = plan(budgets, common.get("warmup", 0.1), decay)
    files = {}
    for name, steps in budgets.items():
        s = {**common, "run": name, "steps": steps, "tokens": steps * 8 * 16, "decay": decay,
             "warmup_steps": warmup}
        files[f"straight/{name}"] = make_settings(root / "straight" / name, **s)
        branch_from = str(root / "stable" / "run" / "branches" / f"{name}.pt")
        files[f"branch/{name}"] = make_settings(root / "branch" / name, **s,
                                                branch_from=branch_from)
    top = max(points.values())
    files["stable"] = make_settings(
        root / "stable", **common, run=max(budgets, key=budgets.__getitem__), steps=top,
        tokens=top * 8 * 16, decay=0.0, warmup_steps=warmup, branches=points)
    return files


def _records(run: Path) -> list[tuple]:
    return [tuple(r.get(k) for k in KEYS) for r in read_metrics(run)]


def _assert_same_weights(a: Path, b: Path) -> None:
    wa, wb = _weights(a), _weights(b)
    assert wa.keys() == wb.keys()
    for key in wa:
        assert torch.equal(wa[key], wb[key]), key


def test_branches_equal_their_straight_wsd_runs(tmp_path: Path) -> None:
    """Each branch's weights are bit for bit those of the WSD run of its budget trained
    straight through, and so is its whole loss curve (the stable part included); its
    model.pt counts all its tokens and records the stable state it started from."""
    budgets = {"gpt-L1-D16-T1280": 10, "gpt-L1-D16-T3840": 30}
    files = _ladder(tmp_path, budgets, eval_interval=7, log_interval=3)
    stable = tmp_path / "stable" / "run"
    assert _train(files["stable"], stable) == 0
    marker = json.loads((stable / "stable.json").read_text())
    assert {n: b["step"] for n, b in marker["branches"].items()} == {
        "gpt-L1-D16-T1280": 8, "gpt-L1-D16-T3840": 24}
    for name, b in marker["branches"].items():
        assert b["sha256"] == file_digest(stable / "branches" / f"{name}.pt")
    assert not (stable / "model.pt").exists() and not (stable / CHECKPOINT_FILE).exists()
    for name, steps in budgets.items():
        straight, branch = tmp_path / "straight" / name / "run", tmp_path / "branch" / name / "run"
        assert _train(files[f"straight/{name}"], straight) == 0
        assert _train(files[f"branch/{name}"], branch) == 0
        _assert_same_weights(straight, branch)
        assert _records(branch) == _records(straight)
        assert read_metrics(branch)[-1]["step"] == steps
        model, meta = load_model(branch)
        assert meta["train_tokens"] == steps * 8 * 16 == load_model(straight)[1]["train_tokens"]
        assert meta["train_flops"] == pytest.approx(model.flops_per_token() * steps * 8 * 16)
        assert meta["inputs"]["stable_state"] == file_digest(stable / "branches" / f"{name}.pt")


def test_branch_refuses_a_state_it_cannot_continue(tmp_path: Path) -> None:
    budgets = {"gpt-L1-D16-T1280": 10, "gpt-L1-D16-T2560": 20}
    files = _ladder(tmp_path, budgets, eval_interval=0)
    branch = tmp_path / "branch" / "gpt-L1-D16-T1280" / "run"
    with pytest.raises(SymatoError, match=r"branch_from .* does not exist; train its stable"):
        _train(files["branch/gpt-L1-D16-T1280"], branch)
    stable = tmp_path / "stable" / "run"
    assert _train(files["stable"], stable) == 0
    states = stable / "branches"
    (states / "gpt-L1-D16-T1280.pt").write_bytes((states / "gpt-L1-D16-T2560.pt").read_bytes())
    with pytest.raises(SymatoError, match=r"is at step 16, but the branch leaves at step 8"):
        _train(files["branch/gpt-L1-D16-T1280"], branch)
    other = make_settings(tmp_path / "lr", schedule="wsd", run="gpt-L1-D16-T2560", steps=20,
                          tokens=2560, warmup_steps=1, lr=0.02, eval_interval=0,
                          branch_from=str(states / "gpt-L1-D16-T2560.pt"), decay=0.2)
    with pytest.raises(SymatoError, match=r"other settings: \['lr'\]"):
        _train(other, tmp_path / "lr" / "run")


# ------------------------------------------------------------------------- exact resume
SLOW = {"n_layer": 2, "n_embd": 64, "head_size": 16, "ctx_len": 32, "checkpoint_steps": 7,
        "eval_interval": 20}


def _kill_after(settings: Path, run: Path, lines: int, sig: int) -> None:
    """Start ``symato train`` and stop it with ``sig`` once ``lines`` metrics lines exist."""
    proc = _start(settings, run)
    _wait_for_steps(proc, run, lines)
    proc.send_signal(sig)
    proc.wait(timeout=60)
    assert not (run / "model.pt").exists() and (run / CHECKPOINT_FILE).exists()


@pytest.mark.slow
def test_killed_stable_run_and_branch_resume_exactly(tmp_path: Path) -> None:
    """SIGKILL the stable run past its first branch point and a branch in its decay;
    both resume from their checkpoints and end where uninterrupted runs end."""
    budgets = {"gpt-L2-D64-T20k": 40, "gpt-L2-D64-T38400": 75}  # branch points 32, 60
    ref = _ladder(tmp_path / "ref", budgets, **SLOW)
    ref_stable = tmp_path / "ref" / "stable" / "run"
    assert _train(ref["stable"], ref_stable) == 0
    files = _ladder(tmp_path / "kill", budgets, **SLOW)
    stable = tmp_path / "kill" / "stable" / "run"
    _kill_after(files["stable"], stable, 36, signal.SIGKILL)  # past step 32 and 35's checkpoint
    assert (stable / "branches" / "gpt-L2-D64-T20k.pt").exists()
    assert not (stable / "stable.json").exists()
    assert _train(files["stable"], stable, resume=True) == 0
    for name in budgets:  # same saved states (their clocks aside)
        a = load_checkpoint(ref_stable / "branches" / f"{name}.pt")
        b = load_checkpoint(stable / "branches" / f"{name}.pt")
        assert a["step"] == b["step"] and a["numpy_rng_json"] == b["numpy_rng_json"]
        assert all(torch.equal(a["model"][k], b["model"][k]) for k in a["model"])
        assert json.loads(a["records_json"]) is not None
    name = "gpt-L2-D64-T38400"
    ref_branch = tmp_path / "ref" / "branch" / name / "run"
    assert _train(ref[f"branch/{name}"], ref_branch) == 0
    branch = tmp_path / "kill" / "branch" / name / "run"
    _kill_after(files[f"branch/{name}"], branch, 65, signal.SIGKILL)  # past step 63's checkpoint
    assert _train(files[f"branch/{name}"], branch, resume=True) == 0
    _assert_same_weights(ref_branch, branch)
    assert _records(branch) == _records(ref_branch)
    # a retrained stable run (other state) makes the branch's checkpoint stale
    _kill_after(files[f"branch/{name}"], tmp_path / "stale", 65, signal.SIGKILL)
    state = load_checkpoint(tmp_path / "stale" / CHECKPOINT_FILE)
    assert "stable_state" in json.loads(state["inputs_json"])


# ------------------------------------------------------------------------------ the grid
def _config(**grid: Any) -> dict:
    config = tiny_data_config()
    config["train"]["settings"].update(ctx_len=16, batch_size=4, warmup=0.1)
    config["train"]["grids"] = [{"name": "wsd", "tokenizers": ["symato"], "archs": ["gpt"],
                                 "sizes": ["L1-D16"], "schedule": "wsd", **grid}]
    return prepared(config)


def test_grid_expands_token_ladders_into_stable_and_branches(tmp_path: Path) -> None:
    config = _config(tokens=[640, 1920, 6400], vary={"seed": [1, 2]})
    config["train"]["grids"].append({"name": "cos", "tokenizers": ["symato"], "archs": ["gpt"],
                                     "sizes": ["L1-D32"], "tokens": [640]})
    runs = expand_grid(config)
    assert {r["run"]: r["settings"]["schedule"] for r in runs if "D32" in r["run"]} == {
        "gpt-L1-D32-T640": "cosine"}
    plain = next(r for r in runs if "D32" in r["run"])
    assert "stable" not in plain and "decay" not in plain["settings"]
    stables = stable_runs(runs)
    # a WSD run's name says its schedule (-wsd0.2): never the name of a cosine run
    assert sorted(s["run"] for s in stables) == ["gpt-L1-D16-T6400-wsd0.2-s1",
                                                 "gpt-L1-D16-T6400-wsd0.2-s2"]
    for st in stables:
        s = st["settings"]
        assert s["decay"] == 0.0 and s["warmup_steps"] == 1  # round(0.1 x 10 steps)
        seed = st["run"][-3:]
        assert s["branches"] == {f"gpt-L1-D16-T640-wsd0.2{seed}": 8,
                                 f"gpt-L1-D16-T1920-wsd0.2{seed}": 24,
                                 f"gpt-L1-D16-T6400-wsd0.2{seed}": 80}
        assert s["steps"] == 80 and s["tokens"] == 80 * 64
        for name, at in s["branches"].items():
            b = next(r for r in runs if r["run"] == name)["settings"]
            assert decay_start(b) == at and b["warmup_steps"] == 1
            assert b["branch_from"] == f"results/stable/symato/{st['run']}/branches/{name}.pt"
            assert {k: v for k, v in b.items() if k not in (
                "run", "tokens", "steps", "decay", "branch_from")} == {
                k: v for k, v in s.items() if k not in ("run", "tokens", "steps", "decay",
                                                        "branches")}
    # the run_settings/stable_settings jobs write exactly these settings (no manifest)
    for entry in [stables[0], *(r for r in runs if r.get("stable") is stables[0])]:
        out = tmp_path / f"{entry['run']}-{len(entry.get('branches', []))}.json"
        assert settings_main(["--out", str(out), *command_args(entry["settings"],
                                                               entry.get("wsd_plan"))]) == 0
        assert json.loads(out.read_text()) == entry["settings"]


def test_grid_byte_ladders_resolve_branch_points_from_the_manifest(tmp_path: Path) -> None:
    from test_grid_bytes import real_shards

    manifests = real_shards(tmp_path, ("symato", "bytes"))
    config = _config(tokenizers="all", bytes=[1000, 2000, 4000])
    runs = expand_grid(config, results=str(tmp_path / "results"))
    stables = {s["tokenizer"]: s for s in stable_runs(runs)}
    assert set(stables) == {"symato", "bytes"}
    for tok, st in stables.items():
        assert st["run"] == "gpt-L1-D16-B4k-wsd0.2" and "steps" not in st["settings"]
        out = tmp_path / tok / "stable.json"
        assert settings_main(["--out", str(out), *command_args(st["settings"],
                                                               st["wsd_plan"])]) == 0
        stable = load_settings(out)
        steps = {}
        for r in (r for r in runs if r["tokenizer"] == tok):
            path = tmp_path / tok / f"{r['run']}.json"
            assert settings_main(["--out", str(path), *command_args(r["settings"],
                                                                    r["wsd_plan"])]) == 0
            b = load_settings(path)
            tokens, _ = resolve_text_bytes(r["text_bytes"], manifests[tok])
            assert b["tokens"] == tokens and b["steps"] == steps_for(tokens, b)
            steps[b["run"]] = b["steps"]
            assert stable["branches"][b["run"]] == decay_start(b)
            assert b["warmup_steps"] == stable["warmup_steps"]
        assert stable["warmup_steps"] == round(0.1 * min(steps.values()))
        assert stable["steps"] == max(stable["branches"].values())
    assert stables["bytes"] != stables["symato"]


# ----------------------------------------------------------------------- the workflow
@pytest.mark.slow
def test_workflow_trains_a_wsd_ladder(tmp_path: Path) -> None:
    """A real Snakemake run of a 2-budget WSD sub-grid: one stable job, two branch jobs,
    each branch with model.pt, metrics.jsonl (whole curve) and metrics.json."""
    import pandas as pd
    from test_grid import SNAKEFILE_REAL, _snakemake, _write_config
    from test_grid_bytes import real_shards

    real_shards(tmp_path, ("symato",))
    (tmp_path / "results/stats").mkdir(parents=True)
    pd.DataFrame([("là", "la", 2, 5)], columns=["syllable", "sym", "marktone", "count"]
                 ).to_parquet(tmp_path / "results/stats/syllables.parquet")  # fmt: skip
    config = {"tokenizers": ["symato"],
              "train": {"grids": [{"name": "wsd", "tokenizers": "all", "archs": ["gpt"],
                                   "sizes": ["L1-D16"], "bytes": [1000, 2000],
                                   "schedule": "wsd"}],
                        "settings": {"ctx_len": 8, "batch_size": 4, "eval_interval": 0,
                                     "eval_windows": 2, "warmup": 0.1, "max_epochs": 10.0,
                                     "checkpoint_steps": 0, "checkpoint_minutes": 0}},
              "eval": {"restoration_syllables": 10, "sample_tokens": 2, "prompts": [""]}}
    _write_config(tmp_path, config)
    (tmp_path / "Snakefile").write_text(SNAKEFILE_REAL)
    _snakemake(tmp_path, "--quiet", "all")
    stable = tmp_path / "results/stable/symato/gpt-L1-D16-B2k-wsd0.2"
    marker = json.loads((stable / "stable.json").read_text())
    assert set(marker["branches"]) == {"gpt-L1-D16-B1k-wsd0.2", "gpt-L1-D16-B2k-wsd0.2"}
    for name in marker["branches"]:
        run = tmp_path / "results/runs/symato" / name
        s = json.loads((run / "settings.json").read_text())
        metrics = json.loads((run / "metrics.json").read_text())
        lines = read_metrics(run)
        assert [r["step"] for r in lines] == list(range(1, s["steps"] + 1))
        assert metrics["train_tokens"] == s["steps"] * 4 * 8
        assert marker["branches"][name]["step"] == decay_start(s)
        assert "branched from" in (tmp_path / f"results/logs/train/symato/{name}.log").read_text()
    assert "Nothing to be done" in _snakemake(tmp_path, "--dry-run")


def test_sub_grid_schedule_enum_is_the_settings_choices() -> None:
    """The schema's per-sub-grid ``schedule`` lists the same schedules as the contract."""
    import yaml

    from symato.run.settings import SPEC

    schema = yaml.safe_load((Path(__file__).resolve().parents[1] / "workflow" / "schemas" /
                             "train.schema.yaml").read_text(encoding="utf-8"))
    grid = schema["properties"]["grids"]["items"]["properties"]
    assert tuple(grid["schedule"]["enum"]) == SPEC["schedule"].choices


# ------------------------------------------------------------ WSD beside cosine runs
def test_wsd_and_cosine_runs_of_one_cell_coexist() -> None:
    """The same cell trained both ways (the demo's WSD check) is two runs with two names:
    the cosine one keeps its name, the WSD branch has -wsd0.2."""
    config = _config(tokens=[640, 1920], vary={"seed": [1, 2]})
    config["train"]["grids"].append({"name": "cos", "tokenizers": ["symato"], "archs": ["gpt"],
                                     "sizes": ["L1-D16"], "tokens": [640, 1920],
                                     "vary": {"seed": [1, 2]}})
    runs = {r["run"]: r["settings"]["schedule"] for r in expand_grid(config)}
    assert runs["gpt-L1-D16-T640-s1"] == "cosine"
    assert runs["gpt-L1-D16-T640-wsd0.2-s1"] == "wsd"
    assert len(runs) == 8


def _rows(values: dict[str, list[float]]) -> list[dict[str, Any]]:
    return [{"tokenizer": "symato", "arch": "rwkv4", "run": run + ("" if s == 1234 else f"-s{s}"),
             "seed": s, "loss": loss, "lr": 0.004, "lr_min": 0.0004, "params": 1e5,
             "tokens": 1e5, "_line": i}
            for i, (run, losses) in enumerate(values.items())
            for s, loss in zip((1234, 2, 3), losses, strict=False)]


def test_the_fits_take_the_cosine_run_of_a_checked_cell() -> None:
    """A WSD branch beside a cosine run of its cell is set aside (no cell counts twice);
    a WSD run without a cosine twin is fitted like any run."""
    from symato.report.lrchoice import choose_runs, without_schedule

    assert without_schedule("rwkv4-L1-D32-B30k-wsd0.2-s2") == "rwkv4-L1-D32-B30k-s2"
    rows = _rows({"rwkv4-L1-D32-B30k": [2.0, 2.1, 2.2],
                  "rwkv4-L1-D32-B30k-wsd0.2": [2.05, 2.1, 2.15],
                  "rwkv4-L1-D32-B100k-wsd0.2": [1.8]})
    kept, _, notes = choose_runs(rows)
    assert sorted(r["run"] for r in kept) == ["rwkv4-L1-D32-B100k-wsd0.2", "rwkv4-L1-D32-B30k",
                                              "rwkv4-L1-D32-B30k-s2", "rwkv4-L1-D32-B30k-s3"]
    assert len(notes) == 3 and all("WSD branch beside the cosine run" in n for n in notes)


def test_summary_compares_branches_with_cosine_runs() -> None:
    import pandas as pd

    from symato.report import summary

    rows = _rows({"rwkv4-L1-D32-B30k": [2.0, 2.1, 2.2],
                  "rwkv4-L1-D32-B30k-wsd0.2": [2.05, 2.1, 2.15],  # Δ 0, matches
                  "rwkv4-L1-D32-B100k": [1.80, 1.81, 1.79],
                  "rwkv4-L1-D32-B100k-wsd0.2": [1.60, 1.61, 1.59],  # Δ -0.2 >> SE
                  "rwkv4-L1-D32-B10k": [2.5], "rwkv4-L1-D32-B10k-wsd0.2": [2.4]})
    checked = {r["cell"]: r for r in summary.wsd_check_rows(pd.DataFrame(rows))}
    assert set(checked) == {"rwkv4-L1-D32-B10k", "rwkv4-L1-D32-B30k", "rwkv4-L1-D32-B100k"}
    assert checked["rwkv4-L1-D32-B30k"]["matches"] is True
    assert checked["rwkv4-L1-D32-B30k"]["difference"] == pytest.approx(0.0, abs=1e-12)
    assert checked["rwkv4-L1-D32-B100k"]["matches"] is False
    assert checked["rwkv4-L1-D32-B10k"]["matches"] is None  # one run a side: no noise level
    text = summary.wsd_check_section(pd.DataFrame(rows))
    assert "1 of 2 cells with replicates on both sides match" in text
    assert "No cell has both" in summary.wsd_check_section(pd.DataFrame(rows[:3]))


def test_decay_without_wsd_is_a_config_error() -> None:
    """`vary: {decay: ...}` on a cosine sub-grid would name cosine runs -wsd: refused."""
    config = _config(tokens=[640], vary={"decay": [0.1, 0.3]})
    del config["train"]["grids"][0]["schedule"]
    with pytest.raises(SymatoError, match=r"'decay'.*schedule wsd"):
        expand_grid(config)


def test_wsd_runs_varying_lr_are_not_extended_sweeps() -> None:
    """Each rate of a WSD sub-grid branches off its own stable run: the grid parses and
    the DAG does not extend such a sweep (symato.run.sweep.find_sweeps)."""
    from symato.run.sweep import find_sweeps

    config = _config(tokens=[640, 1920], vary={"lr": [0.002, 0.008]})
    runs = expand_grid(config)
    assert len(runs) == 4 and find_sweeps(runs) == []
