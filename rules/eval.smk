# Stage 7: evaluation of every trained run on the held-out split.
#
# One `symato evaluate` process per evaluation group: by default the runs of one tokenizer
# and one model shape that differ only in budget, seed and learning rate
# (config eval.group_by, symato.run.grid.eval_group), so the
# validation text, the tokenizer and the restoration input are read once for all of them
# and the process start is paid once. The group's file results/evals/{tokenizer}/{group}.json
# holds each run's metrics (or the error that stopped it); each run's metrics.json is
# unpacked from it by a local job (`symato evaluate unpack`, no torch import), so one broken run fails only its own metrics.json.

from symato.run.grid import eval_group, eval_groups

EVAL_GROUP_BY = config["eval"]["group_by"]
EVAL_GROUPS = eval_groups(GRID_RUNS, EVAL_GROUP_BY)


def eval_options() -> str:
    """The `symato evaluate` options from config["eval"] (so a change reruns evaluation)."""
    ev = config["eval"]
    prompts = " ".join(f"--prompt {shlex.quote(p)}" for p in ev["prompts"])
    return (f"--batch-size {ev['batch_size']} --window-stride {ev['window_stride']} "
            f"--restoration-syllables "
            f"{ev['restoration_syllables']} --sample-tokens {ev['sample_tokens']} "
            f"--temperature {ev['temperature']} --top-p {ev['top_p']} "
            f"--seed {ev['seed']} --threads {ev['threads']} --device {ev['device']} "
            f"{prompts}")


def group_runs(wildcards) -> list[str]:
    """The run folders of an evaluation group; a group name that is a run's own name is
    that run alone (runs the grid did not list when it was parsed)."""
    runs = EVAL_GROUPS.get((wildcards.tokenizer, wildcards.group), [wildcards.group])
    return [f"results/runs/{wildcards.tokenizer}/{run}" for run in runs]


def run_group_file(wildcards) -> str:
    """The group file that holds a run's metrics."""
    group = eval_group(wildcards.run, EVAL_GROUP_BY)
    if wildcards.run not in EVAL_GROUPS.get((wildcards.tokenizer, group), ()):
        group = wildcards.run  # e.g. a sweep's extension run: a group of its own
    return f"results/evals/{wildcards.tokenizer}/{group}.json"


localrules:
    run_metrics,


rule evaluate:
    """bits per byte / syllable, restoration accuracy and samples of one group of runs."""
    input:
        models=lambda wildcards: [f"{d}/model.pt" for d in group_runs(wildcards)],
        settings=lambda wildcards: [f"{d}/settings.json" for d in group_runs(wildcards)],
        manifest="results/shards/{tokenizer}/manifest.json",
        stats="results/stats/syllables.parquet",
    output:
        "results/evals/{tokenizer}/{group}.json",
    wildcard_constraints:
        tokenizer="[^/]+",
        group="[^/]+",
    params:
        eval=canonical(config["eval"]),
        options=eval_options(),
        runs=lambda wildcards: " ".join(f"--run {shlex.quote(d)}" for d in group_runs(wildcards)),
    threads: config["eval"]["threads"]
    resources:
        gpu=1 if config["eval"]["device"] == "cuda" else 0,
        mem_mb=config["eval"]["mem_mb"],
        runtime=lambda wildcards, attempt: (config["eval"]["runtime_min"]
                                            * len(group_runs(wildcards)) * attempt),
    log:
        "results/logs/evaluate/{tokenizer}/{group}.log",
    benchmark:
        "results/benchmarks/evaluate/{tokenizer}/{group}.tsv"
    shell:
        "{SYMATO} evaluate {params.runs} --group-out {output} --stats {input.stats}"
        " {params.options} > {log} 2>&1"


rule run_metrics:
    """One run's metrics.json, from its group's file (or the error its evaluation hit)."""
    input:
        run_group_file,
    output:
        "results/runs/{tokenizer}/{run}/metrics.json",
    wildcard_constraints:
        **RUN_WILDCARDS,
    params:
        run=lambda wildcards, output: os.path.dirname(output[0]),
    log:
        "results/logs/run_metrics/{tokenizer}/{run}.log",
    shell:
        "{SYMATO} evaluate unpack --group {input:q} --run {params.run:q} --out {output:q}"
        " > {log:q} 2>&1"


TARGETS["runs"] += [
    f"results/runs/{r['tokenizer']}/{r['run']}/{name}"
    for r in GRID_RUNS
    for name in ("metrics.json", "metrics.jsonl")
]
