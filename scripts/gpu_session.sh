#!/usr/bin/env bash
# The one command for a lent GPU machine: every GPU check this project has, in order of
# value, inside one time budget, with every result packed into $OUT within its limits.
#
# Why one script: a lent machine costs device time from start-up to give-back (15 minutes
# in all, one command <= 10 min), so the checks run as a single prepared call that cannot
# overrun: each step gets its own `timeout`, capped by what is left of SESSION_BUDGET (step a
# also leaves step c its full time), and a step that fails or times out does not stop the
# later ones.
#
# On the device (run tool): first, here, `bash scripts/device_wheels.sh` (fills .whl/ with
# snakemake & co., ~31 MiB); then run with carry [".whl"], timeout_s 600, command
#     bash scripts/gpu_session.sh
# CPU rehearsal (no GPU; CUDA steps are downgraded to their CPU plumbing):
#     ALLOW_CPU=1 OUT=/tmp/out PYTHON=... WHEELS=... bash scripts/gpu_session.sh
#
# Steps: (a) scripts/gpu_check.sh: WKV-4 and WKV-7 kernel builds, checks vs float64, timings,
# CUDA tests;
# (c) scripts/gpu_train_check.sh: the real Snakemake workflow with rule build_kernels and one
# training run of config-gpu.yaml's smallest size on the GPU, checking its backend record;
# (b) benchmarks/bench_train.py, RWKV vs GPT at L6-D512, ctx 1024, batch 32, head size 64
# (after c: a benchmark gives way to the correctness checks when setup or a ran long);
# then, only with time left: (d0) RWKV-7 and Llama at L6-D512, (d) bench_train.py over
# the config-gpu grid sizes and
# (e) L6-D512 with --compile. The bench_train tables name the backend, precision and device
# of every row.
# $OUT gets at most 6 files: summary.md, session.log, gpu_check.md, gpu_check.json,
# bench_train.md and logs.tar.gz (every step's log, the workflow's logs and metrics).
#
# Environment: SESSION_BUDGET (s, default 510: ends well within 9 minutes), PYTHON (default
# python3, the device's torch), WHEELS (default .whl), ALLOW_CPU=1, OUT (default
# results/gpu_session).
set -uo pipefail
cd "$(dirname "$0")/.." || exit 2
REPO="$PWD"
START=$(date +%s)
BUDGET="${SESSION_BUDGET:-510}"
RESERVE=15  # seconds kept for packing the results
OUT="${OUT:-$REPO/results/gpu_session}"
mkdir -p "$OUT"
OUT="$(cd "$OUT" && pwd)"
STAGE="$(mktemp -d -t gpu-session.XXXXXX)"  # everything lands here first, then is packed
export PYTHONUNBUFFERED=1
export SYMATO_BUILD_DIR="${SYMATO_BUILD_DIR:-/tmp/symato-build}"  # shared: built once
# The kernel build key includes the CUDA toolkit's path (symato/models/ops/extension.py), so
# every step must see the same CUDA_HOME; gpu_check.sh (step a) sets it by this rule, and
# without it here the later steps would take torch's own guess, maybe another path, and
# rebuild both CUDA kernels inside their short caps.
[ -n "${CUDA_HOME:-}" ] || { [ -d /usr/local/cuda ] && export CUDA_HOME=/usr/local/cuda; } || true
export MAX_JOBS="${MAX_JOBS:-$(nproc)}"
PY="${PYTHON:-python3}"
WHEELS="${WHEELS:-$REPO/.whl}"
SITE="$STAGE/site"
MODE=unknown
# Everything printed also goes to $OUT/session.log (the tool returns only a tail).
exec > >(tee "$OUT/session.log") 2>&1
TEE_PID=$!

elapsed() { echo $(( $(date +%s) - START )); }
say() { printf '[%4ss] %s\n' "$(elapsed)" "$*"; }
SUMMARY=()
FAILED=0

reap() {  # kill what a step left running (Snakemake starts jobs in their own sessions)
    local p pids=()
    for p in /proc/[0-9]*; do
        if tr '\0' '\n' 2>/dev/null < "$p/environ" | grep -qx "SYMATO_SESSION_STEP=$1"; then
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
        case $name in a_*|b_*|c_*) FAILED=$((FAILED + 1)) ;; esac  # (d, e: fillers)
        return 0
    fi
    say "=== $name (limit ${limit}s): $*"
    local t0 rc status
    t0=$(date +%s)
    # INT first: Snakemake stops its jobs on it, Python steps raise KeyboardInterrupt.
    SYMATO_SESSION_STEP="$name-$$" timeout -s INT -k 20 "$limit" "$@" > "$STAGE/$name.log" 2>&1
    rc=$?
    reap "$name-$$"
    case $rc in 0) status=PASS ;; 124|137) status="TIMEOUT (${limit}s)" ;; *) status="FAIL (rc $rc)" ;; esac
    [ $rc -eq 0 ] || FAILED=$((FAILED + 1))
    tail -n "${TAIL_LINES:-25}" "$STAGE/$name.log"
    say "$name: $status after $(( $(date +%s) - t0 ))s"
    SUMMARY+=("| $name | $status | $(( $(date +%s) - t0 )) | $name.log |")
    # A build killed by a timeout leaves torch's lock file behind; the loader's OS lock
    # (symato/models/ops/extension.py) lets the next step's build remove it, so nothing
    # is cleaned here: the session exercises that path for real.
}

finish() {  # let tee finish $OUT/session.log before the tool collects $OUT
    [ "${KEEP_STAGE:-0}" = 1 ] || rm -rf "$STAGE"  # a rehearsal leaves no scratch behind
    exec 1>&- 2>&-
    wait "$TEE_PID" 2>/dev/null
    exit "$1"
}

pack() {  # results into $OUT: <= 8 plain files, flat names, each well under 16 MiB
    say "packing results into $OUT"
    {
        echo "# GPU session $(date -u +%FT%TZ), $(elapsed)s of ${BUDGET}s, mode $MODE"
        echo; echo "| step | result | seconds | log |"; echo "| --- | --- | ---: | --- |"
        printf '%s\n' ${SUMMARY[@]+"${SUMMARY[@]}"}  # (bash < 4.4: empty array + set -u)
        echo; echo '```'; cat "$STAGE/facts.txt" 2>/dev/null; echo '```'
        if [ -f "$STAGE/a_gpu_check.log" ]; then
            echo; echo "## gpu_check (correctness, tests)"; echo '```'
            grep -E 'check \(|correctness:|FAIL|passed|failed|error' "$STAGE/a_gpu_check.log" | tail -n 30
            echo '```'; fi
        if [ -f "$STAGE/gpu_check/gpu_check.md" ]; then
            echo; echo "## gpu_check.md"; cat "$STAGE/gpu_check/gpu_check.md"; fi
        if [ -f "$STAGE/bench_train.md" ]; then echo; cat "$STAGE/bench_train.md"; fi
        if [ -f "$STAGE/c_train_check.log" ]; then
            echo; echo "## gpu_train_check"; echo '```'
            grep -E '^(PASS|FAIL|device |backend |kernels |RECORD|snakemake exit|[0-9]+ check)' \
                "$STAGE/c_train_check.log"
            echo '```'; fi
    } > "$STAGE/summary.md"
    cp "$STAGE/summary.md" "$OUT/summary.md"
    for f in gpu_check.md gpu_check.json; do
        [ -f "$STAGE/gpu_check/$f" ] && cp "$STAGE/gpu_check/$f" "$OUT/$f"
    done
    [ -f "$STAGE/bench_train.md" ] && cp "$STAGE/bench_train.md" "$OUT/bench_train.md"
    # Logs only (no shards, models or build trees); files over 4 MiB are cut to their tail.
    (cd "$STAGE" && find . -path ./site -prune -o -path ./train_work/results/shards -prune \
        -o -type f \( -name '*.log' -o -name '*.md' -o -name '*.json' -o -name '*.jsonl' \
        -o -name '*.yaml' -o -name '*.txt' -o -name '*.tsv' \) -print) | sort > "$STAGE/pack.list"
    while read -r f; do
        [ "$(stat -c %s "$STAGE/$f")" -le 4194304 ] || { tail -c 4194304 "$STAGE/$f" > "$STAGE/$f.cut"; mv "$STAGE/$f.cut" "$STAGE/$f"; }
    done < "$STAGE/pack.list"
    tar -czf "$OUT/logs.tar.gz" -C "$STAGE" -T "$STAGE/pack.list" 2>/dev/null
    # The tool's limits on what comes back: <= 8 files, <= 16 MiB each, plain names.
    local n big odd
    n=$(find "$OUT" -type f | wc -l)
    big=$(find "$OUT" -type f -size +16M | wc -l)
    odd=$(find "$OUT" -mindepth 1 -printf '%P\n' | grep -c '[^A-Za-z0-9._/-]')
    find "$OUT" -type f -printf '  %s  %P\n' | sort -k2
    if [ "$n" -le 8 ] && [ "$big" -eq 0 ] && [ "$odd" -eq 0 ]; then say "OUT ok: $n files"
    else say "WARNING: OUT breaks the tool's limits: $n files, $big over 16 MiB, $odd odd names"; fi
}

# --- setup: facts, wheels, mode ---------------------------------------------------------
{
    echo "host $(uname -n) $(uname -m), $(nproc) CPUs; python: $(command -v "$PY")"
    command -v nvidia-smi >/dev/null && nvidia-smi --query-gpu=name,memory.total,driver_version \
        --format=csv,noheader
    command -v nvcc >/dev/null && nvcc --version | tail -1
    "$PY" -c 'import sys, torch; print("python", sys.version.split()[0], "torch", torch.__version__,
"cuda", torch.version.cuda, "available", torch.cuda.is_available())'
} > "$STAGE/facts.txt" 2>&1
cat "$STAGE/facts.txt"
if ls "$WHEELS"/*.whl >/dev/null 2>&1; then
    say "installing $(find "$WHEELS" -maxdepth 1 -name '*.whl' | wc -l) wheels from $WHEELS into $SITE"
    "$PY" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade \
        --target "$SITE" "$WHEELS"/*.whl || say "WARNING: wheel install failed"
fi
export PYTHONPATH="$SITE:$REPO${PYTHONPATH:+:$PYTHONPATH}"
# The tokenizer's compiled decoder (symato/text/_fastdecode.c), built in place as `pip
# install -e .` would: symato runs from this tree on PYTHONPATH, and decoding without the
# extension is an error unless the Python decoders are asked for by name.
if "$PY" setup.py -q build_ext --inplace > "$STAGE/build_ext.log" 2>&1; then
    say "built symato.text._fastdecode in place"
else
    tail -n 5 "$STAGE/build_ext.log"
    say "WARNING: symato.text._fastdecode did not build (build_ext.log); decoding runs the" \
        "Python decoders, by name: SYMATO_DECODER=python"
    export SYMATO_DECODER=python
    echo "SYMATO_DECODER=python (the compiled decoder did not build)" >> "$STAGE/facts.txt"
fi
"$PY" - "$WHEELS/device-wheels.txt" <<'PYEOF' 2>&1 | tee -a "$STAGE/facts.txt"
# Which closure packages came from the image, at which version vs the one resolved for it.
import importlib, importlib.metadata as md, sys
from pathlib import Path
for mod in ("snakemake", "jsonschema", "zstandard", "symato"):
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
# Version conflicts that involve a carried package (the image's own ones are not ours).
carried=$(awk '$1 == "carry" {print $2}' "$WHEELS/device-wheels.txt" 2>/dev/null \
    | sed 's/-/[-_.]/g' | paste -sd'|')
if [ -n "$carried" ]; then
    conflicts=$(timeout 60 "$PY" -m pip check 2>&1 | grep -iE "(^| )($carried)[ ,]")
    echo "pip check: ${conflicts:-no conflict involving a carried package}" | tee -a "$STAGE/facts.txt"
fi

MODE=cuda
if ! "$PY" -c 'import sys, torch; sys.exit(0 if torch.cuda.is_available() else 1)' 2>/dev/null; then
    if [ "${ALLOW_CPU:-0}" != 1 ]; then
        say "FAIL: $PY sees no CUDA GPU (ALLOW_CPU=1 rehearses on CPU)"; MODE=none
        SUMMARY+=("| setup | FAIL (no GPU) | $(elapsed) | session.log |"); FAILED=1
        pack; finish 1
    fi
    MODE=cpu
fi
if [ "$MODE" = cuda ] && [ -z "${TORCH_CUDA_ARCH_LIST:-}" ]; then
    # One arch list for every step, so the training job loads the build step (a) made.
    TORCH_CUDA_ARCH_LIST=$("$PY" -c 'import torch; print("%d.%d" % torch.cuda.get_device_capability())')
    export TORCH_CUDA_ARCH_LIST
fi
say "mode $MODE; budget ${BUDGET}s; TORCH_CUDA_ARCH_LIST=${TORCH_CUDA_ARCH_LIST:-}; CUDA_HOME=${CUDA_HOME:-}"

# --- the steps, in order of value -------------------------------------------------------
BENCH=(benchmarks/bench_train.py --archs rwkv gpt)
C_CAP=160  # step c: a fresh workflow (data stages, build_kernels loading a's build, training)
# Step a runs to at most 310 s (250 before WKV-7: a second extension build, its checks and
# timings) but always leaves c its C_CAP, however long setup took; b runs after c, in what
# is left (up to its cap), and the fillers d0, d, e only after that.
if [ "$MODE" = cuda ]; then
    run_step a_gpu_check "$(cap_leaving "$C_CAP" 310)" env OUT="$STAGE/gpu_check" PYTHON="$PY" \
        bash scripts/gpu_check.sh
else  # CPU rehearsal: the CUDA build alone where torch has CUDA (nvcc needs no GPU), else
    # the kernel source compiled for the CPU (emulated tests); a tiny CPU benchmark.
    if command -v nvcc >/dev/null && "$PY" -c 'import sys, torch; sys.exit(not torch.version.cuda)'; then
        run_step a_gpu_check "$(cap_leaving "$C_CAP" 230)" env OUT="$STAGE/gpu_check" \
            PYTHON="$PY" SYMATO_CUDA_ARCH=9.0 bash scripts/gpu_check.sh --compile-only
    else
        run_step a_gpu_check "$(cap_leaving "$C_CAP" 230)" "$PY" -m pytest -q -p no:cacheprovider \
            tests/test_wkv.py tests/test_wkv7.py -k emulated
    fi
fi
# Its own OUT copying goes to the stage too: the files it copies would break $OUT's limits.
run_step c_train_check "$C_CAP" env ALLOW_CPU="${ALLOW_CPU:-0}" PY="$PY" OUT="$STAGE/train_out" \
    bash scripts/gpu_train_check.sh "$STAGE/train_work"
if [ "$MODE" = cuda ]; then
    run_step b_bench_L6-D512 70 "$PY" "${BENCH[@]}" --device cuda --sizes L6-D512 \
        --ctx-len 1024 --batch-size 32 --head-size 64 --warmup 5 --steps 20
else
    run_step b_bench_L6-D512 80 "$PY" "${BENCH[@]}" --device cpu --sizes L1-D32 \
        --ctx-len 64 --batch-size 4 --head-size 16 --warmup 1 --steps 2
fi
if [ "$MODE" = cuda ]; then  # fillers: only what the remaining budget allows
    # RWKV-7 and Llama beside the L6-D512 pair of step b (issue #14's GPU rows)
    run_step d0_bench_new_archs 70 "$PY" benchmarks/bench_train.py --archs rwkv7 llama \
        --device cuda --sizes L6-D512 --ctx-len 1024 --batch-size 32 --head-size 64 \
        --warmup 5 --steps 20
    run_step d_bench_grid 90 "$PY" "${BENCH[@]}" --device cuda --ctx-len 1024 --batch-size 32 \
        --head-size 64 --sizes L4-D128 L6-D256 L8-D384 L12-D512 L12-D768
    run_step e_bench_compile 120 "$PY" "${BENCH[@]}" --device cuda --sizes L6-D512 \
        --ctx-len 1024 --batch-size 32 --head-size 64 --warmup 5 --steps 20 --compile
fi
for s in b_bench_L6-D512 d0_bench_new_archs d_bench_grid e_bench_compile; do
    [ -f "$STAGE/$s.log" ] || continue
    { echo "## $s"; echo; grep -E '^(machine:|\|)' "$STAGE/$s.log"; echo; } >> "$STAGE/bench_train.md"
done

pack
say "SUMMARY ($FAILED step(s) failed, mode $MODE)"
cat "$OUT/summary.md"
finish $(( FAILED > 0 ))
