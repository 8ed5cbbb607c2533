"""Building the compiled operators: one loader, one backend policy, one build per workflow.

Why a module of its own: both WKV operators (``symato.models.ops.wkv4`` for RWKV-4,
``wkv7`` for RWKV-7) compile their kernels from ``kernels/`` with
``torch.utils.cpp_extension``, and both must behave the same way when that goes wrong:

* **No silent slow path.** ``auto`` takes the compiled kernel of the tensors' device; a
  kernel that cannot be built is a :class:`KernelBuildError` naming the cause (the
  compiler's first error lines, the compiler, torch's CUDA version, ``CUDA_HOME``) and
  the fix. The pure-PyTorch loop (100x slower) runs only when asked for by name,
  ``backend="torch"`` (:func:`resolve_backend`).
* **Keyed builds.** Each family (one operator's kernels) and target (``cpu``, ``cuda``,
  ``cuda-emulated``) builds into ``$SYMATO_BUILD_DIR/<family>/<target>-<hash>`` (default
  ``~/.cache/symato``). The hash covers the sources, the flags (Python-side constants
  passed as ``-D`` defines included), torch and its CUDA version, the compiler (its name
  and the first line of its ``--version``), for ``cpu`` the CPU (that C++ uses
  ``-march=native``; the CUDA targets do not, so GPU nodes with different CPUs share a
  build) and, for ``cuda``, the target architecture and nvcc's release line, so an edited
  kernel rebuilds and no binary reaches a machine it was not built for. It also covers
  everything else in the build's command lines (:func:`command_facts`: torch's include
  and library paths, Python's headers, the compiler's path and ccache wrapper, the
  sources' folder), so two environments sharing the folder never rebuild each other's.
  A finished folder (``build.done``) is only imported, never handed to ninja again.
* **Killed builds leave nothing behind.** torch guards a build with a lock *file*
  (``lock``) that exists until the builder removes it; a builder killed by SIGKILL (out
  of memory, node failure, preemption) leaves it behind and every later build waits on
  it forever. So each build first takes an OS lock (``fcntl.flock`` on ``build.flock``
  in the build folder), which the kernel releases when its holders die; whoever holds it
  knows any ``lock`` file is stale and removes it, with what the unfinished build left.
  The compile itself runs in a guarded process of its own session that dies with the
  loading process and then kills ninja and every compiler (which ninja starts in
  process groups of their own, out of reach of a signal to the job's group).
* **One build per workflow.** ``symato build --device cpu|cuda`` (``build.py``) builds
  every family for one device type before the training jobs (rule ``build_kernels``);
  the jobs then only load what is there.

Kernel sources are looked up in ``$SYMATO_KERNELS_DIR``, else ``symato/kernels/`` of an
installed wheel (pyproject.toml maps the repository's ``kernels/`` folder there), else
the ``kernels/`` folder beside the package in a checkout.
"""

from __future__ import annotations

import contextlib
import ctypes
import fcntl
import functools
import hashlib
import importlib.util
import json
import os
import platform
import shutil
import signal
import subprocess
import sys
import sysconfig
import threading
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from types import MappingProxyType, ModuleType
from typing import Any, TypeVar

import torch

from symato.errors import SymatoError
from symato.models.ops import OPERATORS, operator

F = TypeVar("F", bound=Any)

__all__ = [
    "BACKENDS",
    "DEVICE_TARGETS",
    "FAMILIES",
    "KERNEL_DTYPES",
    "Family",
    "KernelBuildError",
    "build_dir",
    "build_lock",
    "command_facts",
    "compiler",
    "compiler_version",
    "cpu_fingerprint",
    "cuda_home",
    "cuda_target",
    "explain_build_failure",
    "kernels_dir",
    "load_extension",
    "nvcc_version",
    "resolve_backend",
    "toolchain_missing",
]

BACKENDS = ("auto", "cuda", "cpu", "torch")
DEVICE_TARGETS = ("cpu", "cuda")  # the targets a device type runs (the others are for tests)
LOCK_FILE = "build.flock"  # the OS lock; torch's own lock file is "lock"
DONE_FILE = "build.done"  # written after a finished build: its library's name
ERROR_FILE = "build.error"  # a failed guarded build's message, for the loading process
_PR_SET_PDEATHSIG = 1  # prctl option (linux/prctl.h)

_CPU_FLAGS = ["-O3", "-fopenmp", "-march=native"]  # C++ standard: torch picks it
_CPU_LDFLAGS = ["-fopenmp"]
_CUDA_FLAGS = ["-O3", "-lineinfo"]  # no fast-math: accurate expf and division
_FLOAT_KERNELS = (torch.float32, torch.bfloat16)


class KernelBuildError(SymatoError, RuntimeError):
    """A compiled kernel that cannot be built or loaded; the message says cause and fix."""


@dataclass(frozen=True)
class Family:
    """One operator's compiled kernels.

    ``name`` is its operator's (``symato.models.ops.OPERATORS``), whose
    :class:`~symato.models.ops.base.Operator` gives the build its ``compile_defines()``
    (constants the kernel sources take from Python as ``-D`` flags, so each is written
    once) and checks each loaded extension (``check_extension(target, module)``, a failure
    counts as a failed build). ``targets`` maps each target to (sources compiled, other
    files the build reads); ``dtypes`` are the input dtypes each compiled target computes.
    """

    name: str
    targets: Mapping[str, tuple[tuple[str, ...], tuple[str, ...]]]
    dtypes: Mapping[str, tuple[torch.dtype, ...]]


# The input dtypes each compiled target computes (the same for every family).
KERNEL_DTYPES: Mapping[str, tuple[torch.dtype, ...]] = MappingProxyType(
    {"cpu": (*_FLOAT_KERNELS, torch.float64), "cuda": _FLOAT_KERNELS})


def _wkv_family(prefix: str) -> Family:
    """A WKV family: its kernels are ``<prefix>_cpu.cpp``, ``<prefix>_cuda.cu`` with its
    binding ``<prefix>_cuda_bind.cpp``, and ``<prefix>_cuda_emulate.cpp`` (the CUDA
    kernels compiled for the CPU, for tests), all laid out alike."""
    cu = f"{prefix}_cuda.cu"
    return Family(prefix,
                  {"cpu": ((f"{prefix}_cpu.cpp",), ()),
                   "cuda": ((f"{prefix}_cuda_bind.cpp", cu), ()),
                   "cuda-emulated": ((f"{prefix}_cuda_emulate.cpp",),
                                     (cu, "wkv_host_emulation.h"))},
                  KERNEL_DTYPES)


# One family per operator of the table, its kernel files named after it.
FAMILIES: dict[str, Family] = {name: _wkv_family(name) for name in OPERATORS}

_lock = threading.Lock()
_extensions: dict[tuple[str, str], ModuleType | None] = {}
_build_errors: dict[tuple[str, str], str] = {}


# ----------------------------------------------------------------------------- facts
def _family(family: str) -> Family:
    if family not in FAMILIES:
        raise SymatoError(f"no kernel family named {family!r}; known: {list(FAMILIES)}")
    return FAMILIES[family]


def kernels_dir(family: str = "wkv4") -> Path:
    """Where the kernel sources live: ``$SYMATO_KERNELS_DIR``, else ``symato/kernels/``
    of an installed wheel, else the checkout's top-level ``kernels/`` beside the package.

    Why paths and not ``importlib.resources``: ``kernels/`` holds no ``__init__.py`` on
    purpose. A checkout's root on ``sys.path`` (a notebook or ``python -m`` there) would
    otherwise make the folder the top-level module ``kernels`` and hide the PyPI
    package of that name, which ``transformers`` imports (tests/test_wheel.py).
    """
    import symato

    env = os.environ.get("SYMATO_KERNELS_DIR")
    candidates = [Path(env)] if env else []
    package = Path(symato.__file__).resolve().parent
    candidates += [package / "kernels", package.parent / "kernels"]
    marker = _family(family).targets["cpu"][0][0]
    for cand in candidates:
        if (cand / marker).is_file():
            return cand
    raise SymatoError(
        f"{family}: kernel sources not found; looked in "
        + ", ".join(str(c) for c in candidates)
        + " (a symato install without its kernels: reinstall it with `pip install .`)"
    )


def compiler() -> str:
    """The C++ compiler torch's extension builder runs: ``$CXX``, else ``c++``."""
    return os.environ.get("CXX", "c++")


def _output(cmd: tuple[str, ...]) -> str | None:
    """A version command's output (stdout, else stderr), None when it fails or does not run."""
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=60)
    except (OSError, subprocess.TimeoutExpired):
        return None
    return (proc.stdout or proc.stderr) if proc.returncode == 0 else None


def first_line(cmd: tuple[str, ...]) -> str | None:
    """The first output line of a version command, or None when it does not run."""
    lines = (_output(cmd) or "").strip().splitlines()
    return lines[0] if lines else None


@functools.cache
def _version_of(cxx: str) -> str | None:
    return first_line((cxx, "--version"))


def compiler_version() -> str | None:
    """The first line of ``compiler() --version`` (None when it does not run): which
    compiler, not only its name, goes into the build key. Run once per compiler per
    process, since every kernel load computes the key."""
    return _version_of(compiler())


@functools.cache
def _nvcc_release(home: str) -> str | None:
    text = _output((str(Path(home) / "bin" / "nvcc"), "--version")) or ""
    return next((ln.strip() for ln in text.splitlines() if "release" in ln), None)


def nvcc_version() -> str | None:
    """nvcc's "release" line under ``cuda_home()`` (e.g. "Cuda compilation tools, release
    12.8, V12.8.93"), None without a toolkit; once per toolkit per process."""
    home = cuda_home()
    return None if home is None else _nvcc_release(str(home))


def cpu_fingerprint() -> str:
    """CPU model + flags: -march=native binaries must not travel between machines."""
    try:
        text = Path("/proc/cpuinfo").read_text()
        keep = [ln for ln in text.splitlines() if ln.startswith(("model name", "flags"))][:2]
        return "\n".join(keep)
    except OSError:
        return platform.processor()


def cuda_home() -> str | None:
    """The CUDA toolkit torch's extension builder uses (``CUDA_HOME``, nvcc on PATH, ...)."""
    from torch.utils.cpp_extension import CUDA_HOME

    return CUDA_HOME


def toolchain_missing(target: str) -> str | None:
    """Why the tools to build ``target`` are absent here, or None when they are present.

    "Absent" means not installed at all (no compiler on PATH, no ninja, no CUDA toolkit
    or a torch without CUDA): only then may a test skip a kernel. A compiler that is
    there but fails is a broken build, not an absent toolchain.
    """
    from torch.utils.cpp_extension import is_ninja_available

    if shutil.which(compiler()) is None:
        return f"no C++ compiler {compiler()!r} on PATH"
    if not is_ninja_available():
        return "ninja not found"
    if target == "cuda":
        if torch.version.cuda is None:
            return f"torch {torch.__version__} has no CUDA"
        if cuda_home() is None:
            return "no CUDA toolkit (nvcc / CUDA_HOME) found"
    return None


def cuda_target() -> str:
    """The CUDA architecture a ``cuda`` build compiles for: ``$SYMATO_CUDA_ARCH``, else
    ``$TORCH_CUDA_ARCH_LIST``, else the visible GPU's compute capability (``gpu9.0``)."""
    arch = os.environ.get("SYMATO_CUDA_ARCH") or os.environ.get("TORCH_CUDA_ARCH_LIST", "")
    if not arch and torch.cuda.is_available():
        arch = "gpu{}.{}".format(*torch.cuda.get_device_capability())
    return arch


def _flags(family: str, target: str) -> tuple[list[str], list[str]]:
    """(C++ flags, nvcc flags) of one build, the operator's defines included."""
    defines = operator(_family(family).name).compile_defines()
    if target == "cpu":
        return [*_CPU_FLAGS, *defines], []
    if target == "cuda-emulated":
        return ["-O1", *defines], []
    return ["-O3", *defines], [*_CUDA_FLAGS, *defines]


def _compiler_wrapper() -> str:
    """The wrapper torch puts before the compiler in the build command (ccache or
    sccache found on PATH, unless ``$TORCH_NO_COMPILER_WRAPPER``), "" for none."""
    if os.environ.get("TORCH_NO_COMPILER_WRAPPER"):
        return ""
    return next((w for w in map(shutil.which, ("ccache", "sccache")) if w), "")


def command_facts(target: str) -> list[str]:
    """What torch writes into a ``target`` build's commands besides our sources and flags.

    Why in the key: two environments sharing ``$SYMATO_BUILD_DIR`` with the same torch
    version (two venvs, two checkouts) wrote different commands into one folder (torch's
    include and library paths, Python's headers, the compiler found on PATH and its
    ccache wrapper), and ninja rebuilt it each time the other one had built. With these
    facts (and the sources' folder) in the key, each command has a folder of its own.
    For ``cuda`` also the CUDA paths and the variables torch puts into nvcc's command.
    """
    from torch.utils.cpp_extension import include_paths, library_paths

    device = "cuda" if target == "cuda" else "cpu"
    try:
        paths = [*include_paths(device), *library_paths(device)]
    except (OSError, RuntimeError):  # no CUDA toolkit: the build fails and says so
        paths = [*include_paths("cpu"), *library_paths("cpu"), f"CUDA_HOME={cuda_home()}"]
    facts = [*paths, str(sysconfig.get_path("include", scheme="posix_prefix")),
             str(shutil.which(compiler())), _compiler_wrapper()]
    if target == "cuda":
        facts += [f"{var}={os.environ.get(var, '')}" for var in
                  ("CC", "PYTORCH_NVCC", "TORCH_EXTENSION_SKIP_NVCC_GEN_DEPENDENCIES")]
    return facts


def build_dir(family: str, target: str) -> tuple[Path, str]:
    """(folder, hash) of one build: ``$SYMATO_BUILD_DIR/<family>/<target>-<hash>``."""
    fam = _family(family)
    if target not in fam.targets:
        raise SymatoError(f"{family}: no compiled backend named {target!r}")
    d = kernels_dir(family)
    sources, extra = fam.targets[target]
    h = hashlib.sha256()
    for name in (*sources, *extra):
        h.update(name.encode())
        h.update((d / name).read_bytes())
    cflags, cuda_flags = _flags(family, target)
    facts = [*cflags, *cuda_flags, torch.__version__, str(torch.version.cuda), compiler(),
             str(compiler_version()), str(d.resolve()), *command_facts(target)]
    if target == "cpu":  # -march=native: the binary fits this CPU only
        facts.append(cpu_fingerprint())
    if target == "cuda":
        facts += [cuda_target(), str(cuda_home()), str(nvcc_version())]
    h.update("\n".join(facts).encode())
    digest = h.hexdigest()[:16]
    root = os.environ.get("SYMATO_BUILD_DIR")
    base = Path(root) if root else Path.home() / ".cache" / "symato"
    return base / family / f"{target}-{digest}", digest


# ----------------------------------------------------------------------------- building
@contextlib.contextmanager
def build_lock(folder: Path) -> Iterator[int]:
    """Hold the OS lock of one build folder (yields its file descriptor); remove a stale
    torch lock file under it.

    ``fcntl.flock`` is released by the kernel when the last descriptor of its open file
    goes, SIGKILL included, so a killed build never blocks a later one. It is not
    unlocked explicitly: :func:`_build` hands the descriptor to its guarded build process,
    and the lock must last while that process lives, even after its parent died. Every
    symato build of ``folder`` holds this lock, so a torch ``lock`` file seen while
    holding it was left by a builder that died.
    """
    folder.mkdir(parents=True, exist_ok=True)
    with open(folder / LOCK_FILE, "a+b") as fh:
        fcntl.flock(fh.fileno(), fcntl.LOCK_EX)
        baton = folder / "lock"
        if baton.exists():
            baton.unlink(missing_ok=True)
            print(f"symato: removed a stale build lock {baton} (a build was killed)",
                  file=sys.stderr)
        yield fh.fileno()


def load_extension(target: str, verbose: bool = False, family: str = "wkv4") -> ModuleType:
    """Build (or load from its folder) the ``target`` extension of ``family`` (``wkv4``:
    RWKV-4, ``wkv7``: RWKV-7); a failure raises :class:`KernelBuildError` with its cause
    and fix.

    ``cuda-emulated`` builds the CUDA kernels' source for the CPU (one OS thread per CUDA
    thread; kernels/wkv_host_emulation.h) so tests can run them where there is no GPU.
    One build per process: later calls return the cached module (or re-raise the cached
    failure), so a test suite pays for the compile once.
    """
    key = (family, target)
    if target not in _family(family).targets:  # a wrong name is bad input, not a failed build
        raise SymatoError(f"{family}: no compiled backend named {target!r}")
    with _lock:
        if key in _extensions:
            mod = _extensions[key]
            if mod is None:
                raise KernelBuildError(_build_errors[key])
            return mod
        try:  # build_dir reads the sources: missing ones are a failed build too
            folder, digest = build_dir(family, target)
            mod = _build(family, target, folder, digest, verbose)
            operator(family).check_extension(target, mod)
        except Exception as exc:  # compiler missing, nvcc error, a failed check, ...
            _extensions[key] = None
            _build_errors[key] = explain_build_failure(family, target, exc)
            raise KernelBuildError(_build_errors[key]) from exc
        _extensions[key] = mod
        return mod


def _load_arguments(family: str, target: str, folder: Path, name: str,
                    verbose: bool) -> dict[str, Any]:
    """The keyword arguments of ``torch.utils.cpp_extension.load`` for one build."""
    sources = [str(kernels_dir(family) / src) for src in FAMILIES[family].targets[target][0]]
    cflags, cuda_flags = _flags(family, target)
    args: dict[str, Any] = {"name": name, "sources": sources, "extra_cflags": cflags,
                            "build_directory": str(folder), "verbose": verbose}
    if target == "cuda":
        return args | {"extra_cuda_cflags": cuda_flags}
    return args | {"extra_ldflags": list(_CPU_LDFLAGS)}


def _set_cuda_arch() -> None:
    """Point torch's ``TORCH_CUDA_ARCH_LIST`` at :func:`cuda_target` (``gpuX.Y``: torch's
    own default, the visible GPU); no target at all is an error naming the fix."""
    target = cuda_target()
    if not target:
        raise SymatoError("no GPU is visible to choose the CUDA architecture for: set "
                          "TORCH_CUDA_ARCH_LIST (e.g. 9.0 for H100/H200) or build where the "
                          "training jobs' GPU is")
    if not target.startswith("gpu"):
        os.environ["TORCH_CUDA_ARCH_LIST"] = target  # the guarded build inherits it


def _build(family: str, target: str, folder: Path, digest: str, verbose: bool) -> ModuleType:
    """Load the library of a complete build of ``folder``, after building it if needed.

    Why this process never runs ninja itself: a folder is complete once (``DONE_FILE``)
    and its key covers everything its build command depends on, so a finished build is
    only imported (an mtime touched by a checkout rebuilds nothing); an incomplete one is
    emptied first, so no object file half-written by a killed compiler is reused; and
    the compile runs in a guarded process (:func:`_run_guarded`) that leaves no compiler
    behind when this process is killed.
    """
    name = f"symato_{family}_{target.replace('-', '_')}_{digest}"
    if target == "cuda":
        _set_cuda_arch()
    with build_lock(folder) as lock_fd:
        if not _complete(folder, name):
            _clear(folder)
            print(f"symato: building {name} in {folder}", file=sys.stderr, flush=True)
            _run_guarded(_load_arguments(family, target, folder, name, verbose), lock_fd)
            (folder / DONE_FILE).write_text(name)
        return _import_library(folder / f"{name}.so")


def _complete(folder: Path, name: str) -> bool:
    """Whether ``folder`` holds the finished library ``name`` (a guarded build succeeded)."""
    try:
        return (folder / DONE_FILE).read_text() == name and (folder / f"{name}.so").is_file()
    except OSError:
        return False


def _clear(folder: Path) -> None:
    """Remove what an unfinished build left in ``folder`` (objects, a library, ninja's
    logs, torch's lock), all but the OS lock file this process holds."""
    for path in folder.iterdir():
        if path.name == LOCK_FILE:
            continue
        if path.is_dir() and not path.is_symlink():
            shutil.rmtree(path)
        else:
            path.unlink(missing_ok=True)


def _import_library(path: Path) -> ModuleType:
    """Import a built extension module from its file, as torch's loader does."""
    spec = importlib.util.spec_from_file_location(path.stem, path)
    if spec is None or spec.loader is None:
        raise SymatoError(f"{path} is not a loadable extension module")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


# ----------------------------------------------------------------------------- guarded builds
_GUARD = ("import sys; sys.path.insert(0, {root!r}); "
          "from symato.models.ops.extension import _guarded_build_main; _guarded_build_main()")


def _run_guarded(load_args: dict[str, Any], lock_fd: int) -> None:
    """Run torch's build (``load(**load_args)``) in a child process of its own session.

    Why: ninja puts every compiler it starts in a process group of its own, so killing
    this process or its group (Snakemake, a shell's Ctrl-C, Slurm's scancel of a step)
    never reached the compilers, and a killed build's compiler kept writing into the
    folder the next build used. The child dies with this process (PR_SET_PDEATHSIG) and,
    dying, kills every process of its session (:func:`_guarded_build_main`); it holds the
    folder's OS lock (``lock_fd``, the same open file) until then. A failure raises
    RuntimeError with torch's message (the compiler's output).
    """
    folder = Path(load_args["build_directory"])
    error = folder / ERROR_FILE
    root = str(Path(__file__).resolve().parents[3])  # the folder holding the package
    code = _GUARD.format(root=root)
    args = json.dumps({**load_args, "parent": os.getpid()})
    sys.stdout.flush()
    sys.stderr.flush()
    proc = subprocess.Popen([sys.executable, "-c", code, args], start_new_session=True,
                            pass_fds=(lock_fd,))
    try:
        returncode = proc.wait()
    except BaseException:  # KeyboardInterrupt: the child cleans up on SIGTERM
        proc.terminate()
        with contextlib.suppress(subprocess.TimeoutExpired):
            proc.wait(timeout=30)
        raise
    if returncode != 0:
        text = error.read_text() if error.is_file() else ""
        raise RuntimeError(text or f"the build process exited with status {returncode}")


def _guarded_build_main() -> None:
    """The guarded build process: ``load(**json.loads(argv[1]))``, dying with its parent.

    On SIGTERM, SIGINT, SIGHUP or its parent's death it kills every other process of its
    session (ninja and the compilers, whatever their process group) and exits; it leaves
    torch's ``lock`` and the unfinished outputs to the next build, which removes them
    under the OS lock. A failed build writes torch's message to ``ERROR_FILE``, exit 1.
    """
    args = json.loads(sys.argv[1])
    for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
        signal.signal(sig, _abort)
    _die_with_parent()
    if os.getppid() != args.pop("parent"):  # the parent died before prctl
        _abort(signal.SIGTERM, None)
    from torch.utils.cpp_extension import load

    try:
        load(**args)
    except Exception as exc:
        (Path(args["build_directory"]) / ERROR_FILE).write_text(str(exc) or repr(exc))
        sys.exit(1)


def _die_with_parent() -> None:
    """Ask Linux to send this process SIGTERM when its parent dies (PR_SET_PDEATHSIG);
    elsewhere nothing (a killed parent then leaves its build running to its end)."""
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL(None, use_errno=True).prctl(_PR_SET_PDEATHSIG, int(signal.SIGTERM))


def _abort(signum: int, frame: object) -> None:
    """Signal handler of the guarded build: kill its session, exit as killed by ``signum``."""
    _kill_session()
    os._exit(128 + signum)


def _kill_session(timeout: float = 10.0) -> None:
    """SIGKILL every other live process of this session until none is left (or
    ``timeout`` seconds passed): ninja, the shells it starts and the compilers, each in
    a process group of its own but all in this session, since none calls setsid.

    Repeated because ninja may start a compiler between a scan and its own death. Where
    there is no /proc, the process group (ninja) gets SIGTERM and ninja stops its
    compilers itself.
    """
    me = os.getpid()
    if not Path("/proc/self/stat").exists():
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        os.killpg(0, signal.SIGTERM)
        return
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        alive = [pid for pid in _session_members(os.getsid(0)) if pid != me]
        if not alive:
            return
        for pid in alive:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.kill(pid, signal.SIGKILL)
        _reap_children()
        time.sleep(0.01)


def _session_members(sid: int) -> list[int]:
    """The live (not zombie) processes of session ``sid``, from /proc."""
    pids = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            text = stat.read_text()
        except OSError:  # gone meanwhile
            continue
        fields = text[text.rindex(")") + 2 :].split()  # state ppid pgrp session ...
        if fields[0] not in ("Z", "X") and int(fields[3]) == sid:
            pids.append(int(stat.parent.name))
    return pids


def _reap_children() -> None:
    """Collect the exit status of this process's dead children (ninja), so they go."""
    with contextlib.suppress(ChildProcessError):
        while os.waitpid(-1, os.WNOHANG)[0] != 0:
            pass


def _compiler_runs() -> bool:
    """Whether ``compiler() --version`` runs (the build key already asked it)."""
    return compiler_version() is not None


def explain_build_failure(family: str, target: str, exc: BaseException) -> str:
    """A build failure as cause + fix, for an error message a user can act on.

    Why: torch's build error is a wall of compiler output; what a user needs is its first
    error lines and the one thing to change (a compiler, CUDA_HOME, a torch/nvcc version
    match), or the name of the slow backend to ask for instead.
    """
    text = str(exc) or type(exc).__name__
    lines = [ln.strip() for ln in text.splitlines() if ln.strip()]
    errs = [ln for ln in lines if "error" in ln.lower() and "Error building" not in ln]
    head = "\n    ".join((errs or lines)[:6])[:1500]
    cxx = compiler()
    if target == "cuda":
        facts = (f"torch {torch.__version__} (CUDA {torch.version.cuda}), "
                 f"CUDA_HOME={cuda_home()}, arch {cuda_target() or 'none'}")
    else:
        facts = f"torch {torch.__version__}, compiler {shutil.which(cxx) or cxx}"
    fix = _build_fix(family, target, text, exc)
    return (
        f"{family}: the {target} kernel could not be built ({facts}).\n"
        f"  cause: {head}\n"
        f"  fix: {fix}; or ask for the slow pure-PyTorch loop by name: backend='torch' "
        f"(run setting wkv_backend: torch)"
    )


def _build_fix(family: str, target: str, text: str, exc: BaseException) -> str:
    """The one thing to change after a failed build, checked from the most basic cause
    up: the sources, then the tools every target needs (a compiler and ninja), then the
    CUDA toolkit, so a missing tool is never reported as a version mismatch."""
    cxx = compiler()
    if "kernel sources not found" in text:
        return "point $SYMATO_KERNELS_DIR at the repository's kernels/ folder"
    if isinstance(exc, FileNotFoundError):
        return (f"a kernel source is missing ({exc.filename}): point $SYMATO_KERNELS_DIR at "
                "a complete kernels/ folder, or reinstall symato")
    missing = toolchain_missing("cpu")  # the compiler and ninja: every target needs them
    if missing is not None:
        return (f"{missing}: install a C++ compiler with OpenMP and ninja (apt-get install "
                "g++; pip install ninja), or set CXX")
    if not _compiler_runs():
        return (f"the compiler {cxx} does not run (`{cxx} --version` fails): install "
                "g++ >= 9 with OpenMP, or point CXX at a working one")
    if target != "cuda":
        return (f"the sources in {kernels_dir(family)} do not compile with {cxx}: "
                "check $SYMATO_KERNELS_DIR and the compiler (g++ >= 9 with OpenMP)")
    if torch.version.cuda is None:
        return "this torch has no CUDA: install a CUDA build of torch"
    if cuda_home() is None:
        return (f"nvcc not found: install the CUDA toolkit matching torch's CUDA "
                f"{torch.version.cuda} and set CUDA_HOME (e.g. /usr/local/cuda)")
    if "TORCH_CUDA_ARCH_LIST" in text:
        return "set TORCH_CUDA_ARCH_LIST to the GPU's compute capability (e.g. 9.0)"
    return (f"check that nvcc under CUDA_HOME ({nvcc_version()}) has the same major version "
            f"as torch's CUDA {torch.version.cuda} and supports this GPU "
            "(SYMATO_CUDA_ARCH / TORCH_CUDA_ARCH_LIST), and the C++ compiler "
            f"{shutil.which(cxx) or cxx}")


# ----------------------------------------------------------------------------- policy
def resolve_backend(family: str, backend: str, device: torch.device, dtype: torch.dtype) -> str:
    """The backend that runs ``family``'s operator for ``backend`` on tensors of this
    device and dtype; builds (or loads) the kernel it names.

    ``auto`` = the compiled kernel of the device (``cuda`` / ``cpu``); one that cannot be
    built is a :class:`KernelBuildError`, and an input dtype the kernel has no math for
    (float16; float64 on CUDA) a :class:`SymatoError` naming the dtype: never a quiet
    switch to the ~100x slower loop. ``cpu``/``cuda`` by name must fit the tensors;
    ``torch`` always runs.
    """
    fam = _family(family)
    if backend not in BACKENDS:
        raise SymatoError(f"{family}: backend must be one of {BACKENDS}, got {backend!r}")
    if backend == "torch":
        return "torch"
    want = backend
    if backend == "auto":
        if device.type not in DEVICE_TARGETS:
            raise SymatoError(f"{family}: no compiled kernel for {device.type} tensors; ask "
                              "for the pure-PyTorch loop by name: backend='torch'")
        want = device.type
    if device.type != want:
        raise SymatoError(f"{family}: backend {want!r} needs {want.upper()} tensors, got {device}")
    if dtype not in fam.dtypes[want]:
        names = ", ".join(str(d).removeprefix("torch.") for d in fam.dtypes[want])
        asked = "auto (the compiled kernel of the device)" if backend == "auto" else repr(want)
        raise SymatoError(
            f"{family}: backend {asked} takes {names}, not {dtype}; cast the inputs to "
            f"float32 or bfloat16, or ask for the slow pure-PyTorch loop by name: "
            f"backend='torch'")
    load_extension(want, family=family)
    return want


def constant_under_compile(fn: F) -> F:
    """``torch.compiler.assume_constant_result(fn)`` without importing ``torch._dynamo``.

    Why: that decorator imports torch._dynamo (~1-2 s), and every process that loads an
    operator module would pay for it: the evaluation and training jobs of every RWKV run,
    most of which never compile. The decorator only marks the function (PyTorch 2.4 to
    2.14); once torch._dynamo is imported the real decorator is used, and
    tests/test_extension.py checks that both mark a function the same way.
    """
    if "torch._dynamo" in sys.modules:
        return torch.compiler.assume_constant_result(fn)
    fn._dynamo_marked_constant = True  # type: ignore[attr-defined]
    return fn
