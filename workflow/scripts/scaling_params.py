"""Figure scaling_params: bits per byte vs model size, with the fitted scaling laws.

Rule plot_scaling_params (rules/report.smk); edit this file to restyle the figure.
Filled points: runs at the budget L(N) was fitted at (its line and 95% bootstrap band);
hollow points: other budgets, each with the fitted L(N, D) drawn at its D (dotted).
"""

from symato.report import figures

plt = figures.pyplot()


def draw(runs, fits: dict, style: figures.Style):
    """The figure (a matplotlib Figure) from the runs table and fits.json."""
    col = figures.params_column(fits)
    fig, ax = plt.subplots(figsize=(7, 4.8))
    pts = runs.dropna(subset=["loss", col])
    if not len(pts):
        figures.empty_panel(ax, "no runs with bits per byte yet")
        return fig
    notes = []
    for (tok, arch), g in pts.groupby(["tokenizer", "arch"]):
        colour, marker = style.colour[arch], style.marker[tok]
        laws = figures.group_fits(fits, tok, arch).get("fits", {})
        ln, nd = laws.get("L_N", {}), laws.get("L_ND", {})
        main = figures.on_budget(g["tokens"], ln.get("tokens"))
        ax.scatter(g[col][main], g["loss"][main], color=colour, marker=marker, zorder=3,
                   edgecolor="black", linewidth=0.4, label=f"{arch} · {tok}")
        if not main.all():
            ax.scatter(g[col][~main], g["loss"][~main], facecolors="none", edgecolors=colour,
                       marker=marker, zorder=3, linewidth=1.0,
                       label=f"  {arch} · {tok} at other budgets (hollow)")
        if nd.get("status") == "ok" and g["tokens"].nunique() > 1:
            for i, (d, n, loss) in enumerate(figures.law_at_budgets(nd, g[col], g["tokens"])):
                label = (f"  L(N,D) = {nd['E']:.3g} + {nd['A']:.3g}·N^-{nd['alpha']:.3g}"
                         f" + {nd['B']:.3g}·D^-{nd['beta']:.3g}, at each D") if i == 0 else None
                ax.plot(n, loss, color=colour, ls=(0, (1, 1.5)), lw=1.0, alpha=0.8, label=label)
                ax.annotate(f"D={figures.short_number(d)}", (n[-1], loss[-1]), xytext=(3, 0),
                            textcoords="offset points", fontsize=6, va="center", color=colour)
        if ln.get("status") != "ok":
            notes.append(f"{arch} · {tok}: points only "
                         f"({ln.get('reason') or 'no fit in the fits file'})")
            continue
        curve = ln["curve"]
        ax.plot(curve["params"], curve["loss"], color=colour, ls=style.line[tok], lw=1.3,
                label=(f"  L(N) = {ln['E']:.3g} + {ln['A']:.3g}·N^-{ln['alpha']:.3g}"
                       f" (D = {figures.short_number(ln['tokens'])} tokens)"))
        if "low" in curve:
            ax.fill_between(curve["params"], curve["low"], curve["high"], color=colour,
                            alpha=0.15, lw=0)
    figures.log_x(ax)
    figures.loss_axis(ax)
    ax.set_xlabel("parameters (total)" if col == "params" else "non-embedding parameters")
    ax.set_ylabel("validation bits per byte")
    ax.set_title("Bits per byte vs model size (bands: 95% bootstrap interval)")
    figures.legend_outside(ax)
    figures.note_below(ax, notes)
    return fig


if "snakemake" in globals():  # run by Snakemake; tests import draw() instead
    sm = snakemake
    with figures.logged_to(sm.log[0]):
        runs = figures.load_runs(sm.input.runs)
        fig = draw(runs, figures.load_fits(sm.input.fits), figures.Style.of(runs))
        figures.save_figure(fig, sm.output.png, sm.output.svg, dpi=sm.params.dpi)
