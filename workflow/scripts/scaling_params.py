"""Figure scaling_params: how does bits per byte fall with model size, per architecture?

Rule plot_scaling_params (rules/report.smk); edit this file to restyle the figure.
One panel per architecture (shared y-axis); colour: tokenizer, line style and marker:
architecture (symato.report.style, the same in every figure). Filled points: runs at
the budget L(N) was fitted at, with the fitted L(N) and its 95% bootstrap band (bands
only where few share a panel); hollow: the group's runs at other budgets (fitted with
L(N, D): loss_vs_compute and tokenizer_study). The fitted parameters are in fits.csv.
"""

from symato.report import figures

plt = figures.pyplot()


def draw(runs, fits: dict, style: figures.Style):
    """The figure (a matplotlib Figure) from the runs table and fits.json."""
    col = figures.params_column(fits)
    pts = runs.dropna(subset=["loss", col])
    if not len(pts):
        fig, ax = plt.subplots(figsize=(7, 4.8))
        figures.empty_panel(ax, "no runs with bits per byte yet")
        return fig
    archs = [a for a in style.archs if a in set(pts["arch"])]
    fig, axes = figures.panel_grid(plt, len(archs), 4, 3.6, 3.4, sharey=True)
    notes = []
    for ax, arch in zip(axes.flat, archs, strict=False):
        mine = pts[pts["arch"] == arch]
        groups = sorted(mine.groupby("tokenizer"), key=lambda kv: figures.tokenizer_key(kv[0]))
        bands = sum(figures.group_fits(fits, t, arch).get("fits", {}).get("L_N", {})
                    .get("status") == "ok" for t, _ in groups) <= figures.MAX_BANDS
        for tok, g in groups:
            colour, marker = style.tok(tok), style.mk(arch)
            ln = figures.group_fits(fits, tok, arch).get("fits", {}).get("L_N", {})
            main = figures.on_budget(g["tokens"], ln.get("tokens"))
            ax.scatter(g[col][main], g["loss"][main], color=colour, marker=marker, s=22,
                       zorder=3, edgecolor="black", linewidth=0.3)
            if not main.all():
                ax.scatter(g[col][~main], g["loss"][~main], facecolors="none", s=14,
                           edgecolors=colour, marker=marker, zorder=2, linewidth=0.7,
                           alpha=0.6)
            if ln.get("status") == "at_bound" and "curve" in ln:
                # it describes the runs, but a parameter is not measured: drawn thin
                notes.append((f"{arch} · {tok}", "thin curve: at bound "
                              f"({', '.join(ln.get('at_bound', [])) or 'a parameter'})"))
                ax.plot(ln["curve"]["params"], ln["curve"]["loss"], color=colour,
                        ls=style.ls(arch), lw=0.7, alpha=0.7)
                continue
            if ln.get("status") != "ok":
                notes.append((f"{arch} · {tok}", "points only "
                              f"({ln.get('reason') or 'no fit in the fits file'})"))
                continue
            curve = ln["curve"]
            ax.plot(curve["params"], curve["loss"], color=colour, ls=style.ls(arch), lw=1.3)
            if bands and "low" in curve:
                ax.fill_between(curve["params"], curve["low"], curve["high"], color=colour,
                                alpha=figures.BAND_ALPHA, lw=0)
        figures.log_x(ax)
        figures.loss_axis(ax)
        ax.set_title(arch)
        ax.set_xlabel("parameters (total)" if col == "params" else "non-embedding parameters")
    for ax in axes[:, 0]:
        ax.set_ylabel("validation bits per byte")
    from matplotlib.lines import Line2D

    extra = [(Line2D([], [], ls="", marker="o", color="0.3", markeredgecolor="black", ms=5),
              "run at the L(N) budget"),
             (Line2D([], [], ls="", marker="o", markerfacecolor="none", color="0.3", ms=5),
              "run at another budget")]
    figures.legend_below(fig, *style.handles(pts["tokenizer"], archs, extra),
                         notes=figures.group_notes(notes))
    fig.suptitle("Bits per byte vs model size: fitted L(N) = E + A·N^-α "
                 "(bands: 95% bootstrap)", fontsize=10)
    figures.clear_tick_collisions(fig)
    return fig


if "snakemake" in globals():  # run by Snakemake; tests import draw() instead
    sm = snakemake
    with figures.logged_to(sm.log[0]):
        runs = figures.load_runs(sm.input.runs)
        style = figures.Style.of(runs, tokenizers=sm.params.tokenizers)
        fig = draw(runs, figures.load_fits(sm.input.fits), style)
        figures.save_figure(fig, sm.output.png, sm.output.svg, dpi=sm.params.dpi)
