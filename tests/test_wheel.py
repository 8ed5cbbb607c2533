"""The package ships whole: a built wheel holds the kernel sources, data files and the
compiled tokenizer decoder, and an install of it, outside the checkout, compiles and runs
the C++ WKV kernel and decodes through the compiled loop.

Why: the kernel sources live in the top-level ``kernels/`` folder (the user asked for
that layout); pyproject.toml maps the folder to the package ``symato.kernels``. Without
the mapping a wheel has no ``.cpp``/``.cu`` file and an installed symato cannot build its
extension, which no test run from the checkout would notice. Likewise the tokenizer's C extension
(``symato.text._fastdecode``, setup.py) must be built into the wheel, not only in place.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import sysconfig
import zipfile
from pathlib import Path

import pytest
from _workflow import REPO

pytestmark = pytest.mark.slow

PACKAGES = ["symato", "symato/text", "symato/data", "symato/models", "symato/models/ops",
            "symato/run", "symato/report", "symato/interop", "symato/interop/hf_remote"]


def _run(cmd: list[str], **kwargs) -> subprocess.CompletedProcess[str]:
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=900, **kwargs)
    assert proc.returncode == 0, f"{cmd}\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}"
    return proc


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("dist")
    # Built from a copy: setuptools writes build/ and *.egg-info into the source tree,
    # and a stale build/lib would leak removed modules into later wheels.
    source = tmp_path_factory.mktemp("source") / "symato"
    shutil.copytree(REPO, source, ignore=shutil.ignore_patterns(
        ".git", ".venv", "results", "resources", "build", "*.egg-info", ".snakemake",
        "__pycache__", ".pytest_cache", ".ruff_cache", ".hypothesis", ".whl", "*.so"))
    # No build isolation: the venv's setuptools builds it, no download needed.
    _run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation",
          "-q", "-w", str(out), str(source)])
    (path,) = out.glob("symato-*.whl")
    return path


def test_wheel_holds_every_package_kernel_and_data_file(wheel: Path) -> None:
    names = set(zipfile.ZipFile(wheel).namelist())
    for package in PACKAGES:
        assert f"{package}/__init__.py" in names, package
    kernels = [p.name for p in (REPO / "kernels").iterdir() if p.suffix in (".cpp", ".cu", ".h")]
    assert kernels and {f"symato/kernels/{k}" for k in kernels} <= names
    assert "symato/data/demo_sources.json" in names
    ext = [n for n in names if n.startswith("symato/text/_fastdecode.") and n.endswith(".so")]
    assert len(ext) == 1, sorted(names)  # built by the wheel build, not copied from a checkout
    # every module of the checkout's package is in the wheel
    modules = {str(p.relative_to(REPO)) for p in (REPO / "symato").rglob("*.py")}
    assert modules <= names, sorted(modules - names)


def test_installed_wheel_builds_and_runs_the_cpu_kernel(wheel: Path, tmp_path: Path) -> None:
    venv = tmp_path / "venv"
    _run([sys.executable, "-m", "venv", "--without-pip", str(venv)])
    python = venv / "bin" / "python"
    _run([sys.executable, "-m", "pip", "--python", str(python), "install", "-q", "--no-deps",
          "--no-index", str(wheel)])
    # The dependencies (torch, numpy, ninja) come from this test's environment: a path
    # entry, which does not run that environment's .pth files (so not its editable
    # install of symato from the checkout).
    site = Path(sysconfig.get_paths()["purelib"])
    target = _run([str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"])
    Path(target.stdout.strip(), "dependencies.pth").write_text(f"{site}\n")
    script = f"""
import os, torch, symato
from symato.models.ops import extension, wkv4
assert not symato.__file__.startswith({str(REPO)!r}), symato.__file__
assert str(extension.kernels_dir()).startswith({str(venv)!r}), extension.kernels_dir()
torch.manual_seed(0)
B, T, C = 2, 33, 8
w, u = torch.rand(C) * 0.5, torch.randn(C) * 0.3
k, v = torch.randn(B, T, C), torch.randn(B, T, C)
y, s = wkv4.wkv4(w, u, k, v, backend="cpu")
y0, s0 = wkv4.wkv4(w, u, k, v, backend="torch")
assert wkv4.last_backend_used() == "torch"
torch.testing.assert_close(y, y0, rtol=1e-5, atol=1e-5)
torch.testing.assert_close(s, s0, rtol=1e-5, atol=1e-5)
from symato import Tokenizer
from symato.text import _fastdecode
assert _fastdecode.__file__.startswith({str(venv)!r}), _fastdecode.__file__
tok = Tokenizer.default()
text = "Nước Việt Nam hình chữ S. ĐIỀU 7, ok"
ids = tok.encode(text)
assert tok.decode(ids) == text and tok.decoder == "c"
assert tok._hot is not None and tok._hot.decode(ids) == text  # the compiled loop ran
print("ok", symato.__file__)
"""
    env = {**os.environ, "SYMATO_BUILD_DIR": str(tmp_path / "build"),
           "PATH": f"{Path(sys.executable).parent}:{os.environ.get('PATH', '')}"}
    env.pop("SYMATO_KERNELS_DIR", None)
    env.pop("PYTHONPATH", None)
    proc = _run([str(python), "-c", script], cwd=tmp_path, env=env)
    assert proc.stdout.startswith("ok ") and str(venv) in proc.stdout
    assert list((tmp_path / "build").rglob("*.so")), "no extension was compiled"
    version = _run([str(venv / "bin" / "symato"), "--version"], cwd=tmp_path, env=env)
    assert version.stdout.startswith("symato ")
