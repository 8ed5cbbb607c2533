"""Figure tokenizer_study: which tokenizer is best for how much training text, at each
model size? Bits per byte vs text, per tokenizer; one row of panels per architecture,
one column per model size.

Rule plot_tokenizer_study (rules/report.smk); edit this file to restyle the figure.
Points are runs, lines the tokenizer's fitted L(N, D) at that size with D in bytes of
text (colour: tokenizer, line style and marker: architecture, symato.report.style);
the 95% bootstrap bands are drawn only in panels with few tokenizers (more merge into
one colour: the crossover table has the intervals); x marks the crossovers
(symato.report.study; summary.md has the same numbers).
"""

from symato.report import figures

plt = figures.pyplot()


def draw(study: dict, style: figures.Style):
    """The figure (a matplotlib Figure) from study.json."""
    panels = figures.study_panels(study)
    if not panels:
        fig, ax = plt.subplots(figsize=(6, 4))
        figures.empty_panel(ax, "no architecture was trained with\ntwo or more tokenizers")
        return fig
    order = {a: i for i, a in enumerate(style.archs)}
    archs = sorted({a for a, _ in panels}, key=lambda a: order.get(a, len(order)))
    sizes = sorted({s for _, s in panels}, key=figures.parse_size)
    fig, axes = plt.subplots(len(archs), len(sizes), squeeze=False, sharex=True, sharey=True,
                             gridspec_kw={"wspace": 0.06},
                             figsize=(3.4 * len(sizes) + 0.6, 2.9 * len(archs) + 1.2))
    groups = sorted(study["groups"].values(), key=lambda g: figures.tokenizer_key(
        g["by"]["tokenizer"]))
    for (arch, size), ax in ((p, axes[archs.index(p[0]), sizes.index(p[1])]) for p in panels):
        mine = [g for g in groups if g["by"]["arch"] == arch
                and any(r["size"] == size for r in g.get("runs", []))]
        bands = len(mine) <= figures.MAX_BANDS
        for g in mine:
            tok = g["by"]["tokenizer"]
            colour = style.tok(tok)
            pts = [r for r in g.get("runs", []) if r["size"] == size]
            ax.scatter([r["text"] for r in pts], [r["loss"] for r in pts], color=colour,
                       marker=style.mk(arch), s=16, zorder=3, edgecolor="black", linewidth=0.3)
            curve = next((c for c in g.get("curves", []) if c["size"] == size), None)
            if curve is None:
                continue
            ax.plot(curve["text"], curve["loss"], color=colour, lw=1.1, ls=style.ls(arch))
            if bands and "low" in curve:
                ax.fill_between(curve["text"], curve["low"], curve["high"], color=colour,
                                alpha=figures.BAND_ALPHA, lw=0)
        marks = [c for c in study.get("crossovers", [])
                 if c["arch"] == arch and c["size"] == size and c["status"] == "crossover"]
        for c in marks:
            law = study["groups"][f"{c['a']}/{arch}"]
            n = next(s["params"] for s in law["sizes"] if s["size"] == size)
            y = figures.predict(law, n, c["text_bytes"])
            ax.plot([c["text_bytes"]], [y], marker="x", color="black", ms=5, mew=1.0, zorder=4)
        ax.set_title(f"{arch} {size}: {len(marks)} crossover(s)", fontsize=8.5)
        figures.log_x(ax)
        figures.loss_axis(ax)
    for ax in axes[-1, :]:
        ax.set_xlabel("bytes of training text seen")
    for ax in axes[:, 0]:
        ax.set_ylabel("val bits per byte")
    drawn = {p for p in panels}
    for arch in archs:
        for size in sizes:
            if (arch, size) not in drawn:
                figures.empty_panel(axes[archs.index(arch), sizes.index(size)],
                                    f"{arch} {size}: not in the study")
    toks = [g["by"]["tokenizer"] for g in groups]
    handles, labels = style.handles(toks)  # the first legend: the tokenizers, by colour
    figures.legend_below(fig, handles, labels)
    from matplotlib.lines import Line2D

    key, key_labels = style.handles((), archs, [
        (Line2D([], [], ls="", marker="x", color="black", ms=5), "crossover of two fits")])
    fig.legend(key, key_labels, loc="outside right lower", frameon=False,
               fontsize=figures.LEGEND_FONTSIZE)
    fig.suptitle("Tokenizer study: bits per byte vs text (lines: fitted L(N, D))", fontsize=10)
    figures.clear_tick_collisions(fig)
    return fig


if "snakemake" in globals():  # run by Snakemake; tests import draw() instead
    sm = snakemake
    with figures.logged_to(sm.log[0]):
        study = figures.load_study(sm.input.study)
        toks = [g["by"]["tokenizer"] for g in study.get("groups", {}).values()]
        archs = [g["by"]["arch"] for g in study.get("groups", {}).values()]
        fig = draw(study, figures.Style(archs, [*sm.params.tokenizers, *toks]))
        figures.save_figure(fig, sm.output.png, sm.output.svg, dpi=sm.params.dpi)
