# symato: raw Vietnamese corpus -> cleaning -> statistics -> vocabularies -> token shards
# -> training grid -> evaluation (learning-rate sweeps extended until bracketed)
# -> scaling-law fits -> report.
#
# Every compute rule runs the `symato` command-line tool with its settings in `params:`,
# so a changed setting reruns exactly the jobs that depend on it; the report's figures
# and summary are short scripts in workflow/scripts/. See docs/architecture.md.

import os

from snakemake.exceptions import WorkflowError
from snakemake.utils import min_version

from symato.config import prepare
from symato.errors import SymatoError
from symato.run.grid import check_budgets

min_version("9.0")


configfile: os.path.join(workflow.basedir, "config.yaml")


# The one place the config is checked and completed: every default of every section
# (schemas in workflow/schemas/, registries of the package) is filled in here, once.
# `--config` values (Snakemake reads their leaves as strings) are typed as YAML first.
try:
    prepare(config, os.path.join(workflow.basedir, "workflow/schemas/config.schema.yaml"),
            overrides=workflow.config_settings.config)
except SymatoError as _exc:
    raise WorkflowError(f"config error: {_exc}") from None


include: "rules/common.smk"
include: "rules/corpus.smk"
include: "rules/stats.smk"
include: "rules/vocab.smk"
include: "rules/tokenize.smk"
include: "rules/train.smk"
include: "rules/eval.smk"
include: "rules/lmeval.smk"
include: "rules/sweep.smk"
include: "rules/report.smk"
include: "rules/bench.smk"


# Budgets against the shards already built, before any job (the run_settings job checks a
# byte budget again when it resolves it): docs/training.md, "Guards". Only where the
# workflow starts: a cluster job that reparses this file must not fail for another run.
if workflow.is_main_process:
    try:
        check_budgets(GRID_RUNS)
    except SymatoError as _exc:
        raise WorkflowError(f"config error: {_exc}") from None


rule all:
    """Everything: data stages, the training grid, fits, figures and the summary."""
    input:
        lambda wildcards: all_targets(),
    default_target: True


rule data:
    """Every data stage: cleaned corpus, statistics, vocabularies and token shards."""
    input:
        lambda wildcards: TARGETS["data"],


rule runs:
    """Train and evaluate every run of the grid."""
    input:
        lambda wildcards: TARGETS["runs"],


rule report_inputs:
    """Everything the HTML report shows (then: snakemake --report results/report.html)."""
    input:
        lambda wildcards: TARGETS["report"],
