#!/usr/bin/env bash
# Compiles samples/models/digits.onnx into a C library in OUTDIR, then builds classify.c
# against it two ways and runs both on the held-back test images:
#   (a) OUTDIR/classify-static — cc + pkg-config, linked against libdigits.a;
#   (b) OUTDIR/cmake-build/classify — CMake, find_package(digits) and digits::digits.
#
#   samples/c/build.sh OUTDIR           (KILN=path/to/kiln to use another kiln; CC for the compiler)
set -euo pipefail

if [[ $# -ne 1 ]]; then
    echo "usage: $0 OUTDIR" >&2
    exit 2
fi
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
root=$(cd "$here/../.." && pwd)
kiln=${KILN:-$root/.build/release/kiln}
cc=${CC:-cc}
model=$root/samples/models/digits.onnx
images=$root/samples/models/digits_test_images.npy
labels=$root/samples/models/digits_test_labels.npy

mkdir -p "$1"
out=$(cd "$1" && pwd)

say() { printf '+ %s\n' "$*"; }

# 1. The library (skipped when libdigits.a is already newer than the model).
if [[ -f $out/libdigits.a && $out/libdigits.a -nt $model ]]; then
    echo "== $out/libdigits.a is up to date"
else
    if [[ ! -x $kiln ]]; then
        echo "error: no kiln at $kiln (run 'swift build -c release' or set KILN)" >&2
        exit 1
    fi
    echo "== compiling the model"
    say "$kiln" compile "$model" -o "$out" --name digits --input-shape image=1x1x8x8
    "$kiln" compile "$model" -o "$out" --name digits --input-shape image=1x1x8x8
fi

# 2a. cc + pkg-config, static: digits-static.pc names libdigits.a and what it needs.
echo "== (a) cc + pkg-config, static"
export PKG_CONFIG_PATH=$out${PKG_CONFIG_PATH:+:$PKG_CONFIG_PATH}
read -r -a flags <<<"$(pkg-config --cflags --libs digits-static)"
say "$cc" -O2 -std=c11 "$here/classify.c" -o "$out/classify-static" "${flags[@]}"
"$cc" -O2 -std=c11 "$here/classify.c" -o "$out/classify-static" "${flags[@]}"

# 2b. CMake, find_package(digits) and digits::digits (the static library).
echo "== (b) CMake, find_package(digits)"
say cmake -S "$here" -B "$out/cmake-build" -DCMAKE_PREFIX_PATH="$out"
cmake -S "$here" -B "$out/cmake-build" -DCMAKE_PREFIX_PATH="$out" >"$out/cmake-configure.log" ||
    { cat "$out/cmake-configure.log"; exit 1; }
say cmake --build "$out/cmake-build"
cmake --build "$out/cmake-build" >"$out/cmake-build.log" || { cat "$out/cmake-build.log"; exit 1; }

# 3. Neither program may need libdigits.so.
for exe in "$out/classify-static" "$out/cmake-build/classify"; do
    needed=$(readelf -d "$exe" | sed -n 's/.*(NEEDED).*\[\(.*\)\]/\1/p' | tr '\n' ' ')
    echo "== $exe needs: $needed"
    if [[ " $needed " == *" libdigits.so "* ]]; then
        echo "error: $exe needs libdigits.so; it should have linked libdigits.a" >&2
        exit 1
    fi
done

# 4. Run both.
for exe in "$out/classify-static" "$out/cmake-build/classify"; do
    echo "== $exe"
    "$exe" "$images" "$labels"
done
