#!/usr/bin/env bash
# Checks Kiln's front end (import, shapes, simplification, reference interpreter)
# on real CNNs exported from torchvision.
#
#   bench/check_foundation.sh [--models a,b,...] [--eval a,b,...|all|none] [--no-results]
#
# 1. Exports the models (bench/export_models.py) to ${KILN_CACHE:-~/.cache/kiln}/bench/,
#    once: existing exports are reused.
# 2. `kiln inspect` on each of them: must exit 0 and say `unsupported: none`.
# 3. `kiln eval` on the --eval models (default resnet18,mobilenet_v3_large; also
#    $KILN_BENCH_EVAL), compared with ONNX Runtime with graph optimizations off
#    and with the defaults (bench/compare_ort.py): for every output,
#    max|kiln - ort| <= 1e-4 * max|ort|. On a mismatch, bench/debug_intermediates.py
#    names the first nodes that diverge.
# 4. dynamic_reshape.onnx (batch dimension left symbolic, Reshape target computed
#    by a Shape -> Gather -> Unsqueeze -> Concat sub-graph): `kiln inspect` without
#    --input-shape must report the unpinned dimension; `kiln eval` with
#    --input-shape input=2x3x32x32, and with the batch taken from the input file,
#    must match ONNX Runtime.
#
# Prints a summary table and writes it to bench/results/foundation.md (unless
# --no-results, or --models/--eval select other than the defaults and
# --results is not given). Exits non-zero on any failure.
#
# Environment: KILN (default <repo>/.build/release/kiln), KILN_CACHE,
# KILN_BENCH_MODELS and KILN_BENCH_EVAL (defaults for --models and --eval).
set -euo pipefail

here="$(cd -P -- "$(dirname -- "${BASH_SOURCE[0]}")" && pwd -P)"
# shellcheck source=../scripts/lib.sh
source "$here/../scripts/lib.sh"

default_eval="resnet18,mobilenet_v3_large"
# Default: the 12 torchvision CNNs (bench/kilnbench/models.py), read once the venv is there.
models="${KILN_BENCH_MODELS:-}"
eval_models="${KILN_BENCH_EVAL:-$default_eval}"
write_results=auto
tol=1e-4

usage() {
    sed -n '2,/^set -euo/p' "${BASH_SOURCE[0]}" | sed '$d; s/^# \{0,1\}//'
}

while [[ $# -gt 0 ]]; do
    case "$1" in
        --models) models="$2"; shift 2 ;;
        --models=*) models="${1#*=}"; shift ;;
        --eval) eval_models="$2"; shift 2 ;;
        --eval=*) eval_models="${1#*=}"; shift ;;
        --results) write_results=yes; shift ;;
        --no-results) write_results=no; shift ;;
        -h|--help) usage; exit 0 ;;
        *) printf 'check_foundation: unknown argument %s\n' "$1" >&2; usage >&2; exit 2 ;;
    esac
done

KILN="${KILN:-$kiln_root/.build/release/kiln}"
if [[ ! -x "$KILN" ]]; then
    printf 'check_foundation: no kiln binary at %s (swift build -c release, or set KILN)\n' "$KILN" >&2
    exit 2
fi

ensure_torch_venv
py="$KILN_TORCH_PY"
all_models="$("$py" "$here/kilnbench/models.py" cnn12)"
models="${models:-$all_models}"
case "$eval_models" in
    all) eval_models="$models" ;;
    none) eval_models="" ;;
esac
if [[ "$write_results" == auto ]]; then
    if [[ "$models" == "$all_models" && "$eval_models" == "$default_eval" ]]; then
        write_results=yes
    else
        write_results=no
    fi
fi

cache="${KILN_CACHE:-${HOME:-/root}/.cache/kiln}"
dir="$cache/bench"
scratch="$dir/foundation"
mkdir -p "$dir" "$scratch"

IFS=',' read -r -a model_list <<<"$models"
IFS=',' read -r -a eval_list <<<"$eval_models"
for m in "${eval_list[@]}"; do
    if [[ ",$models," != *",$m,"* ]]; then
        model_list+=("$m")
    fi
done

log() { printf '== %s\n' "$*" >&2; }
now() { date +%s.%N; }
elapsed() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.2f", b - a }'; }

export_list="$(IFS=,; echo "${model_list[*]},dynamic_reshape")"
log "exporting models to $dir"
t0="$(now)"
"$py" "$here/export_models.py" --out "$dir" --models "$export_list"
export_s="$(elapsed "$t0" "$(now)")"

# Results: one row per line, fields separated by tabs.
rows=()
failures=()
fail() {  # fail TITLE DETAILS
    failures+=("$1"$'\n'"$2")
    printf 'FAIL: %s\n%s\n' "$1" "$2" >&2
}

# json_field FILE EXPR — evaluates EXPR (python, `r` is the parsed JSON).
json_field() {
    "$py" -c 'import json, sys; r = json.load(open(sys.argv[1])); print(eval(sys.argv[2]))' "$1" "$2"
}

fmt_macs() {
    awk -v m="$1" 'BEGIN {
        if (m == "" || m == "None") { print "unknown"; exit }
        if (m >= 1e9) printf "%.2f G\n", m / 1e9
        else if (m >= 1e6) printf "%.1f M\n", m / 1e6
        else printf "%.1f K\n", m / 1e3 }'
}

# inspect NAME MODEL [ARGS...] — runs kiln inspect (text and --json); sets
# inspect_status, inspect_nodes, inspect_macs and inspect_json.
inspect() {
    local name="$1" model="$2"
    shift 2
    local out rc=0
    inspect_json="$scratch/$name.inspect.json"
    out="$("$KILN" inspect "$model" "$@" 2>&1)" || rc=$?
    printf '%s\n' "$out" >"$scratch/$name.inspect.txt"
    "$KILN" inspect "$model" "$@" --json >"$inspect_json" 2>/dev/null || true
    inspect_nodes="$(json_field "$inspect_json" 'r.get("nodeCount", "?")' 2>/dev/null || echo '?')"
    inspect_macs="$(json_field "$inspect_json" 'r.get("macs")' 2>/dev/null || echo '')"
    if [[ $rc -eq 0 ]] && grep -qx 'unsupported: none' <<<"$out"; then
        inspect_status=ok
    else
        inspect_status="FAIL (exit $rc)"
        fail "kiln inspect $name${*:+ $*} (exit $rc)" "$out"
    fi
}

# run_eval NAME MODEL INPUT_NPY [ARGS...] — kiln eval + compare_ort; sets
# eval_rel and eval_s.
run_eval() {
    local name="$1" model="$2" input="$3"
    shift 3
    local out_dir="$scratch/$name.kiln" out rc=0 t
    rm -rf "$out_dir"
    log "kiln eval $name"
    t="$(now)"
    out="$("$KILN" eval "$model" --input "input=$input" --output-dir "$out_dir" "$@" 2>&1)" || rc=$?
    eval_s="$(elapsed "$t" "$(now)")"
    if [[ $rc -ne 0 ]]; then
        eval_rel="FAIL (exit $rc)"
        fail "kiln eval $name (exit $rc)" "$out"
        return 0
    fi
    rc=0
    out="$("$py" "$here/compare_ort.py" "$model" --input "input=$input" --kiln-dir "$out_dir" --tol "$tol" 2>&1)" || rc=$?
    printf '%s\n' "$out" >&2
    eval_rel="$(awk '$1 == "max_rel_diff" { print $2 }' <<<"$out")"
    if [[ $rc -ne 0 ]]; then
        eval_rel="FAIL ${eval_rel:-?}"
        local dbg
        dbg="$(KILN="$KILN" "$py" "$here/debug_intermediates.py" "$model" "$input" 2>&1 || true)"
        fail "kiln eval $name vs onnxruntime (compare_ort exit $rc)" "$out"$'\n'"first diverging intermediates (bench/debug_intermediates.py):"$'\n'"$dbg"
    fi
}

for name in "${model_list[@]}"; do
    model="$dir/$name.onnx"
    log "kiln inspect $name"
    inspect "$name" "$model"
    status="$inspect_status" nodes="$inspect_nodes" macs="$(fmt_macs "$inspect_macs")"
    eval_rel="—" eval_s="—"
    if [[ ",$eval_models," == *",$name,"* ]]; then
        run_eval "$name" "$model" "$dir/$name.input.npy"
    fi
    rows+=("$name"$'\t'"$status"$'\t'"$nodes"$'\t'"$macs"$'\t'"$eval_rel"$'\t'"$eval_s")
done

# The dynamic-shape model.
name=dynamic_reshape
model="$dir/$name.onnx"
input="$dir/$name.input.npy"
shape="$("$py" -c 'import numpy, sys; print("x".join(map(str, numpy.load(sys.argv[1], mmap_mode="r").shape)))' "$input")"
log "kiln inspect $name (batch unpinned)"
inspect "$name.unpinned" "$model"
unpinned="$(json_field "$inspect_json" '"; ".join("%s[%s] (%s)" % (u["input"], u["dimension"], u.get("symbol", "")) for u in r.get("unpinned", []))' 2>/dev/null || true)"
if grep -q "unpinned: dimension 0 ('batch') of input 'input'" "$scratch/$name.unpinned.inspect.txt"; then
    status="$inspect_status; reports unpinned $unpinned"
else
    status="FAIL: no unpinned dim reported"
    fail "kiln inspect $name: the unpinned batch dimension is not reported" "$(cat "$scratch/$name.unpinned.inspect.txt")"
fi
rows+=("$name (batch unpinned)"$'\t'"$status"$'\t'"$inspect_nodes"$'\t'"$(fmt_macs "$inspect_macs")"$'\t'"—"$'\t'"—")

log "kiln inspect/eval $name --input-shape input=$shape"
inspect "$name.pinned" "$model" --input-shape "input=$shape"
status="$inspect_status" nodes="$inspect_nodes" macs="$(fmt_macs "$inspect_macs")"
run_eval "$name.pinned" "$model" "$input" --input-shape "input=$shape"
rows+=("$name (--input-shape input=$shape)"$'\t'"$status"$'\t'"$nodes"$'\t'"$macs"$'\t'"$eval_rel"$'\t'"$eval_s")

log "kiln eval $name, batch from the input file ($shape)"
run_eval "$name.from-npy" "$model" "$input"
rows+=("$name (shape from input file, $shape)"$'\t'"—"$'\t'"—"$'\t'"—"$'\t'"$eval_rel"$'\t'"$eval_s")

# The report.
table() {
    printf '| model | inspect | nodes | MACs | eval max rel diff | eval s |\n'
    printf '|---|---|---:|---:|---:|---:|\n'
    local row
    for row in "${rows[@]}"; do
        IFS=$'\t' read -r a b c d e f <<<"$row"
        printf '| %s | %s | %s | %s | %s | %s |\n' "$a" "$b" "$c" "$d" "$e" "$f"
    done
}

versions="$("$py" -c 'import torch, torchvision, onnx, onnxruntime; print(f"torch {torch.__version__}, torchvision {torchvision.__version__}, onnx {onnx.__version__}, onnxruntime {onnxruntime.__version__}")')"
commit="$(git -C "$kiln_root" rev-parse --short HEAD 2>/dev/null || echo unknown)"
if [[ -n "$(git -C "$kiln_root" status --porcelain -- Sources Package.swift 2>/dev/null)" ]]; then
    commit="$commit (+ uncommitted changes in Sources/)"
fi
cpu="$(awk -F': *' '/^model name/ { print $2; exit }' /proc/cpuinfo 2>/dev/null || true)"
report() {
    cat <<EOF
# Foundation check: kiln inspect and kiln eval on torchvision CNNs

Generated by \`bench/check_foundation.sh\` on $(date -u +%Y-%m-%d).
Kiln $("$KILN" --version 2>/dev/null || echo '?') (\`${KILN/#"$kiln_root"\/}\`; repository at commit $commit); $versions;
${cpu:-unknown CPU}, $(nproc) cores.

Models: torchvision, random weights (\`torch.manual_seed(0)\`), batch 1, 3x224x224,
exported by \`torch.onnx.export(dynamo=False, opset_version=17)\` (\`bench/export_models.py\`).
\`dynamic_reshape\` is a conv + \`x.view(x.size(0), -1)\` + linear net exported with a
dynamic batch axis: its Reshape target comes from Shape -> Gather -> Unsqueeze -> Concat.

- **inspect**: \`kiln inspect\` exits 0 and reports \`unsupported: none\`.
- **eval max rel diff**: \`kiln eval\` (the reference interpreter) against ONNX Runtime,
  with graph optimizations off and with the defaults, on one random input (float32, fixed
  seed): max over outputs and both sessions of max|kiln - ort| / max|ort|; passes at <= $tol.
- **eval s**: wall time of \`kiln eval\` (load, simplify, interpret, write outputs).

$(table)
EOF
    if [[ ${#failures[@]} -gt 0 ]]; then
        printf '\n## Failures\n'
        local f
        for f in "${failures[@]}"; do
            printf '\n### %s\n\n```\n%s\n```\n' "${f%%$'\n'*}" "${f#*$'\n'}"
        done
    fi
}

out="$(report)"
printf '\n%s\n\n' "$out"
printf 'export: %s s (existing exports are reused)\n' "$export_s"
if [[ "$write_results" == yes ]]; then
    mkdir -p "$here/results"
    printf '%s\n' "$out" >"$here/results/foundation.md"
    printf 'wrote %s\n' "$here/results/foundation.md"
fi
if [[ ${#failures[@]} -gt 0 ]]; then
    printf 'check_foundation: %d failure(s)\n' "${#failures[@]}" >&2
    exit 1
fi
printf 'check_foundation: all passed\n'
