# symato: raw Vietnamese corpus -> cleaning -> statistics -> vocabularies -> token shards
# -> training grid (RWKV-4, GPT) -> evaluation -> scaling-law fits -> report.
#
# Every rule runs the `symato` command-line tool with its settings in `params:`, so a
# changed setting reruns exactly the jobs that depend on it. See docs/architecture.md.

import os

from snakemake.utils import min_version, validate

from symato.configschema import fill_defaults

min_version("9.0")


configfile: os.path.join(workflow.basedir, "config.yaml")


validate(config, "workflow/schemas/config.schema.yaml")
# validate() does not follow $ref into the section schemas for defaults: fill them here.
fill_defaults(config, os.path.join(workflow.basedir, "workflow/schemas/config.schema.yaml"))


include: "rules/common.smk"
include: "rules/corpus.smk"
include: "rules/stats.smk"
include: "rules/vocab.smk"
include: "rules/tokenize.smk"
include: "rules/train.smk"
include: "rules/eval.smk"
include: "rules/report.smk"


rule all:
    """Everything: data stages, the training grid, fits, plots and the summary."""
    input:
        lambda wildcards: all_targets(),
    default_target: True
