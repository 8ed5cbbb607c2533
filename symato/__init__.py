"""symato: syllable-aware Vietnamese tokenization and a scaling-law pipeline.

The public library surface is deliberately tiny (like tiktoken's): ``Tokenizer`` for
encoding, and the submodules ``symato.text.syllable`` (the grammar), ``symato.data.loader`` (the
token loader), ``symato.models`` and ``symato.models.ops.wkv4``. Heavy modules (torch) are only
imported by the submodules that need them, so ``import symato`` stays fast.
"""

from __future__ import annotations

__version__ = "0.1.0"

__all__ = ["SymatoError", "Tokenizer", "__version__"]

from symato.errors import SymatoError


def __getattr__(name: str):  # lazy: the tokenizer is only built when asked for
    if name == "Tokenizer":
        from symato.text.tokenizer import Tokenizer

        return Tokenizer
    raise AttributeError(f"module 'symato' has no attribute {name!r}")
