"""When a compiled-kernel test may skip, shared by the operator tests.

The rule (issue #12): a kernel that should build and does not FAILS its tests. A test
skips only where the toolchain to build the kernel is absent (no C++ compiler on PATH,
no ninja; for CUDA: a torch without CUDA or no CUDA toolkit), and not even then when
``SYMATO_REQUIRE_KERNELS`` names the kernel's target (``make test``, hence CI, sets
``SYMATO_REQUIRE_KERNELS=cpu``: the C++ kernel is required there). A missing GPU is a
separate, plain skip (``needs_cuda`` in the test files).
"""

from __future__ import annotations

import os
from types import ModuleType

import pytest

from symato.models.ops.extension import load_extension, toolchain_missing

REQUIRE_ENV = "SYMATO_REQUIRE_KERNELS"


def required(target: str) -> bool:
    """Whether ``$SYMATO_REQUIRE_KERNELS`` (comma-separated targets, or ``all``) demands
    ``target``; ``cuda-emulated`` is a C++ build, required with ``cpu``."""
    wanted = {w.strip() for w in os.environ.get(REQUIRE_ENV, "").split(",") if w.strip()}
    base = "cpu" if target == "cuda-emulated" else target
    return "all" in wanted or base in wanted


def require_toolchain(target: str) -> None:
    """Skip when the toolchain to build ``target`` is absent, or fail when it is required."""
    reason = toolchain_missing(target)
    if reason is not None:
        if required(target):
            pytest.fail(f"{REQUIRE_ENV} requires the {target} kernel, but {reason}")
        pytest.skip(f"the {target} kernel's toolchain is absent: {reason}")


def require_kernel(target: str, family: str = "wkv4") -> ModuleType:
    """The built ``target`` extension of ``family``: skips when its toolchain is absent
    (fails instead when required), fails when a present toolchain cannot build it."""
    require_toolchain(target)
    return load_extension(target, family=family)  # a failed build raises: the test fails
