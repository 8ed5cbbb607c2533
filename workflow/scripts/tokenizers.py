"""Figure tokenizers: tokens per syllable and per byte, and bits per byte at equal size.

Rule plot_tokenizers (rules/report.smk); edit this file to restyle the figure.
The right panel compares tokenizers on the same model body and the same budget
(symato.report.figures.equal_size_table; summary.md has the same numbers).
"""

import numpy as np

from symato.report import figures

plt = figures.pyplot()
BAR_COLOUR = "#4c72b0"
HATCHES = ("", "//", "..", "xx", "\\\\")


def draw(toks, runs):
    """The figure (a matplotlib Figure) from the tokenizer table and the runs table."""
    fig, axes = plt.subplots(1, 3, figsize=(13, 4.2))
    for ax, col, title in ((axes[0], "tokens_per_syllable", "Tokens per syllable"),
                           (axes[1], "tokens_per_byte", "Tokens per UTF-8 byte")):
        split, means = figures.per_tokenizer(toks, col)
        ax.set_title(f"{title} ({split} split)")
        if not len(means):
            figures.empty_panel(ax, "no shard manifests")
            continue
        bars = ax.bar(range(len(means)), means.values, color=BAR_COLOUR)
        ax.bar_label(bars, fmt="%.3g", fontsize=7)
        ax.set_xticks(range(len(means)), means.index, rotation=20, ha="right")
    table, ax = figures.equal_size_table(runs), axes[2]
    ax.set_title("Bits per byte at equal model size")
    if table is None or not len(table):
        figures.empty_panel(ax, "no model size was trained\nwith two or more tokenizers")
        return fig
    if all(figures.is_text_budget(b) for b in table.index.get_level_values("budget")):
        ax.set_title("Bits per byte at equal model size and equal text")
    width = 0.8 / len(table.columns)
    for i, tok in enumerate(sorted(table.columns)):
        bars = ax.bar(np.arange(len(table)) + i * width, table[tok].values, width, label=tok,
                      hatch=HATCHES[i % len(HATCHES)], edgecolor="white")
        ax.bar_label(bars, fmt="%.3f", fontsize=7)
    labels = [f"{arch} L{int(layers)}-D{int(embd)}\n{budget}"
              for arch, layers, embd, budget in table.index]
    ax.set_xticks(np.arange(len(table)) + 0.4 - width / 2, labels, fontsize=7)
    ax.set_ylabel("validation bits per byte")
    ax.set_ylim(0, float(np.nanmax(table.values)) * 1.35)  # headroom: labels and legend
    ax.legend(fontsize=7, ncols=2, loc="upper center")
    return fig


if "snakemake" in globals():  # run by Snakemake; tests import draw() instead
    sm = snakemake
    with figures.logged_to(sm.log[0]):
        fig = draw(figures.load_tokenizers(sm.input.tokenizers), figures.load_runs(sm.input.runs))
        figures.save_figure(fig, sm.output.png, sm.output.svg, dpi=sm.params.dpi)
