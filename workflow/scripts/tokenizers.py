"""Figure tokenizers: how many tokens does each tokenizer need for the same text?

Rule plot_tokenizers (rules/report.smk); edit this file to restyle the figure.
Tokens per syllable and per UTF-8 byte of each tokenizer (colour: the tokenizer's, as
in every figure, symato.report.style). Bits per byte at equal model size is its own
figure (equal_size).
"""

from symato.report import figures

plt = figures.pyplot()


def draw(toks, style: figures.Style):
    """The figure (a matplotlib Figure) from the tokenizer table."""
    fig, axes = plt.subplots(1, 2, figsize=(9, 3.8))
    for ax, col, title in ((axes[0], "tokens_per_syllable", "Tokens per syllable"),
                           (axes[1], "tokens_per_byte", "Tokens per UTF-8 byte")):
        split, means = figures.per_tokenizer(toks, col)
        ax.set_title(f"{title} ({split} split)")
        if not len(means):
            figures.empty_panel(ax, "no shard manifests")
            continue
        means = means[figures.tokenizer_order(means.index)]
        bars = ax.bar(range(len(means)), means.values,
                      color=[style.tok(t) for t in means.index], edgecolor="black", lw=0.3)
        ax.bar_label(bars, fmt="%.3g", fontsize=7)
        ax.set_xticks(range(len(means)), means.index, rotation=30, ha="right", fontsize=8)
        ax.set_ylim(0, float(means.max()) * 1.15)  # room for the bar labels
        ax.grid(axis="x", visible=False)
    return fig


if "snakemake" in globals():  # run by Snakemake; tests import draw() instead
    sm = snakemake
    with figures.logged_to(sm.log[0]):
        toks = figures.load_tokenizers(sm.input.tokenizers)
        style = figures.Style.of(toks, tokenizers=sm.params.tokenizers)
        figures.save_figure(draw(toks, style), sm.output.png, sm.output.svg, dpi=sm.params.dpi)
