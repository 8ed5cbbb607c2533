# Stage 7c (optional, config eval.lm_eval): lm-evaluation-harness on every run.
#
#   lm_eval_tasks   one job: results/lmeval/tasks/ (symato_vi_ppl, symato_vi_restore over
#                   the cleaned validation text, the text `symato evaluate` scores)
#   lm_eval_export  per run: the run in the Hugging Face format, a temporary folder
#                   (deleted once scored: `symato export --format hf` makes one on demand)
#   lm_eval_run     per run: results/runs/{tokenizer}/{run}/lm_eval.json
# `symato collect --lm-eval` then puts the numbers in runs.csv (rules/report.smk).

from symato.interop.lm_eval_tasks import TASKS as LM_EVAL_TASKS
from symato.interop.support import hf_blocker

LM_EVAL_DIR = "results/lmeval/tasks"


def lm_eval_max_bytes() -> int:
    """The longest restoration sentence in UTF-8 bytes: each choice must fit the grid's
    smallest window in tokens (the harness refuses a longer one), and the bytes
    tokenizer spends one token per byte; at most 120 (`symato lm-eval tasks`' default)."""
    smallest = min((int(r["settings"]["ctx_len"]) for r in GRID_RUNS), default=128)
    return max(1, min(120, smallest - 1))


rule lm_eval_tasks:
    """The harness's task folder over the cleaned validation shards."""
    input:
        expand("results/clean/val/{shard}.parquet", shard=CLEAN_SHARD_IDS),
    output:
        manifest=f"{LM_EVAL_DIR}/manifest.json",
        files=[f"{LM_EVAL_DIR}/{task}.{ext}" for task in LM_EVAL_TASKS for ext in ("yaml", "jsonl")],
    params:
        val=lambda wildcards, input: " ".join(f"--val {shlex.quote(p)}" for p in input),
        out=LM_EVAL_DIR,
        max_bytes=lm_eval_max_bytes(),
    log:
        "results/logs/lm_eval_tasks/lm_eval_tasks.log",
    benchmark:
        "results/benchmarks/lm_eval_tasks/lm_eval_tasks.tsv"
    shell:
        "{SYMATO} lm-eval tasks {params.val} --out {params.out:q}"
        " --max-bytes {params.max_bytes} > {log:q} 2>&1"


rule lm_eval_export:
    """One run exported for transformers (model, tokenizer, card)."""
    input:
        "results/runs/{tokenizer}/{run}/model.pt",
    output:
        temp(directory("results/lmeval/hf/{tokenizer}/{run}")),
    wildcard_constraints:
        **RUN_WILDCARDS,
    params:
        run=lambda wildcards, input: os.path.dirname(input[0]),
    log:
        "results/logs/lm_eval_export/{tokenizer}/{run}.log",
    benchmark:
        "results/benchmarks/lm_eval_export/{tokenizer}/{run}.tsv"
    shell:
        "{SYMATO} export --format hf --ckpt {params.run:q} --out {output:q} > {log:q} 2>&1"


rule lm_eval_run:
    """lm-evaluation-harness on one exported run: perplexity and restoration choice."""
    input:
        model="results/lmeval/hf/{tokenizer}/{run}",
        tasks=f"{LM_EVAL_DIR}/manifest.json",
        files=rules.lm_eval_tasks.output.files,
    output:
        "results/runs/{tokenizer}/{run}/lm_eval.json",
    wildcard_constraints:
        **RUN_WILDCARDS,
    params:
        tasks=LM_EVAL_DIR,
    threads: config["eval"]["threads"]
    resources:
        mem_mb=config["eval"]["mem_mb"],
        runtime=config["eval"]["runtime_min"],
    log:
        "results/logs/lm_eval_run/{tokenizer}/{run}.log",
    benchmark:
        "results/benchmarks/lm_eval_run/{tokenizer}/{run}.tsv"
    shell:
        "{SYMATO} lm-eval run --model {input.model:q} --tasks-dir {params.tasks:q}"
        " --out {output:q} --threads {threads} > {log:q} 2>&1"


if config["eval"]["lm_eval"]:
    # runs transformers cannot hold (RWKV-7; one-layer RWKV-4) are not exported: the
    # summary lists them with the reason (symato.interop.support, shared with the export)
    TARGETS["runs"] += [
        f"results/runs/{r['tokenizer']}/{r['run']}/lm_eval.json" for r in GRID_RUNS
        if not hf_blocker(r["settings"]["arch"], int(r["settings"]["n_layer"]))
    ]
