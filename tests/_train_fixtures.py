"""Tiny synthetic runs for the trainer/evaluation/DDP tests (shared helper, not a test).

Why synthetic shards: the trainer only sees token ids, so a made-up corpus with a
learnable pattern (token t is mostly followed by t + 1) tests training without waiting
for the data stages.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

from symato.data.tokenize import write_manifest, write_token_shard
from symato.io import write_json_atomic
from symato.run.settings import default_settings

VOCAB = 24  # id 0 is the document boundary (EOT) in these shards


def make_shards(root: Path, vocab_size: int = VOCAB, docs: int = 40, seed: int = 0) -> Path:
    """A shards dir with train/val splits of a learnable pattern; returns its path."""
    rng = np.random.default_rng(seed)
    files = []
    for split, n in (("train", docs), ("val", max(4, docs // 4))):
        ids, lists = [], []
        for d in range(n):
            length = int(rng.integers(30, 80))
            start = int(rng.integers(1, vocab_size))
            seq = (start + np.arange(length)) % (vocab_size - 1) + 1
            noise = rng.random(length) < 0.1
            seq[noise] = rng.integers(1, vocab_size, size=int(noise.sum()))
            ids.append(f"{split}-{d}")
            lists.append(np.concatenate([[0], seq]))
        path = root / split / "000.arrow"
        n_tokens = sum(len(t) for t in lists)
        write_token_shard(path, ids, lists, vocab_size, text_bytes=3 * n_tokens,
                          syllables=n_tokens // 2)
        files.append(path)
    write_manifest(root, files, "test")
    return root


def make_settings(tmp: Path, **over: Any) -> Path:
    """A complete settings.json for a tiny run over fresh synthetic shards."""
    shards = tmp / "shards"
    if not (shards / "manifest.json").exists():
        make_shards(shards)
    vocab = tmp / "vocab.json"
    if not vocab.exists():
        vocab.write_text(json.dumps({"kind": "test", "size": VOCAB}))
    values: dict[str, Any] = {
        "tokenizer": "test", "run": "gpt-L1-D16-T10k", "arch": "gpt", "n_layer": 1,
        "n_embd": 16, "head_size": 8, "ctx_len": 16, "batch_size": 8, "tokens": 2560,
        "steps": 20, "lr": 0.01, "lr_min": 0.001, "warmup": 0.1, "seed": 7,
        "eval_interval": 10, "eval_windows": 4, "checkpoint_steps": 5,
        "checkpoint_minutes": 0.0, "device": "cpu", "shards_dir": str(shards),
        "vocab_file": str(vocab),
        "max_epochs": 1000,  # tiny synthetic shards: the runs repeat them on purpose
    }  # fmt: skip
    s = default_settings(**{**values, **over})
    path = tmp / "settings.json"
    write_json_atomic(path, s)
    return path


def read_metrics(run_dir: Path) -> list[dict[str, Any]]:
    """The metrics.jsonl records of a run."""
    text = (run_dir / "metrics.jsonl").read_text(encoding="utf-8")
    return [json.loads(line) for line in text.splitlines() if line.strip()]


@pytest.fixture(autouse=True)
def restore_torch_globals() -> Iterator[None]:
    """The trainer sets process-wide torch state (threads, deterministic algorithms, seed);
    put it back so tests in other files run as they would alone."""
    threads = torch.get_num_threads()
    deterministic = torch.are_deterministic_algorithms_enabled()
    warn_only = torch.is_deterministic_algorithms_warn_only_enabled()
    rng = torch.get_rng_state()
    yield
    torch.set_num_threads(threads)
    torch.use_deterministic_algorithms(deterministic, warn_only=warn_only)
    torch.set_rng_state(rng)
