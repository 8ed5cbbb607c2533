"""Placeholder: helper B's module (the tokenizer for ``transformers``) replaces this file."""

from __future__ import annotations

from pathlib import Path
from typing import Any


def save_hf_tokenizer(vocab_path: Path, out_dir: Path, *, model_max_length: int) -> dict[str, Any]:
    """Write the tokenizer files of ``vocab_path`` into ``out_dir`` (helper B's module)."""
    raise NotImplementedError("helper B's module replaces this")
