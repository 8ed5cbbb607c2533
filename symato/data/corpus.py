"""Reading configured corpus sources into raw Parquet shards (``symato corpus``).

Why a separate reading step: the sources come in many shapes (plain text, gzip or zstd
compressed text, JSON lines, Parquet, Hugging Face datasets) and sizes (up to many GB).
Reading each source once, streaming, into ``N`` raw shards of one common shape
(``doc_id``, ``source``, ``paragraphs``) lets cleaning and statistics run as ``N``
parallel jobs that never care where the text came from.

What one document is:
- ``text`` sources: each blank-line separated block (``unit: paragraph``), or each
  non-empty line (``unit: line``, for one-article-per-line corpora). The block is also
  the document's one paragraph.
- ``jsonl`` / ``parquet`` / ``demo`` / ``hf`` sources: one record or row; its text is split
  into paragraphs at blank lines (``hf``: ``symato.data.hub``, streamed with ``datasets``).

Problems that are the input's fault are counted, never silently dropped: a paragraph
with invalid UTF-8 (dropped as ``invalid_utf8``), one longer than
``--max-paragraph-bytes`` (skipped while streaming as ``too_long``, so a 50 MB line never
sits in memory), an empty file or record. Problems that mean the input is not what the
config says fail with the file (and line) named: a truncated ``.gz``/``.zst``, a line of
a JSON-lines file that is not a JSON object with the text field, a Parquet file without
the text column. An ``hf`` record without the text field, or whose value is not a
string, is counted (``symato.data.hub``).
"""

from __future__ import annotations

import argparse
import glob
import gzip
import hashlib
import io
import json
import re
import zlib
from collections import Counter
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, BinaryIO

import pyarrow as pa
import pyarrow.parquet as pq

from symato.data import hub
from symato.errors import SymatoError
from symato.io import atomic_path, write_json_atomic

RAW_SCHEMA = pa.schema(
    [("doc_id", pa.string()), ("source", pa.string()), ("paragraphs", pa.list_(pa.string()))]
)
PARAGRAPH_BREAK = re.compile(r"\n[ \t\r\f\v]*\n")
FORMATS = ("demo", "text", "jsonl", "parquet", "hf")
# How many raw rows a shard buffers before writing a row group (bounded memory).
_FLUSH_ROWS = 2000
_FLUSH_BYTES = 16 << 20


# ---------------------------------------------------------------------------------------
# Counting: every stage reports per source what it saw, kept and dropped (and why).


def zero_counts() -> dict[str, int]:
    """A fresh {documents, paragraphs, bytes} counter."""
    return {"documents": 0, "paragraphs": 0, "bytes": 0}


@dataclass
class SourceTally:
    """Counts of one stage for one source; merged across stages into the final report."""

    seen: dict[str, int] = field(default_factory=zero_counts)
    kept: dict[str, int] = field(default_factory=zero_counts)
    dropped: dict[str, dict[str, int]] = field(default_factory=dict)
    repaired: Counter = field(default_factory=Counter)
    files: Counter = field(default_factory=Counter)
    output: Counter = field(default_factory=Counter)

    def drop(self, reason: str, documents: int = 0, paragraphs: int = 0, nbytes: int = 0) -> None:
        """Count something dropped for ``reason``."""
        c = self.dropped.setdefault(reason, zero_counts())
        c["documents"] += documents
        c["paragraphs"] += paragraphs
        c["bytes"] += nbytes

    def to_json(self) -> dict:
        """Plain-JSON form (sorted reasons) so report bytes are stable."""
        return {
            "seen": dict(self.seen),
            "kept": dict(self.kept),
            "dropped": {k: dict(v) for k, v in sorted(self.dropped.items())},
            "repaired": dict(sorted(self.repaired.items())),
            "files": dict(sorted(self.files.items())),
            "output": dict(sorted(self.output.items())),
        }


def document_reason(reasons: list[str]) -> str:
    """Why a document with no paragraph left is dropped: its most frequent paragraph reason.

    Ties go to the alphabetically first reason so the report is deterministic; a document
    that had no paragraph at all is ``empty``.
    """
    if not reasons:
        return "empty"
    counts = Counter(reasons)
    best = max(counts.values())
    return min(r for r, n in counts.items() if n == best)


# ---------------------------------------------------------------------------------------
# Reading


@dataclass
class RawDoc:
    """One document as read: kept paragraphs plus (reason, bytes) of skipped ones.

    ``reason``: why a record yielded no paragraph at all when it is not a paragraph's
    fault (an ``hf`` record without the text field); else the paragraphs' reasons decide.
    """

    doc_id: str
    paragraphs: list[str]
    skipped: list[tuple[str, int]]
    reason: str = ""


def open_binary(path: Path) -> BinaryIO:
    """Open ``path`` for streaming reads, decompressing ``.gz`` / ``.zst`` by extension."""
    name = path.name.lower()
    try:
        if name.endswith(".gz"):
            return gzip.open(path, "rb")  # type: ignore[return-value]
        if name.endswith(".zst"):
            try:
                import zstandard
            except ImportError:
                raise SymatoError(
                    f"{path}: reading .zst files needs the 'zstandard' package "
                    "(pip install zstandard)"
                ) from None
            return io.BufferedReader(_ZstdRaw(open(path, "rb"), zstandard))
        return open(path, "rb")
    except OSError as exc:
        raise SymatoError(f"cannot open {path}: {exc}") from None


class _ZstdRaw(io.RawIOBase):
    """A raw stream of a (multi-frame) zstd file that notices truncation.

    Why not ``stream_reader``: it ends quietly when the file stops mid-frame, and a
    truncated file must be an error naming it.
    """

    def __init__(self, fh: BinaryIO, zstandard) -> None:
        super().__init__()
        self._fh, self._zstd = fh, zstandard
        self._dobj = zstandard.ZstdDecompressor().decompressobj()
        self._buf = b""
        self._started = False

    def readable(self) -> bool:
        return True

    def readinto(self, b) -> int:
        while not self._buf:
            chunk = self._fh.read(1 << 13)
            if not chunk:
                if self._started and not self._dobj.eof:
                    raise EOFError("zstd stream ended in the middle of a frame")
                return 0
            while chunk:
                if self._dobj.eof:
                    self._dobj = self._zstd.ZstdDecompressor().decompressobj()
                self._started = True
                self._buf += self._dobj.decompress(chunk)
                chunk = self._dobj.unused_data if self._dobj.eof else b""
        n = min(len(b), len(self._buf))
        b[:n] = self._buf[:n]
        self._buf = self._buf[n:]
        return n

    def close(self) -> None:
        self._fh.close()
        super().close()


def _decode_errors() -> tuple[type[BaseException], ...]:
    """Exceptions that mean a compressed stream is truncated or corrupt."""
    errors: list[type[BaseException]] = [EOFError, OSError, zlib.error]
    try:
        import zstandard

        errors.append(zstandard.ZstdError)
    except ImportError:
        pass
    return tuple(errors)


def _stream_lines(fh: BinaryIO, cap: int) -> Iterator[tuple[bytes | None, int]]:
    """Yield (line without terminator, bytes) or (None, bytes) for a line over ``cap``.

    Reads at most ``cap + 1`` bytes at a time, so an endless line costs no memory.
    """
    while True:
        piece = fh.readline(cap + 1)
        if not piece:
            return
        if piece.endswith(b"\n") or len(piece) <= cap:
            line = piece.rstrip(b"\r\n")
            if len(line) > cap:
                yield None, len(line)
            else:
                yield line, len(line)
            continue
        size = len(piece)
        while not piece.endswith(b"\n"):
            piece = fh.readline(1 << 20)
            if not piece:
                break
            size += len(piece)
        yield None, size - (1 if piece.endswith(b"\n") else 0)


def _finish_block(lines: list[bytes], size: int, too_long: bool) -> tuple[str | None, str, int]:
    """Decode a block of raw lines: (text or None, drop reason, bytes)."""
    if too_long:
        return None, "too_long", size
    raw = b"\n".join(lines)
    try:
        return raw.decode("utf-8"), "", len(raw)
    except UnicodeDecodeError:
        return None, "invalid_utf8", len(raw)


def _text_blocks(fh: BinaryIO, cap: int, unit: str) -> Iterator[tuple[str | None, str, int]]:
    """Paragraphs (or lines) of a text stream as (text or None, drop reason, bytes)."""
    lines: list[bytes] = []
    size, too_long = 0, False
    for line, nbytes in _stream_lines(fh, cap):
        blank = line is not None and not line.strip()
        if unit == "line":
            if not blank:
                yield _finish_block([line] if line is not None else [], nbytes, line is None)
            continue
        if blank:
            if lines or too_long:
                yield _finish_block(lines, size, too_long)
            lines, size, too_long = [], 0, False
            continue
        size += nbytes + (1 if (lines or too_long) else 0)
        if line is None or too_long or size > cap:
            too_long, lines = True, []
        else:
            lines.append(line)
    if lines or too_long:
        yield _finish_block(lines, size, too_long)


def read_text(path: Path, source: str, cap: int, unit: str) -> Iterator[RawDoc]:
    """Documents of a plain-text file (``.txt``, ``.txt.gz``, ``.txt.zst``)."""
    with open_binary(path) as fh:
        try:
            for i, (text, reason, nbytes) in enumerate(_text_blocks(fh, cap, unit)):
                doc_id = f"{source}:{path}:{i}"
                if text is None:
                    yield RawDoc(doc_id, [], [(reason, nbytes)])
                else:
                    yield RawDoc(doc_id, [text], [])
        except _decode_errors() as exc:
            raise SymatoError(f"{path}: truncated or corrupt compressed file ({exc})") from None


def split_paragraphs(text: str, cap: int) -> tuple[list[str], list[tuple[str, int]]]:
    """Split a record's text at blank lines; paragraphs over ``cap`` bytes are skipped."""
    kept: list[str] = []
    skipped: list[tuple[str, int]] = []
    for block in PARAGRAPH_BREAK.split(text.replace("\r\n", "\n")):
        if not block.strip():
            continue
        try:
            nbytes = len(block.encode("utf-8"))
        except UnicodeEncodeError:  # a lone surrogate from a JSON "\\ud800" escape
            skipped.append(("invalid_utf8", len(block.encode("utf-8", "surrogatepass"))))
            continue
        if nbytes > cap:
            skipped.append(("too_long", nbytes))
        else:
            kept.append(block)
    return kept, skipped


def _record_text(obj: object, text_field: str, where: str) -> str | None:
    if not isinstance(obj, dict):
        raise SymatoError(f"{where}: expected a JSON object, got {type(obj).__name__}")
    if text_field not in obj:
        raise SymatoError(f"{where}: no field {text_field!r} (set the source's text_field)")
    value = obj[text_field]
    if value is None:
        return None
    if not isinstance(value, str):
        raise SymatoError(f"{where}: field {text_field!r} is {type(value).__name__}, not a string")
    return value


def read_jsonl(path: Path, source: str, cap: int, text_field: str) -> Iterator[RawDoc]:
    """Documents of a JSON-lines file: a line that is not valid JSON is an error (file:line)."""
    with open_binary(path) as fh:
        try:
            for lineno, line in enumerate(fh, start=1):
                if not line.strip():
                    continue
                doc_id = f"{source}:{path}:{lineno}"
                try:
                    decoded = line.decode("utf-8")
                except UnicodeDecodeError:
                    yield RawDoc(doc_id, [], [("invalid_utf8", len(line.rstrip(b"\r\n")))])
                    continue
                try:
                    obj = json.loads(decoded)
                except json.JSONDecodeError as exc:
                    raise SymatoError(f"{path}:{lineno}: invalid JSON: {exc.msg}") from None
                text = _record_text(obj, text_field, f"{path}:{lineno}")
                kept, skipped = split_paragraphs(text or "", cap)
                yield RawDoc(doc_id, kept, skipped)
        except _decode_errors() as exc:
            raise SymatoError(f"{path}: truncated or corrupt compressed file ({exc})") from None


def read_parquet(path: Path, source: str, cap: int, text_field: str) -> Iterator[RawDoc]:
    """Documents of a Parquet file, one per row of column ``text_field``."""
    try:
        pf = pq.ParquetFile(path)
    except (OSError, pa.ArrowException) as exc:
        raise SymatoError(f"cannot read Parquet file {path}: {exc}") from None
    names = pf.schema_arrow.names
    if text_field not in names:
        raise SymatoError(
            f"{path}: no column {text_field!r} (columns: {', '.join(names)}); "
            "set the source's text_field"
        )
    col_type = pf.schema_arrow.field(text_field).type
    if not (pa.types.is_string(col_type) or pa.types.is_large_string(col_type)):
        raise SymatoError(f"{path}: column {text_field!r} has type {col_type}, not string")
    row = 0
    batches = pf.iter_batches(batch_size=1024, columns=[text_field])
    while True:
        try:
            batch = next(batches)
        except StopIteration:
            return
        except (OSError, pa.ArrowException) as exc:
            raise SymatoError(f"{path}: corrupt Parquet data after row {row}: {exc}") from None
        for text in batch.column(0).to_pylist():
            kept, skipped = split_paragraphs(text or "", cap)
            yield RawDoc(f"{source}:{path}:{row}", kept, skipped)
            row += 1


def read_hub(src: hub.HubSource, stream: Iterable[Any], source: str,
             cap: int) -> Iterator[RawDoc]:
    """Documents of an ``hf`` source's record stream (``hub.open_stream``), in order.

    Ids are ``source:dataset[/config]:split:index``: stable while the revision (or the
    local folder) stays the same.
    """
    name = f"{src.dataset}/{src.config}" if src.config else src.dataset
    for index, text, reason in hub.records(src, stream):
        doc_id = f"{source}:{name}:{src.split}:{index}"
        if text is None:
            yield RawDoc(doc_id, [], [], reason)
        else:
            kept, skipped = split_paragraphs(text, cap)
            yield RawDoc(doc_id, kept, skipped)


def read_source(
    paths: list[Path], source: str, fmt: str, cap: int, text_field: str, unit: str
) -> Iterator[tuple[Path, RawDoc | None]]:
    """Every document of every file in order; (path, None) marks a file with none."""
    for path in paths:
        if not path.is_file():
            raise SymatoError(f"source {source!r}: input file not found: {path}")
        if fmt == "text":
            docs: Iterator[RawDoc] = read_text(path, source, cap, unit)
        elif fmt in ("jsonl", "demo"):
            docs = read_jsonl(path, source, cap, text_field)
        elif fmt == "parquet":
            docs = read_parquet(path, source, cap, text_field)
        else:  # hf sources are no files: shard_hub reads them
            raise SymatoError(f"source {source!r}: unknown format {fmt!r} (one of {FORMATS})")
        empty = True
        for doc in docs:
            empty = False
            yield path, doc
        if empty:
            yield path, None


# ---------------------------------------------------------------------------------------
# Configuration (used by rules/corpus.smk at parse time, before any job starts)


def resolve_sources(corpus: dict, demo_file: str) -> list[dict]:
    """The ``corpus.sources`` config with every glob resolved to files, checked.

    Raises ``SymatoError`` naming the config key for a duplicate name, a glob matching
    no file (relative to the working directory), or an option the format does not take.
    """
    sources = corpus.get("sources") or [{"name": "demo", "format": "demo"}]
    names: set[str] = set()
    resolved = []
    for i, src in enumerate(sources):
        key = f"corpus.sources[{i}]"
        name, fmt = src["name"], src["format"]
        if name in names:
            raise SymatoError(f"{key}.name: duplicate source name {name!r}")
        names.add(name)
        if fmt != "text" and src.get("unit", "paragraph") != "paragraph":
            raise SymatoError(f"{key}.unit: only the text format takes a unit")
        entry = {
            "name": name,
            "format": fmt,
            "text_field": src.get("text_field", "text"),
            "unit": src.get("unit", "paragraph"),
        }
        if fmt == "hf":
            entry["hf"] = _hub_options(src, key)
            entry["files"] = hub.local_files(src["dataset"]) if hub.is_local(src["dataset"]) else []
        else:
            for option in hub.OPTIONS:
                if option in src:
                    raise SymatoError(f"{key}.{option}: only the hf format takes {option}")
            entry["files"] = _source_files(src, key, demo_file)
        resolved.append(entry)
    return resolved


def _hub_options(src: dict, key: str) -> dict:
    """An hf source's dataset options, checked (``hub.check``); errors name ``key``."""
    if src.get("paths"):
        raise SymatoError(f"{key}.paths: the hf format takes a dataset, not paths")
    if not src.get("dataset"):
        raise SymatoError(f"{key}.dataset: the hf format needs a dataset (a Hub id or folder)")
    options = {"split": "train", **{k: src[k] for k in hub.OPTIONS if k in src}}
    hub.check(hub.HubSource(text_field=src.get("text_field", "text"), **options), key)
    return options


def read_args(source: dict) -> list[str]:
    """``symato corpus`` arguments that read a ``resolve_sources`` entry (rule corpus_shard).

    Written once here so the rule and the tests build the same command.
    """
    args = ["--source", source["name"], "--format", source["format"],
            "--text-field", source["text_field"]]
    if source["format"] != "hf":
        return [*args, "--unit", source["unit"], *source["files"]]
    for option, value in source["hf"].items():
        if value is not None:
            args += ["--" + option.replace("_", "-"), str(value)]
    return args


def _source_files(src: dict, key: str, demo_file: str) -> list[str]:
    paths = src.get("paths") or []
    if src["format"] == "demo":
        if paths:
            raise SymatoError(f"{key}.paths: the demo format takes no paths")
        return [demo_file]
    if not paths:
        raise SymatoError(f"{key}.paths: format {src['format']!r} needs at least one glob")
    files: list[str] = []
    for j, pattern in enumerate(paths):
        matches = [m for m in sorted(glob.glob(pattern, recursive=True)) if Path(m).is_file()]
        if not matches:
            raise SymatoError(
                f"{key}.paths[{j}]: {pattern!r} matches no file (relative to {Path.cwd()})"
            )
        files += [m for m in matches if m not in files]
    return files


# ---------------------------------------------------------------------------------------
# Sharding


def shard_of(doc_id: str, shards: int) -> int:
    """The shard a document goes to: a hash of its id, so it never depends on job order."""
    digest = hashlib.blake2b(doc_id.encode("utf-8"), digest_size=8).digest()
    return int.from_bytes(digest, "little") % shards


class ShardWriters:
    """``n`` Parquet writers with bounded row buffers; every shard file exists at the end."""

    def __init__(self, out_dir: Path, n: int) -> None:
        self.paths = [out_dir / f"{k:04d}.parquet" for k in range(n)]
        self._stack = [atomic_path(p) for p in self.paths]
        tmps = [ctx.__enter__() for ctx in self._stack]
        self._writers = [pq.ParquetWriter(t, RAW_SCHEMA, compression="zstd") for t in tmps]
        self._rows: list[list[tuple[str, str, list[str]]]] = [[] for _ in range(n)]
        self._bytes = [0] * n

    def add(self, k: int, doc_id: str, source: str, paragraphs: list[str]) -> None:
        """Buffer one document for shard ``k``; flush the buffer when it grows large."""
        self._rows[k].append((doc_id, source, paragraphs))
        self._bytes[k] += sum(len(p) for p in paragraphs)
        if len(self._rows[k]) >= _FLUSH_ROWS or self._bytes[k] >= _FLUSH_BYTES:
            self._flush(k)

    def _flush(self, k: int) -> None:
        rows = self._rows[k]
        if rows:
            cols = list(zip(*rows, strict=True))
            table = pa.Table.from_arrays([pa.array(c) for c in cols], schema=RAW_SCHEMA)
            self._writers[k].write_table(table)
        self._rows[k], self._bytes[k] = [], 0

    def close(self, ok: bool) -> None:
        """Flush and close every writer; rename into place only if ``ok``."""
        for k, writer in enumerate(self._writers):
            if ok:
                self._flush(k)
            writer.close()
        for ctx in self._stack:
            if ok:
                ctx.__exit__(None, None, None)
            else:
                ctx.__exit__(SymatoError, SymatoError("aborted"), None)


def shard_source(
    paths: list[Path],
    source: str,
    fmt: str,
    out_dir: Path,
    shards: int,
    cap: int,
    text_field: str = "text",
    unit: str = "paragraph",
) -> SourceTally:
    """Read one source into ``shards`` raw Parquet shards; return what was seen/dropped."""
    return _write_shards(read_source(paths, source, fmt, cap, text_field, unit), source,
                         out_dir, shards)


def shard_hub(src: hub.HubSource, source: str, out_dir: Path, shards: int,
              cap: int) -> tuple[SourceTally, dict]:
    """Read an ``hf`` source into raw shards; return the tally and the dataset's provenance.

    The dataset counts as one input "file" of the report (``files.empty`` when its split
    has no record).
    """
    stream, provenance = hub.open_stream(src)

    def docs() -> Iterator[tuple[str, RawDoc | None]]:
        empty = True
        for doc in read_hub(src, stream, source, cap):
            empty = False
            yield src.dataset, doc
        if empty:
            yield src.dataset, None

    return _write_shards(docs(), source, out_dir, shards), provenance


def _write_shards(docs: Iterator[tuple[object, RawDoc | None]], source: str, out_dir: Path,
                  shards: int) -> SourceTally:
    """Count and write (input, document) pairs; (input, None) marks an input with none."""
    tally = SourceTally()
    writers = ShardWriters(out_dir, shards)
    ok = False
    try:
        last: object = None
        for path, doc in docs:
            if path != last:
                tally.files["seen"] += 1
                last = path
            if doc is None:
                tally.files["empty"] += 1
                continue
            _count_read(tally, doc)
            if doc.paragraphs:
                writers.add(shard_of(doc.doc_id, shards), doc.doc_id, source, doc.paragraphs)
        ok = True
    finally:
        writers.close(ok)
    return tally


def _count_read(tally: SourceTally, doc: RawDoc) -> None:
    kept_bytes = sum(len(p.encode("utf-8")) for p in doc.paragraphs)
    tally.seen["documents"] += 1
    tally.seen["paragraphs"] += len(doc.paragraphs) + len(doc.skipped)
    tally.seen["bytes"] += kept_bytes + sum(n for _, n in doc.skipped)
    for reason, nbytes in doc.skipped:
        tally.drop(reason, paragraphs=1, nbytes=nbytes)
    if not doc.paragraphs:
        tally.drop(doc.reason or document_reason([r for r, _ in doc.skipped]), documents=1)


# ---------------------------------------------------------------------------------------
# CLI


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="symato corpus",
        description="Read one configured source and split it into raw Parquet shards.",
    )
    p.add_argument("--source", required=True, help="source name (doc ids and report)")
    p.add_argument("--format", required=True, choices=FORMATS)
    p.add_argument("--text-field", default="text", help="JSON field / Parquet or hf column")
    p.add_argument("--unit", default="paragraph", choices=("paragraph", "line"))
    p.add_argument("--shards", type=int, required=True, help="number of raw shards")
    p.add_argument("--max-paragraph-bytes", type=int, default=1_000_000)
    p.add_argument("--out-dir", required=True, type=Path, help="writes NNNN.parquet here")
    p.add_argument("--report", required=True, type=Path, help="reading report (JSON)")
    p.add_argument("files", nargs="*", type=Path, help="input files, read in this order")
    h = p.add_argument_group("format hf (Hugging Face datasets; pip install 'symato[hf]')")
    h.add_argument("--dataset", help="Hub id (e.g. wikimedia/wikipedia) or local folder")
    h.add_argument("--config", help="dataset configuration (e.g. 20231101.vi)")
    h.add_argument("--split", default="train", help="split to read (default train)")
    h.add_argument("--revision", help="commit sha pinning a Hub dataset")
    h.add_argument("--max-documents", type=int, help="read at most this many records")
    return p


def _hub_source(args: argparse.Namespace) -> hub.HubSource | None:
    """The ``hf`` source the options name (None for the file formats), checked."""
    if args.format != "hf":
        given = [o for o in ("dataset", "config", "revision", "max_documents")
                 if getattr(args, o) is not None]
        if given:
            raise SymatoError(f"--{given[0].replace('_', '-')}: only --format hf takes it")
        if not args.files:
            raise SymatoError(f"source {args.source!r}: no input files")
        return None
    if args.files:
        raise SymatoError("--format hf reads --dataset, not input files")
    if args.unit != "paragraph":
        raise SymatoError("--unit: only --format text takes it")
    if not args.dataset:
        raise SymatoError("--format hf needs --dataset (a Hub id or a local folder)")
    src = hub.HubSource(args.dataset, args.split, args.config, args.revision, args.text_field,
                        args.max_documents)
    hub.check(src)
    return src


def main(argv: list[str]) -> int:
    """``symato corpus``: one source -> ``--shards`` raw shards + a reading report."""
    args = _parser().parse_args(argv)
    if args.shards < 1:
        raise SymatoError(f"--shards must be at least 1, got {args.shards}")
    if args.max_paragraph_bytes < 1:
        raise SymatoError("--max-paragraph-bytes must be at least 1")
    src = _hub_source(args)
    report: dict = {"stage": "read"}
    if src is None:
        tally = shard_source(
            args.files,
            args.source,
            args.format,
            args.out_dir,
            args.shards,
            args.max_paragraph_bytes,
            args.text_field,
            args.unit,
        )
    else:
        tally, provenance = shard_hub(src, args.source, args.out_dir, args.shards,
                                      args.max_paragraph_bytes)
        report["provenance"] = {args.source: provenance}
    report["sources"] = {args.source: tally.to_json()}
    write_json_atomic(args.report, report)
    seen = tally.seen
    print(
        f"symato corpus: {args.source}: {tally.files['seen']} files, "
        f"{seen['documents']} documents, "
        f"{seen['paragraphs']} paragraphs, {seen['bytes']} bytes -> {args.shards} shards"
    )
    return 0
