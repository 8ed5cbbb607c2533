"""Syllable statistics of the cleaned corpus: per shard in parallel, then one merge.

Why two steps: counting is the expensive part and runs once per cleaned shard (one
Snakemake job each, so it scales with cores); the merge only sums small count tables
and classifies the *distinct* letter runs, which is cheap whatever the corpus size.

Token model (the classic table): the text is cut into maximal letter runs
(``symato.text.syllable.letter_runs``, the one definition of a word) and single non-space
characters between them. A letter run whose lower-case form is a canonical Vietnamese
syllable counts as a syllable; other letter runs are "other alphabetic"; every non-space
character outside letter runs is one "non-alphabetic" token.

Per-shard output: one Parquet table (``kind`` = ``letters`` | ``char``, ``token`` as
written, ``count``). Merged outputs (in ``--out``): ``syllables.parquet`` (syllable,
sym, marktone, count), ``syms.parquet`` (sym, count), ``marktones.csv``, ``case.csv``,
``token_classes.csv``, ``coverage.csv``, ``top_non_syllables.csv``, three PNG plots and
``summary.md``.
"""

from __future__ import annotations

import argparse
import json
from collections import Counter
from collections.abc import Iterable
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from symato.errors import SymatoError
from symato.io import atomic_path, write_text_atomic
from symato.text.syllable import letter_runs

COVERAGE_LEVELS = (0.99, 0.999, 0.9999)
SHARD_SCHEMA = pa.schema([("kind", pa.string()), ("token", pa.string()), ("count", pa.int64())])
PLOTS = ("syllable_rank.png", "coverage.png", "token_classes.png")
TABLES = (
    "syllables.parquet",
    "syms.parquet",
    "marktones.csv",
    "case.csv",
    "token_classes.csv",
    "coverage.csv",
    "top_non_syllables.csv",
)


# ----------------------------------------------------------------------------- counting
def count_text(text: str, letters: Counter[str], chars: Counter[str]) -> None:
    """Add the letter runs and the non-space non-letter characters of ``text``."""
    prev = 0
    for start, end in letter_runs(text):
        if start > prev:
            chars.update(text[prev:start])
        letters[text[start:end]] += 1
        prev = end
    if prev < len(text):
        chars.update(text[prev:])


def _drop_space(chars: Counter[str]) -> Counter[str]:
    return Counter({c: n for c, n in chars.items() if not c.isspace()})


def read_clean_texts(path: Path) -> Iterable[str]:
    """Yield the ``text`` column of a cleaned shard batch by batch (bounded memory)."""
    try:
        pf = pq.ParquetFile(path)
    except FileNotFoundError:
        raise SymatoError(f"cleaned shard not found: {path}") from None
    except (OSError, pa.ArrowInvalid) as exc:
        raise SymatoError(f"cannot read cleaned shard {path}: {exc}") from None
    if "text" not in pf.schema_arrow.names:
        names = pf.schema_arrow.names
        raise SymatoError(f"cleaned shard {path} has no 'text' column (has {names})")
    for batch in pf.iter_batches(columns=["text"], batch_size=4096):
        for text in batch.column(0).to_pylist():
            if text is not None:
                yield text


def shard_counts(path: Path) -> pa.Table:
    """Count one cleaned shard into the per-shard table (``kind``, ``token``, ``count``)."""
    letters: Counter[str] = Counter()
    chars: Counter[str] = Counter()
    for text in read_clean_texts(path):
        count_text(text, letters, chars)
    chars = _drop_space(chars)
    kinds = ["letters"] * len(letters) + ["char"] * len(chars)
    tokens = list(letters) + list(chars)
    counts = list(letters.values()) + list(chars.values())
    return pa.table({"kind": kinds, "token": tokens, "count": counts}, schema=SHARD_SCHEMA)


def main(argv: list[str]) -> int:
    """``symato stats``: count one cleaned shard."""
    parser = argparse.ArgumentParser(
        prog="symato stats", description="Count letter runs and characters of one cleaned shard."
    )
    parser.add_argument("--clean", required=True, type=Path, help="cleaned shard (.parquet)")
    parser.add_argument("--out", required=True, type=Path, help="per-shard counts (.parquet)")
    args = parser.parse_args(argv)
    table = shard_counts(args.clean)
    with atomic_path(args.out) as tmp:
        pq.write_table(table, tmp)
    print(f"{args.clean}: {table.num_rows} distinct tokens -> {args.out}")
    return 0


# ----------------------------------------------------------------------------- merging
def read_shard_counts(paths: list[Path]) -> pd.DataFrame:
    """Sum the per-shard tables into one (kind, token) -> count frame."""
    frames = []
    for path in paths:
        try:
            table = pq.read_table(path)
        except (OSError, pa.ArrowInvalid) as exc:
            raise SymatoError(f"cannot read shard statistics {path}: {exc}") from None
        if table.schema.names != SHARD_SCHEMA.names:
            raise SymatoError(
                f"shard statistics {path} has columns {table.schema.names}, "
                f"expected {SHARD_SCHEMA.names}"
            )
        frames.append(table.to_pandas())
    if not frames:
        raise SymatoError("stats merge: no shard statistics given")
    df = pd.concat(frames, ignore_index=True)
    return df.groupby(["kind", "token"], as_index=False, sort=False)["count"].sum()


def split_syllable(run: str, style: str) -> tuple[str, str, int, str] | None:
    """(lower-case canonical syllable, sym, marktone, case) of a letter run, or None.

    A run counts as a syllable when ``symato.text.syllable.parse`` accepts it (lower, Title
    or UPPER case; either tone placement); it is tallied under its canonical lower-case
    form in ``style`` so "Hoà", "HOÀ" and "hòa" meet in one row.
    """
    from symato.text.syllable import compose, parse

    syl = parse(run)
    if syl is None:
        return None
    return compose(syl.sym, syl.mark, syl.tone, "lower", style), syl.sym, syl.marktone, syl.case


def classify_runs(letters: pd.DataFrame, style: str) -> pd.DataFrame:
    """Add ``syllable``, ``sym``, ``marktone``, ``case`` (None unless a syllable)."""
    letters = letters.copy()
    parts = [split_syllable(run, style) for run in letters["token"]]
    for i, col in enumerate(("syllable", "sym", "marktone", "case")):
        letters[col] = [p[i] if p else None for p in parts]
    letters["is_syllable"] = np.array([p is not None for p in parts], dtype=bool)
    letters["lower"] = letters["token"].str.lower()
    return letters


def coverage_needed(counts: np.ndarray, levels: Iterable[float]) -> list[int]:
    """How many of the most frequent items cover each level of all occurrences."""
    ordered = np.sort(np.asarray(counts, dtype=np.int64))[::-1]
    total = ordered.sum()
    if total == 0:
        return [0 for _ in levels]
    cum = np.cumsum(ordered)
    # smallest k with cum[k-1] >= level * total (tolerance absorbs float rounding)
    return [int(np.searchsorted(cum, level * total - 1e-9 * total, side="left") + 1)
            for level in levels]


def build_tables(df: pd.DataFrame, top_n: int, style: str) -> dict[str, pd.DataFrame]:
    """Every merged table, keyed by file name."""
    letters = classify_runs(df[df["kind"] == "letters"], style)
    chars = df[df["kind"] == "char"]
    syl = letters[letters["is_syllable"]].astype({"marktone": "int64"})
    syllables = (
        syl.groupby(["syllable", "sym", "marktone"], as_index=False)["count"].sum()
        .sort_values(["count", "syllable"], ascending=[False, True], ignore_index=True)
    )
    syms = (syllables.groupby("sym", as_index=False)["count"].sum()
            .sort_values(["count", "sym"], ascending=[False, True], ignore_index=True))
    marktones = (syllables.groupby("marktone", as_index=False)["count"].sum()
                 .sort_values(["count", "marktone"], ascending=[False, True], ignore_index=True))
    case = syl.groupby("case", as_index=False)["count"].sum()
    case = case.set_index("case").reindex(["lower", "title", "upper"], fill_value=0)
    case = case.reset_index()
    other = letters[~letters["is_syllable"]]
    classes = pd.DataFrame({
        "class": ["vietnamese_syllable", "other_alphabetic", "non_alphabetic"],
        "count": [int(syl["count"].sum()), int(other["count"].sum()), int(chars["count"].sum())],
    })
    marktones["mark"], marktones["tone"] = marktones["marktone"] // 6, marktones["marktone"] % 6
    for frame in (marktones, case, classes):
        total = frame["count"].sum()
        frame["share"] = frame["count"] / total if total else 0.0
    coverage = pd.DataFrame({
        "level": list(COVERAGE_LEVELS),
        "syms": coverage_needed(syms["count"].to_numpy(), COVERAGE_LEVELS),
        "syllables": coverage_needed(syllables["count"].to_numpy(), COVERAGE_LEVELS),
    })
    top = (other.groupby("lower", as_index=False)["count"].sum()
           .rename(columns={"lower": "letter_run"})
           .sort_values(["count", "letter_run"], ascending=[False, True], ignore_index=True)
           .head(top_n))
    return {
        "syllables.parquet": syllables, "syms.parquet": syms, "marktones.csv": marktones,
        "case.csv": case, "token_classes.csv": classes, "coverage.csv": coverage,
        "top_non_syllables.csv": top,
    }


def write_table(frame: pd.DataFrame, path: Path) -> None:
    """Write a table atomically as Parquet or CSV by its suffix."""
    with atomic_path(path) as tmp:
        if path.suffix == ".parquet":
            pq.write_table(pa.Table.from_pandas(frame, preserve_index=False), tmp)
        else:
            frame.to_csv(tmp, index=False)


def _save_fig(fig, path: Path) -> None:  # type: ignore[no-untyped-def]
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=100)


def write_plots(tables: dict[str, pd.DataFrame], out: Path) -> None:
    """Rank-frequency, coverage curves and token-class shares as PNG files."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    syllables, syms = tables["syllables.parquet"], tables["syms.parquet"]
    fig, ax = plt.subplots(figsize=(6, 4))
    for name, frame in (("syllables", syllables), ("syms", syms)):
        if len(frame):
            ax.loglog(np.arange(1, len(frame) + 1), frame["count"].to_numpy(), label=name)
    ax.set(xlabel="rank", ylabel="occurrences", title="Rank-frequency")
    if ax.get_legend_handles_labels()[0]:
        ax.legend()
    fig.tight_layout()
    _save_fig(fig, out / "syllable_rank.png")
    plt.close(fig)

    fig, ax = plt.subplots(figsize=(6, 4))
    for name, frame in (("syllables", syllables), ("syms", syms)):
        counts = frame["count"].to_numpy()
        if counts.sum():
            ax.semilogx(np.arange(1, len(counts) + 1), np.cumsum(counts) / counts.sum(), label=name)
    ax.set(xlabel="most frequent items kept", ylabel="share of syllable occurrences",
           title="Coverage", ylim=(0, 1.01))
    if ax.get_legend_handles_labels()[0]:
        ax.legend()
    fig.tight_layout()
    _save_fig(fig, out / "coverage.png")
    plt.close(fig)

    classes = tables["token_classes.csv"]
    fig, ax = plt.subplots(figsize=(6, 3))
    ax.barh(classes["class"], classes["share"])
    ax.set(xlabel="share of tokens", xlim=(0, 1), title="Token classes")
    fig.tight_layout()
    _save_fig(fig, out / "token_classes.png")
    plt.close(fig)


def _md_table(frame: pd.DataFrame, float_cols: Iterable[str] = ()) -> str:
    floats = set(float_cols)
    head = "| " + " | ".join(frame.columns) + " |"
    sep = "| " + " | ".join("---" for _ in frame.columns) + " |"
    rows = []
    for rec in frame.itertuples(index=False):
        pairs = zip(frame.columns, rec, strict=True)
        cells = [f"{v:.2%}" if c in floats else str(v) for c, v in pairs]
        rows.append("| " + " | ".join(cells) + " |")
    return "\n".join([head, sep, *rows])


def summary_markdown(tables: dict[str, pd.DataFrame], shards: int) -> str:
    """A short human summary of the merged statistics."""
    syllables, syms = tables["syllables.parquet"], tables["syms.parquet"]
    cov = tables["coverage.csv"].copy()
    cov["level"] = cov["level"].map(lambda x: f"{x:.2%}")
    parts = [
        "# Syllable statistics of the train split",
        "",
        "What the vocabularies and the restoration baseline learn from: the cleaned train "
        "split only (validation documents are held out when the corpus is cleaned).",
        "",
        f"{shards} cleaned train shard(s); {int(syllables['count'].sum())} syllable occurrences, "
        f"{len(syllables)} distinct syllables, {len(syms)} distinct syms.",
        "",
        "## Token classes",
        _md_table(tables["token_classes.csv"], ["share"]),
        "",
        "## Coverage (items needed for a share of syllable occurrences)",
        _md_table(cov),
        "",
        "## Case of syllables",
        _md_table(tables["case.csv"], ["share"]),
        "",
        "## Most frequent syllables",
        _md_table(syllables.head(20)),
        "",
        "## Most frequent letter runs that are not syllables",
        _md_table(tables["top_non_syllables.csv"].head(20)),
        "",
    ]
    return "\n".join(parts)


def merge(paths: list[Path], out: Path, top_n: int, style: str = "new") -> dict[str, pd.DataFrame]:
    """Merge per-shard counts and write every table, plot and the summary into ``out``."""
    tables = build_tables(read_shard_counts(paths), top_n, style)
    out.mkdir(parents=True, exist_ok=True)
    for name, frame in tables.items():
        write_table(frame, out / name)
    write_plots(tables, out)
    write_text_atomic(out / "summary.md", summary_markdown(tables, len(paths)))
    return tables


def merge_main(argv: list[str]) -> int:
    """``symato stats merge``: per-shard counts -> tables, plots, summary."""
    parser = argparse.ArgumentParser(
        prog="symato stats merge", description="Merge per-shard statistics into tables and plots."
    )
    parser.add_argument("shards", nargs="+", type=Path, help="per-shard counts (.parquet)")
    parser.add_argument("--out", required=True, type=Path, help="output folder (results/stats)")
    parser.add_argument("--top", type=int, default=100, help="non-syllable letter runs to list")
    parser.add_argument("--tone-style", choices=["new", "old"], default="new",
                        help="tone placement of the canonical syllable forms (as cleaned)")
    args = parser.parse_args(argv)
    if args.top < 1:
        raise SymatoError(f"--top must be >= 1, got {args.top}")
    tables = merge(args.shards, args.out, args.top, args.tone_style)
    classes = tables["token_classes.csv"]
    shares = {c: int(n) for c, n in zip(classes["class"], classes["count"], strict=True)}
    print(json.dumps(shares, sort_keys=True))
    return 0
