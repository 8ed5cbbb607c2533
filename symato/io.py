"""Atomic file writes and strict JSON reading shared by every stage.

Why: Snakemake treats an existing output as done, so a half-written file left by a
killed job would silently poison every later step. Everything we write goes to a
temporary file in the same folder and is renamed into place only when complete.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import math
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from symato.errors import SymatoError


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike[str]) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; rename it onto ``path`` on success.

    The temporary file is removed if the block raises, so no partial output survives.
    The result gets the permissions a plain ``open`` would give (0666 minus the umask):
    ``mkstemp`` creates its file owner-only, which would hide results from a group.
    """
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
    os.close(fd)
    tmp = Path(tmp_name)
    try:
        yield tmp
        if tmp.exists():
            os.chmod(tmp, 0o666 & ~_umask())
        os.replace(tmp, target)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()
        raise


def _umask() -> int:
    """The process umask: from /proc (Linux), else by setting it and putting it back
    (there is no portable getter; the second way is racy only against other threads
    creating files in that instant)."""
    with contextlib.suppress(OSError, ValueError):
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("Umask:"):
                return int(line.split()[1], 8)
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def write_bytes_atomic(path: str | os.PathLike[str], data: bytes) -> None:
    """Write ``data`` to ``path`` atomically (flushed and fsynced before the rename)."""
    with atomic_path(path) as tmp, open(tmp, "wb") as fh:
        fh.write(data)
        fh.flush()
        os.fsync(fh.fileno())


def write_text_atomic(path: str | os.PathLike[str], text: str) -> None:
    """Write UTF-8 ``text`` to ``path`` atomically."""
    write_bytes_atomic(path, text.encode("utf-8"))


def write_json_atomic(path: str | os.PathLike[str], obj: Any) -> None:
    """Write ``obj`` as indented, key-sorted UTF-8 JSON (stable bytes for stable hashes).

    Strict JSON only: a NaN or infinity is an error naming the file and the key, never
    written as the non-standard ``NaN`` that other tools reject or misread.
    """
    bad = non_finite_key(obj)
    if bad is not None:
        raise SymatoError(f"{path}: refusing to write a non-finite number at {bad} "
                          f"(strict JSON has no NaN or infinity)")
    text = json.dumps(obj, ensure_ascii=False, indent=2, sort_keys=True, allow_nan=False)
    write_text_atomic(path, text + "\n")


def non_finite_key(obj: Any, where: str = "top level") -> str | None:
    """Where the first NaN or infinite float in a JSON-like value is, or None."""
    if isinstance(obj, float):
        return None if math.isfinite(obj) else where
    if isinstance(obj, dict):
        items: Any = ((f"key {k!r}" if where == "top level" else f"{where}.{k}", v)
                      for k, v in obj.items())
    elif isinstance(obj, (list, tuple)):
        items = ((f"{where}[{i}]", v) for i, v in enumerate(obj))
    else:
        return None
    for name, value in items:
        found = non_finite_key(value, name)
        if found is not None:
            return found
    return None


def file_digest(path: str | os.PathLike[str], chunk: int = 1 << 20) -> str:
    """SHA-256 of a file's bytes (hex), naming the file when it cannot be read.

    Read ``chunk`` bytes at a time so a multi-GB shard costs no memory. Here, not in
    ``symato.run.provenance``, so data stages can record digests without importing torch.
    """
    h = hashlib.sha256()
    try:
        with open(path, "rb") as fh:
            while block := fh.read(chunk):
                h.update(block)
    except OSError as exc:
        raise SymatoError(f"cannot read {path} to record its digest: {exc}") from None
    return h.hexdigest()


def read_json(path: str | os.PathLike[str], what: str = "JSON file") -> Any:
    """Read a JSON file, turning every failure into a ``SymatoError`` naming the file."""
    p = Path(path)
    try:
        text = p.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise SymatoError(f"{what} not found: {p}") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise SymatoError(f"cannot read {what} {p}: {exc}") from None
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise SymatoError(
            f"{what} {p} is not valid JSON (line {exc.lineno}, column {exc.colno}): {exc.msg}"
        ) from None
