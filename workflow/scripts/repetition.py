"""Figure repetition: what repeating text costs. Validation bits per byte against the
tokens trained, one panel per tokenizer (and architecture and size with repeated runs),
one line per unique text size (its runs at 1, 3, 10, ... epochs over the same text), the
fresh-data runs of the same size in black for reference; dotted: the data-constrained law
(symato.report.constrained) of the tokenizer's group where fitted.

Rule plot_repetition (rules/report.smk); edit this file to restyle the figure. Colour:
the tokenizer's, lighter = less unique text; markers: epochs > 1 hollow.
"""

import numpy as np

from symato.report import figures
from symato.report.constrained import KEY, predict

plt = figures.pyplot()


def draw(runs, fits: dict, style: figures.Style):
    """The figure (a matplotlib Figure) from runs.csv (repeated runs included) and fits."""
    study = figures.repetition_runs(runs)
    panels = [tuple(p) for p in study[["tokenizer", "arch", "size"]].drop_duplicates().values]
    if not panels:
        fig, ax = plt.subplots(figsize=(6, 4))
        figures.empty_panel(ax, "no run repeats its text (train.grids: unique_bytes)")
        return fig
    fig, axes = figures.panel_grid(plt, len(panels), 3, 4.2, 3.4)
    for ax, (tok, arch, size) in zip(axes.flat, panels, strict=False):
        mine = study[(study["tokenizer"] == tok) & (study["arch"] == arch)
                     & (study["size"] == size)]
        fresh = mine[mine["fresh"]].sort_values("tokens")
        ax.plot(fresh["tokens"], fresh["loss"], color="black", marker="o", ms=3, lw=1.2,
                label="fresh text")
        uniques = sorted(mine.loc[~mine["fresh"], "unique_bytes"].unique())
        law = _law(fits, tok, arch)
        for k, u in enumerate(uniques):
            colour = figures.shade(style.tok(tok), 0.55 * (1 - k / max(1, len(uniques) - 1)))
            line = mine[mine["unique_bytes"] == u].sort_values("tokens")
            ax.plot(line["tokens"], line["loss"], color=colour, marker="o", ms=4, lw=1.2,
                    mfc="white", label=f"{figures.format_bytes(u)} unique")
            if law is not None:
                base = line.iloc[0]
                unique_tokens = base["tokens"] / base["epochs"]
                epochs = np.geomspace(1, line["epochs"].max(), figures.CURVE_POINTS)
                ax.plot(unique_tokens * epochs,
                        predict(law, base["params"], unique_tokens, epochs),
                        color=colour, ls=":", lw=1)
        figures.log_x(ax)
        ax.set_xlabel("tokens trained")
        ax.set_title(f"{tok} {arch} {size}", fontsize=9)
        ax.legend(fontsize=figures.LEGEND_FONTSIZE)
    for ax in axes[:, 0]:
        ax.set_ylabel("validation bits per byte")
    fig.suptitle("Repeated epochs: loss against tokens trained, per unique text size "
                 "(dotted: data-constrained law)", fontsize=10)
    return fig


def _law(fits: dict, tok: str, arch: str):
    """The fitted data-constrained law of a group, or None."""
    fit = fits.get("groups", {}).get(f"{tok}/{arch}", {}).get("fits", {}).get(KEY, {})
    return fit if fit.get("status") in ("ok", "at_bound") else None


if "snakemake" in globals():  # run by Snakemake; tests import draw() instead
    sm = snakemake
    with figures.logged_to(sm.log[0]):
        runs = figures.load_runs(sm.input.runs, repeated=True)
        style = figures.Style(sorted(set(runs["arch"])), [*sm.params.tokenizers])
        figures.save_figure(draw(runs, figures.load_fits(sm.input.fits), style),
                            sm.output.png, sm.output.svg, dpi=sm.params.dpi)
