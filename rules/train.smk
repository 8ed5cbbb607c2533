# rules/train.smk: the training grid. One settings rule and one training job per run.
#
# The grid (symato.grid.expand_grid) is the union of config["train"]["grids"]; each run
# is results/runs/{tokenizer}/{run}/ with settings.json, metrics.jsonl, model.pt. Every
# setting is in params:, so changing one reruns exactly the runs it belongs to, and a
# new size or budget adds only its own runs. A byte-budget run (...-B700k, docs/training.md)
# resolves its tokens in run_settings from the tokenizer's shard manifest, its one input.

import re
import sys

from symato.grid import expand_grid, settings_args, with_defaults

TRAIN = with_defaults(config.get("train"), "train.schema.yaml")

# The report stage reads this: one dict per run (tokenizer, run, arch, n_layer, n_embd,
# tokens, text_bytes, grids, settings; tokens is None for a byte budget).
GRID_RUNS = expand_grid(config, results=RESULTS)
GRID_INDEX = {(r["tokenizer"], r["run"]): r for r in GRID_RUNS}
RUN_DIR = f"{RESULTS}/runs/{{tokenizer}}/{{run}}"


def grid_settings(wildcards) -> dict:
    """The settings of the run named by the wildcards (an error names unknown runs)."""
    key = (wildcards.tokenizer, wildcards.run)
    if key not in GRID_INDEX:
        raise ValueError(f"run {key[0]}/{key[1]} is not in the config's train.grids")
    return GRID_INDEX[key]["settings"]


def budget_manifest(wildcards) -> list[str]:
    """A byte-budget run's shard manifest (its tokens come from it); nothing for token runs.

    Why not for token runs too: their settings do not depend on it, and a new input would
    make Snakemake's input trigger rerun every finished token run.
    """
    if "text_bytes" not in grid_settings(wildcards):
        return []
    return [f"{RESULTS}/shards/{wildcards.tokenizer}/manifest.json"]


# torchrun for a run that holds more than one GPU (DDP). The choice is made in the shell
# from the job's granted `gpu` resource, not from config, because a local run may be
# capped below `train.gpus_per_run` (rules/common.smk); keeping it out of params also
# means moving a finished run to a box with another GPU count does not rerun it.
TORCHRUN = f"{shlex.quote(sys.executable)} -m torch.distributed.run --standalone"


# Used by this stage's rules only (a global constraint would bind other stages' rules).
RUN_WILDCARDS = {
    "tokenizer": "|".join(re.escape(t) for t in config.get("tokenizers", [])) or "[^/]+",
    "run": r"(rwkv7|rwkv|gpt|llama)-L[0-9]+-D[0-9]+-[TB][0-9]+[kMG]?",
}


localrules:
    run_settings,


rule run_settings:
    """Write one run's settings.json from its params (the whole description of the run)."""
    input:
        budget_manifest,
    output:
        f"{RUN_DIR}/settings.json",
    wildcard_constraints:
        **RUN_WILDCARDS,
    params:
        settings=grid_settings,
        args=lambda wildcards: settings_args(grid_settings(wildcards)),
    log:
        f"{LOGS}/run_settings/{{tokenizer}}/{{run}}.log",
    shell:
        "{SYMATO} run-settings --out {output} {params.args} > {log} 2>&1"


rule train:
    """Train one run; a retry (or a rerun after a kill) resumes from its checkpoint."""
    input:
        settings=f"{RUN_DIR}/settings.json",
        manifest=f"{RESULTS}/shards/{{tokenizer}}/manifest.json",
        vocab=f"{RESULTS}/vocab/{{tokenizer}}.json",
    output:
        model=f"{RUN_DIR}/model.pt",
        metrics=f"{RUN_DIR}/metrics.jsonl",
    wildcard_constraints:
        **RUN_WILDCARDS,
    params:
        settings=grid_settings,
        out=lambda wildcards, output: os.path.dirname(output.model),
    threads: lambda wildcards: grid_settings(wildcards)["threads"]
    resources:
        gpu=TRAIN["gpus_per_run"],
        mem_mb=lambda wildcards, attempt: TRAIN["mem_mb"] * 2 ** (attempt - 1),
        runtime=lambda wildcards, attempt: TRAIN["runtime_min"] * attempt,
    retries: TRAIN["retries"]
    log:
        f"{LOGS}/train/{{tokenizer}}/{{run}}.log",
    benchmark:
        f"{BENCH}/train/{{tokenizer}}/{{run}}.tsv"
    shell:
        "if [ {resources.gpu} -gt 1 ]; then"
        " {TORCHRUN} --nproc_per_node {resources.gpu} -m symato.cli train"
        " --settings {input.settings} --out {params.out} --resume auto > {log} 2>&1;"
        " else"
        " {SYMATO} train --settings {input.settings} --out {params.out} --resume auto"
        " > {log} 2>&1; fi"
