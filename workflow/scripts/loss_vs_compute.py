"""Figure loss_vs_compute: which runs are best for a compute budget, per architecture?

Rule plot_loss_vs_compute (rules/report.smk); edit this file to restyle the figure.
One panel per architecture (shared axes); colour: tokenizer, line style and marker:
architecture (symato.report.style). Steps: the frontier over runs (no cheaper run is
better); thick pale line: the loss along the compute-optimal allocation of the fitted
L(N, D).
"""

from matplotlib.lines import Line2D

from symato.report import figures
from symato.report.fit import compute_frontier

plt = figures.pyplot()


def draw(runs, fits: dict, style: figures.Style):
    """The figure (a matplotlib Figure) from the runs table and fits.json."""
    pts = runs.dropna(subset=["loss", "flops"])
    if not len(pts):
        fig, ax = plt.subplots(figsize=(7, 4.8))
        figures.empty_panel(ax, "no runs with FLOPs and bits per byte yet")
        return fig
    archs = [a for a in style.archs if a in set(pts["arch"])]
    fig, axes = figures.panel_grid(plt, len(archs), 4, 3.6, 3.4, sharex=True, sharey=True)
    notes = []
    for ax, arch in zip(axes.flat, archs, strict=False):
        mine = pts[pts["arch"] == arch]
        for tok in figures.tokenizer_order(mine["tokenizer"]):
            g = mine[mine["tokenizer"] == tok]
            colour = style.tok(tok)
            ax.scatter(g["flops"], g["loss"], color=colour, marker=style.mk(arch), s=14,
                       zorder=3, edgecolor="black", linewidth=0.3, alpha=0.8)
            group = figures.group_fits(fits, tok, arch)
            front = group.get("frontier") or compute_frontier(g.to_dict("records"))
            if len(front) > 1:
                ax.step([f["flops"] for f in front], [f["loss"] for f in front], where="post",
                        color=colour, ls=style.ls(arch), lw=1.0)
            nd = group.get("fits", {}).get("L_ND", {})
            curve = nd.get("optimal_allocation", {}).get("curve")
            if curve:
                ax.plot(curve["flops"], curve["loss"], color=colour, lw=3.5, alpha=0.35,
                        solid_capstyle="round", label=f"compute-optimal L(N,D) ({arch} · {tok})")
            else:
                notes.append((f"{arch} · {tok}",
                              f"no L(N,D) optimum ({nd.get('reason', 'not fitted')})"))
        figures.log_x(ax)
        figures.loss_axis(ax)
        ax.set_title(arch)
        ax.set_xlabel("training FLOPs")
    for ax in axes[:, 0]:
        ax.set_ylabel("validation bits per byte")
    extra = [(Line2D([], [], color="0.3", lw=1.0, drawstyle="steps-post"), "frontier over runs"),
             (Line2D([], [], color="0.3", lw=3.5, alpha=0.35), "compute-optimal L(N,D)")]
    figures.legend_below(fig, *style.handles(pts["tokenizer"], archs, extra),
                         notes=figures.group_notes(notes))
    fig.suptitle("Loss vs training compute", fontsize=10)
    figures.clear_tick_collisions(fig)
    return fig


if "snakemake" in globals():  # run by Snakemake; tests import draw() instead
    sm = snakemake
    with figures.logged_to(sm.log[0]):
        runs = figures.load_runs(sm.input.runs)
        style = figures.Style.of(runs, tokenizers=sm.params.tokenizers)
        fig = draw(runs, figures.load_fits(sm.input.fits), style)
        figures.save_figure(fig, sm.output.png, sm.output.svg, dpi=sm.params.dpi)
