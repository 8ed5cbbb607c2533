"""Inference cost and memory against context length, per architecture (issue #28).

Why: RWKV's claim is a recurrent state of fixed size, so each generated token costs the
same at any context and memory does not grow; a Transformer's KV cache, and the
attention over it, grow with the context. This measures the trade at one model size:
for each architecture and context length, the prompt's processing time (prefill), the
median time per generated token, the bytes of the state or KV cache, and the process's
peak memory.

Fairness: the Transformers decode through the preallocated KV cache
(symato/models/kvcache.py), sized once for prompt + generated tokens, not a cache grown
by concatenation. Every model prefills in chunks of ``PREFILL_CHUNK`` tokens through
``forward_step`` (the same path ``symato generate`` runs), so no model needs the
(T x T) attention matrix of a long prompt at once. Tokens are fixed random ids (the
work of generation without the sampling); weights are random (speed does not depend
on training).

Each (architecture, context) is measured in its own process (``python -m
symato.report.context --worker ...``), so the peak memory is that measurement's
alone; rounds go over every (context, architecture) in turn, so a load change on a
shared machine hits all alike, and the median round is reported. Used by
benchmarks/bench_context.py (the full sweep, docs/benchmarks.md) and by the
workflow's rule ``context_bench`` (rules/bench.smk, a short sweep for the report);
``plot`` draws the figure of both.
"""

from __future__ import annotations

import argparse
import inspect
import json
import os
import platform
import resource
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from typing import Any

import torch

from symato.errors import SymatoError

PREFILL_CHUNK = 512
WARMUP_STEPS = 2  # decode steps before the timed ones (first-call allocations)
FIELDS = ("arch", "context", "params", "non_embedding", "prefill_s", "token_ms",
          "state_bytes", "peak_bytes")


def build(arch: str, size: str, vocab: int, head_size: int, ctx_len: int) -> torch.nn.Module:
    """A model of ``size`` (``L6-D512``) with random weights; ``ctx_len`` only matters to
    GPT's learned positions, which must cover prompt + generated tokens."""
    from symato.models import build_model
    from symato.run.grid import parse_size

    n_layer, n_embd = parse_size(size)
    if n_embd % head_size:
        raise SymatoError(f"context bench: n_embd {n_embd} of {size} is not a multiple of "
                          f"head size {head_size}")
    torch.manual_seed(0)
    model = build_model(arch, vocab_size=vocab, n_layer=n_layer, n_embd=n_embd,
                        n_head=n_embd // head_size, ctx_len=ctx_len)
    g = torch.Generator().manual_seed(1)
    with torch.no_grad():  # zero-inited matrices get weights, so every path computes
        for p in model.parameters():
            p.add_(0.02 * torch.randn(p.shape, generator=g))
    return model.eval()


def state_bytes(state: Any) -> int:
    """Bytes held by a state: a KV cache's allocated buffers, or an RNN state's tensors."""
    if hasattr(state, "nbytes") and not isinstance(state, torch.Tensor):
        return int(state.nbytes)
    if isinstance(state, torch.Tensor):
        return state.nbytes
    if isinstance(state, (list, tuple)):
        return sum(state_bytes(s) for s in state)
    raise SymatoError(f"context bench: cannot size a state of type {type(state).__name__}")


def measure(arch: str, size: str, context: int, tokens: int, device: str = "cpu",
            vocab: int = 2816, head_size: int = 64, impl: str = "symato") -> dict[str, Any]:
    """One measurement (run it in a fresh process: the peak memory is the process's).

    ``impl`` is the runtime that decodes: ``symato`` (our ``forward_step``) or a peer of
    ``PEERS`` running the same weights, so the rows of one architecture differ only in
    the runtime.
    """
    model = build(arch, size, vocab, head_size, context + tokens + WARMUP_STEPS).to(device)
    counts = model.param_counts()
    init, step, size_of = runtime(model, arch, impl, device, context + tokens + WARMUP_STEPS)
    g = torch.Generator().manual_seed(2)
    ids = torch.randint(0, vocab, (1, context + tokens + WARMUP_STEPS), generator=g).to(device)
    with torch.inference_mode():
        state = init()
        sync(device)
        t0 = time.perf_counter()
        for lo in range(0, context, PREFILL_CHUNK):
            _, state = step(ids[:, lo : min(lo + PREFILL_CHUNK, context)], state)
        sync(device)
        prefill = time.perf_counter() - t0
        steps, cpu = [], []
        for t in range(context, context + tokens + WARMUP_STEPS):
            t0, c0 = time.perf_counter(), time.process_time()
            logits, state = step(ids[:, t : t + 1], state)
            logits.argmax()  # what sampling would read
            sync(device)
            steps.append(time.perf_counter() - t0)
            cpu.append(time.process_time() - c0)
    if device.startswith("cuda"):
        peak = torch.cuda.max_memory_allocated()
    else:  # ru_maxrss: kilobytes on Linux, bytes on macOS
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        peak *= 1 if sys.platform == "darwin" else 1024
    return {"arch": arch, "impl": impl, "context": context, "params": counts["total"],
            "non_embedding": counts["non_embedding"], "prefill_s": prefill,
            "token_ms": 1e3 * statistics.median(steps[WARMUP_STEPS:]),
            # the process's CPU time per token: what another job on a shared machine
            # disturbs least (with one thread it equals the wall time on a quiet one)
            "token_cpu_ms": 1e3 * statistics.median(cpu[WARMUP_STEPS:]),
            "state_bytes": size_of(state), "peak_bytes": int(peak)}


Runtime = tuple[Callable[[], Any], Callable[[torch.Tensor, Any], tuple[torch.Tensor, Any]],
                Callable[[Any], int]]


def runtime(model: torch.nn.Module, arch: str, impl: str, device: str, positions: int) -> Runtime:
    """``(init, step, size_of)`` for decoding ``model``'s weights with runtime ``impl``:
    ``init()`` is an empty state, ``step(ids (1, T), state) -> (logits, state)`` feeds a
    chunk, ``size_of(state)`` is the state's bytes."""
    if impl == "symato":
        if "max_len" in inspect.signature(model.init_state).parameters:
            # Transformers: one preallocated cache for the whole measurement
            return (lambda: model.init_state(1, max_len=positions), model.forward_step,
                    state_bytes)
        return lambda: model.init_state(1), model.forward_step, state_bytes  # fixed size
    if arch not in PEERS.get(impl, ()):
        raise SymatoError(f"context bench: no runtime {impl!r} for {arch} (peers: "
                          f"{ {k: list(v) for k, v in PEERS.items()} })")
    return _PEER_RUNTIMES[impl](model, arch, device)


def _rwkv_package(model: torch.nn.Module, arch: str, device: str) -> Runtime:
    """The ``rwkv`` package (ChatRWKV's runtime, TorchScript) on the weights ``symato
    export`` writes: the reference RNN runtime of RWKV-4 and RWKV-7."""
    import tempfile

    from symato.interop.rwkv_pth import rwkv_state_dict

    # read when rwkv.model is imported: this worker process imports it here first
    os.environ.update(RWKV_JIT_ON="1", RWKV_CUDA_ON="0")
    if arch == "rwkv7":
        os.environ["RWKV_V7_ON"] = "1"
    try:
        from rwkv.model import RWKV
    except ImportError as e:
        raise SymatoError("context bench: the rwkv peer needs the rwkv package "
                          "(pip install rwkv==0.8.32)") from e
    with tempfile.TemporaryDirectory() as tmp:
        stem = os.path.join(tmp, "model")
        torch.save(rwkv_state_dict(model), stem + ".pth")
        rt = RWKV(stem, strategy=f"{device.split(':')[0]} fp32")

    def step(ids: torch.Tensor, state: Any) -> tuple[torch.Tensor, Any]:
        return rt.forward(ids[0].tolist(), state)

    return lambda: None, step, state_bytes


def _transformers(model: torch.nn.Module, arch: str, device: str) -> Runtime:
    """``transformers``' own model class on the weights ``symato export --format hf``
    writes (symato/interop/weights.py), decoding as its ``generate`` does: a forward
    call per chunk or token with its default cache (``DynamicCache``, grown per step)."""
    from symato.interop.deps import require
    from symato.interop.weights import to_hf
    from symato.models import config_dict

    transformers = require("transformers")
    hf_state, hf_config = to_hf(arch, config_dict(model), model.state_dict())
    config = transformers.AutoConfig.for_model(**hf_config)
    hf = transformers.AutoModelForCausalLM.from_config(config)
    missing, unexpected = hf.load_state_dict(hf_state, strict=False)
    if unexpected or [k for k in missing if k != "lm_head.weight"]:
        raise SymatoError(f"context bench: {arch} weights do not fit transformers' "
                          f"{type(hf).__name__} (missing {missing[:3]}, unexpected "
                          f"{unexpected[:3]})")
    hf = hf.to(device).eval()

    def step(ids: torch.Tensor, cache: Any) -> tuple[torch.Tensor, Any]:
        out = hf(input_ids=ids, cache=cache, use_cache=True, logits_to_keep=1)
        return out.logits, out.cache

    return lambda: transformers.DynamicCache(config=config), step, _hf_cache_bytes


def _hf_cache_bytes(cache: Any) -> int:
    """Bytes of a ``transformers`` cache's keys and values (every layer)."""
    return sum(t.nbytes for layer in cache.layers for t in (layer.keys, layer.values)
               if isinstance(t, torch.Tensor))


# The reference runtimes measured beside ours on the same weights (``--peers``).
PEERS: dict[str, tuple[str, ...]] = {"rwkv": ("rwkv4", "rwkv7"),
                                     "transformers": ("gpt", "llama")}
_PEER_RUNTIMES: dict[str, Callable[[torch.nn.Module, str, str], Runtime]] = {
    "rwkv": _rwkv_package, "transformers": _transformers,
}


def runtimes_for(archs: list[str], peers: bool) -> list[tuple[str, str]]:
    """The (arch, runtime) pairs a sweep measures: ours for each, plus each peer's."""
    pairs = [(a, "symato") for a in archs]
    if peers:
        pairs += [(a, impl) for impl, covered in PEERS.items() for a in archs if a in covered]
    return pairs


def sync(device: str) -> None:
    if device.startswith("cuda"):
        torch.cuda.synchronize()


def sweep(archs: list[str], contexts: list[int], *, size: str, tokens: int, rounds: int = 1,
          device: str = "cpu", threads: int | None = None, vocab: int = 2816,
          head_size: int = 64, peers: bool = False,
          progress: Any = None) -> list[dict[str, Any]]:
    """The median over ``rounds`` of every (arch, runtime, context), each in its own
    process; rounds alternate over all of them. Returns one row per (arch, runtime,
    context): our runtime for every arch, and with ``peers`` each reference runtime of
    ``PEERS`` that covers it."""
    if not archs or not contexts or tokens < 1 or rounds < 1:
        raise SymatoError("context bench: needs archs, contexts, tokens >= 1 and rounds >= 1")
    pairs = runtimes_for(archs, peers)
    got: dict[tuple[str, str, int], list[dict[str, Any]]] = {}
    for r in range(rounds):
        for context in contexts:
            for arch, impl in pairs:
                opts = ["--size", size, "--tokens", str(tokens), "--device", device, "--vocab",
                        str(vocab), "--head-size", str(head_size), "--impl", impl]
                row = _run_worker([arch, str(context), *opts], threads,
                                  f"{series(arch, impl)} at context {context}")
                got.setdefault((arch, impl, context), []).append(row)
                if progress:
                    progress(f"round {r + 1}/{rounds} {series(arch, impl)} context {context}: "
                             f"{row['token_ms']:.2f} ms/token, prefill {row['prefill_s']:.2f} s")
    return [median_row(got[(a, i, c)]) for c in contexts for a, i in pairs]


def series(arch: str, impl: str = "symato") -> str:
    """A row's name in tables and legends: the architecture, and a peer runtime's name."""
    return arch if impl == "symato" else f"{arch} ({impl})"


def ours(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The rows of our runtime (files written before peers existed have no ``impl``)."""
    return [r for r in rows if r.get("impl", "symato") == "symato"]


def _run_worker(args: list[str], threads: int | None, what: str) -> Any:
    """Run ``python -m symato.report.context --worker ARGS`` in a fresh process and return
    the JSON of its last stdout line (peers print their own lines before it)."""
    env = dict(os.environ)  # the workers import this very package, installed or not
    root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    env["PYTHONPATH"] = os.pathsep.join(p for p in (root, env.get("PYTHONPATH")) if p)
    cmd = [sys.executable, "-m", "symato.report.context", "--worker", *args]
    if threads:
        env.update(OMP_NUM_THREADS=str(threads))
        cmd += ["--threads", str(threads)]
    done = subprocess.run(cmd, capture_output=True, text=True, env=env)
    if done.returncode:
        raise SymatoError(f"context bench: {what} failed (exit {done.returncode}):\n"
                          f"{done.stderr[-2000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def flat(arch: str, size: str, contexts: list[int], tokens: int, device: str = "cpu",
         vocab: int = 2816, head_size: int = 64, impl: str = "symato") -> list[dict[str, Any]]:
    """Time per generated token at each of ``contexts``, in ONE process, along one growing
    sequence: prefill to the first context, time ``tokens`` decode steps, prefill on to
    the next context, and so on.

    Why: separate processes place the same weights at other addresses, and on this CPU
    that alone moves a process's time per token by up to 20% (``measure``'s rows); within
    one process only the context changes, which is the question "does a token cost more
    after a longer context?" (issue #28's flatness goal). A context already passed by the
    decoded tokens is measured where the sequence is (``context`` says where).
    """
    contexts = sorted(contexts)
    total = contexts[-1] + len(contexts) * (tokens + WARMUP_STEPS)
    model = build(arch, size, vocab, head_size, total).to(device)
    init, step, size_of = runtime(model, arch, impl, device, total)
    ids = torch.randint(0, vocab, (1, total), generator=torch.Generator().manual_seed(2))
    ids, rows, pos = ids.to(device), [], 0
    with torch.inference_mode():
        state = init()
        for context in contexts:
            while pos < context:
                hi = min(pos + PREFILL_CHUNK, context)
                _, state = step(ids[:, pos:hi], state)
                pos = hi
            start, wall, cpu = pos, [], []
            for _ in range(tokens + WARMUP_STEPS):
                t0, c0 = time.perf_counter(), time.process_time()
                logits, state = step(ids[:, pos : pos + 1], state)
                logits.argmax()
                sync(device)
                wall.append(time.perf_counter() - t0)
                cpu.append(time.process_time() - c0)
                pos += 1
            rows.append({"arch": arch, "impl": impl, "context": start,
                         "token_ms": 1e3 * statistics.median(wall[WARMUP_STEPS:]),
                         "token_cpu_ms": 1e3 * statistics.median(cpu[WARMUP_STEPS:]),
                         "state_bytes": size_of(state)})
    return rows


def flat_sweep(archs: list[str], contexts: list[int], *, size: str, tokens: int,
               rounds: int = 1, device: str = "cpu", threads: int | None = None,
               vocab: int = 2816, head_size: int = 64, peers: bool = False
               ) -> list[dict[str, Any]]:
    """``flat`` for every (arch, runtime), one process per round (rounds alternate over
    them); per context the median over rounds, and per (arch, runtime) ``spread``: the
    largest time per token over the smallest, across the contexts."""
    pairs = runtimes_for(archs, peers)
    got: dict[tuple[str, str], list[list[dict[str, Any]]]] = {}
    for _ in range(rounds):
        for arch, impl in pairs:
            opts = ["--size", size, "--tokens", str(tokens), "--device", device, "--vocab",
                    str(vocab), "--head-size", str(head_size), "--impl", impl]
            got.setdefault((arch, impl), []).append(_run_worker(
                [arch, ",".join(map(str, contexts)), *opts, "--flat"], threads,
                f"{series(arch, impl)} in one process"))
    out = []
    for pair in pairs:
        runs = got[pair]
        rows = [median_row([run[i] for run in runs]) for i in range(len(runs[0]))]
        times = [r["token_ms"] for r in rows]
        out += [{**r, "spread": max(times) / min(times)} for r in rows]
    return out


def flat_markdown(rows: list[dict[str, Any]]) -> str:
    """One line per (arch, runtime): ms per token at each context, and the spread."""
    names = list(dict.fromkeys(series(r["arch"], r["impl"]) for r in rows))
    contexts = list(dict.fromkeys(r["context"] for r in rows))
    lines = ["| arch | " + " | ".join(f"{c:,}" for c in contexts) + " | largest / smallest |",
             "| --- |" + " ---: |" * (len(contexts) + 1)]
    for name in names:
        mine = [r for r in rows if series(r["arch"], r["impl"]) == name]
        lines.append(f"| {name} | " + " | ".join(f"{r['token_ms']:.2f}" for r in mine)
                     + f" | {mine[0]['spread']:.2f} |")
    return "\n".join(lines)


def median_row(rows: list[dict[str, Any]]) -> dict[str, Any]:
    """Per field, the median over rounds (times vary; sizes are equal in every round)."""
    out = dict(rows[0])
    for key in ("prefill_s", "token_ms", "token_cpu_ms", "peak_bytes"):
        if key not in rows[0]:  # rows written before the key existed
            continue
        out[key] = statistics.median(r[key] for r in rows)
    out["rounds"] = len(rows)
    return out


def machine(device: str) -> str:
    """The machine in words: the GPU, or the CPU model, cores and load."""
    if device.startswith("cuda") and torch.cuda.is_available():
        return f"{torch.cuda.get_device_name()} (torch {torch.__version__})"
    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as f:
            names = [ln.split(":", 1)[1].strip() for ln in f if ln.startswith("model name")]
        cpu = names[0] if names else cpu
    except OSError:
        pass
    return (f"CPU {cpu}, {os.cpu_count()} cores visible, load {os.getloadavg()[0]:.1f} at "
            f"start (torch {torch.__version__})")


def crossover(rows: list[dict[str, Any]], fast: str = "rwkv7", slow: str = "llama") -> str:
    """A sentence: the context from which ``fast`` costs less per token than ``slow`` at
    every longer measured context too (one cheaper point among dearer ones is noise, not
    a crossover), or that it did not within the range."""
    by = {(r["arch"], r["context"]): r["token_ms"] for r in ours(rows)}
    contexts = sorted({c for a, c in by if a == fast} & {c for a, c in by if a == slow})
    if not contexts:
        return f"{fast} and {slow} were not both measured"
    cheaper = [by[(fast, c)] < by[(slow, c)] for c in contexts]
    if not cheaper[-1]:
        last = contexts[-1]
        return (f"{fast} was not faster per token than {slow} at the longest context "
                f"measured, {last:,} tokens ({by[(fast, last)]:.2f} ms against "
                f"{by[(slow, last)]:.2f} ms)")
    first = len(cheaper)
    while first > 0 and cheaper[first - 1]:
        first -= 1
    c = contexts[first]
    when = "already at" if first == 0 else "from"
    return (f"{fast} generates a token faster than {slow} {when} {c:,} tokens of context on "
            f"({by[(fast, c)]:.2f} ms against {by[(slow, c)]:.2f} ms there)")


def markdown(rows: list[dict[str, Any]]) -> str:
    """The table for docs/benchmarks.md and summary.md."""
    lines = ["| arch | params (non-emb.) | context | prefill s | ms / token | CPU ms / token "
             "| state or KV cache | peak memory |",
             "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |"]
    for r in rows:
        name = series(r["arch"], r.get("impl", "symato"))
        lines.append(f"| {name} | {r['params'] / 1e6:.2f}M ({r['non_embedding'] / 1e6:.2f}M)"
                     f" | {r['context']:,} | {r['prefill_s']:.2f} | {r['token_ms']:.2f} | "
                     f"{_ms(r.get('token_cpu_ms'))} | "
                     f"{mib(r['state_bytes'])} | {mib(r['peak_bytes'])} |")
    return "\n".join(lines)


def _ms(value: float | None) -> str:
    return "-" if value is None else f"{value:.2f}"


def mib(n: float) -> str:
    return f"{n / 2**20:,.2f} MiB"


def plot(rows: list[dict[str, Any]], title: str = "") -> Any:
    """The figure: time per generated token and memory (state/KV cache, solid; process
    peak, dotted) against context, log axes, one colour per architecture; a peer runtime
    of the same architecture is dashed in its colour (its state is the same size, so
    only its process peak is drawn)."""
    from symato.report import figures

    plt = figures.pyplot()
    fig, (a1, a2) = plt.subplots(1, 2, figsize=(9, 3.8), layout="constrained")
    archs = list(dict.fromkeys(r["arch"] for r in rows))
    pairs = list(dict.fromkeys((r["arch"], r.get("impl", "symato")) for r in rows))
    for arch, impl in pairs:
        mine = sorted((r for r in rows if (r["arch"], r.get("impl", "symato")) == (arch, impl)),
                      key=lambda r: r["context"])
        x, name = [r["context"] for r in mine], series(arch, impl)
        color, ours = f"C{archs.index(arch)}", impl == "symato"
        a1.plot(x, [r["token_ms"] for r in mine], marker="o" if ours else "x",
                ls="-" if ours else "--", color=color, label=name)
        if ours:
            a2.plot(x, [r["state_bytes"] / 2**20 for r in mine], marker="o", color=color,
                    label=f"{arch} state / KV cache")
        a2.plot(x, [r["peak_bytes"] / 2**20 for r in mine], ls=":" if ours else "-.",
                marker="." if ours else "x", color=color, label=f"{name} process peak")
    for ax, ylabel in ((a1, "ms per generated token"), (a2, "MiB")):
        ax.set_xscale("log", base=2)
        ax.set_yscale("log")
        ax.set_xlabel("context (tokens)")
        ax.set_ylabel(ylabel)
    a1.set_title("time per token")
    a2.set_title("memory")
    a1.legend(fontsize=7)
    a2.legend(fontsize=6)
    if title:
        fig.suptitle(title, fontsize=9)
    return fig


def _worker(argv: list[str]) -> int:
    """``python -m symato.report.context --worker ARCH CONTEXT ...``: one measurement,
    printed as one JSON line."""
    p = argparse.ArgumentParser(prog="symato.report.context")
    p.add_argument("--worker", nargs=2, metavar=("ARCH", "CONTEXT"), required=True,
                   help="CONTEXT: a number (or with --flat a comma list)")
    p.add_argument("--size", required=True)
    p.add_argument("--tokens", type=int, required=True)
    p.add_argument("--device", default="cpu")
    p.add_argument("--vocab", type=int, default=2816)
    p.add_argument("--head-size", type=int, default=64)
    p.add_argument("--threads", type=int)
    p.add_argument("--impl", default="symato", help="runtime: symato or a peer of PEERS")
    p.add_argument("--flat", action="store_true",
                   help="CONTEXT is a comma list measured along one sequence (flat)")
    args = p.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    arch = args.worker[0]
    if args.flat:
        contexts = [int(c) for c in args.worker[1].split(",")]
        print(json.dumps(flat(arch, args.size, contexts, args.tokens, args.device, args.vocab,
                              args.head_size, args.impl)))
        return 0
    row = measure(arch, args.size, int(args.worker[1]), args.tokens, args.device, args.vocab,
                  args.head_size, args.impl)
    print(json.dumps(row))
    return 0


if __name__ == "__main__":
    sys.exit(_worker(sys.argv[1:]))
