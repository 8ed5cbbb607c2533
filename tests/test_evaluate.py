"""``symato evaluate`` on hand-checkable examples.

A model whose logits are all zero predicts the uniform distribution, so every token
costs ln V nats: bits per byte must be log2(V) x predicted tokens / bytes, and greedy
restoration picks the lowest allowed marktone (0: no mark, no tone) for every slot.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import pandas as pd
import pytest
import torch
from _train_fixtures import (
    make_settings,
    restore_torch_globals,  # noqa: F401  (autouse fixture)
)

from symato.data.tokenize import write_manifest, write_token_shard
from symato.models import build_model
from symato.run.checkpoint import save_model
from symato.run.evaluate import METRIC_KEYS, main
from symato.run.train import main as train_main
from symato.text.tokenizer import Tokenizer, bytes_dict

TEXTS = ["ma ma mà", "Hà Nội là thủ đô.", "ma mà má"]


def _shards(root: Path, tok: Tokenizer) -> int:
    """Train and val shards of TEXTS; returns the val split's token count."""
    files, n_val = [], 0
    lists = [[tok.eot_id, *tok.encode(t)] for t in TEXTS]
    n_bytes = sum(len(t.encode()) for t in TEXTS)
    for split in ("train", "val"):
        path = root / split / "000.arrow"
        n = write_token_shard(path, [f"{split}{i}" for i in range(3)], lists, tok.vocab_size,
                              text_bytes=n_bytes, syllables=13)
        n_val = n
        files.append(path)
    write_manifest(root, files, "test")
    return n_val


def _uniform_run(tmp_path: Path, tok: Tokenizer) -> tuple[Path, int]:
    n_val = _shards(tmp_path / "shards", tok)
    model = build_model("gpt", vocab_size=tok.vocab_size, n_layer=1, n_embd=8, n_head=1,
                        ctx_len=8)
    with torch.no_grad():
        model.head.weight.zero_()  # all logits 0: the uniform distribution
    settings = {"tokenizer": "t", "run": "gpt-L1-D8-T1k", "arch": "gpt", "n_layer": 1,
                "n_embd": 8, "ctx_len": 8, "shards_dir": str(tmp_path / "shards")}
    meta = {"tokenizer": tok.to_dict(), "settings": settings, "train_tokens": 1000,
            "train_flops": 1e6, "tokens_per_second": 50.0, "step": 3, "backend": "none",
            "precision": "bf16", "device_name": "NVIDIA H200"}
    run = tmp_path / "run"
    save_model(run / "model.pt", model, meta)
    return run, n_val


def _stats(path: Path) -> Path:
    """Statistics where 'mà' is the most frequent 'ma' and 'là' the most frequent 'la'."""
    rows = [("ma", "ma", 0, 1), ("mà", "ma", 2, 10), ("má", "ma", 1, 3), ("là", "la", 2, 5)]
    pd.DataFrame(rows, columns=["syllable", "sym", "marktone", "count"]).to_parquet(path)
    return path


def test_uniform_model_bits_per_byte_and_restoration(tmp_path: Path) -> None:
    tok = Tokenizer.default()
    run, n_val = _uniform_run(tmp_path, tok)
    stats = _stats(tmp_path / "syllables.parquet")
    assert main(["--run", str(run), "--stats", str(stats), "--prompt", "Hà", "--sample-tokens",
                 "4", "--batch-size", "2"]) == 0  # fmt: skip
    m = json.loads((run / "metrics.json").read_text())
    assert set(METRIC_KEYS) <= set(m)
    n_bytes = sum(len(t.encode()) for t in TEXTS)
    V = tok.vocab_size
    assert m["loss_nats_per_token"] == pytest.approx(math.log(V))
    assert m["bits_per_byte"] == pytest.approx(math.log2(V) * (n_val - 1) / n_bytes)
    assert m["bits_per_syllable"] == pytest.approx(math.log2(V) * (n_val - 1) / 13)
    assert m["val_tokens_predicted"] == n_val - 1
    assert m["params_total"] > m["params_non_embedding"] > 0
    assert (m["train_tokens"], m["train_flops"], m["tokens_per_second"]) == (1000, 1e6, 50.0)
    # what training ran, copied from model.pt's meta (issue #12)
    assert (m["backend"], m["precision"], m["device_name"]) == ("none", "bf16", "NVIDIA H200")
    assert m["samples"][0]["text"].startswith("Hà")
    # Syllables: ma ma mà | Hà Nội là thủ đô | ma mà má = 11. Uniform greedy restoration
    # writes every syllable without marks: right for ma, ma, ma = 3 of 11.
    assert m["restoration_syllables"] == 11
    assert m["restoration_accuracy"] == pytest.approx(3 / 11)
    assert m["restoration_accuracy_split"] == m["restoration_accuracy"]  # no whole ids
    # The baseline picks ma -> mà, la -> là and marktone 0 for syms without statistics:
    # "mà mà mà" (1 right), "Ha Noi là thu đo" (1 right: là), "mà mà mà" (1 right).
    assert m["restoration_baseline_accuracy"] == pytest.approx(3 / 11)


def test_split_form_restoration_with_whole_syllable_ids(tmp_path: Path) -> None:
    """symato+N: the split-form score asks only for marktones after bare syms, so a
    uniform model restores as it does with plain symato (3 of 11); the whole-id score
    prefers any candidate that has a whole id (one token beats two at equal odds)."""
    from symato.text.vocab import build_vocab

    table = tmp_path / "syllables.parquet"
    pd.DataFrame({"syllable": ["mà"], "count": [10]}).to_parquet(table)
    tok = build_vocab("symato+1", syllables=table)  # one whole id: mà
    run, _ = _uniform_run(tmp_path, tok)
    assert main(["--run", str(run), "--sample-tokens", "0"]) == 0
    m = json.loads((run / "metrics.json").read_text())
    assert m["restoration_accuracy_split"] == pytest.approx(3 / 11)
    # whole ids: every ma slot becomes mà (right twice), every other slot unmarked (wrong)
    assert m["restoration_accuracy"] == pytest.approx(2 / 11)


def test_bytes_tokenizer_has_no_restoration(tmp_path: Path) -> None:
    tok = Tokenizer.from_dict(bytes_dict())
    run, _ = _uniform_run(tmp_path, tok)
    assert main(["--run", str(run), "--stats", str(_stats(tmp_path / "s.parquet"))]) == 0
    m = json.loads((run / "metrics.json").read_text())
    assert m["restoration_accuracy"] is None and m["restoration_baseline_accuracy"] is None
    assert "no marktone tokens" in m["restoration_note"]
    assert m["bits_per_byte"] == pytest.approx(math.log2(tok.vocab_size) * m[
        "val_tokens_predicted"] / m["val_bytes"])  # fmt: skip


def test_evaluate_a_trained_run(tmp_path: Path) -> None:
    """End to end: a run trained by `symato train` evaluates (vocab from the model file)."""
    tok = Tokenizer.default()
    _shards(tmp_path / "shards", tok)
    vocab = tmp_path / "vocab.json"
    tok.save(vocab)
    settings = make_settings(tmp_path, shards_dir=str(tmp_path / "shards"),
                             vocab_file=str(vocab), ctx_len=8, steps=5)  # fmt: skip
    run = tmp_path / "run"
    assert train_main(["--settings", str(settings), "--out", str(run)]) == 0
    assert main(["--run", str(run), "--restoration-syllables", "5"]) == 0
    m = json.loads((run / "metrics.json").read_text())
    assert m["train_tokens"] == 5 * 8 * 8 and m["restoration_syllables"] == 5
    assert 0 <= m["restoration_accuracy"] <= 1 and m["restoration_baseline_accuracy"] is None
    assert math.isfinite(m["bits_per_byte"]) and m["bits_per_byte"] > 0


def test_restoration_text_from_a_document_longer_than_the_budget(tmp_path: Path) -> None:
    from symato.data.loader import TokenDataset
    from symato.run.evaluate import val_documents

    tok = Tokenizer.default()
    doc = [tok.eot_id, *tok.encode("Hà Nội là thủ đô.\n" * 800)]
    files = []
    for split in ("train", "val"):
        path = tmp_path / split / "000.arrow"
        write_token_shard(path, ["d"], [doc], tok.vocab_size, text_bytes=1, syllables=1)
        files.append(path)
    write_manifest(tmp_path, files, "test")
    ds = TokenDataset(tmp_path, "val", 8)
    assert ds.num_tokens > 8 * 3 + 4096  # more than val_documents reads
    assert val_documents(ds, tok.eot_id, 3, tok) == ["Hà Nội là"]
    assert val_documents(ds, tok.eot_id, 5000, tok)[0].count("Hà Nội") > 300


def _brute_force_nll(model, stream: list[int], ctx_len: int, stride: int) -> float:
    """Each target scored by the window the strided reading gives it, one at a time."""
    total, start, done = 0.0, 0, 0
    while done < len(stream) - 1:
        window = stream[start:start + ctx_len + 1]
        logits = model(torch.tensor([window[:-1]]))[0].float()
        logp = torch.log_softmax(logits, -1)
        for j in range(len(window) - 1):
            if start + j + 1 > done:
                total -= float(logp[j, window[j + 1]])
                done = start + j + 1
        start += stride
    return total


@pytest.mark.parametrize("arch", ["gpt", "rwkv4"])
def test_overlapping_windows_and_stream_reading(tmp_path: Path, arch: str) -> None:
    from symato.data.loader import TokenDataset
    from symato.run.evaluate import _segment_bounds, split_nll, stream_nll

    tok = Tokenizer.default()
    _shards(tmp_path / "shards", tok)
    torch.manual_seed(0)
    model = build_model(arch, vocab_size=tok.vocab_size, n_layer=1, n_embd=16, n_head=2,
                        ctx_len=8, **({"wkv_backend": "torch"} if arch == "rwkv4" else {}))
    model.eval()
    val = TokenDataset(tmp_path / "shards", "val", ctx_len=8)
    stream = val.window(0, val.num_tokens).tolist()
    with torch.no_grad():
        for stride in (8, 4, 3):
            nll, count = split_nll(model, val, batch_size=3, stride=stride)
            assert count == len(stream) - 1
            assert nll == pytest.approx(_brute_force_nll(model, stream, 8, stride), rel=1e-5)
        if arch == "rwkv4":  # the stream: one pass with the state carried, in any chunking
            logp = torch.log_softmax(model(torch.tensor([stream[:-1]]))[0].float(), -1)
            full = -float(logp.gather(1, torch.tensor(stream[1:])[:, None]).sum())
            for chunk in (5, 1024):
                nll, count = stream_nll(model, val, segments=1, chunk=chunk)
                assert count == len(stream) - 1 and nll == pytest.approx(full, rel=1e-5)
            pieces = _segment_bounds(val, 3)
            assert 2 <= len(pieces) <= 3 and pieces[0][0] == 0 and pieces[-1][1] == len(stream)
            assert all(stream[a] == tok.eot_id for a, _ in pieces)  # each starts a document
            nll, count = stream_nll(model, val, segments=3)
            assert count == len(stream) - len(pieces)


def test_metrics_have_the_stream_column_for_rwkv_only(tmp_path: Path) -> None:
    tok = Tokenizer.default()
    _shards(tmp_path / "shards", tok)
    for arch in ("rwkv4", "gpt"):
        model = build_model(arch, vocab_size=tok.vocab_size, n_layer=1, n_embd=8, n_head=1,
                            ctx_len=8)
        settings = {"tokenizer": "t", "run": f"{arch}-L1-D8-T1k", "arch": arch, "n_layer": 1,
                    "n_embd": 8, "ctx_len": 8, "shards_dir": str(tmp_path / "shards")}
        meta = {"tokenizer": tok.to_dict(), "settings": settings}
        run = tmp_path / arch
        save_model(run / "model.pt", model, meta)
        assert main(["--run", str(run), "--restoration-syllables", "0"]) == 0
        m = json.loads((run / "metrics.json").read_text())
        assert m["window_stride"] == 4
        if arch == "rwkv4":
            assert m["bits_per_byte_stream"] > 0
        else:
            assert m["bits_per_byte_stream"] is None and "context limit" in m["stream_note"]


def _random_runs(tmp_path: Path, tok: Tokenizer) -> list[Path]:
    """Three saved models of different architectures on one set of shards."""
    _shards(tmp_path / "shards", tok)
    runs = []
    for i, arch in enumerate(("rwkv4", "gpt", "rwkv7")):
        torch.manual_seed(i)
        model = build_model(arch, vocab_size=tok.vocab_size, n_layer=1, n_embd=16,
                            n_head=2, ctx_len=8)
        settings = {"tokenizer": "t", "run": f"{arch}-L1-D16-T1k", "arch": arch,
                    "n_layer": 1, "n_embd": 16, "ctx_len": 8,
                    "shards_dir": str(tmp_path / "shards")}
        run = tmp_path / arch
        save_model(run / "model.pt", model, {"tokenizer": tok.to_dict(), "settings": settings})
        runs.append(run)
    return runs


def test_a_group_gives_each_run_the_metrics_it_gets_alone(tmp_path: Path) -> None:
    """One process for several runs (rules/eval.smk) changes no number: each run's
    metrics from the group file equal those of evaluating it alone."""
    from symato.run.evalgroup import unpack_group

    tok = Tokenizer.default()
    runs = _random_runs(tmp_path, tok)
    stats = _stats(tmp_path / "stats.parquet")
    common = ["--stats", str(stats), "--restoration-syllables", "8", "--prompt", "",
              "--sample-tokens", "4"]
    alone = {}
    for run in runs:
        assert main(["--run", str(run), "--out", str(tmp_path / f"{run.name}.json"), *common]) == 0
        alone[run] = json.loads((tmp_path / f"{run.name}.json").read_text())
    group = tmp_path / "group.json"
    args = [a for run in runs for a in ("--run", str(run))]
    assert main([*args, "--group-out", str(group), *common]) == 0
    for run in runs:
        unpack_group(group, run, run / "metrics.json")
        assert json.loads((run / "metrics.json").read_text()) == alone[run]
    assert alone[runs[0]]["restoration_syllables"] == 8


def test_one_broken_run_fails_only_its_own_metrics(tmp_path: Path) -> None:
    """A run whose model is damaged is recorded with its error; the others are scored,
    and unpacking the broken run raises that error."""
    from symato.errors import SymatoError
    from symato.run.evalgroup import unpack_group

    tok = Tokenizer.default()
    good, broken, _ = _random_runs(tmp_path, tok)
    (broken / "model.pt").write_bytes(b"not a model")
    group = tmp_path / "group.json"
    assert main(["--run", str(good), "--run", str(broken), "--group-out", str(group),
                 "--restoration-syllables", "0"]) == 0
    unpack_group(group, good, good / "metrics.json")
    assert json.loads((good / "metrics.json").read_text())["bits_per_byte"] > 0
    with pytest.raises(SymatoError, match=f"evaluation of {broken} failed"):
        unpack_group(group, broken, broken / "metrics.json")
    assert not (broken / "metrics.json").exists()
    with pytest.raises(SymatoError, match="has no run"):
        unpack_group(group, tmp_path / "other", tmp_path / "x.json")
    # without --group-out each run gets its metrics.json and the exit status says 1 failed
    (good / "metrics.json").unlink()
    assert main(["--run", str(good), "--run", str(broken), "--restoration-syllables", "0"]) == 1
    assert (good / "metrics.json").exists() and not (broken / "metrics.json").exists()


def test_projecting_only_scored_positions_matches_the_full_logits(tmp_path: Path) -> None:
    """model.project(model.features(x)) is model(x) for every architecture, so scoring
    only the positions a window predicts changes no number."""
    from symato.models.registry import ARCHITECTURES

    tok = Tokenizer.default()
    x = torch.randint(0, tok.vocab_size, (2, 8))
    for arch in ARCHITECTURES:
        torch.manual_seed(0)
        model = build_model(arch, vocab_size=tok.vocab_size, n_layer=1, n_embd=16,
                            n_head=2, ctx_len=8)
        with torch.no_grad():
            full = model(x)
            h = model.features(x)
            assert torch.equal(model.project(h), full), arch
            rows = torch.tensor([[True, False] * 4, [False, True] * 4])
            assert torch.allclose(model.project(h[rows]), full[rows], rtol=0, atol=1e-6), arch
