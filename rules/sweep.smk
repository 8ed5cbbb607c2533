# Learning-rate sweeps that bracket their optimum (docs/scaling.md, symato/run/sweep.py).
#
#   lr_sweep_step   checkpoint, one job per sweep and round k = 0, 1, ...: reads the
#                   sweep's evaluated runs (the configured ones and the k extension runs
#                   so far) and writes results/sweeps/{tokenizer}/{sweep}/step{k}.json:
#                   bracketed, or the next rate past the edge (next_run), or why not
#   lr_sweep        results/sweeps/{tokenizer}/{sweep}.json, the sweep's last round
#
# Round k + 1 exists only once round k has asked for a run (next_run): its input function
# goes through the checkpoint, so Snakemake then plans that run's settings, training
# and evaluation like any grid run (rules/train.smk gives it its settings). The report
# reads every sweep's final decision and the extension runs it names (report_run_dirs).

from symato.run.sweep import read_decision

SWEEP_WILDCARDS = {"tokenizer": "[^/]+", "sweep": run_name_pattern(), "step": "[0-9]+"}
MAX_EXTENSIONS = config["train"]["lr_bracket"]["max_extensions"]


def _metrics(tokenizer: str, runs) -> list[str]:
    return [f"results/runs/{tokenizer}/{run}/metrics.json" for run in runs]


def _sweep(wildcards):
    key = (wildcards.tokenizer, wildcards.sweep)
    if key not in LR_SWEEPS:
        raise ValueError(f"{key[0]}/{key[1]} is not a learning-rate sweep of the grid")
    return LR_SWEEPS[key]


def sweep_step_file(tokenizer: str, sweep: str, step: int) -> str:
    """Round ``step``'s decision file; raises Snakemake's 'incomplete checkpoint' (so the
    DAG waits) until that round has run."""
    return checkpoints.lr_sweep_step.get(tokenizer=tokenizer, sweep=sweep, step=step).output[0]


def sweep_extension_metrics(wildcards) -> list[str]:
    """The extension runs round k reads: those round k - 1 read, and the one it asked for."""
    step = int(wildcards.step)
    if step == 0:
        return []
    previous = sweep_step_file(wildcards.tokenizer, wildcards.sweep, step - 1)
    decision = read_decision(previous)
    if decision["next_run"] is None:
        raise ValueError(f"{previous} is final (status {decision['status']}): the sweep has "
                         f"no round {step}")
    return _metrics(wildcards.tokenizer, [*decision["extension_runs"], decision["next_run"]])


def final_sweep_step(tokenizer: str, sweep: str) -> str:
    """The decision file of a sweep's last round (the first that asks for no further run),
    going through the checkpoint round by round."""
    step = 0
    while True:
        path = sweep_step_file(tokenizer, sweep, step)
        if read_decision(path)["next_run"] is None:
            return path
        step += 1


def sweep_final_files() -> list[str]:
    """Every sweep's final decision file."""
    return [f"results/sweeps/{tok}/{name}.json" for tok, name in LR_SWEEPS]


def report_run_dirs() -> list[str]:
    """Every run the report reads: the grid's runs, then each sweep's extension runs
    (which waits for the sweeps' final decisions)."""
    dirs = [f"results/runs/{r['tokenizer']}/{r['run']}" for r in GRID_RUNS]
    for tok, name in LR_SWEEPS:
        decision = read_decision(final_sweep_step(tok, name))
        dirs += [f"results/runs/{tok}/{run}" for run in decision["extension_runs"]]
    return dirs


localrules:
    lr_sweep_step,
    lr_sweep,


checkpoint lr_sweep_step:
    """One round of a learning-rate sweep: bracketed, or the next rate past the edge."""
    input:
        configured=lambda wildcards: _metrics(wildcards.tokenizer,
                                              [run for _, run in _sweep(wildcards).runs]),
        extensions=sweep_extension_metrics,
    output:
        "results/sweeps/{tokenizer}/{sweep}/step{step}.json",
    wildcard_constraints:
        **SWEEP_WILDCARDS,
    params:
        max_extensions=MAX_EXTENSIONS,
        extensions=lambda wildcards, input: " ".join(
            f"--extension {shlex.quote(path)}" for path in input.extensions
        ),
    log:
        "results/logs/lr_sweep_step/{tokenizer}/{sweep}/step{step}.log",
    shell:
        "{SYMATO} sweep --out {output:q} --tokenizer {wildcards.tokenizer:q}"
        " --sweep {wildcards.sweep:q} --max-extensions {params.max_extensions}"
        " {params.extensions} {input.configured:q} > {log:q} 2>&1"


rule lr_sweep:
    """A learning-rate sweep's final decision at a stable path."""
    input:
        lambda wildcards: final_sweep_step(wildcards.tokenizer, wildcards.sweep),
    output:
        "results/sweeps/{tokenizer}/{sweep}.json",
    wildcard_constraints:
        tokenizer=SWEEP_WILDCARDS["tokenizer"],
        sweep=SWEEP_WILDCARDS["sweep"],
    log:
        "results/logs/lr_sweep/{tokenizer}/{sweep}.log",
    shell:
        "{SYMATO} sweep final --step {input:q} --out {output:q} > {log:q} 2>&1"


# `snakemake runs` trains the extension runs too: they are runs of the grid's sweeps.
TARGETS["runs"] += sweep_final_files()
