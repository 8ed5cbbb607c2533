"""The optional libraries of the interop commands, imported on use with a clear error.

Why: the core pipeline must not need ``transformers``, ``safetensors`` and friends (the
``hf`` extra); a command that does need one says which extra installs it. A source
checkout on ``sys.path`` (``python -m pytest`` from the repository root, or
``PYTHONPATH=.``) puts its ``kernels/`` folder (the WKV sources) in front of the ``kernels``
distribution that ``transformers`` imports; that case gets its own message.
"""

from __future__ import annotations

import importlib
import importlib.util
from pathlib import Path
from types import ModuleType

from symato.errors import SymatoError

EXTRA = "pip install 'symato[hf]'"


def require(module: str) -> ModuleType:
    """Import ``module`` (e.g. ``transformers``, ``safetensors.torch``) or explain."""
    _check_kernels_not_shadowed()
    try:
        return importlib.import_module(module)
    except ImportError as exc:
        raise SymatoError(f"{module} is needed here and could not be imported ({exc}); "
                          f"install the extra: {EXTRA}") from None


def _check_kernels_not_shadowed() -> None:
    """The repository's ``kernels/`` folder must not stand for the ``kernels`` package."""
    spec = importlib.util.find_spec("kernels")
    if spec is None or not spec.origin:
        return
    folder = Path(spec.origin).parent
    if (folder / "wkv4_cpu.cpp").exists():
        raise SymatoError(
            f"{folder} (symato's kernel sources) shadows the 'kernels' package that "
            f"transformers imports: the repository root is on sys.path. Run from an "
            f"installed symato (pip install -e .; then `pytest`, not `python -m pytest`, "
            f"from the checkout) or from another directory")
