"""``TokenDataset``: training and validation windows over memory-mapped token shards.

Why memory maps: the token stream of a multi-GB corpus must not be copied into RAM.
Each Arrow IPC file is opened with ``pa.memory_map`` and its ``tokens`` list column is
used through the flat values buffer as a zero-copy numpy view; only the windows a batch
asks for are copied. Resident memory is then the handful of pages a batch touches
(which the kernel may drop again at will), not the corpus size.

The stream of a split is its shards' rows concatenated in manifest order: "EOT doc EOT
doc ...". Windows have ``ctx_len + 1`` tokens: inputs are ``w[:-1]``, targets ``w[1:]``.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa

from symato.errors import SymatoError
from symato.io import read_json


def _numpy_view(values: pa.Array) -> np.ndarray:
    """A zero-copy numpy view of a primitive Arrow array without nulls.

    Why not ``values.to_numpy(zero_copy_only=True)``: on its first call pyarrow imports
    pandas (0.3-0.4 s of every training and evaluation job on the 2-core demo machine)."""
    if values.null_count:
        raise pa.ArrowInvalid(f"{values.null_count} null token values")
    dtype = np.dtype(str(values.type))
    return np.frombuffer(values.buffers()[1], dtype=dtype, count=len(values),
                         offset=values.offset * dtype.itemsize)


def _segments(path: Path) -> tuple[list[np.ndarray], Any]:
    """Zero-copy numpy views of every record batch's token values in one Arrow file."""
    try:
        source = pa.memory_map(str(path), "r")
        reader = pa.ipc.open_file(source)
        views = []
        for i in range(reader.num_record_batches):
            col = reader.get_batch(i).column("tokens")
            values = col.flatten()  # respects list offsets; a slice of the mapped buffer
            if len(values):
                views.append(_numpy_view(values))
    except FileNotFoundError:
        raise SymatoError(f"token shard not found: {path}") from None
    except (OSError, pa.ArrowInvalid, KeyError) as exc:
        raise SymatoError(f"cannot read token shard {path}: {exc}") from None
    return views, source


def _check_ids(views: list[np.ndarray], path: Path, vocab_size: int) -> None:
    """Every token id of a shard is in ``[0, vocab_size)``.

    Why at load: an id outside the vocabulary is only hit when a batch happens to draw
    it, tens of steps into training, as a bare ``IndexError`` in the embedding. One pass
    over the mapped values (a fraction of a second per GB) names the file instead.
    """
    offset = 0
    for view in views:
        if len(view):
            high, low = int(view.max()), int(view.min())
            if high >= vocab_size or low < 0:
                pos = int(np.argmax((view >= vocab_size) | (view < 0)))
                raise SymatoError(
                    f"token shard {path}: token id {int(view[pos])} at token {offset + pos} "
                    f"is outside the vocabulary of {vocab_size} ids (manifest "
                    f"vocab_size); the shard was written with another vocabulary or is "
                    f"damaged: rebuild the shards"
                )
        offset += len(view)


def _rows(path: Path) -> Iterator[tuple[str, np.ndarray]]:
    """(doc_id, zero-copy token view) of every row of one Arrow shard, in file order."""
    try:
        reader = pa.ipc.open_file(pa.memory_map(str(path), "r"))
        for i in range(reader.num_record_batches):
            batch = reader.get_batch(i)
            ids, tokens = batch.column("doc_id"), batch.column("tokens")
            offsets = _numpy_view(tokens.offsets)
            values = _numpy_view(tokens.flatten())
            base = int(offsets[0])
            for row in range(len(batch)):
                lo, hi = int(offsets[row]) - base, int(offsets[row + 1]) - base
                yield str(ids[row].as_py()), values[lo:hi]
    except FileNotFoundError:
        raise SymatoError(f"token shard not found: {path}") from None
    except (OSError, pa.ArrowInvalid, KeyError) as exc:
        raise SymatoError(f"cannot read token shard {path}: {exc}") from None


def document_key(doc_id: str) -> bytes:
    """A document's place in the fixed shuffle of the unique subset: SHA-256 of its id.

    Why a hash and not a seeded permutation: it depends on nothing but the id, so every
    tokenizer (whose shards hold the same documents under the same ids) and every later
    corpus that keeps a document puts it in the same place.
    """
    return hashlib.sha256(doc_id.encode("utf-8")).digest()


@dataclass(frozen=True)
class UniqueSubset:
    """The unique text of a repeated-data run: which documents, how much text."""

    documents: int
    text_bytes: int  # UTF-8 bytes of the documents' text (>= the bytes asked for)
    tokens: int  # stored ids, one <|endoftext|> per document included
    digest: str  # SHA-256 of the chosen doc ids in order: equal across tokenizers
    segments: tuple[np.ndarray, ...]  # the documents' token rows, in subset order

    def record(self) -> dict[str, Any]:
        """What a run records about its unique text (model.pt meta, tests)."""
        return {"unique_documents": self.documents, "unique_bytes": self.text_bytes,
                "unique_tokens": self.tokens, "unique_sha256": self.digest}


def unique_subset(shards_dir: str | Path, unique_bytes: int,
                  text_bytes: Callable[[np.ndarray], int]) -> UniqueSubset:
    """The shortest prefix of the train split's documents, in :func:`document_key`
    order, whose text holds at least ``unique_bytes`` UTF-8 bytes.

    ``text_bytes(tokens)`` gives one document's bytes from its stored row (the leading
    ``<|endoftext|>`` included): the trainer decodes it with the run's tokenizer, so the
    byte count is the text's own and the same documents are chosen for every tokenizer.
    A split with less text than asked for is an error saying how much it holds.
    """
    shards_dir = Path(shards_dir)
    manifest = read_json(shards_dir / "manifest.json", "shard manifest")
    rels = manifest.get("splits", {}).get("train", {}).get("shards", [])
    rows = [(document_key(doc), doc, view)
            for rel in rels for doc, view in _rows(shards_dir / rel)]
    rows.sort(key=lambda r: (r[0], r[1]))
    chosen: list[tuple[str, np.ndarray]] = []
    total = 0
    for _, doc, view in rows:
        if total >= unique_bytes:
            break
        chosen.append((doc, view))
        total += int(text_bytes(view))
    if total < unique_bytes:
        raise SymatoError(
            f"unique_bytes {unique_bytes}: the train split of {shards_dir / 'manifest.json'} "
            f"holds only {total} bytes of text in {len(rows)} documents; lower unique_bytes "
            f"or use a bigger corpus")
    digest = hashlib.sha256("\n".join(doc for doc, _ in chosen).encode("utf-8")).hexdigest()
    return UniqueSubset(len(chosen), total, sum(len(v) for _, v in chosen), digest,
                        tuple(v for _, v in chosen))


class TokenDataset:
    """Windows of ``ctx_len + 1`` tokens over one split of ``shards_dir``.

    ``shards_dir`` is ``results/shards/{tokenizer}`` (with ``manifest.json``).
    ``len(ds)`` is the number of windows in one sequential pass
    (``ceil((num_tokens - 1) / ctx_len)``), i.e. what ``sequential_batches`` yields
    before batching.
    """

    def __init__(self, shards_dir: str | Path, split: str, ctx_len: int) -> None:
        self.shards_dir = Path(shards_dir)
        self.split = split
        if ctx_len < 1:
            raise SymatoError(f"ctx_len must be >= 1, got {ctx_len}")
        self.ctx_len = int(ctx_len)
        manifest_path = self.shards_dir / "manifest.json"
        full = read_json(manifest_path, "shard manifest")
        splits = full.get("splits", {}) if isinstance(full, dict) else {}
        if split not in splits:
            raise SymatoError(f"{manifest_path}: no split {split!r} (has {sorted(splits)})")
        self.manifest: dict[str, Any] = splits[split]
        self.vocab_size: int = int(full["vocab_size"])
        self.tokenizer: str = str(full.get("tokenizer", ""))
        self._sources: list[Any] = []
        self._segs: list[np.ndarray] = []
        self._perm: tuple[int, np.ndarray] | None = None  # the epoch order last drawn
        for rel in self.manifest.get("shards", []):
            views, source = _segments(self.shards_dir / rel)
            _check_ids(views, self.shards_dir / rel, self.vocab_size)
            self._sources.append(source)
            self._segs.extend(views)
        lengths = np.array([len(s) for s in self._segs], dtype=np.int64)
        self._starts = np.concatenate([[0], np.cumsum(lengths)]).astype(np.int64)
        self.num_tokens = int(self._starts[-1])
        if self.num_tokens != int(self.manifest.get("tokens", self.num_tokens)):
            raise SymatoError(f"{manifest_path}: split {split!r} lists "
                              f"{self.manifest['tokens']} tokens but its shards hold "
                              f"{self.num_tokens}; rebuild the shards")
        if self.num_tokens < self.ctx_len + 1:
            raise SymatoError(f"split {split!r} of {self.shards_dir} has {self.num_tokens} "
                              f"tokens, fewer than ctx_len + 1 = {self.ctx_len + 1}")

    def restrict(self, subset: UniqueSubset) -> None:
        """Make the stream the subset's documents (in subset order) instead of the split.

        Zero-copy: the segments are views of the same memory maps. Training windows
        then come from :meth:`epoch_batch`; ``random_batch`` would also stay inside it.
        """
        self._segs = [s for s in subset.segments if len(s)]
        lengths = np.array([len(s) for s in self._segs], dtype=np.int64)
        self._starts = np.concatenate([[0], np.cumsum(lengths)]).astype(np.int64)
        self.num_tokens = int(self._starts[-1])
        self._perm = None
        if self.epoch_windows() < 1:
            raise SymatoError(f"the unique subset of {self.shards_dir} holds {self.num_tokens} "
                              f"tokens, less than one training window of ctx_len + 1 = "
                              f"{self.ctx_len + 1}; raise unique_bytes")

    def epoch_windows(self) -> int:
        """Full windows in one epoch: ``(num_tokens - 1) // ctx_len``, window ``i``
        starting at ``i * ctx_len`` (consecutive windows share one token, as in
        ``sequential_batches``; a tail shorter than a window is not trained on)."""
        return (self.num_tokens - 1) // self.ctx_len

    def epoch_order(self, epoch: int, seed: int) -> np.ndarray:
        """The window order of one epoch: a permutation from ``default_rng([seed, epoch])``.

        Why seeded per epoch (and not a generator carried along): the order of any epoch
        follows from the run's seed alone, so a resumed run needs no sampler state to
        continue bit for bit mid-epoch, and the record names the seed exactly.
        """
        if self._perm is None or self._perm[0] != epoch:
            rng = np.random.default_rng([int(seed), int(epoch)])
            self._perm = (epoch, rng.permutation(self.epoch_windows()))
        return self._perm[1]

    def epoch_batch(self, step: int, batch_size: int, seed: int) -> np.ndarray:
        """(batch_size, ctx_len + 1) int64: the windows of optimizer step ``step`` (0-based).

        Window ``g = step * batch_size + j`` of the run is window ``g mod W`` of epoch
        ``g // W`` in that epoch's order (``W`` = :meth:`epoch_windows`), so every epoch
        trains each window once and a batch may straddle two epochs.
        """
        span, per_epoch = self.ctx_len + 1, self.epoch_windows()
        rows = []
        for g in range(step * batch_size, (step + 1) * batch_size):
            epoch, pos = divmod(g, per_epoch)
            start = int(self.epoch_order(epoch, seed)[pos]) * self.ctx_len
            rows.append(self.window(start, span))
        return np.stack(rows)

    def __getstate__(self) -> dict[str, Any]:
        """Pickle by path (e.g. for DataLoader workers); memory maps are reopened, not copied."""
        return {"shards_dir": self.shards_dir, "split": self.split, "ctx_len": self.ctx_len}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__init__(state["shards_dir"], state["split"], state["ctx_len"])  # type: ignore[misc]

    def __len__(self) -> int:
        return -(-(self.num_tokens - 1) // self.ctx_len)

    def window(self, start: int, length: int) -> np.ndarray:
        """Tokens ``[start, start + length)`` of the stream as int64 (copies only these)."""
        if start < 0 or start + length > self.num_tokens:
            raise IndexError(f"window [{start}, {start + length}) outside {self.num_tokens}")
        out = np.empty(length, dtype=np.int64)
        seg = int(np.searchsorted(self._starts, start, side="right") - 1)
        pos, filled = start - int(self._starts[seg]), 0
        while filled < length:
            take = min(length - filled, len(self._segs[seg]) - pos)
            out[filled:filled + take] = self._segs[seg][pos:pos + take]
            filled += take
            seg, pos = seg + 1, 0
        return out

    def random_batch(self, batch_size: int, rng: np.random.Generator) -> np.ndarray:
        """(batch_size, ctx_len + 1) int64 windows at uniform random stream positions."""
        span = self.ctx_len + 1
        starts = rng.integers(0, self.num_tokens - span + 1, size=batch_size)
        return np.stack([self.window(int(s), span) for s in starts])

    def sequential_batches(
        self, batch_size: int, start: int = 0, stop: int | None = None
    ) -> Iterator[tuple[np.ndarray, np.ndarray]]:
        """One fixed pass: (tokens (b, ctx_len+1) int64, target mask (b, ctx_len) bool).

        Window ``i`` starts at ``i * ctx_len``, so consecutive windows share one token and
        every token but the very first is a target exactly once; the last window is
        padded with 0 and its padded targets are masked out. ``start``/``stop`` restrict
        the pass to windows ``[start, stop)`` (one process's share of an evaluation).
        """
        if batch_size < 1:
            raise SymatoError(f"batch_size must be >= 1, got {batch_size}")
        n, span = len(self), self.ctx_len + 1
        stop = n if stop is None else min(stop, n)
        for first in range(start, stop, batch_size):
            rows = range(first, min(first + batch_size, stop))
            tokens = np.zeros((len(rows), span), dtype=np.int64)
            mask = np.zeros((len(rows), self.ctx_len), dtype=bool)
            for r, i in enumerate(rows):
                start = i * self.ctx_len
                length = min(span, self.num_tokens - start)
                tokens[r, :length] = self.window(start, length)
                mask[r, :length - 1] = True
            yield tokens, mask

    def strided_batches(
        self, batch_size: int, stride: int
    ) -> Iterator[tuple[np.ndarray, np.ndarray]]:
        """Overlapping windows: (tokens (b, ctx_len+1) int64, target mask (b, ctx_len) bool).

        Window ``i`` starts at ``i * stride``. The first window scores all its targets;
        each later one only the targets the previous window did not reach (its last
        ``stride``), so every token but the very first is a target exactly once and,
        after the first window, with at least ``ctx_len - stride`` tokens of context.
        ``stride == ctx_len`` is ``sequential_batches``. Padding is 0 and masked out.
        """
        if batch_size < 1:
            raise SymatoError(f"batch_size must be >= 1, got {batch_size}")
        if not 1 <= stride <= self.ctx_len:
            raise SymatoError(f"stride must be in 1..ctx_len={self.ctx_len}, got {stride}")
        starts = self._strided_starts(stride)
        span = self.ctx_len + 1
        for first in range(0, len(starts), batch_size):
            rows = starts[first:first + batch_size]
            tokens = np.zeros((len(rows), span), dtype=np.int64)
            mask = np.zeros((len(rows), self.ctx_len), dtype=bool)
            for r, start in enumerate(rows):
                length = min(span, self.num_tokens - start)
                tokens[r, :length] = self.window(start, length)
                scored_from = 0 if start == 0 else self.ctx_len - stride
                mask[r, scored_from:length - 1] = True
            yield tokens, mask

    def _strided_starts(self, stride: int) -> list[int]:
        """Window starts until a window reaches the stream's last token."""
        starts, start = [0], 0
        while start + self.ctx_len < self.num_tokens - 1:
            start += stride
            starts.append(start)
        return starts

    def __repr__(self) -> str:
        return (f"TokenDataset({str(self.shards_dir)!r}, tokens={self.num_tokens}, "
                f"ctx_len={self.ctx_len}, vocab_size={self.vocab_size})")
