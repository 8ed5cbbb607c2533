#!/usr/bin/env bash
# The GPU suite: every GPU check and benchmark of symato, in order of value, inside one
# time budget, with the results in one folder (benchmarks/gpu/README.md says what each
# step measures and which docs/benchmarks.md rows it fills).
#
#   bash benchmarks/gpu/run.sh [--quick] [--out DIR] [--budget SECONDS] [--device cpu]
#
# Run from anywhere, on a machine with an NVIDIA GPU, a CUDA build of torch and the CUDA
# toolkit (nvcc), with the project's dependencies installed (`pip install -e .`, README
# "On a GPU"). Defaults: --out results/gpu, --budget 510 (about 8.5 minutes, 300 with
# --quick). --device cpu rehearses the suite on a machine without a GPU (the CPU kernels
# checked, a tiny CPU benchmark, the workflow check on the CPU; budget 1200): it tests
# this script.
#
# Why one script under one budget: the steps are independent, so a step that fails or
# runs out of time must not cost the others their results. Each step gets its own
# `timeout`, capped by what is left of the budget (step a also leaves step c its full
# time), and a failed step does not stop the later ones. Steps:
#   (a) kernels.py: WKV-4 and WKV-7 kernel builds, errors vs float64, timings, copy
#       bandwidth; then the CUDA cases of tests/test_wkv*.py;
#   (c) train_check.sh: the real Snakemake workflow (config-gpu.yaml's settings, a tiny
#       corpus) with rule build_kernels and one training run on the GPU;
#   (b) benchmarks/bench_train.py: training tokens/s and MFU of every architecture of the
#       registry at L6-D512, ctx 1024, batch 32, head size 64;
#   then, only with time left and not with --quick: (d) the same over the config-gpu.yaml
#   grid sizes, (e) L6-D512 with --compile, (f) benchmarks/bench_context.py: RWKV-7 and
#   Llama time per generated token and memory after 256 to 64k tokens of context.
# Results in --out (at most 6 files): summary.md (what passed, timings, the tables),
# kernels.md and kernels.json (step a), bench_train.md (steps b, d, e), session.log and
# logs.tar.gz (every step's log, the workflow's logs and metrics).
#
# Environment: PYTHON (default: the first of .venv/bin/python, python3 whose torch has
# CUDA; with --device cpu, whose torch imports), SYMATO_BUILD_DIR (the package's kernel
# build cache, default ~/.cache/symato: every step loads what step a built), CUDA_HOME (default
# /usr/local/cuda when it exists), MAX_JOBS. A machine without network whose Python lacks
# snakemake & co. gets them from wheels: see lent_device.sh beside this file.
set -uo pipefail
cd "$(dirname "$0")/../.." || exit 2
REPO="$PWD"
HERE="$REPO/benchmarks/gpu"

QUICK=0
DEVICE=cuda
OUT=""
BUDGET=""
while [ $# -gt 0 ]; do
    case "$1" in
        --quick) QUICK=1; shift ;;
        --out) OUT="$2"; shift 2 ;;
        --budget) BUDGET="$2"; shift 2 ;;
        --device) DEVICE="$2"; shift 2 ;;
        -h|--help) sed -n '2,35p' "$0"; exit 0 ;;
        *) echo "run.sh: unknown argument '$1' (see --help)" >&2; exit 2 ;;
    esac
done
case "$DEVICE" in cuda|cpu) ;; *) echo "run.sh: --device wants cuda or cpu, got '$DEVICE'" >&2; exit 2 ;; esac
[ -n "$BUDGET" ] || BUDGET=$([ "$DEVICE" = cpu ] && echo 1200 || { [ "$QUICK" = 1 ] && echo 300 || echo 510; })
case "$BUDGET" in ''|*[!0-9]*) echo "run.sh: --budget wants seconds, got '$BUDGET'" >&2; exit 2 ;; esac

START=$(date +%s)
RESERVE=15  # seconds kept for packing the results
OUT="${OUT:-$REPO/results/gpu}"
mkdir -p "$OUT"
OUT="$(cd "$OUT" && pwd)"
STAGE="$(mktemp -d -t symato-gpu.XXXXXX)"  # everything lands here first, then is packed
export PYTHONUNBUFFERED=1
# The kernel build key includes the CUDA toolkit's path (symato/models/ops/extension.py), so
# every step must see the same CUDA_HOME, or the later steps would rebuild both CUDA
# kernels inside their short caps.
[ -n "${CUDA_HOME:-}" ] || { [ -d /usr/local/cuda ] && export CUDA_HOME=/usr/local/cuda; } || true
export MAX_JOBS="${MAX_JOBS:-$(nproc)}"
# symato from this checkout, also where it is not pip-installed
export PYTHONPATH="$REPO${PYTHONPATH:+:$PYTHONPATH}"

torch_ok() {  # torch_ok PY: its torch imports (and has CUDA, unless --device cpu)
    local want='torch.version.cuda'; [ "$DEVICE" = cpu ] && want='True'
    "$1" -c "import sys, torch; sys.exit(0 if $want else 1)" 2>/dev/null
}
PY="${PYTHON:-}"
if [ -z "$PY" ]; then
    for cand in "$REPO/.venv/bin/python" python3; do
        if command -v "$cand" >/dev/null && torch_ok "$cand"; then PY="$cand"; break; fi
    done
fi
[ -n "$PY" ] || { echo "run.sh: no python with torch$([ "$DEVICE" = cuda ] && echo ' (CUDA build)') found; set PYTHON" >&2; exit 2; }

# Everything printed also goes to $OUT/session.log.
exec > >(tee "$OUT/session.log") 2>&1
TEE_PID=$!

elapsed() { echo $(( $(date +%s) - START )); }
say() { printf '[%4ss] %s\n' "$(elapsed)" "$*"; }
SUMMARY=()
FAILED=0

reap() {  # kill what a step left running (Snakemake starts jobs in their own sessions)
    local p pids=()
    for p in /proc/[0-9]*; do
        if tr '\0' '\n' 2>/dev/null < "$p/environ" | grep -qx "SYMATO_GPU_STEP=$1"; then
            pids+=("${p#/proc/}"); fi
    done
    [ ${#pids[@]} -eq 0 ] || { say "killing ${#pids[@]} leftover process(es) of $1: ${pids[*]}"
                               kill -KILL "${pids[@]}" 2>/dev/null; sleep 1; }
}

cap_leaving() {  # cap_leaving KEEP CAP: CAP, cut so that KEEP seconds stay for later steps
    local left=$(( BUDGET - $(elapsed) - RESERVE - $1 ))
    echo $(( $2 < left ? $2 : left ))
}

run_step() {  # run_step NAME CAP_SECONDS COMMAND...: log to $STAGE/NAME.log, record the result
    local name="$1" cap="$2"; shift 2
    local left=$(( BUDGET - $(elapsed) - RESERVE ))
    local limit=$(( cap < left ? cap : left ))
    if [ "$limit" -lt 20 ]; then
        say "SKIP $name: ${left}s left of the budget, cap ${cap}s"
        SUMMARY+=("| $name | SKIP (no time) | 0 | - |")
        case $name in a*|b_*|c_*) FAILED=$((FAILED + 1)) ;; esac  # (d, e: fillers)
        return 0
    fi
    say "=== $name (limit ${limit}s): $*"
    local t0 rc status
    t0=$(date +%s)
    # INT first: Snakemake stops its jobs on it, Python steps raise KeyboardInterrupt.
    SYMATO_GPU_STEP="$name-$$" timeout -s INT -k 20 "$limit" "$@" > "$STAGE/$name.log" 2>&1
    rc=$?
    reap "$name-$$"
    case $rc in 0) status=PASS ;; 124|137) status="TIMEOUT (${limit}s)" ;; *) status="FAIL (rc $rc)" ;; esac
    [ $rc -eq 0 ] || FAILED=$((FAILED + 1))
    tail -n "${TAIL_LINES:-25}" "$STAGE/$name.log"
    say "$name: $status after $(( $(date +%s) - t0 ))s"
    SUMMARY+=("| $name | $status | $(( $(date +%s) - t0 )) | $name.log |")
    # A build killed by a timeout leaves torch's lock file behind; the loader's OS lock
    # (symato/models/ops/extension.py) lets the next step's build remove it, so nothing
    # is cleaned here: the suite exercises that path for real.
}

finish() {  # let tee finish $OUT/session.log before the caller reads $OUT
    [ "${KEEP_STAGE:-0}" = 1 ] || rm -rf "$STAGE"  # a rehearsal leaves no scratch behind
    exec 1>&- 2>&-
    wait "$TEE_PID" 2>/dev/null
    exit "$1"
}

pack() {  # results into $OUT: a few plain files with flat names, none large
    say "packing results into $OUT"
    {
        echo "# GPU suite $(date -u +%FT%TZ), $(elapsed)s of ${BUDGET}s, device $DEVICE$([ "$QUICK" = 1 ] && echo ', quick')"
        echo; echo "| step | result | seconds | log |"; echo "| --- | --- | ---: | --- |"
        printf '%s\n' ${SUMMARY[@]+"${SUMMARY[@]}"}  # (bash < 4.4: empty array + set -u)
        echo; echo '```'; cat "$STAGE/facts.txt" 2>/dev/null; echo '```'
        if [ -f "$STAGE/a_kernels.log" ]; then
            echo; echo "## kernels (correctness)"; echo '```'
            grep -E 'check \(|correctness:|FAIL|error' "$STAGE/a_kernels.log" | tail -n 30
            echo '```'; fi
        if [ -f "$STAGE/kernels/kernels.md" ]; then
            echo; echo "## kernels.md"; cat "$STAGE/kernels/kernels.md"; fi
        if [ -f "$STAGE/bench_train.md" ]; then echo; cat "$STAGE/bench_train.md"; fi
        if [ -f "$STAGE/c_train_check.log" ]; then
            echo; echo "## train_check"; echo '```'
            grep -E '^(PASS|FAIL|device |backend |kernels |RECORD|snakemake exit|[0-9]+ check)' \
                "$STAGE/c_train_check.log"
            echo '```'; fi
    } > "$STAGE/summary.md"
    cp "$STAGE/summary.md" "$OUT/summary.md"
    for f in kernels.md kernels.json; do
        [ -f "$STAGE/kernels/$f" ] && cp "$STAGE/kernels/$f" "$OUT/$f"
    done
    [ -f "$STAGE/bench_train.md" ] && cp "$STAGE/bench_train.md" "$OUT/bench_train.md"
    # Logs only (no shards, models or build trees); files over 4 MiB are cut to their tail.
    (cd "$STAGE" && find . -path ./train_work/results/shards -prune \
        -o -type f \( -name '*.log' -o -name '*.md' -o -name '*.json' -o -name '*.jsonl' \
        -o -name '*.yaml' -o -name '*.txt' -o -name '*.tsv' \) -print) | sort > "$STAGE/pack.list"
    while read -r f; do
        [ "$(stat -c %s "$STAGE/$f")" -le 4194304 ] || { tail -c 4194304 "$STAGE/$f" > "$STAGE/$f.cut"; mv "$STAGE/$f.cut" "$STAGE/$f"; }
    done < "$STAGE/pack.list"
    tar -czf "$OUT/logs.tar.gz" -C "$STAGE" -T "$STAGE/pack.list" 2>/dev/null
    find "$OUT" -type f -printf '  %s  %P\n' | sort -k2
}

# --- setup: facts, the compiled decoder, the architectures ------------------------------
{
    echo "host $(uname -n) $(uname -m), $(nproc) CPUs; python: $(command -v "$PY")"
    command -v nvidia-smi >/dev/null && nvidia-smi --query-gpu=name,memory.total,driver_version \
        --format=csv,noheader
    command -v nvcc >/dev/null && nvcc --version | tail -1
    "$PY" -c 'import sys, torch; print("python", sys.version.split()[0], "torch", torch.__version__,
"cuda", torch.version.cuda, "available", torch.cuda.is_available())'
    echo "git $(git -C "$REPO" rev-parse --short HEAD 2>/dev/null || echo '?')"
} > "$STAGE/facts.txt" 2>&1
cat "$STAGE/facts.txt"
# The tokenizer's compiled decoder (symato/text/_fastdecode.c): `pip install -e .` builds
# it; a checkout run from PYTHONPATH builds it in place here. Decoding without it is an
# error unless the Python decoders are asked for by name.
if ! "$PY" -c 'import symato.text._fastdecode' 2>/dev/null; then
    if "$PY" setup.py -q build_ext --inplace > "$STAGE/build_ext.log" 2>&1; then
        say "built symato.text._fastdecode in place"
    else
        tail -n 5 "$STAGE/build_ext.log"
        say "WARNING: symato.text._fastdecode did not build (build_ext.log); decoding runs the" \
            "Python decoders, by name: SYMATO_DECODER=python"
        export SYMATO_DECODER=python
        echo "SYMATO_DECODER=python (the compiled decoder did not build)" >> "$STAGE/facts.txt"
    fi
fi
# The architectures come from the registry (symato/models/registry.py), never a list here.
mapfile -t ARCHS < <("$PY" -c 'from symato.models import ARCHITECTURES; print(*ARCHITECTURES, sep="\n")')
if [ ${#ARCHS[@]} -eq 0 ]; then
    say "FAIL: symato does not import with $PY (PYTHONPATH=$PYTHONPATH)"
    SUMMARY+=("| setup | FAIL (symato) | $(elapsed) | session.log |"); pack; finish 1
fi
echo "architectures: ${ARCHS[*]}" | tee -a "$STAGE/facts.txt"

if [ "$DEVICE" = cuda ]; then
    if ! "$PY" -c 'import sys, torch; sys.exit(0 if torch.cuda.is_available() else 1)' 2>/dev/null; then
        say "FAIL: $PY sees no CUDA GPU (--device cpu rehearses the suite on a CPU)"
        SUMMARY+=("| setup | FAIL (no GPU) | $(elapsed) | session.log |"); pack; finish 1
    fi
    if [ -z "${TORCH_CUDA_ARCH_LIST:-}" ]; then
        # One arch list for every step, so the training job loads the build step (a) made.
        TORCH_CUDA_ARCH_LIST=$("$PY" -c 'import torch; print("%d.%d" % torch.cuda.get_device_capability())')
        export TORCH_CUDA_ARCH_LIST
    fi
fi
say "device $DEVICE; budget ${BUDGET}s; TORCH_CUDA_ARCH_LIST=${TORCH_CUDA_ARCH_LIST:-}; CUDA_HOME=${CUDA_HOME:-}"

# --- the steps, in order of value -------------------------------------------------------
QUICK_ARG=(); [ "$QUICK" = 1 ] && QUICK_ARG=(--quick)
C_CAP=160  # step c: a fresh workflow (data stages, build_kernels loading a's build, training)
# On a CPU the same run (a GPU-sized model) takes minutes: the rehearsal gives it most of
# the budget.
[ "$DEVICE" = cpu ] && C_CAP=$(( BUDGET * 2 / 3 ))
# Step a runs to at most 310 s (both CUDA builds, the baseline kernel, checks, timings) but
# always leaves c its C_CAP, however long setup took; b runs after c, in what is left (up
# to its cap), and the fillers d, e only after that.
A_CAP=$([ "$QUICK" = 1 ] && echo 200 || echo 250)
run_step a_kernels "$(cap_leaving "$C_CAP" "$A_CAP")" "$PY" "$HERE/kernels.py" \
    --device "$DEVICE" --out "$STAGE/kernels" ${QUICK_ARG[@]+"${QUICK_ARG[@]}"}
if [ "$DEVICE" = cuda ]; then  # the CUDA cases of the operator tests (they skip without a GPU)
    run_step a_cuda_tests "$(cap_leaving "$C_CAP" 60)" "$PY" -m pytest -q -p no:cacheprovider \
        tests/test_wkv*.py -k "cuda and not emulated and not compiles"
fi
# Its own OUT copying goes to the stage too.
run_step c_train_check "$C_CAP" env PY="$PY" OUT="$STAGE/train_out" \
    bash "$HERE/train_check.sh" --device "$DEVICE" "$STAGE/train_work"
if [ "$DEVICE" = cuda ]; then
    STEPS=$([ "$QUICK" = 1 ] && echo 10 || echo 20)
    BENCH=(benchmarks/bench_train.py --device cuda --ctx-len 1024 --batch-size 32 --head-size 64)
    run_step b_bench_L6-D512 140 "$PY" "${BENCH[@]}" --archs "${ARCHS[@]}" --sizes L6-D512 \
        --warmup 5 --steps "$STEPS"
    if [ "$QUICK" = 0 ]; then  # fillers: only what the remaining budget allows
        # shellcheck disable=SC2046  # the grid's sizes, one word each
        run_step d_bench_grid 90 "$PY" "${BENCH[@]}" --archs "${ARCHS[@]:0:2}" \
            --sizes $("$PY" -c 'import yaml; from symato.run.grid import parse_size
grids = yaml.safe_load(open("config-gpu.yaml"))["train"]["grids"]
print(*sorted({s for g in grids for s in g.get("sizes", [])}, key=parse_size))')
        run_step e_bench_compile 150 "$PY" "${BENCH[@]}" --archs "${ARCHS[@]}" --sizes L6-D512 \
            --warmup 5 --steps 20 --compile
        # issue #28 on a GPU: where RWKV-7 generation gets cheaper per token than Llama's
        run_step f_context 120 "$PY" benchmarks/bench_context.py --device cuda \
            --archs rwkv7 llama --contexts 256 1024 4096 16384 65536 --tokens 32 --markdown
    fi
else  # the rehearsal: every architecture, tiny, on the CPU
    run_step b_bench_L1-D32 80 "$PY" benchmarks/bench_train.py --device cpu --archs "${ARCHS[@]}" \
        --sizes L1-D32 --ctx-len 64 --batch-size 4 --head-size 16 --warmup 1 --steps 2
fi
for s in b_bench_L6-D512 b_bench_L1-D32 d_bench_grid e_bench_compile f_context; do
    [ -f "$STAGE/$s.log" ] || continue
    { echo "## $s"; echo; grep -E '^(machine:|\|)' "$STAGE/$s.log"; echo; } >> "$STAGE/bench_train.md"
done

pack
say "SUMMARY ($FAILED step(s) failed, device $DEVICE)"
cat "$OUT/summary.md"
finish $(( FAILED > 0 ))
