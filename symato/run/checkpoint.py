"""Model weight files: one self-describing ``.pt`` per model, safe to load.

Why this format: a checkpoint must rebuild its model with no other file at hand (the
architecture and config travel with the weights) and decode its output (the vocabulary
travels in ``meta``). It holds only tensors and JSON-like values, so it loads with
``torch.load(weights_only=True)``: opening a downloaded checkpoint cannot run code.

Layout (a dict): ``format`` = "symato-model", ``version`` = 1, ``arch`` (a name in
``symato.models.registry.ARCHITECTURES``), ``config`` (the model config as a dict; its
``wkv_backend`` is always ``auto``, the backend being a run-time choice),
``state_dict`` and ``meta`` (JSON-like: e.g. ``tokenizer`` = ``Tokenizer.to_dict()``,
``run``, ``settings``, ``step``). ``meta["weights_sha256"]`` is the digest of the
weights (``symato.run.provenance.weights_digest``), written by ``model_payload`` and
checked on every load together with finiteness: a damaged file that still unpickles, or
weights holding NaN or infinity, are refused by name (evaluation and generation go
through here). A model trained by the pipeline also records ``meta["inputs"]``, the
digests of the settings, vocabulary and shards it was trained from.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import torch
from torch import nn

from symato.errors import SymatoError
from symato.io import atomic_path
from symato.run.provenance import check_finite, weights_digest

FORMAT = "symato-model"
VERSION = 1
MODEL_FILE = "model.pt"


def model_payload(model: nn.Module, meta: dict[str, Any] | None = None) -> dict[str, Any]:
    """The checkpoint dict of ``model`` (weights on CPU), for callers that embed it
    (the trainer's resumable state) as well as for ``save_model``."""
    from symato.models import architecture_of, config_dict

    meta = dict(meta or {})
    try:
        json.dumps(meta)
    except (TypeError, ValueError) as exc:
        raise SymatoError(f"checkpoint meta must be JSON-like (weights_only load): {exc}") from None
    state = {k: v.detach().to("cpu").clone() for k, v in model.state_dict().items()}
    meta["weights_sha256"] = weights_digest(state)
    return {
        "format": FORMAT,
        "version": VERSION,
        "arch": architecture_of(model),
        "config": config_dict(model),
        "state_dict": state,
        "meta": meta,
    }


def save_model(path: str | os.PathLike[str], model: nn.Module, meta: dict[str, Any]) -> None:
    """Write ``model`` and ``meta`` to ``path`` atomically (temp file + rename)."""
    payload = model_payload(model, meta)
    with atomic_path(path) as tmp:
        torch.save(payload, tmp)


def resolve_path(path_or_run_dir: str | os.PathLike[str]) -> Path:
    """A run directory means its ``model.pt``; anything else is the file itself."""
    p = Path(path_or_run_dir)
    return p / MODEL_FILE if p.is_dir() else p


def read_payload(path_or_run_dir: str | os.PathLike[str]) -> dict[str, Any]:
    """Load and check a checkpoint dict without building the model."""
    path = resolve_path(path_or_run_dir)
    return check_payload(load_weights_only(path, "checkpoint"), str(path))


def load_weights_only(path: str | os.PathLike[str], what: str) -> Any:
    """``torch.load`` of a file that may hold only tensors and plain data, never code; a
    missing file or one that would need unpickling is an error naming ``what`` and the
    path (every checkpoint the project opens comes through here)."""
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except FileNotFoundError:
        raise SymatoError(f"{what} not found: {path}") from None
    except Exception as exc:  # torch raises many types for truncated or foreign files
        raise SymatoError(f"cannot read {what} {path}: {load_failure(exc)}") from None


def load_failure(exc: BaseException) -> str:
    """Why ``torch.load(weights_only=True)`` failed, in words safe to show a user.

    torch's own message for a file it cannot parse safely advises retrying with
    ``weights_only=False``, i.e. letting the file run code: never the fix here, so
    that advice is left out and the failure is named by its kind.
    """
    text = str(exc).strip()
    if "weights_only" in text or "Weights only load failed" in text:
        lines = [ln.strip() for ln in text.splitlines() if ln.strip()]
        detail = next((ln for ln in lines if ln.startswith(("Unsupported", "Unpickling"))), "")
        return ("not a weights-only PyTorch file (it holds objects that loading would have "
                f"to execute, or it is damaged){': ' + detail if detail else ''}")
    first = text.splitlines()[0] if text else type(exc).__name__
    return f"not a readable PyTorch file ({first})"


def read_meta(path_or_run_dir: str | os.PathLike[str]) -> dict[str, Any]:
    """A checkpoint's meta without reading its weights (memory-mapped, weights-only load).

    Why: consumers that only check what a model is (its digest, its run) should not pay
    for reading every tensor of a large file.
    """
    path = resolve_path(path_or_run_dir)
    try:
        payload = torch.load(path, map_location="cpu", weights_only=True, mmap=True)
    except FileNotFoundError:
        raise SymatoError(f"checkpoint not found: {path}") from None
    except Exception as exc:  # see read_payload
        raise SymatoError(f"cannot read checkpoint {path}: {load_failure(exc)}") from None
    return check_payload(payload, str(path))["meta"]


def check_payload(payload: Any, where: str) -> dict[str, Any]:
    """Validate the top-level keys of a checkpoint dict, naming ``where`` in errors."""
    if not isinstance(payload, dict) or payload.get("format") != FORMAT:
        raise SymatoError(f"{where} is not a symato model checkpoint (no format={FORMAT!r})")
    if payload.get("version") != VERSION:
        raise SymatoError(
            f"{where}: checkpoint version {payload.get('version')!r} is not supported "
            f"(this symato reads version {VERSION})"
        )
    for key, kind in (("arch", str), ("config", dict), ("state_dict", dict), ("meta", dict)):
        if not isinstance(payload.get(key), kind):
            raise SymatoError(f"{where}: checkpoint key {key!r} missing or not a {kind.__name__}")
    return payload


def model_from_payload(
    payload: dict[str, Any], where: str, device: str = "cpu", wkv_backend: str = "auto"
) -> nn.Module:
    """Build the model a checked payload describes and load its weights.

    ``wkv_backend`` is the operator implementation to run (models with a compiled
    operator; ignored by the others). It replaces whatever the saved config says, so
    checkpoints written before the saved config always said ``auto`` (a ``cuda`` run
    then failed on a CPU, a ``torch`` run stayed slow) load like new ones.
    """
    from symato.models import model_from_config, with_backend
    from symato.models.registry import get_architecture

    verify_weights(payload, where)
    saved = get_architecture(payload["arch"], where).saved_config_defaults
    config = {**saved, **payload["config"]}
    model = model_from_config(payload["arch"], with_backend(config, wkv_backend))
    try:
        model.load_state_dict(payload["state_dict"], strict=True)
    except RuntimeError as exc:
        first = str(exc).strip().splitlines()
        raise SymatoError(
            f"{where}: weights do not match the config: {' '.join(first[:3])}"
        ) from None
    return model.to(device).eval()


def verify_weights(payload: dict[str, Any], where: str) -> None:
    """The weights are finite and, where a digest is recorded, equal to it.

    Files from before the digest existed carry none; they are checked for finiteness only.
    """
    state = payload["state_dict"]
    recorded = payload["meta"].get("weights_sha256")
    if recorded is not None and weights_digest(state) != recorded:
        raise SymatoError(
            f"{where}: the weights do not match the digest recorded with them "
            f"(weights_sha256 {str(recorded)[:12]}...): the file is damaged or was edited; "
            f"retrain or restore it"
        )
    check_finite(state, where)


def load_model(
    path_or_run_dir: str | os.PathLike[str], device: str = "cpu", wkv_backend: str = "auto"
) -> tuple[nn.Module, dict[str, Any]]:
    """Load ``(model, meta)`` from a checkpoint file or a run directory (``DIR/model.pt``).

    The model is returned in eval mode on ``device``, running the operator backend
    ``wkv_backend`` (``auto``: the compiled kernel of the device; see
    ``model_from_payload``); the backend its training ran is ``meta["backend"]``.
    """
    path = resolve_path(path_or_run_dir)
    payload = read_payload(path)
    return model_from_payload(payload, str(path), device, wkv_backend), payload["meta"]
