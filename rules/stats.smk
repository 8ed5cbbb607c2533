# Stage 3: syllable statistics of the train split (the vocabularies and the restoration
# baseline learn from them, so they never see validation text). One counting job per
# cleaned train shard (parallel), then one merge that writes tables, plots and
# summary.md under results/stats/.

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


def stats_output(name: str):
    """results/stats/NAME, registered for the report with the caption named by its stem
    (workflow/report/<stem>.rst; the path is relative to this file)."""
    stem = name.rsplit(".", 1)[0]
    return report(f"results/stats/{name}", category="Corpus",
                  caption=f"../workflow/report/{stem}.rst")


rule stats_shard:
    """Count letter runs and non-letter characters of one cleaned train shard."""
    input:
        "results/clean/train/{shard}.parquet",
    output:
        "results/stats/shards/{shard}.parquet",
    log:
        "results/logs/stats_shard/{shard}.log",
    benchmark:
        "results/benchmarks/stats_shard/{shard}.tsv"
    threads: 1
    shell:
        "{SYMATO} stats --clean {input:q} --out {output:q} > {log:q} 2>&1"


rule stats_merge:
    """Merge shard counts into syllable/sym/marktone/case tables, coverage and plots."""
    input:
        expand("results/stats/shards/{shard}.parquet", shard=CLEAN_SHARD_IDS),
    output:
        tables=[stats_output(name) for name in STATS_TABLES],
        plots=[stats_output(name) for name in STATS_PLOTS],
        summary=stats_output("summary.md"),
    params:
        out=lambda wildcards, output: os.path.dirname(output.summary),
        top=config["stats"]["top_non_syllables"],
        tone_style=config["clean"]["tone_style"],
    log:
        "results/logs/stats_merge/stats_merge.log",
    benchmark:
        "results/benchmarks/stats_merge/stats_merge.tsv"
    threads: 1
    shell:
        "{SYMATO} stats merge {input:q} --out {params.out:q} --top {params.top}"
        " --tone-style {params.tone_style} > {log:q} 2>&1"


TARGETS["data"] += [f"results/stats/{name}" for name in [*STATS_TABLES, *STATS_PLOTS, "summary.md"]]
