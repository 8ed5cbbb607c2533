"""The optional libraries of the interop commands, imported on use with a clear error.

Why: the core pipeline must not need ``transformers``, ``safetensors`` and friends (the
``hf`` extra); a command that does need one says which extra installs it.
"""

from __future__ import annotations

import importlib
from types import ModuleType

from symato.errors import SymatoError

EXTRA = "pip install 'symato[hf]'"


def require(module: str) -> ModuleType:
    """Import ``module`` (e.g. ``transformers``, ``safetensors.torch``) or explain."""
    try:
        return importlib.import_module(module)
    except ImportError as exc:
        raise SymatoError(f"{module} is needed here and could not be imported ({exc}); "
                          f"install the extra: {EXTRA}") from None
