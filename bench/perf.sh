#!/usr/bin/env bash
# FP32 benchmark: Kiln against PyTorch Inductor, AOTInductor, ONNX Runtime and OpenVINO on the
# torchvision CNNs and/or the public zoo, same thread count for all. Writes
# bench/results/perf.md (table), perf.png (chart) and perf.json (all numbers); see
# bench/perf.py for the method.
#
#   bench/perf.sh [--models a,b,...] [--set cnn12|zoo|all] [--threads N] [--runs N] [perf.py options...]
#
# Models: --models takes model names and set names, --set a set name (both may be given): cnn12
# (the 12 torchvision CNNs of bench/export_models.py; the default), zoo (the 15 models of
# bench/export_zoo.py) or all. E.g. the full comparison: bench/perf.sh --set all.
#
# Steps: the torch venv (scripts/lib.sh ensure_torch_venv), the ONNX exports
# (bench/export_models.py for the CNNs, bench/export_zoo.py for the zoo, both into
# $KILN_CACHE/bench and cached; the zoo's are checked with ONNX Runtime each time),
# `kiln compile --library shared` of every model (timed, into a fresh
# $KILN_CACHE/bench/perf-kiln.XXXXXX/<model>), then bench/perf.py. Other options go to perf.py
# as they are (e.g. --block 0.25, --warmup 1, --runtimes ort,openvino,kiln, --fresh-aoti,
# --out-dir DIR).
#
# Environment: KILN (the kiln binary; default <repo>/.build/release/kiln),
# KILN_COMPILE_FLAGS (extra `kiln compile` arguments, e.g. "--cpu native"; default none),
# KILN_CACHE (default ~/.cache/kiln), KILN_PERF_KEEP=1 (keep the compiled libraries; the
# directory is printed).
#
# Exit status: perf.py's (1 when Kiln failed to compile or run, or mismatched ONNX Runtime, on
# some model; the table is written all the same).
#
# The 12 CNNs took about 17 minutes on the 2-core machine with empty caches and the four
# runtimes before OpenVINO (AOTInductor packages are then cached, keyed by torch version, CPU
# and model, but their first compile time is kept and reported); OpenVINO adds a fifth runtime
# to every round, and the zoo adds 15 models, whose time goes mostly into Inductor and
# AOTInductor compiles (leave them out with --runtimes ort,openvino,kiln). More when other
# processes keep the CPUs busy: perf.py waits a little for quiet and reruns disturbed timing
# blocks, and perf.md says how many it had to keep.
set -euo pipefail
here="$(cd -P -- "$(dirname -- "${BASH_SOURCE[0]}")" && pwd -P)"
source "$here/../scripts/lib.sh"

models=""
model_set=""
threads=2
runs=15
extra=()
invocation="bench/perf.sh${*+ $*}"
usage() {
    sed -n '2,/^set -euo/p' "${BASH_SOURCE[0]}" | sed -e '$d' -e 's/^# \{0,1\}//' >&2
}
while [[ $# -gt 0 ]]; do
    case "$1" in
        --models) models="$2"; shift 2 ;;
        --models=*) models="${1#*=}"; shift ;;
        --set) model_set="$2"; shift 2 ;;
        --set=*) model_set="${1#*=}"; shift ;;
        --threads) threads="$2"; shift 2 ;;
        --threads=*) threads="${1#*=}"; shift ;;
        --runs) runs="$2"; shift 2 ;;
        --runs=*) runs="${1#*=}"; shift ;;
        -h|--help) usage; exit 0 ;;
        *) extra+=("$1"); shift ;;
    esac
done
[[ "$threads" =~ ^[1-9][0-9]*$ ]] || { echo "perf.sh: --threads wants a positive integer" >&2; exit 2; }
[[ "$runs" =~ ^[1-9][0-9]*$ ]] || { echo "perf.sh: --runs wants a positive integer" >&2; exit 2; }
models="${models// /}"

KILN="${KILN:-$kiln_root/.build/release/kiln}"
if [[ ! -x "$KILN" ]]; then
    echo "perf.sh: no kiln binary at $KILN: build it (swift build -c release --product kiln) or set KILN" >&2
    exit 2
fi
read -r -a compile_flags <<<"${KILN_COMPILE_FLAGS:-}"
cache="${KILN_CACHE:-${HOME:-/root}/.cache/kiln}/bench"
# The libraries of this run only (two runs at once must not rebuild each other's), removed at
# the end unless KILN_PERF_KEEP=1.
mkdir -p "$cache"
kiln_dir="$(mktemp -d "$cache/perf-kiln.XXXXXX")"
if [[ "${KILN_PERF_KEEP:-0}" != 1 ]]; then
    trap 'rm -rf "$kiln_dir"' EXIT
fi
export OMP_NUM_THREADS="$threads"

t0=$(date +%s)
ensure_torch_venv
# The model names, sets expanded (perf.py knows them): all, the CNNs among them, the zoo's.
select=(--print-models)
[[ -n "$models" ]] && select+=(--models "$models")
[[ -n "$model_set" ]] && select+=(--set "$model_set")
resolved="$("$KILN_TORCH_PY" "$here/perf.py" "${select[@]}")" || exit 2
# (The command substitution drops trailing empty lines: a read may meet the end.)
cnn_models="" zoo_models=""
{ read -r models; read -r cnn_models || true; read -r zoo_models || true; } <<<"$resolved"
if [[ -n "$cnn_models" ]]; then
    "$KILN_TORCH_PY" "$here/export_models.py" --out "$cache" --models "$cnn_models" >&2
fi
if [[ -n "$zoo_models" ]]; then
    "$KILN_TORCH_PY" "$here/export_zoo.py" --out "$cache" --models "$zoo_models" --threads "$threads" >&2
fi
t_export=$(date +%s)

# Kiln: compile every model, timed. compile.json holds the seconds, compile.error the log
# of a failed compile (perf.py shows it as the model's Kiln error).
IFS=',' read -r -a list <<<"$models"
for m in "${list[@]}"; do
    out="$kiln_dir/$m"
    rm -rf "$out"
    mkdir -p "$out"
    start=$(date +%s%N)
    status=0
    "$KILN" compile "$cache/$m.onnx" -o "$out" --name "$m" --library shared \
        ${compile_flags[@]+"${compile_flags[@]}"} >"$out/compile.log" 2>&1 || status=$?
    if [[ $status -eq 0 ]]; then
        ms=$((($(date +%s%N) - start) / 1000000))
        secs="$((ms / 1000)).$(printf '%03d' $((ms % 1000)))"
        printf '{"seconds": %s}\n' "$secs" >"$out/compile.json"
        echo "perf.sh: kiln compile $m: ${secs} s" >&2
    else
        # perf.py shows the last line: the log's, or the exit status when the log is empty.
        { echo "exit status $status"; cat "$out/compile.log"; } >"$out/compile.error"
        echo "perf.sh: kiln compile $m FAILED: $(tail -1 "$out/compile.error")" >&2
    fi
done
t_compile=$(date +%s)

commit="$(git -C "$kiln_root" rev-parse --short HEAD 2>/dev/null || echo unknown)"
if [[ -n "$(git -C "$kiln_root" status --porcelain --untracked-files=no -- Sources include 2>/dev/null)" ]]; then
    commit="$commit (with uncommitted changes)"
fi
"$KILN_TORCH_PY" -c 'import json, sys; json.dump({"version": sys.argv[1], "commit": sys.argv[2], "compile_flags": sys.argv[3], "binary": sys.argv[4]}, open(sys.argv[5], "w"), indent=1)' \
    "$("$KILN" --version 2>/dev/null || echo unknown)" "$commit" "${KILN_COMPILE_FLAGS:-}" "$KILN" "$kiln_dir/kiln.json"

rc=0
"$KILN_TORCH_PY" "$here/perf.py" --kiln-dir "$kiln_dir" --models "$models" --threads "$threads" \
    --runs "$runs" --command "$invocation" ${extra[@]+"${extra[@]}"} || rc=$?
t_end=$(date +%s)
if [[ "${KILN_PERF_KEEP:-0}" == 1 ]]; then
    echo "perf.sh: Kiln's libraries are in $kiln_dir" >&2
fi
echo "perf.sh: venv + export $((t_export - t0)) s, kiln compiles $((t_compile - t_export)) s, perf.py $((t_end - t_compile)) s, total $((t_end - t0)) s" >&2
exit "$rc"
