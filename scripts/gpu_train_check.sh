#!/usr/bin/env bash
# One-GPU end-to-end check: the real workflow (data stages, one training run on the GPU,
# its evaluation) on a tiny config, through the local profile (profiles/default), which
# must find the GPU and grant it to the training job.
#
#   scripts/gpu_train_check.sh [WORKDIR]        # default: a fresh temp dir
#
# Needs a CUDA build of torch in $PY (default .venv/bin/python, else python3; the device
# image's python3 needs the wheels of scripts/device_wheels.sh, as scripts/gpu_session.sh does). Checks: Snakemake registers the
# GPUs nvidia-smi lists as the `gpu` limit; the training job gets gpu=1; the trained
# model says device=cuda, world_size=1; evaluation writes finite bits per byte. Prints
# one PASS/FAIL line per check and exits non-zero on any failure. ALLOW_CPU=1 runs the
# same steps on a machine without a GPU (device checks become "cpu"), to test the script.
# With $OUT set (device runner), the logs and metrics are copied there.
set -euo pipefail

REPO="$(cd "$(dirname "$0")/.." && pwd)"
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
    if [ "${ALLOW_CPU:-0}" != 1 ]; then
        echo "FAIL no GPU found (nvidia-smi); ALLOW_CPU=1 to run on CPU anyway"; exit 1
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

RUN=results/runs/symato/rwkv-L2-D64-T200k
cat > "$WORK/config.yaml" <<EOF
corpus:
  sources: [{name: vi, format: text, paths: ["input/*.txt"]}]
  shards: 2
tokenizers: [symato]
tokenize: {val_fraction: 0.2}
train:
  grids:
    - {name: gpu, tokenizers: [symato], archs: [rwkv], sizes: [L2-D64], tokens: [200000]}
  settings: {ctx_len: 64, batch_size: 16, eval_interval: 50, eval_windows: 4, threads: 2,
             device: auto, checkpoint_steps: 50}
  gpus_per_run: $([ "$want_device" = cuda ] && echo 1 || echo 0)
  retries: 0
eval:
  restoration_syllables: 200
  prompts: ["", "Hà Nội"]
  sample_tokens: 16
EOF

cd "$REPO"
set +e
start=$(date +%s)
# --foreground keeps Snakemake in the caller's process group: a caller's own timeout
# (scripts/gpu_session.sh) then ends Snakemake and its jobs too, instead of orphaning them.
timeout --foreground -s INT -k 30 900 "$PY" -m snakemake -s "$REPO/Snakefile" -d "$WORK" \
    --configfile "$WORK/config.yaml" --cores 4 data "$RUN/metrics.json" > "$WORK/snakemake.log" 2>&1
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

if [ -f "$WORK/$RUN/model.pt" ]; then
    "$PY" - "$WORK/$RUN" "$want_device" <<'PYEOF'
import json, math, sys
from pathlib import Path
from symato.run.checkpoint import read_payload
run, want = Path(sys.argv[1]), sys.argv[2]
meta = read_payload(run)["meta"]
metrics = json.loads((run / "metrics.json").read_text())
steps = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
print("device", meta.get("device"), "world_size", meta.get("world_size"),
      "steps", len(steps), "tokens/s", round(meta.get("tokens_per_second", 0)),
      "mfu", steps[-1].get("mfu"), "bpb", metrics.get("bits_per_byte"))
ok = (str(meta.get("device", "")).startswith(want) and meta.get("world_size") == 1
      and math.isfinite(metrics["bits_per_byte"]) and steps[-1]["train_loss"] < steps[0]["train_loss"])
sys.exit(0 if ok else 1)
PYEOF
    check "model on $want_device, world_size 1, loss went down, finite bits per byte" $?
else
    check "model.pt written" 1
fi

if [ -n "${OUT:-}" ]; then
    mkdir -p "$OUT"
    cp "$WORK/snakemake.log" "$WORK/config.yaml" "$OUT/" 2>/dev/null || true
    cp "$WORK/$RUN/metrics.json" "$WORK/$RUN/metrics.jsonl" "$OUT/" 2>/dev/null || true
    cp -r "$WORK/results/logs/train" "$OUT/train-logs" 2>/dev/null || true
fi
echo "$fails check(s) failed"
[ "$fails" -eq 0 ]
