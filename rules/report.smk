# Stage 8: the results table, scaling-law fits, figures and summary.md, all cheap (local).
# Every figure and table is registered with report(); `snakemake --report
# results/report.html` then rebuilds the HTML from what is on disk, without rerunning.

# Computing (collect, fit) runs the `symato` CLI; each figure and summary.md is a short
# script in workflow/scripts/ run with `script:`, one rule each, so restyling a figure
# (editing its script) reruns only that rule: Snakemake reruns a script rule whose
# script is newer than its outputs.

REPORT_FIGURES = ["scaling_params", "loss_vs_compute", "training_curves", "tokenizers",
                  "equal_size", "tokenizer_study", "lr_sweep", "repetition"]


def report_run_files(name: str):
    """An input function: one file of every run the report reads, the learning-rate
    sweeps' extension runs included (report_run_dirs, rules/sweep.smk: it waits for the
    sweeps' final decisions)."""
    return lambda wildcards: [f"{d}/{name}" for d in report_run_dirs()]


def caption(name: str) -> str:
    """The caption file of a report item (relative to this rules file)."""
    return f"../workflow/report/{name}.rst"


localrules:
    collect_runs,
    fit_scaling,
    plot_scaling_params,
    plot_loss_vs_compute,
    plot_training_curves,
    plot_tokenizers,
    plot_equal_size,
    fit_study,
    plot_tokenizer_study,
    plot_lr_sweep,
    plot_repetition,
    results_summary,


rule collect_runs:
    """All runs' settings + evaluation + training log and the shard manifests into CSVs."""
    input:
        metrics=report_run_files("metrics.json"),
        logs=report_run_files("metrics.jsonl"),
        settings=report_run_files("settings.json"),
        sweeps=lambda wildcards: sweep_final_files(),
        manifests=expand("results/shards/{tokenizer}/manifest.json", tokenizer=config["tokenizers"]),
        lm_eval=report_run_files("lm_eval.json") if config["eval"]["lm_eval"] else [],
    output:
        runs=report("results/scaling/runs.csv", caption=caption("runs_table"), category="Training"),
        curves="results/scaling/curves.csv",
        tokenizers=report(
            "results/scaling/tokenizers.csv", caption=caption("tokenizer_table"), category="Vocabulary"
        ),
    params:
        dirs=lambda wildcards, input: [os.path.dirname(path) for path in input.metrics],
        lm_eval="--lm-eval" if config["eval"]["lm_eval"] else "",
    log:
        "results/logs/collect_runs/collect_runs.log",
    benchmark:
        "results/benchmarks/collect_runs/collect_runs.tsv"
    shell:
        "{SYMATO} collect {params.dirs:q} --manifests {input.manifests:q} --out {output.runs:q}"
        " --curves {output.curves:q} --tokenizers {output.tokenizers:q} {params.lm_eval}"
        " > {log:q} 2>&1"


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


rule fit_study:
    """The tokenizer study: L(N, D) per tokenizer with D in bytes of text, and crossovers."""
    input:
        runs="results/scaling/runs.csv",
        tokenizers="results/scaling/tokenizers.csv",
    output:
        json="results/scaling/study.json",
        csv=report(
            "results/scaling/study.csv", caption=caption("study_table"), category="Scaling laws"
        ),
        crossovers=report(
            "results/scaling/crossovers.csv",
            caption=caption("crossovers_table"),
            category="Vocabulary",
        ),
    params:
        params_column=config["report"]["params_column"],
        bootstrap=config["report"]["bootstrap"],
        seed=config["report"]["seed"],
    log:
        "results/logs/fit_study/fit_study.log",
    benchmark:
        "results/benchmarks/fit_study/fit_study.tsv"
    shell:
        "{SYMATO} study --runs {input.runs:q} --tokenizers {input.tokenizers:q}"
        " --out {output.json:q} --csv {output.csv:q} --crossovers {output.crossovers:q}"
        " --params-column {params.params_column} --bootstrap {params.bootstrap}"
        " --seed {params.seed} > {log:q} 2>&1"


rule plot_tokenizer_study:
    """Figure: bits per byte vs text per tokenizer at each size, fitted curves, crossovers."""
    input:
        study="results/scaling/study.json",
    output:
        png=report(
            "results/plots/tokenizer_study.png",
            caption=caption("tokenizer_study"),
            category="Vocabulary",
        ),
        svg="results/plots/tokenizer_study.svg",
    params:
        dpi=config["report"]["dpi"],
        tokenizers=config["tokenizers"],
    log:
        "results/logs/plot_tokenizer_study/plot_tokenizer_study.log",
    benchmark:
        "results/benchmarks/plot_tokenizer_study/plot_tokenizer_study.tsv"
    script:
        "../workflow/scripts/tokenizer_study.py"


rule plot_lr_sweep:
    """Figure: bits per byte vs learning rate per sweep, the chosen value marked."""
    input:
        fits="results/scaling/fits.json",
    output:
        png=report(
            "results/plots/lr_sweep.png", caption=caption("lr_sweep"), category="Training"
        ),
        svg="results/plots/lr_sweep.svg",
    params:
        dpi=config["report"]["dpi"],
        tokenizers=config["tokenizers"],
    log:
        "results/logs/plot_lr_sweep/plot_lr_sweep.log",
    benchmark:
        "results/benchmarks/plot_lr_sweep/plot_lr_sweep.tsv"
    script:
        "../workflow/scripts/lr_sweep.py"


rule plot_repetition:
    """Figure: bits per byte vs tokens trained per unique text size (repeated epochs)."""
    input:
        runs="results/scaling/runs.csv",
        fits="results/scaling/fits.json",
    output:
        png=report(
            "results/plots/repetition.png", caption=caption("repetition"), category="Scaling laws"
        ),
        svg="results/plots/repetition.svg",
    params:
        dpi=config["report"]["dpi"],
        tokenizers=config["tokenizers"],
    log:
        "results/logs/plot_repetition/plot_repetition.log",
    benchmark:
        "results/benchmarks/plot_repetition/plot_repetition.tsv"
    script:
        "../workflow/scripts/repetition.py"


rule plot_scaling_params:
    """Figure: bits per byte vs parameters with the fitted L(N) and L(N, D)."""
    input:
        runs="results/scaling/runs.csv",
        fits="results/scaling/fits.json",
    output:
        png=report(
            "results/plots/scaling_params.png",
            caption=caption("scaling_params"),
            category="Scaling laws",
        ),
        svg="results/plots/scaling_params.svg",
    params:
        dpi=config["report"]["dpi"],
        tokenizers=config["tokenizers"],
    log:
        "results/logs/plot_scaling_params/plot_scaling_params.log",
    benchmark:
        "results/benchmarks/plot_scaling_params/plot_scaling_params.tsv"
    script:
        "../workflow/scripts/scaling_params.py"


rule plot_loss_vs_compute:
    """Figure: final bits per byte vs training FLOPs, the frontier and the L(N, D) optimum."""
    input:
        runs="results/scaling/runs.csv",
        fits="results/scaling/fits.json",
    output:
        png=report(
            "results/plots/loss_vs_compute.png",
            caption=caption("loss_vs_compute"),
            category="Scaling laws",
        ),
        svg="results/plots/loss_vs_compute.svg",
    params:
        dpi=config["report"]["dpi"],
        tokenizers=config["tokenizers"],
    log:
        "results/logs/plot_loss_vs_compute/plot_loss_vs_compute.log",
    benchmark:
        "results/benchmarks/plot_loss_vs_compute/plot_loss_vs_compute.tsv"
    script:
        "../workflow/scripts/loss_vs_compute.py"


rule plot_training_curves:
    """Figure: validation bits per byte vs tokens and vs FLOPs for every run."""
    input:
        runs="results/scaling/runs.csv",
        curves="results/scaling/curves.csv",
    output:
        png=report(
            "results/plots/training_curves.png",
            caption=caption("training_curves"),
            category="Training",
        ),
        svg="results/plots/training_curves.svg",
    params:
        dpi=config["report"]["dpi"],
        tokenizers=config["tokenizers"],
    log:
        "results/logs/plot_training_curves/plot_training_curves.log",
    benchmark:
        "results/benchmarks/plot_training_curves/plot_training_curves.tsv"
    script:
        "../workflow/scripts/training_curves.py"


rule plot_tokenizers:
    """Figure: tokens per syllable and per byte of each tokenizer."""
    input:
        tokenizers="results/scaling/tokenizers.csv",
    output:
        png=report(
            "results/plots/tokenizers.png", caption=caption("tokenizers"), category="Vocabulary"
        ),
        svg="results/plots/tokenizers.svg",
    params:
        dpi=config["report"]["dpi"],
        tokenizers=config["tokenizers"],
    log:
        "results/logs/plot_tokenizers/plot_tokenizers.log",
    benchmark:
        "results/benchmarks/plot_tokenizers/plot_tokenizers.tsv"
    script:
        "../workflow/scripts/tokenizers.py"


rule plot_equal_size:
    """Figure: bits per byte per tokenizer at equal model body and budget, per architecture."""
    input:
        runs="results/scaling/runs.csv",
    output:
        png=report(
            "results/plots/equal_size.png", caption=caption("equal_size"), category="Vocabulary"
        ),
        svg="results/plots/equal_size.svg",
    params:
        dpi=config["report"]["dpi"],
        tokenizers=config["tokenizers"],
    log:
        "results/logs/plot_equal_size/plot_equal_size.log",
    benchmark:
        "results/benchmarks/plot_equal_size/plot_equal_size.tsv"
    script:
        "../workflow/scripts/equal_size.py"


rule results_summary:
    """results/summary.md: runs, fitted laws and tokenizer comparison as Markdown tables."""
    input:
        runs="results/scaling/runs.csv",
        tokenizers="results/scaling/tokenizers.csv",
        fits="results/scaling/fits.json",
        study="results/scaling/study.json",
        sweeps=lambda wildcards: sweep_final_files(),
        context=lambda wildcards: (["results/bench/context.json"]
                                   if config["report"]["context_bench"]["enabled"] else []),
    output:
        md=report("results/summary.md", caption=caption("results_summary"), category="Scaling laws"),
    log:
        "results/logs/results_summary/results_summary.log",
    benchmark:
        "results/benchmarks/results_summary/results_summary.tsv"
    script:
        "../workflow/scripts/summary.py"


TARGETS["report"] += [
    "results/scaling/fits.json",
    "results/scaling/fits.csv",
    "results/scaling/study.csv",
    "results/scaling/crossovers.csv",
    "results/summary.md",
    *(f"results/plots/{name}.{ext}" for name in REPORT_FIGURES for ext in ("png", "svg")),
]
