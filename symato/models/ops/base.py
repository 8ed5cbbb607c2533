"""The declared shape of a compiled operator, and what every operator does the same way.

Why a class: the WKV-4 and WKV-7 operators used to mirror each other function for
function (resolving the backend, recording the one that ran, loading and checking the
extension, the checkpoint interval of the CUDA kernels) under an interface nothing
declared, and the copies drifted. :class:`Operator` holds those parts once; an operator
module (``wkv4.py``, ``wkv7.py``) keeps only what is its own: the math (its PyTorch
reference and entry function), its input checks and its custom-op pair, whose argument
lists differ. It creates one instance, ``OPERATOR``, that the table
``symato.models.ops.OPERATORS`` names and the extension loader and the architecture
registry reach (``symato.models.ops.operator(name)``).

What an operator declares (the constructor's arguments): its name, which is also its
kernel family and the prefix of its kernel files (``kernels/<name>_cpu.cpp``, ...); how
often its CUDA kernels keep a state for the backward (checked against the built
extension, so the fake implementation's shapes cannot drift from the kernel's); and the
constants its kernel sources take from Python as ``-D`` defines, so each is written once.
Its compiled extension provides ``forward`` and ``backward`` and, on the CUDA targets,
``checkpoint_interval()``.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from types import ModuleType

import torch

from symato.errors import SymatoError
from symato.models.ops import extension

__all__ = ["Operator", "has_checkpoints"]


def has_checkpoints(target: str) -> bool:
    """Whether a kernel target keeps states for the backward: ``cuda`` and
    ``cuda-emulated`` (the CUDA source compiled for the CPU, which tests run) do, to
    bound the GPU's memory; ``cpu`` recomputes from the input state instead."""
    return target.startswith("cuda")


class Operator:
    """One compiled operator: the parts every operator shares, written once.

    ``name`` is the kernel family (``symato.models.ops.extension.FAMILIES``),
    ``ckpt_interval`` the steps between the states the CUDA kernels keep (its kernel
    source's must equal it), ``defines`` the ``-D`` flags every build of its kernels
    gets, and ``module`` the module that defines it (its file is named in error messages).
    """

    def __init__(self, name: str, module: str, ckpt_interval: int,
                 defines: Sequence[str] = ()) -> None:
        self.name = name
        self.module = module
        self.ckpt_interval = ckpt_interval
        self.defines = tuple(defines)
        self._last_used = ["none"]  # a list: written inside traced code

    def __repr__(self) -> str:
        return f"Operator({self.name!r}, ckpt_interval={self.ckpt_interval})"

    # ------------------------------------------------------------------ building
    def compile_defines(self) -> list[str]:
        """The ``-D`` flags every build of this operator's kernels gets: constants the
        kernel sources take from Python, so each is written once."""
        return list(self.defines)

    def load(self, target: str, verbose: bool = False) -> ModuleType:
        """Build (or load from its folder) the ``cpu``, ``cuda`` or ``cuda-emulated``
        extension; a failed build raises ``KernelBuildError`` with cause and fix."""
        return extension.load_extension(target, verbose, family=self.name)

    def check_extension(self, target: str, mod: ModuleType) -> None:
        """Run once after loading (a failure counts as a failed build): the op's fake
        implementation predicts the checkpoint shape from ``ckpt_interval``, so the
        kernel must keep its states at the same interval."""
        if not has_checkpoints(target):
            return
        got = mod.checkpoint_interval()
        if got != self.ckpt_interval:
            raise SymatoError(
                f"{self.name}: the {target} kernels keep a state every {got} steps, "
                f"{self.module.replace('.', '/')}.py expects {self.ckpt_interval}: update "
                "its CKPT_INTERVAL (or the kernel's) so the two agree")

    def checkpoints(self, target: str, save: bool, steps: int) -> int:
        """How many states a forward over ``steps`` time steps keeps for the backward:
        0 unless a gradient is wanted (``save``) and the target keeps checkpoints."""
        if not (save and has_checkpoints(target)):
            return 0
        return (steps + self.ckpt_interval - 1) // self.ckpt_interval

    # ------------------------------------------------------------------ policy
    def resolve_backend(self, backend: str, device: torch.device, dtype: torch.dtype) -> str:
        """The backend that will run for ``backend`` on tensors of this device and dtype.

        The policy of every operator (``symato.models.ops.extension.resolve_backend``):
        ``auto`` = the compiled kernel of the device, built now if needed; a kernel that
        cannot be built is a ``KernelBuildError`` naming cause and fix, never a silent
        fall back to the slow loop; so is an input dtype the kernel has no math for
        (float16; float64 on CUDA), which runs only as ``torch``, by name.
        """
        return extension.resolve_backend(self.name, backend, device, dtype)

    def traced_resolver(self) -> Callable[[str, torch.device, torch.dtype], str]:
        """``resolve_backend`` for code torch.compile traces: run once while tracing (it
        may build an extension, under a lock) and kept in the graph as a constant, so
        resolving is no graph break; the compiled graph is guarded on device and dtype.
        Each operator module keeps the result as its module-level ``_resolve_traced``."""

        def _resolve_traced(backend: str, device: torch.device, dtype: torch.dtype) -> str:
            return self.resolve_backend(backend, device, dtype)

        return extension.constant_under_compile(_resolve_traced)

    def available_backends(self) -> list[str]:
        """Backends usable in this process (builds the extensions if needed)."""
        out = ["torch"]
        for target in extension.DEVICE_TARGETS:
            if target == "cuda" and not torch.cuda.is_available():
                continue
            try:
                self.load(target)
                out.append(target)
            except extension.KernelBuildError:
                pass
        return out

    def record(self, backend: str) -> None:
        """Note the backend a call is about to run (read by :meth:`last_backend_used`)."""
        self._last_used[0] = backend

    def last_backend_used(self) -> str:
        """Name of the backend the most recent call ran ("none" before any call)."""
        return self._last_used[0]

    # ------------------------------------------------------------------ running
    def custom_op_or_kernel(self, custom_op: Callable, kernel: Callable,
                            tensors: Sequence[torch.Tensor]) -> tuple[Callable, bool]:
        """(what to call, ``save``) for a compiled target: the custom op when a gradient
        is wanted (``save``: autograd needs its backward) or torch.compile is tracing,
        else the kernel function itself, since the custom op's dispatch would import
        torch._dynamo (~2 s in every evaluation and generation process) and adds nothing
        without autograd or a graph to trace."""
        save = torch.is_grad_enabled() and any(t.requires_grad for t in tensors)
        op = custom_op if save or torch.compiler.is_compiling() else kernel
        return op, save
