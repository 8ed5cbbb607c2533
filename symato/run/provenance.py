"""Digests that tie every artifact to what produced it, so nothing stale is reused.

Why: Snakemake reruns a job when its inputs change, but the job itself must not then
pick up state left by the old inputs. A training checkpoint, a ``model.pt`` and a
``metrics.json`` therefore each record content digests (SHA-256) of what they were made
from, and their consumers compare them before use:

* ``run_inputs(settings)``: the digests of everything a training run reads (the settings
  themselves, the vocabulary file, the shard manifest and every shard it lists). The
  trainer resumes from ``checkpoint.pt`` only when all of them equal the checkpoint's.
* ``weights_digest(state_dict)``: the digest of a model's tensors (names, dtypes, shapes
  and bytes), recorded in ``model.pt``'s meta as ``weights_sha256`` and checked when the
  file is loaded, so a damaged file that still unpickles is refused; ``metrics.json``
  records it as ``model_sha256`` (what was evaluated).
* ``check_finite(state_dict, where)``: a model with NaN or infinite weights is refused
  by name instead of giving NaN metrics or garbage samples.

Digests are of contents, not paths or times, so moving a results folder keeps them valid.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch

from symato.errors import SymatoError
from symato.io import file_digest, read_json

__all__ = ["changed_inputs", "check_finite", "file_digest", "json_digest", "run_inputs",
           "shards_digest", "weights_digest"]


def json_digest(value: Any) -> str:
    """SHA-256 of a JSON value in canonical form (sorted keys, no spaces)."""
    text = json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def shards_digest(shards_dir: str | os.PathLike[str]) -> str:
    """One digest of a tokenizer's shard set: its manifest and every shard it lists.

    Why the shards too: a vocabulary change can reassign ids while every count in the
    manifest stays the same; only the shards' bytes show it.
    """
    folder = Path(shards_dir)
    manifest_path = folder / "manifest.json"
    manifest = read_json(manifest_path, "shard manifest")
    h = hashlib.sha256(file_digest(manifest_path).encode())
    splits = manifest.get("splits", {}) if isinstance(manifest, dict) else {}
    for split in sorted(splits):
        for rel in splits[split].get("shards", []):
            h.update(f"\n{split}/{rel}:{file_digest(folder / rel)}".encode())
    return h.hexdigest()


def run_inputs(settings: Mapping[str, Any]) -> dict[str, str]:
    """The digests of everything a training run reads, by name.

    ``settings`` is the run's settings dict (``shards_dir`` and ``vocab_file`` name the
    data). A run that starts from other weights adds their digest under ``init``; a WSD
    branch adds the digest of its stable run's saved state under ``stable_state``, so a
    retrained stable run makes the branch's checkpoint and model stale.
    """
    inputs = {
        "settings": json_digest(dict(settings)),
        "vocab": file_digest(settings["vocab_file"]),
        "shards": shards_digest(settings["shards_dir"]),
    }
    init = settings.get("init_from")
    if init:
        from symato.interop.imports import source_digest

        inputs["init"] = source_digest(init)
    branch_from = settings.get("branch_from")
    if branch_from:
        if not Path(branch_from).is_file():
            raise SymatoError(f"run {settings.get('run')}: branch_from {branch_from} does not "
                              "exist; train its stable run first (results/stable/...)")
        inputs["stable_state"] = file_digest(branch_from)
    return inputs


def changed_inputs(recorded: Mapping[str, str] | None, current: Mapping[str, str]) -> list[str]:
    """Names of the inputs whose digest differs (all of them when none were recorded)."""
    if not recorded:
        return sorted(current)
    names = set(recorded) | set(current)
    return sorted(n for n in names if recorded.get(n) != current.get(n))


def weights_digest(state_dict: Mapping[str, torch.Tensor]) -> str:
    """SHA-256 over a state dict's tensors in name order (name, dtype, shape, bytes).

    The bytes are the tensor's own memory (any dtype, bf16 included), on the CPU.
    """
    h = hashlib.sha256()
    for name in sorted(state_dict):
        t = state_dict[name].detach().to("cpu").contiguous()
        h.update(f"{name}|{t.dtype}|{tuple(t.shape)}|".encode())
        if t.numel():
            h.update(t.reshape(-1).view(torch.uint8).numpy().tobytes())
    return h.hexdigest()


def check_finite(state_dict: Mapping[str, torch.Tensor], where: str) -> None:
    """Refuse weights holding NaN or infinity, naming the file and the first tensor."""
    for name, t in state_dict.items():
        if t.is_floating_point() or t.is_complex():
            bad = int((~torch.isfinite(t)).sum())
            if bad:
                raise SymatoError(
                    f"{where}: tensor {name!r} holds {bad} non-finite value(s) (NaN or "
                    f"infinity); the model is unusable (retrain it, or check the file)"
                )
