"""Inference cost and memory against context length: RWKV-4, RWKV-7, GPT, Llama (issue #28).

Why: RWKV's case against the Transformer is at inference: a state of fixed size, so a
generated token costs the same at any context and memory does not grow, while a
Transformer's KV cache and its attention over it grow with the context. This measures
that trade at one model size (the method, the fairness rules and the figure are in
symato/report/context.py): prefill time, median time per generated token, state or
KV-cache bytes and the process's peak memory, one process per (architecture, context),
rounds alternated, the machine named.

    .venv/bin/python benchmarks/bench_context.py                     # L6-D512, 256..16k
    .venv/bin/python benchmarks/bench_context.py --size L2-D128 --contexts 256 1024 4096 16384 \\
        --tokens 32 --rounds 3 --markdown --json ctx.json --figure ctx.png
    .venv/bin/python benchmarks/bench_context.py --device cuda --contexts 256 1024 4096 16384 65536

``--peers`` adds the reference runtimes on the same weights (``context.PEERS``): the
``rwkv`` package (TorchScript) for RWKV-4 and RWKV-7 on the weights ``symato export``
writes, and ``transformers`` (its own models and default cache, as its ``generate``
runs them) for GPT and Llama on the weights ``symato export --format hf`` writes.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from symato.io import atomic_path
from symato.models.registry import ARCHITECTURES
from symato.report import context


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--size", default="L6-D512", help="layers and width (default L6-D512)")
    p.add_argument("--archs", nargs="+", default=list(ARCHITECTURES),
                   help="architectures (default: every one in the registry)")
    p.add_argument("--contexts", nargs="+", type=int, default=[256, 1024, 4096, 16384])
    p.add_argument("--tokens", type=int, default=16, help="generated tokens timed (median)")
    p.add_argument("--rounds", type=int, default=1, help="rounds over every measurement")
    p.add_argument("--device", default="cpu")
    p.add_argument("--threads", type=int, help="torch threads per measurement")
    p.add_argument("--vocab", type=int, default=2816, help="vocabulary size (symato: 2816)")
    p.add_argument("--head-size", type=int, default=64)
    p.add_argument("--peers", action="store_true",
                   help="also the reference runtimes (rwkv package, transformers)")
    p.add_argument("--one-process", action="store_true",
                   help="instead: each architecture's contexts along one sequence in one "
                        "process (the flatness of time per token, context.flat)")
    p.add_argument("--markdown", action="store_true", help="print the Markdown table")
    p.add_argument("--json", help="write the rows and the machine here")
    p.add_argument("--figure", help="write the figure here (PNG)")
    args = p.parse_args()
    where = context.machine(args.device)
    print(f"machine: {where}; {args.size}, head size {args.head_size}, vocab {args.vocab}, "
          f"{args.tokens} tokens x {args.rounds} rounds, threads {args.threads or 'default'}",
          flush=True)
    if args.one_process:
        return one_process(args, where)
    rows = context.sweep(args.archs, args.contexts, size=args.size, tokens=args.tokens,
                         rounds=args.rounds, device=args.device, threads=args.threads,
                         vocab=args.vocab, head_size=args.head_size, peers=args.peers,
                         progress=lambda line: print(line, file=sys.stderr, flush=True))
    if args.markdown:
        print("\n" + context.markdown(rows) + "\n")
    print(context.crossover(rows) + f"; load average at the end {os.getloadavg()[0]:.1f}")
    if args.json:
        with atomic_path(args.json) as tmp, open(tmp, "w", encoding="utf-8") as f:
            json.dump({"machine": where, "size": args.size, "tokens": args.tokens,
                       "rows": rows}, f, indent=1)
    if args.figure:
        fig = context.plot(rows, f"{args.size} on {where.split(',')[0]}")
        with atomic_path(args.figure) as tmp:
            fig.savefig(tmp, format="png", dpi=150)
    return 0


def one_process(args: argparse.Namespace, where: str) -> int:
    """``--one-process``: time per token at every context along one sequence, per
    architecture (and peer), the spread across contexts; the table and the JSON."""
    rows = context.flat_sweep(args.archs, args.contexts, size=args.size, tokens=args.tokens,
                              rounds=args.rounds, device=args.device, threads=args.threads,
                              vocab=args.vocab, head_size=args.head_size, peers=args.peers)
    print("\n" + context.flat_markdown(rows) + "\n")
    print(f"load average at the end {os.getloadavg()[0]:.1f}")
    if args.json:
        with atomic_path(args.json) as tmp, open(tmp, "w", encoding="utf-8") as f:
            json.dump({"machine": where, "size": args.size, "tokens": args.tokens,
                       "one_process": True, "rows": rows}, f, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
