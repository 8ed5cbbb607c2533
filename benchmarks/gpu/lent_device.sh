#!/usr/bin/env bash
# The GPU suite on a lent machine without network: a thin wrapper around run.sh.
#
# Such a machine (the project's lent H100/H200: benchmarks/gpu/README.md, "On a lent
# machine") runs one command in the repository root, writes what comes back under $OUT
# (at most 8 files, flat names, 16 MiB each) and reaches no package index. Its image has
# torch with CUDA, numpy, pyarrow, pandas, pyyaml, ... but not snakemake, jsonschema or
# zstandard, so those travel with the working tree as wheels in .whl/:
#
#   here, once:  bash benchmarks/gpu/offline_wheels.sh      # fills .whl/ (~31 MiB)
#   there:       run with carry [".whl"], timeout_s 600, command
#                    bash benchmarks/gpu/lent_device.sh [--quick]
#
# It installs the carried wheels into a scratch folder put first on PYTHONPATH (the
# image's own packages stay as they are), prints which of the wheels' dependencies came
# from the image at which version, runs run.sh with --out "$OUT" (budget 510 s: one
# 10-minute command with room for start-up and transfers), and checks that $OUT holds
# what the machine sends back. Arguments go to run.sh. Rehearsal on a CPU machine:
#   OUT=/tmp/out PYTHON=python3 bash benchmarks/gpu/lent_device.sh --device cpu --quick
set -uo pipefail
cd "$(dirname "$0")/../.." || exit 2
REPO="$PWD"
: "${OUT:?lent_device.sh: set OUT (the folder the machine sends back)}"
PY="${PYTHON:-python3}"
WHEELS="${WHEELS:-$REPO/.whl}"
SITE="$(mktemp -d -t symato-site.XXXXXX)"
mkdir -p "$OUT"
NOTES="$(mktemp -t symato-lent.XXXXXX)"

if ls "$WHEELS"/*.whl >/dev/null 2>&1; then
    echo "lent_device: installing $(find "$WHEELS" -maxdepth 1 -name '*.whl' | wc -l) wheels from $WHEELS"
    "$PY" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade \
        --target "$SITE" "$WHEELS"/*.whl || echo "lent_device: WARNING: wheel install failed"
fi
export PYTHONPATH="$SITE${PYTHONPATH:+:$PYTHONPATH}"
"$PY" - "$WHEELS/device-wheels.txt" <<'PYEOF' 2>&1 | tee "$NOTES"
# Which packages of the wheels' closure came from the image, at which version vs the one
# offline_wheels.sh resolved for it (a mismatch is marked *).
import importlib, importlib.metadata as md, sys
from pathlib import Path
for mod in ("snakemake", "jsonschema", "zstandard"):
    try:
        m = importlib.import_module(mod)
        print(f"import {mod}: ok ({Path(m.__file__).parent})")
    except Exception as e:  # noqa: BLE001 - report every failure, keep going
        print(f"import {mod}: FAILED {type(e).__name__}: {e}")
lst = Path(sys.argv[1])
for line in lst.read_text().splitlines() if lst.exists() else []:
    if line.startswith("device "):
        _, name, want = line.split()[:3]
        try:
            have = md.version(name)
        except md.PackageNotFoundError:
            have = "MISSING"
        print(f"image has {name} {have} (resolved here: {want}){'' if have == want else ' *'}")
PYEOF

PYTHON="$PY" bash benchmarks/gpu/run.sh --out "$OUT" --budget "${SESSION_BUDGET:-510}" "$@"
rc=$?
cat "$NOTES" > "$OUT/wheels.txt"
rm -rf "$SITE" "$NOTES"
# The machine's limits on what comes back: <= 8 files, <= 16 MiB each, plain names.
n=$(find "$OUT" -type f | wc -l)
big=$(find "$OUT" -type f -size +16M | wc -l)
odd=$(find "$OUT" -mindepth 1 -printf '%P\n' | grep -c '[^A-Za-z0-9._/-]')
if [ "$n" -le 8 ] && [ "$big" -eq 0 ] && [ "$odd" -eq 0 ]; then echo "lent_device: OUT ok: $n files"
else echo "lent_device: WARNING: OUT breaks the machine's limits: $n files, $big over 16 MiB, $odd odd names"; fi
exit "$rc"
