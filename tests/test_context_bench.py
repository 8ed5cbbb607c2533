"""The inference-cost-against-context benchmark (symato/report/context.py, issue #28):
what it measures on real small models (an RNN's state does not grow with the context, a
KV cache grows by exactly its formula), its sentences and table, and the workflow's
rule context_bench with its figure, run by Snakemake on a tiny sweep."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml
from _workflow import CORPUS, REPO, SNAKEMAKE, load_script, tiny_data_config

from symato.errors import SymatoError
from symato.report import context

SIZE, HEAD = "L1-D32", 16


@pytest.mark.parametrize("arch", ["rwkv4", "rwkv7"])
def test_an_rnn_state_does_not_grow_with_the_context(arch: str):
    short, long = (context.measure(arch, SIZE, n, tokens=3, vocab=50, head_size=HEAD)
                   for n in (8, 600))  # 600: two prefill chunks
    assert short["state_bytes"] == long["state_bytes"] > 0
    assert short["params"] == long["params"] and long["token_ms"] > 0 and long["prefill_s"] > 0
    assert long["token_cpu_ms"] > 0


@pytest.mark.parametrize("arch", ["gpt", "llama"])
def test_a_kv_cache_holds_exactly_prompt_and_generated_tokens(arch: str):
    for n in (8, 600):
        row = context.measure(arch, SIZE, n, tokens=3, vocab=50, head_size=HEAD)
        positions = n + 3 + context.WARMUP_STEPS
        # keys and values, 1 layer, batch 1, 2 heads of 16, float32
        assert row["state_bytes"] == 2 * 1 * 1 * 2 * positions * HEAD * 4
        assert row["peak_bytes"] > row["state_bytes"]


@pytest.mark.parametrize("arch", ["gpt", "llama"])
def test_transformers_peer_decodes_the_same_weights_with_its_own_cache(arch: str):
    """The peer runs transformers' own class on our weights; its default cache grows to
    hold exactly what ours preallocates."""
    ours = context.measure(arch, SIZE, 600, tokens=3, vocab=50, head_size=HEAD)
    peer = context.measure(arch, SIZE, 600, tokens=3, vocab=50, head_size=HEAD,
                           impl="transformers")
    assert peer["impl"] == "transformers" and peer["params"] == ours["params"]
    assert peer["state_bytes"] == ours["state_bytes"] and peer["token_ms"] > 0


def test_rwkv_package_peer_state_does_not_grow():
    """The rwkv package peer, each measurement in its own process (RWKV_V7_ON must be set
    before rwkv.model is imported); rows for ours and the peer, named apart."""
    rows = context.sweep(["rwkv7"], [8, 600], size=SIZE, tokens=2, vocab=50,
                         head_size=HEAD, peers=True)
    assert [(r["impl"], r["context"]) for r in rows] == [
        ("symato", 8), ("rwkv", 8), ("symato", 600), ("rwkv", 600)]
    assert len({r["state_bytes"] for r in rows}) == 1
    assert "rwkv7 (rwkv)" in context.markdown(rows)
    with pytest.raises(SymatoError, match="no runtime 'rwkv' for llama"):
        context.measure("llama", SIZE, 8, tokens=1, vocab=50, head_size=HEAD, impl="rwkv")


ROWS = [{"arch": a, "context": c, "params": 1e6, "non_embedding": 9e5, "prefill_s": 0.5,
         "token_ms": ms, "state_bytes": 2**20, "peak_bytes": 2**30}
        for a, c, ms in (("rwkv7", 256, 2.0), ("llama", 256, 1.0), ("rwkv7", 1024, 1.9),
                         ("llama", 1024, 2.0), ("rwkv7", 4096, 2.1), ("llama", 4096, 1.8),
                         ("rwkv7", 16384, 2.0), ("llama", 16384, 3.0))]


def test_crossover_counts_only_a_lasting_advantage():
    # 1024 is cheaper but 4096 is not: the crossover is 16384, not the noisy 1024
    assert context.crossover(ROWS) == ("rwkv7 generates a token faster than llama from "
                                       "16,384 tokens of context on (2.00 ms against 3.00 ms "
                                       "there)")
    assert context.crossover(ROWS[:6], fast="llama", slow="rwkv7").startswith(
        "llama generates a token faster than rwkv7 from 4,096")
    assert context.crossover(ROWS[-2:]).startswith("rwkv7 generates a token faster than "
                                                   "llama already at 16,384")
    assert context.crossover(ROWS[:2]) == ("rwkv7 was not faster per token than llama at the "
                                           "longest context measured, 256 tokens (2.00 ms "
                                           "against 1.00 ms)")
    assert context.crossover(ROWS[:1]) == "rwkv7 and llama were not both measured"
    table = context.markdown(ROWS).splitlines()
    assert len(table) == 2 + len(ROWS)
    # rows written before the CPU time was measured show "-" there
    assert table[2] == ("| rwkv7 | 1.00M (0.90M) | 256 | 0.50 | 2.00 | - | 1.00 MiB | "
                        "1,024.00 MiB |")
    timed = context.markdown([{**ROWS[0], "token_cpu_ms": 1.5}]).splitlines()[2]
    assert "| 2.00 | 1.50 | 1.00 MiB |" in timed


@pytest.mark.slow
def test_workflow_rule_measures_draws_and_summarizes(tmp_path: Path):
    bench = {"enabled": True, "size": SIZE, "head_size": HEAD, "contexts": [8, 24],
             "tokens": 2}
    config = tiny_data_config(report={"dpi": 40, "context_bench": bench})
    (tmp_path / "input").mkdir()  # the config check wants the corpus the rule never reads
    shutil.copy(CORPUS, tmp_path / "input" / "vi.txt")
    (tmp_path / "config.yaml").write_text(yaml.safe_dump(config), encoding="utf-8")
    proc = subprocess.run(
        [str(SNAKEMAKE), "-s", str(REPO / "Snakefile"), "--directory", str(tmp_path),
         "--configfile", str(tmp_path / "config.yaml"), "--cores", "2",
         "results/plots/context_bench.png", "results/plots/context_bench.svg"],
        capture_output=True, text=True, timeout=300, check=False)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    result = json.loads((tmp_path / "results/bench/context.json").read_text())
    assert result["size"] == SIZE and "cores visible" in result["machine"]
    got = [(r["arch"], r["context"]) for r in result["rows"]]
    assert got == [(a, c) for c in (8, 24) for a in ("rwkv4", "gpt", "rwkv7", "llama")]
    assert (tmp_path / "results/plots/context_bench.png").stat().st_size > 1000
    section = load_script("summary").context_section(result)
    assert section.startswith(f"{SIZE}, 2 generated tokens, CPU ")
    assert "| llama |" in section and "than llama" in section
    assert "Not measured" in load_script("summary").context_section(None)


def test_one_process_sweep_measures_every_context_along_one_sequence():
    """context.flat: one process per (arch, runtime), each context reached by prefilling
    the same sequence further; the RNN state stays one size, the KV cache grows."""
    rows = context.flat_sweep(["rwkv7", "llama"], [8, 40], size=SIZE, tokens=2, vocab=50,
                              head_size=HEAD)
    assert [(r["arch"], r["context"]) for r in rows] == [
        ("rwkv7", 8), ("rwkv7", 40), ("llama", 8), ("llama", 40)]
    rnn, attn = rows[:2], rows[2:]
    assert rnn[0]["state_bytes"] == rnn[1]["state_bytes"]
    assert attn[0]["state_bytes"] == attn[1]["state_bytes"]  # preallocated for it all
    assert all(r["spread"] >= 1.0 and r["token_cpu_ms"] > 0 for r in rows)
    table = context.flat_markdown(rows).splitlines()
    assert table[0] == "| arch | 8 | 40 | largest / smallest |" and len(table) == 4
    # a context the decoded tokens already passed is measured where the sequence is
    (late,) = [r for r in context.flat("rwkv7", SIZE, [8, 9], 2, vocab=50, head_size=HEAD)
               if r["context"] != 8]
    assert late["context"] == 8 + 2 + context.WARMUP_STEPS
