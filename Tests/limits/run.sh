#!/usr/bin/env bash
# Kiln's size limits, tested: a model of BYTES bytes of f32 weights (Tests/limits/big_model.py:
# a chain of MatMuls, external data) compiles into a static and a shared library, with
# `kiln compile`'s peak resident memory (/usr/bin/time -v) at most 3× the weights; a C program
# linked against each library (Tests/limits/run_big.c) runs it and matches numpy's float64
# result within 1e-4 of the output's largest magnitude. Over 2 GB of weights this checks that the
# blob's placement (.lrodata) keeps every relocation in reach.
#
#   Tests/limits/run.sh BYTES LAYERS    (KILN, PYTHON, CC to override; TMPDIR for the scratch space)
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
root=$(cd "$here/../.." && pwd)
kiln=${KILN:-$root/.build/release/kiln}
python=${PYTHON:-$root/.venv/bin/python}
cc=${CC:-cc}
bytes=${1:?usage: run.sh BYTES LAYERS}
layers=${2:-1}
work=$(mktemp -d "${TMPDIR:-/tmp}/kiln-limits.XXXXXX")
trap 'rm -rf "$work"' EXIT

"$python" "$here/big_model.py" "$work/model" --bytes "$bytes" --layers "$layers"
weights=$(( $(stat -c %s "$work/model/big.data") ))
/usr/bin/time -v "$kiln" compile "$work/model/big.onnx" -o "$work/out" --name big --library both --quiet 2>"$work/time.log" ||
    { cat "$work/time.log"; echo "error: kiln compile failed"; exit 1; }
peak_kb=$(sed -n 's/.*Maximum resident set size (kbytes): //p' "$work/time.log")
ratio=$(awk -v p="$peak_kb" -v w="$weights" 'BEGIN { printf "%.2f", p * 1024 / w }')
echo "limits: kiln compile of $weights bytes of weights: peak resident $((peak_kb / 1024)) MiB, ${ratio}x the weights"
awk -v r="$ratio" 'BEGIN { exit !(r <= 3) }' || { echo "error: peak memory over 3x the weights"; exit 1; }
! ls -A "$work/out" | grep -E '_weights\.(bin|S)$' || { echo "error: the weights blob was left in the output folder"; exit 1; }
for pc in big-static big; do
    read -r -a flags <<<"$(PKG_CONFIG_PATH=$work/out pkg-config --cflags --libs "$pc")"
    "$cc" -O2 -std=c11 -Wall -Wextra -Werror "$here/run_big.c" -o "$work/run-$pc" "${flags[@]}" -Wl,-rpath,"$work/out"
    "$work/run-$pc" "$work/model/x.npy" "$work/y-$pc.raw"
    "$python" - "$work/y-$pc.raw" "$work/model/expected.npy" "$pc" <<'PY'
import sys
import numpy as np
y = np.fromfile(sys.argv[1], dtype=np.float32)
e = np.load(sys.argv[2]).ravel()
err = float(np.abs(y - e).max() / np.abs(e).max())
label = "libbig.a" if sys.argv[3] == "big-static" else "libbig.so"
print(f"limits: {label} runs: largest error {err:.2e} of the output's largest magnitude")
sys.exit(0 if y.shape == e.shape and err < 1e-4 else 1)
PY
done
