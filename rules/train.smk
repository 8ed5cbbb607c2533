# Stage 6: the training grid. One settings job and one training job per run, and one
# kernel build per device type that the runs of architectures with a compiled operator
# (RWKV: the WKV kernels) wait for, so training jobs only load a finished build.
#
# The grid (symato.run.grid.expand_grid) is the union of config["train"]["grids"]; each
# run is results/runs/{tokenizer}/{run}/ with settings.json, metrics.jsonl, model.pt.
# Every setting is in params:, so changing one reruns exactly the runs it belongs to, and
# a new size or budget adds only its own runs. A byte-budget run (...-B700k,
# docs/training.md) resolves its tokens in run_settings from the tokenizer's shard
# manifest, its one input.
#
# WSD sub-grids (schedule: wsd, docs/training.md "WSD branches"): each ladder of budgets
# is one stable run in results/stable/{tokenizer}/{largest run}/ (stable_settings,
# train_stable), which saves its state at every budget's branch point and ends with
# stable.json; each budget's run is then an ordinary run of this stage (run_settings,
# train) whose train job waits for that stable.json and starts from its state.

from symato.interop.imports import input_files
from symato.models.registry import get_architecture
from symato.run.grid import expand_grid, run_name_pattern
from symato.run.settings import command_args
from symato.run.sweep import find_sweeps, lookup_extension, sweep_index
from symato.run.wsd import marker_of, stable_runs

# One dict per run (tokenizer, run, arch, n_layer, n_embd, tokens, text_bytes, grids,
# settings; tokens is None for a byte budget). The report stage reads it too.
GRID_RUNS = expand_grid(config)
GRID_INDEX = {(r["tokenizer"], r["run"]): r for r in GRID_RUNS}
# The learning-rate sweeps of the grid (runs that differ only in lr), by (tokenizer, sweep
# name): rules/sweep.smk extends them; an extension run's settings come from its sweep.
LR_SWEEPS = sweep_index(find_sweeps(GRID_RUNS))
# The stable runs of the WSD branches (not runs of the grid: no evaluation, no report).
STABLE_INDEX = {(r["tokenizer"], r["run"]): r for r in stable_runs(GRID_RUNS)}
# Used by this stage's rules (a global constraint would bind other stages' rules).
RUN_WILDCARDS = {"run": run_name_pattern()}


def grid_entry(wildcards) -> dict:
    """The grid entry of the run named by the wildcards: a grid run, or a rate of one of
    the grid's learning-rate sweeps (an extension run, symato.run.sweep); an error names
    other runs."""
    key = (wildcards.tokenizer, wildcards.run)
    if key in GRID_INDEX:
        return GRID_INDEX[key]
    extension = lookup_extension(LR_SWEEPS, *key)
    if extension is None:
        raise ValueError(f"run {key[0]}/{key[1]} is not in the config's train.grids nor a "
                         "rate of one of its learning-rate sweeps")
    return {"tokenizer": key[0], "run": key[1], "settings": extension}


def grid_settings(wildcards) -> dict:
    """The settings of the run named by the wildcards (an error names unknown runs)."""
    return grid_entry(wildcards)["settings"]


def stable_entry(wildcards) -> dict:
    """The WSD stable run named by the wildcards (an error names unknown ones)."""
    key = (wildcards.tokenizer, wildcards.run)
    if key not in STABLE_INDEX:
        raise ValueError(f"stable run {key[0]}/{key[1]} is not asked for by any WSD sub-grid")
    return STABLE_INDEX[key]


def stable_marker(wildcards) -> list[str]:
    """A WSD branch's stable run, done (its stable.json); nothing for other runs."""
    branch_from = grid_settings(wildcards).get("branch_from")
    return [] if branch_from is None else [marker_of(branch_from)]


def init_source(wildcards) -> list[str]:
    """The files of the model a run starts from (setting init_from), so a source run of
    the same workflow trains first; nothing for runs from random weights."""
    spec = grid_settings(wildcards).get("init_from")
    return [] if not spec else [str(p) for p in input_files(spec)]


def budget_manifest(wildcards) -> list[str]:
    """A byte-budget run's shard manifest (its tokens come from it); nothing for token runs.

    Why not for token runs too: their settings do not depend on it, and the input would
    rerun every token run whenever the shards are rebuilt for an unrelated reason.
    """
    if "text_bytes" not in grid_settings(wildcards):
        return []
    return [f"results/shards/{wildcards.tokenizer}/manifest.json"]


def kernel_build(wildcards) -> list:
    """The kernel build record of the run's device type, for runs that load compiled
    kernels (an architecture with an operator, wkv_backend not "torch"); nothing for the
    others, so a GPT run neither waits for a build nor fails with a broken compiler.

    ancient(): the record only orders the jobs. Rebuilding it (deleted, or forced) must
    not rerun every training run; the kernels' own folders are keyed by their sources.
    """
    s = grid_settings(wildcards)
    target = get_architecture(s["arch"]).kernel_target(s)
    return [] if target is None else [ancient(f"results/kernels/{target}.json")]


def settings_options(wildcards) -> str:
    """The run's `symato settings` options, every value shell-quoted."""
    entry = grid_entry(wildcards)
    args = command_args(entry["settings"], entry.get("wsd_plan"))
    return " ".join(shlex.quote(arg) for arg in args)


def stable_options(wildcards) -> str:
    """The stable run's `symato settings` options, every value shell-quoted."""
    entry = stable_entry(wildcards)
    return " ".join(shlex.quote(arg) for arg in command_args(entry["settings"],
                                                             entry["wsd_plan"]))


def stable_manifest(wildcards) -> list[str]:
    """A byte-budget stable run's shard manifest (its branch points come from it)."""
    if "text_bytes" not in stable_entry(wildcards)["settings"]:
        return []
    return [f"results/shards/{wildcards.tokenizer}/manifest.json"]


def stable_kernels(wildcards) -> list:
    """As kernel_build, for a stable run."""
    s = stable_entry(wildcards)["settings"]
    target = get_architecture(s["arch"]).kernel_target(s)
    return [] if target is None else [ancient(f"results/kernels/{target}.json")]


# torchrun for a run that holds more than one GPU (DDP). The choice is made in the shell
# from the job's granted `gpu` resource, not from config, because a local run may be
# capped below `train.gpus_per_run` (rules/common.smk); keeping it out of params also
# means moving a finished run to a box with another GPU count does not rerun it.
TORCHRUN = f"{shlex.quote(sys.executable)} -m torch.distributed.run --standalone"


localrules:
    run_settings,
    stable_settings,


rule build_kernels:
    """Build every operator's kernels for one device type, once, before the training jobs
    (symato build: into $SYMATO_BUILD_DIR, keyed by everything its command depends on:
    sources, torch and its paths, compiler, CPU and CUDA architecture; a build killed
    mid-way leaves no compiler running and never blocks a later one). A CUDA build holds a
    GPU so that it targets the GPU the training jobs get."""
    output:
        "results/kernels/{device}.json",
    wildcard_constraints:
        device="cpu|cuda",
    threads: 4
    resources:
        gpu=lambda wildcards: 1 if wildcards.device == "cuda" else 0,
        mem_mb=4000,
        runtime=30,
    log:
        "results/logs/build_kernels/{device}.log",
    benchmark:
        "results/benchmarks/build_kernels/{device}.tsv"
    shell:
        "MAX_JOBS={threads} {SYMATO} build --device {wildcards.device} --out {output} > {log} 2>&1"


rule run_settings:
    """Write one run's settings.json from its params (the whole description of the run)."""
    input:
        budget_manifest,
    output:
        "results/runs/{tokenizer}/{run}/settings.json",
    wildcard_constraints:
        **RUN_WILDCARDS,
    params:
        settings=grid_settings,
        options=settings_options,
    log:
        "results/logs/run_settings/{tokenizer}/{run}.log",
    benchmark:
        "results/benchmarks/run_settings/{tokenizer}/{run}.tsv"
    shell:
        "{SYMATO} settings --out {output} {params.options} > {log} 2>&1"


rule train:
    """Train one run; a retry (or a rerun after a kill) resumes from its checkpoint."""
    input:
        settings="results/runs/{tokenizer}/{run}/settings.json",
        manifest="results/shards/{tokenizer}/manifest.json",
        vocab="results/vocab/{tokenizer}.json",
        kernels=kernel_build,
        stable=stable_marker,
        init=init_source,
    output:
        model="results/runs/{tokenizer}/{run}/model.pt",
        metrics="results/runs/{tokenizer}/{run}/metrics.jsonl",
    wildcard_constraints:
        **RUN_WILDCARDS,
    params:
        settings=grid_settings,
        out=lambda wildcards, output: os.path.dirname(output.model),
    threads: lambda wildcards: grid_settings(wildcards)["threads"]
    resources:
        gpu=config["train"]["gpus_per_run"],
        mem_mb=lambda wildcards, attempt: config["train"]["mem_mb"] * 2 ** (attempt - 1),
        runtime=lambda wildcards, attempt: config["train"]["runtime_min"] * attempt,
    retries: config["train"]["retries"]
    log:
        "results/logs/train/{tokenizer}/{run}.log",
    benchmark:
        "results/benchmarks/train/{tokenizer}/{run}.tsv"
    shell:
        "if [ {resources.gpu} -gt 1 ]; then"
        " {TORCHRUN} --nproc_per_node {resources.gpu} -m symato.cli train"
        " --settings {input.settings} --out {params.out} --resume auto > {log} 2>&1;"
        " else"
        " {SYMATO} train --settings {input.settings} --out {params.out} --resume auto"
        " > {log} 2>&1; fi"


rule stable_settings:
    """Write one WSD stable run's settings.json (a byte-budget ladder: its branch points
    resolved from the shard manifest, like byte-budget runs)."""
    input:
        stable_manifest,
    output:
        "results/stable/{tokenizer}/{run}/settings.json",
    wildcard_constraints:
        **RUN_WILDCARDS,
    params:
        settings=lambda wildcards: stable_entry(wildcards)["settings"],
        plan=lambda wildcards: stable_entry(wildcards)["wsd_plan"],
        options=stable_options,
    log:
        "results/logs/stable_settings/{tokenizer}/{run}.log",
    shell:
        "{SYMATO} settings --out {output} {params.options} > {log} 2>&1"


rule train_stable:
    """Train one WSD stable run to its last branch point, saving its state at each branch
    point (branches/{run}.pt); stable.json, written last, lists them. A retry resumes from
    its checkpoint; the saved states are not outputs, so a failed attempt keeps them."""
    input:
        settings="results/stable/{tokenizer}/{run}/settings.json",
        manifest="results/shards/{tokenizer}/manifest.json",
        vocab="results/vocab/{tokenizer}.json",
        kernels=stable_kernels,
    output:
        marker="results/stable/{tokenizer}/{run}/stable.json",
        metrics="results/stable/{tokenizer}/{run}/metrics.jsonl",
    wildcard_constraints:
        **RUN_WILDCARDS,
    params:
        settings=lambda wildcards: stable_entry(wildcards)["settings"],
        out=lambda wildcards, output: os.path.dirname(output.marker),
    threads: lambda wildcards: stable_entry(wildcards)["settings"]["threads"]
    resources:
        gpu=config["train"]["gpus_per_run"],
        mem_mb=lambda wildcards, attempt: config["train"]["mem_mb"] * 2 ** (attempt - 1),
        runtime=lambda wildcards, attempt: config["train"]["runtime_min"] * attempt,
    retries: config["train"]["retries"]
    log:
        "results/logs/train_stable/{tokenizer}/{run}.log",
    benchmark:
        "results/benchmarks/train_stable/{tokenizer}/{run}.tsv"
    shell:
        "if [ {resources.gpu} -gt 1 ]; then"
        " {TORCHRUN} --nproc_per_node {resources.gpu} -m symato.cli train"
        " --settings {input.settings} --out {params.out} --resume auto > {log} 2>&1;"
        " else"
        " {SYMATO} train --settings {input.settings} --out {params.out} --resume auto"
        " > {log} 2>&1; fi"
