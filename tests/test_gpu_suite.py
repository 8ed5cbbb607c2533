"""The GPU suite (benchmarks/gpu/) without a GPU: its kernel check in CPU mode on tiny
shapes, and its shell entry points' syntax and argument checks.

Why: the suite runs where no test runs (a GPU machine, often a lent one with minutes of
device time), so a broken import, a renamed function or a typo in its shell must show
here first. The CPU mode runs the same check code on the C++ CPU kernels.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from _kernels import require_toolchain

REPO = Path(__file__).resolve().parent.parent
SUITE = REPO / "benchmarks" / "gpu"


def _env() -> dict[str, str]:
    """The test's environment with this checkout first on PYTHONPATH."""
    env = dict(os.environ)
    env["PYTHONPATH"] = str(REPO) + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH")
                                     else "")
    return env


def test_kernel_check_cpu_quick(tmp_path: Path) -> None:
    """`kernels.py --device cpu --quick` checks both operators' C++ kernels against float64
    in float32 and bfloat16 and writes its two reports; every check passes."""
    require_toolchain("cpu")
    out = tmp_path / "out"
    proc = subprocess.run(
        [sys.executable, str(SUITE / "kernels.py"), "--device", "cpu", "--quick",
         "--out", str(out)],
        capture_output=True, text=True, timeout=600, env=_env(), cwd=tmp_path)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    doc = json.loads((out / "kernels.json").read_text())
    assert doc["kernels"] == "cpu" and doc["quick"] is True and doc["timing"] == []
    checks = doc["checks"]
    ops = {row.get("op", "wkv4") for row in checks}
    assert ops == {"wkv4", "wkv7"}
    assert {row["dtype"] for row in checks} == {"float32", "bfloat16"}
    assert {row["ref"] for row in checks} == {"cpu-f64", "torch-f64"}
    # every output and gradient of both operators is compared
    assert {row["tensor"] for row in checks if "op" not in row} == {
        "y", "state", "gw", "gu", "gk", "gv", "gstate"}
    assert {row["tensor"] for row in checks if row.get("op") == "wkv7"} == {
        "y", "state", "gr", "gw", "gk", "gv", "ga", "gb", "gstate"}
    bad = [row for row in checks if not row["ok"]]
    assert not bad, bad
    for row in checks:  # float32 far tighter than bfloat16, as the tolerances say
        assert row["rel_err"] <= (1e-5 if row["dtype"] == "float32" else 1e-2), row
    assert f"correctness: {len(checks)}/{len(checks)} ok" in proc.stdout
    assert (out / "kernels.md").read_text().startswith("device: cpu")


@pytest.mark.parametrize("script", sorted(p.name for p in SUITE.glob("*.sh")))
def test_shell_scripts_parse(script: str) -> None:
    """Every shell script of the suite is valid bash."""
    proc = subprocess.run(["bash", "-n", str(SUITE / script)], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr


@pytest.mark.parametrize(("args", "message"), [
    (["--device", "tpu"], "--device wants cuda or cpu"),
    (["--budget", "ten"], "--budget wants seconds"),
    (["--fast"], "unknown argument '--fast'"),
])
def test_run_rejects_bad_arguments(args: list[str], message: str, tmp_path: Path) -> None:
    """run.sh refuses a bad argument before it starts anything (exit 2, one message)."""
    proc = subprocess.run(["bash", str(SUITE / "run.sh"), *args, "--out", str(tmp_path)],
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 2 and message in proc.stderr, proc.stderr
    assert not list(tmp_path.iterdir())  # nothing written


def test_lent_device_needs_out() -> None:
    """The lent-machine wrapper refuses to run without $OUT, the folder that comes back."""
    env = {k: v for k, v in os.environ.items() if k != "OUT"}
    proc = subprocess.run(["bash", str(SUITE / "lent_device.sh")], capture_output=True,
                          text=True, timeout=60, env=env)
    assert proc.returncode != 0 and "set OUT" in proc.stderr, proc.stderr


def test_train_check_arch_from_registry() -> None:
    """train_check.sh trains the registry's first architecture with a compiled operator
    and expects every operator's kernels built: the lines that read the registry run."""
    text = (SUITE / "train_check.sh").read_text()
    start = text.index("from symato.models import ARCHITECTURES as A")
    code = text[start:text.index("')\"", start)]
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=60, env=_env())
    assert proc.returncode == 0, proc.stderr
    from symato.models import ARCHITECTURES

    arch, *families = proc.stdout.split()
    assert ARCHITECTURES[arch].operator
    assert set(families) == {a.operator for a in ARCHITECTURES.values() if a.operator}
