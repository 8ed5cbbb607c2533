"""TokenDataset over real memory-mapped Arrow shards written by ``write_token_shard``."""

from __future__ import annotations

import json
import pickle
from pathlib import Path

import numpy as np
import pyarrow as pa
import pytest

from symato.data.loader import TokenDataset
from symato.data.tokenize import write_manifest, write_token_shard
from symato.errors import SymatoError

EOT = 0


def _make_split(root: Path, split: str, docs_per_shard: list[list[np.ndarray]],
                vocab_size: int) -> np.ndarray:
    """Write shards under root/split and return the reference concatenated stream."""
    stream = []
    for k, docs in enumerate(docs_per_shard):
        tokens = [np.concatenate([[EOT], d]) for d in docs]
        ids = [f"{split}-{k}-{i}" for i in range(len(docs))]
        write_token_shard(root / split / f"{k:03d}.arrow", ids, tokens, vocab_size,
                          text_bytes=10 * len(docs), syllables=3 * len(docs))
        stream.extend(tokens)
    return np.concatenate(stream).astype(np.int64) if stream else np.empty(0, np.int64)


@pytest.fixture
def corpus(tmp_path: Path) -> tuple[Path, np.ndarray]:
    rng = np.random.default_rng(0)
    shards = [[rng.integers(1, 300, size=rng.integers(1, 40)) for _ in range(n)]
              for n in (7, 1, 12)]
    stream = _make_split(tmp_path, "train", shards, 300)
    _make_split(tmp_path, "val", [[rng.integers(1, 300, size=5)]], 300)
    files = sorted(tmp_path.glob("*/*.arrow"))
    write_manifest(tmp_path, files, "test")
    return tmp_path, stream


def test_manifest_counts(corpus: tuple[Path, np.ndarray]) -> None:
    root, stream = corpus
    manifest = json.loads((root / "manifest.json").read_text())
    train = manifest["splits"]["train"]
    assert train["tokens"] == len(stream)
    assert train["documents"] == 20
    assert train["bytes"] == 200 and train["syllables"] == 60
    assert train["shards"] == ["train/000.arrow", "train/001.arrow", "train/002.arrow"]
    assert manifest["dtype"] == "uint16" and manifest["vocab_size"] == 300
    assert manifest["splits"]["val"]["tokens"] == 6


def test_random_batch_is_stream_windows(corpus: tuple[Path, np.ndarray]) -> None:
    root, stream = corpus
    ds = TokenDataset(root, "train", ctx_len=16)
    assert ds.num_tokens == len(stream) and ds.vocab_size == 300
    assert ds.manifest["documents"] == 20
    batch = ds.random_batch(64, np.random.default_rng(1))
    assert batch.shape == (64, 17) and batch.dtype == np.int64
    windows = np.lib.stride_tricks.sliding_window_view(stream, 17)
    for row in batch:  # every row is some contiguous window of the stream
        assert (windows == row).all(axis=1).any()
    again = ds.random_batch(64, np.random.default_rng(1))
    np.testing.assert_array_equal(batch, again)


def test_window_crosses_shards(corpus: tuple[Path, np.ndarray]) -> None:
    root, stream = corpus
    ds = TokenDataset(root, "train", ctx_len=4)
    for start in range(len(stream) - 40):
        np.testing.assert_array_equal(ds.window(start, 40), stream[start:start + 40])


@pytest.mark.parametrize("ctx_len", [1, 5, 16])
@pytest.mark.parametrize("batch_size", [1, 3])
def test_sequential_targets_once(corpus: tuple[Path, np.ndarray], ctx_len: int,
                                 batch_size: int) -> None:
    root, stream = corpus
    ds = TokenDataset(root, "train", ctx_len=ctx_len)
    targets, inputs_before = [], []
    windows = 0
    for tokens, mask in ds.sequential_batches(batch_size):
        assert tokens.shape[1] == ctx_len + 1 and mask.shape == (tokens.shape[0], ctx_len)
        assert tokens.shape[0] <= batch_size
        windows += tokens.shape[0]
        targets.append(tokens[:, 1:][mask])
        inputs_before.append(tokens[:, :-1][mask])
        assert (tokens[:, 1:][~mask] == 0).all()
    assert windows == len(ds)
    np.testing.assert_array_equal(np.concatenate(targets), stream[1:])
    np.testing.assert_array_equal(np.concatenate(inputs_before), stream[:-1])


@pytest.mark.parametrize(("ctx_len", "stride"), [(1, 1), (5, 2), (16, 8), (16, 16), (16, 5)])
@pytest.mark.parametrize("batch_size", [1, 4])
def test_strided_windows_score_every_target_once_with_context(
        corpus: tuple[Path, np.ndarray], ctx_len: int, stride: int, batch_size: int) -> None:
    root, stream = corpus
    ds = TokenDataset(root, "train", ctx_len=ctx_len)
    scored: list[int] = []  # stream index of each scored target
    start = 0
    for tokens, mask in ds.strided_batches(batch_size, stride):
        assert tokens.shape[0] <= batch_size and mask.shape == (tokens.shape[0], ctx_len)
        for row, m in zip(tokens, mask, strict=True):
            length = min(ctx_len + 1, len(stream) - start)
            np.testing.assert_array_equal(row[:length], stream[start:start + length])
            for j in np.flatnonzero(m):
                scored.append(start + j + 1)
                assert start == 0 or j >= ctx_len - stride  # enough context
            start += stride
    assert scored == list(range(1, len(stream)))
    if stride == ctx_len:  # disjoint windows are the sequential pass
        seq = [t[:, 1:][m] for t, m in ds.sequential_batches(batch_size)]
        strided = [t[:, 1:][m] for t, m in ds.strided_batches(batch_size, stride)]
        np.testing.assert_array_equal(np.concatenate(seq), np.concatenate(strided))
    with pytest.raises(SymatoError, match="stride"):
        next(ds.strided_batches(batch_size, ctx_len + 1))


@pytest.mark.parametrize(("start", "stop"), [(0, 3), (2, 7), (5, None), (4, 10**6), (3, 3)])
def test_sequential_range_is_a_slice_of_the_pass(corpus: tuple[Path, np.ndarray], start: int,
                                                 stop: int | None) -> None:
    """Windows [start, stop) (one process's evaluation share) are those of the full pass."""
    root, _ = corpus
    ds = TokenDataset(root, "train", ctx_len=5)
    full_tokens, full_masks = (np.concatenate(a) for a in zip(*ds.sequential_batches(4),
                                                               strict=True))
    parts = list(ds.sequential_batches(2, start, stop))
    tokens = np.concatenate([t for t, _ in parts]) if parts else np.zeros((0, 6), np.int64)
    masks = np.concatenate([m for _, m in parts]) if parts else np.zeros((0, 5), bool)
    np.testing.assert_array_equal(tokens, full_tokens[start:stop])
    np.testing.assert_array_equal(masks, full_masks[start:stop])


def test_pickles_by_path(corpus: tuple[Path, np.ndarray]) -> None:
    root, _ = corpus
    ds = TokenDataset(root, "train", ctx_len=8)
    blob = pickle.dumps(ds)
    assert len(blob) < 1000  # the path, not the tokens
    clone = pickle.loads(blob)
    np.testing.assert_array_equal(clone.random_batch(4, np.random.default_rng(3)),
                                  ds.random_batch(4, np.random.default_rng(3)))


def test_uint32_vocab(tmp_path: Path) -> None:
    ids = [np.array([EOT, 70000, 65536, 1])]
    write_token_shard(tmp_path / "train" / "a.arrow", ["d"], ids, 70001)
    write_manifest(tmp_path, [tmp_path / "train" / "a.arrow"], "big")
    with pa.memory_map(str(tmp_path / "train" / "a.arrow")) as src:
        assert pa.ipc.open_file(src).schema.field("tokens").type == pa.list_(pa.uint32())
    ds = TokenDataset(tmp_path, "train", ctx_len=3)
    np.testing.assert_array_equal(ds.random_batch(1, np.random.default_rng(0))[0], ids[0])


def test_errors_name_the_path(corpus: tuple[Path, np.ndarray], tmp_path: Path) -> None:
    root, _ = corpus
    with pytest.raises(SymatoError, match=r"manifest not found: .*nowhere"):
        TokenDataset(tmp_path / "nowhere", "train", 8)
    with pytest.raises(SymatoError, match="no split 'test'"):
        TokenDataset(root, "test", 8)
    with pytest.raises(SymatoError, match=r"fewer than ctx_len \+ 1 = 7"):
        TokenDataset(root, "val", 6)
    (root / "train" / "001.arrow").unlink()
    with pytest.raises(SymatoError, match=r"token shard not found: .*001\.arrow"):
        TokenDataset(root, "train", 8)


def test_out_of_range_ids_rejected(tmp_path: Path) -> None:
    with pytest.raises(SymatoError, match="'bad' has ids outside"):
        write_token_shard(tmp_path / "x.arrow", ["bad"], [[0, 300]], 300)
    assert not (tmp_path / "x.arrow").exists()
