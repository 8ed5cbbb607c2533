# rules/eval.smk: evaluation of every trained run on the held-out split, and the
# target rule `runs` (train + evaluate the whole grid).

from symato.grid import with_defaults

EVAL = with_defaults(config.get("eval"), "eval.schema.yaml")


def eval_args() -> str:
    """The `symato evaluate` options from config["eval"] (so a change reruns evaluation)."""
    prompts = " ".join(f"--prompt {shlex.quote(p)}" for p in EVAL["prompts"])
    return (f"--batch-size {EVAL['batch_size']} --restoration-syllables "
            f"{EVAL['restoration_syllables']} --sample-tokens {EVAL['sample_tokens']} "
            f"--temperature {EVAL['temperature']} --top-p {EVAL['top_p']} "
            f"--seed {EVAL['seed']} --threads {EVAL['threads']} --device {EVAL['device']} "
            f"{prompts}")


rule evaluate:
    """bits per byte / syllable, restoration accuracy and samples of one run."""
    input:
        model=f"{RUN_DIR}/model.pt",
        settings=f"{RUN_DIR}/settings.json",
        manifest=f"{RESULTS}/shards/{{tokenizer}}/manifest.json",
        stats=f"{RESULTS}/stats/syllables.parquet",
    output:
        f"{RUN_DIR}/metrics.json",
    wildcard_constraints:
        **RUN_WILDCARDS,
    params:
        eval=EVAL,
        args=eval_args(),
        run=lambda wildcards, input: os.path.dirname(input.model),
    threads: EVAL["threads"]
    resources:
        gpu=1 if EVAL["device"] == "cuda" else 0,
        mem_mb=EVAL["mem_mb"],
        runtime=lambda wildcards, attempt: EVAL["runtime_min"] * attempt,
    log:
        f"{LOGS}/evaluate/{{tokenizer}}/{{run}}.log",
    benchmark:
        f"{BENCH}/evaluate/{{tokenizer}}/{{run}}.tsv"
    shell:
        "{SYMATO} evaluate --run {params.run} --stats {input.stats} {params.args} > {log} 2>&1"


TARGETS["runs"] += [
    f"{RESULTS}/runs/{r['tokenizer']}/{r['run']}/{name}"
    for r in GRID_RUNS
    for name in ("metrics.json", "metrics.jsonl")
]


rule runs:
    """Train and evaluate every run of the grid."""
    input:
        lambda wildcards: TARGETS["runs"],
