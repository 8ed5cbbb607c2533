# Inference cost against context length (issue #28): a short sweep for the report.
# The measurement lives in symato/report/context.py (one process per architecture and
# context, rounds alternated); the full-size sweep is benchmarks/bench_context.py
# (`make bench`, docs/benchmarks.md). Opt out with report.context_bench.enabled: false.

from symato.models.registry import ARCHITECTURES

CONTEXT_BENCH = config["report"]["context_bench"]

localrules:
    plot_context_bench,


rule context_bench:
    """Time per generated token, prefill time, state / KV-cache bytes and peak memory
    of every architecture at each context (results/bench/context.json)."""
    output:
        json="results/bench/context.json",
    params:
        archs=list(ARCHITECTURES),
        size=CONTEXT_BENCH["size"],
        head_size=CONTEXT_BENCH["head_size"],
        contexts=CONTEXT_BENCH["contexts"],
        tokens=CONTEXT_BENCH["tokens"],
        script=os.path.join(workflow.basedir, "benchmarks/bench_context.py"),
        python=shlex.quote(sys.executable),
    threads: 1
    log:
        "results/logs/context_bench/context_bench.log",
    benchmark:
        "results/benchmarks/context_bench/context_bench.tsv"
    shell:
        "{params.python} {params.script:q} --archs {params.archs} --size {params.size}"
        " --head-size {params.head_size} --contexts {params.contexts} --tokens {params.tokens}"
        " --threads 1 --markdown --json {output.json:q} > {log:q} 2>&1"


rule plot_context_bench:
    """The figure: time per token and memory against context, one line per architecture."""
    input:
        "results/bench/context.json",
    output:
        png=report("results/plots/context_bench.png", caption=caption("context_bench"),
                   category="Inference"),
        svg="results/plots/context_bench.svg",
    params:
        dpi=config["report"]["dpi"],
    log:
        "results/logs/plot_context_bench/plot_context_bench.log",
    script:
        "../workflow/scripts/context_bench.py"


if CONTEXT_BENCH["enabled"]:
    TARGETS["report"] += ["results/plots/context_bench.png", "results/plots/context_bench.svg"]
