"""`symato plot`: the report's scaling, training and tokenizer figures (PNG + SVG).

Why these four figures: they answer the project's questions at a glance. Bits per byte
vs parameters (with the fitted L(N) and its bootstrap band) shows how each architecture
scales; training curves show every run converged (or not); loss vs compute with the
frontier shows which runs were compute-optimal; the tokenizer comparison shows how long
each tokenizer makes the text and what that does to bits per byte at equal model size.

A group without a fit (too few runs) is drawn as points only, and the figure says why,
so a small grid still yields a complete report.
"""

from __future__ import annotations

import argparse
import math
import sys
from pathlib import Path
from typing import Any

import numpy as np

from symato.errors import SymatoError
from symato.io import atomic_path, read_json

FIGURES = ("scaling_params", "training_curves", "loss_vs_compute", "tokenizers")
ARCH_COLOURS = {"rwkv": "#1f77b4", "gpt": "#d62728"}
EXTRA_COLOURS = ("#2ca02c", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f")
MARKERS = ("o", "s", "^", "D", "v", "P", "X", "*")
LINESTYLES = ("-", "--", "-.", ":")


def _pyplot():
    """matplotlib with a headless backend and byte-stable SVG output."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    plt.rcParams.update({"svg.hashsalt": "symato", "figure.dpi": 100, "axes.grid": True,
                         "grid.alpha": 0.3, "font.size": 9})
    return plt


class Style:
    """Stable colour per architecture and marker/linestyle per tokenizer."""

    def __init__(self, archs: list[str], tokenizers: list[str]):
        extra = iter(EXTRA_COLOURS * 4)
        self.colour = {a: ARCH_COLOURS.get(a) or next(extra) for a in sorted(archs)}
        toks = sorted(tokenizers)
        self.marker = {t: MARKERS[i % len(MARKERS)] for i, t in enumerate(toks)}
        self.line = {t: LINESTYLES[i % len(LINESTYLES)] for i, t in enumerate(toks)}


def _read_csv(path: Path | None, what: str):
    """A CSV as a DataFrame (empty when no path); errors name the file."""
    import pandas as pd

    if path is None:
        return pd.DataFrame()
    try:
        return pd.read_csv(path)
    except FileNotFoundError:
        raise SymatoError(f"{what} not found: {path}") from None
    except (OSError, ValueError) as exc:
        raise SymatoError(f"cannot read {what} {path}: {exc}") from None


def _need(df, columns: list[str], path: Path | None, what: str) -> None:
    missing = [c for c in columns if c not in df.columns]
    if missing and len(df.columns):
        raise SymatoError(f"{what} {path}: missing column(s) {', '.join(missing)}")


def _save(fig, outdir: Path, name: str, dpi: int) -> list[Path]:
    """Write ``name``.png and ``name``.svg atomically; return both paths."""
    paths = []
    for ext, meta in (("png", {"Software": None}), ("svg", {"Date": None})):
        path = outdir / f"{name}.{ext}"
        with atomic_path(path) as tmp:
            fig.savefig(tmp, format=ext, dpi=dpi, metadata=meta, bbox_inches="tight")
        paths.append(path)
    return paths


def _note(ax, lines: list[str]) -> None:
    """Small grey text under the axes: what could not be drawn and why."""
    if lines:
        ax.text(0.0, -0.16, "\n".join(lines), transform=ax.transAxes, va="top", ha="left",
                fontsize=7, color="0.35", wrap=True)


def _loss_axis(ax) -> None:
    """Log y-axis labelled with plain numbers: losses span well under a decade."""
    import matplotlib.ticker as mticker

    ax.set_yscale("log")
    # Ticks every 0.5 (1.5, 2, 2.5, ...): the default 2, 3, ... leave a 1.3-3.7 span
    # (the demo's three budgets) with two labels.
    ax.yaxis.set_minor_locator(mticker.LogLocator(subs=np.arange(1.0, 10.0, 0.5)))
    for setter in (ax.yaxis.set_major_formatter, ax.yaxis.set_minor_formatter):
        setter(mticker.LogFormatter(labelOnlyBase=False, minor_thresholds=(1.2, 0.6)))


def _log_x(ax) -> None:
    """Log x-axis whose minor labels appear only when under ~0.7 decades (else they collide)."""
    import matplotlib.ticker as mticker

    ax.set_xscale("log")
    ax.xaxis.set_minor_formatter(
        mticker.LogFormatterSciNotation(labelOnlyBase=False, minor_thresholds=(0.7, 0.3)))


def _legend_outside(ax) -> None:
    """Legend right of the axes, so it never hides points (saved with bbox 'tight')."""
    ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1.0), borderaxespad=0.0)


def _empty(ax, message: str) -> None:
    ax.text(0.5, 0.5, message, transform=ax.transAxes, ha="center", va="center", color="0.4")
    ax.set_xticks([])
    ax.set_yticks([])


def plot_scaling_params(plt, runs, fits: dict, style: Style):
    """Bits per byte vs parameters, log-log, fitted L(N) with bootstrap bands."""
    col = "params_non_embedding" if fits.get("params_column") == "non_embedding" else "params"
    fig, ax = plt.subplots(figsize=(7, 4.8))
    notes = []
    pts = runs.dropna(subset=["loss", col]) if len(runs) else runs
    if not len(pts):
        _empty(ax, "no runs with bits per byte yet")
        return fig
    for (tok, arch), g in pts.groupby(["tokenizer", "arch"]):
        group = fits.get("groups", {}).get(f"{tok}/{arch}")
        fit = (group or {}).get("fits", {}).get("L_N", {})
        _scatter_budgets(ax, g, col, fit.get("tokens"), style, tok, arch)
        nd = (group or {}).get("fits", {}).get("L_ND", {})
        if nd.get("status") == "ok" and g["tokens"].nunique() > 1:
            _nd_lines(ax, g, col, nd, style.colour[arch])
        if fit.get("status") != "ok":
            reason = fit.get("reason") or "no fit in the fits file"
            notes.append(f"{arch} · {tok}: points only ({reason})")
            continue
        curve = fit["curve"]
        ax.plot(curve["params"], curve["loss"], color=style.colour[arch], ls=style.line[tok],
                lw=1.3, label=(f"  L(N) = {fit['E']:.3g} + {fit['A']:.3g}·N^-{fit['alpha']:.3g}"
                               f" (D = {_short(fit.get('tokens', math.nan))} tokens)"))
        if "low" in curve:
            ax.fill_between(curve["params"], curve["low"], curve["high"],
                            color=style.colour[arch], alpha=0.15, lw=0)
    _log_x(ax)
    _loss_axis(ax)
    label = "non-embedding parameters" if col != "params" else "parameters (total)"
    ax.set_xlabel(label)
    ax.set_ylabel("validation bits per byte")
    ax.set_title("Bits per byte vs model size (bands: 95% bootstrap interval)")
    _legend_outside(ax)
    _note(ax, notes)
    return fig


def _scatter_budgets(ax, g, col: str, at: float | None, style: Style, tok: str, arch: str):
    """The group's runs; with several budgets, those off the L(N) budget ``at`` are hollow.

    Why: L(N) is fitted at one budget only, so its curve must be read against the filled
    points; the hollow ones belong to the L(N, D) lines of their own budget.
    """
    colour, marker = style.colour[arch], style.marker[tok]
    main = np.isclose(g["tokens"], at) if at is not None else np.ones(len(g), dtype=bool)
    if main.all() or not main.any():
        main = np.ones(len(g), dtype=bool)
    ax.scatter(g[col][main], g["loss"][main], color=colour, marker=marker, zorder=3,
               label=f"{arch} · {tok}", edgecolor="black", linewidth=0.4)
    if not main.all():
        ax.scatter(g[col][~main], g["loss"][~main], facecolors="none", edgecolors=colour,
                   marker=marker, zorder=3, linewidth=1.0,
                   label=f"  {arch} · {tok} at other budgets (hollow)")


def _nd_lines(ax, g, col: str, nd: dict[str, Any], colour: str) -> None:
    """The fitted L(N, D) at each of the group's budgets, each line labelled with its D."""
    from symato.report.fit import predict

    n = np.geomspace(g[col].min() / 1.5, g[col].max() * 1.5, 60)
    for i, d in enumerate(sorted(g["tokens"].unique())):
        loss = predict(nd, n, d)
        label = None
        if i == 0:
            label = (f"  L(N,D) = {nd['E']:.3g} + {nd['A']:.3g}·N^-{nd['alpha']:.3g}"
                     f" + {nd['B']:.3g}·D^-{nd['beta']:.3g}, at each D")
        ax.plot(n, loss, color=colour, ls=(0, (1, 1.5)), lw=1.0, alpha=0.8, label=label)
        ax.annotate(f"D={_short(d)}", (n[-1], loss[-1]), xytext=(3, 0), fontsize=6,
                    textcoords="offset points", va="center", color=colour)


def plot_training_curves(plt, curves, style: Style):
    """Validation bits per byte vs tokens and vs FLOPs, one line per run."""
    fig, axes = plt.subplots(1, 2, figsize=(11, 4.4), sharey=True)
    if not len(curves):
        for ax in axes:
            _empty(ax, "no validation points in any metrics.jsonl")
        return fig
    runs = curves.groupby(["tokenizer", "arch", "run"], sort=True)
    label_each = runs.ngroups <= 16
    shade = _size_shades(curves)
    for ax, x, xlabel in ((axes[0], "tokens", "training tokens"),
                          (axes[1], "flops", "training FLOPs")):
        drawn = 0
        for (tok, arch, run), g in runs:
            g = g.dropna(subset=[x, "val_bpb"]).sort_values(x)
            if not len(g):
                continue
            ax.plot(g[x], g["val_bpb"], color=shade.get((arch, g["params"].iloc[0]),
                                                         style.colour[arch]), ls=style.line[tok],
                    marker=".", ms=3, lw=1.0, alpha=0.85,
                    label=f"{tok}/{run}" if label_each else None)
            drawn += 1
        if not drawn:
            _empty(ax, f"no {xlabel} recorded")
            continue
        _log_x(ax)
        _loss_axis(ax)
        ax.set_xlabel(xlabel)
    axes[0].set_ylabel("validation bits per byte")
    axes[0].set_title("Validation loss vs tokens")
    axes[1].set_title("Validation loss vs compute")
    if label_each:
        axes[1].legend(fontsize=6, loc="upper right")
    else:
        _note(axes[0], [f"{runs.ngroups} runs: colour = architecture (darker = larger), "
                        "line style = tokenizer"])
    return fig


def _size_shades(curves) -> dict[tuple[str, float], Any]:
    """(arch, params) -> a shade of the arch's colour map, darker for larger models."""
    import matplotlib

    maps = {"rwkv": "Blues", "gpt": "Reds"}
    spare = iter(["Greens", "Purples", "Oranges", "Greys"] * 4)
    out: dict[tuple[str, float], Any] = {}
    if "params" not in curves.columns:
        return out
    for arch, g in curves.groupby("arch", sort=True):
        cmap = matplotlib.colormaps[maps.get(arch) or next(spare)]
        sizes = sorted(g["params"].dropna().unique())
        for i, p in enumerate(sizes):
            out[(arch, p)] = cmap(0.45 + 0.5 * (i / max(1, len(sizes) - 1)))
    return out


def plot_loss_vs_compute(plt, runs, fits: dict, style: Style):
    """Final bits per byte vs training FLOPs, the frontier over runs, and L(N,D)'s optimum."""
    fig, ax = plt.subplots(figsize=(7, 4.8))
    pts = runs.dropna(subset=["loss", "flops"]) if len(runs) else runs
    if not len(pts):
        _empty(ax, "no runs with FLOPs and bits per byte yet")
        return fig
    notes = []
    for (tok, arch), g in pts.groupby(["tokenizer", "arch"]):
        ax.scatter(g["flops"], g["loss"], color=style.colour[arch], marker=style.marker[tok],
                   label=f"{arch} · {tok}", zorder=3, edgecolor="black", linewidth=0.4)
        group = fits.get("groups", {}).get(f"{tok}/{arch}") or {}
        front = group.get("frontier") or _frontier(g)
        if len(front) > 1:
            ax.step([f["flops"] for f in front], [f["loss"] for f in front], where="post",
                    color=style.colour[arch], ls=style.line[tok], lw=1.0, alpha=0.8)
        nd = group.get("fits", {}).get("L_ND", {})
        curve = nd.get("optimal_allocation", {}).get("curve")
        if curve:
            ax.plot(curve["flops"], curve["loss"], color=style.colour[arch], ls=":", lw=1.5,
                    label=f"  compute-optimal L(N,D) ({arch} · {tok})")
        else:
            notes.append(f"{arch} · {tok}: no L(N,D) optimum ({nd.get('reason', 'not fitted')})")
    _log_x(ax)
    _loss_axis(ax)
    ax.set_xlabel("training FLOPs")
    ax.set_ylabel("validation bits per byte")
    ax.set_title("Loss vs compute (steps: frontier over runs)")
    _legend_outside(ax)
    _note(ax, notes)
    return fig


def _frontier(g) -> list[dict[str, float]]:
    """Runs no cheaper run beats (used when the fits file has no frontier)."""
    out, best = [], math.inf
    for _, r in g.sort_values(["flops", "loss"]).iterrows():
        if r["loss"] < best:
            best = r["loss"]
            out.append({"flops": float(r["flops"]), "loss": float(r["loss"])})
    return out


def equal_size_table(runs):
    """Bits per byte per tokenizer for each (arch, layers, width, budget) trained with >= 2.

    Equal size means the same transformer body; total parameters differ by the
    embedding, which is exactly what the tokenizer changes. The budget is the runs
    table's ``budget`` label (``700k text bytes`` or ``300k tokens``), so byte-budget runs,
    whose token counts differ per tokenizer, land in one row; a table without that
    column (older runs.csv) falls back to ``{tokens} tokens``.
    """
    keys = ["arch", "n_layer", "n_embd", "budget"]
    if not len(runs) or any(k not in runs.columns for k in ("arch", "n_layer", "n_embd", "tokens")):
        return None
    pts = runs.dropna(subset=["loss"])
    if "budget" in pts.columns:
        pts = pts.assign(budget=pts["budget"].fillna(pts["tokens"].map(_tokens_label)))
    else:
        pts = pts.assign(budget=pts["tokens"].map(_tokens_label))
    table = pts.pivot_table(index=keys, columns="tokenizer", values="loss", aggfunc="mean")
    return table[table.notna().sum(axis=1) >= 2]


def _tokens_label(tokens: float) -> str:
    return f"{_short(tokens)} tokens"


def budget_note(budgets) -> str:
    """What the equal-size comparison held equal: text (byte budgets), tokens, or both."""
    labels = {str(b) for b in budgets}
    text = {b for b in labels if b.endswith("text bytes")}
    parts = []
    if text:
        parts.append("Rows with a budget in text bytes (`bytes:` in `train.grids`) trained "
                     "every tokenizer on the same amount of *text* (as many tokens as cover "
                     "it), so they compare the tokenizers alone.")
    if labels - text:
        parts.append("Rows with a token budget trained on the same number of *tokens*, which "
                     "is a different amount of text per tokenizer: a tokenizer with fewer "
                     "tokens per byte (table above) saw proportionally more of the corpus.")
        if not text:
            parts.append("Compare at equal text with a budget in bytes (`bytes:` in a "
                         "`train.grids` sub-grid, docs/training.md).")
    return " ".join(parts)


def plot_tokenizers(plt, toks, runs, style: Style):
    """Tokens per syllable, tokens per byte, and bits per byte at equal model size."""
    fig, axes = plt.subplots(1, 3, figsize=(13, 4.2))
    split = "val" if len(toks) and "val" in set(toks["split"]) else None
    sel = toks[toks["split"] == split] if split else toks
    for ax, col, title in ((axes[0], "tokens_per_syllable", "Tokens per syllable"),
                           (axes[1], "tokens_per_byte", "Tokens per UTF-8 byte")):
        data = sel.dropna(subset=[col]) if len(sel) else sel
        if not len(data):
            _empty(ax, "no shard manifests")
            ax.set_title(title)
            continue
        data = data.groupby("tokenizer", sort=True)[col].mean()
        bars = ax.bar(range(len(data)), data.values, color="#4c72b0")
        ax.bar_label(bars, fmt="%.3g", fontsize=7)
        ax.set_xticks(range(len(data)), data.index, rotation=20, ha="right")
        ax.set_title(f"{title} ({split or 'all'} split)")
    table = equal_size_table(runs)
    ax = axes[2]
    ax.set_title("Bits per byte at equal model size")
    if table is None or not len(table):
        _empty(ax, "no model size was trained\nwith two or more tokenizers")
        return fig
    if all(str(b).endswith("text bytes") for b in table.index.get_level_values("budget")):
        ax.set_title("Bits per byte at equal model size and equal text")
    labels = [f"{a} L{int(layer)}-D{int(d)}\n{b}" for a, layer, d, b in table.index]
    width = 0.8 / len(table.columns)
    for i, tok in enumerate(sorted(table.columns)):
        bars = ax.bar(np.arange(len(table)) + i * width, table[tok].values, width, label=tok,
                      hatch=["", "//", "..", "xx", "\\\\"][i % 5], edgecolor="white")
        ax.bar_label(bars, fmt="%.3f", fontsize=7)
    ax.set_xticks(np.arange(len(table)) + 0.4 - width / 2, labels, fontsize=7)
    ax.set_ylabel("validation bits per byte")
    ax.set_ylim(0, float(np.nanmax(table.values)) * 1.35)  # headroom: labels and legend
    ax.legend(fontsize=7, ncols=2, loc="upper center")
    return fig


def _short(x: float) -> str:
    for unit, suffix in ((1e9, "G"), (1e6, "M"), (1e3, "k")):
        if x >= unit:
            return f"{x / unit:.3g}{suffix}"
    return f"{x:.3g}"


def draw_all(runs, curves, toks, fits: dict, outdir: Path, dpi: int) -> list[Path]:
    """Every figure of ``FIGURES`` into ``outdir`` (PNG + SVG each)."""
    plt = _pyplot()
    archs = set(runs.get("arch", [])) | set(curves.get("arch", []))
    tokenizers = (set(runs.get("tokenizer", [])) | set(curves.get("tokenizer", []))
                  | set(toks.get("tokenizer", [])))
    style = Style([str(a) for a in archs], [str(t) for t in tokenizers])
    makers = {
        "scaling_params": lambda: plot_scaling_params(plt, runs, fits, style),
        "training_curves": lambda: plot_training_curves(plt, curves, style),
        "loss_vs_compute": lambda: plot_loss_vs_compute(plt, runs, fits, style),
        "tokenizers": lambda: plot_tokenizers(plt, toks, runs, style),
    }
    written = []
    for name in FIGURES:
        fig = makers[name]()
        try:
            written += _save(fig, outdir, name, dpi)
        finally:
            plt.close(fig)
    return written


def main(argv: list[str]) -> int:
    """`symato plot --runs CSV --fits JSON [--curves CSV] [--tokenizers CSV] --outdir DIR`."""
    p = argparse.ArgumentParser(prog="symato plot", description="Draw the report's figures.")
    p.add_argument("--runs", required=True, type=Path, help="runs table from symato collect")
    p.add_argument("--fits", type=Path, help="fits JSON from symato fit")
    p.add_argument("--curves", type=Path, help="training-curve table from symato collect")
    p.add_argument("--tokenizers", type=Path, help="tokenizer table from symato collect")
    p.add_argument("--outdir", required=True, type=Path, help="folder for NAME.png/NAME.svg")
    p.add_argument("--dpi", type=int, default=150, help="PNG resolution")
    args = p.parse_args(argv)
    runs = _read_csv(args.runs, "runs table")
    _need(runs, ["tokenizer", "arch", "run", "params", "loss", "flops"], args.runs, "runs table")
    curves = _read_csv(args.curves, "curve table")
    _need(curves, ["tokenizer", "arch", "run", "tokens", "flops", "val_bpb"], args.curves,
          "curve table")
    toks = _read_csv(args.tokenizers, "tokenizer table")
    _need(toks, ["tokenizer", "split", "tokens_per_syllable", "tokens_per_byte"],
          args.tokenizers, "tokenizer table")
    fits: dict[str, Any] = read_json(args.fits, "fits file") if args.fits else {}
    written = draw_all(runs, curves, toks, fits, args.outdir, args.dpi)
    print(f"symato plot: {len(written)} files -> {args.outdir}", file=sys.stderr)
    return 0
