"""Collect, fit and the figure scripts on a tiny fake results set: real files, real
matplotlib, real PNG/SVG, and the real report rules of the Snakefile.

``make_fake_results`` writes run folders in the trainer's format (settings.json,
metrics.json, metrics.jsonl) and shard manifests. The figures are drawn twice: by
importing each workflow/scripts/ file and calling its draw(), and by Snakemake running
the report rules (``script:``) on the same tables; both must give the same SVG bytes.
"""

from __future__ import annotations

import csv
import itertools
import json
import math
import os
import shutil
import subprocess
import xml.etree.ElementTree as ET
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml
from _workflow import CORPUS, REPO, SNAKEMAKE, load_script, tiny_data_config

from symato.errors import SymatoError
from symato.report import collect, figures, study
from symato.report.fit import compute_frontier
from symato.report.fit import main as fit_main

FIGURES = ("scaling_params", "training_curves", "loss_vs_compute", "tokenizers",
           "equal_size", "tokenizer_study", "lr_sweep")
PLOT_RULES = {f"plot_{name}": name for name in FIGURES}

# symato/rwkv4: 4 sizes x 3 budgets (both laws fit); symato/gpt: 4 sizes (L(N) only);
# bytes/rwkv4: one size (no fit: points only).
SIZES = [(1, 32), (2, 48), (2, 64), (3, 96)]
FAKE_GRID = (
    [("symato", "rwkv4", n_layer, n_embd, t) for n_layer, n_embd in SIZES
     for t in (100_000, 200_000, 400_000)]
    + [("symato", "gpt", n_layer, n_embd, 200_000) for n_layer, n_embd in SIZES]
    + [("bytes", "rwkv4", 2, 64, 200_000)]
)
# A learning-rate sweep around symato/gpt L1-D32 (configured lr 0.006): loss factors.
FAKE_SWEEP = {0.003: 1.05, 0.012: 0.96}
VOCAB = {"symato": 2816, "bytes": 260}


def fake_law(arch: str, tokenizer: str, n: float, d: float) -> float:
    """A made-up but plausible bits-per-byte surface."""
    base = 1.1 if arch == "rwkv4" else 1.2
    base += 0.15 if tokenizer == "bytes" else 0.0
    return base + 40.0 * n**-0.35 + 900.0 * d**-0.45


def make_fake_results(root: Path, seed: int = 0) -> list[Path]:
    """Write fake runs under root/runs and manifests under root/shards; return run dirs."""
    rng = np.random.default_rng(seed)
    dirs = []
    sweep = [("symato", "gpt", 1, 32, 200_000, lr) for lr in FAKE_SWEEP]
    for tok, arch, n_layer, n_embd, tokens, *lr in [*FAKE_GRID, *sweep]:
        body = 12 * n_layer * n_embd**2
        params = body + 2 * VOCAB[tok] * n_embd
        flops = 6.0 * params * tokens
        run = f"{arch}-L{n_layer}-D{n_embd}-T{tokens // 1000}k" + (f"-lr{lr[0]}" if lr else "")
        d = root / "runs" / tok / run
        d.mkdir(parents=True, exist_ok=True)
        settings = {"tokenizer": tok, "run": run, "arch": arch, "n_layer": n_layer,
                    "n_embd": n_embd, "tokens": tokens,
                    "lr": lr[0] if lr else (0.004 if arch == "rwkv4" else 0.006)}
        (d / "settings.json").write_text(json.dumps(settings))
        final = fake_law(arch, tok, params, tokens) * math.exp(rng.normal(0, 0.005))
        final *= FAKE_SWEEP[lr[0]] if lr else 1.0
        metrics = {"bits_per_byte": final, "bits_per_syllable": final * 3.4,
                   "loss_nats_per_token": final * 2.1, "params_total": params,
                   "params_non_embedding": body, "train_tokens": tokens, "train_flops": flops,
                   "tokens_per_second": 5000.0, "restoration_accuracy": 0.7,
                   "restoration_baseline_accuracy": 0.5, "samples": ["xin chào"]}
        (d / "metrics.json").write_text(json.dumps(metrics))
        lines = []
        for step in range(1, 11):
            seen = tokens * step // 10
            rec = {"step": step, "tokens": seen, "train_loss": 3.0 / step**0.3, "lr": 1e-3}
            if step % 2 == 0:
                rec["val_bpb"] = fake_law(arch, tok, params, seen)
            lines.append(json.dumps(rec))
        (d / "metrics.jsonl").write_text("\n".join(lines) + "\n")
        dirs.append(d)
    for tok, per_syl in (("symato", 1.9), ("bytes", 3.6)):
        splits = {s: {"documents": 10, "syllables": 1000 * k, "bytes": 3600 * k,
                      "tokens": int(per_syl * 1000 * k), "shards": []}
                  for s, k in (("train", 9), ("val", 1))}
        m = root / "shards" / tok / "manifest.json"
        m.parent.mkdir(parents=True, exist_ok=True)
        m.write_text(json.dumps({"tokenizer": tok, "vocab_size": VOCAB[tok], "dtype": "uint16",
                                 "splits": splits}))
    return dirs


def run_collect(root: Path) -> dict[str, Path]:
    """`symato collect` over the fake results; returns the table paths."""
    out = {"runs": root / "scaling/runs.csv", "curves": root / "scaling/curves.csv",
           "tokenizers": root / "scaling/tokenizers.csv"}
    manifests = sorted(str(p) for p in (root / "shards").glob("*/manifest.json"))
    assert collect.main(["--runs-root", str(root / "runs"), "--out", str(out["runs"]),
                         "--curves", str(out["curves"]), "--tokenizers", str(out["tokenizers"]),
                         "--manifests", *manifests]) == 0
    return out


@pytest.fixture(scope="module")
def fake(tmp_path_factory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("fake")
    make_fake_results(root)
    paths = run_collect(root)
    paths["fits"] = root / "scaling/fits.json"
    assert fit_main(["--runs", str(paths["runs"]), "--out", str(paths["fits"]),
                         "--bootstrap", "20"]) == 0
    paths["study"] = root / "scaling/study.json"
    assert study.main(["--runs", str(paths["runs"]), "--tokenizers", str(paths["tokenizers"]),
                       "--out", str(paths["study"]), "--bootstrap", "5"]) == 0
    paths["root"] = root
    return paths


def _rows(path: Path) -> list[dict[str, str]]:
    with open(path, newline="") as fh:
        return list(csv.DictReader(fh))


def test_collect_tables(fake):
    runs = _rows(fake["runs"])
    assert len(runs) == len(FAKE_GRID) + len(FAKE_SWEEP)
    r = next(r for r in runs if r["run"] == "rwkv4-L2-D64-T200k" and r["tokenizer"] == "bytes")
    assert r["arch"] == "rwkv4" and int(r["params"]) == 12 * 2 * 64**2 + 2 * 260 * 64
    assert float(r["flops"]) == pytest.approx(6.0 * int(r["params"]) * 200_000)
    curves = _rows(fake["curves"])
    assert len(curves) == 5 * len(runs)  # val_bpb at every 2nd of 10 steps
    toks = {(t["tokenizer"], t["split"]): t for t in _rows(fake["tokenizers"])}
    assert float(toks["symato", "val"]["tokens_per_syllable"]) == pytest.approx(1.9)
    assert float(toks["bytes", "val"]["tokens_per_byte"]) == pytest.approx(1.0)


def test_fit_groups_on_fake_runs(fake):
    fits = json.loads(fake["fits"].read_text())
    groups = fits["groups"]
    assert groups["symato/rwkv4"]["status"] == "ok" and groups["symato/rwkv4"]["law"] == "L(N,D)"
    # 3 sizes on a nearly flat fake loss: E comes out 0, which is a bound (issue #20)
    assert groups["symato/gpt"]["status"] in ("ok", "at_bound")
    assert groups["symato/gpt"]["law"] == "L(N)"
    assert groups["symato/gpt"]["fits"]["L_ND"]["status"] == "too_few_runs"
    sweep, = fits["lr_choice"]["sweeps"]  # the best of the three rates is the one fitted
    assert sweep["chosen"] == "gpt-L1-D32-T200k-lr0.012" and sweep["at_edge"] == {"lr": "high"}
    assert "gpt-L1-D32-T200k-lr0.012" in groups["symato/gpt"]["runs"]
    assert groups["bytes/rwkv4"]["status"] == "too_few_runs"
    assert "at least 4 runs, got 1" in groups["bytes/rwkv4"]["reason"]


def _png_variance(path: Path) -> float:
    import matplotlib.image as mpimg

    return float(mpimg.imread(path)[..., :3].std())


def _tables(fake: dict[str, Path]) -> dict:
    return {"runs": figures.load_runs(fake["runs"]), "curves": figures.load_curves(fake["curves"]),
            "toks": figures.load_tokenizers(fake["tokenizers"]),
            "fits": figures.load_fits(fake["fits"]), "study": figures.load_study(fake["study"])}


def draw(name: str, t: dict):
    """One figure from its script's draw(), with the inputs its rule gives it."""
    # as the rules build it: the config's tokenizers (tiny config: symato, bytes) + the data's
    script = load_script(name)
    style = figures.Style.of(t["runs"], tokenizers=["symato", "bytes"])
    if name == "training_curves":
        return script.draw(t["curves"], style)
    if name == "tokenizers":
        return script.draw(t["toks"], style)
    if name == "equal_size":
        return script.draw(t["runs"], style)
    if name == "tokenizer_study":
        return script.draw(t["study"], style)
    if name == "lr_sweep":
        return script.draw(t["fits"], style)
    return script.draw(t["runs"], t["fits"], style)


def save_all(t: dict, outdir: Path, dpi: int) -> None:
    for name in FIGURES:
        figures.save_figure(draw(name, t), outdir / f"{name}.png", outdir / f"{name}.svg", dpi)


def assert_figures(outdir: Path) -> None:
    """Every figure is a non-blank PNG plus a well-formed SVG."""
    for name in FIGURES:
        png, svg = outdir / f"{name}.png", outdir / f"{name}.svg"
        assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
        assert _png_variance(png) > 0.02, f"{png} looks blank"
        root = ET.parse(svg).getroot()
        assert root.tag.endswith("svg")


def test_figure_scripts_draw_every_figure(fake, tmp_path):
    outdir = tmp_path / "plots"
    save_all(_tables(fake), outdir, dpi=60)
    assert_figures(outdir)
    svg_text = (outdir / "scaling_params.svg").read_text()
    # The group without a fit is drawn as points and the figure says why.
    assert "points only" in svg_text and "L(N) needs at least 4 runs" in svg_text
    # symato/rwkv4 has 3 budgets: runs off the L(N) budget are drawn hollow.
    assert "run at another budget" in svg_text
    # symato/rwkv4 has a compute-optimal curve; the others say why they have none.
    compute = (outdir / "loss_vs_compute.svg").read_text()
    assert "compute-optimal L(N,D)" in compute and "rwkv4 · symato" not in compute
    assert "no L(N,D) optimum (L(N,D) needs" in compute and "gpt · symato" in compute


def test_svg_is_byte_stable(fake, tmp_path):
    t = _tables(fake)
    save_all(t, tmp_path / "a", dpi=40)
    save_all(t, tmp_path / "b", dpi=40)
    for name in FIGURES:
        assert (tmp_path / "a" / f"{name}.svg").read_bytes() == \
            (tmp_path / "b" / f"{name}.svg").read_bytes()


def test_figures_cope_with_no_fits_and_no_curves(fake, tmp_path):
    """No fits and no training curves: every figure is still drawn (points, notes, empty panels)."""
    t = {**_tables(fake), "fits": {}}
    t["curves"] = t["curves"].iloc[:0]
    outdir = tmp_path / "plots"
    save_all(t, outdir, dpi=40)
    assert sorted(p.name for p in outdir.glob("*.png")) == sorted(f"{n}.png" for n in FIGURES)
    assert "no fit in the fits file" in (outdir / "scaling_params.svg").read_text()
    assert "no validation points" in (outdir / "training_curves.svg").read_text()


def test_figure_inputs_are_checked(fake, tmp_path):
    """A table without a column a figure reads is an error naming the file and the column."""
    broken = tmp_path / "runs.csv"
    pd.read_csv(fake["runs"]).drop(columns="flops").to_csv(broken, index=False)
    with pytest.raises(SymatoError, match=r"runs table .*runs.csv: missing column\(s\) flops"):
        figures.load_runs(broken)
    with pytest.raises(SymatoError, match="curve table not found"):
        figures.load_curves(tmp_path / "nope.csv")
    (tmp_path / "fits.json").write_text("[1, 2]")
    with pytest.raises(SymatoError, match=r"fits\.json: expected an object"):
        figures.load_fits(tmp_path / "fits.json")


def test_frontier_is_compute_frontier(fake):
    """The figure's fallback frontier and the fits' frontier are one function's result."""
    runs = figures.load_runs(fake["runs"])
    fits = figures.load_fits(fake["fits"])
    g = runs[(runs["tokenizer"] == "symato") & (runs["arch"] == "rwkv4")]
    stored = fits["groups"]["symato/rwkv4"]["frontier"]
    assert [r["run"] for r in compute_frontier(g.to_dict("records"))] == \
        [r["run"] for r in stored]
    assert len(stored) >= 2 and all(a["flops"] <= b["flops"] and a["loss"] > b["loss"]
                                    for a, b in itertools.pairwise(stored))


# ------------------------------------------------------------- the real report rules
def _snakemake(work: Path, *options: str) -> subprocess.CompletedProcess[str]:
    cmd = [str(SNAKEMAKE), "-s", str(REPO / "Snakefile"), "--directory", str(work),
           "--configfile", str(work / "config.yaml"), "--cores", "2", *options,
           # the fake tables stand in for collect/fit: only the figure and summary rules run
           "--allowed-rules", *PLOT_RULES, "results_summary", "--", *REPORT_TARGETS]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=300, check=False)


REPORT_TARGETS = [*(f"results/plots/{n}.{e}" for n in FIGURES for e in ("png", "svg")),
                  "results/summary.md"]


@pytest.fixture(scope="module")
def rules_work(fake, tmp_path_factory) -> Path:
    """The report rules of the real Snakefile, run on the fake results tables."""
    work = tmp_path_factory.mktemp("rules")
    (work / "input").mkdir()
    shutil.copy(CORPUS, work / "input" / "vi.txt")
    config = tiny_data_config(report={"dpi": 50})
    (work / "config.yaml").write_text(yaml.safe_dump(config, allow_unicode=True))
    (work / "results/scaling").mkdir(parents=True)
    for key in ("runs", "curves", "tokenizers", "fits", "study"):
        shutil.copy2(fake[key], work / "results/scaling" / fake[key].name)
    proc = _snakemake(work)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    return work


def test_report_rules_run_the_scripts(fake, rules_work, tmp_path):
    results = rules_work / "results"
    assert_figures(results / "plots")
    # Snakemake's run of each script and an import of it draw the same SVG bytes.
    save_all(_tables(fake), tmp_path, dpi=50)
    for name in FIGURES:
        assert (results / "plots" / f"{name}.svg").read_bytes() == \
            (tmp_path / f"{name}.svg").read_bytes(), name
    for rule in [*PLOT_RULES, "results_summary"]:
        assert (results / "benchmarks" / rule / f"{rule}.tsv").stat().st_size > 0
    for rule, name in PLOT_RULES.items():
        log = (results / "logs" / rule / f"{rule}.log").read_text()
        assert f"wrote results/plots/{name}.png" in log, log
    summary = (results / "summary.md").read_text()
    assert summary.startswith("# symato results summary")
    assert "| symato/rwkv4 | L(N,D) | ok |" in summary
    assert "bytes/rwkv4 L(N): L(N) needs at least 4 runs" in summary
    assert "## Learning-rate sweep" in summary and "| gpt | symato | gpt-L1-D32-T200k |" in summary
    assert "symato's L(N,D) was not fitted" in summary  # the study: one common size only
    assert summary == load_script("summary").document(
        *(_tables(fake)[k] for k in ("runs", "fits", "toks", "study")))


def test_restyling_a_figure_reruns_only_its_rule(rules_work):
    """A script newer than its figure (an edit) reruns that figure's rule, nothing else."""
    results = rules_work / "results"
    script_time = (REPO / "workflow/scripts/training_curves.py").stat().st_mtime
    for table in (results / "scaling").iterdir():  # older than every script
        os.utime(table, (script_time - 100, script_time - 100))
    for ext in ("png", "svg"):  # as if drawn before training_curves.py was edited
        os.utime(results / f"plots/training_curves.{ext}", (script_time - 50, script_time - 50))
    dry = _snakemake(rules_work, "--dry-run")
    assert dry.returncode == 0, dry.stderr[-2000:]
    planned = [rule for rule in [*PLOT_RULES, "results_summary"]
               if f"rule {rule}:" in dry.stdout + dry.stderr]
    assert planned == ["plot_training_curves"], dry.stdout[-3000:]
    assert "Code has changed since last execution" in dry.stdout + dry.stderr


def test_collect_errors_name_file_and_key(tmp_path):
    d = tmp_path / "runs" / "symato" / "r1"
    d.mkdir(parents=True)
    (d / "settings.json").write_text(json.dumps({"arch": "rwkv4", "tokens": 10}))
    (d / "metrics.json").write_text(json.dumps({"bits_per_byte": 1.5}))
    with pytest.raises(SymatoError, match=r"r1/metrics.json: key 'params_total' is missing"):
        collect.main([str(d), "--out", str(tmp_path / "runs.csv")])
    (d / "metrics.json").write_text(json.dumps({"bits_per_byte": 1.5, "params_total": 5}))
    with pytest.raises(SymatoError, match=r"r1/metrics.json: key 'train_tokens' is missing"):
        collect.main([str(d), "--out", str(tmp_path / "runs.csv")])
    (d / "metrics.json").write_text(json.dumps({"bits_per_byte": "x", "params_total": 5,
                                                "train_tokens": 10}))
    with pytest.raises(SymatoError, match="'bits_per_byte' is not a number"):
        collect.main([str(d), "--out", str(tmp_path / "runs.csv")])
    (d / "metrics.json").write_text(json.dumps({"params_total": 5, "train_tokens": 10}))
    (d / "metrics.jsonl").write_text('{"step": 1, "val_bpb": 2.0}\nnot json\n')
    with pytest.raises(SymatoError, match=r"metrics.jsonl:1: line with val_bpb has no 'tokens'"):
        collect.main([str(d), "--out", str(tmp_path / "runs.csv"),
                      "--curves", str(tmp_path / "c.csv")])
    assert not (tmp_path / "c.csv").exists()


def test_run_folders_of_the_old_name_rwkv_collect_as_rwkv4(tmp_path):
    """Run folders written before RWKV-4 was named rwkv4 (``rwkv-L...``, settings and
    metrics saying "rwkv") keep their folder's name as run, and read as architecture
    rwkv4 in both tables, so they share a style and fit group with new rwkv4 runs; their
    names parse (split_name) like new ones."""
    from symato.run.grid import join_name, split_name

    old_run = "rwkv-L1-D32-T10k-lr0.002-s2"
    assert split_name(old_run) == ("rwkv-L1-D32-T10k", {"lr": "0.002", "seed": "2"})
    assert join_name(*split_name(old_run)) == old_run
    for run, arch in ((old_run, "rwkv"), ("rwkv4-L1-D32-T10k", "rwkv4")):
        d = tmp_path / "runs" / "symato" / run
        d.mkdir(parents=True)
        (d / "settings.json").write_text(json.dumps({"arch": arch, "tokens": 10_000}))
        (d / "metrics.json").write_text(json.dumps({"params_total": 5, "train_tokens": 10_000,
                                                    "bits_per_byte": 1.5, "arch": arch}))
        (d / "metrics.jsonl").write_text('{"step": 1, "tokens": 5000, "val_bpb": 2.0}\n')
    collect.main(["--runs-root", str(tmp_path / "runs"), "--out", str(tmp_path / "runs.csv"),
                  "--curves", str(tmp_path / "curves.csv")])
    runs, curves = _rows(tmp_path / "runs.csv"), _rows(tmp_path / "curves.csv")
    assert sorted((r["run"], r["arch"]) for r in runs) == [
        (old_run, "rwkv4"), ("rwkv4-L1-D32-T10k", "rwkv4")]
    assert {r["arch"] for r in curves} == {"rwkv4"} and len(curves) == 2


def test_run_without_loss_is_kept_and_reported(tmp_path, capsys):
    d = tmp_path / "runs" / "symato" / "r1"
    d.mkdir(parents=True)
    (d / "metrics.json").write_text(json.dumps({"params_total": 5, "train_tokens": 7,
                                                "arch": "gpt"}))
    collect.main([str(d), "--out", str(tmp_path / "runs.csv")])
    assert "1 without bits_per_byte: symato/r1" in capsys.readouterr().err
    assert _rows(tmp_path / "runs.csv")[0]["loss"] == ""


def test_equal_size_table_takes_configured_runs_in_budget_order() -> None:
    """A sweep's or split-form study's variants are not averaged into a tokenizer's cell,
    and budgets sort by size (10k before 100k), not as text."""
    import pandas as pd

    def row(tok: str, run: str, loss: float, budget: str) -> dict:
        return {"tokenizer": tok, "arch": "rwkv4", "run": run, "n_layer": 1, "n_embd": 32,
                "tokens": 1000, "loss": loss, "budget": budget}

    runs = pd.DataFrame([
        row("symato", "rwkv4-L1-D32-B100k", 2.0, "100k text bytes"),
        row("symato", "rwkv4-L1-D32-B100k-lr0.008", 1.0, "100k text bytes"),
        row("symato", "rwkv4-L1-D32-B100k-split0.3", 3.0, "100k text bytes"),
        row("bytes", "rwkv4-L1-D32-B100k", 2.5, "100k text bytes"),
        row("symato", "rwkv4-L1-D32-B10k", 4.0, "10k text bytes"),
        row("bytes", "rwkv4-L1-D32-B10k", 5.0, "10k text bytes"),
    ])
    table = figures.equal_size_table(runs)
    assert [k[3] for k in table.index] == ["10k text bytes", "100k text bytes"]
    assert table.loc[("rwkv4", 1, 32, "100k text bytes"), "symato"] == 2.0


# ------------------------------------------------------------------ the shared look
def _figures(t: dict) -> dict:
    figs = {name: draw(name, t) for name in FIGURES}
    for fig in figs.values():
        fig.canvas.draw()
    return figs


def _data_colours(fig) -> set[str]:
    """The colours of every line and point collection on the figure's axes."""
    from matplotlib.colors import to_hex

    out = set()
    for ax in fig.axes:
        out |= {to_hex(line.get_color()) for line in ax.get_lines()}
        for coll in ax.collections:
            out |= {to_hex(c) for c in coll.get_facecolors()}
        out |= {to_hex(patch.get_facecolor()) for patch in ax.patches}
    return out


def test_style_one_colour_per_tokenizer_one_line_per_architecture():
    """Colours follow the tokenizer, in canonical order whatever order the names come in;
    line styles and markers follow the architecture registry."""
    from symato.models.registry import ARCHITECTURES
    from symato.report import style as look

    names = ["sp-unigram2816", "bytes", "symato+1280", "symato", "sp-bpe2816", "symato+256",
             "symato-bpe2816", "sp-bpe4096", "symato+8192", "sp-bpe11008"]
    a, b = figures.Style([], names), figures.Style(["llama"], list(reversed(names)))
    assert a.colour == b.colour
    assert len(set(a.colour.values())) == len(names)  # ten distinct colours
    assert a.tokenizers[:3] == ["symato", "symato+256", "symato+1280"]
    assert a.archs[:len(ARCHITECTURES)] == list(ARCHITECTURES)
    assert len({str(a.ls(x)) for x in ARCHITECTURES}) == len(ARCHITECTURES)
    assert len({a.mk(x) for x in ARCHITECTURES}) == len(ARCHITECTURES)
    assert look.tokenizer_order(["bytes", "symato"]) == ["symato", "bytes"]


def test_same_tokenizer_same_colour_in_every_figure(fake):
    """Every figure draws a tokenizer's data in its one colour, and two tokenizers apart."""
    from matplotlib.colors import to_hex

    t = _tables(fake)
    style = figures.Style.of(t["runs"], tokenizers=["symato", "bytes"])
    mine = {tok: to_hex(style.tok(tok)) for tok in ("symato", "bytes")}
    assert mine["symato"] != mine["bytes"]
    figs = _figures(t)
    for name in ("scaling_params", "loss_vs_compute", "training_curves", "tokenizers",
                 "equal_size", "tokenizer_study"):
        colours = _data_colours(figs[name])
        assert mine["symato"] in colours and mine["bytes"] in colours, name
        legend = figs[name].legends[0] if figs[name].legends else None
        if legend is not None:  # the legend's swatch for a tokenizer is its colour
            for handle, text in zip(legend.legend_handles, legend.get_texts(), strict=True):
                if text.get_text() in mine:
                    assert to_hex(handle.get_color()) == mine[text.get_text()], name


def _boxes_overlap(a, b, slack: float = 0.5) -> bool:
    return (a.x0 + slack < b.x1 and b.x0 + slack < a.x1
            and a.y0 + slack < b.y1 and b.y0 + slack < a.y1)


def test_legends_outside_the_data_and_no_text_overlaps(fake):
    """No legend covers an axes' data area, and no two texts of a figure overlap."""
    from matplotlib.text import Text

    figs = _figures(_tables(fake))
    for name, fig in figs.items():
        renderer = fig.canvas.get_renderer()
        areas = [ax.get_window_extent(renderer) for ax in fig.axes if ax.get_visible()]
        legends = [*fig.legends, *(ax.get_legend() for ax in fig.axes if ax.get_legend())]
        for legend in legends:
            box = legend.get_window_extent(renderer)
            assert not any(_boxes_overlap(box, area) for area in areas), name
        texts = [t for t in fig.findobj(Text) if t.get_visible() and t.get_text().strip()
                 and (t.axes is None or t.axes.get_visible()) and t not in _tick_labels(fig)]
        texts += _drawn_tick_labels(fig)
        boxes = [(t.get_text(), t.get_window_extent(renderer)) for t in texts]
        for (ta, a), (tb, b) in itertools.combinations(boxes, 2):
            assert not _boxes_overlap(a, b), f"{name}: {ta!r} overlaps {tb!r}"


def _tick_labels(fig) -> set:
    return {tick.label1 for ax in fig.axes for axis in (ax.xaxis, ax.yaxis)
            for tick in axis.get_major_ticks() + axis.get_minor_ticks()}


def _drawn_tick_labels(fig) -> list:
    """The tick labels the last draw showed: inside their axis' view interval, not empty
    (matplotlib keeps stale labels of ticks outside the view, undrawn)."""
    out = []
    for ax in fig.axes:
        if not ax.get_visible():
            continue
        for axis in (ax.xaxis, ax.yaxis):
            low, high = sorted(axis.get_view_interval())
            for tick in axis.get_major_ticks() + axis.get_minor_ticks():
                loc, lab = tick.get_loc(), tick.label1
                if (loc is not None and low <= loc <= high and lab.get_visible()
                        and lab.get_text().strip()):
                    out.append(lab)
    return list(dict.fromkeys(out))


def test_end_labels_are_spread_apart():
    """label_ends moves labels of nearly equal curves apart (no overlap)."""
    plt = figures.pyplot()
    fig, ax = plt.subplots(figsize=(4, 3))
    items = []
    for i in range(6):
        ax.plot([1, 2], [1.0, 1.0 + i * 0.001])
        items.append((2, 1.0 + i * 0.001, f"label {i}", "black"))
    texts = figures.label_ends(ax, items)
    fig.canvas.draw()
    renderer = fig.canvas.get_renderer()
    boxes = [t.get_window_extent(renderer) for t in texts]
    assert not any(_boxes_overlap(a, b) for a, b in itertools.combinations(boxes, 2))
    plt.close(fig)
