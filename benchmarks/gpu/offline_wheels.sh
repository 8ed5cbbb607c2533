#!/usr/bin/env bash
# Fill .whl/ with exactly the wheels an offline GPU machine lacks to run the GPU suite
# (snakemake at the version .venv has, jsonschema, zstandard and their dependency closure):
# the optional first step of lent_device.sh beside this file. A GPU machine with network
# needs none of it: `pip install -e .` there (README, "On a GPU").
#
# Why: the project's lent device machine reaches no package index, so whatever the
# workflow imports that its image lacks must travel with the working tree (<= 64 MiB in
# all). Its image already
# holds torch (CUDA), numpy, pyarrow, pandas, ... (list below), so those are left out:
# carrying a second torch would cost gigabytes, and two versions of one package stop the
# install there.
#
#   bash benchmarks/gpu/offline_wheels.sh            # Python 3.12 wheels into .whl/
#   bash benchmarks/gpu/offline_wheels.sh --python-version 3.11 --dest /tmp/whl311  # rehearsal
#
# How: the closure is resolved by pip itself (`pip install --dry-run --ignore-installed
# --report`) under an interpreter of the target version, so environment markers are those
# of that version, with every version pinned to what .venv has (tested here) where it can.
# Each resolved wheel is then fetched for manylinux x86_64 / cp3XY with `pip download
# --no-deps --only-binary=:all:`; a package published only as an sdist is built here with
# `pip wheel` and must come out pure Python (py3-none-any), else the script fails.
# Packages the device image has are dropped and listed in .whl/device-wheels.txt with the
# version the resolution wanted, so a mismatch there can be spotted (lent_device.sh
# prints the device's versions of them).
#
# Environment: RESOLVE_PY (an interpreter of the target version; default: python3.XY on
# PATH, else ~/.pyenv/versions/3.XY*/bin/python3.XY), HOST_PY (default .venv/bin/python;
# its installed versions become the pins), NO_PIN=1 (resolve without .venv's pins).
set -euo pipefail
cd "$(dirname "$0")/../.."

PYV=3.12
DEST=.whl
while [ $# -gt 0 ]; do
    case "$1" in
        --python-version) PYV="$2"; shift 2 ;;
        --dest) DEST="$2"; shift 2 ;;
        -h|--help) sed -n '2,29p' "$0"; exit 0 ;;
        *) echo "offline_wheels: unknown argument '$1' (see --help)" >&2; exit 2 ;;
    esac
done
case "$PYV" in 3.[0-9]|3.[0-9][0-9]) ;; *) echo "offline_wheels: --python-version wants X.Y, got '$PYV'" >&2; exit 2 ;; esac
HOST_PY="${HOST_PY:-.venv/bin/python}"

find_resolver() {  # an interpreter of version $PYV, to resolve with its own markers
    local cand
    for cand in "${RESOLVE_PY:-}" "python$PYV" "$HOME"/.pyenv/versions/"$PYV"*/bin/python"$PYV"; do
        [ -n "$cand" ] || continue
        if "$cand" -c "import sys; sys.exit(0 if '%d.%d' % sys.version_info[:2] == '$PYV' else 1)" \
            2>/dev/null; then echo "$cand"; return 0; fi
    done
    echo "offline_wheels: no Python $PYV interpreter found (set RESOLVE_PY)" >&2
    return 1
}
RESOLVE="$(find_resolver)"

# The Python packages the device image holds (KINDS.md, "Python packages already there",
# read 2026-11-17). Normalized names (PEP 503).
DEVICE_HAS="absl-py accelerate aiofiles aiohappyeyeballs aiohttp aiosignal annotated-doc anyio
attrs botorch build certifi charset-normalizer chex click cloudpickle cmake colorama contourpy
coverage cuda-bindings cuda-core cuda-pathfinder cuda-toolkit cupy-cuda13x cycler cython diffrax
e3nn einops equinox etils execnet filelock flatbuffers flax fonttools formulaic frozenlist fsspec
gpytorch grpcio h11 h5py hf-xet httpcore httpx huggingface-hub humanize hypothesis idna imageio
iniconfig interface-meta jax jax-cuda13-pjrt jax-cuda13-plugin jaxlib jaxtyping jinja2 joblib
kiwisolver lazy-loader lightning lightning-utilities linear-operator lineax llvmlite lxml markdown
markdown-it-py markupsafe matplotlib mdurl meson ml-dtypes mpi4py mpmath msgpack multidict
multipledispatch mypy-extensions nanobind narwhals networkx ninja numba numba-cuda numpy numpyro
nvidia-cublas nvidia-cuda-cupti nvidia-cuda-nvrtc nvidia-cuda-runtime nvidia-cudnn-cu13
nvidia-cufft nvidia-cufile nvidia-curand nvidia-cusolver nvidia-cusparse nvidia-cusparselt-cu13
nvidia-ml-py nvidia-nccl-cu13 nvidia-nvjitlink nvidia-nvshmem-cu13 nvidia-nvtx onnx onnx-ir
onnxruntime onnxscript opencv-python-headless optax opt-einsum opt-einsum-fx optimistix
orbax-checkpoint packaging pandas pathspec patsy peft pillow pip pluggy portalocker
prometheus-client propcache protobuf psutil pyarrow pybind11 py-cpuinfo pygments pyparsing
pyproject-hooks pyre-extensions pytest pytest-benchmark pytest-cov pytest-mock pytest-timeout
pytest-xdist python-dateutil pytorch-lightning pyyaml regex requests rich sacrebleu safetensors
scikit-build-core scikit-image scikit-learn scipy seaborn sentencepiece sentence-transformers
setuptools shellingham simplejson six sortedcontainers statsmodels sympy tabulate tensorboard
tensorboard-data-server tensorstore threadpoolctl tifffile tiktoken timm tokenizers toolz torch
torchaudio torchdiffeq torch-geometric torchmetrics torchvision tqdm transformers treescope
triton typer typing-extensions typing-inspect urllib3 uvloop wadler-lindig werkzeug wheel wrapt
xarray xxhash yarl zipp"

SCRATCH="$(mktemp -d -t symato-wheels.XXXXXX)"
trap 'rm -rf "$SCRATCH"' EXIT

# What the workflow needs beyond the image: snakemake (the version tested here), the config
# validator, and the .zst reader symato imports.
version_here() { "$HOST_PY" -c "import importlib.metadata as m, sys; print(m.version(sys.argv[1]))" "$1"; }
REQS=("snakemake==$(version_here snakemake)" "jsonschema==$(version_here jsonschema)"
      "zstandard==$(version_here zstandard)")
CONS=()
if [ "${NO_PIN:-0}" != 1 ]; then
    # Pins for the whole closure: .venv's versions (editables, URLs and torch left out).
    "$HOST_PY" -m pip freeze --exclude-editable | grep -vE '^(-e |torch==)|@' > "$SCRATCH/pins.txt"
    CONS=(-c "$SCRATCH/pins.txt")
fi
echo "offline_wheels: resolving ${REQS[*]} for Python $PYV with $RESOLVE"
"$RESOLVE" -m pip install --dry-run --ignore-installed --quiet --no-warn-script-location \
    --report "$SCRATCH/report.json" "${CONS[@]}" "${REQS[@]}" 2> >(grep -v 'is ignored: it is neither' >&2)

# report.json -> plan: "name version wheel|sdist" for what the device lacks; the rest listed.
"$HOST_PY" - "$SCRATCH/report.json" "$DEVICE_HAS" "$SCRATCH" <<'PYEOF'
import json, re, sys
from pathlib import Path
report, has, scratch = json.loads(Path(sys.argv[1]).read_text()), set(sys.argv[2].split()), Path(sys.argv[3])
norm = lambda n: re.sub(r"[-_.]+", "-", n).lower()
need, skipped = [], []
for item in report["install"]:
    name, version = norm(item["metadata"]["name"]), item["metadata"]["version"]
    kind = "wheel" if item["download_info"]["url"].endswith(".whl") else "sdist"
    (skipped if name in has else need).append(f"{name} {version} {kind}")
(scratch / "need.txt").write_text("".join(x + "\n" for x in sorted(need)))
(scratch / "skipped.txt").write_text("".join(x + "\n" for x in sorted(skipped)))
print(f"offline_wheels: closure {len(need) + len(skipped)} packages: {len(need)} to carry, "
      f"{len(skipped)} already on the device")
PYEOF

PLATFORMS=()
for n in $(seq 28 -1 5); do PLATFORMS+=(--platform "manylinux_2_${n}_x86_64"); done
PLATFORMS+=(--platform manylinux2014_x86_64 --platform manylinux2010_x86_64 --platform manylinux1_x86_64)
mkdir -p "$SCRATCH/whl"
mapfile -t WHEELS < <(awk '$3 == "wheel" {print $1 "==" $2}' "$SCRATCH/need.txt")
mapfile -t SDISTS < <(awk '$3 == "sdist" {print $1 "==" $2}' "$SCRATCH/need.txt")
if [ ${#WHEELS[@]} -gt 0 ]; then
    "$HOST_PY" -m pip download --quiet --no-deps --only-binary=:all: --python-version "$PYV" \
        --implementation cp "${PLATFORMS[@]}" -d "$SCRATCH/whl" "${WHEELS[@]}" \
        2> >(grep -v 'is ignored: it is neither' >&2)
fi
for req in "${SDISTS[@]}"; do  # sdist-only packages: build here, accept pure Python only
    "$RESOLVE" -m pip wheel --quiet --no-deps -w "$SCRATCH/built" "$req" \
        2> >(grep -v 'is ignored: it is neither' >&2)
done
for w in "$SCRATCH"/built/*.whl; do
    [ -e "$w" ] || continue
    case "$w" in *-none-any.whl) mv "$w" "$SCRATCH/whl/" ;;
        *) echo "offline_wheels: $(basename "$w") is built from an sdist and not pure Python;" \
                "it would not run on the device" >&2; exit 1 ;;
    esac
done

# Exactly one wheel per needed package, and nothing else.
"$HOST_PY" - "$SCRATCH/need.txt" "$SCRATCH/whl" <<'PYEOF'
import re, sys
from pathlib import Path
norm = lambda n: re.sub(r"[-_.]+", "-", n).lower()
need = {line.split()[0]: line.split()[1] for line in Path(sys.argv[1]).read_text().splitlines()}
got = {}
for w in sorted(Path(sys.argv[2]).glob("*.whl")):
    name, version = w.name.split("-")[:2]
    got.setdefault(norm(name), []).append(version)
bad = [f"{n}: wanted {need.get(n)}, got {got.get(n)}" for n in sorted(set(need) | set(got))
       if got.get(n) is None or len(got[n]) != 1 or n not in need]
if bad:
    sys.exit("offline_wheels: wheel set does not match the resolution:\n  " + "\n  ".join(bad))
PYEOF

mkdir -p "$DEST"
rm -f "$DEST"/*.whl
mv "$SCRATCH"/whl/*.whl "$DEST"/
{
    echo "# Written by benchmarks/gpu/offline_wheels.sh for Python $PYV on $(date -u +%FT%TZ)."
    echo "# Carried (name version kind):"
    sed 's/^/carry /' "$SCRATCH/need.txt"
    echo "# In the closure but already on the device (version resolved here):"
    sed 's/^/device /' "$SCRATCH/skipped.txt"
} > "$DEST/device-wheels.txt"
count=$(find "$DEST" -maxdepth 1 -name '*.whl' | wc -l)
mib=$(du -cb "$DEST"/*.whl | tail -1 | awk '{printf "%.1f", $1 / 1048576}')
echo "offline_wheels: $count wheels, $mib MiB in $DEST (list: $DEST/device-wheels.txt)"
