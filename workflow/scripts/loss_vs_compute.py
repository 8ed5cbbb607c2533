"""Figure loss_vs_compute: final bits per byte vs training FLOPs.

Rule plot_loss_vs_compute (rules/report.smk); edit this file to restyle the figure.
Steps: the frontier over runs (no cheaper run is better); dotted: the loss along the
compute-optimal allocation of the fitted L(N, D).
"""

from symato.report import figures
from symato.report.fit import compute_frontier

plt = figures.pyplot()


def draw(runs, fits: dict, style: figures.Style):
    """The figure (a matplotlib Figure) from the runs table and fits.json."""
    fig, ax = plt.subplots(figsize=(7, 4.8))
    pts = runs.dropna(subset=["loss", "flops"])
    if not len(pts):
        figures.empty_panel(ax, "no runs with FLOPs and bits per byte yet")
        return fig
    notes = []
    for (tok, arch), g in pts.groupby(["tokenizer", "arch"]):
        colour = style.colour[arch]
        ax.scatter(g["flops"], g["loss"], color=colour, marker=style.marker[tok], zorder=3,
                   edgecolor="black", linewidth=0.4, label=f"{arch} · {tok}")
        group = figures.group_fits(fits, tok, arch)
        front = group.get("frontier") or compute_frontier(g.to_dict("records"))
        if len(front) > 1:
            ax.step([f["flops"] for f in front], [f["loss"] for f in front], where="post",
                    color=colour, ls=style.line[tok], lw=1.0, alpha=0.8)
        nd = group.get("fits", {}).get("L_ND", {})
        curve = nd.get("optimal_allocation", {}).get("curve")
        if curve:
            ax.plot(curve["flops"], curve["loss"], color=colour, ls=":", lw=1.5,
                    label=f"  compute-optimal L(N,D) ({arch} · {tok})")
        else:
            notes.append(f"{arch} · {tok}: no L(N,D) optimum ({nd.get('reason', 'not fitted')})")
    figures.log_x(ax)
    figures.loss_axis(ax)
    ax.set_xlabel("training FLOPs")
    ax.set_ylabel("validation bits per byte")
    ax.set_title("Loss vs compute (steps: frontier over runs)")
    figures.legend_outside(ax)
    figures.note_below(ax, notes)
    return fig


if "snakemake" in globals():  # run by Snakemake; tests import draw() instead
    sm = snakemake
    with figures.logged_to(sm.log[0]):
        runs = figures.load_runs(sm.input.runs)
        fig = draw(runs, figures.load_fits(sm.input.fits), figures.Style.of(runs))
        figures.save_figure(fig, sm.output.png, sm.output.svg, dpi=sm.params.dpi)
