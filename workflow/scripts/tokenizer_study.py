"""Figure tokenizer_study: bits per byte vs training text, per tokenizer, at each model size.

Rule plot_tokenizer_study (rules/report.smk); edit this file to restyle the figure.
One panel per (architecture, model size); points are runs, lines the tokenizer's fitted
L(N, D) at that size with D in bytes of text (95% bootstrap band), x marks the crossovers
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
    cols = min(3, len(panels))
    rows = -(-len(panels) // cols)
    fig, axes = plt.subplots(rows, cols, figsize=(4.6 * cols, 3.8 * rows), squeeze=False,
                             sharey=True)
    for ax, (arch, size) in zip(axes.flat, panels, strict=False):
        for _key, g in sorted(study["groups"].items()):
            if g["by"]["arch"] != arch:
                continue
            tok = g["by"]["tokenizer"]
            colour = style.tokenizer_colour[tok]
            pts = [r for r in g.get("runs", []) if r["size"] == size]
            if not pts:
                continue
            ax.scatter([r["text"] for r in pts], [r["loss"] for r in pts], color=colour,
                       marker=style.marker[tok], s=18, zorder=3, edgecolor="black",
                       linewidth=0.3, label=tok)
            curve = next((c for c in g.get("curves", []) if c["size"] == size), None)
            if curve is None:
                continue
            ax.plot(curve["text"], curve["loss"], color=colour, lw=1.1, ls=style.line[tok])
            if "low" in curve:
                ax.fill_between(curve["text"], curve["low"], curve["high"], color=colour,
                                alpha=0.12, lw=0)
        marks = [c for c in study.get("crossovers", [])
                 if c["arch"] == arch and c["size"] == size and c["status"] == "crossover"]
        for c in marks:
            law = study["groups"][f"{c['a']}/{arch}"]
            n = next(s["params"] for s in law["sizes"] if s["size"] == size)
            y = figures.predict(law, n, c["text_bytes"])
            ax.plot([c["text_bytes"]], [y], marker="x", color="black", ms=6, zorder=4)
        ax.set_title(f"{arch} {size}: {len(marks)} crossover(s)", fontsize=9)
        figures.log_x(ax)
        figures.loss_axis(ax)
        ax.set_xlabel("bytes of training text seen")
    for ax in axes[:, 0]:
        ax.set_ylabel("validation bits per byte")
    for ax in list(axes.flat)[len(panels):]:
        ax.set_visible(False)
    legend = {}  # every tokenizer, also one missing from the first panel
    for ax in axes.flat:
        for handle, label in zip(*ax.get_legend_handles_labels(), strict=True):
            legend.setdefault(label, handle)
    fig.legend(list(legend.values()), list(legend), fontsize=7, loc="upper left",
               bbox_to_anchor=(1.0, 0.95))
    fig.suptitle("Tokenizer study: bits per byte vs text (lines: fitted L(N, D), bands: 95% "
                 "bootstrap; x: crossovers)", fontsize=10)
    fig.tight_layout()
    return fig


if "snakemake" in globals():  # run by Snakemake; tests import draw() instead
    sm = snakemake
    with figures.logged_to(sm.log[0]):
        study = figures.load_study(sm.input.study)
        toks = [g["by"]["tokenizer"] for g in study.get("groups", {}).values()]
        fig = draw(study, figures.Style([], toks))
        figures.save_figure(fig, sm.output.png, sm.output.svg, dpi=sm.params.dpi)
