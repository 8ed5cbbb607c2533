# Stage 4: one vocabulary per entry of `tokenizers:` (results/vocab/{tokenizer}.json).
#
# Each kind depends only on what it is built from, so a change reruns only the
# vocabularies it can affect: `bytes` on nothing, `symato` on the sym counts,
# `symato+N` on sym and syllable counts, `sentencepiece` on the cleaned text. Likewise a
# vocabulary's params hold only the `vocab:` settings its kind uses.

import re

VOCAB = f"{RESULTS}/vocab"
_VOCAB_CONFIG = config["vocab"]
_SP_OPTIONS = " ".join(
    f"--sp-{key.replace('_', '-')} {value}"
    for key, value in sorted(_VOCAB_CONFIG.get("sentencepiece", {}).items())
)
# symato vocabularies use the tone placement the cleaned text was written in
_SYMATO_OPTIONS = (
    f"--size {_VOCAB_CONFIG.get('symato_size', 2816)} "
    f"--tone-style {config['clean'].get('tone_style', 'new')}"
)
# name -> (input files, CLI options) for every configured tokenizer
VOCAB_JOBS = {
    name: (
        ([], "")
        if name == "bytes"
        else (
            expand(f"{RESULTS}/clean/shards/{{shard}}.parquet", shard=CLEAN_SHARD_IDS),
            f"--size {_VOCAB_CONFIG.get('sentencepiece_size', 2816)} {_SP_OPTIONS}",
        )
        if name == "sentencepiece"
        else (
            [f"{RESULTS}/stats/syms.parquet"]
            + ([f"{RESULTS}/stats/syllables.parquet"] if name != "symato" else []),
            _SYMATO_OPTIONS,
        )
    )
    for name in config["tokenizers"]
}


wildcard_constraints:
    tokenizer="|".join(re.escape(name) for name in VOCAB_JOBS),


rule vocab:
    """Build one vocabulary with `symato vocab`."""
    input:
        lambda wildcards: VOCAB_JOBS[wildcards.tokenizer][0],
    output:
        f"{VOCAB}/{{tokenizer}}.json",
    params:
        stats=f"{RESULTS}/stats",
        clean=f"{RESULTS}/clean",
        options=lambda wildcards: VOCAB_JOBS[wildcards.tokenizer][1],
    log:
        f"{LOGS}/vocab/{{tokenizer}}.log",
    benchmark:
        f"{BENCH}/vocab/{{tokenizer}}.tsv"
    threads: 1
    shell:
        "{SYMATO} vocab --name {wildcards.tokenizer:q} --stats {params.stats:q}"
        " --clean {params.clean:q} --out {output:q} {params.options} > {log:q} 2>&1"


TARGETS["data"] += expand(f"{VOCAB}/{{tokenizer}}.json", tokenizer=config["tokenizers"])
