"""Figure training_curves: validation bits per byte vs tokens and vs FLOPs, every run.

Rule plot_training_curves (rules/report.smk); edit this file to restyle the figure.
Colour: the architecture's (darker = larger model); line style: the tokenizer's.
"""

from symato.report import figures

plt = figures.pyplot()
MAX_LABELLED_RUNS = 16  # more runs than this: no legend, a note explains the colours


def draw(curves, style: figures.Style):
    """The figure (a matplotlib Figure) from the curve table."""
    fig, axes = plt.subplots(1, 2, figsize=(11, 4.4), sharey=True)
    if not len(curves):
        for ax in axes:
            figures.empty_panel(ax, "no validation points in any metrics.jsonl")
        return fig
    runs = curves.groupby(["tokenizer", "arch", "run"], sort=True)
    label_each = runs.ngroups <= MAX_LABELLED_RUNS
    shade = style.size_shades(curves)
    for ax, x, xlabel in ((axes[0], "tokens", "training tokens"),
                          (axes[1], "flops", "training FLOPs")):
        drawn = 0
        for (tok, arch, run), g in runs:
            g = g.dropna(subset=[x, "val_bpb"]).sort_values(x)
            if len(g):
                colour = shade.get((arch, g["params"].iloc[0]), style.colour[arch])
                ax.plot(g[x], g["val_bpb"], color=colour, ls=style.line[tok], marker=".", ms=3,
                        lw=1.0, alpha=0.85, label=f"{tok}/{run}" if label_each else None)
                drawn += 1
        if not drawn:
            figures.empty_panel(ax, f"no {xlabel} recorded")
            continue
        figures.log_x(ax)
        figures.loss_axis(ax)
        ax.set_xlabel(xlabel)
    axes[0].set_ylabel("validation bits per byte")
    axes[0].set_title("Validation loss vs tokens")
    axes[1].set_title("Validation loss vs compute")
    if label_each:
        axes[1].legend(fontsize=6, loc="upper right")
    else:
        figures.note_below(axes[0], [f"{runs.ngroups} runs: colour = architecture "
                                     "(darker = larger), line style = tokenizer"])
    return fig


if "snakemake" in globals():  # run by Snakemake; tests import draw() instead
    sm = snakemake
    with figures.logged_to(sm.log[0]):
        style = figures.Style.of(figures.load_runs(sm.input.runs))
        fig = draw(figures.load_curves(sm.input.curves), style)
        figures.save_figure(fig, sm.output.png, sm.output.svg, dpi=sm.params.dpi)
