# Stage 5: tokenize every cleaned shard with every configured tokenizer into Arrow IPC
# token shards (one job per tokenizer x shard), then one manifest per tokenizer.

SHARDS = f"{RESULTS}/shards"
TOKEN_SPLITS = ["train", "val"]


rule tokenize:
    """One cleaned shard -> its train and val Arrow token shards for one tokenizer."""
    input:
        vocab=f"{RESULTS}/vocab/{{tokenizer}}.json",
        clean=f"{RESULTS}/clean/shards/{{shard}}.parquet",
    output:
        train=f"{SHARDS}/{{tokenizer}}/train/{{shard}}.arrow",
        val=f"{SHARDS}/{{tokenizer}}/val/{{shard}}.arrow",
    params:
        val_fraction=config["tokenize"]["val_fraction"],
    log:
        f"{LOGS}/tokenize/{{tokenizer}}/{{shard}}.log",
    benchmark:
        f"{BENCH}/tokenize/{{tokenizer}}/{{shard}}.tsv"
    threads: 1
    shell:
        "{SYMATO} tokenize --vocab {input.vocab:q} --clean {input.clean:q}"
        " --train {output.train:q} --val {output.val:q}"
        " --val-fraction {params.val_fraction} > {log:q} 2>&1"


# A small merge of per-shard counts: not worth a cluster job.
localrules:
    shards_manifest,


rule shards_manifest:
    """Sum a tokenizer's shards per split: tokens, documents, syllables, UTF-8 bytes."""
    input:
        expand(
            f"{SHARDS}/{{{{tokenizer}}}}/{{split}}/{{shard}}.arrow",
            split=TOKEN_SPLITS,
            shard=CLEAN_SHARD_IDS,
        ),
    output:
        f"{SHARDS}/{{tokenizer}}/manifest.json",
    params:
        folder=lambda wildcards: f"{SHARDS}/{wildcards.tokenizer}",
    log:
        f"{LOGS}/shards_manifest/{{tokenizer}}.log",
    benchmark:
        f"{BENCH}/shards_manifest/{{tokenizer}}.tsv"
    threads: 1
    shell:
        "{SYMATO} shards-manifest {input:q} --dir {params.folder:q}"
        " --tokenizer {wildcards.tokenizer:q} > {log:q} 2>&1"


TARGETS["data"] += expand(
    f"{SHARDS}/{{tokenizer}}/manifest.json", tokenizer=config["tokenizers"]
)


rule data:
    """Every data stage: cleaned corpus, statistics, vocabularies and token shards."""
    input:
        lambda wildcards: TARGETS["data"],
