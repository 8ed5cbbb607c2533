"""The kernel build machinery (symato/models/ops/extension.py, build.py), through real
builds in fresh build folders: a build killed by SIGKILL mid-compile never blocks the
next one, the build folder's key separates what must not share a binary, and a compiler
that does not work makes `symato build` fail with the cause and the fix.

Why: torch guards a build with a lock *file*; before the OS lock, a job killed while
compiling (out of memory, a node failure, preemption) left it behind and every later job
waited on it forever (issue #12).
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
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
COMPILERS = ("cc1plus", "clang", "clang++")


def _descendants(pid: int) -> list[str]:
    """Command names of every process below ``pid`` (from /proc)."""
    children: dict[int, list[int]] = {}
    names: dict[int, str] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            text = stat.read_text()
        except OSError:
            continue
        name = text[text.index("(") + 1 : text.rindex(")")]
        ppid = int(text[text.rindex(")") + 2 :].split()[1])
        names[int(stat.parent.name)] = name
        children.setdefault(ppid, []).append(int(stat.parent.name))
    out, todo = [], list(children.get(pid, []))
    while todo:
        p = todo.pop()
        out.append(names.get(p, "?"))
        todo += children.get(p, [])
    return out


@pytest.mark.slow  # one and a half C++ builds: about a minute on 2 cores
def test_build_killed_mid_compile_does_not_block_the_next(tmp_path, monkeypatch):
    require_toolchain("cpu")
    monkeypatch.setenv("SYMATO_BUILD_DIR", str(tmp_path / "build"))
    folder, _ = build_dir("wkv7", "cpu")
    baton = folder / "lock"
    env = {**os.environ, "SYMATO_BUILD_DIR": str(tmp_path / "build")}
    # its own session: SIGKILL to the whole group, as Slurm, the OOM killer of a job's
    # cgroup or a dying node end a job (Python, ninja and the compiler at once)
    first = subprocess.Popen([sys.executable, "-c", BUILD], env=env, start_new_session=True,
                             stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 300
    while not (baton.exists() and any(n in COMPILERS for n in _descendants(first.pid))):
        assert first.poll() is None, first.stderr.read().decode() if first.stderr else ""
        assert time.monotonic() < deadline, "the build never reached the compiler"
        time.sleep(0.05)
    os.killpg(first.pid, signal.SIGKILL)
    first.wait(timeout=60)
    assert first.returncode == -signal.SIGKILL
    assert baton.exists()  # torch's lock file, left behind: it used to block forever
    assert not list(folder.glob("*.so")), "the kill must land before the build finished"

    second = subprocess.run([sys.executable, "-c", BUILD], env=env, capture_output=True,
                            text=True, timeout=900)  # waiting on the stale lock: timeout
    assert second.returncode == 0, second.stderr[-3000:]
    assert "loaded and ran" in second.stdout
    assert f"removed a stale build lock {baton}" in second.stderr
    assert not baton.exists() and (folder / LOCK_FILE).exists()
    assert list(folder.glob("*.so"))


def test_build_folder_key(monkeypatch, tmp_path):
    """Another compiler or CUDA architecture is another folder; the same facts, the same."""
    monkeypatch.setenv("SYMATO_BUILD_DIR", str(tmp_path))
    monkeypatch.delenv("CXX", raising=False)
    cpu, digest = build_dir("wkv", "cpu")
    assert cpu == tmp_path / "wkv" / f"cpu-{digest}" and build_dir("wkv", "cpu")[0] == cpu
    assert build_dir("wkv7", "cpu")[0].parent == tmp_path / "wkv7"
    monkeypatch.setenv("CXX", "clang++")
    assert build_dir("wkv", "cpu")[0] != cpu
    monkeypatch.setenv("SYMATO_CUDA_ARCH", "9.0")
    hopper = build_dir("wkv", "cuda")[0]
    monkeypatch.setenv("SYMATO_CUDA_ARCH", "8.0")
    assert build_dir("wkv", "cuda")[0] != hopper


def test_build_key_keys_the_cpu_only_where_the_binary_depends_on_it(monkeypatch, tmp_path):
    """-march=native makes only the cpu binary CPU-specific: GPU nodes whose CPUs differ
    share the cuda build; the compiler's and nvcc's versions, not only names, are keyed."""
    monkeypatch.setenv("SYMATO_BUILD_DIR", str(tmp_path))
    monkeypatch.setenv("SYMATO_CUDA_ARCH", "9.0")
    monkeypatch.setattr(extension, "cuda_home", lambda: "/usr/local/cuda")
    monkeypatch.setattr(extension, "nvcc_version", lambda: "release 12.8")
    before = {kind: build_dir("wkv", kind)[0] for kind in ("cpu", "cuda", "cuda-emulated")}
    monkeypatch.setattr(extension, "cpu_fingerprint", lambda: "another CPU")
    after = {kind: build_dir("wkv", kind)[0] for kind in before}
    assert after["cpu"] != before["cpu"]
    assert after["cuda"] == before["cuda"] and after["cuda-emulated"] == before["cuda-emulated"]
    monkeypatch.setattr(extension, "nvcc_version", lambda: "release 12.9")
    assert build_dir("wkv", "cuda")[0] != after["cuda"]
    monkeypatch.setattr(extension, "compiler_version", lambda: "g++ (GCC) 99.1")
    assert build_dir("wkv", "cpu")[0] != after["cpu"]


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
    msg = extension.explain_build_failure("wkv", "cuda", RuntimeError("Error building"))
    assert "fix: no C++ compiler 'no-such-c++-here' on PATH" in msg, msg
    assert "same major version" not in msg
    monkeypatch.setenv("CXX", sys.executable)  # a program that is on PATH
    monkeypatch.setattr(cpp_extension, "is_ninja_available", lambda: False)
    msg = extension.explain_build_failure("wkv", "cuda", RuntimeError("Error building"))
    assert "fix: ninja not found" in msg and "same major version" not in msg, msg
    monkeypatch.setattr(cpp_extension, "is_ninja_available", lambda: True)
    msg = extension.explain_build_failure("wkv", "cuda", RuntimeError("nvcc fatal"))
    assert "same major version" in msg and "release 12.8" in msg, msg  # tools there


def test_missing_kernel_sources_are_a_build_error(monkeypatch, tmp_path):
    """Sources that are not there fail like any other build: a cached KernelBuildError
    with the fix, and available_backends() still answers (it used to raise)."""
    monkeypatch.setattr(extension, "_extensions", {})
    monkeypatch.setattr(extension, "_build_errors", {})
    monkeypatch.setenv("SYMATO_BUILD_DIR", str(tmp_path / "build"))
    only_cpu = tmp_path / "kernels"
    only_cpu.mkdir()
    (only_cpu / "wkv_cpu.cpp").write_text("// the marker file only\n")
    monkeypatch.setenv("SYMATO_KERNELS_DIR", str(only_cpu))
    with pytest.raises(KernelBuildError, match=r"(?s)wkv_cuda_emulate\.cpp.*fix: a kernel "
                                               r"source is missing"):
        extension.load_extension("cuda-emulated", family="wkv")  # a missing .cpp/.cu
    assert ("wkv", "cuda-emulated") in extension._build_errors  # cached, not re-raised raw

    def no_sources(family: str = "wkv") -> Path:
        raise SymatoError(f"{family}: kernel sources not found; looked in nowhere")

    monkeypatch.setattr(extension, "kernels_dir", no_sources)
    for _ in range(2):  # the second: the cached failure
        with pytest.raises(KernelBuildError, match="fix: point \\$SYMATO_KERNELS_DIR"):
            extension.load_extension("cpu", family="wkv")
    assert wkv4.available_backends() == ["torch"]
    with pytest.raises(SymatoError, match="no compiled backend named 'tpu'") as info:
        extension.load_extension("tpu", family="wkv")  # a wrong name is not a build
    assert not isinstance(info.value, KernelBuildError)


def test_symato_build_with_a_broken_compiler_fails_with_cause_and_fix(tmp_path):
    require_toolchain("cpu")
    out = tmp_path / "kernels" / "cpu.json"
    env = {**os.environ, "CXX": "/bin/false", "SYMATO_BUILD_DIR": str(tmp_path / "build")}
    proc = subprocess.run([sys.executable, "-m", "symato.cli", "build", "--device", "cpu",
                           "--out", str(out)], capture_output=True, text=True, env=env,
                          timeout=600)
    assert proc.returncode == 1, proc.stderr[-2000:]
    assert "symato build: error: wkv: the cpu kernel could not be built" in proc.stderr
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
