"""Progress lines of long jobs (training, evaluation, tokenizing, cleaning), on stderr.

One helper, so every stage reports the same way and follows one policy:

* **stderr is a terminal**: one line rewritten in place (``\\r``) at most every
  ``TTY_SECONDS``: done, total and share where the total is known, rate, time so far and
  the ETA; at the end it is finished with a newline.
* **stderr is not a terminal** (Snakemake's ``log:`` files, Slurm logs, pipes): a plain
  line, ending in a newline, at most every ``LOG_SECONDS`` (30 s), and one closing line
  with the totals. A log then grows by about two lines a minute however fast records go,
  and never holds the ``\\r`` runs of a redrawn bar.
* ``--quiet`` (each command's option): nothing at all.

Lines go to stderr only, never into a file a stage writes, so outputs do not change with
the policy. A line is written at most once per interval whatever the record rate: the
caller calls :meth:`Progress.update` per record, which only reads the clock.

The environment may override the policy for every job at once (a Snakemake workflow
passes it on to its jobs): ``SYMATO_PROGRESS=tty|log|off`` forces a mode and
``SYMATO_PROGRESS_SECONDS=S`` sets the interval (e.g. a line every 5 s in Slurm logs).
"""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Callable, Iterable, Iterator
from types import TracebackType
from typing import TextIO, TypeVar

from symato.errors import SymatoError

TTY_SECONDS = 1.0  # a live line: redrawn about once a second
LOG_SECONDS = 30.0  # a log file: a line every 30 s, so hours of work stay a short log
MODES = ("tty", "log", "off")
ENV_MODE = "SYMATO_PROGRESS"
ENV_SECONDS = "SYMATO_PROGRESS_SECONDS"
T = TypeVar("T")


def resolve_mode(quiet: bool, stream: TextIO, env: dict[str, str] | None = None) -> str:
    """``off`` under ``quiet``; else ``SYMATO_PROGRESS`` when set; else ``tty`` when
    ``stream`` is a terminal and ``log`` when it is not."""
    if quiet:
        return "off"
    env = os.environ if env is None else env
    forced = env.get(ENV_MODE, "").strip().lower()
    if forced:
        if forced not in MODES:
            raise SymatoError(f"environment variable {ENV_MODE}={forced!r}: expected one of "
                              f"{list(MODES)}")
        return forced
    isatty = getattr(stream, "isatty", None)
    return "tty" if isatty is not None and isatty() else "log"


def resolve_seconds(mode: str, env: dict[str, str] | None = None) -> float:
    """The interval between lines: ``SYMATO_PROGRESS_SECONDS`` when set, else the mode's."""
    env = os.environ if env is None else env
    text = env.get(ENV_SECONDS, "").strip()
    if not text:
        return TTY_SECONDS if mode == "tty" else LOG_SECONDS
    try:
        seconds = float(text)
    except ValueError:
        seconds = -1.0
    if not seconds >= 0:  # also NaN
        raise SymatoError(f"environment variable {ENV_SECONDS}={text!r}: expected seconds >= 0")
    return seconds


# ----------------------------------------------------------------------------- formatting
def format_count(n: float, unit: str) -> str:
    """A quantity for a reader: bytes in decimal units (``12.3 MB``), other units as
    grouped integers (``12,345 documents``)."""
    if unit == "bytes":
        for size, prefix in ((1e12, "TB"), (1e9, "GB"), (1e6, "MB"), (1e3, "kB")):
            if n >= size:
                return f"{n / size:.1f} {prefix}"
        return f"{n:.0f} B"
    return f"{n:,.0f}"


def format_rate(per_second: float, unit: str) -> str:
    """A rate: ``3.1 MB/s``, ``812 documents/s`` (two significant digits below 10)."""
    if unit == "bytes":
        return f"{format_count(per_second, unit)}/s"
    value = f"{per_second:,.0f}" if per_second >= 10 else f"{per_second:.2g}"
    return f"{value} {unit}/s"


def format_duration(seconds: float) -> str:
    """``m:ss`` below an hour, ``h:mm:ss`` above."""
    s = max(0, round(seconds))
    hours, rest = divmod(s, 3600)
    minutes, secs = divmod(rest, 60)
    return f"{hours}:{minutes:02d}:{secs:02d}" if hours else f"{minutes}:{secs:02d}"


def format_line(what: str, done: float, total: float | None, unit: str, elapsed: float,
                rate_done: float | None = None, note: str = "") -> str:
    """One progress line. ``rate_done``: the part of ``done`` done in ``elapsed`` (a
    resumed job started from the rest); the rate and ETA come from it."""
    rate_done = done if rate_done is None else rate_done
    rate = rate_done / elapsed if elapsed > 0 else 0.0
    amount = (f"{format_count(done, unit)}/{format_count(total, unit)}"
              f"{'' if unit == 'bytes' else ' ' + unit} ({100 * done / total:.0f}%)"
              if total else f"{format_count(done, unit)}{'' if unit == 'bytes' else ' ' + unit}")
    parts = [amount, format_rate(rate, unit), f"{format_duration(elapsed)} elapsed"]
    if total and rate > 0 and done < total:
        parts.append(f"ETA {format_duration((total - done) / rate)}")
    if note:
        parts.append(note)
    return f"{what}: {', '.join(parts)}"


# ----------------------------------------------------------------------------- reporter
class Progress:
    """Progress of one job over ``total`` records or bytes (None: not known ahead).

    ``update(n)`` per record is cheap (a clock read); a line is written when the interval
    has passed since the last one (see the module's policy). Use as a context manager or
    call :meth:`close`, which writes the closing line.
    """

    def __init__(self, what: str, total: float | None = None, unit: str = "records", *,
                 quiet: bool = False, initial: float = 0, stream: TextIO | None = None,
                 clock: Callable[[], float] = time.monotonic,
                 env: dict[str, str] | None = None) -> None:
        self.what, self.total, self.unit = what, total, unit
        self.stream = sys.stderr if stream is None else stream
        self.mode = resolve_mode(quiet, self.stream, env)
        self.seconds = resolve_seconds(self.mode, env)
        self.clock = clock
        self.start = self.last = clock()
        self.initial = self.done = initial
        self.note = ""
        self._width = 0  # of the live line drawn last, to blank what a shorter one leaves
        self._closed = False

    def update(self, n: float = 1, note: str | None = None) -> None:
        """Count ``n`` more (records or bytes); write a line if one is due."""
        self.done += n
        if note is not None:
            self.note = note
        if self.mode == "off":
            return
        now = self.clock()
        if now - self.last >= self.seconds:
            self.last = now
            self._write(self.line(now))

    def each(self, items: Iterable[T], size: Callable[[T], float] | None = None
             ) -> Iterator[T]:
        """``items``, counting each (by ``size(item)``, else 1) as it is taken."""
        for item in items:
            yield item
            self.update(1 if size is None else size(item))

    def line(self, now: float | None = None) -> str:
        """The current progress line."""
        now = self.clock() if now is None else now
        return format_line(self.what, self.done, self.total, self.unit, now - self.start,
                           self.done - self.initial, self.note)

    def close(self) -> None:
        """Write the closing line (totals, time, rate); idempotent."""
        if self._closed:
            return
        self._closed = True
        if self.mode == "off":
            return
        self._write(self.line(), final=True)

    def _write(self, line: str, final: bool = False) -> None:
        if self.mode == "tty":
            pad = " " * max(0, self._width - len(line))
            self._width = len(line)
            end = "\n" if final else ""
            self.stream.write(f"\r{line}{pad}{end}")
        else:
            self.stream.write(line + "\n")
        self.stream.flush()

    def __enter__(self) -> Progress:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.close()


def parquet_rows(paths: Iterable[os.PathLike[str] | str]) -> int | None:
    """Rows of Parquet files, from their footers (no data is read): the total of a
    progress over their records. None when one cannot be read: the stage's own reader
    then reports that file with its own message."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    try:
        return sum(pq.ParquetFile(p).metadata.num_rows for p in paths)
    except (OSError, pa.ArrowException):
        return None
