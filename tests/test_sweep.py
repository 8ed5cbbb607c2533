"""Learning-rate sweeps that bracket their optimum (symato/run/sweep.py, rules/sweep.smk).

Unit tests of the decision (edge low / high, inside, ties, the limit, lr_min), of the
sweeps found in a grid and of an extension run's settings; the `symato sweep` command
on real files; and one small real Snakemake run in which a sweep extends twice (forced
to an edge: the higher rate is always better at these tiny budgets) and the summary says
so.
"""

from __future__ import annotations

import json
import math
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml
from _workflow import CORPUS, REPO, SNAKEMAKE, prepared, tiny_data_config

from symato.errors import SymatoError
from symato.io import write_json_atomic
from symato.run.grid import expand_grid
from symato.run.settings import check_settings
from symato.run.sweep import (
    TIE_RTOL,
    Point,
    decide,
    extension_settings,
    find_sweeps,
    lookup_extension,
    rate_run_name,
    sweep_index,
    sweep_name,
)

BASE = "rwkv4-L1-D32-B100k"


def _points(losses: dict[float, float], configured: float | None = 0.004,
            extensions: tuple[float, ...] = ()) -> list[Point]:
    """One run per rate; the ``configured`` rate's run has no -lr suffix."""
    return [Point(lr, BASE if lr == configured else rate_run_name(BASE, lr), loss,
                  lr in extensions) for lr, loss in losses.items()]


def _decide(points: list[Point], max_extensions: int = 2, lr_min: float = 0.0004) -> dict:
    return decide(points, max_extensions=max_extensions, lr_min=lr_min, template=BASE,
                  where="test sweep")


# ----------------------------------------------------------------------------- the decision
def test_best_inside_is_bracketed() -> None:
    d = _decide(_points({0.002: 2.0, 0.004: 1.9, 0.008: 2.1}))
    assert (d["status"], d["bracketed"], d["edge"], d["best_lr"]) == ("bracketed", True, None,
                                                                      0.004)
    assert d["next_run"] is None and d["best_run"] == BASE and not d["limit_reached"]
    assert d["configured_rates"] == [0.002, 0.004, 0.008] and d["extension_rates"] == []


def test_best_at_the_high_edge_extends_by_the_neighbour_ratio() -> None:
    d = _decide(_points({0.002: 2.2, 0.004: 2.1, 0.008: 2.0}))
    assert (d["status"], d["edge"], d["step_factor"]) == ("extend", "high", 2.0)
    assert (d["next_lr"], d["next_run"]) == (0.016, f"{BASE}-lr0.016")
    # an uneven sweep steps by the ratio at its edge: 0.012 / 0.004 = 3
    d = _decide(_points({0.002: 2.2, 0.004: 2.1, 0.012: 2.0}))
    assert (d["next_lr"], d["next_run"]) == (0.036, f"{BASE}-lr0.036")


def test_best_at_the_low_edge_extends_downwards() -> None:
    d = _decide(_points({0.003: 1.9, 0.006: 2.0, 0.012: 2.5}, configured=0.006))
    assert (d["status"], d["edge"], d["next_lr"]) == ("extend", "low", 0.0015)
    assert d["next_run"] == f"{BASE}-lr0.0015"


def test_extension_that_brackets_stops_and_the_limit_stops_an_edge() -> None:
    # the extension 0.016 is worse than 0.008: bracketed after one extension
    d = _decide(_points({0.002: 2.2, 0.004: 2.1, 0.008: 2.0, 0.016: 2.05},
                        extensions=(0.016,)))
    assert (d["status"], d["bracketed"], d["extensions_used"]) == ("bracketed", True, 1)
    assert d["extension_rates"] == [0.016] and d["extension_runs"] == [f"{BASE}-lr0.016"]
    # still at the edge after two: the limit is reached, nothing more is asked for
    d = _decide(_points({0.002: 2.2, 0.004: 2.1, 0.008: 2.0, 0.016: 1.9, 0.032: 1.8},
                        extensions=(0.016, 0.032)))
    assert (d["status"], d["limit_reached"], d["next_run"]) == ("limit_reached", True, None)
    assert not d["bracketed"] and d["edge"] == "high" and d["extensions_used"] == 2


def test_zero_extensions_only_reports() -> None:
    d = _decide(_points({0.002: 2.2, 0.008: 2.0}, configured=None), max_extensions=0)
    assert (d["status"], d["limit_reached"], d["bracketed"], d["next_run"]) == (
        "limit_reached", True, False, None)


def test_ties_go_to_the_configured_rate_then_the_lower() -> None:
    # a tie (within TIE_RTOL) between the configured 0.004 and 0.008: the configured one,
    # inside the sweep, so bracketed
    tie = 2.0 * (1 + TIE_RTOL / 2)
    d = _decide(_points({0.002: 2.1, 0.004: tie, 0.008: 2.0}))
    assert (d["best_lr"], d["bracketed"]) == (0.004, True)
    # a tie without the configured rate: the lower rate, here the low edge
    d = _decide(_points({0.002: 2.0, 0.008: 2.0}, configured=None))
    assert (d["best_lr"], d["edge"], d["next_lr"]) == (0.002, "low", 0.0005)
    # the report's choice uses the same tolerance
    from symato.report.lrchoice import TIE_RTOL as REPORT_TIE_RTOL

    assert TIE_RTOL == REPORT_TIE_RTOL


def test_a_rate_listed_twice_is_one_rate() -> None:
    points = [Point(0.004, BASE, 2.0), Point(0.004, f"{BASE}-lr0.004", 2.2),
              Point(0.002, f"{BASE}-lr0.002", 2.05), Point(0.008, f"{BASE}-lr0.008", 2.3)]
    d = _decide(points)
    row = next(r for r in d["rates"] if r["lr"] == 0.004)
    assert row["runs"] == [BASE, f"{BASE}-lr0.004"] and math.isclose(row["bits_per_byte"], 2.1)
    assert d["best_lr"] == 0.002 and d["next_lr"] == 0.001


def test_no_extension_below_lr_min_and_one_rate_is_no_sweep() -> None:
    d = _decide(_points({0.002: 2.0, 0.004: 2.1}), lr_min=0.0015)
    assert (d["status"], d["next_run"], d["bracketed"]) == ("lr_min", None, False)
    assert "below the sweep's lr_min 0.0015" in d["reason"]
    with pytest.raises(SymatoError, match="two or more rates"):
        _decide(_points({0.004: 2.0}))


def test_uneven_ratio_rates_are_rounded_for_stable_names() -> None:
    d = _decide(_points({0.004: 2.1, 0.006: 2.0}))  # x1.5: 0.009, not 0.009000000000000001
    assert (d["next_lr"], d["next_run"]) == (0.009, f"{BASE}-lr0.009")


def test_summary_section_says_per_sweep_whether_bracketed_and_why_not() -> None:
    from symato.report.summary import sweep_bracket_section

    def named(decision: dict, sweep: str) -> dict:
        return {"tokenizer": "symato", "sweep": sweep, **decision}

    inside = named(_decide(_points({0.002: 2.0, 0.004: 1.9, 0.008: 2.1})), BASE)
    text = sweep_bracket_section([inside])
    assert f"| symato | {BASE} | 0.002: 2; 0.004: 1.9; 0.008: 2.1 | 0.004 | yes | 0 of 2 |" in text
    assert "Every sweep brackets its optimum." in text
    off = named(_decide(_points({0.002: 2.2, 0.008: 2.0}, configured=None), max_extensions=0),
                "gpt-L1-D32-B100k")
    floor = named(_decide(_points({0.002: 2.0, 0.004: 2.1}), lr_min=0.0015), "llama-L1-D32-B100k")
    text = sweep_bracket_section([inside, off, floor])
    assert "| no (high edge) | 0 of 0 |" in text
    assert "- symato/gpt-L1-D32-B100k: best rate 0.008 is the highest run; extensions are off" \
        in text
    assert "- symato/llama-L1-D32-B100k: best rate 0.002 is the lowest run; the next lower " \
        "rate 0.001 would be below the sweep's lr_min 0.0015" in text
    assert sweep_bracket_section([]).startswith("No learning-rate sweep")


# ----------------------------------------------------------------------------- names, sweeps
def test_names_keep_the_suffix_order() -> None:
    assert rate_run_name("rwkv4-L1-D32-B100k-s2", 0.016) == "rwkv4-L1-D32-B100k-lr0.016-s2"
    assert rate_run_name("gpt-L1-D16-T1280-lr0.002-lrmin0.0001", 0.001) == \
        "gpt-L1-D16-T1280-lr0.001-lrmin0.0001"
    assert sweep_name("rwkv4-L1-D32-B100k-lr0.016-s2") == "rwkv4-L1-D32-B100k-s2"
    assert sweep_name("gpt-L1-D16-T1280-lr0.002-lrmin0.0001") == "gpt-L1-D16-T1280-lrmin0.0001"


def _sweep_config() -> dict:
    return prepared({
        "tokenizers": ["symato"],
        "train": {"grids": [
            {"name": "arch", "tokenizers": "all", "archs": ["rwkv4", "gpt"],
             "sizes": ["L1-D16"], "bytes": [1000]},
            {"name": "lr", "tokenizers": "all", "archs": ["rwkv4"], "sizes": ["L1-D16"],
             "bytes": [1000], "vary": {"lr": [0.002, 0.008], "seed": [1234, 2]}}],
            "settings": {"lr": 0.004, "lr_min": 0.0004}}})  # fmt: skip


def test_find_sweeps_groups_runs_that_differ_only_in_lr() -> None:
    sweeps = sweep_index(find_sweeps(expand_grid(_sweep_config())))
    # the seed splits the sweeps; gpt (one rate) is no sweep
    assert set(sweeps) == {("symato", "rwkv4-L1-D16-B1k"), ("symato", "rwkv4-L1-D16-B1k-s2")}
    main = sweeps[("symato", "rwkv4-L1-D16-B1k")]
    assert main.runs == ((0.002, "rwkv4-L1-D16-B1k-lr0.002"), (0.004, "rwkv4-L1-D16-B1k"),
                         (0.008, "rwkv4-L1-D16-B1k-lr0.008"))
    assert sweeps[("symato", "rwkv4-L1-D16-B1k-s2")].rates == [0.002, 0.008]


def test_extension_settings_change_only_lr_and_the_name() -> None:
    grid = expand_grid(_sweep_config())
    sweeps = sweep_index(find_sweeps(grid))
    base = sweeps[("symato", "rwkv4-L1-D16-B1k-s2")].settings
    ext = extension_settings(base, 0.016)
    assert ext["run"] == "rwkv4-L1-D16-B1k-lr0.016-s2" and ext["lr"] == 0.016
    assert {k: v for k, v in ext.items() if k not in ("lr", "run")} == \
        {k: v for k, v in base.items() if k not in ("lr", "run")}
    assert ext["lr_min"] == 0.0004 and list(ext) == list(base)  # lr_min kept, key order kept
    # the same settings as the grid gives a configured rate of that name
    config = _sweep_config()
    config["train"]["grids"][1]["vary"]["lr"].append(0.016)
    listed = {r["run"]: r["settings"] for r in expand_grid(config)}
    assert listed["rwkv4-L1-D16-B1k-lr0.016-s2"] == ext
    # the workflow's lookup: extension runs of known sweeps only
    assert lookup_extension(sweeps, "symato", "rwkv4-L1-D16-B1k-lr0.001") == \
        extension_settings(sweeps[("symato", "rwkv4-L1-D16-B1k")].settings, 0.001)
    assert lookup_extension(sweeps, "symato", "gpt-L1-D16-B1k-lr0.001") is None
    assert lookup_extension(sweeps, "symato", "rwkv4-L1-D16-B1k") is None
    with pytest.raises(SymatoError, match="not a canonical run name"):
        lookup_extension(sweeps, "symato", "rwkv4-L1-D16-B1k-lr0.0010")


@pytest.mark.parametrize("lr", [0.0, -0.001, math.inf, math.nan])
def test_extension_rate_must_be_positive_and_finite(lr: float) -> None:
    base = find_sweeps(expand_grid(_sweep_config()))[0].settings
    with pytest.raises(SymatoError, match="positive, finite"):
        extension_settings(base, lr)


def test_extension_below_lr_min_is_refused() -> None:
    base = find_sweeps(expand_grid(_sweep_config()))[0].settings
    with pytest.raises(SymatoError, match="lr_min <= lr"):
        extension_settings(base, 0.0001)


# ----------------------------------------------------------------------------- symato sweep
def _run_dir(root: Path, settings: dict, bpb: object) -> Path:
    run = root / settings["tokenizer"] / settings["run"]
    write_json_atomic(run / "settings.json", settings)
    (run / "metrics.json").write_text(json.dumps({"bits_per_byte": bpb}))
    return run / "metrics.json"


def _resolved(settings: dict) -> dict:
    out = {**settings, "tokens": 100, "steps": 1}
    check_settings(out, "test")
    return out


def _symato(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(SNAKEMAKE.with_name("symato")), *args], capture_output=True,
                          text=True, timeout=120, check=False)


def test_sweep_command_writes_the_decision_and_names_bad_files(tmp_path: Path) -> None:
    sweep = sweep_index(find_sweeps(expand_grid(_sweep_config())))[("symato", "rwkv4-L1-D16-B1k")]
    files = [_run_dir(tmp_path, _resolved(extension_settings(sweep.settings, lr)), loss)
             for lr, loss in ((0.002, 2.3), (0.004, 2.2), (0.008, 2.1))]
    ext = _run_dir(tmp_path, _resolved(extension_settings(sweep.settings, 0.016)), 2.0)
    out = tmp_path / "step1.json"
    proc = _symato("sweep", "--out", str(out), "--tokenizer", "symato", "--sweep", sweep.name,
                   "--max-extensions", "1", "--extension", str(ext), *map(str, files))
    assert proc.returncode == 0, proc.stderr
    d = json.loads(out.read_text())
    assert (d["status"], d["best_lr"], d["extension_runs"]) == (
        "limit_reached", 0.016, ["rwkv4-L1-D16-B1k-lr0.016"])
    final = tmp_path / "final.json"
    assert _symato("sweep", "final", "--step", str(out), "--out", str(final)).returncode == 0
    assert json.loads(final.read_text()) == d
    # a missing loss: the error names the file and the key
    files[1].write_text(json.dumps({"bits_per_byte": None}))
    proc = _symato("sweep", "--out", str(out), "--tokenizer", "symato", "--sweep", sweep.name,
                   "--max-extensions", "1", *map(str, files))
    assert proc.returncode == 1 and f"{files[1]}: key 'bits_per_byte'" in proc.stderr
    files[1].unlink()
    proc = _symato("sweep", "--out", str(out), "--tokenizer", "symato", "--sweep", sweep.name,
                   "--max-extensions", "1", *map(str, files))
    assert proc.returncode == 1 and f"run metrics not found: {files[1]}" in proc.stderr
    # a run of another sweep
    proc = _symato("sweep", "--out", str(out), "--tokenizer", "symato", "--sweep", "other",
                   "--max-extensions", "1", str(files[0]), str(files[2]))
    assert proc.returncode == 1 and "not a run of this sweep" in proc.stderr


def test_limit_is_validated_by_the_config_schema() -> None:
    assert prepared({})["train"]["lr_bracket"] == {"max_extensions": 2}
    with pytest.raises(SymatoError, match="max_extensions"):
        prepared({"train": {"lr_bracket": {"max_extensions": -1}}})
    with pytest.raises(SymatoError, match="lr_bracket"):
        prepared({"train": {"lr_bracket": {"max_extension": 1}}})


# ----------------------------------------------------------------------------- real workflow
# Two rates where the higher one always wins at this tiny budget (a few steps from a
# random start): the sweep extends upwards twice and stops at the limit (or brackets).
WORKFLOW_CONFIG = tiny_data_config(
    tokenizers=["symato"],
    train={
        "grids": [{"name": "lr", "tokenizers": "all", "archs": ["gpt"], "sizes": ["L1-D16"],
                   "tokens": [1024], "vary": {"lr": [0.0005, 0.001]}}],
        "settings": {"max_epochs": 10.0, "ctx_len": 32, "batch_size": 4, "warmup": 0.1,
                     "lr_min": 0.0001, "eval_interval": 0, "eval_windows": 2,
                     "checkpoint_steps": 0, "checkpoint_minutes": 0},
        # config.yaml's gpt override (merged under this file) would set lr_min 0.0006
        "arch_overrides": {"gpt": {"lr": 0.001, "lr_min": 0.0001}},
        "lr_bracket": {"max_extensions": 2},
    },
    eval={"restoration_syllables": 20, "prompts": [""], "sample_tokens": 4},
    report={"bootstrap": 5, "dpi": 50},
)


@pytest.mark.slow
def test_workflow_extends_a_sweep_and_the_summary_says_so(tmp_path: Path) -> None:
    (tmp_path / "input").mkdir()
    shutil.copy(CORPUS, tmp_path / "input" / "vi.txt")
    (tmp_path / "config.yaml").write_text(yaml.safe_dump(WORKFLOW_CONFIG, allow_unicode=True))
    cmd = [str(SNAKEMAKE), "-s", str(REPO / "Snakefile"), "--directory", str(tmp_path),
           "--configfile", str(tmp_path / "config.yaml"), "--cores", "2"]
    proc = subprocess.run([*cmd, "results/summary.md"], capture_output=True, text=True,
                          timeout=900, check=False)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    name = "gpt-L1-D16-T1024"
    decision = json.loads((tmp_path / f"results/sweeps/symato/{name}.json").read_text())
    assert decision["configured_rates"] == [0.0005, 0.001]
    assert decision["extensions_used"] >= 1 and decision["extension_runs"][0] == f"{name}-lr0.002"
    for run in decision["extension_runs"]:
        settings = json.loads((tmp_path / f"results/runs/symato/{run}/settings.json").read_text())
        assert settings["lr_min"] == 0.0001 and run.endswith(f"-lr{settings['lr']:g}")
    runs_csv = (tmp_path / "results/scaling/runs.csv").read_text()
    assert all(run in runs_csv for run in decision["extension_runs"])
    summary = (tmp_path / "results/summary.md").read_text()
    assert "### Bracketing the optimum: extended sweeps" in summary
    assert f"| symato | {name} |" in summary and "+0.002:" in summary
    if decision["limit_reached"]:
        assert "the limit of 2 extension(s) was reached" in summary
    else:
        assert decision["bracketed"] and "Every sweep brackets its optimum." in summary
    # a second run plans nothing: the decisions are stable
    dry = subprocess.run([*cmd, "--dry-run", "results/summary.md"], capture_output=True,
                         text=True, timeout=300, check=False)
    assert dry.returncode == 0 and "Nothing to be done" in dry.stdout + dry.stderr, dry.stdout
