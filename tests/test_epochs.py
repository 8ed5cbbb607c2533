"""Repeated epochs: the unique subset, the epoch order, resume mid-epoch, the grid's
``unique_bytes`` runs and their runs.csv columns (docs/training.md "Repeated epochs").

The shards are real: a small Vietnamese text encoded by real tokenizers (``bytes`` and
``symato``, built without data), so the unique subset is chosen on decoded text.
"""

from __future__ import annotations

import json
import os
import signal
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from _train_fixtures import read_metrics, restore_torch_globals  # noqa: F401 (fixture)
from hypothesis import given, settings
from hypothesis import strategies as st

from symato.data.loader import TokenDataset, document_key, unique_subset
from symato.data.tokenize import write_manifest, write_token_shard
from symato.errors import SymatoError
from symato.io import write_json_atomic
from symato.run.checkpoint import load_model
from symato.run.grid import expand_grid, run_name
from symato.run.settings import check_passes, default_settings
from symato.run.train import EXIT_PREEMPTED, Trainer
from symato.text.tokenizer import Tokenizer
from symato.text.vocab import build_vocab

WORDS = ("tiếng", "Việt", "là", "ngôn", "ngữ", "của", "người", "dân", "nước", "ta", "học",
         "sinh", "trường", "mới", "đẹp", "quá", "hôm", "nay", "trời", "mưa")


def _docs(n: int = 60, seed: int = 0) -> list[tuple[str, str]]:
    """(doc_id, text) pairs of random Vietnamese words, 5 to 40 words each."""
    rng = np.random.default_rng(seed)
    return [(f"doc-{i}", " ".join(rng.choice(WORDS, size=int(rng.integers(5, 40)))) + ".")
            for i in range(n)]


def _shards(root: Path, tok: Tokenizer, name: str, docs: list[tuple[str, str]]) -> Path:
    """Train/val shards of ``docs`` (val: the last 8) encoded by ``tok``, and its vocab."""
    files = []
    for split, part in (("train", docs[:-8]), ("val", docs[-8:])):
        lists = [np.array([tok.eot_id, *tok.encode(text)]) for _, text in part]
        path = root / "shards" / split / "000.arrow"
        write_token_shard(path, [d for d, _ in part], lists, tok.vocab_size,
                          text_bytes=sum(len(t.encode()) for _, t in part))
        files.append(path)
    write_manifest(root / "shards", files, name)
    tok.save(root / "vocab.json")
    return root


@pytest.fixture(scope="module")
def corpora(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    docs = _docs()
    return {name: _shards(tmp_path_factory.mktemp(name), build_vocab(name), name, docs)
            for name in ("bytes", "symato")}


def _decoder(root: Path):
    tok = Tokenizer(json.loads((root / "vocab.json").read_text()), source="test")
    return lambda row: len(tok.decode_bytes(row[1:].tolist()))


def test_unique_subset_is_the_same_text_for_every_tokenizer(corpora: dict[str, Path]) -> None:
    docs = dict(_docs())
    subsets = {name: unique_subset(root / "shards", 700, _decoder(root))
               for name, root in corpora.items()}
    a, b = subsets["bytes"], subsets["symato"]
    assert (a.documents, a.text_bytes, a.digest) == (b.documents, b.text_bytes, b.digest)
    assert a.tokens > b.tokens  # same text, other tokens: bytes spends one id per byte
    # the documents are the first of the SHA-256 order of the train split's ids
    train_ids = sorted(list(docs)[:-8], key=document_key)
    chosen = train_ids[:a.documents]
    assert sum(len(docs[d].encode()) for d in chosen) == a.text_bytes >= 700
    assert sum(len(docs[d].encode()) for d in chosen[:-1]) < 700  # the shortest prefix


def test_unique_subset_larger_than_the_split_is_an_error(corpora: dict[str, Path]) -> None:
    root = corpora["bytes"]
    with pytest.raises(SymatoError, match=r"holds only \d+ bytes of text in 52 documents"):
        unique_subset(root / "shards", 10**7, _decoder(root))


@settings(max_examples=25, deadline=None)
@given(seed=st.integers(0, 2**31), unique=st.integers(300, 3000), step=st.integers(0, 40),
       batch=st.integers(1, 9))
def test_epochs_visit_every_window_once_in_a_seeded_order(
        corpora: dict[str, Path], seed: int, unique: int, step: int, batch: int) -> None:
    root = corpora["symato"]
    ds = TokenDataset(root / "shards", "train", 8)
    ds.restrict(unique_subset(root / "shards", unique, _decoder(root)))
    per_epoch = ds.epoch_windows()
    windows = {tuple(ds.window(i * 8, 9)) for i in range(per_epoch)}
    seen = np.concatenate([ds.epoch_batch(s, batch, seed) for s in range(step + 1)])
    for e in range(len(seen) // per_epoch):  # every full epoch: each window exactly once
        epoch = seen[e * per_epoch:(e + 1) * per_epoch]
        assert sorted(map(tuple, epoch)) == sorted(windows)
    # an epoch's order follows from (seed, epoch) alone: a fresh dataset draws it again
    again = TokenDataset(root / "shards", "train", 8)
    again.restrict(unique_subset(root / "shards", unique, _decoder(root)))
    assert np.array_equal(again.epoch_batch(step, batch, seed), ds.epoch_batch(step, batch, seed))
    if per_epoch > 1:
        first = [tuple(w) for w in again.epoch_batch(0, per_epoch, seed)]
        second = [tuple(w) for w in again.epoch_batch(1, per_epoch, seed)]
        assert sorted(first) == sorted(second)


def _settings(root: Path, out: Path, **over: Any) -> Path:
    values: dict[str, Any] = {
        "tokenizer": "symato", "run": "gpt-L1-D16-B6k-U1500", "arch": "gpt", "n_layer": 1,
        "n_embd": 16, "head_size": 8, "ctx_len": 16, "batch_size": 4, "tokens": 1344,
        "steps": 21, "lr": 0.01, "lr_min": 0.001, "warmup": 0.1, "seed": 7,
        "eval_interval": 10, "eval_windows": 4, "checkpoint_steps": 0,
        "checkpoint_minutes": 0.0, "device": "cpu", "shards_dir": str(root / "shards"),
        "vocab_file": str(root / "vocab.json")}
    s = {**default_settings(**{**values, **over}), "text_bytes": 6000, "unique_bytes": 1500}
    path = out / "settings.json"
    write_json_atomic(path, s)
    return path


class _Interrupted(Trainer):
    """A trainer that sends itself SIGTERM after ``stop_at`` steps (a preemption)."""

    stop_at = 0

    def train_step(self):  # type: ignore[no-untyped-def]
        out = super().train_step()
        if self.step == self.stop_at:
            os.kill(os.getpid(), signal.SIGTERM)
        return out


def test_repeated_run_resumes_bitwise_mid_epoch(corpora: dict[str, Path], tmp_path: Path) -> None:
    import torch

    from symato.run.settings import load_settings

    root = corpora["symato"]
    ref = _settings(root, tmp_path)
    assert Trainer(load_settings(ref), tmp_path / "ref", resume=False).run() == 0
    trainer = _Interrupted(load_settings(ref), tmp_path / "cut", resume=False)
    per_epoch = trainer.train_ds.epoch_windows()
    trainer.stop_at = per_epoch // 4 + 1  # a step inside the first or second epoch
    assert (trainer.stop_at * 4) % per_epoch != 0, "the cut must fall mid-epoch"
    assert trainer.run() == EXIT_PREEMPTED
    assert Trainer(load_settings(ref), tmp_path / "cut", resume=True).run() == 0
    (a, meta), (b, _) = load_model(tmp_path / "ref"), load_model(tmp_path / "cut")
    for key, value in a.state_dict().items():
        assert torch.equal(value, b.state_dict()[key]), key
    assert [r["train_loss"] for r in read_metrics(tmp_path / "ref")] == \
        [r["train_loss"] for r in read_metrics(tmp_path / "cut")]
    # the record: unique text, and epochs = tokens seen / unique tokens
    assert meta["unique_bytes"] >= 1500 and meta["unique_documents"] >= 1
    assert meta["epochs"] == pytest.approx(21 * 4 * 16 / meta["unique_tokens"])
    assert meta["epochs"] > 2
    assert read_metrics(tmp_path / "ref")[-1]["epoch"] == pytest.approx(meta["epochs"])


def _config(**grid: Any) -> dict[str, Any]:
    from _workflow import prepared

    return prepared({"tokenizers": ["symato", "bytes"], "train": {"grids": [
        {"name": "rep", "tokenizers": "all", "archs": ["rwkv4"], "sizes": ["L1-D32"], **grid}]}})


def test_grid_names_repeated_runs_and_keeps_fresh_ones(tmp_path: Path) -> None:
    runs = expand_grid(_config(bytes=[10000, 30000], unique_bytes=[10000, 30000, 50000]),
                       str(tmp_path))
    names = sorted({r["run"] for r in runs})
    # (10k, 10k) and (30k, 30k) are the fresh runs; (30k from 10k) repeats; 50k is no run
    assert names == ["rwkv4-L1-D32-B10k", "rwkv4-L1-D32-B30k", "rwkv4-L1-D32-B30k-U10k"]
    rep = next(r for r in runs if r["run"].endswith("-U10k"))
    assert rep["unique_bytes"] == rep["settings"]["unique_bytes"] == 10000
    fresh = next(r for r in runs if r["run"] == "rwkv4-L1-D32-B30k")
    assert "unique_bytes" not in fresh["settings"]
    assert run_name("rwkv4", 1, 32, text_bytes=300000, unique_bytes=300000) == "rwkv4-L1-D32-B300k"


def test_grid_refuses_unique_text_beyond_the_split(tmp_path: Path) -> None:
    from symato.run.grid import check_budgets

    runs = expand_grid(_config(bytes=[30000], unique_bytes=[20000]), str(tmp_path))
    manifest = tmp_path / "shards" / "bytes" / "manifest.json"
    manifest.parent.mkdir(parents=True)
    manifest.write_text(json.dumps({"vocab_size": 260, "splits": {
        "train": {"bytes": 15000, "tokens": 15000}}}))
    with pytest.raises(SymatoError, match=r"unique text of 20000 bytes is more than the "
                       r"training text, which holds 15000 bytes"):
        check_budgets(runs, tmp_path)
    with pytest.raises(SymatoError, match=r"'unique_bytes' .* needs budgets in bytes"):
        expand_grid(_config(tokens=[30000], unique_bytes=[20000]), str(tmp_path))


def test_repeated_runs_skip_the_max_epochs_guard() -> None:
    s = {"tokenizer": "t", "run": "r", "text_bytes": 9000, "unique_bytes": 1000}
    assert check_passes(s, {"bytes": 5000, "tokens": 2000}, "m", "w") == 9
    with pytest.raises(SymatoError, match="max_epochs"):
        check_passes({"tokenizer": "t", "run": "r", "text_bytes": 9000},
                     {"bytes": 5000, "tokens": 2000}, "m", "w")


def test_collect_writes_the_repetition_columns(tmp_path: Path) -> None:
    from symato.report.collect import run_row

    def run(name: str, settings: dict[str, Any], metrics: dict[str, Any]) -> Path:
        d = tmp_path / "symato" / name
        d.mkdir(parents=True)
        (d / "settings.json").write_text(json.dumps({"run": name, **settings}))
        (d / "metrics.json").write_text(json.dumps({
            "tokenizer": "symato", "arch": "rwkv4", "run": name, "params_total": 1000,
            "train_tokens": 9000, "bits_per_byte": 2.0, **metrics}))
        return d

    rep = run_row(run("rwkv4-L1-D32-B30k-U10k", {"text_bytes": 30000, "unique_bytes": 10000},
                      {"unique_tokens": 3100, "unique_bytes": 10400, "epochs": 9000 / 3100}))
    assert (rep["unique_tokens"], rep["unique_bytes"]) == (3100, 10000)  # bytes asked for
    assert rep["epochs"] == pytest.approx(9000 / 3100)
    assert rep["budget"] == "30k text bytes from 10k unique"
    fresh = run_row(run("rwkv4-L1-D32-B30k", {"text_bytes": 30000}, {}))
    assert (fresh["unique_tokens"], fresh["unique_bytes"], fresh["epochs"]) == (9000, 30000, 1)
    assert fresh["budget"] == "30k text bytes"
    stale = run("rwkv4-L1-D32-B100k-U10k", {"text_bytes": 100000, "unique_bytes": 10000}, {})
    with pytest.raises(SymatoError, match="without 'unique_tokens'; rerun its evaluation"):
        run_row(stale)


def test_run_settings_job_resolves_and_checks_a_repeated_run(tmp_path: Path) -> None:
    """The workflow's run_settings job (`symato settings`) writes unique_bytes through, and
    is the first job to refuse unique text beyond a split that did not exist at parse time."""
    from symato.run.settings import command_args, load_settings
    from symato.run.settings import main as settings_main

    runs = expand_grid(_config(bytes=[30000], unique_bytes=[10000, 20000]), str(tmp_path))
    manifest = tmp_path / "shards" / "symato" / "manifest.json"
    manifest.parent.mkdir(parents=True)
    manifest.write_text(json.dumps({"vocab_size": 2816, "splits": {
        "train": {"bytes": 15000, "tokens": 5000}}}))
    by_name = {r["run"]: r for r in runs if r["tokenizer"] == "symato"}
    out = tmp_path / "ok.json"
    assert settings_main(["--out", str(out),
                          *command_args(by_name["rwkv4-L1-D32-B30k-U10k"]["settings"])]) == 0
    s = load_settings(out)
    assert (s["text_bytes"], s["unique_bytes"], s["tokens"]) == (30000, 10000, 10000)
    with pytest.raises(SymatoError, match="unique text of 20000 bytes is more than the training "
                       "text, which holds 15000 bytes"):
        settings_main(["--out", str(tmp_path / "no.json"),
                       *command_args(by_name["rwkv4-L1-D32-B30k-U20k"]["settings"])])
