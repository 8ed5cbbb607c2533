"""The data behind the report's figures, and what every figure script shares.

Why this split: each figure is drawn by a short script in ``workflow/scripts/`` that a
report rule runs with Snakemake's ``script:`` directive, so restyling a figure (colours,
sizes, labels, titles) is an edit to that script, and Snakemake reruns only that rule
(a script rule reruns when its script is newer than its outputs). What must not differ
between figures, or is a fact worth testing on its own, stays here:

- reading and checking the results tables (``load_runs``, ``load_curves``,
  ``load_tokenizers``, ``load_fits``), with errors naming the file and column;
- facts drawn from them: ``equal_size_table`` and ``budget_note`` (also in summary.md),
  ``on_budget``, ``law_at_budgets``, ``per_tokenizer``; the frontier over runs is
  ``symato.report.fit.compute_frontier``;
- the look figures share: ``Style`` (``symato.report.style``: one colour per tokenizer,
  one line style and marker per architecture, the same in every figure), the legend
  below the axes, labels spread apart, and the axis helpers;
- ``pyplot`` and ``save_figure``: a headless backend, atomic PNG + SVG writes, and SVG
  bytes that do not change between identical runs (so a rerun diffs clean).
"""

from __future__ import annotations

import contextlib
import math
import os
import re
import sys
import traceback
from collections.abc import Iterable, Iterator, Sequence
from typing import Any

import numpy as np
import pandas as pd

from symato.errors import SymatoError
from symato.io import atomic_path, read_json
from symato.report.fit import CURVE_POINTS
from symato.report.laws import predict
from symato.report.style import (  # noqa: F401  (the figure scripts' one import)
    BAND_ALPHA,
    LEGEND_FONTSIZE,
    MAX_BANDS,
    Style,
    group_notes,
    label_ends,
    legend_below,
    shade,
    tokenizer_key,
    tokenizer_order,
)
from symato.run.grid import parse_size, split_name

# The house look; a script may override any of these after pyplot().
RC_PARAMS = {"figure.dpi": 100, "axes.grid": True, "grid.alpha": 0.3, "font.size": 9,
             "figure.constrained_layout.use": True}
# The columns each figure reads from the tables `symato collect` writes.
RUNS_COLUMNS = ("tokenizer", "arch", "run", "params", "tokens", "loss", "flops")
CURVES_COLUMNS = ("tokenizer", "arch", "run", "params", "tokens", "flops", "val_bpb")
TOKENIZERS_COLUMNS = ("tokenizer", "split", "tokens", "tokens_per_syllable", "tokens_per_byte")


# ------------------------------------------------------------------------ reading inputs
def read_table(
    path: str | os.PathLike[str], what: str, columns: Sequence[str] = ()
) -> pd.DataFrame:
    """A CSV table that must have ``columns``; every failure names the file.

    Why strict: a figure drawn from a table missing a column would be silently empty.
    """
    try:
        frame = pd.read_csv(path)
    except FileNotFoundError:
        raise SymatoError(f"{what} not found: {path}") from None
    except (OSError, ValueError) as exc:
        raise SymatoError(f"cannot read {what} {path}: {exc}") from None
    missing = [c for c in columns if c not in frame.columns]
    if missing:
        raise SymatoError(f"{what} {path}: missing column(s) {', '.join(missing)}")
    return frame


def load_runs(path: str | os.PathLike[str], repeated: bool = False) -> pd.DataFrame:
    """results/scaling/runs.csv: one row per run (settings, final bits per byte, FLOPs).

    Runs that repeated their text (``epochs`` > 1) are left out unless ``repeated``:
    every figure and table but the repetition study's compares runs on fresh text.
    """
    runs = read_table(path, "runs table", RUNS_COLUMNS)
    if repeated or "epochs" not in runs.columns:
        return runs
    return runs[~is_repeated(runs)].reset_index(drop=True)


def format_bytes(value: float) -> str:
    """A byte count as in run names, with its unit: 30000 -> ``30k bytes``."""
    from symato.run.grid import format_tokens

    return f"{format_tokens(int(value))} bytes"


def is_repeated(runs: pd.DataFrame) -> pd.Series:
    """Which rows repeated their text (runs.csv ``epochs`` above 1)."""
    if "epochs" not in runs.columns:
        return pd.Series(False, index=runs.index)
    return runs["epochs"].fillna(1.0) > 1 + 1e-9


def repetition_runs(runs: pd.DataFrame) -> pd.DataFrame:
    """The repetition study's cells: for each (tokenizer, arch, size) with repeated runs,
    one row per (unique bytes, trained bytes) with the mean loss over its seed
    replicates (``replicates``: how many), ``size`` (``L1-D32``) and ``fresh`` (bool); a
    fresh cell's ``unique_bytes`` is its trained bytes; sorted.

    Runs that vary another setting (a learning-rate sweep's rates, split forms, a WSD
    schedule) are other recipes of a cell, not more of it: they are left out, so each
    cell is the configured recipe, as the repeated runs are."""
    if "epochs" not in runs.columns or not is_repeated(runs).any():
        return runs.iloc[0:0].assign(fresh=False, size="", replicates=0)
    frame = runs[runs["loss"].notna()].copy()
    frame = frame[[set(split_name(str(r))[1]) <= {"seed"} for r in frame["run"]]]
    frame["size"] = [f"L{int(a)}-D{int(b)}" for a, b in zip(frame["n_layer"], frame["n_embd"],
                                                             strict=True)]
    frame["fresh"] = ~is_repeated(frame)
    shapes = {tuple(r) for r in frame.loc[~frame["fresh"], ["tokenizer", "arch", "size"]].values}
    keep = [tuple(r) in shapes for r in frame[["tokenizer", "arch", "size"]].values]
    frame = frame[keep].copy()
    frame["unique_bytes"] = frame["unique_bytes"].fillna(frame["text_bytes"])
    frame["epochs"] = frame["epochs"].fillna(1.0)
    keys = ["tokenizer", "arch", "size", "unique_bytes", "text_bytes"]
    cells = frame.groupby(keys, as_index=False, sort=True).agg(
        loss=("loss", "mean"), tokens=("tokens", "mean"), epochs=("epochs", "mean"),
        params=("params", "first"), fresh=("fresh", "all"), replicates=("loss", "size"))
    return cells.sort_values(["tokenizer", "arch", "size", "unique_bytes", "tokens"]
                             ).reset_index(drop=True)


def load_curves(path: str | os.PathLike[str]) -> pd.DataFrame:
    """results/scaling/curves.csv: the validation points of every run's training log."""
    return read_table(path, "curve table", CURVES_COLUMNS)


def load_tokenizers(path: str | os.PathLike[str]) -> pd.DataFrame:
    """results/scaling/tokenizers.csv: tokens per syllable and per byte, per split."""
    return read_table(path, "tokenizer table", TOKENIZERS_COLUMNS)


def load_study(path: str | os.PathLike[str]) -> dict[str, Any]:
    """results/scaling/study.json as written by ``symato study``."""
    study = read_json(path, "study file")
    if not isinstance(study, dict) or not isinstance(study.get("groups", {}), dict):
        raise SymatoError(f"study file {path}: expected an object with a 'groups' object")
    return study


def study_panels(study: dict[str, Any]) -> list[tuple[str, str]]:
    """The (arch, size) panels of the tokenizer study figure, smallest size first."""
    keys = {(g["by"]["arch"], s["size"]) for g in study.get("groups", {}).values()
            for s in g.get("sizes", [])}
    return sorted(keys, key=lambda k: (k[0], parse_size(k[1])))


def sweep_series(fits: dict[str, Any]) -> list[dict[str, Any]]:
    """The learning-rate sweeps of fits.json (``lr_choice.sweeps``), each with its
    ``values`` (the swept setting's values, in order) and ``losses``, for the sweep figure.

    The swept setting is ``lr`` when it varies, else the first one that does. Runs
    without a loss (failed) are left out of the line; the summary's table names them.
    """
    out = []
    for sw in (fits.get("lr_choice") or {}).get("sweeps", []):
        key = (sw.get("swept") or ["lr"])[0]
        runs = [r for r in sw["runs"] if r.get(key) is not None and r.get("loss") is not None]
        runs.sort(key=lambda r: r[key])
        out.append({**sw, "setting": key, "values": [r[key] for r in runs],
                    "losses": [r["loss"] for r in runs]})
    return sorted(out, key=lambda s: (s["arch"], s["tokenizer"], _size_key(s["base"])))


def _size_key(run: str) -> tuple[int, ...]:
    """(layers, width) of a run name for sorting, smallest first; (0, 0) if it has none."""
    match = re.search(r"-L([0-9]+)-D([0-9]+)-", run + "-")
    return (int(match.group(1)), int(match.group(2))) if match else (0, 0)


def load_fits(path: str | os.PathLike[str]) -> dict[str, Any]:
    """results/scaling/fits.json as written by ``symato fit``."""
    fits = read_json(path, "fits file")
    if not isinstance(fits, dict) or not isinstance(fits.get("groups", {}), dict):
        raise SymatoError(f"fits file {path}: expected an object with a 'groups' object")
    return fits


# ------------------------------------------------------------------ facts for the figures
def group_fits(fits: dict[str, Any], tokenizer: str, arch: str) -> dict[str, Any]:
    """The fits.json entry of one (tokenizer, arch) group; {} when it was not fitted."""
    return fits.get("groups", {}).get(f"{tokenizer}/{arch}") or {}


def params_column(fits: dict[str, Any]) -> str:
    """The runs-table column the fits used as N (so points and curves share an x-axis)."""
    return "params_non_embedding" if fits.get("params_column") == "non_embedding" else "params"


def on_budget(tokens: Iterable[float], at: float | None) -> np.ndarray:
    """Which runs trained at ``at`` tokens, the budget L(N) was fitted at.

    Why: L(N) is fitted at one budget, so its curve is read against those runs only.
    All True when there is no such budget, or when every run (or none) is on it.
    """
    tokens = np.asarray(list(tokens), dtype=float)
    if at is None:
        return np.ones(len(tokens), dtype=bool)
    main = np.isclose(tokens, at)
    return main if main.any() and not main.all() else np.ones(len(tokens), dtype=bool)


def law_at_budgets(
    law: dict[str, Any], sizes: Iterable[float], budgets: Iterable[float]
) -> list[tuple[float, np.ndarray, np.ndarray]]:
    """A fitted L(N, D) as one (D, N grid, loss) curve per budget, over the runs' sizes."""
    sizes = np.asarray(list(sizes), dtype=float)
    n = np.geomspace(sizes.min() / 1.5, sizes.max() * 1.5, CURVE_POINTS)
    return [(float(d), n, predict(law, n, d)) for d in sorted(set(budgets))]


def per_tokenizer(toks: pd.DataFrame, column: str) -> tuple[str, pd.Series]:
    """Mean of ``column`` per tokenizer on the validation split (all rows when it has none).

    Returns the split's name ("val" or "all") with the series, for the figure's title.
    """
    split = "val" if len(toks) and "val" in set(toks["split"]) else "all"
    rows = toks[toks["split"] == "val"] if split == "val" else toks
    rows = rows.dropna(subset=[column])
    return split, rows.groupby("tokenizer", sort=True)[column].mean()


def is_text_budget(label: Any) -> bool:
    """A runs-table ``budget`` label in bytes of text (``700k text bytes``), not tokens."""
    return str(label).endswith("text bytes")


def equal_size_table(runs: pd.DataFrame) -> pd.DataFrame | None:
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
    if "run" in pts.columns:
        # One run per cell: a learning-rate sweep's or a split-form study's variants
        # (run-name suffixes) would otherwise be averaged into their tokenizer's cell.
        # Seed replicates are the same cell: averaged (aggfunc mean below).
        from symato.report.lrchoice import split_run_name

        # Seed replicates are the same cell: averaged (aggfunc mean below).
        pts = pts[[not set(split_run_name(str(run))[1]) - {"seed"} for run in pts["run"]]]
    tokens_label = pts["tokens"].map(lambda t: f"{short_number(t)} tokens")
    if "budget" in pts.columns:
        pts = pts.assign(budget=pts["budget"].fillna(tokens_label))
    else:
        pts = pts.assign(budget=tokens_label)
    table = pts.pivot_table(index=keys, columns="tokenizer", values="loss", aggfunc="mean")
    table = table[table.notna().sum(axis=1) >= 2]
    order = sorted(table.index, key=lambda k: (*k[:3], budget_size(k[3])))
    return table.loc[order] if len(order) else table


def budget_size(label: str) -> float:
    """'300k text bytes', or a run name's budget field 'B300k' / 'T300k' -> 3e5, so
    budgets sort by size, not as text (inf when unreadable: sorted last)."""
    number = str(label).split(" ", 1)[0]
    if number[:1] in ("B", "T"):
        number = number[1:]
    scale = {"k": 1e3, "M": 1e6, "G": 1e9}.get(number[-1:], 1.0)
    try:
        return float(number[:-1] if scale != 1.0 else number) * scale
    except ValueError:
        return math.inf


def budget_note(budgets: Iterable[Any]) -> str:
    """What the equal-size comparison held equal: text (byte budgets), tokens, or both."""
    labels = {str(b) for b in budgets}
    text = {b for b in labels if is_text_budget(b)}
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


def short_number(x: float) -> str:
    """3 significant digits with a k/M/G suffix: 901234 -> '901k' (labels, legends)."""
    for unit, suffix in ((1e9, "G"), (1e6, "M"), (1e3, "k")):
        if x >= unit:
            return f"{x / unit:.3g}{suffix}"
    return f"{x:.3g}"


# ----------------------------------------------------------------------- the shared look
def loss_axis(ax: Any) -> None:
    """Log y-axis labelled with plain numbers: losses span well under a decade."""
    import matplotlib.ticker as mticker

    ax.set_yscale("log")
    # Ticks every 0.5 (1.5, 2, 2.5, ...): the default 2, 3, ... leave a 1.3-3.7 span
    # (the demo's three budgets) with two labels.
    ax.yaxis.set_minor_locator(mticker.LogLocator(subs=np.arange(1.0, 10.0, 0.5)))
    for setter in (ax.yaxis.set_major_formatter, ax.yaxis.set_minor_formatter):
        setter(mticker.LogFormatter(labelOnlyBase=False, minor_thresholds=(1.2, 0.6)))


def log_x(ax: Any) -> None:
    """Log x-axis whose minor labels appear only when under ~0.7 decades (else they collide)."""
    import matplotlib.ticker as mticker

    ax.set_xscale("log")
    ax.xaxis.set_minor_formatter(
        mticker.LogFormatterSciNotation(labelOnlyBase=False, minor_thresholds=(0.7, 0.3)))


def clear_tick_collisions(fig: Any) -> None:
    """Blank the minor tick labels that would overlap another tick label of the figure
    (crowded log labels); major labels are kept.

    Call it last in ``draw()``: it lays the figure out to measure the labels.
    """
    fig.draw_without_rendering()
    renderer = fig.canvas.get_renderer()
    axes = [ax for ax in fig.axes if ax.get_visible()]
    kept = [lab.get_window_extent(renderer) for ax in axes
            for lab in ax.get_xticklabels() + ax.get_yticklabels()
            if lab.get_visible() and lab.get_text()]
    for ax in axes:
        for axis in (ax.xaxis, ax.yaxis):
            blank = []
            for tick in axis.get_minor_ticks():
                lab = tick.label1
                if not (lab.get_visible() and lab.get_text()):
                    continue
                box = lab.get_window_extent(renderer)
                if any(_overlap(box, other) for other in kept):
                    blank.append(tick.get_loc())
                else:
                    kept.append(box)
            if blank:
                axis.set_minor_formatter(_Blanked(axis.get_minor_formatter(), blank))


def _overlap(a: Any, b: Any) -> bool:
    return a.x0 < b.x1 and b.x0 < a.x1 and a.y0 < b.y1 and b.y0 < a.y1


def _Blanked(inner: Any, blank: list[float]) -> Any:
    """``inner`` (a tick formatter) with the labels at ``blank`` left empty."""
    import matplotlib.ticker as mticker

    class Blanked(mticker.Formatter):
        def set_axis(self, axis: Any) -> None:
            super().set_axis(axis)
            inner.set_axis(axis)

        def set_locs(self, locs: Any) -> None:
            super().set_locs(locs)
            inner.set_locs(locs)

        def __call__(self, x: float, pos: int | None = None) -> str:
            if any(math.isclose(x, b, rel_tol=1e-9) for b in blank):
                return ""
            return inner(x, pos)

    return Blanked()


def note_below(ax: Any, lines: list[str]) -> None:
    """Small grey text under the axes' x label: what could not be drawn and why.

    Why: a group without a fit is drawn as points only; the figure must say why, or a
    reader takes the missing curve for a plotting bug. Anchored to the x label, so it
    never covers the tick labels, and part of the layout, so the legend goes below it.
    """
    if lines:
        ax.annotate("\n".join(lines), xy=(0.0, 0.0), xycoords=("axes fraction", ax.xaxis.label),
                    xytext=(0, -4), textcoords="offset points", va="top", ha="left",
                    fontsize=7, color="0.35")


def panel_grid(plt: Any, n: int, cols: int, width: float, height: float, **kw: Any) -> tuple:
    """(figure, axes array) for ``n`` panels in rows of ``cols``; spare panels hidden."""
    cols = max(1, min(cols, n))
    rows = -(-n // cols)
    fig, axes = plt.subplots(rows, cols, figsize=(width * cols, height * rows + 0.9),
                             squeeze=False, **kw)
    for ax in list(axes.flat)[n:]:
        ax.set_visible(False)
    # room between panels, so the end labels of neighbouring x-axes never touch
    fig.get_layout_engine().set(w_pad=0.1, wspace=0.06)
    return fig, axes


def empty_panel(ax: Any, message: str) -> None:
    """A panel with nothing to draw yet says so, instead of showing empty axes."""
    ax.text(0.5, 0.5, message, transform=ax.transAxes, ha="center", va="center", color="0.4")
    ax.set_xticks([])
    ax.set_yticks([])


# ------------------------------------------------------------------------------- output
def pyplot() -> Any:
    """``matplotlib.pyplot`` on the headless Agg backend, with the house look (RC_PARAMS)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    plt.rcParams.update(RC_PARAMS)
    return plt


def save_figure(
    fig: Any, png: str | os.PathLike[str], svg: str | os.PathLike[str], dpi: int
) -> None:
    """Write ``fig`` as PNG (for the report) and SVG (for papers), atomically, then close it.

    The SVG is byte-stable: a fixed hash salt for its element ids and no date, so
    identical inputs give identical bytes. The PNG carries no software version.
    """
    import matplotlib.pyplot as plt

    try:
        with plt.rc_context({"svg.hashsalt": "symato"}):
            for path, fmt, meta in ((png, "png", {"Software": None}), (svg, "svg", {"Date": None})):
                with atomic_path(path) as tmp:
                    fig.savefig(tmp, format=fmt, dpi=dpi, metadata=meta, bbox_inches="tight")
    finally:
        plt.close(fig)
    print(f"wrote {png} and {svg}", file=sys.stderr)


@contextlib.contextmanager
def logged_to(path: str | os.PathLike[str]) -> Iterator[None]:
    """Send a script's stdout and stderr (warnings and a traceback too) to its rule's log.

    Why: ``script:`` rules have no shell to redirect with ``> {log} 2>&1``. An error is
    written to the log and raised again, so Snakemake reports the job as failed.
    """
    with open(path, "w", encoding="utf-8") as log, contextlib.redirect_stdout(log), \
            contextlib.redirect_stderr(log):
        try:
            yield
        except BaseException:
            traceback.print_exc()
            raise
