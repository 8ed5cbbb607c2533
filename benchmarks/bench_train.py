"""Training throughput (tokens/s) per architecture and size, through the real trainer.

Why through ``symato.run.train.Trainer``: the number that matters for planning a grid is
what a run actually achieves (data loading, AdamW, clipping included), not a bare
forward/backward. Synthetic shards with a given vocabulary size stand in for the
corpus, since throughput does not depend on the text.

    .venv/bin/python benchmarks/bench_train.py                 # the demo grid's sizes, CPU
    .venv/bin/python benchmarks/bench_train.py --device cuda --sizes L6-D512 L12-D768 \
        --ctx-len 1024 --batch-size 16 --vocab 2816
    .venv/bin/python benchmarks/bench_train.py --archs rwkv4 gpt rwkv7 llama \
        --sizes L6-D512 --ctx-len 1024 --head-size 64 --batch-size 2   # all four, one run

Prints a Markdown table (paste into docs/benchmarks.md) with the machine named and, per
row, what ran: the operator backend (``cpu``/``cuda`` kernel, ``torch`` loop, ``none``
for GPT), the precision and the device. ``--wkv-backend torch`` times the slow loop.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from symato.data.tokenize import write_manifest, write_token_shard
from symato.io import write_json_atomic
from symato.models import ARCHITECTURES
from symato.models.registry import ALIASES, canonical_name
from symato.run.grid import parse_size
from symato.run.precision import device_name
from symato.run.settings import default_settings
from symato.run.train import Trainer


def synthetic_shards(root: Path, vocab: int, tokens: int) -> None:
    """Random-token train/val shards (throughput does not depend on the content)."""
    rng = np.random.default_rng(0)
    files = []
    for split, n in (("train", tokens), ("val", max(tokens // 10, 4096))):
        docs = [np.concatenate([[0], rng.integers(1, vocab, size=999)]) for _ in range(n // 1000)]
        path = root / split / "000.arrow"
        write_token_shard(path, [f"{split}{i}" for i in range(len(docs))], docs, vocab,
                          text_bytes=3 * n, syllables=n // 2)
        files.append(path)
    write_manifest(root, files, "bench")


def settings_for(args: argparse.Namespace, arch: str, size: str, root: Path) -> dict:
    n_layer, n_embd = parse_size(size)
    return default_settings(
        tokenizer="bench", run=f"{arch}-{size}", arch=arch, n_layer=n_layer, n_embd=n_embd,
        head_size=args.head_size, ctx_len=args.ctx_len, batch_size=args.batch_size, tokens=1,
        steps=10**9, lr=1e-3, lr_min=1e-4, warmup=0, seed=0, compile=args.compile,
        eval_interval=0, eval_windows=1, checkpoint_steps=0, checkpoint_minutes=0,
        device=args.device, threads=args.threads, wkv_backend=args.wkv_backend,
        shards_dir=str(root / "shards"),
        vocab_file=str(root / "vocab.json"),
    )


def measure(settings: dict, out: Path, warmup: int, steps: int) -> tuple[float, dict, float, dict]:
    """(tokens/s, parameter counts, MFU or nan, what ran) over ``steps`` steps after
    ``warmup``; what ran = backend, precision and device name, as a run records them."""
    trainer = Trainer(settings, out, resume=False)
    for _ in range(max(1, warmup)):
        trainer.train_step()
    trainer.confirm_backend()
    sync = torch.cuda.synchronize if trainer.device.type == "cuda" else (lambda: None)
    sync()
    t0 = time.perf_counter()
    for _ in range(steps):
        trainer.train_step()
    sync()
    tok_s = steps * settings["batch_size"] * settings["ctx_len"] / (time.perf_counter() - t0)
    mfu = trainer.model.flops_per_token() * tok_s / trainer.peak if trainer.peak else float("nan")
    ran = {"backend": trainer.backend, "precision": trainer.precision,
           "device": device_name(trainer.device)}
    return tok_s, trainer.model.param_counts(), mfu, ran


def machine(device: str) -> str:
    if device == "cuda" and torch.cuda.is_available():
        return f"{torch.cuda.get_device_name()} (torch {torch.__version__})"
    cpu = platform.processor() or platform.machine()
    with contextlib.suppress(OSError):
        lines = Path("/proc/cpuinfo").read_text(encoding="utf-8").splitlines()
        names = [ln.split(":", 1)[1].strip() for ln in lines if ln.startswith("model name")]
        cpu = names[0] if names else cpu
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    return (f"CPU {cpu}, {os.cpu_count()} cores visible, load {load:.1f} at start "
            f"(torch {torch.__version__})")


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--archs", nargs="+", default=["rwkv4", "gpt"],
                   choices=[*ARCHITECTURES, *ALIASES], type=canonical_name)
    p.add_argument("--sizes", nargs="+", default=["L1-D32", "L2-D48", "L2-D64", "L3-D96"])
    p.add_argument("--vocab", type=int, default=2816, help="vocabulary size (symato: 2816)")
    p.add_argument("--ctx-len", type=int, default=128)
    p.add_argument("--batch-size", type=int, default=16)
    p.add_argument("--head-size", type=int, default=16,
                   help="head width of gpt, llama and rwkv7 (n_head = n_embd / head_size)")
    p.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--compile", action="store_true")
    p.add_argument("--wkv-backend", default="auto", choices=["auto", "cpu", "cuda", "torch"],
                   help="the RWKV operator backend (auto: the device's compiled kernel)")
    p.add_argument("--warmup", type=int, default=3)
    p.add_argument("--steps", type=int, default=10)
    p.add_argument("--rounds", type=int, default=1,
                   help="alternate the archs this many times; report the median round "
                        "(a shared machine's load then hits every arch alike)")
    args = p.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        tokens = max(200_000, 4 * args.batch_size * (args.ctx_len + 1))
        synthetic_shards(root / "shards", args.vocab, tokens)
        write_json_atomic(root / "vocab.json", {"kind": "bench"})
        print(f"machine: {machine(args.device)}; vocab {args.vocab}, ctx {args.ctx_len}, "
              f"batch {args.batch_size}, threads {args.threads}, compile {args.compile}")
        results: dict[tuple[str, str], list] = {}
        for _ in range(args.rounds):  # archs alternate within each round
            for size in args.sizes:
                for arch in args.archs:
                    s = settings_for(args, arch, size, root)
                    results.setdefault((arch, size), []).append(
                        measure(s, root / "run", args.warmup, args.steps))
        rounds = " (median) | rounds" if args.rounds > 1 else ""
        print(f"\n| arch | size | params (total / non-emb) | tokens/s{rounds} | MFU | backend "
              "| precision | device |")
        print("| --- | --- | --- | ---: |" + (" --- |" if rounds else "")
              + " ---: | --- | --- | --- |")
        for (arch, size), runs in results.items():
            tok_s = statistics.median(r[0] for r in runs)
            mfu = statistics.median(r[2] for r in runs)
            params, ran = runs[0][1], runs[0][3]
            mfu_text = "-" if mfu != mfu else f"{100 * mfu:.1f}%"
            each = f" | {', '.join(f'{r[0]:,.0f}' for r in runs)}" if rounds else ""
            print(f"| {arch} | {size} | {params['total']:,} / {params['non_embedding']:,} "
                  f"| {tok_s:,.0f}{each} | {mfu_text} | {ran['backend']} | {ran['precision']} "
                  f"| {ran['device']} |", flush=True)
        if hasattr(os, "getloadavg"):
            print(f"\nload average at the end: {os.getloadavg()[0]:.1f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
