"""What arithmetic a run uses, decided before it starts, and the record of it.

Why a module of its own: a precision the device cannot honour must be an error named
before training, never a silent fallback (``bf16`` used to become plain float32 on CPU
without a word), and the model file must say what was actually used, so that two runs'
speeds and losses are compared knowing their arithmetic.

Rules (docs/training.md, "Precision"):

* ``fp32``: float32 everywhere. On CUDA, float32 matmuls use TF32 tensor cores
  (:func:`enable_tf32`), recorded as ``tf32: true`` in the model's meta.
* ``bf16``: bf16 autocast on CUDA (the loss is still computed in float32). An error on
  CPU and on a CUDA device without bf16 support.
* ``auto``: ``bf16`` on a CUDA device that supports it, else ``fp32``.
"""

from __future__ import annotations

import contextlib
import platform
from pathlib import Path
from typing import Any

import torch

from symato.errors import SymatoError


def resolve_precision(requested: str, device: torch.device, run: str) -> str:
    """``"bf16"`` or ``"fp32"`` for setting ``precision: requested`` on ``device``.

    Raises SymatoError naming the setting and the fix when the device cannot honour it.
    """
    # Native bf16 only (compute capability >= 8): emulated bf16 would be slower than fp32.
    bf16_ok = device.type == "cuda" and torch.cuda.is_bf16_supported(including_emulation=False)
    if requested == "bf16" and not bf16_ok:
        where = ("a CPU device" if device.type != "cuda" else
                 f"CUDA device {torch.cuda.get_device_name(device)!r}, which has no bf16 support")
        raise SymatoError(
            f"run {run}: setting precision='bf16' cannot be honoured on {where}; set "
            f"precision to 'fp32' or 'auto' (train.settings.precision in the config), or run "
            f"on a CUDA device with bf16 (Ampere or newer; device: cuda)"
        )
    if requested == "auto":
        return "bf16" if bf16_ok else "fp32"
    return requested


def enable_tf32(device: torch.device) -> bool:
    """Let CUDA float32 matmuls use TF32 tensor cores; returns whether they do.

    The process-wide ``set_float32_matmul_precision("high")`` is used rather than the
    per-backend ``fp32_precision`` flags because mixing the two APIs makes
    ``torch.get_float32_matmul_precision()`` raise, and inductor calls it. On CPU this
    does nothing (the call would also switch oneDNN's float32 matmuls), so CPU runs stay
    exact. GPUs older than Ampere have no TF32: the flag is set but reported as off.
    """
    if device.type != "cuda":
        return False
    torch.set_float32_matmul_precision("high")
    has_tf32 = torch.cuda.get_device_capability(device)[0] >= 8
    return has_tf32 and torch.backends.cuda.matmul.fp32_precision == "tf32"


def device_name(device: torch.device) -> str:
    """The GPU's name, or the CPU model (``/proc/cpuinfo``), for the run's record."""
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    name = platform.processor() or platform.machine()
    with contextlib.suppress(OSError):
        lines = Path("/proc/cpuinfo").read_text(encoding="utf-8").splitlines()
        models = [ln.split(":", 1)[1].strip() for ln in lines if ln.startswith("model name")]
        name = models[0] if models else name
    return name or "unknown CPU"


def arithmetic_meta(device: torch.device, precision: str, tf32: bool) -> dict[str, Any]:
    """The keys a model file's meta gets: what ran, on what, with which torch."""
    return {"precision": precision, "device_name": device_name(device), "tf32": tf32,
            "torch_version": str(torch.__version__)}
