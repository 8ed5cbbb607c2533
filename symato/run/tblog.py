"""TensorBoard event files beside ``metrics.jsonl`` (run setting ``tensorboard``).

Why a second log: TensorBoard is what many researchers watch runs with; the workflow's
own log stays ``metrics.jsonl`` (the report reads it), and the event files are written
from the same records, so the two never disagree. Each numeric key of a metrics line
(``train_loss``, ``lr``, ``grad_norm``, ``tokens_per_second``, ``val_loss``, ``val_bpb``,
and ``mfu``, ``epoch`` where present) becomes two scalars: ``KEY`` against the step and
``by_tokens/KEY`` against the tokens trained on (a TensorBoard scalar has one x axis).

The event files are in ``RUN/tb/``. A resumed run or a WSD branch rewrites them from the
records its state holds, as it rewrites ``metrics.jsonl``: the files on disk may be ahead
of the checkpoint, and TensorBoard's own purge (by step) would also cut the tokens axis.

``tensorboard`` is an optional extra: it is imported only when the setting is on, and
its absence stops the run before training (``require_tensorboard``), not after a step.
``torch.utils.tensorboard`` imports neither dynamo nor pandas (checked in
tests/test_tblog.py), so a run with it on starts as fast as one without.
"""

from __future__ import annotations

import shutil
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from symato.errors import SymatoError

TB_DIR = "tb"
# Metrics-line keys that are axes, not scalars.
AXES = ("step", "tokens")
TOKENS_PREFIX = "by_tokens/"
INSTALL_HINT = "pip install 'symato[tensorboard]'"


def require_tensorboard(where: str) -> None:
    """Fail now, naming the extra, when ``torch.utils.tensorboard`` cannot be imported."""
    try:
        import torch.utils.tensorboard  # noqa: F401
    except ImportError as exc:
        raise SymatoError(f"{where}: setting tensorboard is on, but TensorBoard cannot be "
                          f"imported ({exc}); install it with {INSTALL_HINT} or set "
                          "tensorboard: false") from None


def scalars(record: dict[str, Any]) -> dict[str, float]:
    """The scalars of one metrics line: its numbers other than the axes (bools are not)."""
    return {k: float(v) for k, v in record.items() if k not in AXES
            and isinstance(v, (int, float)) and not isinstance(v, bool)}


class EventLog:
    """A ``SummaryWriter`` on ``RUN/tb`` fed with metrics lines (main process only)."""

    def __init__(self, run_dir: Path, records: Iterable[dict[str, Any]]) -> None:
        """Start the event files afresh and write ``records`` (the lines so far) into them."""
        from torch.utils.tensorboard import SummaryWriter

        folder = run_dir / TB_DIR
        shutil.rmtree(folder, ignore_errors=True)
        # flush_secs: a watched run shows its lines within seconds, not the default 2 min.
        self.writer = SummaryWriter(log_dir=str(folder), flush_secs=10)
        for record in records:
            self.add(record)

    def add(self, record: dict[str, Any]) -> None:
        """Write one metrics line's scalars against its step and its tokens."""
        step, tokens = int(record["step"]), int(record["tokens"])
        for key, value in scalars(record).items():
            self.writer.add_scalar(key, value, global_step=step)
            self.writer.add_scalar(TOKENS_PREFIX + key, value, global_step=tokens)

    def close(self) -> None:
        """Flush everything to disk and close the files."""
        self.writer.close()
