# Stage 3: syllable statistics. One counting job per cleaned shard (parallel), then one
# merge that writes tables, plots and summary.md under results/stats/.

STATS = f"{RESULTS}/stats"
STATS_TABLES = [
    "syllables.parquet",
    "syms.parquet",
    "marktones.csv",
    "case.csv",
    "token_classes.csv",
    "coverage.csv",
    "top_non_syllables.csv",
]
STATS_PLOTS = ["syllable_rank.png", "coverage.png", "token_classes.png"]
# Each output is registered for the Snakemake report with a caption named by its stem
# (workflow/report/<stem>.rst; the path is relative to this file).
STATS_REPORTED = {
    name: report(
        f"{STATS}/{name}",
        category="Corpus",
        caption=f"../workflow/report/{name.rsplit('.', 1)[0]}.rst",
    )
    for name in [*STATS_TABLES, *STATS_PLOTS, "summary.md"]
}


rule stats_shard:
    """Count letter runs and non-letter characters of one cleaned shard."""
    input:
        f"{RESULTS}/clean/shards/{{shard}}.parquet",
    output:
        f"{STATS}/shards/{{shard}}.parquet",
    log:
        f"{LOGS}/stats_shard/{{shard}}.log",
    benchmark:
        f"{BENCH}/stats_shard/{{shard}}.tsv"
    threads: 1
    shell:
        "{SYMATO} stats --clean {input:q} --out {output:q} > {log:q} 2>&1"


rule stats_merge:
    """Merge shard counts into syllable/sym/marktone/case tables, coverage and plots."""
    input:
        expand(f"{STATS}/shards/{{shard}}.parquet", shard=CLEAN_SHARD_IDS),
    output:
        tables=[STATS_REPORTED[name] for name in STATS_TABLES],
        plots=[STATS_REPORTED[name] for name in STATS_PLOTS],
        summary=STATS_REPORTED["summary.md"],
    params:
        out=lambda wildcards, output: os.path.dirname(output.summary),
        top=config["stats"]["top_non_syllables"],
        tone_style=config["clean"]["tone_style"],
    log:
        f"{LOGS}/stats_merge/stats_merge.log",
    benchmark:
        f"{BENCH}/stats_merge/stats_merge.tsv"
    threads: 1
    shell:
        "{SYMATO} stats-merge {input:q} --out {params.out:q} --top {params.top}"
        " --tone-style {params.tone_style} > {log:q} 2>&1"


TARGETS["data"] += list(STATS_REPORTED.values())
