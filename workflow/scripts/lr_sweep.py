"""Figure lr_sweep: bits per byte against the learning rate, one curve per size.

Rule plot_lr_sweep (rules/report.smk); edit this file to restyle the figure.
One panel per architecture; each line is one sweep (runs that differ only in the
learning rate), the star its chosen value (the run the fits use, symato.report.fit
.choose_runs), a red star a choice at the edge of the sweep (optimum not bracketed).
"""

from symato.report import figures

plt = figures.pyplot()


def draw(fits: dict, style: figures.Style):
    """The figure (a matplotlib Figure) from fits.json's learning-rate choice."""
    series = figures.sweep_series(fits)
    if not series:
        fig, ax = plt.subplots(figsize=(6, 4))
        figures.empty_panel(ax, "no learning-rate sweep in the grid")
        return fig
    archs = sorted({s["arch"] for s in series})
    fig, axes = plt.subplots(1, len(archs), figsize=(4.4 * len(archs), 3.8), squeeze=False,
                             sharey=False)
    for ax, arch in zip(axes[0], archs, strict=True):
        mine = [s for s in series if s["arch"] == arch]
        shades = _shades(style, arch, len(mine))
        for colour, s in zip(shades, mine, strict=True):
            label = s["base"] if len({m["tokenizer"] for m in mine}) == 1 else (
                f"{s['tokenizer']} {s['base']}")
            ax.plot(s["values"], s["losses"], marker="o", ms=4, color=colour, lw=1.2,
                    label=label)
            if s["chosen"] is None:  # every run of the sweep failed
                continue
            edge = bool(s["at_edge"])
            ax.plot([s[s["setting"]]], [s["loss"]], marker="*", ms=13, zorder=4,
                    color="#d62728" if edge else colour, markeredgecolor="black",
                    markeredgewidth=0.5)
            if edge:
                ax.annotate("edge", (s[s["setting"]], s["loss"]), xytext=(4, -10),
                            textcoords="offset points", fontsize=7, color="#d62728")
        figures.log_x(ax)
        ax.set_xlabel(f"{mine[0]['setting']} (peak learning rate)" if mine[0]["setting"] == "lr"
                      else mine[0]["setting"])
        ax.set_title(arch)
        ax.legend(fontsize=6)
    axes[0, 0].set_ylabel("validation bits per byte")
    fig.suptitle("Learning-rate sweeps (star: chosen for the fits; red: at the sweep's edge)",
                 fontsize=10)
    fig.tight_layout()
    return fig


def _shades(style: figures.Style, arch: str, k: int) -> list:
    """k shades of the architecture's colour map, lighter for smaller sizes."""
    import matplotlib

    cmap = matplotlib.colormaps[style.colour_map.get(arch, "Greys")]
    return [cmap(0.45 + 0.5 * i / max(1, k - 1)) for i in range(k)]


if "snakemake" in globals():  # run by Snakemake; tests import draw() instead
    sm = snakemake
    with figures.logged_to(sm.log[0]):
        fits = figures.load_fits(sm.input.fits)
        series = figures.sweep_series(fits)
        style = figures.Style([s["arch"] for s in series], [s["tokenizer"] for s in series])
        figures.save_figure(draw(fits, style), sm.output.png, sm.output.svg, dpi=sm.params.dpi)
