"""RNN-mode generation speed: our RWKV-7 against the ``rwkv`` package on the same weights.

Why: RWKV's selling point at inference is a constant cost per generated token. Our
model's ``forward_step`` is what ``symato generate`` and ``symato restore`` run, so it
should be no slower than the authors' runtime (``rwkv`` 0.8.32, ``RWKV_V7_ON=1``,
TorchScript) on the same exported weights. Both feed the same fixed token sequence one
token at a time (the work of greedy generation, without the sampling), in one process
with the same torch threads; rounds alternate ours / theirs, so a load change on a
shared machine hits both, and the median round of each is reported. The last logits of
both are compared, to show that the two computed the same thing.

``RWKV_V7_ON`` must be set before ``rwkv.model`` is imported, so this script sets it
first; run it as its own process.

    .venv/bin/python benchmarks/bench_rnn.py                       # L6-D512, head 64
    .venv/bin/python benchmarks/bench_rnn.py --size L12-D768 --threads 2

Prints a Markdown table (paste into docs/benchmarks.md) with the machine named.
"""

from __future__ import annotations

import os

os.environ.update(RWKV_V7_ON="1", RWKV_JIT_ON="1", RWKV_CUDA_ON="0")

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_train import machine

from symato.interop.rwkv_pth import rwkv_state_dict
from symato.models import build_model
from symato.run.grid import parse_size


def ours(model, tokens: list[int], state):
    """(wall, CPU) seconds to feed ``tokens`` one by one through ``forward_step``; the
    last logits; the state."""
    with torch.inference_mode():
        t0, c0 = time.perf_counter(), time.process_time()
        for t in tokens:
            logits, state = model.forward_step(torch.tensor([[t]]), state)
        dt = (time.perf_counter() - t0, time.process_time() - c0)
    return dt, logits[0, -1].float(), state


def theirs(runtime, tokens: list[int], state):
    """The same through the ``rwkv`` package's RNN mode."""
    t0, c0 = time.perf_counter(), time.process_time()
    for t in tokens:
        logits, state = runtime.forward([t], state)
    return (time.perf_counter() - t0, time.process_time() - c0), logits.float(), state


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--size", default="L6-D512")
    p.add_argument("--head-size", type=int, default=64)
    p.add_argument("--vocab", type=int, default=2816, help="vocabulary size (symato: 2816)")
    p.add_argument("--tokens", type=int, default=200, help="timed tokens per round")
    p.add_argument("--warmup", type=int, default=20)
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--backend", default="auto", help="our wkv_backend (auto|cpu|torch)")
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    n_layer, n_embd = parse_size(args.size)
    torch.manual_seed(0)
    model = build_model("rwkv7", vocab_size=args.vocab, n_layer=n_layer, n_embd=n_embd,
                        n_head=n_embd // args.head_size, ctx_len=1024,
                        wkv_backend=args.backend)  # fmt: skip
    g = torch.Generator().manual_seed(1)
    with torch.no_grad():  # the zero-inited matrices get weights, so every path computes
        for prm in model.parameters():
            prm.add_(0.02 * torch.randn(prm.shape, generator=g))
    model.eval()
    tokens = torch.randint(0, args.vocab, (args.warmup + args.tokens,), generator=g).tolist()
    from rwkv.model import RWKV as Runtime

    mine, other = [], []
    with tempfile.TemporaryDirectory() as tmp:
        stem = str(Path(tmp) / "model")
        torch.save(rwkv_state_dict(model), stem + ".pth")
        runtime = Runtime(stem, strategy="cpu fp32")
        print(f"machine: {machine('cpu')}; rwkv7 {args.size} head {args.head_size}, vocab "
              f"{args.vocab}, threads {args.threads}, our backend {args.backend}, "
              f"{args.tokens} tokens x {args.rounds} rounds", flush=True)
        _, _, s_ours = ours(model, tokens[: args.warmup], None)
        _, _, s_theirs = theirs(runtime, tokens[: args.warmup], None)
        timed = tokens[args.warmup :]
        for _ in range(args.rounds):  # each round continues the sequence further
            dt, a, s_ours = ours(model, timed, s_ours)
            mine.append([len(timed) / x for x in dt])
            dt, b, s_theirs = theirs(runtime, timed, s_theirs)
            other.append([len(timed) / x for x in dt])
        diff = float((a - b).abs().max())
    # per round: tokens/s by the wall clock and by this process's CPU time (the CPU
    # time is what a busy shared machine disturbs least)
    med = {name: [statistics.median(r[i] for r in rounds) for i in (0, 1)]
           for name, rounds in (("ours", mine), ("theirs", other))}  # fmt: skip
    print("\n| implementation | tokens/s (wall, median) | tokens/s (CPU time, median) | "
          "ratio wall / CPU |")
    print("| --- | ---: | ---: | ---: |")
    ratio = [med["ours"][i] / med["theirs"][i] for i in (0, 1)]
    print(f"| symato RWKV7.forward_step | {med['ours'][0]:,.1f} | {med['ours'][1]:,.1f} | "
          f"{ratio[0]:.2f}x / {ratio[1]:.2f}x |")
    print(f"| rwkv 0.8.32 (RWKV_V7_ON, TorchScript) | {med['theirs'][0]:,.1f} | "
          f"{med['theirs'][1]:,.1f} | 1.00x |")
    print("\nrounds (wall tokens/s): ours " + ", ".join(f"{r[0]:.1f}" for r in mine)
          + "; theirs " + ", ".join(f"{r[0]:.1f}" for r in other))
    n_fed = args.warmup + args.rounds * args.tokens
    print(f"\nmax |logit difference| after {n_fed} tokens: {diff:.2e}; load average at the "
          f"end {os.getloadavg()[0]:.1f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
