"""Cleaning raw shards into the cleaned corpus (``symato clean``, ``symato clean report``).

Three steps, so the expensive part runs in parallel and deduplication stays global and
deterministic whatever ``--cores`` is:

1. ``symato clean filter`` (one job per shard): normalize every paragraph (NFC,
   look-alike letters such as ð→đ, control characters removed, whitespace collapsed,
   tone marks placed in the configured style) and drop it if it is too short, too long
   or not enough in the corpus's language (``--language``: ``vi``, the default, by the
   share of syllables; ``en`` for a source-language corpus, by the share of words in
   plain ASCII letters; ``any`` checks no language). Writes a work file with one row
   per surviving paragraph and a 64-bit hash of its text.
2. ``symato clean dedup`` (one job): reads only the hashes of every work file in shard
   order and lists every paragraph whose text already occurred earlier (shard order,
   then row order). The first occurrence is the one kept, so the result does not
   depend on which job finished first. It is also where the workflow stops when the
   cleaned corpus would be empty, or its train or validation split would be: the one
   job that sees every shard before anything is written, naming what each source lost
   and why (from the reading and filtering reports).
3. ``symato clean write`` (one job per shard): drops the listed duplicates, rejoins each
   document's paragraphs with blank lines and writes ``doc_id, source, text`` into the
   shard's train or validation file. The split is decided here, once, per document: a
   hash of its ``doc_id`` (BLAKE2b), so it does not depend on shard boundaries, job
   order or Python's hash seed. Everything that learns from text (statistics,
   vocabularies, the restoration baseline) reads the train files only, so validation
   text never shapes a tokenizer.

``symato clean report`` merges the reading report of every source and the per-shard
reports of steps 1 and 3 into ``report.json`` and checks that for every source
kept + dropped = seen for documents, paragraphs and bytes (bytes are the UTF-8 bytes of
the paragraphs as read).
"""

from __future__ import annotations

import argparse
import functools
import hashlib
import json
import re
import unicodedata
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from symato.data.corpus import SourceTally, document_reason, zero_counts
from symato.errors import SymatoError
from symato.io import atomic_path, read_json, write_json_atomic
from symato.progress import Progress, parquet_rows
from symato.text.syllable import LETTERS, normalize_tone_placement, parse

WORK_SCHEMA = pa.schema(
    [
        ("doc_id", pa.string()),
        ("source", pa.string()),
        ("text", pa.string()),
        ("hash", pa.uint64()),
        ("bytes", pa.int64()),
    ]
)
CLEAN_SCHEMA = pa.schema([("doc_id", pa.string()), ("source", pa.string()), ("text", pa.string())])
DUPS_SCHEMA = pa.schema([("shard", pa.string()), ("row", pa.int64())])

# Letters that look like Vietnamese ones but are other code points (Icelandic eth,
# African D): text typed or OCR'd with them would otherwise never parse as syllables.
LOOKALIKES = str.maketrans({"ð": "đ", "Ð": "Đ", "Ɖ": "Đ", "ɖ": "đ"})
# Control characters (C0/C1 except tab and newline) and invisible format characters
# (zero-width space/joiners, word joiner, BOM, soft hyphen) carry no text.
INVISIBLE = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f\u00ad\u200b-\u200d\u2060\ufeff]")
SPACES = re.compile(r"[^\S\n]+")
_RUN_SPLIT = re.compile(f"([{LETTERS}]+)")
# Letter runs of any script (no digits or underscores) and the plain-ASCII ones: English
# is told from Vietnamese by its words carrying no diacritics (a Vietnamese paragraph has
# about a third of its syllables in plain ASCII, an English one nearly all its words).
_ANY_WORD = re.compile(r"[^\W\d_]+")
_ASCII_WORD = re.compile(r"[A-Za-z]+")
# The language a corpus is expected to be in -> the reason its other paragraphs are
# dropped with (None: no language check).
LANGUAGE_REASONS = {"vi": "not_vietnamese", "en": "not_english", "any": None}
_ROWS_PER_GROUP = 4096


# ---------------------------------------------------------------------------------------
# Normalization and filters


def normalize_paragraph(text: str, style: str, repaired: Counter) -> tuple[str, float]:
    """The cleaned form of one paragraph and its Vietnamese share; counts repairs.

    Steps: NFC, look-alike letters, control/invisible characters, whitespace (runs
    collapsed, lines stripped, empty lines removed), then tone placement in ``style``.
    """
    text = unicodedata.normalize("NFC", text.replace("\r\n", "\n").replace("\r", "\n"))
    fixed = text.translate(LOOKALIKES)
    if fixed != text:
        repaired["lookalike_paragraphs"] += 1
    nul = fixed.count("\x00")
    if nul:
        repaired["nul_chars"] += nul
    fixed, n_invisible = INVISIBLE.subn("", fixed)
    if n_invisible - nul:
        repaired["control_chars"] += n_invisible - nul
    lines = (SPACES.sub(" ", line).strip() for line in fixed.split("\n"))
    fixed = "\n".join(line for line in lines if line)
    toned, share = _tone_and_share(fixed, style)
    if toned != fixed:
        repaired["tone_placement_paragraphs"] += 1
    return toned, share


@functools.lru_cache(maxsize=1 << 18)
def _word(word: str, style: str) -> tuple[str, bool]:
    """(word in tone ``style``, is it a syllable): cached, words repeat a lot."""
    if parse(word) is None:
        return word, False
    return normalize_tone_placement(word, style), True


def _tone_and_share(text: str, style: str) -> tuple[str, float]:
    """Tone placement and Vietnamese share in one pass over the letter runs."""
    parts = _RUN_SPLIT.split(text)
    words = parts[1::2]
    if not words:
        return text, 0.0
    mapped = [_word(w, style) for w in words]
    parts[1::2] = [m[0] for m in mapped]
    return "".join(parts), sum(m[1] for m in mapped) / len(words)


def vietnamese_share(text: str) -> float:
    """Share of the letter runs of ``text`` that are Vietnamese syllables (0 if none)."""
    return _tone_and_share(text, "new")[1]


def english_share(text: str) -> float:
    """Share of the letter runs (any script) of ``text`` in plain ASCII letters (0 if none).

    A coarse test of script, not of language: it keeps English and drops Vietnamese (and
    other non-Latin text) from an English corpus, but code samples and command lines
    pass, as they would in any ASCII language.
    """
    words = _ANY_WORD.findall(text)
    if not words:
        return 0.0
    return sum(1 for w in words if _ASCII_WORD.fullmatch(w)) / len(words)


def language_share(text: str, vi_share: float, language: str) -> float:
    """The share of ``text`` in ``language`` (vi: ``vi_share``, computed with tone placement)."""
    if language == "vi":
        return vi_share
    if language == "en":
        return english_share(text)
    if language == "any":
        return 1.0
    raise SymatoError(f"clean language {language!r}: expected one of {', '.join(LANGUAGE_REASONS)}")


def paragraph_verdict(
    text: str, share: float, min_chars: int, max_chars: int, min_share: float,
    language: str = "vi",
) -> str:
    """'' to keep a normalized paragraph, else the reason it is dropped.

    ``share`` is the paragraph's share in ``language`` (:func:`language_share`); below
    ``min_share`` it is dropped as ``not_vietnamese`` / ``not_english`` (never for ``any``).
    """
    if not text:
        return "empty"
    if len(text) < min_chars:
        return "too_short"
    if len(text) > max_chars:
        return "too_long"
    reason = LANGUAGE_REASONS[language]
    if reason and share < min_share:
        return reason
    return ""


def text_hash(text: str) -> int:
    """64-bit hash of a paragraph for deduplication (collision odds ~n²/2⁶⁵: 3e-8 at 1e6)."""
    digest = hashlib.blake2b(text.encode("utf-8"), digest_size=8).digest()
    return int.from_bytes(digest, "little")


# ---------------------------------------------------------------------------------------
# Step 1: filter


def _raw_docs(paths: list[Path]) -> Iterator[tuple[str, str, list[str]]]:
    for path in paths:
        try:
            pf = pq.ParquetFile(path)
        except (OSError, pa.ArrowException) as exc:
            raise SymatoError(f"cannot read raw shard {path}: {exc}") from None
        for batch in pf.iter_batches(batch_size=512, columns=["doc_id", "source", "paragraphs"]):
            cols = batch.to_pydict()
            yield from zip(cols["doc_id"], cols["source"], cols["paragraphs"], strict=True)


class _RowWriter:
    """A Parquet writer that buffers rows and writes fixed-size row groups."""

    def __init__(self, path: Path, schema: pa.Schema) -> None:
        self._ctx = atomic_path(path)
        self._writer = pq.ParquetWriter(self._ctx.__enter__(), schema, compression="zstd")
        self._schema = schema
        self._rows: list[tuple] = []

    def add(self, row: tuple) -> None:
        self._rows.append(row)
        if len(self._rows) >= _ROWS_PER_GROUP:
            self._flush()

    def _flush(self) -> None:
        if self._rows:
            columns = zip(*self._rows, strict=True)
            cols = [pa.array(c, type=f.type) for c, f in zip(columns, self._schema, strict=True)]
            self._writer.write_table(pa.Table.from_arrays(cols, schema=self._schema))
        self._rows = []

    def close(self, ok: bool) -> None:
        if ok:
            self._flush()
        self._writer.close()
        if ok:
            self._ctx.__exit__(None, None, None)
        else:
            self._ctx.__exit__(SymatoError, SymatoError("aborted"), None)


def filter_shard(
    inputs: list[Path], out: Path, style: str, min_chars: int, max_chars: int, min_share: float,
    language: str = "vi", quiet: bool = False,
) -> dict[str, SourceTally]:
    """Step 1 for one shard: normalized, filtered paragraphs + hashes into ``out``
    (progress in documents on stderr, ``symato.progress``, unless ``quiet``).

    ``min_share`` is the least share of each paragraph in ``language`` (see
    :func:`language_share`). Normalization is the same for every language: tone
    placement only rewrites words that parse as Vietnamese syllables.
    """
    tallies: dict[str, SourceTally] = {}
    progress = Progress(f"symato clean filter {out.name}", parquet_rows(inputs), "documents",
                        quiet=quiet)
    writer = _RowWriter(out, WORK_SCHEMA)
    ok = False
    try:
        for doc_id, source, paragraphs in progress.each(_raw_docs(inputs)):
            tally = tallies.setdefault(source, SourceTally())
            reasons: list[str] = []
            for para in paragraphs:
                nbytes = len(para.encode("utf-8", "surrogatepass"))
                text, vi_share = normalize_paragraph(para, style, tally.repaired)
                share = language_share(text, vi_share, language)
                reason = paragraph_verdict(text, share, min_chars, max_chars, min_share, language)
                if reason:
                    tally.drop(reason, paragraphs=1, nbytes=nbytes)
                    reasons.append(reason)
                else:
                    writer.add((doc_id, source, text, text_hash(text), nbytes))
            if len(reasons) == len(paragraphs):
                tally.drop(document_reason(reasons), documents=1)
        ok = True
    finally:
        writer.close(ok)
        progress.close()
    return tallies


# ---------------------------------------------------------------------------------------
# Step 2: global deduplication


def find_duplicates(works: list[Path], out: Path) -> int:
    """List (shard, row) of every paragraph whose text occurred earlier; returns the count.

    Only the 8-byte hashes are loaded (about 8 bytes per paragraph of the whole corpus).
    """
    hashes, offsets = [], [0]
    for path in works:
        try:
            col = pq.read_table(path, columns=["hash"]).column("hash").to_numpy()
        except (OSError, pa.ArrowException, KeyError) as exc:
            raise SymatoError(f"cannot read work file {path}: {exc}") from None
        hashes.append(col.astype(np.uint64, copy=False))
        offsets.append(offsets[-1] + len(col))
    allh = np.concatenate(hashes) if hashes else np.zeros(0, np.uint64)
    duplicate = np.ones(len(allh), dtype=bool)
    if len(allh):
        _, first = np.unique(allh, return_index=True)
        duplicate[first] = False
    where = np.flatnonzero(duplicate)
    shard_idx = np.searchsorted(np.asarray(offsets[1:]), where, side="right")
    names = [shard_name(p) for p in works]
    table = pa.Table.from_arrays(
        [
            pa.array([names[i] for i in shard_idx], type=pa.string()),
            pa.array(where - np.asarray(offsets)[shard_idx], type=pa.int64()),
        ],
        schema=DUPS_SCHEMA,
    )
    with atomic_path(out) as tmp:
        pq.write_table(table, tmp, compression="zstd")
    return len(where)


def check_kept(works: list[Path], dups: Path, val_fraction: float | None,
               reports: list[Path]) -> None:
    """Refuse a cleaned corpus with no document, or with an empty split.

    Why here: every later stage (statistics, vocabularies, tokenizing) would otherwise
    run on nothing and the first error would come from a training run's settings.
    ``val_fraction`` None or 0 (no validation split asked for) checks the train split only.
    """
    fraction = val_fraction or 0.0
    wanted = set(SPLITS) if fraction else {"train"}
    found = _kept_splits(works, dups, fraction, wanted)
    if not found:
        raise SymatoError("nothing is left after cleaning: every paragraph of every source "
                          "was dropped.\n" + dropped_summary(reports))
    missing = sorted(wanted - found)
    if missing:
        raise SymatoError(f"the {missing[0]} split is empty after cleaning: every kept document "
                          f"went to the other split (val_fraction {fraction}, by a hash of its "
                          "doc_id); add text or change clean.val_fraction")


def _kept_splits(works: list[Path], dups: Path, fraction: float, wanted: set[str]) -> set[str]:
    """The splits that documents surviving deduplication go to (stops once it has
    ``wanted``)."""
    found: set[str] = set()
    for work in works:
        drop = _duplicate_rows(dups, shard_name(work))
        try:
            ids = pq.read_table(work, columns=["doc_id"]).column("doc_id").to_pylist()
        except (OSError, pa.ArrowException, KeyError) as exc:
            raise SymatoError(f"cannot read work file {work}: {exc}") from None
        for doc_id in dict.fromkeys(d for row, d in enumerate(ids) if row not in drop):
            found.add(split_of(doc_id, fraction))
            if found >= wanted:
                return found
    return found


def dropped_summary(reports: list[Path]) -> str:
    """One line per source: what was read, and what was dropped for which reason."""
    sources: dict[str, dict] = {}
    for path in reports:
        report = read_json(path, "cleaning stage report")
        for name, part in (report.get("sources") or {}).items():
            _merge_source(sources.setdefault(name, {}), part)
    if not sources:
        return "  (no source yielded a document)"
    return "\n".join(_source_line(name, entry) for name, entry in sorted(sources.items()))


def _source_line(name: str, entry: dict) -> str:
    seen, files = entry.get("seen", zero_counts()), entry.get("files", {})
    entry.setdefault("dropped", {})
    empty = f" ({files['empty']} empty)" if files.get("empty") else ""
    dropped = ", ".join(f"{reason} {c['documents']} documents / {c['paragraphs']} paragraphs / "
                        f"{c['bytes']} bytes" for reason, c in sorted(entry["dropped"].items()))
    return (f"  source {name!r}: {files.get('seen', 0)} files{empty}, {seen['documents']} "
            f"documents, {seen['paragraphs']} paragraphs, {seen['bytes']} bytes read; dropped: "
            f"{dropped or 'nothing'}")


def shard_name(path: Path) -> str:
    """The shard id of a work/clean file: its name up to the first dot ("0003")."""
    return path.name.split(".")[0]


# ---------------------------------------------------------------------------------------
# Step 3: write the cleaned shard


def _duplicate_rows(dups: Path, shard: str) -> set[int]:
    try:
        table = pq.read_table(dups, filters=[("shard", "=", shard)], columns=["row"])
    except (OSError, pa.ArrowException) as exc:
        raise SymatoError(f"cannot read duplicate list {dups}: {exc}") from None
    return set(table.column("row").to_pylist())


def _work_docs(work: Path) -> Iterator[tuple[str, str, list[tuple[int, str, int]]]]:
    """Documents of a work file as (doc_id, source, [(row, text, bytes), ...])."""
    current: tuple[str, str] | None = None
    paras: list[tuple[int, str, int]] = []
    row = 0
    for batch in pq.ParquetFile(work).iter_batches(
        batch_size=4096, columns=["doc_id", "source", "text", "bytes"]
    ):
        cols = batch.to_pydict()
        for doc_id, source, text, nbytes in zip(
            cols["doc_id"], cols["source"], cols["text"], cols["bytes"], strict=True
        ):
            if current is not None and doc_id != current[0]:
                yield current[0], current[1], paras
                paras = []
            current = (doc_id, source)
            paras.append((row, text, nbytes))
            row += 1
    if current is not None:
        yield current[0], current[1], paras


SPLITS = ("train", "val")


def split_of(doc_id: str, val_fraction: float) -> str:
    """``val`` for a stable ``val_fraction`` share of document ids, else ``train``."""
    digest = hashlib.blake2b(doc_id.encode("utf-8"), digest_size=8).digest()
    return "val" if int.from_bytes(digest, "big") / 2.0**64 < val_fraction else "train"


def write_shard(work: Path, dups: Path, outs: dict[str, Path],
                val_fraction: float, quiet: bool = False) -> dict[str, SourceTally]:
    """Step 3 for one shard: drop duplicates, join paragraphs, write each document into
    its split's cleaned shard (``outs["train"]``, ``outs["val"]``); progress in
    paragraphs (the work file's rows) on stderr unless ``quiet``."""
    if not 0.0 <= val_fraction < 1.0:
        raise SymatoError(f"val_fraction must be in [0, 1), got {val_fraction}")
    drop = _duplicate_rows(dups, shard_name(work))
    tallies: dict[str, SourceTally] = {}
    progress = Progress(f"symato clean write {work.name}", parquet_rows([work]), "paragraphs",
                        quiet=quiet)
    writers = {split: _RowWriter(outs[split], CLEAN_SCHEMA) for split in SPLITS}
    ok = False
    try:
        for doc_id, source, paras in progress.each(_work_docs(work), lambda d: len(d[2])):
            tally = tallies.setdefault(source, SourceTally())
            kept = [(text, n) for row, text, n in paras if row not in drop]
            dropped_bytes = sum(n for row, _, n in paras if row in drop)
            if len(kept) < len(paras):
                tally.drop("duplicate", paragraphs=len(paras) - len(kept), nbytes=dropped_bytes)
            if not kept:
                tally.drop("duplicate", documents=1)
                continue
            text = "\n\n".join(t for t, _ in kept)
            split = split_of(doc_id, val_fraction)
            writers[split].add((doc_id, source, text))
            tally.kept["documents"] += 1
            tally.kept["paragraphs"] += len(kept)
            tally.kept["bytes"] += sum(n for _, n in kept)
            nbytes = len(text.encode("utf-8"))
            tally.output["bytes"] += nbytes
            tally.output[f"{split}_documents"] += 1
            tally.output[f"{split}_bytes"] += nbytes
        ok = True
    finally:
        for writer in writers.values():
            writer.close(ok)
        progress.close()
    return tallies


# ---------------------------------------------------------------------------------------
# Report merging


def _add_counts(into: dict[str, int], add: dict[str, int]) -> None:
    for key, value in add.items():
        into[key] = into.get(key, 0) + int(value)


def _merge_source(into: dict, part: dict) -> None:
    for key in ("seen", "kept"):
        _add_counts(into.setdefault(key, zero_counts()), part.get(key, {}))
    for reason, counts in part.get("dropped", {}).items():
        _add_counts(into.setdefault("dropped", {}).setdefault(reason, zero_counts()), counts)
    for key in ("repaired", "files", "output"):
        _add_counts(into.setdefault(key, {}), part.get(key, {}))


def _check_balance(name: str, entry: dict) -> None:
    for unit in ("documents", "paragraphs", "bytes"):
        dropped = sum(c[unit] for c in entry["dropped"].values())
        if entry["kept"][unit] + dropped != entry["seen"][unit]:
            raise SymatoError(
                f"cleaning report for source {name!r} does not add up for {unit}: kept "
                f"{entry['kept'][unit]} + dropped {dropped} != seen {entry['seen'][unit]}"
            )


def merge_reports(paths: list[Path], settings: dict) -> dict:
    """Sum stage reports per source, add totals, check kept + dropped = seen."""
    sources: dict[str, dict] = {}
    for path in paths:
        report = read_json(path, "cleaning stage report")
        if not isinstance(report, dict) or not isinstance(report.get("sources"), dict):
            raise SymatoError(f"{path}: not a cleaning stage report (no 'sources' object)")
        for name, part in report["sources"].items():
            _merge_source(sources.setdefault(name, {}), part)
        # Where an hf source's records came from (dataset, revision, digest): kept beside
        # its counts so the report says which data they describe.
        for name, origin in (report.get("provenance") or {}).items():
            sources.setdefault(name, {})["provenance"] = origin
    total: dict = {}
    for name, entry in sources.items():
        for key in ("seen", "kept"):
            entry.setdefault(key, zero_counts())
        entry.setdefault("dropped", {})
        _check_balance(name, entry)
        _merge_source(total, entry)
    total.setdefault("seen", zero_counts())
    total.setdefault("kept", zero_counts())
    total.setdefault("dropped", {})
    return {"sources": sources, "total": total, "settings": settings, "balanced": True}


# ---------------------------------------------------------------------------------------
# CLI


def _tally_report(stage: str, tallies: dict[str, SourceTally]) -> dict:
    return {"stage": stage, "sources": {k: v.to_json() for k, v in sorted(tallies.items())}}


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="symato clean", description="Clean raw shards.")
    sub = p.add_subparsers(dest="step", required=True)
    f = sub.add_parser("filter", help="normalize and filter one shard's paragraphs")
    f.add_argument("--tone-style", choices=("new", "old"), default="new")
    f.add_argument("--min-paragraph-chars", type=int, default=10)
    f.add_argument("--max-paragraph-chars", type=int, default=100_000)
    f.add_argument("--language", choices=tuple(LANGUAGE_REASONS), default="vi",
                   help="clean.language: the language paragraphs must be in (any: no check)")
    f.add_argument("--min-vietnamese-share", type=float, default=0.5,
                   help="least share of syllables (--language vi)")
    f.add_argument("--min-english-share", type=float, default=0.8,
                   help="least share of plain-ASCII words (--language en)")
    f.add_argument("--out", required=True, type=Path, help="work file (Parquet)")
    f.add_argument("--report", required=True, type=Path)
    f.add_argument("inputs", nargs="+", type=Path, help="raw shards (one per source)")
    d = sub.add_parser("dedup", help="list duplicate paragraphs across all work files")
    d.add_argument("--disable", action="store_true", help="list nothing (dedup off)")
    d.add_argument("--out", required=True, type=Path)
    d.add_argument("--val-fraction", type=float,
                   help="clean.val_fraction: refuse a train or validation split left empty")
    d.add_argument("--report", action="append", default=[], type=Path, dest="reports",
                   help="a reading or filtering report, to name what was dropped when "
                   "nothing is left (repeatable)")
    d.add_argument("works", nargs="+", type=Path, help="work files in shard order")
    w = sub.add_parser("write", help="drop duplicates and write one cleaned shard")
    w.add_argument("--work", required=True, type=Path)
    w.add_argument("--duplicates", required=True, type=Path)
    w.add_argument("--train", required=True, type=Path, help="cleaned train shard (.parquet)")
    w.add_argument("--val", required=True, type=Path, help="cleaned validation shard")
    w.add_argument("--val-fraction", required=True, type=float,
                   help="share of documents (by doc_id hash) held out for validation")
    w.add_argument("--report", required=True, type=Path)
    for step in (f, d, w):
        step.add_argument("--quiet", action="store_true", help="no progress lines on stderr")
    return p


def main(argv: list[str]) -> int:
    """``symato clean filter|dedup|write``: the three cleaning steps (see module doc)."""
    args = _parser().parse_args(argv)
    if args.step == "filter":
        for flag in ("min_vietnamese_share", "min_english_share"):
            if not 0.0 <= getattr(args, flag) <= 1.0:
                raise SymatoError(f"--{flag.replace('_', '-')} must be between 0 and 1")
        min_share = args.min_english_share if args.language == "en" else args.min_vietnamese_share
        tallies = filter_shard(
            args.inputs,
            args.out,
            args.tone_style,
            args.min_paragraph_chars,
            args.max_paragraph_chars,
            min_share,
            args.language,
            quiet=args.quiet,
        )
        write_json_atomic(args.report, _tally_report("filter", tallies))
    elif args.step == "dedup":
        works = [] if args.disable else args.works
        n = find_duplicates(works, args.out)
        try:
            check_kept(args.works, args.out, args.val_fraction, args.reports)
        except SymatoError:
            args.out.unlink()
            raise
        print(f"symato clean dedup: {n} duplicate paragraphs in {len(args.works)} shards")
    else:
        tallies = write_shard(args.work, args.duplicates, {"train": args.train, "val": args.val},
                              args.val_fraction, quiet=args.quiet)
        write_json_atomic(args.report, _tally_report("write", tallies))
    return 0


def report_main(argv: list[str]) -> int:
    """``symato clean report``: merge stage reports into the cleaning report."""
    p = argparse.ArgumentParser(
        prog="symato clean report", description="Merge cleaning stage reports."
    )
    p.add_argument("--out", required=True, type=Path)
    p.add_argument(
        "--setting",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="a setting to record in the report (repeatable)",
    )
    p.add_argument("reports", nargs="+", type=Path)
    args = p.parse_args(argv)
    settings = {}
    for item in args.setting:
        key, sep, value = item.partition("=")
        if not sep:
            raise SymatoError(f"--setting {item!r}: expected KEY=VALUE")
        try:
            settings[key] = json.loads(value)  # numbers and booleans keep their type
        except json.JSONDecodeError:
            settings[key] = value
    report = merge_reports(args.reports, settings)
    write_json_atomic(args.out, report)
    kept, seen = report["total"]["kept"], report["total"]["seen"]
    print(
        f"symato clean report: kept {kept['documents']}/{seen['documents']} documents, "
        f"{kept['paragraphs']}/{seen['paragraphs']} paragraphs, "
        f"{kept['bytes']}/{seen['bytes']} bytes"
    )
    return 0
