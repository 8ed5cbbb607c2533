"""Whole syllables written in their split form during training (``split_syllables``)."""

from __future__ import annotations

import signal
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from _train_fixtures import (
    make_settings,
    read_metrics,
    restore_torch_globals,  # noqa: F401  (autouse fixture)
)
from test_train import _assert_same_run, _start, _train, _wait_for_steps

from symato.data.tokenize import tokenize_shard, write_manifest
from symato.errors import SymatoError
from symato.run.splitform import SplitForms
from symato.text.tokenizer import Tokenizer
from symato.text.vocab import build_vocab

TEXT = ("Hà Nội là thủ đô của nước Cộng hòa xã hội chủ nghĩa Việt Nam. Người Việt "
        "nói tiếng Việt, một ngôn ngữ có thanh điệu. Năm 2024, HÀ NỘI có hơn tám triệu dân.")


@pytest.fixture(scope="module")
def tok(tmp_path_factory: pytest.TempPathFactory) -> Tokenizer:
    """symato+200 whose most frequent syllables are those of TEXT (the rest from the grammar)."""
    from collections import Counter

    from symato.text.syllable import LETTER_RUN, compose, parse

    counts: Counter[str] = Counter()
    for m in LETTER_RUN.finditer(TEXT):
        syl = parse(m.group())
        if syl is not None:
            counts[compose(syl.sym, syl.mark, syl.tone)] += 1
    path = tmp_path_factory.mktemp("stats") / "syllables.parquet"
    pd.DataFrame({"syllable": list(counts), "count": list(counts.values())}).to_parquet(path)
    return build_vocab("symato+200", syllables=path)


def test_every_whole_id_split_decodes_to_the_same_text(tok: Tokenizer) -> None:
    ids = np.array(tok.encode(TEXT))
    forms = SplitForms(tok, 0.5)
    whole = forms.is_whole[ids]
    assert whole.sum() >= 5, "the text must hold whole-syllable ids"
    split = forms.expand(ids, whole)
    assert len(split) == len(ids) + whole.sum()
    assert tok.decode(split.tolist()) == TEXT
    assert not forms.is_whole[split].any()
    # the split form is exactly what the plain symato encoding writes for those syllables
    plain = build_vocab("symato")
    assert [tok.id_to_piece(i) for i in split] == [plain.id_to_piece(i) for i in
                                                    plain.encode(TEXT)]


def test_draws_are_fresh_deterministic_and_at_the_rate(tok: Tokenizer) -> None:
    ids = np.array(tok.encode(TEXT * 8))
    windows = np.lib.stride_tricks.sliding_window_view(ids, 33)[::7].copy()
    forms = SplitForms(tok, 0.3)
    a = forms.apply(windows, np.random.default_rng(5))
    b = forms.apply(windows, np.random.default_rng(5))
    assert a.shape == windows.shape and np.array_equal(a, b)
    rng = np.random.default_rng(5)
    assert not np.array_equal(forms.apply(windows, rng), forms.apply(windows, rng))
    many = np.repeat(windows[:1], 4000, axis=0)
    out = forms.apply(many, np.random.default_rng(1))
    first_whole = int(np.flatnonzero(forms.is_whole[windows[0]])[0])
    rate = (~forms.is_whole[out[:, first_whole]]).mean()  # that syllable written split
    assert abs(rate - 0.3) < 0.03


def test_zero_probability_changes_nothing_and_draws_nothing(tok: Tokenizer) -> None:
    windows = np.array([tok.encode(TEXT)[:20]])
    rng = np.random.default_rng(3)
    state = rng.bit_generator.state
    assert SplitForms(tok, 0.0).apply(windows, rng) is windows
    assert rng.bit_generator.state == state  # runs without splitting draw the same windows
    assert SplitForms(None, 0.0).apply(windows, rng) is windows


def test_needs_whole_syllables_and_a_probability_below_one() -> None:
    with pytest.raises(SymatoError, match="needs a symato\\+N vocabulary"):
        SplitForms(Tokenizer.default(), 0.1)
    with pytest.raises(SymatoError, match=r"in \[0, 1\)"):
        SplitForms(None, 1.0)


def _symato_plus_shards(root: Path, tok: Tokenizer) -> None:
    """Real symato+N shards and vocabulary where make_settings expects its synthetic ones."""
    docs = pd.DataFrame({"doc_id": [f"d{i}" for i in range(40)], "source": "t",
                         "text": [f"{TEXT} Số {i}." for i in range(40)]})
    root.mkdir(parents=True, exist_ok=True)
    cleans = {s: root / f"clean-{s}.parquet" for s in ("train", "val")}
    docs.iloc[:32].to_parquet(cleans["train"])
    docs.iloc[32:].to_parquet(cleans["val"])
    tok.save(root / "vocab.json")
    outs = {s: root / "shards" / s / "0.arrow" for s in ("train", "val")}
    tokenize_shard(cleans, root / "vocab.json", outs)
    write_manifest(root / "shards", list(outs.values()), tok.kind)


@pytest.mark.slow
def test_training_with_split_forms_resumes_exactly(tmp_path: Path, tok: Tokenizer) -> None:
    over = {"n_layer": 1, "n_embd": 32, "head_size": 16, "ctx_len": 32, "steps": 40,
            "checkpoint_steps": 5, "run": "gpt-L1-D32-T30k", "eval_interval": 20,
            "split_syllables": 0.3, "tokenizer": "symato+200"}
    for name in ("ref", "stopped", "plain"):
        _symato_plus_shards(tmp_path / name, tok)
    assert _train(make_settings(tmp_path / "ref", **over), tmp_path / "ref/run") == 0
    settings = make_settings(tmp_path / "stopped", **over)
    run = tmp_path / "stopped/run"
    proc = _start(settings, run)
    _wait_for_steps(proc, run, 12)
    proc.send_signal(signal.SIGTERM)
    proc.wait(timeout=60)
    assert read_metrics(run)[-1]["step"] < 40
    assert _train(settings, run, resume=True) == 0
    _assert_same_run(tmp_path / "ref/run", run)
    plain = make_settings(tmp_path / "plain", **{**over, "split_syllables": 0.0})
    assert _train(plain, tmp_path / "plain/run") == 0
    losses = [r["train_loss"] for r in read_metrics(tmp_path / "plain/run")]
    assert losses != [r["train_loss"] for r in read_metrics(tmp_path / "ref/run")]
