"""Data-stage benchmarks: tokenize MB/s per core, 1 vs 2 cores, no-op dry run, loader RSS.

Usage: ``.venv/bin/python benchmarks/bench_data.py [--mb 4] [--rss-gb 1.07] [--skip ...]``

Why each number:
- tokenize MB/s per core: the one data stage that runs per (tokenizer x shard), so its
  single-core speed times cores is the stage's throughput on a big corpus.
- data stages at --cores 1 vs 2: shows the per-shard jobs actually run in parallel.
- no-op ``snakemake -n``: the cost of asking "anything to do?" on a finished run.
- TokenDataset RSS: the loader memory-maps shards; its private (anonymous) memory must
  stay flat when the corpus grows 16x (here to >= 1 GB of tokens). File-backed resident
  pages (RssFile) are shared page cache mapped by the windows touched (the kernel maps
  whole cached folios around each fault); they are reported too, and are reclaimable.

The corpus is tests/data/pipeline_vi.txt, paragraphs numbered to stay unique (dedup),
repeated to the requested size. Everything runs in a temp folder that is removed.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import yaml

REPO = Path(__file__).resolve().parents[1]
SNAKEMAKE = Path(sys.executable).with_name("snakemake")
SOURCE = REPO / "tests" / "data" / "pipeline_vi.txt"


def corpus_paragraphs(megabytes: float) -> list[str]:
    """Unique Vietnamese paragraphs totalling about ``megabytes`` MB of UTF-8."""
    base = [p.strip() for p in SOURCE.read_text(encoding="utf-8").split("\n\n") if p.strip()]
    out, size, i = [], 0, 0
    while size < megabytes * 1e6:
        para = f"Đoạn số {i}. {base[i % len(base)]}"
        out.append(para)
        size += len(para.encode("utf-8")) + 2
        i += 1
    return out


def bench_tokenize(tmp: Path, megabytes: float) -> dict[str, float]:
    """Single-process tokenize throughput (MB of text per second) per tokenizer."""
    from symato import Tokenizer
    from symato.data.tokenize import tokenize_shard
    from symato.text.vocab import build_vocab

    texts = corpus_paragraphs(megabytes)
    clean = tmp / "clean.parquet"
    pq.write_table(pa.table({"doc_id": [f"b:{i}" for i in range(len(texts))],
                             "source": ["b"] * len(texts), "text": texts}), clean)
    empty = tmp / "empty.parquet"  # all of it as the train split
    pq.write_table(pa.table({"doc_id": [], "source": [], "text": []},
                            schema=pq.read_schema(clean)), empty)
    mb = sum(len(t.encode("utf-8")) for t in texts) / 1e6
    vocabs = {"symato": Tokenizer.default(), "bytes": build_vocab("bytes")}
    result = {"text_mb": round(mb, 2)}
    for name, tok in vocabs.items():
        path = tmp / f"{name}.json"
        tok.save(path)
        outs = {s: tmp / name / s / "x.arrow" for s in ("train", "val")}
        start, cpu = time.perf_counter(), time.process_time()
        tokenize_shard({"train": clean, "val": empty}, path, outs)
        # per core = per CPU-second of this single-threaded process (robust to load)
        result[f"{name}_mb_per_cpu_s"] = round(mb / (time.process_time() - cpu), 2)
        result[f"{name}_mb_per_wall_s"] = round(mb / (time.perf_counter() - start), 2)
    return result


def _cpu_children() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def _snakemake(work: Path, *args: str) -> tuple[float, float]:
    """(wall seconds, CPU seconds of snakemake and all its jobs) of one invocation.

    CPU time is reported beside wall time because the benchmark machine may be shared:
    under load, wall time measures the neighbours as much as the workflow.
    """
    start, cpu = time.perf_counter(), _cpu_children()
    proc = subprocess.run([str(SNAKEMAKE), "-s", str(REPO / "Snakefile"), "--directory",
                           str(work), "--configfile", str(work / "config.yaml"), *args],
                          capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        raise SystemExit(f"snakemake {args} failed:\n{proc.stderr[-3000:]}")
    return time.perf_counter() - start, _cpu_children() - cpu


def bench_pipeline(tmp: Path, megabytes: float, shards: int, repeats: int) -> dict[str, Any]:
    """Wall time of `snakemake data` at --cores 1 and 2, and of a no-op dry run.

    The two core counts alternate ``repeats`` times from scratch and the best wall time of
    each is kept, so a burst of load from other users hits both sides alike.
    """
    result: dict[str, Any] = {}
    config = {"corpus": {"sources": [{"name": "vi", "format": "text",
                                      "paths": ["input/*.txt"]}], "shards": shards},
              "tokenizers": ["symato", "bytes"]}
    text = "\n\n".join(corpus_paragraphs(megabytes)) + "\n"
    walls: dict[int, list[float]] = {1: [], 2: []}
    cpus: dict[int, list[float]] = {1: [], 2: []}
    for _ in range(repeats):
        for cores in (1, 2):
            work = tmp / f"pipe{cores}"
            shutil.rmtree(work, ignore_errors=True)
            (work / "input").mkdir(parents=True)
            (work / "input" / "vi.txt").write_text(text, encoding="utf-8")
            (work / "config.yaml").write_text(yaml.safe_dump(config), encoding="utf-8")
            wall, cpu = _snakemake(work, "--cores", str(cores), "data")
            walls[cores].append(round(wall, 1))
            cpus[cores].append(round(cpu, 1))
    for cores in (1, 2):
        result[f"data_cores{cores}_s"] = walls[cores]
        result[f"data_cores{cores}_cpu_s"] = cpus[cores]
    result["speedup_2_vs_1_best"] = round(min(walls[1]) / min(walls[2]), 2)
    result.update(parallel_share(tmp / "pipe1"))
    noop = [_snakemake(tmp / "pipe2", "--cores", "2", "-n", "data") for _ in range(5)]
    result["noop_dry_run_s"] = round(statistics.median(w for w, _ in noop), 2)
    result["noop_dry_run_cpu_s"] = round(statistics.median(c for _, c in noop), 2)
    return result


def parallel_share(work: Path) -> dict[str, Any]:
    """Share of job seconds in rules with several concurrent jobs, and its Amdahl bound.

    From the per-job Snakemake benchmark files of the --cores 1 run: rules with one job
    (source reading, dedup, merges) are serial, the per-shard / per-tokenizer rules can
    run side by side. Wall time under a loaded machine cannot show scaling; this can.
    """
    per_rule: dict[str, list[float]] = {}
    for tsv in (work / "results" / "benchmarks").rglob("*.tsv"):
        rule = tsv.relative_to(work / "results" / "benchmarks").parts[0]
        seconds = float(tsv.read_text().splitlines()[1].split("\t")[0])
        per_rule.setdefault(rule, []).append(seconds)
    total = sum(sum(v) for v in per_rule.values())
    parallel = sum(sum(v) for v in per_rule.values() if len(v) > 1)
    share = parallel / total if total else 0.0
    return {"job_seconds": round(total, 1), "parallel_share": round(share, 3),
            "amdahl_2_cores": round(1 / ((1 - share) + share / 2), 2),
            "job_seconds_by_rule": {k: round(sum(v), 2) for k, v in sorted(per_rule.items())}}


RSS_PROBE = r"""
import json, sys, time
import numpy as np
from symato.data.loader import TokenDataset

def status():
    out = {}
    for line in open("/proc/self/status"):
        key, _, value = line.partition(":")
        if key in ("VmHWM", "VmRSS", "RssAnon", "RssFile"):
            out[key] = int(value.split()[0]) // 1024  # MiB
    return out

ds = TokenDataset(sys.argv[1], "train", ctx_len=1024)
opened = status()
rng = np.random.default_rng(0)
t = time.perf_counter()
for _ in range(int(sys.argv[2])):
    ds.random_batch(16, rng)
per_batch_ms = (time.perf_counter() - t) / int(sys.argv[2]) * 1e3
for i, _ in enumerate(ds.sequential_batches(16)):
    if i == 50:
        break
print(json.dumps({"tokens": ds.num_tokens, "batch_ms": round(per_batch_ms, 3),
                  "open_RssAnon": opened["RssAnon"], "open_RssFile": opened["RssFile"],
                  **status()}))
"""


def write_synthetic(folder: Path, total_tokens: int, shards: int) -> None:
    """Random uint16 token shards (~1,000-token documents) plus their manifest."""
    from symato.data.tokenize import write_manifest, write_token_shard

    rng = np.random.default_rng(0)
    per_shard = total_tokens // shards
    files = []
    for k in range(shards):
        flat = rng.integers(0, 2816, size=per_shard, dtype=np.uint16)
        cuts = np.arange(1000, per_shard, 1000)
        docs = np.split(flat, cuts)
        path = folder / "train" / f"{k:04d}.arrow"
        write_token_shard(path, [f"{k}:{i}" for i in range(len(docs))], docs, 2816)
        files.append(path)
        del flat, docs
    write_manifest(folder, files, "synthetic")


def bench_rss(tmp: Path, gigabytes: float, batches: int) -> list[dict[str, float]]:
    """Peak RSS of a fresh process sampling batches, small corpus vs >= 1 GB corpus."""
    rows = []
    big_tokens = int(gigabytes * 2**30 / 2)
    for tokens in (big_tokens // 16, big_tokens):
        folder = tmp / f"rss{tokens}"
        write_synthetic(folder, tokens, shards=8)
        disk = sum(p.stat().st_size for p in folder.rglob("*.arrow"))
        proc = subprocess.run([sys.executable, "-c", RSS_PROBE, str(folder), str(batches)],
                              capture_output=True, text=True, check=True)
        row = json.loads(proc.stdout)
        row["disk_gb"] = round(disk / 2**30, 3)
        rows.append(row)
        shutil.rmtree(folder)
    return rows


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mb", type=float, default=4.0, help="tokenize corpus size (MB)")
    parser.add_argument("--pipeline-mb", type=float, default=8.0, help="pipeline corpus (MB)")
    parser.add_argument("--shards", type=int, default=4, help="pipeline shards")
    parser.add_argument("--repeats", type=int, default=3, help="pipeline runs per core count")
    parser.add_argument("--rss-gb", type=float, default=1.07, help="big synthetic corpus (GiB)")
    parser.add_argument("--batches", type=int, default=500, help="random batches in RSS probe")
    parser.add_argument("--skip", nargs="*", default=[],
                        choices=["tokenize", "pipeline", "rss"], help="parts to skip")
    args = parser.parse_args()
    results: dict[str, object] = {
        "machine": f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores, "
                   f"Python {platform.python_version()}",
        "load_average_before": [round(x, 1) for x in os.getloadavg()],
    }
    with tempfile.TemporaryDirectory(prefix="bench_data_") as name:
        tmp = Path(name)
        if "tokenize" not in args.skip:
            results["tokenize"] = bench_tokenize(tmp, args.mb)
            print(json.dumps(results["tokenize"]), flush=True)
        if "pipeline" not in args.skip:
            results["pipeline"] = bench_pipeline(tmp, args.pipeline_mb, args.shards,
                                                 args.repeats)
            print(json.dumps(results["pipeline"]), flush=True)
        if "rss" not in args.skip:
            results["rss"] = bench_rss(tmp, args.rss_gb, args.batches)
            print(json.dumps(results["rss"]), flush=True)
    results["load_average_after"] = [round(x, 1) for x in os.getloadavg()]
    print(json.dumps(results, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
