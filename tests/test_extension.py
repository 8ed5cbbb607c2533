"""The kernel build machinery (symato/models/ops/extension.py, build.py), through real
builds in fresh build folders: a build killed mid-compile leaves no compiler running and
never blocks the next one, the build folder's key separates what must not share a binary
(two environments sharing the folder never rebuild each other's), and a compiler that
does not work makes `symato build` fail with the cause and the fix.

Why: torch guards a build with a lock *file*; before the OS lock, a job killed while
compiling (out of memory, a node failure, preemption) left it behind and every later job
waited on it forever (issue #12). ninja starts each compiler in a process group of its
own, so a killed workflow left compilers writing into the folder; and one shared folder
was rebuilt 6 times in 45 minutes by two environments whose commands differed (#21).
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from _kernels import require_toolchain

import symato.models.ops.extension as extension
import symato.models.ops.wkv4 as wkv4
from symato.errors import SymatoError
from symato.models.ops.extension import LOCK_FILE, KernelBuildError, build_dir

# Builds and loads the RWKV-7 C++ kernel, then runs it once.
BUILD = """
import torch
from symato.models.ops.extension import load_extension
from symato.models.ops.wkv7 import last_backend_used, wkv7
load_extension("cpu", family="wkv7")
wkv7(*(torch.randn(1, 3, 1, 16) for _ in range(6)), backend="cpu")
assert last_backend_used() == "cpu"
print("loaded and ran")
"""
COMPILERS = {"cc1plus", "clang", "clang++"}


def _build_processes(root: Path) -> dict[int, str]:
    """Live processes of builds into ``root`` (pid: command name), found by the
    ``SYMATO_BUILD_DIR=root`` every one of them inherits: the guarded build process,
    ninja and the compilers, whatever their parent, process group or session."""
    tag = f"SYMATO_BUILD_DIR={root}".encode()
    found: dict[int, str] = {}
    for proc in Path("/proc").glob("[0-9]*"):
        if int(proc.name) == os.getpid():
            continue
        try:
            environ = (proc / "environ").read_bytes().split(b"\0")
            stat = (proc / "stat").read_text()
        except OSError:  # gone meanwhile, or not ours
            continue
        if tag in environ and stat[stat.rindex(")") + 2] not in "ZX":
            found[int(proc.name)] = stat[stat.index("(") + 1 : stat.rindex(")")]
    return found


def _interactive_signals() -> None:
    """SIGINT as in a terminal: a test run started in the background (``cmd &``, as CI
    may be) inherits SIGINT ignored, and Python then never turns it into
    KeyboardInterrupt, so a Ctrl-C could not be emulated."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def _start_build_and_wait_for_the_compiler(env: dict[str, str], baton: Path) -> subprocess.Popen:
    """Start BUILD as the leader of a session (so that its process group can be killed as
    a workflow's job is) and return once a compiler of its build runs."""
    root = Path(env["SYMATO_BUILD_DIR"])
    proc = subprocess.Popen([sys.executable, "-c", BUILD], env=env, start_new_session=True,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                            preexec_fn=_interactive_signals)
    deadline = time.monotonic() + 300
    while not (baton.exists() and COMPILERS & set(_build_processes(root).values())):
        assert proc.poll() is None, proc.stderr.read().decode() if proc.stderr else ""
        assert time.monotonic() < deadline, "the build never reached the compiler"
        time.sleep(0.05)
    return proc


def _survivors(root: Path, seconds: float = 5.0) -> dict[int, str]:
    """The build processes still alive after ``seconds`` (none, once they all end)."""
    deadline = time.monotonic() + seconds
    while (left := _build_processes(root)) and time.monotonic() < deadline:
        time.sleep(0.05)
    return left


# How a workflow's build gets killed: Snakemake or Slurm stopping a job (SIGTERM to its
# process group), Ctrl-C in a terminal (SIGINT to the foreground group), the OOM killer
# (SIGKILL to the biggest process), a job's cgroup or a node going down (SIGKILL to all).
KILLS: dict[str, tuple[bool, signal.Signals]] = {
    "SIGTERM to its process group": (True, signal.SIGTERM),
    "SIGINT to its process group": (True, signal.SIGINT),
    "SIGKILL to the builder alone": (False, signal.SIGKILL),
    "SIGKILL to its process group": (True, signal.SIGKILL),
}


@pytest.mark.slow  # four builds killed mid-compile, one whole C++ build: about a minute
def test_killed_builds_leave_no_compiler_and_no_lock(tmp_path, monkeypatch):
    """However a build is killed mid-compile, within seconds no compiler, ninja or build
    process of it runs (ninja starts each compiler in a process group of its own, out of
    reach of a signal to the job's group), and the next build of the same folder starts
    at once and completes, though torch's lock file and half-built outputs are left."""
    require_toolchain("cpu")
    root = tmp_path / "build"
    monkeypatch.setenv("SYMATO_BUILD_DIR", str(root))
    folder, _ = build_dir("wkv7", "cpu")
    baton = folder / "lock"
    env = {**os.environ, "SYMATO_BUILD_DIR": str(root)}
    for how, (group, sig) in KILLS.items():
        first = _start_build_and_wait_for_the_compiler(env, baton)  # the last kill's lock
        (os.killpg if group else os.kill)(first.pid, sig)          # blocks nothing
        first.wait(timeout=60)
        assert first.returncode != 0, how
        assert not _survivors(root), f"{how}: still running {_build_processes(root)}"
        assert baton.exists()  # torch's lock file, left behind: it used to block forever
        assert not list(folder.glob("*.so")), f"{how}: the kill came after the build"

    second = subprocess.run([sys.executable, "-c", BUILD], env=env, capture_output=True,
                            text=True, timeout=900)  # waiting on the stale lock: timeout
    assert second.returncode == 0, second.stderr[-3000:]
    assert "loaded and ran" in second.stdout
    assert f"removed a stale build lock {baton}" in second.stderr
    assert not baton.exists() and (folder / LOCK_FILE).exists()
    assert list(folder.glob("*.so")) and not _build_processes(root)


# A stand-in kernel source: a bare Python module named as torch names the extension,
# built in a second where the real kernels take a minute; it tests the build machinery.
STAND_IN = r"""
#include <Python.h>
#define CAT2(a, b) a##b
#define CAT(a, b) CAT2(a, b)
#define STR2(a) #a
#define STR(a) STR2(a)
static struct PyModuleDef def = {PyModuleDef_HEAD_INIT, STR(TORCH_EXTENSION_NAME), nullptr, -1,
                                 nullptr};
PyMODINIT_FUNC CAT(PyInit_, TORCH_EXTENSION_NAME)(void) { return PyModule_Create(&def); }
"""
# Builds (or loads) the family wkv4's cpu library without running the operator's check.
BUILD_ONLY = """
from symato.models.ops import extension
folder, digest = extension.build_dir("wkv4", "cpu")
print(extension._build("wkv4", "cpu", folder, digest, False).__file__)
"""


def _second_environment(path: Path) -> Path:
    """The Python of a second virtual environment with this one's packages, whose torch
    is this torch seen at another path (a link): the same torch version, other include
    and library paths in the build command, as in a second venv or checkout."""
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(path)], check=True,
                   timeout=120)
    here = Path(torch.__file__).parents[1]  # this environment's site-packages
    site = path / "lib" / f"python{sys.version_info[0]}.{sys.version_info[1]}" / "site-packages"
    (site / "torch").symlink_to(here / "torch")
    (site / "shared.pth").write_text(f"import site; site.addsitedir({str(here)!r})\n")
    return path / "bin" / "python"


def test_two_environments_sharing_a_build_folder_never_rebuild_each_other(tmp_path):
    """Two environments whose build commands differ build into folders of their own, and
    each reuses its own build: the shared folder used to be rebuilt by each in turn."""
    require_toolchain("cpu")
    kernels = tmp_path / "kernels"
    kernels.mkdir()
    (kernels / "wkv4_cpu.cpp").write_text(STAND_IN)
    env = {**os.environ, "SYMATO_BUILD_DIR": str(tmp_path / "build"),
           "SYMATO_KERNELS_DIR": str(kernels)}
    other = _second_environment(tmp_path / "venv")

    def build(python: Path | str) -> tuple[Path, bool]:
        proc = subprocess.run([str(python), "-c", BUILD_ONLY], env=env, capture_output=True,
                              text=True, timeout=600)
        assert proc.returncode == 0, proc.stderr[-3000:]
        return Path(proc.stdout.strip()), "symato: building" in proc.stderr

    mine, built = build(sys.executable)
    assert built
    theirs, built = build(other)
    assert built and theirs.parent != mine.parent
    assert str(tmp_path / "venv") in (theirs.parent / "build.ninja").read_text()
    assert str(tmp_path / "venv") not in (mine.parent / "build.ninja").read_text()
    stamps = {lib: lib.stat().st_mtime_ns for lib in (mine, theirs)}
    for python, lib in ((sys.executable, mine), (other, theirs)):
        again, built = build(python)
        assert again == lib and not built, f"{python} rebuilt {lib}"
    assert {lib: lib.stat().st_mtime_ns for lib in stamps} == stamps


def test_build_folder_key(monkeypatch, tmp_path):
    """Another compiler or CUDA architecture is another folder; the same facts, the same."""
    monkeypatch.setenv("SYMATO_BUILD_DIR", str(tmp_path))
    monkeypatch.delenv("CXX", raising=False)
    cpu, digest = build_dir("wkv4", "cpu")
    assert cpu == tmp_path / "wkv4" / f"cpu-{digest}" and build_dir("wkv4", "cpu")[0] == cpu
    assert build_dir("wkv7", "cpu")[0].parent == tmp_path / "wkv7"
    monkeypatch.setenv("CXX", "clang++")
    assert build_dir("wkv4", "cpu")[0] != cpu
    monkeypatch.setenv("SYMATO_CUDA_ARCH", "9.0")
    hopper = build_dir("wkv4", "cuda")[0]
    monkeypatch.setenv("SYMATO_CUDA_ARCH", "8.0")
    assert build_dir("wkv4", "cuda")[0] != hopper


def test_build_key_keys_the_cpu_only_where_the_binary_depends_on_it(monkeypatch, tmp_path):
    """-march=native makes only the cpu binary CPU-specific: GPU nodes whose CPUs differ
    share the cuda build; the compiler's and nvcc's versions, not only names, are keyed."""
    monkeypatch.setenv("SYMATO_BUILD_DIR", str(tmp_path))
    monkeypatch.setenv("SYMATO_CUDA_ARCH", "9.0")
    monkeypatch.setattr(extension, "cuda_home", lambda: "/usr/local/cuda")
    monkeypatch.setattr(extension, "nvcc_version", lambda: "release 12.8")
    before = {kind: build_dir("wkv4", kind)[0] for kind in ("cpu", "cuda", "cuda-emulated")}
    monkeypatch.setattr(extension, "cpu_fingerprint", lambda: "another CPU")
    after = {kind: build_dir("wkv4", kind)[0] for kind in before}
    assert after["cpu"] != before["cpu"]
    assert after["cuda"] == before["cuda"] and after["cuda-emulated"] == before["cuda-emulated"]
    monkeypatch.setattr(extension, "nvcc_version", lambda: "release 12.9")
    assert build_dir("wkv4", "cuda")[0] != after["cuda"]
    monkeypatch.setattr(extension, "compiler_version", lambda: "g++ (GCC) 99.1")
    assert build_dir("wkv4", "cpu")[0] != after["cpu"]


def test_compiler_version_runs_once_per_compiler(monkeypatch):
    calls: list[tuple[str, ...]] = []
    monkeypatch.setattr(extension, "first_line", lambda cmd: calls.append(cmd) or "v1")
    extension._version_of.cache_clear()
    monkeypatch.setenv("CXX", "some-c++")
    assert extension.compiler_version() == extension.compiler_version() == "v1"
    assert calls == [("some-c++", "--version")]
    extension._version_of.cache_clear()


def _cuda_toolkit_present(monkeypatch) -> None:
    """Pretend torch has CUDA and a toolkit is installed, so only the tools differ."""
    monkeypatch.setattr(extension.torch.version, "cuda", "12.8")
    monkeypatch.setattr(extension, "cuda_home", lambda: "/usr/local/cuda")
    monkeypatch.setattr(extension, "nvcc_version", lambda: "release 12.8")


def test_a_missing_tool_is_named_for_a_cuda_build_too(monkeypatch):
    """A GPU machine without ninja or a C++ compiler must be told so, not to compare nvcc
    and torch CUDA versions."""
    import torch.utils.cpp_extension as cpp_extension

    _cuda_toolkit_present(monkeypatch)
    monkeypatch.setattr(extension, "_compiler_runs", lambda: True)
    monkeypatch.setattr(cpp_extension, "is_ninja_available", lambda: True)
    monkeypatch.setenv("CXX", "no-such-c++-here")
    msg = extension.explain_build_failure("wkv4", "cuda", RuntimeError("Error building"))
    assert "fix: no C++ compiler 'no-such-c++-here' on PATH" in msg, msg
    assert "same major version" not in msg
    monkeypatch.setenv("CXX", sys.executable)  # a program that is on PATH
    monkeypatch.setattr(cpp_extension, "is_ninja_available", lambda: False)
    msg = extension.explain_build_failure("wkv4", "cuda", RuntimeError("Error building"))
    assert "fix: ninja not found" in msg and "same major version" not in msg, msg
    monkeypatch.setattr(cpp_extension, "is_ninja_available", lambda: True)
    msg = extension.explain_build_failure("wkv4", "cuda", RuntimeError("nvcc fatal"))
    assert "same major version" in msg and "release 12.8" in msg, msg  # tools there


def test_missing_kernel_sources_are_a_build_error(monkeypatch, tmp_path):
    """Sources that are not there fail like any other build: a cached KernelBuildError
    with the fix, and available_backends() still answers (it used to raise)."""
    monkeypatch.setattr(extension, "_extensions", {})
    monkeypatch.setattr(extension, "_build_errors", {})
    monkeypatch.setenv("SYMATO_BUILD_DIR", str(tmp_path / "build"))
    only_cpu = tmp_path / "kernels"
    only_cpu.mkdir()
    (only_cpu / "wkv4_cpu.cpp").write_text("// the marker file only\n")
    monkeypatch.setenv("SYMATO_KERNELS_DIR", str(only_cpu))
    with pytest.raises(KernelBuildError, match=r"(?s)wkv4_cuda_emulate\.cpp.*fix: a kernel "
                                               r"source is missing"):
        extension.load_extension("cuda-emulated", family="wkv4")  # a missing .cpp/.cu
    assert ("wkv4", "cuda-emulated") in extension._build_errors  # cached, not re-raised raw

    def no_sources(family: str = "wkv4") -> Path:
        raise SymatoError(f"{family}: kernel sources not found; looked in nowhere")

    monkeypatch.setattr(extension, "kernels_dir", no_sources)
    for _ in range(2):  # the second: the cached failure
        with pytest.raises(KernelBuildError, match="fix: point \\$SYMATO_KERNELS_DIR"):
            extension.load_extension("cpu", family="wkv4")
    assert wkv4.available_backends() == ["torch"]
    with pytest.raises(SymatoError, match="no compiled backend named 'tpu'") as info:
        extension.load_extension("tpu", family="wkv4")  # a wrong name is not a build
    assert not isinstance(info.value, KernelBuildError)


def test_symato_build_with_a_broken_compiler_fails_with_cause_and_fix(tmp_path):
    require_toolchain("cpu")
    out = tmp_path / "kernels" / "cpu.json"
    env = {**os.environ, "CXX": "/bin/false", "SYMATO_BUILD_DIR": str(tmp_path / "build")}
    proc = subprocess.run([sys.executable, "-m", "symato.cli", "build", "--device", "cpu",
                           "--out", str(out)], capture_output=True, text=True, env=env,
                          timeout=600)
    assert proc.returncode == 1, proc.stderr[-2000:]
    assert "symato build: error: wkv4: the cpu kernel could not be built" in proc.stderr
    assert "fix: the compiler /bin/false does not run" in proc.stderr
    assert not out.exists()


def test_constant_under_compile_marks_like_torch() -> None:
    """Our stand-in for torch.compiler.assume_constant_result (which imports
    torch._dynamo) marks a function exactly as the real decorator does."""
    code = (
        "import sys, torch\n"
        "from symato.models.ops import wkv4, wkv7\n"
        "from symato.models.ops.extension import constant_under_compile\n"
        "assert 'torch._dynamo' not in sys.modules, 'loading the operators imported dynamo'\n"
        "def a(): return 1\n"
        "def b(): return 1\n"
        "constant_under_compile(a)\n"
        "torch.compiler.assume_constant_result(b)\n"
        "assert vars(a) == vars(b) and vars(a), (vars(a), vars(b))\n"
        "assert wkv4._resolve_traced._dynamo_marked_constant\n"
        "assert wkv7._resolve_traced._dynamo_marked_constant\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True, timeout=300)


def test_the_operator_table_is_the_only_list_of_operators() -> None:
    """The kernel families, the operators and the architectures' operators come from one
    table (symato.models.ops.OPERATORS): each name is its own family, its module's
    OPERATOR is an Operator of that name, and every architecture names one of them."""
    from symato.models.ops import OPERATORS, operator
    from symato.models.ops.base import Operator
    from symato.models.registry import ARCHITECTURES

    assert list(extension.FAMILIES) == list(OPERATORS)
    for name in OPERATORS:
        op = operator(name)
        assert isinstance(op, Operator) and op.name == name
        assert (extension.kernels_dir(name) / f"{name}_cpu.cpp").is_file()
    used = {arch.operator for arch in ARCHITECTURES.values() if arch.operator}
    assert used == set(OPERATORS)
    with pytest.raises(SymatoError, match="no operator named 'mamba'; known"):
        operator("mamba")


def test_an_architecture_naming_an_unknown_operator_fails_when_declared() -> None:
    from symato.models.registry import Architecture

    with pytest.raises(SymatoError, match=r"architecture 'x': no operator named 'wkv5'"):
        Architecture("x", "m", "X", "XConfig", "x", operator="wkv5")


@pytest.mark.parametrize("name", ["wkv4", "wkv7"])
def test_a_kernel_keeping_states_at_another_interval_is_refused(name: str) -> None:
    """The fake implementation's checkpoint shapes come from the operator's interval, so
    a CUDA kernel keeping states at another one is a failed build naming both numbers
    and the file to change; the cpu target keeps none and is not asked."""
    from types import SimpleNamespace

    from symato.models.ops import operator

    op = operator(name)
    wrong = SimpleNamespace(checkpoint_interval=lambda: op.ckpt_interval * 2)
    op.check_extension("cpu", wrong)
    op.check_extension("cuda", SimpleNamespace(checkpoint_interval=lambda: op.ckpt_interval))
    for target in ("cuda", "cuda-emulated"):
        with pytest.raises(SymatoError, match=(
                rf"{name}: the {target} kernels keep a state every {op.ckpt_interval * 2} "
                rf"steps, symato/models/ops/{name}\.py expects "
                rf"{op.ckpt_interval}: update its CKPT_INTERVAL")):
            op.check_extension(target, wrong)
    assert op.checkpoints("cuda", True, 2 * op.ckpt_interval + 1) == 3
    assert op.checkpoints("cuda", False, 100) == op.checkpoints("cpu", True, 100) == 0
