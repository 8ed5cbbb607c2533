"""Tokenized Arrow IPC shards and their per-tokenizer manifest.

Why Arrow IPC files: they can be memory-mapped and read without copying, so the data
loader (``symato.data.loader``) costs no resident memory per corpus byte. Each file holds one
row per document: ``doc_id`` (string) and ``tokens`` (list of uint16, or uint32 when the
vocabulary has more than 65,536 ids). Every row starts with ``<|endoftext|>`` so the
concatenated rows read "EOT doc EOT doc ...": every text token has a context.

Each file's schema metadata (key ``symato``, a JSON object) records the UTF-8 bytes and
Vietnamese syllables of its documents' text; the manifest sums them per split, because
bits-per-byte divides by exactly those bytes. It also names the vocabulary the ids belong
to (``vocab``: the path given to ``symato tokenize`` and the file's SHA-256), as does the
manifest: ids mean nothing without their vocabulary, and a shard copied elsewhere (or
read with ``pyarrow`` or ``datasets``, docs/data.md) must say which file decodes it.
Manifest ``tokens`` counts every stored id, the one ``<|endoftext|>`` per document
included (``documents`` says how many those are).

The train/val split was decided when the corpus was cleaned (``symato.data.clean``):
each cleaned shard comes as a train and a validation file, tokenized into the split's
Arrow file of the same name.
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Iterable, Mapping, Sequence
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from symato.errors import SymatoError
from symato.io import atomic_path, file_digest, write_json_atomic
from symato.text.syllable import letter_runs, parse

SPLITS = ("train", "val")
META_KEY = b"symato"
MAX_BATCH_TOKENS = 1 << 30  # keeps int32 list offsets valid within one record batch


def token_dtype(vocab_size: int) -> np.dtype:
    """uint16 while every id fits, else uint32."""
    if vocab_size < 1:
        raise SymatoError(f"vocab_size must be positive, got {vocab_size}")
    return np.dtype(np.uint16) if vocab_size <= 1 << 16 else np.dtype(np.uint32)


@lru_cache(maxsize=1 << 18)
def _is_syllable(run: str) -> bool:
    return parse(run) is not None


def count_syllables(text: str) -> int:
    """Vietnamese syllables in ``text``: letter runs ``symato.text.syllable.parse`` accepts.

    The same rule as the statistics stage, so the two stages' counts agree.
    """
    return sum(1 for start, end in letter_runs(text) if _is_syllable(text[start:end]))


def _batches(doc_ids: Sequence[str], arrays: Sequence[np.ndarray], dtype: np.dtype,
             list_type: pa.DataType) -> Iterable[pa.RecordBatch]:
    """Record batches of at most ``MAX_BATCH_TOKENS`` tokens each."""
    start = 0
    while start < len(arrays) or start == 0:
        end, total = start, 0
        while end < len(arrays) and (end == start or total + len(arrays[end]) <= MAX_BATCH_TOKENS):
            total += len(arrays[end])
            end += 1
        chunk = arrays[start:end]
        offsets = np.zeros(len(chunk) + 1, dtype=np.int32)
        np.cumsum([len(a) for a in chunk], out=offsets[1:])
        values = np.concatenate(chunk).astype(dtype, copy=False) if chunk else np.empty(0, dtype)
        tokens = pa.ListArray.from_arrays(pa.array(offsets), pa.array(values)).cast(list_type)
        yield pa.record_batch([pa.array(doc_ids[start:end], pa.string()), tokens],
                              names=["doc_id", "tokens"])
        if end == len(arrays):
            break
        start = end


def vocab_record(vocab: str | Path) -> dict[str, str]:
    """The vocabulary a shard's ids belong to: its path as given and its SHA-256."""
    return {"path": Path(vocab).as_posix(), "sha256": file_digest(vocab)}


def write_token_shard(path: str | Path, doc_ids: Sequence[str], token_lists: Sequence[Any],
                      vocab_size: int, *, text_bytes: int = 0, syllables: int = 0,
                      vocab: Mapping[str, str] | None = None) -> int:
    """Write one Arrow IPC token shard atomically; return its token count.

    ``token_lists`` holds one sequence of ids per document (lists or numpy arrays),
    already starting with the EOT id. ``text_bytes``/``syllables`` describe the
    documents' text and end up in the manifest (synthetic test shards may leave 0).
    ``vocab`` (``vocab_record``) names the vocabulary file; synthetic shards have none.
    """
    if len(doc_ids) != len(token_lists):
        raise SymatoError(f"{path}: {len(doc_ids)} doc ids but {len(token_lists)} token lists")
    dtype = token_dtype(vocab_size)
    arrays = [np.asarray(t) for t in token_lists]
    for doc_id, arr in zip(doc_ids, arrays, strict=True):
        if arr.size and (arr.min() < 0 or arr.max() >= vocab_size):
            raise SymatoError(f"{path}: document {doc_id!r} has ids outside [0, {vocab_size})")
    list_type = pa.list_(pa.from_numpy_dtype(dtype))
    meta = {"vocab_size": int(vocab_size), "dtype": dtype.name,
            "bytes": int(text_bytes), "syllables": int(syllables),
            "vocab": dict(vocab) if vocab is not None else None}
    schema = pa.schema([("doc_id", pa.string()), ("tokens", list_type)],
                       metadata={META_KEY: json.dumps(meta, sort_keys=True).encode()})
    with atomic_path(path) as tmp, pa.OSFile(str(tmp), "wb") as sink, \
            pa.ipc.new_file(sink, schema) as writer:
        for batch in _batches(list(doc_ids), arrays, dtype, list_type):
            writer.write_batch(batch.replace_schema_metadata(schema.metadata))
    return int(sum(a.size for a in arrays))


def read_clean_docs(path: Path) -> Iterable[tuple[str, str]]:
    """(doc_id, text) pairs of a cleaned shard, batch by batch."""
    try:
        pf = pq.ParquetFile(path)
    except FileNotFoundError:
        raise SymatoError(f"cleaned shard not found: {path}") from None
    except (OSError, pa.ArrowInvalid) as exc:
        raise SymatoError(f"cannot read cleaned shard {path}: {exc}") from None
    missing = {"doc_id", "text"} - set(pf.schema_arrow.names)
    if missing:
        raise SymatoError(f"cleaned shard {path} lacks column(s) {sorted(missing)}")
    for batch in pf.iter_batches(columns=["doc_id", "text"], batch_size=4096):
        ids, texts = batch.column(0).to_pylist(), batch.column(1).to_pylist()
        for row, (doc_id, text) in enumerate(zip(ids, texts, strict=True)):
            if doc_id is None or text is None:
                raise SymatoError(f"cleaned shard {path}: null doc_id or text near row {row}")
            yield str(doc_id), text


def tokenize_shard(cleans: dict[str, Path], vocab: Path,
                   outs: dict[str, Path], quiet: bool = False) -> dict[str, dict[str, int]]:
    """Tokenize one cleaned shard's split files (``cleans[split]``) into one Arrow file per
    split (``outs[split]``); return per-split counts. Progress in documents goes to stderr
    (``symato.progress``; none when ``quiet``)."""
    from symato import Tokenizer
    from symato.progress import Progress, parquet_rows

    tok = Tokenizer.from_file(vocab)
    record = vocab_record(vocab)
    dtype = token_dtype(tok.vocab_size)  # store compactly from the start: 2 bytes/token
    parts: dict[str, dict[str, Any]] = {
        s: {"ids": [], "tokens": [], "bytes": 0, "syllables": 0} for s in SPLITS
    }
    with Progress(f"symato tokenize {outs['train'].name}", parquet_rows(cleans.values()),
                  "documents", quiet=quiet) as progress:
        for split in SPLITS:
            _tokenize_docs(tok, progress.each(read_clean_docs(cleans[split])), parts[split],
                           dtype)
    counts = {}
    for split, part in parts.items():
        n = write_token_shard(outs[split], part["ids"], part["tokens"], tok.vocab_size,
                              text_bytes=part["bytes"], syllables=part["syllables"],
                              vocab=record)
        counts[split] = {"documents": len(part["ids"]), "tokens": n,
                         "bytes": part["bytes"], "syllables": part["syllables"]}
    return counts


def _tokenize_docs(tok: Any, docs: Iterable[tuple[str, str]], part: dict[str, Any],
                   dtype: np.dtype) -> None:
    """Encode (doc_id, text) pairs into ``part`` (ids, token arrays, byte/syllable counts)."""
    for doc_id, text in docs:
        part["ids"].append(doc_id)
        ids = tok.encode(text)
        tokens = np.empty(len(ids) + 1, dtype=dtype)
        tokens[0], tokens[1:] = tok.eot_id, ids
        part["tokens"].append(tokens)
        part["bytes"] += len(text.encode("utf-8"))
        part["syllables"] += count_syllables(text)


def main(argv: list[str]) -> int:
    """``symato tokenize``: one cleaned shard (train and val files) -> Arrow token shards."""
    parser = argparse.ArgumentParser(
        prog="symato tokenize", description="Tokenize one cleaned shard into Arrow IPC shards."
    )
    parser.add_argument("--vocab", required=True, type=Path, help="vocabulary file (.json)")
    parser.add_argument("--clean-train", required=True, type=Path,
                        help="the shard's cleaned train file (.parquet)")
    parser.add_argument("--clean-val", required=True, type=Path,
                        help="the shard's cleaned validation file (.parquet)")
    parser.add_argument("--train", required=True, type=Path, help="output train shard (.arrow)")
    parser.add_argument("--val", required=True, type=Path, help="output val shard (.arrow)")
    parser.add_argument("--quiet", action="store_true", help="no progress lines on stderr")
    args = parser.parse_args(argv)
    counts = tokenize_shard({"train": args.clean_train, "val": args.clean_val}, args.vocab,
                            {"train": args.train, "val": args.val}, quiet=args.quiet)
    print(json.dumps(counts, sort_keys=True))
    return 0


# ----------------------------------------------------------------------------- manifest
def shard_info(path: Path) -> dict[str, Any]:
    """Documents and tokens (from the data) plus bytes/syllables (from metadata) of a file."""
    try:
        with pa.memory_map(str(path), "r") as source:
            reader = pa.ipc.open_file(source)
            schema = reader.schema
            documents = tokens = 0
            for i in range(reader.num_record_batches):
                col = reader.get_batch(i).column("tokens")
                documents += len(col)
                tokens += len(col.flatten())
    except FileNotFoundError:
        raise SymatoError(f"token shard not found: {path}") from None
    except (OSError, pa.ArrowInvalid, KeyError) as exc:
        raise SymatoError(f"cannot read token shard {path}: {exc}") from None
    raw = (schema.metadata or {}).get(META_KEY)
    if raw is None:
        raise SymatoError(f"token shard {path} has no '{META_KEY.decode()}' schema metadata")
    meta = json.loads(raw)
    return {"documents": documents, "tokens": tokens, "bytes": meta["bytes"],
            "syllables": meta["syllables"], "vocab_size": meta["vocab_size"],
            "dtype": meta["dtype"], "vocab": meta.get("vocab")}


def build_manifest(shards_dir: Path, files: Sequence[Path], tokenizer: str) -> dict[str, Any]:
    """The manifest dict for ``files`` (each under ``shards_dir/{split}/``)."""
    splits: dict[str, dict[str, Any]] = {
        s: {"documents": 0, "tokens": 0, "bytes": 0, "syllables": 0, "shards": []} for s in SPLITS
    }
    vocab_sizes, dtypes = set(), set()
    vocabs: dict[str, dict[str, str] | None] = {}  # json of each vocab record -> the record
    for path in sorted(files, key=lambda p: (p.parent.name, p.name)):
        split = path.parent.name
        if split not in splits:
            raise SymatoError(f"token shard {path} is not in a train/ or val/ folder")
        info = shard_info(path)
        vocab_sizes.add(info.pop("vocab_size"))
        dtypes.add(info.pop("dtype"))
        record = info.pop("vocab")
        vocabs.setdefault(json.dumps(record, sort_keys=True), record)
        for key, value in info.items():
            splits[split][key] += value
        splits[split]["shards"].append(path.resolve().relative_to(shards_dir.resolve()).as_posix())
    if len(vocab_sizes) != 1 or len(dtypes) != 1:
        raise SymatoError(f"token shards under {shards_dir} disagree on vocab size/dtype: "
                          f"{sorted(vocab_sizes)} {sorted(dtypes)}")
    if len(vocabs) > 1:
        raise SymatoError(f"token shards under {shards_dir} were made with different "
                          f"vocabularies: {', '.join(sorted(vocabs))}")
    return {"tokenizer": tokenizer, "vocab_size": vocab_sizes.pop(), "dtype": dtypes.pop(),
            "vocab": vocabs.popitem()[1] if vocabs else None, "splits": splits}


def write_manifest(shards_dir: str | Path, files: Sequence[str | Path], tokenizer: str,
                   out: str | Path | None = None) -> dict[str, Any]:
    """Build and atomically write ``manifest.json`` (default: in ``shards_dir``)."""
    shards_dir = Path(shards_dir)
    manifest = build_manifest(shards_dir, [Path(f) for f in files], tokenizer)
    write_json_atomic(Path(out) if out else shards_dir / "manifest.json", manifest)
    return manifest


def manifest_main(argv: list[str]) -> int:
    """``symato tokenize manifest``: sum a tokenizer's shards into manifest.json."""
    parser = argparse.ArgumentParser(
        prog="symato tokenize manifest", description="Write a tokenizer's shard manifest."
    )
    parser.add_argument("shards", nargs="+", type=Path, help="token shards (DIR/{split}/*.arrow)")
    parser.add_argument("--dir", required=True, type=Path, help="the tokenizer's shards folder")
    parser.add_argument("--tokenizer", required=True, help="tokenizer name")
    parser.add_argument("--out", type=Path, help="manifest path (default DIR/manifest.json)")
    args = parser.parse_args(argv)
    manifest = write_manifest(args.dir, args.shards, args.tokenizer, args.out)
    brief = {s: {k: v for k, v in e.items() if k != "shards"}
             for s, e in manifest["splits"].items()}
    print(json.dumps(brief, sort_keys=True))
    return 0
