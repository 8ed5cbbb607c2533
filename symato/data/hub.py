"""Corpus sources read with Hugging Face ``datasets`` (``format: hf``).

Why a source of its own: much Vietnamese text lives on the Hugging Face Hub (Wikipedia,
FineWeb-2, CulturaX) as datasets of many GB. Reading one in streaming mode yields its
records one at a time without downloading or caching the whole dataset first, and each
record then goes through the same paragraph splitting, cleaning and per-reason accounting
as a line of a JSON-lines file.

A dataset is named like ``load_dataset`` names it: a Hub id (``wikimedia/wikipedia``)
with a ``config`` (``20231101.vi``), a ``split`` and a ``revision``, or a local folder:
one written by ``Dataset.save_to_disk`` / ``DatasetDict.save_to_disk`` (read with
``load_from_disk``), or a folder of data files that ``load_dataset`` reads by path
(Parquet, JSON lines, CSV, Arrow). A Hub id must pin its revision to a commit: a branch
or tag can move, and the corpus (with every number computed from it) would silently
change with it. A local folder needs none: the reading report records a digest of its
files instead.

Records are counted, never silently dropped: a record without the text field
(``no_text_field``), with a null, empty or blank value (``empty``), or with a value that is
not a string (``not_string``) is a dropped document in the report. A dataset whose
declared columns lack the text field, or declare it with a non-string type, is an error
naming the dataset, its split and the columns it has; so is any failure while streaming,
naming the index of the record being read.

``datasets`` is imported only here and only when such a source is read: the rest of the
pipeline does not need it (``pip install 'symato[hf]'``).
"""

from __future__ import annotations

import hashlib
import os
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from symato.errors import SymatoError
from symato.io import file_digest

INSTALL = "pip install 'symato[hf]'"
COMMIT = re.compile(r"^[0-9a-f]{40}$")
# Options of an hf source besides text_field, as config keys (CLI: --dataset, --config, ...).
OPTIONS = ("dataset", "config", "split", "revision", "max_documents")


@dataclass(frozen=True)
class HubSource:
    """Where an ``hf`` source's records come from, and how many to read at most."""

    dataset: str
    split: str = "train"
    config: str | None = None
    revision: str | None = None
    text_field: str = "text"
    max_documents: int | None = None

    @property
    def local(self) -> bool:
        """A local folder (not a Hub id)."""
        return is_local(self.dataset)

    def where(self) -> str:
        """The dataset as errors name it."""
        config = f", config {self.config!r}" if self.config else ""
        return f"dataset {self.dataset!r}{config}, split {self.split!r}"


def is_local(dataset: str) -> bool:
    """Whether ``dataset`` names a local path rather than a Hub id.

    An existing path is local; so is anything written like a path (absolute, ``./``,
    ``../``, ``~``), which a Hub id never is, so a mistyped local folder is reported as
    missing rather than looked up on the Hub.
    """
    return dataset.startswith(("/", "./", "../", "~")) or Path(dataset).exists()


def check(src: HubSource, key: str = "") -> None:
    """Refuse a source that cannot be read reproducibly.

    Errors name the setting: ``{key}.revision`` for a config (``key`` is
    ``corpus.sources[i]``), ``--revision`` for the command line (``key`` empty).
    """
    if src.max_documents is not None and src.max_documents < 1:
        raise SymatoError(f"{_name(key, 'max_documents')}: must be at least 1, "
                          f"got {src.max_documents}")
    if src.local:
        path = Path(src.dataset).expanduser()
        if not path.is_dir():
            raise SymatoError(f"{_name(key, 'dataset')}: local dataset folder not found: "
                              f"{path} (relative to {Path.cwd()})")
        return
    if not src.revision:
        raise SymatoError(
            f"{_name(key, 'revision')}: dataset {src.dataset!r} is read from the Hugging Face "
            "Hub and needs a pinned revision: the commit sha (40 hex digits) from the "
            "dataset page's 'Files and versions' history")
    if not COMMIT.match(src.revision):
        raise SymatoError(
            f"{_name(key, 'revision')}: {src.revision!r} is not a commit sha (40 lowercase "
            "hex digits); a branch or tag can move, and the corpus would change with it")


def _name(key: str, option: str) -> str:
    return f"{key}.{option}" if key else "--" + option.replace("_", "-")


def local_files(folder: str | Path) -> list[str]:
    """Every non-hidden file under a local dataset folder, sorted (Snakemake's inputs)."""
    root = Path(folder).expanduser()
    out = []
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
        out += [os.path.join(dirpath, f) for f in sorted(filenames) if not f.startswith(".")]
    return out


def folder_digest(folder: str | Path) -> str:
    """SHA-256 over the relative names and contents of a folder's files.

    Why contents: a local dataset has no revision, and the digest is what says in the
    report which data the corpus was read from."""
    root = Path(folder).expanduser()
    h = hashlib.sha256()
    for name in local_files(root):
        rel = Path(name).relative_to(root).as_posix()
        h.update(f"{rel}\0{file_digest(name)}\n".encode())
    return h.hexdigest()


def _datasets() -> Any:
    try:
        import datasets
    except ImportError:
        raise SymatoError(f"corpus format 'hf' needs the 'datasets' package: {INSTALL}") from None
    return datasets


def _saved(path: Path) -> bool:
    """A folder written by ``save_to_disk`` (which ``load_dataset`` refuses)."""
    return (path / "state.json").is_file() or (path / "dataset_dict.json").is_file()


def open_stream(src: HubSource) -> tuple[Any, dict[str, Any]]:
    """The records of ``src`` as an iterable (streaming), and the provenance to record."""
    datasets = _datasets()
    provenance: dict[str, Any] = {
        "dataset": src.dataset, "config": src.config, "split": src.split,
        "revision": src.revision, "text_field": src.text_field,
        "max_documents": src.max_documents, "datasets_version": datasets.__version__,
    }
    try:
        if src.local and _saved(Path(src.dataset).expanduser()):
            stream, fingerprint = _open_saved(datasets, src)
            provenance["fingerprint"] = fingerprint
        else:
            name = str(Path(src.dataset).expanduser()) if src.local else src.dataset
            stream = datasets.load_dataset(name, src.config, split=src.split,
                                           revision=src.revision, streaming=True)
    except SymatoError:
        raise
    except Exception as exc:  # datasets raises many types (ValueError, ConnectionError, ...)
        raise SymatoError(f"cannot open {src.where()}: {type(exc).__name__}: {exc}") from None
    if src.local:
        provenance["sha256"] = folder_digest(src.dataset)
    _check_features(src, getattr(stream, "features", None))
    return stream, provenance


def _open_saved(datasets: Any, src: HubSource) -> tuple[Any, str | None]:
    """A ``save_to_disk`` folder: the split's records (as a stream) and its fingerprint."""
    obj = datasets.load_from_disk(str(Path(src.dataset).expanduser()))
    if isinstance(obj, datasets.DatasetDict):
        if src.split not in obj:
            raise SymatoError(f"{src.where()}: no such split (splits: {', '.join(obj)})")
        obj = obj[src.split]
    elif obj.split is not None and str(obj.split) != src.split:
        raise SymatoError(f"{src.where()}: the folder holds split {str(obj.split)!r}")
    # The fingerprint datasets keeps for a saved dataset (state.json): it changes with
    # every transform applied before saving.
    return obj.to_iterable_dataset(), getattr(obj, "_fingerprint", None)


def _check_features(src: HubSource, features: Any) -> None:
    """Refuse a dataset that declares no text column, or one that can hold no string.

    A ``Json`` column (``datasets`` declares one where JSON records mix types) may hold
    strings: its records are checked one by one (``not_string``).
    """
    if not features:
        return  # undeclared: each record is checked as it comes
    if src.text_field not in features:
        raise SymatoError(f"{src.where()}: no column {src.text_field!r} (columns: "
                          f"{', '.join(features)}); set the source's text_field")
    feature = features[src.text_field]
    if type(feature).__name__ == "Json":
        return
    if getattr(feature, "dtype", None) not in ("string", "large_string"):
        raise SymatoError(f"{src.where()}: column {src.text_field!r} has type {feature}, "
                          "not string")


def records(src: HubSource, stream: Any) -> Iterator[tuple[int, str | None, str]]:
    """(index, text or None, drop reason) of each record, up to ``max_documents``."""
    it = iter(stream)
    index = 0
    while src.max_documents is None or index < src.max_documents:
        try:
            record = next(it)
        except StopIteration:
            return
        except Exception as exc:  # a corrupt file, a lost connection, ...
            raise SymatoError(f"{src.where()}: cannot read record {index}: "
                              f"{type(exc).__name__}: {exc}") from None
        yield (index, *_text_of(record, src.text_field))
        index += 1


def _text_of(record: Any, field: str) -> tuple[str | None, str]:
    """A record's text, or None and why it has none."""
    if not isinstance(record, dict) or field not in record:
        return None, "no_text_field"
    value = record[field]
    if value is None or (isinstance(value, str) and not value.strip()):
        return None, "empty"
    if not isinstance(value, str):
        return None, "not_string"
    return value, ""
