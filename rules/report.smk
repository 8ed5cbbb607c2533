# Stage 7: the results table, scaling-law fits, figures and summary.md, all cheap (local).
# Every figure and table is registered with report(); `snakemake --report
# results/report.html` then rebuilds the HTML from what is on disk, without rerunning.

from symato.grid import with_defaults
from symato.plots import FIGURES

REPORT = with_defaults(config.get("report"), "report.schema.yaml")
SCALING = f"{RESULTS}/scaling"
PLOTS = f"{RESULTS}/plots"
# Figures of `symato plot` (symato.plots.FIGURES) -> report category.
REPORT_FIGURES = {
    "scaling_params": "Scaling laws",
    "loss_vs_compute": "Scaling laws",
    "training_curves": "Training",
    "tokenizers": "Vocabulary",
}
assert sorted(REPORT_FIGURES) == sorted(FIGURES), "rules/report.smk: figure list out of date"
# The grid comes from rules/train.smk; a workflow without it reports no runs.
REPORT_RUNS = [f"{RESULTS}/runs/{r['tokenizer']}/{r['run']}" for r in globals().get("GRID_RUNS", [])]


# Caption file of each report item, by name (relative to this rules file).
REPORT_CAPTION = "../workflow/report/{}.rst"


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
        manifests=expand(f"{RESULTS}/shards/{{tokenizer}}/manifest.json", tokenizer=config["tokenizers"]),
    output:
        runs=report(f"{SCALING}/runs.csv", caption=REPORT_CAPTION.format("runs_table"), category="Training"),
        curves=f"{SCALING}/curves.csv",
        tokenizers=report(
            f"{SCALING}/tokenizers.csv", caption=REPORT_CAPTION.format("tokenizer_table"), category="Vocabulary"
        ),
    params:
        dirs=lambda wildcards, input: [os.path.dirname(p) for p in input.metrics],
    log:
        f"{LOGS}/collect_runs/collect_runs.log",
    shell:
        "{SYMATO} collect {params.dirs:q} --manifests {input.manifests:q} --out {output.runs:q}"
        " --curves {output.curves:q} --tokenizers {output.tokenizers:q} > {log:q} 2>&1"


rule fit_scaling:
    """L(N) and L(N, D) per tokenizer and architecture, bootstrap intervals, frontier."""
    input:
        f"{SCALING}/runs.csv",
    output:
        json=f"{SCALING}/fits.json",
        csv=report(f"{SCALING}/fits.csv", caption=REPORT_CAPTION.format("fits_table"), category="Scaling laws"),
    params:
        params_column=REPORT["params_column"],
        bootstrap=REPORT["bootstrap"],
        seed=REPORT["seed"],
    log:
        f"{LOGS}/fit_scaling/fit_scaling.log",
    shell:
        "{SYMATO} fit --runs {input:q} --out {output.json:q} --csv {output.csv:q}"
        " --params-column {params.params_column} --bootstrap {params.bootstrap}"
        " --seed {params.seed} > {log:q} 2>&1"


rule plot_scaling:
    """The report's figures (PNG for the report, SVG beside each for papers)."""
    input:
        runs=f"{SCALING}/runs.csv",
        curves=f"{SCALING}/curves.csv",
        tokenizers=f"{SCALING}/tokenizers.csv",
        fits=f"{SCALING}/fits.json",
    output:
        **{
            name: report(f"{PLOTS}/{name}.png", caption=REPORT_CAPTION.format(name), category=category)
            for name, category in REPORT_FIGURES.items()
        },
        svg=[f"{PLOTS}/{name}.svg" for name in REPORT_FIGURES],
    params:
        outdir=lambda wildcards, output: os.path.dirname(output[0]),
        dpi=REPORT["dpi"],
    log:
        f"{LOGS}/plot_scaling/plot_scaling.log",
    shell:
        "{SYMATO} plot --runs {input.runs:q} --curves {input.curves:q}"
        " --tokenizers {input.tokenizers:q} --fits {input.fits:q} --outdir {params.outdir:q}"
        " --dpi {params.dpi} > {log:q} 2>&1"


rule results_summary:
    """results/summary.md: runs, fitted laws and tokenizer comparison as Markdown tables."""
    input:
        runs=f"{SCALING}/runs.csv",
        tokenizers=f"{SCALING}/tokenizers.csv",
        fits=f"{SCALING}/fits.json",
    output:
        report(f"{RESULTS}/summary.md", caption=REPORT_CAPTION.format("results_summary"), category="Scaling laws"),
    log:
        f"{LOGS}/results_summary/results_summary.log",
    shell:
        "{SYMATO} summary --runs {input.runs:q} --fits {input.fits:q}"
        " --tokenizers {input.tokenizers:q} --out {output:q} > {log:q} 2>&1"


TARGETS["report"] += [
    f"{SCALING}/fits.json",
    f"{SCALING}/fits.csv",
    f"{RESULTS}/summary.md",
    *(f"{PLOTS}/{name}.{ext}" for name in REPORT_FIGURES for ext in ("png", "svg")),
]


rule report_inputs:
    """Everything the HTML report shows (then: snakemake --report results/report.html)."""
    input:
        lambda wildcards: TARGETS["report"],
