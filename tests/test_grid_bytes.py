"""Byte budgets: sub-grids that fix the bytes of training *text* instead of the tokens.

Why these tests: a tokenizer comparison at equal tokens mixes "better tokenizer" with
"more text", so the demo compares at equal text. That needs (1) byte-budget runs named
and expanded from the config, (2) their tokens resolved from the real shard manifest,
(3) the real workflow to train them so that every tokenizer sees the same text, and
(4) token-budget runs left exactly as before, or every finished run would rerun.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import pandas as pd
import pytest
import yaml
from _workflow import load_script, prepared
from test_grid import SNAKEFILE_REAL, _snakemake, _write_config

from symato.data.clean import split_of
from symato.data.tokenize import tokenize_shard, write_manifest
from symato.errors import SymatoError
from symato.report import collect, figures
from symato.report.figures import load_runs, load_tokenizers
from symato.run.grid import expand_grid, run_name
from symato.run.settings import command_args, load_settings, resolve_text_bytes
from symato.run.settings import main as settings_main
from symato.text.tokenizer import Tokenizer
from symato.text.vocab import build_vocab

REPO = Path(__file__).resolve().parents[1]
CORPUS = REPO / "tests" / "data" / "pipeline_vi.txt"


def demo_config() -> dict:
    """config.yaml with the grid these tests need: a token-budget ladder (grids[0]) beside
    an equal-text tokenizer sub-grid (grids[1]). The demo's own grids are all byte budgets
    (test_demo_config_compares_tokenizers_at_equal_text), so the token side is set here."""
    config = yaml.safe_load((REPO / "config.yaml").read_text(encoding="utf-8"))
    config["train"]["grids"] = [
        {"name": "scaling", "tokenizers": ["symato"], "archs": ["rwkv4", "gpt"],
         "sizes": ["L1-D32", "L2-D64"], "tokens": [30000, 300000]},
        {"name": "tokenizers", "tokenizers": "all", "archs": ["rwkv4"], "sizes": ["L2-D64"],
         "bytes": [700000]},
    ]
    return prepared(config)


def byte_config(budgets: list[int]) -> dict:
    """The demo config with its tokenizer sub-grid given ``bytes: budgets``."""
    config = demo_config()
    grid = config["train"]["grids"][1]
    grid.pop("tokens", None)
    grid["bytes"] = budgets
    return config


def real_shards(root: Path, names: tuple[str, ...] = ("symato", "bytes")) -> dict[str, Path]:
    """Vocabularies, token shards and manifests of the test corpus, by the real code.

    One document per paragraph of tests/data/pipeline_vi.txt; returns each manifest.
    """
    paragraphs = [p.strip() for p in CORPUS.read_text(encoding="utf-8").split("\n\n") if p.strip()]
    docs = pd.DataFrame({"doc_id": [f"d{i}" for i in range(len(paragraphs))], "source": "vi",
                         "text": paragraphs})
    cleans = {}
    for split in ("train", "val"):
        cleans[split] = root / f"clean-{split}.parquet"
        docs[docs["doc_id"].map(lambda d, s=split: split_of(d, 0.2) == s)].to_parquet(
            cleans[split])
    manifests = {}
    for name in names:
        tok = Tokenizer.default() if name == "symato" else build_vocab(name)
        vocab = root / f"results/vocab/{name}.json"
        vocab.parent.mkdir(parents=True, exist_ok=True)
        tok.save(vocab)
        shards = root / f"results/shards/{name}"
        outs = {s: shards / s / "000.arrow" for s in ("train", "val")}
        tokenize_shard(cleans, vocab, outs)
        manifests[name] = shards / "manifest.json"
        write_manifest(shards, list(outs.values()), name)
    return manifests


# ------------------------------------------------------------------ grid and names
def test_byte_runs_are_expanded_and_named() -> None:
    runs = expand_grid(byte_config([700000, 1_500_000, 1234]))
    byte_runs = [r for r in runs if "tokenizers" in r["grids"]]
    names = {(r["tokenizer"], r["run"]) for r in byte_runs}
    assert names == {(t, f"rwkv4-L2-D64-B{b}") for t in demo_config()["tokenizers"]
                     for b in ("700k", "1500k", "1234")}  # fmt: skip
    for r in byte_runs:
        assert r["tokens"] is None and r["text_bytes"] in (700000, 1_500_000, 1234)
        s = r["settings"]
        assert "tokens" not in s and "steps" not in s and s["text_bytes"] == r["text_bytes"]
        args = command_args(s)
        assert "--tokens" not in args and "--steps" not in args
        assert args[args.index("--text-bytes") + 1] == str(r["text_bytes"])
        assert args[-2:] == ["--manifest", f"results/shards/{r['tokenizer']}/manifest.json"]
    # the symato byte run is a different run from the scaling ladder's token runs
    assert ("symato", "rwkv4-L2-D64-T300k") in {(r["tokenizer"], r["run"]) for r in runs}
    assert run_name("gpt", 1, 32, text_bytes=3_000_000) == "gpt-L1-D32-B3M"
    with pytest.raises(SymatoError, match="exactly one"):
        run_name("gpt", 1, 32, tokens=10, text_bytes=10)


def both_and_neither() -> tuple[dict, dict]:
    """Demo configs whose tokenizer sub-grid gives both budget kinds, and neither."""
    both, neither = byte_config([700000]), byte_config([700000])
    both["train"]["grids"][1]["tokens"] = [300000]
    del neither["train"]["grids"][1]["bytes"]
    return both, neither


def test_grid_needs_exactly_one_budget_kind() -> None:
    for config in both_and_neither():
        with pytest.raises(SymatoError, match=r"train.grids\[1\].*'tokens'.*'bytes'"):
            expand_grid(config)


def test_schema_rejects_both_or_neither_naming_the_key() -> None:
    prepared(byte_config([700000]))  # bytes alone is valid
    both, neither = both_and_neither()
    with pytest.raises(SymatoError, match=r"(?s)train\.grids\[1\]: .*'required': \['tokens'\]"):
        prepared(both)
    with pytest.raises(SymatoError, match=r"train\.grids\[1\]: 'tokens' is a required property"):
        prepared(neither)
    with pytest.raises(SymatoError, match=r"train\.grids\[1\]\.bytes\[0\]: 0 is less than"):
        prepared(byte_config([0]))


# ------------------------------------------------------------- token runs' settings
def test_token_run_settings_round_trip(tmp_path: Path) -> None:
    by_name = {(r["tokenizer"], r["run"]): r for r in expand_grid(demo_config())}
    run = by_name[("symato", "rwkv4-L2-D64-T300k")]
    assert run["text_bytes"] is None and run["tokens"] == 300000
    s = run["settings"]
    assert s["steps"] == -(-300000 // (s["batch_size"] * s["ctx_len"]))
    out = tmp_path / "settings.json"
    settings_main(["--out", str(out), *command_args(run["settings"])])
    written = json.loads(out.read_text())
    assert "text_bytes" not in written  # no text_bytes key for token runs
    assert written == run["settings"]
    with pytest.raises(SymatoError, match="not a mix"):  # a token run given a manifest
        settings_main(["--out", str(out), *command_args(run["settings"]), "--manifest", "m.json"])


# ------------------------------------------------- resolving tokens from a manifest
def test_run_settings_resolves_tokens_from_a_real_manifest(tmp_path: Path) -> None:
    manifests = real_shards(tmp_path)
    n_bytes = 4000  # below the train split's 5.7 kB: no pass repeats text (max_epochs 1)
    for name, manifest_path in manifests.items():
        train = json.loads(manifest_path.read_text())["splits"]["train"]
        per_token = train["bytes"] / train["tokens"]
        config = byte_config([n_bytes])
        entry = next(r for r in expand_grid(config, results=str(tmp_path / "results"))
                     if r["tokenizer"] == name and r["text_bytes"] == n_bytes)
        out = tmp_path / f"{name}.json"
        args = command_args(entry["settings"])
        assert settings_main(["--out", str(out), *args]) == 0
        s = load_settings(out)  # the trainer accepts it
        assert s["text_bytes"] == n_bytes and s["run"] == "rwkv4-L2-D64-B4k"
        assert s["tokens"] == round(n_bytes * train["tokens"] / train["bytes"])
        assert abs(s["tokens"] * per_token - n_bytes) <= s["ctx_len"] * per_token
        assert s["steps"] == math.ceil(s["tokens"] / (s["batch_size"] * s["ctx_len"]))
        assert {k: v for k, v in s.items() if k not in ("tokens", "steps")} == entry["settings"]
    sym, byt = (json.loads((tmp_path / f"{n}.json").read_text()) for n in ("symato", "bytes"))
    assert byt["tokens"] > 1.5 * sym["tokens"]  # bytes needs more tokens for the same text


def test_run_settings_byte_budget_errors(tmp_path: Path) -> None:
    entry = next(r for r in expand_grid(byte_config([5000])) if r["text_bytes"])
    args = command_args(entry["settings"])
    out = tmp_path / "settings.json"
    missing = tmp_path / "nope/manifest.json"
    args[args.index("--manifest") + 1] = str(missing)
    with pytest.raises(SymatoError, match=f"not found: {missing}"):
        settings_main(["--out", str(out), *args])
    bad = tmp_path / "manifest.json"
    bad.write_text(json.dumps({"splits": {"train": {"tokens": 10, "bytes": 0}}}))
    with pytest.raises(SymatoError, match=r"splits\.train\.bytes"):
        resolve_text_bytes(5000, bad)
    with pytest.raises(SymatoError, match="--text-bytes needs --manifest"):
        settings_main(["--out", str(out), *args[:args.index("--manifest")]])
    with pytest.raises(SymatoError, match="replaces --tokens"):
        settings_main(["--out", str(out), *args, "--tokens", "100", "--steps", "1"])
    assert not out.exists()


# -------------------------------------------------------- the real workflow, end to end
@pytest.mark.slow
def test_byte_budget_runs_train_on_the_same_text(tmp_path: Path) -> None:
    """Two tokenizers, one byte budget: real run_settings/train/evaluate jobs."""
    manifests = real_shards(tmp_path)
    (tmp_path / "results/stats").mkdir(parents=True)
    pd.DataFrame([("là", "la", 2, 5)], columns=["syllable", "sym", "marktone", "count"]
                 ).to_parquet(tmp_path / "results/stats/syllables.parquet")  # fmt: skip
    n_bytes = 4000
    config = {"tokenizers": ["symato", "bytes"],
              "train": {"grids": [{"name": "tokenizers", "tokenizers": "all", "archs": ["gpt"],
                                   "sizes": ["L1-D16"], "bytes": [n_bytes]}],
                        "settings": {"ctx_len": 8, "batch_size": 4, "eval_interval": 0,
                                     "eval_windows": 2, "warmup": 0.1,
                                     "checkpoint_steps": 0, "checkpoint_minutes": 0}},
              "eval": {"restoration_syllables": 10, "sample_tokens": 2, "prompts": [""]}}
    _write_config(tmp_path, config)
    (tmp_path / "Snakefile").write_text(SNAKEFILE_REAL)
    _snakemake(tmp_path, "--quiet", "all")
    seen, dirs = {}, []
    for name, manifest_path in manifests.items():
        train = json.loads(manifest_path.read_text())["splits"]["train"]
        run = tmp_path / f"results/runs/{name}/gpt-L1-D16-B4k"
        dirs.append(run)
        settings = json.loads((run / "settings.json").read_text())
        metrics = json.loads((run / "metrics.json").read_text())
        assert metrics["train_tokens"] == settings["steps"] * 4 * 8
        seen[name] = metrics["train_tokens"] * train["bytes"] / train["tokens"]
        assert abs(seen[name] / n_bytes - 1) < 0.01, (name, seen[name])
    assert abs(seen["symato"] / seen["bytes"] - 1) < 0.01
    # a second run plans nothing; a changed manifest re-resolves (and retrains) that run
    assert "Nothing to be done" in _snakemake(tmp_path, "--dry-run")
    original = manifests["bytes"].read_text()
    doc = json.loads(original)
    doc["splits"]["train"]["bytes"] *= 2
    manifests["bytes"].write_text(json.dumps(doc))
    plan = _snakemake(tmp_path, "--dry-run", "--quiet", "rules")
    assert "run_settings        1" in plan and "train               1" in plan

    # the report tables: one equal-text row holding both tokenizers, labelled as such
    runs_csv, toks_csv = tmp_path / "runs.csv", tmp_path / "toks.csv"
    manifests["bytes"].write_text(original)
    collect.main([*map(str, dirs), "--out", str(runs_csv), "--tokenizers", str(toks_csv),
                  "--manifests", *map(str, manifests.values())])
    rows = pd.read_csv(runs_csv)
    assert set(rows["budget"]) == {"4k text bytes"} and set(rows["text_bytes"]) == {n_bytes}
    assert rows.set_index("tokenizer")["tokens"].to_dict() == {
        n: json.loads((d / "metrics.json").read_text())["train_tokens"]
        for n, d in zip(manifests, dirs, strict=True)}
    # the summary (workflow/scripts/summary.py; no fits: 1 run per tokenizer) and figure
    runs, toks = load_runs(runs_csv), load_tokenizers(toks_csv)
    text = load_script("summary").document(runs, {}, toks)
    assert "trained on 4k text bytes" in text and "same amount of *text*" in text
    assert "| gpt L1-D16 | 4k text bytes |" in text
    equal_size = load_script("equal_size")
    fig = equal_size.draw(runs, figures.Style.of(runs, toks))
    assert fig._suptitle.get_text().startswith("Bits per byte at equal model size and equal text")
    ax = fig.axes[0]
    assert ax.get_title() == "gpt"
    assert ax.get_xticklabels()[0].get_text().replace("\n", " ").startswith("L1-D16")
    equal_size.plt.close(fig)


def test_equal_size_table_keeps_token_and_byte_budgets_apart() -> None:
    from symato.report.figures import budget_note, equal_size_table

    rows = [("symato", 300000, "300k tokens"), ("bytes", 300000, "300k tokens"),
            ("symato", 305152, "700k text bytes"), ("bytes", 700416, "700k text bytes"),
            ("sentencepiece", 155648, "700k text bytes")]
    runs = pd.DataFrame([{"tokenizer": t, "arch": "rwkv4", "n_layer": 2, "n_embd": 64,
                          "tokens": n, "budget": b, "loss": 1.0 + i / 10}
                         for i, (t, n, b) in enumerate(rows)])
    table = equal_size_table(runs)
    assert list(table.index.get_level_values("budget")) == ["300k tokens", "700k text bytes"]
    assert table.loc[("rwkv4", 2, 64, "700k text bytes")].notna().sum() == 3
    assert "same amount of *text*" in budget_note(["700k text bytes"])
    assert "same number of *tokens*" in budget_note(["300k tokens", "700k text bytes"])
    # an older runs.csv without a budget column still compares at equal tokens
    old = equal_size_table(runs.drop(columns="budget").iloc[:2])
    assert list(old.index.get_level_values("budget")) == ["300k tokens"]


def test_demo_config_compares_tokenizers_at_equal_text() -> None:
    """Every demo run has a budget in bytes of text: tokenizers and architectures are
    compared on the same text (a token budget would give denser tokenizers more)."""
    config = prepared(yaml.safe_load((REPO / "config.yaml").read_text(encoding="utf-8")))
    grid = next(g for g in config["train"]["grids"] if g.get("name") == "tokenizers")
    assert "tokens" not in grid and grid["bytes"]
    runs = expand_grid(config)
    assert runs and all(r["tokens"] is None and "-B" in r["run"] for r in runs)
