"""Figure lr_sweep: was each size trained at a good learning rate? Bits per byte against
the learning rate, one panel per architecture, one line per sweep.

Rule plot_lr_sweep (rules/report.smk); edit this file to restyle the figure.
Colour: tokenizer, line style and marker: architecture (symato.report.style); lighter =
smaller model, each line labelled at its end (labels spread so they never overlap). The
star is the chosen value (the run the fits use, symato.report.lrchoice.choose_runs), a red
star a choice at the edge of the sweep (optimum not bracketed).
"""

from matplotlib.lines import Line2D

from symato.report import figures

plt = figures.pyplot()
EDGE = "#CC3311"  # Tol's vibrant red: not a tokenizer colour


def draw(fits: dict, style: figures.Style):
    """The figure (a matplotlib Figure) from fits.json's learning-rate choice."""
    series = figures.sweep_series(fits)
    if not series:
        fig, ax = plt.subplots(figsize=(6, 4))
        figures.empty_panel(ax, "no learning-rate sweep in the grid")
        return fig
    archs = [a for a in style.archs if a in {s["arch"] for s in series}]
    fig, axes = figures.panel_grid(plt, len(archs), 4, 3.9, 3.4)
    for ax, arch in zip(axes.flat, archs, strict=False):
        mine = [s for s in series if s["arch"] == arch]
        ends = []
        for s in mine:
            same = [m for m in mine if m["tokenizer"] == s["tokenizer"]]
            k = same.index(s)
            lighter = 0.55 * (1 - k / max(1, len(same) - 1))
            colour = figures.shade(style.tok(s["tokenizer"]), lighter)
            ax.plot(s["values"], s["losses"], marker=style.mk(arch), ms=4, color=colour,
                    ls=style.ls(arch), lw=1.2)
            label = s["base"] if len({m["tokenizer"] for m in mine}) == 1 else (
                f"{s['tokenizer']} {s['base']}")
            if s["values"]:
                ends.append((s["values"][-1], s["losses"][-1], label, colour))
            if s["chosen"] is None:  # every run of the sweep failed
                continue
            edge = bool(s["at_edge"])
            ax.plot([s[s["setting"]]], [s["loss"]], marker="*", ms=12, zorder=4, ls="",
                    color=EDGE if edge else colour, markeredgecolor="black",
                    markeredgewidth=0.5)
        figures.log_x(ax)
        _value_ticks(ax, sorted({v for s in mine for v in s["values"]}))
        ax.set_xlabel(f"{mine[0]['setting']} (peak learning rate)" if mine[0]["setting"] == "lr"
                      else mine[0]["setting"])
        ax.set_title(arch)
        ax.margins(x=0.08)
        ax._symato_ends = ends
    for ax in axes[:, 0]:
        ax.set_ylabel("validation bits per byte")
    extra = [(Line2D([], [], ls="", marker="*", ms=10, color="0.6", markeredgecolor="black"),
              "chosen for the fits"),
             (Line2D([], [], ls="", marker="*", ms=10, color=EDGE, markeredgecolor="black"),
              "chosen, at the sweep's edge")]
    figures.legend_below(fig, *style.handles({s["tokenizer"] for s in series}, archs, extra))
    fig.suptitle("Learning-rate sweeps (lighter: smaller model)", fontsize=10)
    for ax in axes.flat[:len(archs)]:
        figures.label_ends(ax, ax._symato_ends)
    return fig


def _value_ticks(ax, values: list) -> None:
    """x ticks at the swept values, as plain numbers (log-axis minor labels collide)."""
    import matplotlib.ticker as mticker

    if not values:
        return
    step = -(-len(values) // 5)  # at most ~5 labels
    ax.xaxis.set_major_locator(mticker.FixedLocator(values[::step]))
    ax.xaxis.set_major_formatter(mticker.FuncFormatter(lambda v, _: f"{v:g}"))
    ax.xaxis.set_minor_locator(mticker.FixedLocator(values))
    ax.xaxis.set_minor_formatter(mticker.NullFormatter())


if "snakemake" in globals():  # run by Snakemake; tests import draw() instead
    sm = snakemake
    with figures.logged_to(sm.log[0]):
        fits = figures.load_fits(sm.input.fits)
        series = figures.sweep_series(fits)
        style = figures.Style([s["arch"] for s in series],
                              [*sm.params.tokenizers, *(s["tokenizer"] for s in series)])
        figures.save_figure(draw(fits, style), sm.output.png, sm.output.svg, dpi=sm.params.dpi)
