"""AdamW step time by implementation (per-tensor, foreach, fused) at the grid's sizes.

Why: the trainer picks one implementation for every device (``fused=True``,
``symato.run.train.Trainer._optimizer``); this measures the choice on the machine at
hand. Each step is gradient clipping plus ``optimizer.step()`` on the real models'
parameters (same two parameter groups as the trainer) with fixed random gradients.
The three implementations are timed in alternating rounds, median reported.

    .venv/bin/python benchmarks/bench_adamw.py                    # demo sizes, CPU
    .venv/bin/python benchmarks/bench_adamw.py --device cuda --sizes L4-D128 L8-D384

Prints a Markdown table (paste into docs/benchmarks.md).
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time

import torch

from symato.models import model_for_run
from symato.run.grid import parse_size
from symato.run.settings import default_settings

KINDS = {"per-tensor": {"foreach": False}, "foreach": {"foreach": True}, "fused": {"fused": True}}


def optimizer_for(model: torch.nn.Module, kind: dict) -> torch.optim.Optimizer:
    decay = [p for p in model.parameters() if p.ndim >= 2]
    rest = [p for p in model.parameters() if p.ndim < 2]
    groups = [{"params": decay, "weight_decay": 0.01}, {"params": rest, "weight_decay": 0.0}]
    return torch.optim.AdamW(groups, lr=1e-3, **kind)


def step_ms(model: torch.nn.Module, kind: dict, steps: int, device: torch.device) -> float:
    """Milliseconds per clip + AdamW step after 3 warm-up steps."""
    params = list(model.parameters())
    optimizer = optimizer_for(model, kind)
    sync = torch.cuda.synchronize if device.type == "cuda" else (lambda: None)
    for i in range(3 + steps):
        if i == 3:
            sync()
            t0 = time.perf_counter()
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        optimizer.step()
    sync()
    return (time.perf_counter() - t0) / steps * 1e3


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--archs", nargs="+", default=["rwkv4", "gpt"])
    p.add_argument("--sizes", nargs="+", default=["L1-D32", "L2-D48", "L2-D64", "L3-D96"])
    p.add_argument("--vocab", type=int, default=2816)
    p.add_argument("--head-size", type=int, default=16)
    p.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--steps", type=int, default=50)
    p.add_argument("--rounds", type=int, default=3)
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    print(f"torch {torch.__version__}, device {args.device}, threads {args.threads}, "
          f"{args.steps} steps x {args.rounds} alternating rounds, median")
    print("\n| arch | size | tensors | " + " | ".join(f"{k} (ms)" for k in KINDS)
          + " | fused / per-tensor |")
    print("| --- | --- | ---: | " + " | ".join("---:" for _ in KINDS) + " | ---: |")
    for arch in args.archs:
        for size in args.sizes:
            n_layer, n_embd = parse_size(size)
            s = default_settings(tokenizer="bench", arch=arch, n_layer=n_layer, n_embd=n_embd,
                                 tokens=1, shards_dir="-", vocab_file="-",
                                 head_size=args.head_size)
            torch.manual_seed(0)
            model = model_for_run(s, args.vocab).to(device)
            for param in model.parameters():
                param.grad = torch.randn_like(param)
            times: dict[str, list[float]] = {k: [] for k in KINDS}
            for r in range(args.rounds):
                order = list(KINDS) if r % 2 == 0 else list(reversed(KINDS))
                for name in order:
                    times[name].append(step_ms(model, KINDS[name], args.steps, device))
            med = {k: statistics.median(v) for k, v in times.items()}
            cells = " | ".join(f"{med[k]:.2f}" for k in KINDS)
            print(f"| {arch} | {size} | {len(list(model.parameters()))} | {cells} "
                  f"| {med['fused'] / med['per-tensor']:.2f} |", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
