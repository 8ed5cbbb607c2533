# Stage 8: the results table, scaling-law fits, figures and summary.md, all cheap (local).
# Every figure and table is registered with report(); `snakemake --report
# results/report.html` then rebuilds the HTML from what is on disk, without rerunning.

from symato.report.figures import FIGURES

# Figures of `symato plot` (symato.report.figures.FIGURES) -> report category.
REPORT_FIGURES = {
    "scaling_params": "Scaling laws",
    "loss_vs_compute": "Scaling laws",
    "training_curves": "Training",
    "tokenizers": "Vocabulary",
}
assert sorted(REPORT_FIGURES) == sorted(FIGURES), "rules/report.smk: figure list out of date"
REPORT_RUNS = [f"results/runs/{r['tokenizer']}/{r['run']}" for r in GRID_RUNS]


def caption(name: str) -> str:
    """The caption file of a report item (relative to this rules file)."""
    return f"../workflow/report/{name}.rst"


localrules:
    collect_runs,
    fit_scaling,
    plot_scaling,
    results_summary,


rule collect_runs:
    """All runs' settings + evaluation + training log and the shard manifests into CSVs."""
    input:
        metrics=[f"{d}/metrics.json" for d in REPORT_RUNS],
        logs=[f"{d}/metrics.jsonl" for d in REPORT_RUNS],
        settings=[f"{d}/settings.json" for d in REPORT_RUNS],
        manifests=expand("results/shards/{tokenizer}/manifest.json", tokenizer=config["tokenizers"]),
    output:
        runs=report("results/scaling/runs.csv", caption=caption("runs_table"), category="Training"),
        curves="results/scaling/curves.csv",
        tokenizers=report(
            "results/scaling/tokenizers.csv", caption=caption("tokenizer_table"), category="Vocabulary"
        ),
    params:
        dirs=lambda wildcards, input: [os.path.dirname(p) for p in input.metrics],
    log:
        "results/logs/collect_runs/collect_runs.log",
    benchmark:
        "results/benchmarks/collect_runs/collect_runs.tsv"
    shell:
        "{SYMATO} collect {params.dirs:q} --manifests {input.manifests:q} --out {output.runs:q}"
        " --curves {output.curves:q} --tokenizers {output.tokenizers:q} > {log:q} 2>&1"


rule fit_scaling:
    """L(N) and L(N, D) per tokenizer and architecture, bootstrap intervals, frontier."""
    input:
        "results/scaling/runs.csv",
    output:
        json="results/scaling/fits.json",
        csv=report("results/scaling/fits.csv", caption=caption("fits_table"), category="Scaling laws"),
    params:
        params_column=config["report"]["params_column"],
        bootstrap=config["report"]["bootstrap"],
        seed=config["report"]["seed"],
    log:
        "results/logs/fit_scaling/fit_scaling.log",
    benchmark:
        "results/benchmarks/fit_scaling/fit_scaling.tsv"
    shell:
        "{SYMATO} fit --runs {input:q} --out {output.json:q} --csv {output.csv:q}"
        " --params-column {params.params_column} --bootstrap {params.bootstrap}"
        " --seed {params.seed} > {log:q} 2>&1"


rule plot_scaling:
    """The report's figures (PNG for the report, SVG beside each for papers)."""
    input:
        runs="results/scaling/runs.csv",
        curves="results/scaling/curves.csv",
        tokenizers="results/scaling/tokenizers.csv",
        fits="results/scaling/fits.json",
    output:
        **{
            name: report(f"results/plots/{name}.png", caption=caption(name), category=category)
            for name, category in REPORT_FIGURES.items()
        },
        svg=[f"results/plots/{name}.svg" for name in REPORT_FIGURES],
    params:
        outdir=lambda wildcards, output: os.path.dirname(output[0]),
        dpi=config["report"]["dpi"],
    log:
        "results/logs/plot_scaling/plot_scaling.log",
    benchmark:
        "results/benchmarks/plot_scaling/plot_scaling.tsv"
    shell:
        "{SYMATO} plot --runs {input.runs:q} --curves {input.curves:q}"
        " --tokenizers {input.tokenizers:q} --fits {input.fits:q} --outdir {params.outdir:q}"
        " --dpi {params.dpi} > {log:q} 2>&1"


rule results_summary:
    """results/summary.md: runs, fitted laws and tokenizer comparison as Markdown tables."""
    input:
        runs="results/scaling/runs.csv",
        tokenizers="results/scaling/tokenizers.csv",
        fits="results/scaling/fits.json",
    output:
        report("results/summary.md", caption=caption("results_summary"), category="Scaling laws"),
    log:
        "results/logs/results_summary/results_summary.log",
    benchmark:
        "results/benchmarks/results_summary/results_summary.tsv"
    shell:
        "{SYMATO} summary --runs {input.runs:q} --fits {input.fits:q}"
        " --tokenizers {input.tokenizers:q} --out {output:q} > {log:q} 2>&1"


TARGETS["report"] += [
    "results/scaling/fits.json",
    "results/scaling/fits.csv",
    "results/summary.md",
    *(f"results/plots/{name}.{ext}" for name in REPORT_FIGURES for ext in ("png", "svg")),
]
