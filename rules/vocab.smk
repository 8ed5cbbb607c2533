# Stage 4: one vocabulary per entry of `tokenizers:` (results/vocab/{tokenizer}.json).
#
# Each kind depends only on what it is built from, so a change reruns only the
# vocabularies it can affect: `bytes` on nothing, `symato` on the sym counts,
# `symato+N` on sym and syllable counts, `sentencepiece` on the cleaned text,
# `symato-bpeV` on the sym counts and the cleaned text. Likewise a vocabulary's params
# hold only the `vocab:` settings its kind uses. The learned kinds get their training
# text as an explicit list of Parquet files (`--texts`).

import re
import shlex

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
_TEXTS = expand(f"{RESULTS}/clean/shards/{{shard}}.parquet", shard=CLEAN_SHARD_IDS)
_TEXT_OPTION = "--texts " + " ".join(shlex.quote(path) for path in _TEXTS)


def _vocab_job(name):
    """(input files, CLI options) of one configured tokenizer."""
    if name == "bytes":
        return [], ""
    if name == "sentencepiece":
        size = _VOCAB_CONFIG.get("sentencepiece_size", 2816)
        return _TEXTS, f"--size {size} {_SP_OPTIONS} {_TEXT_OPTION}"
    if name.startswith("symato-bpe"):  # the size is in the name
        style = config["clean"].get("tone_style", "new")
        return [f"{RESULTS}/stats/syms.parquet", *_TEXTS], f"--tone-style {style} {_TEXT_OPTION}"
    extra = [f"{RESULTS}/stats/syllables.parquet"] if name != "symato" else []
    return [f"{RESULTS}/stats/syms.parquet", *extra], _SYMATO_OPTIONS


# name -> (input files, CLI options) for every configured tokenizer
VOCAB_JOBS = {name: _vocab_job(name) for name in config["tokenizers"]}


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
        options=lambda wildcards: VOCAB_JOBS[wildcards.tokenizer][1],
    log:
        f"{LOGS}/vocab/{{tokenizer}}.log",
    benchmark:
        f"{BENCH}/vocab/{{tokenizer}}.tsv"
    threads: 1
    shell:
        "{SYMATO} vocab --name {wildcards.tokenizer:q} --stats {params.stats:q}"
        " --out {output:q} {params.options} > {log:q} 2>&1"


TARGETS["data"] += expand(f"{VOCAB}/{{tokenizer}}.json", tokenizer=config["tokenizers"])
