"""Per-interval training statistics kept on the device, read once per metrics line.

Why: on a GPU, ``float(loss)`` after every step makes the host wait for the step to
finish before it may queue the next one, so the GPU idles while Python launches kernels.
At the GPU grid's small sizes that idle time is a large share of a step and biases
``tokens_per_second`` and MFU. So a step only *adds* its loss and gradient norm to
device tensors; the trainer reads them (one host sync) when it writes a metrics line,
validates or saves a checkpoint.

The NaN guard lives here too: ``first_bad`` is the first step whose loss was not
finite, kept on the device with ``masked_fill_`` (the step number goes in as a scalar
kernel argument, not as a tensor copied from the host, so no copy and no sync). A read
reports it, so the run still stops naming the first bad step even when it lies between
two metrics lines.

Everything here is device-agnostic and runs the same on CPU, where the tests exercise it.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

import torch


class IntervalStats:
    """Sums of the steps since the last metrics line, plus the first non-finite step.

    The sums are float64: the float32 per-step values add exactly as Python floats
    would, so the mean of an interval equals the mean of the same values read one by
    one (tested).
    """

    def __init__(self, device: torch.device) -> None:
        self.device = device
        self.first_bad = torch.zeros((), dtype=torch.int64, device=device)  # 0 = none yet
        self.bad_loss = torch.zeros((), dtype=torch.float32, device=device)
        self.loss_sum = torch.zeros((), dtype=torch.float64, device=device)
        self.gnorm_sum = torch.zeros((), dtype=torch.float64, device=device)
        self.steps = 0  # host-side: the host knows how many steps it queued

    def add(self, step: int, loss: torch.Tensor, grad_norm: torch.Tensor) -> None:
        """Account optimizer step ``step`` (1-based) without reading anything back."""
        bad = ~torch.isfinite(loss) & (self.first_bad == 0)
        self.first_bad.masked_fill_(bad, step)
        self.bad_loss = torch.where(bad, loss.float(), self.bad_loss)
        self.loss_sum += loss
        self.gnorm_sum += grad_norm
        self.steps += 1

    def read(self) -> Reading:
        """The interval so far: one device-to-host copy (a host sync on CUDA)."""
        packed = torch.stack([self.loss_sum, self.gnorm_sum, self.first_bad.double(),
                              self.bad_loss.double()])
        loss_sum, gnorm_sum, first_bad, bad_loss = packed.tolist()
        return Reading(loss_sum, gnorm_sum, self.steps, int(first_bad) or None, bad_loss)

    def reset(self) -> None:
        """Start a new interval (after a metrics line)."""
        self.loss_sum.zero_()
        self.gnorm_sum.zero_()
        self.steps = 0

    def load(self, state: dict[str, Any]) -> None:
        """Reopen the interval a checkpoint saved (float64 round-trips exactly)."""
        self.loss_sum.fill_(float(state["loss_sum"]))
        self.gnorm_sum.fill_(float(state["gnorm_sum"]))
        self.steps = int(state["steps"])


@dataclass(frozen=True)
class Reading:
    """What :meth:`IntervalStats.read` returns: the sums of the open interval and the
    first step (1-based) whose loss was not finite, with that loss, or None."""

    loss_sum: float
    gnorm_sum: float
    steps: int
    bad_step: int | None
    bad_loss: float

    @property
    def loss(self) -> float:
        """Mean training loss of the interval's steps."""
        return self.loss_sum / max(self.steps, 1)

    @property
    def grad_norm(self) -> float:
        """Mean gradient norm (before clipping) of the interval's steps."""
        return self.gnorm_sum / max(self.steps, 1)

    def state(self) -> dict[str, Any]:
        """The open interval as JSON-able numbers, for a checkpoint (so a resumed run
        writes the same means as an uninterrupted one)."""
        return {"loss_sum": self.loss_sum, "gnorm_sum": self.gnorm_sum, "steps": self.steps}


class Stopwatch:
    """Training wall time, paused while the trainer validates, logs or checkpoints.

    Reading the time is meaningful only after the device has finished the queued work,
    so :meth:`pause` synchronizes CUDA first; it is called only where the trainer syncs
    anyway (metrics lines and checkpoints), never once per step.
    """

    def __init__(self, device: torch.device) -> None:
        self.device = device
        self.seconds = 0.0
        self._since: float | None = None

    def start(self) -> None:
        self._since = time.perf_counter()

    def pause(self) -> None:
        """Stop counting: wait for the device's queued work, add the elapsed time."""
        if self._since is None:
            return
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)
        self.seconds += time.perf_counter() - self._since
        self._since = None

    def take(self) -> float:
        """The seconds counted since the last ``take`` (the clock must be paused)."""
        seconds, self.seconds = self.seconds, 0.0
        return seconds
