"""Figure equal_size: which tokenizer gives the lowest bits per byte on the same model
body and budget? One panel per architecture.

Rule plot_equal_size (rules/report.smk); edit this file to restyle the figure.
Each column is one (layers x width, budget) cell trained with two or more tokenizers
(symato.report.figures.equal_size_table; summary.md has the numbers); each tokenizer's
cells are joined by a line (colour: tokenizer, line style and marker: architecture,
symato.report.style).
"""

import numpy as np

from symato.report import figures

plt = figures.pyplot()


def draw(runs, style: figures.Style):
    """The figure (a matplotlib Figure) from the runs table."""
    table = figures.equal_size_table(runs)
    if table is None or not len(table):
        fig, ax = plt.subplots(figsize=(6, 4))
        figures.empty_panel(ax, "no model size was trained\nwith two or more tokenizers")
        return fig
    archs = [a for a in style.archs if a in set(table.index.get_level_values("arch"))]
    widths = [len(table.loc[a]) for a in archs]
    fig, axes = plt.subplots(1, len(archs), figsize=(min(16, 2.5 + 0.45 * sum(widths)
                                                         + 1.2 * len(archs)), 4.4),
                             squeeze=False, sharey=True, width_ratios=[w + 2 for w in widths])
    toks = figures.tokenizer_order(table.columns)
    for ax, arch in zip(axes[0], archs, strict=True):
        cells = table.loc[arch]
        x = np.arange(len(cells))
        body = [(layers, embd) for layers, embd, _ in cells.index]
        for tok in toks:  # one line per model size: budgets joined, sizes apart
            y = cells[tok].to_numpy(dtype=float)
            for size in dict.fromkeys(body):
                at = np.array([b == size for b in body])
                ax.plot(x[at], y[at], color=style.tok(tok), ls=style.ls(arch),
                        marker=style.mk(arch), ms=4, lw=1.0)
        labels = [f"L{int(layers)}-D{int(embd)}\n{budget.replace(' text bytes', ' B')}"
                  for layers, embd, budget in cells.index]
        ax.set_xticks(x, labels, fontsize=6.5, rotation=90)
        ax.set_xlim(-0.5, len(cells) - 0.5)
        ax.set_title(arch)
        ax.grid(axis="x", visible=False)
    axes[0, 0].set_ylabel("validation bits per byte")
    text_only = all(figures.is_text_budget(b) for b in table.index.get_level_values("budget"))
    fig.suptitle("Bits per byte at equal model size" + (" and equal text (B: bytes of text)"
                                                        if text_only else ""), fontsize=10)
    figures.legend_below(fig, *style.handles(toks, archs))
    return fig


if "snakemake" in globals():  # run by Snakemake; tests import draw() instead
    sm = snakemake
    with figures.logged_to(sm.log[0]):
        runs = figures.load_runs(sm.input.runs)
        style = figures.Style.of(runs, tokenizers=sm.params.tokenizers)
        figures.save_figure(draw(runs, style), sm.output.png, sm.output.svg, dpi=sm.params.dpi)
