"""Figure training_curves: did every run train smoothly? Validation bits per byte during
training, against tokens and against FLOPs, one row of panels per architecture.

Rule plot_training_curves (rules/report.smk); edit this file to restyle the figure.
Colour: tokenizer, line style: architecture (symato.report.style, as in every figure).
"""

from symato.report import figures

plt = figures.pyplot()


def draw(curves, style: figures.Style):
    """The figure (a matplotlib Figure) from the curve table."""
    if not len(curves):
        fig, axes = plt.subplots(1, 2, figsize=(10, 4.0))
        for ax in axes:
            figures.empty_panel(ax, "no validation points in any metrics.jsonl")
        return fig
    archs = [a for a in style.archs if a in set(curves["arch"])]
    fig, axes = plt.subplots(len(archs), 2, figsize=(9, 2.6 * len(archs) + 1.0), squeeze=False,
                             sharey="row")
    for row, arch in zip(axes, archs, strict=True):
        runs = curves[curves["arch"] == arch].groupby(["tokenizer", "run"], sort=True)
        for ax, x, xlabel in ((row[0], "tokens", "training tokens"),
                              (row[1], "flops", "training FLOPs")):
            drawn = 0
            for (tok, _run), g in runs:
                g = g.dropna(subset=[x, "val_bpb"]).sort_values(x)
                if len(g):  # a run shorter than eval_interval has its final point only
                    ax.plot(g[x], g["val_bpb"], color=style.tok(tok), ls=style.ls(arch),
                            lw=0.8, alpha=0.7, marker="o" if len(g) == 1 else None, ms=2.5)
                    drawn += 1
            if not drawn:
                figures.empty_panel(ax, f"no {xlabel} recorded")
                continue
            figures.log_x(ax)
            figures.loss_axis(ax)
            ax.set_xlabel(xlabel)
            ax.set_title(f"{arch}: {runs.ngroups} runs", fontsize=9)
        row[0].set_ylabel("val bits per byte")
    figures.legend_below(fig, *style.handles(curves["tokenizer"], archs))
    fig.suptitle("Validation loss during training (one line per run; a dot: a run shorter "
                 "than eval_interval, its final point only)", fontsize=10)
    figures.clear_tick_collisions(fig)
    return fig


if "snakemake" in globals():  # run by Snakemake; tests import draw() instead
    sm = snakemake
    with figures.logged_to(sm.log[0]):
        style = figures.Style.of(figures.load_runs(sm.input.runs),
                                 tokenizers=sm.params.tokenizers)
        fig = draw(figures.load_curves(sm.input.curves), style)
        figures.save_figure(fig, sm.output.png, sm.output.svg, dpi=sm.params.dpi)
