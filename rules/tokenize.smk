# Stage 5: tokenize every cleaned shard with every configured tokenizer into Arrow IPC
# token shards (one job per tokenizer x shard), then one manifest per tokenizer.

TOKEN_SPLITS = ["train", "val"]


rule tokenize:
    """One cleaned shard -> its train and val Arrow token shards for one tokenizer."""
    input:
        vocab="results/vocab/{tokenizer}.json",
        clean_train="results/clean/train/{shard}.parquet",
        clean_val="results/clean/val/{shard}.parquet",
    output:
        train="results/shards/{tokenizer}/train/{shard}.arrow",
        val="results/shards/{tokenizer}/val/{shard}.arrow",
    log:
        "results/logs/tokenize/{tokenizer}/{shard}.log",
    benchmark:
        "results/benchmarks/tokenize/{tokenizer}/{shard}.tsv"
    threads: 1
    shell:
        "{SYMATO} tokenize --vocab {input.vocab:q} --clean-train {input.clean_train:q}"
        " --clean-val {input.clean_val:q} --train {output.train:q} --val {output.val:q}"
        " > {log:q} 2>&1"


# A small merge of per-shard counts: not worth a cluster job.
localrules:
    shards_manifest,


rule shards_manifest:
    """Sum a tokenizer's shards per split: tokens, documents, syllables, UTF-8 bytes."""
    input:
        expand(
            "results/shards/{{tokenizer}}/{split}/{shard}.arrow",
            split=TOKEN_SPLITS,
            shard=CLEAN_SHARD_IDS,
        ),
    output:
        "results/shards/{tokenizer}/manifest.json",
    params:
        folder=lambda wildcards, output: os.path.dirname(output[0]),
    log:
        "results/logs/shards_manifest/{tokenizer}.log",
    benchmark:
        "results/benchmarks/shards_manifest/{tokenizer}.tsv"
    threads: 1
    shell:
        "{SYMATO} tokenize manifest {input:q} --dir {params.folder:q}"
        " --tokenizer {wildcards.tokenizer:q} > {log:q} 2>&1"


TARGETS["data"] += expand("results/shards/{tokenizer}/manifest.json", tokenizer=config["tokenizers"])
