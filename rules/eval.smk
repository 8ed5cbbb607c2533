# Stage 7: evaluation of every trained run on the held-out split.


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


rule evaluate:
    """bits per byte / syllable, restoration accuracy and samples of one run."""
    input:
        model="results/runs/{tokenizer}/{run}/model.pt",
        settings="results/runs/{tokenizer}/{run}/settings.json",
        manifest="results/shards/{tokenizer}/manifest.json",
        stats="results/stats/syllables.parquet",
    output:
        "results/runs/{tokenizer}/{run}/metrics.json",
    wildcard_constraints:
        **RUN_WILDCARDS,
    params:
        eval=canonical(config["eval"]),
        options=eval_options(),
        run=lambda wildcards, input: os.path.dirname(input.model),
    threads: config["eval"]["threads"]
    resources:
        gpu=1 if config["eval"]["device"] == "cuda" else 0,
        mem_mb=config["eval"]["mem_mb"],
        runtime=lambda wildcards, attempt: config["eval"]["runtime_min"] * attempt,
    log:
        "results/logs/evaluate/{tokenizer}/{run}.log",
    benchmark:
        "results/benchmarks/evaluate/{tokenizer}/{run}.tsv"
    shell:
        "{SYMATO} evaluate --run {params.run} --stats {input.stats} {params.options} > {log} 2>&1"


TARGETS["runs"] += [
    f"results/runs/{r['tokenizer']}/{r['run']}/{name}"
    for r in GRID_RUNS
    for name in ("metrics.json", "metrics.jsonl")
]
