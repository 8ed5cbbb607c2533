#!/usr/bin/env bash
# One-GPU end-to-end check, step (c) of the GPU suite (run.sh beside this file): the real
# workflow (data stages, the kernel build, one training run on the GPU, its evaluation)
# through the local profile (profiles/default), which must find the GPU and grant it to
# the jobs. The run is config-gpu.yaml's smallest size with its settings (bf16, head size
# 64, ...), of the registry's first architecture with a compiled operator (RWKV-4), on a
# tiny corpus: only the token budget and the window (ctx 64: the corpus's validation split
# is shorter than 1024 tokens) are cut.
#
#   bash benchmarks/gpu/train_check.sh [--device cpu] [WORKDIR]   # default: a fresh temp dir
#
# Needs a CUDA build of torch and snakemake in $PY (default .venv/bin/python, else
# python3). Checks: Snakemake registers the GPUs nvidia-smi lists as the `gpu` limit; the
# training job gets gpu=1; rule build_kernels built every operator's kernel once
# (results/kernels/cuda.json); the trained model says device=cuda, world_size=1 and records
# what ran (backend cuda, precision bf16, the GPU's name) in model.pt and metrics.json;
# evaluation writes finite bits per byte. Prints one PASS/FAIL line per check and exits
# non-zero on any failure. --device cpu runs the same steps on a machine without a GPU
# (device checks become "cpu", precision fp32), to test the script.
# With $OUT set, the logs and metrics are copied there.
set -euo pipefail
WANT_CPU=0
if [ "${1:-}" = --device ]; then
    case "${2:-}" in cpu) WANT_CPU=1 ;; cuda) ;; *) echo "train_check: --device wants cuda or cpu" >&2; exit 2 ;; esac
    shift 2
fi

REPO="$(cd "$(dirname "$0")/../.." && pwd)"
PY="${PY:-$REPO/.venv/bin/python}"
[ -x "$PY" ] || command -v "$PY" >/dev/null || PY=python3  # device image: no .venv
# symato from this checkout also where it is not pip-installed (device image, wheel rehearsal).
export PYTHONPATH="$REPO${PYTHONPATH:+:$PYTHONPATH}"
WORK="${1:-$(mktemp -d -t symato-gpu-check.XXXXXX)}"
mkdir -p "$WORK/input"
cp "$REPO/tests/data/pipeline_vi.txt" "$WORK/input/vi.txt"
fails=0
check() {  # check NAME CONDITION-EXIT-STATUS
    if [ "$2" -eq 0 ]; then echo "PASS $1"; else echo "FAIL $1"; fails=$((fails + 1)); fi
}

if command -v nvidia-smi >/dev/null; then
    nvidia-smi -L
    want_gpus=$(nvidia-smi -L | grep -c '^GPU ' || true)
else
    want_gpus=0
fi
want_device=cuda
if [ "$want_gpus" -eq 0 ]; then
    if [ "$WANT_CPU" != 1 ]; then
        echo "FAIL no GPU found (nvidia-smi); --device cpu to run on the CPU anyway"; exit 1
    fi
    want_device=cpu
fi
"$PY" -c 'import torch; print("torch", torch.__version__, "cuda", torch.cuda.is_available(),
torch.cuda.get_device_name(0) if torch.cuda.is_available() else "")'
if [ "$want_device" = cuda ]; then
    cuda_ok=0
    "$PY" -c 'import torch, sys; sys.exit(0 if torch.cuda.is_available() else 1)' || cuda_ok=1
    check "torch sees CUDA" $cuda_ok
fi

# config-gpu.yaml's smallest size; its settings, merged under these overrides
SIZE=$(awk '/sizes:/ {gsub(/[][,]/, " "); print $2; exit}' "$REPO/config-gpu.yaml")
# From the registry: the first architecture with a compiled operator, and every operator
# (rule build_kernels builds them all).
read -r ARCH FAMILIES <<< "$("$PY" -c 'from symato.models import ARCHITECTURES as A
ops = [a for a in A if A[a].operator]
print(ops[0], *sorted({A[a].operator for a in ops}))')"
[ -n "${ARCH:-}" ] || { echo "FAIL symato's registry does not load with $PY"; exit 1; }
RUN=results/runs/symato/$ARCH-$SIZE-T200k
if [ "$want_device" = cuda ]; then
    want_precision=bf16; cpu_overrides=""
else  # the rehearsal: what a CPU can do
    want_precision=fp32; cpu_overrides="precision: auto, device: auto,"
fi
cat > "$WORK/config.yaml" <<EOF
corpus:
  sources: [{name: vi, format: text, paths: ["input/*.txt"]}]
  shards: 2
tokenizers: [symato]
clean: {val_fraction: 0.2}
train:
  grids:
    - {name: gpu, tokenizers: [symato], archs: [$ARCH], sizes: [$SIZE], tokens: [200000]}
  settings: {ctx_len: 64, batch_size: 16, warmup: 0.05, eval_interval: 50,
             eval_windows: 4, log_interval: 10, checkpoint_steps: 50, $cpu_overrides
             threads: 2, max_epochs: 1000}  # a speed check: repeating the tiny text is fine
  gpus_per_run: $([ "$want_device" = cuda ] && echo 1 || echo 0)
  retries: 0
eval:
  device: $want_device
  threads: 2
  restoration_syllables: 200
  prompts: ["", "Hà Nội"]
  sample_tokens: 16
EOF

cd "$REPO"
set +e
start=$(date +%s)
# --foreground keeps Snakemake in the caller's process group: a caller's own timeout
# (run.sh) then ends Snakemake and its jobs too, instead of orphaning them.
timeout --foreground -s INT -k 30 900 "$PY" -m snakemake -s "$REPO/Snakefile" -d "$WORK" \
    --configfile "$REPO/config-gpu.yaml" "$WORK/config.yaml" --cores 4 data "$RUN/metrics.json" \
    > "$WORK/snakemake.log" 2>&1
rc=$?
# From here on a failed check is counted, not fatal: every check prints its line.
echo "snakemake exit $rc after $(( $(date +%s) - start )) s (log: $WORK/snakemake.log)"
check "workflow finished" $rc
grep '^Provided resources:' "$WORK/snakemake.log" | grep -Eq "gpu=(Resource\(\"gpu\", )?$want_gpus\b"
check "Snakemake registered gpu=$want_gpus (the GPUs present)" $?
if [ "$want_device" = cuda ]; then
    grep -E -A12 '^(local)?rule train:' "$WORK/snakemake.log" | grep -q 'gpu=1'
    check "training job was granted gpu=1" $?
fi

"$PY" - "$WORK/results/kernels/$want_device.json" "$FAMILIES" <<'PYEOF'
import json, sys
record = json.loads(open(sys.argv[1]).read())
print("kernels", record["device"], {k: v["build_dir"] for k, v in record["families"].items()},
      "target", record.get("cuda_target"), "nvcc", record.get("nvcc"))
sys.exit(0 if set(record["families"]) == set(sys.argv[2].split()) else 1)
PYEOF
check "build_kernels built every family for $want_device once" $?
grep -q "operator backend $want_device," "$WORK/results/logs/train/symato/$ARCH-$SIZE-T200k.log"
check "the training log names operator backend $want_device" $?

if [ -f "$WORK/$RUN/model.pt" ]; then
    "$PY" - "$WORK/$RUN" "$want_device" "$want_precision" <<'PYEOF'
import json, math, sys
from pathlib import Path
from symato.run.checkpoint import read_payload
run, want, precision = Path(sys.argv[1]), sys.argv[2], sys.argv[3]
meta = read_payload(run)["meta"]
metrics = json.loads((run / "metrics.json").read_text())
steps = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
print("device", meta.get("device"), "world_size", meta.get("world_size"),
      "steps", steps[-1]["step"], "tokens/s", round(meta.get("tokens_per_second", 0)),
      "mfu", steps[-1].get("mfu"), "bpb", metrics.get("bits_per_byte"))
print("backend", meta.get("backend"), "precision", meta.get("precision"),
      "device_name", meta.get("device_name"), "| metrics.json:", metrics.get("backend"),
      metrics.get("precision"), metrics.get("device_name"))
ok = (str(meta.get("device", "")).startswith(want) and meta.get("world_size") == 1
      and math.isfinite(metrics["bits_per_byte"]) and steps[-1]["train_loss"] < steps[0]["train_loss"])
record = (meta.get("backend"), meta.get("precision")) == (want, precision) and all(
    metrics.get(k) == meta.get(k) for k in ("backend", "precision", "device_name"))
print("RECORD", "ok" if record else "WRONG")
sys.exit(0 if ok and record else 1)
PYEOF
    check "model on $want_device, world_size 1, loss went down, finite bits per byte, backend $want_device and precision $want_precision recorded" $?
else
    check "model.pt written" 1
fi

if [ -n "${OUT:-}" ]; then
    mkdir -p "$OUT"
    cp "$WORK/snakemake.log" "$WORK/config.yaml" "$OUT/" 2>/dev/null || true
    cp "$WORK/$RUN/metrics.json" "$WORK/$RUN/metrics.jsonl" "$OUT/" 2>/dev/null || true
    cp "$WORK/results/kernels/$want_device.json" "$OUT/kernels.json" 2>/dev/null || true
    cp -r "$WORK/results/logs/build_kernels" "$OUT/build-logs" 2>/dev/null || true
    cp -r "$WORK/results/logs/train" "$OUT/train-logs" 2>/dev/null || true
fi
echo "$fails check(s) failed"
[ "$fails" -eq 0 ]
