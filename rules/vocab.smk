# Stage 4: one vocabulary per entry of `tokenizers:` (results/vocab/{tokenizer}.json).
#
# What a vocabulary is built from and which settings it reads are its kind's entry in
# the registry (symato/text/kinds.py): `bytes` reads nothing, `symato` the sym counts,
# `symato+N` the sym and syllable counts, `sentencepiece` the cleaned text. So a change
# reruns only the vocabularies it can affect.

import re

from symato.text.kinds import kind_of

# Where each thing a vocabulary can learn from lives: all of it from the train split.
VOCAB_SOURCES = {
    "syms": ["results/stats/syms.parquet"],
    "syllables": ["results/stats/syllables.parquet"],
    "text": expand("results/clean/train/{shard}.parquet", shard=CLEAN_SHARD_IDS),
}


def vocab_inputs(wildcards) -> dict[str, list[str]]:
    """The files the tokenizer's kind learns from, by source name."""
    kind, _ = kind_of(wildcards.tokenizer)
    return {source: VOCAB_SOURCES[source] for source in kind.learns_from}


def vocab_options(wildcards) -> str:
    """The kind's `symato vocab` options from the config (only the settings it reads)."""
    kind, _ = kind_of(wildcards.tokenizer)
    return cli_options(kind.options(config))


# Every rule's {tokenizer} is one of the configured tokenizers.
wildcard_constraints:
    tokenizer="|".join(re.escape(name) for name in config["tokenizers"]),


rule vocab:
    """Build one vocabulary with `symato vocab`."""
    input:
        unpack(vocab_inputs),
    output:
        "results/vocab/{tokenizer}.json",
    params:
        options=vocab_options,
        sources=lambda wildcards, input: " ".join(
            f"--{source} " + " ".join(shlex.quote(f) for f in input[source])
            for source in sorted(input.keys())
        ),
    log:
        "results/logs/vocab/{tokenizer}.log",
    benchmark:
        "results/benchmarks/vocab/{tokenizer}.tsv"
    threads: 1
    shell:
        "{SYMATO} vocab --name {wildcards.tokenizer:q} {params.sources}"
        " --out {output:q} {params.options} > {log:q} 2>&1"


TARGETS["data"] += expand("results/vocab/{tokenizer}.json", tokenizer=config["tokenizers"])
