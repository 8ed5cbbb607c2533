"""What a config's training grid costs: runs, tokens and training FLOPs, before you run it.

    .venv/bin/python scripts/grid_cost.py --configfile config-gpu.yaml \
        --manifests results/shards --flops-per-second 1e14

Why: a grid over tokenizers x architectures x sizes x budgets grows fast, and a byte
budget's token count depends on each tokenizer's bytes per token. This expands the grid
exactly as the workflow does (``config.yaml`` with ``--configfile`` merged over it, as
Snakemake merges them), takes bytes per token from tokenized shards' manifests (any
corpus tokenized with the same tokenizers; missing ones fall back to ``--bytes-per-token``)
and counts FLOPs with each model's own ``flops_per_token`` (6 x matmul parameters plus
attention), built on the ``meta`` device (no memory, no weights).

WSD sub-grids (``schedule: wsd``, docs/training.md) train each budget ladder as one stable
run plus one decay branch per budget: the table counts what is trained that way, and a
line after it says what the same budgets would cost as separate runs, and the saving.

Time is FLOPs / ``--flops-per-second`` (a sustained rate you measured, e.g. with
benchmarks/bench_train.py on your GPU): an estimate, not a measurement. Small models
reach far lower utilization than large ones, so give a rate measured at the grid's sizes.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections import defaultdict
from pathlib import Path

import torch
import yaml

REPO = Path(__file__).resolve().parents[1]


def merged_config(extra: list[Path]) -> dict:
    """config.yaml with each --configfile merged over it (mappings deep, lists whole)."""
    from symato.config import prepare

    def merge(a: dict, b: dict) -> dict:
        out = dict(a)
        for key, value in b.items():
            out[key] = merge(out[key], value) if isinstance(value, dict) and isinstance(
                out.get(key), dict) else value
        return out

    config = yaml.safe_load((REPO / "config.yaml").read_text(encoding="utf-8"))
    for path in extra:
        config = merge(config, yaml.safe_load(path.read_text(encoding="utf-8")))
    return prepare(config, REPO / "workflow" / "schemas" / "config.schema.yaml")


def bytes_per_token(manifests: Path | None, tokenizer: str, fallback: float) -> tuple[float, str]:
    """Train-split bytes per token from ``manifests/{tokenizer}/manifest.json``, or the fallback."""
    path = manifests / tokenizer / "manifest.json" if manifests else None
    if path and path.exists():
        train = json.loads(path.read_text(encoding="utf-8"))["splits"]["train"]
        return train["bytes"] / train["tokens"], str(path)
    return fallback, "--bytes-per-token"


def vocab_size(manifests: Path | None, tokenizer: str) -> int:
    """The vocabulary size recorded in the manifest, else what the tokenizer's name says."""
    path = manifests / tokenizer / "manifest.json" if manifests else None
    if path and path.exists():
        return int(json.loads(path.read_text(encoding="utf-8"))["vocab_size"])
    import re

    base = 2816  # the symato vocabulary
    if tokenizer == "bytes":
        return 257
    if (m := re.fullmatch(r"symato\+([0-9]+)", tokenizer)):
        return base + int(m.group(1))
    m = re.search(r"([0-9]+)$", tokenizer)  # symato-bpeV, sp-bpeV, sp-unigramV: V ids
    return int(m.group(1)) if m else base


def trained_tokens(tokens: int, settings: dict) -> int:
    """Tokens a run of ``tokens`` actually trains on: whole steps of batch x ctx tokens,
    as the trainer does (a small budget's last partial step counts whole)."""
    from symato.run.settings import steps_for

    return steps_for(tokens, settings) * settings["batch_size"] * settings["ctx_len"]


def main(argv: list[str]) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--configfile", type=Path, action="append", default=[])
    p.add_argument("--manifests", type=Path, help="folder of {tokenizer}/manifest.json")
    p.add_argument("--bytes-per-token", type=float, default=2.3,
                   help="for tokenizers without a manifest (default 2.3: symato on Vietnamese)")
    p.add_argument("--flops-per-second", type=float, help="sustained training FLOP/s, for hours")
    p.add_argument("--as-wsd", action="store_true",
                   help="cost every sub-grid with several budgets and no schedule of its own "
                        "as WSD decay branches (what `schedule: wsd` would save)")
    args = p.parse_args(argv)
    from symato.models import model_for_run
    from symato.run.grid import expand_grid

    config = merged_config(args.configfile)
    if args.as_wsd:
        as_wsd(config)
    runs = expand_grid(config)
    flops, tokens, count = defaultdict(float), defaultdict(float), defaultdict(int)
    saved_flops: dict[tuple[str, str], float] = defaultdict(float)
    wsd = Ladders()
    sources = {}
    for r in runs:
        s = r["settings"]
        if r["tokens"] is None:
            bpt, sources[r["tokenizer"]] = bytes_per_token(args.manifests, r["tokenizer"],
                                                           args.bytes_per_token)
            n_tokens = trained_tokens(max(1, round(r["text_bytes"] / bpt)), s)
        else:
            n_tokens = trained_tokens(r["tokens"], s)
        with torch.device("meta"):
            model = model_for_run(s, vocab_size(args.manifests, r["tokenizer"]))
        key = (r["arch"], f"L{r['n_layer']}-D{r['n_embd']}")
        own = wsd.add(r, n_tokens, model.flops_per_token(), key)
        flops[key] += model.flops_per_token() * own
        tokens[key] += own
        count[key] += 1
    for key, n_tokens, per_token in wsd.stables():
        flops[key] += per_token * n_tokens
        tokens[key] += n_tokens
    for key, separate in wsd.separate_flops.items():
        saved_flops[key] = separate - wsd.trained_flops(key)
    print(f"{len(runs)} runs; bytes per token from: "
          + ", ".join(f"{t} {src}" for t, src in sorted(sources.items())))
    rate = args.flops_per_second
    saving = bool(saved_flops)
    print("\n| arch | size | runs | tokens | training FLOPs |" + (" saved by WSD |" if saving
                                                                   else "")
          + (" hours |" if rate else ""))
    print("| --- | --- | ---: | ---: | ---: |" + (" ---: |" if saving else "")
          + (" ---: |" if rate else ""))
    for key in sorted(flops, key=lambda k: (k[0], flops[k])):
        hours = f" {flops[key] / args.flops_per_second / 3600:.1f} |" if args.flops_per_second \
            else ""
        saved = f" {saved_flops.get(key, 0.0):.3g} |" if saving else ""
        print(f"| {key[0]} | {key[1]} | {count[key]} | {tokens[key]:.3g} | {flops[key]:.3g} |"
              + saved + hours)
    total = sum(flops.values())
    print(f"\ntotal: {sum(count.values())} runs, {sum(tokens.values()):.3g} tokens, "
          f"{total:.3g} training FLOPs"
          + (f", {total / args.flops_per_second / 3600:.1f} hours at "
             f"{args.flops_per_second:.3g} FLOP/s" if args.flops_per_second else ""))
    print(extension_note(config, runs))
    if wsd.groups:
        print(wsd.summary())
    return 0


def as_wsd(config: dict) -> None:
    """Give every sub-grid with two or more budgets and no ``schedule`` ``schedule: wsd``."""
    for grid in config["train"]["grids"]:
        if "schedule" not in grid and len(grid.get("tokens") or grid.get("bytes") or []) > 1:
            grid["schedule"] = "wsd"


def extension_note(config: dict, runs: list[dict]) -> str:
    """The runs the learning-rate sweeps may add (rules/sweep.smk), not counted above:
    how many depends on where each sweep's best rate falls."""
    from symato.run.sweep import find_sweeps

    sweeps = find_sweeps(runs)
    limit = config["train"]["lr_bracket"]["max_extensions"]
    return (f"learning-rate sweeps: {len(sweeps)}; each may add up to {limit} run(s) of its "
            f"size (train.lr_bracket.max_extensions), up to {len(sweeps) * limit} runs not "
            "counted above")


class Ladders:
    """The WSD ladders of a grid: what their stable runs and decay branches train, and
    what the same budgets would train as separate runs (symato.run.wsd's rules)."""

    def __init__(self) -> None:
        # (tokenizer, stable run) -> [key, FLOPs per token, tokens per step, branch points]
        self.groups: dict[tuple[str, str], list] = {}
        self.separate_tokens = 0.0
        self.separate_flops: dict[tuple[str, str], float] = defaultdict(float)
        self.branch_tokens: dict[tuple[str, str], float] = defaultdict(float)
        self.branches = 0

    def add(self, r: dict, n_tokens: int, per_token: float, key: tuple[str, str]) -> int:
        """Tokens run ``r`` trains itself: all of them, or a branch's decay only."""
        from symato.run.settings import decay_steps_of

        stable = r.get("stable")
        if stable is None:
            return n_tokens
        s = r["settings"]
        per_step = s["batch_size"] * s["ctx_len"]
        steps = n_tokens // per_step
        own = decay_steps_of(steps, s["decay"]) * per_step
        group = self.groups.setdefault((r["tokenizer"], stable["run"]),
                                       [key, per_token, per_step, []])
        group[3].append(steps - decay_steps_of(steps, s["decay"]))
        self.separate_tokens += n_tokens
        self.separate_flops[key] += per_token * n_tokens
        self.branch_tokens[key] += own
        self.branches += 1
        return own

    def stables(self) -> list[tuple[tuple[str, str], int, float]]:
        """(key, tokens, FLOPs per token) of each stable run: to its last branch point."""
        return [(key, max(points) * per_step, per_token)
                for key, per_token, per_step, points in self.groups.values()]

    def trained_flops(self, key: tuple[str, str]) -> float:
        """FLOPs the ladders of ``key`` train as stable runs plus branches."""
        stable = sum(n * f for k, n, f in self.stables() if k == key)
        per_token = next(g[1] for g in self.groups.values() if g[0] == key)
        return stable + per_token * self.branch_tokens[key]

    def summary(self) -> str:
        """One paragraph: the ladders' cost both ways and what WSD saves."""
        trained_tokens = sum(n for _, n, _ in self.stables()) + sum(self.branch_tokens.values())
        separate = sum(self.separate_flops.values())
        trained = sum(self.trained_flops(k) for k in self.separate_flops)
        return (f"\nWSD: {len(self.groups)} stable runs with {self.branches} decay branches "
                f"train {trained_tokens:.3g} tokens, {trained:.3g} FLOPs; as separate runs "
                f"the same budgets would take {self.separate_tokens:.3g} tokens, "
                f"{separate:.3g} FLOPs: WSD saves {self.separate_tokens - trained_tokens:.3g} "
                f"tokens, {separate - trained:.3g} FLOPs "
                f"({100 * (1 - trained / separate):.0f}%)")


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
