"""The compiled operators the architectures use, each with a PyTorch reference:
``wkv4`` (RWKV-4's WKV) and ``wkv7`` (RWKV-7's). Kernel sources are the top-level
``kernels/`` folder, installed as ``symato/kernels/`` in a wheel; ``extension``
builds and loads them (one loader, one backend policy for both) and ``build`` is the
``symato build`` command that builds them once per workflow.

:data:`OPERATORS` is the only list of them: operator name (= kernel family = prefix of
its kernel files) -> the module that defines its ``OPERATOR``
(:class:`symato.models.ops.base.Operator`). The extension loader takes its families from
it and the architecture registry reaches an operator through :func:`operator`. Modules
are named rather than imported because this package must not import torch: the
Snakefile reads the architecture registry while parsing. Adding an operator is its
kernels, its module and one line here (docs/wkv.md, "Adding an operator").
"""

from __future__ import annotations

import importlib
from collections.abc import Mapping
from types import MappingProxyType
from typing import TYPE_CHECKING

from symato.errors import SymatoError

if TYPE_CHECKING:
    from symato.models.ops.base import Operator

__all__ = ["OPERATORS", "operator"]

OPERATORS: Mapping[str, str] = MappingProxyType({
    "wkv4": "symato.models.ops.wkv4",
    "wkv7": "symato.models.ops.wkv7",
})


def operator(name: str) -> Operator:
    """The operator ``name`` (its module imported on first use); an unknown name is an
    error listing the known ones."""
    if name not in OPERATORS:
        raise SymatoError(f"no operator named {name!r}; known: {list(OPERATORS)}")
    op = importlib.import_module(OPERATORS[name]).OPERATOR
    if op.name != name:  # the table and the module must agree on the kernel family
        raise SymatoError(f"{OPERATORS[name]}.OPERATOR is named {op.name!r}, but "
                          f"symato.models.ops.OPERATORS lists it as {name!r}")
    return op
