#!/usr/bin/env bash
# Consumer tests: use a Kiln-compiled library the way a C/C++/CMake user would — static and
# shared links, CMake find_package (static and shared targets), two models in one program,
# a C++ program with the static library, the exported symbols and NEEDED entries, misuse of
# the C API, the header under strict C99/C++11, and 8 threads running an FP32 and an int8 model
# through their own handles (the single-threaded bits on every call), and the library on another
# CPU: a Haswell under qemu-user; NAME.report.html in headless Chromium. The library is samples/models/digits.onnx
# compiled with batch 1; classify (samples/c/classify.c) must reproduce the reference
# interpreter's accuracy. Exits non-zero if any test fails; the last line is
# "consumer: N passed, M failed".
#
#   Tests/consumer/run.sh          (KILN=path/to/kiln to use another kiln; CC for the C compiler)
set -uo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
root=$(cd "$here/../.." && pwd)
kiln=${KILN:-$root/.build/release/kiln}
cc=${CC:-cc}
model=$root/samples/models/digits.onnx
images=$root/samples/models/digits_test_images.npy
labels=$root/samples/models/digits_test_labels.npy
classify=$root/samples/c/classify.c
expected_accuracy='accuracy: 359/360 = 99.72%'  # the reference interpreter's figure

tmp=$(mktemp -d "${TMPDIR:-/tmp}/kiln-consumer.XXXXXX")
trap 'rm -rf "$tmp"' EXIT

passed=0
failed=0
failures=()

# run_test NAME FUNCTION: runs FUNCTION in a subshell with `set -e`, its output in a log that
# is shown in full on failure; of a passing test only the result lines (accuracy, latency, ...).
run_test() {
    local name=$1 fn=$2 log=$tmp/$2.log start end rc
    start=$(date +%s.%N)
    (set -e; "$fn") >"$log" 2>&1
    rc=$?
    end=$(date +%s.%N)
    local secs
    secs=$(awk -v a="$start" -v b="$end" 'BEGIN { printf "%.1f", b - a }')
    if [[ $rc -eq 0 ]]; then
        passed=$((passed + 1))
        echo "PASS  $name (${secs}s)"
        grep -E '^(accuracy|median latency|two models|C\+\+ consumer|threads|other CPU|python|html report|full disk|limits|create/destroy):' "$log" | sed 's/^/      /' || true
    else
        failed=$((failed + 1))
        failures+=("$name")
        echo "FAIL  $name (${secs}s)"
        sed 's/^/      | /' "$log"
    fi
}

# Helpers for test bodies.
die() { echo "error: $*"; return 1; }
show() { printf '+ %s\n' "$*"; "$@"; }
needed_of() { readelf -d "$1" | sed -n 's/.*(NEEDED).*\[\(.*\)\]/\1/p'; }
expect_accuracy() {  # expect_accuracy EXE: runs classify and checks the accuracy line
    local output
    output=$("$1" "$images" "$labels") || die "$1 failed: $output"
    echo "$output"
    grep -qxF "$expected_accuracy" <<<"$output" || die "expected '$expected_accuracy'"
}
# link_failure LOG ARCHIVE: the start of a failed link's output, and a hint when it is the
# linker discarding an archive's private copies of inline C++ code (COMDAT groups left in it).
link_failure() {
    head -n 5 "$1" | cut -c 1-400
    local discarded groups
    discarded=$(grep -c 'defined in discarded section' "$1" || true)
    groups=$(readelf -g "$2" 2>/dev/null | grep -c 'COMDAT group section' || true)
    echo "... $(wc -l <"$1") lines in all; $discarded 'defined in discarded section' errors;" \
        "$(basename "$2") still has $groups COMDAT groups"
}

lib=$tmp/digits      # digits, static and shared
libab=$tmp/ab        # digits_a and digits_b, static only

setup() {
    [[ -x $kiln ]] || die "no kiln at $kiln (run 'swift build -c release' or set KILN)"
    show "$kiln" compile "$model" -o "$lib" --name digits --input-shape image=1x1x8x8 --library both
    for f in digits.h libdigits.a libdigits.so digits.pc digits-static.pc digitsConfig.cmake digitsConfigVersion.cmake; do
        [[ -f $lib/$f ]] || die "kiln compile did not write $f"
    done
    show "$kiln" compile "$model" -o "$libab/a" --name digits_a --input-shape image=1x1x8x8 --library static
    show "$kiln" compile "$model" -o "$libab/b" --name digits_b --input-shape image=1x1x8x8 --library static
}

test_static_pkg_config() {
    local flags
    # NAME-static.pc names the archive itself, then what it needs (oneDNN, OpenMP, libstdc++).
    read -r -a flags <<<"$(PKG_CONFIG_PATH=$lib pkg-config --cflags --libs digits-static)"
    show "$cc" -O2 -std=c11 -Wall -Wextra -Werror "$classify" -o "$tmp/classify-static" "${flags[@]}"
    local needed
    needed=$(needed_of "$tmp/classify-static" | tr '\n' ' ')
    echo "NEEDED: $needed"
    [[ " $needed " != *" libdigits.so "* ]] || die "classify-static needs libdigits.so"
    expect_accuracy "$tmp/classify-static"
}

test_cmake_find_package() {
    show cmake -S "$root/samples/c" -B "$tmp/cmake-build" -DCMAKE_PREFIX_PATH="$lib"
    show cmake --build "$tmp/cmake-build"
    local needed
    needed=$(needed_of "$tmp/cmake-build/classify" | tr '\n' ' ')
    echo "NEEDED: $needed"
    [[ " $needed " != *" libdigits.so "* ]] || die "digits::digits should be the static library"
    expect_accuracy "$tmp/cmake-build/classify"
}

test_cmake_shared_target() {
    mkdir -p "$tmp/cmake-shared"
    cat >"$tmp/cmake-shared/CMakeLists.txt" <<EOF
cmake_minimum_required(VERSION 3.16)
project(classify_shared LANGUAGES C)
find_package(digits REQUIRED)
add_executable(classify "$classify")
target_link_libraries(classify PRIVATE digits::shared)
EOF
    show cmake -S "$tmp/cmake-shared" -B "$tmp/cmake-shared/build" -DCMAKE_PREFIX_PATH="$lib"
    show cmake --build "$tmp/cmake-shared/build"
    local needed
    needed=$(needed_of "$tmp/cmake-shared/build/classify" | tr '\n' ' ')
    echo "NEEDED: $needed"
    [[ " $needed " == *" libdigits.so "* ]] || die "digits::shared should link libdigits.so"
    expect_accuracy "$tmp/cmake-shared/build/classify"
}

test_shared() {
    # Only -ldigits: libdigits.so must carry its own NEEDED entries for oneDNN and the runtimes.
    show "$cc" -O2 -std=c11 -Wall -Wextra -Werror "$classify" -o "$tmp/classify-shared" \
        -I "$lib" -L "$lib" -ldigits -Wl,-rpath,"$lib"
    local needed
    needed=$(needed_of "$tmp/classify-shared" | tr '\n' ' ')
    echo "NEEDED: $needed"
    [[ " $needed " == *" libdigits.so "* ]] || die "classify-shared does not need libdigits.so"
    ldd "$tmp/classify-shared"
    expect_accuracy "$tmp/classify-shared"
}

test_two_models() {
    local cflags libs
    read -r -a cflags <<<"$(PKG_CONFIG_PATH=$libab/a:$libab/b pkg-config --cflags digits_a-static digits_b-static)"
    read -r -a libs <<<"$(PKG_CONFIG_PATH=$libab/a:$libab/b pkg-config --libs digits_a-static digits_b-static)"
    show "$cc" -O2 -std=c11 -Wall -Wextra -Werror "$here/two_models.c" -o "$tmp/two_models" \
        "${cflags[@]}" "${libs[@]}" >"$tmp/two_models.link" 2>&1 ||
        { link_failure "$tmp/two_models.link" "$libab/a/libdigits_a.a"; die "two_models does not link"; }
    local needed
    needed=$(needed_of "$tmp/two_models" | tr '\n' ' ')
    echo "NEEDED: $needed"
    [[ $needed != *libdigits* ]] || die "two_models needs a libdigits shared library"
    nm "$tmp/two_models" | grep ' T digits_a_run$' >/dev/null || die "digits_a_run is not in the program"
    nm "$tmp/two_models" | grep ' T digits_b_run$' >/dev/null || die "digits_b_run is not in the program"
    show "$tmp/two_models"
}

test_cxx_consumer() {
    # A C++ program with its own libstdc++ inline code links the static archive.
    local deps
    read -r -a deps <<<"$(PKG_CONFIG_PATH=$lib pkg-config --libs digits-static)"
    show "${CXX:-c++}" -O0 -std=c++17 -Wall -Wextra -Werror "$here/cxx_consumer.cpp" -o "$tmp/cxx_consumer" \
        -I "$lib" "${deps[@]}" >"$tmp/cxx_consumer.link" 2>&1 ||
        { link_failure "$tmp/cxx_consumer.link" "$lib/libdigits.a"; die "the C++ program does not link against libdigits.a"; }
    show "$tmp/cxx_consumer"
}

test_cxx_wrapper() {
    # samples/cpp/classify.cpp: Kiln's header-only C++ wrapper (include/kiln/model.hpp) over the
    # C ABI, C++11, the static library; it also checks that a wrong-size buffer throws kiln::Error.
    local flags
    read -r -a flags <<<"$(PKG_CONFIG_PATH=$lib pkg-config --cflags --libs digits-static)"
    show "${CXX:-c++}" -O2 -std=c++11 -Wall -Wextra -Werror -pedantic "$root/samples/cpp/classify.cpp" \
        -o "$tmp/classify-cxx" -I "$root/include" "${flags[@]}"
    expect_accuracy "$tmp/classify-cxx"
    "$tmp/classify-cxx" "$images" "$labels" | grep -q '^wrong size refused: digits_run: ' || die "no kiln::Error for a wrong-size buffer"
}

test_abi_numbers() {
    # The header's status codes, element types and ABI version against include/kiln/abi.hpp (C++
    # static_asserts); the Python module's against the library's (test_python).
    show "${CXX:-c++}" -std=c++11 -fsyntax-only -Wall -Werror "$here/abi_numbers.cpp" -I "$lib" -I "$root/include"
}

test_headers_self_contained() {
    # Each runtime header compiles alone (it includes what it uses), with and without AVX2/FMA
    # and with AVX-512 enabled.
    local h flags
    for flags in "" "-mavx2 -mfma" "-march=x86-64-v4"; do
        for h in "$root"/include/kiln/*.hpp; do
            printf '#include <kiln/%s>\nint main() { return 0; }\n' "$(basename "$h")" >"$tmp/header_alone.cpp"
            # shellcheck disable=SC2086
            "${CXX:-c++}" -std=c++17 -fopenmp $flags -fsyntax-only -Wall -Werror -I "$root/include" "$tmp/header_alone.cpp" ||
                die "include/kiln/$(basename "$h") does not compile alone (flags: ${flags:-none})"
        done
    done
}

test_python() {
    # samples/python/classify.py: kiln_runtime.py (ctypes + numpy) drives libdigits.so through
    # its introspection; then its checks: a wrong dtype, shape or thread count raises KilnError.
    local python=${PYTHON:-$root/.venv/bin/python}
    [[ -x $python ]] || python=python3
    local output
    output=$("$python" "$root/samples/python/classify.py" "$lib/libdigits.so" "$images" "$labels") || die "classify.py failed: $output"
    echo "$output"
    grep -qxF "$expected_accuracy" <<<"$output" || die "expected '$expected_accuracy'"
    show "$python" - "$root/samples/python" "$lib/libdigits.so" <<'PY'
import sys
sys.path.insert(0, sys.argv[1])
import numpy as np
from kiln_runtime import KilnError, Library
lib = Library(sys.argv[2])
assert [t.name for t in lib.inputs] == ["image"] and lib.inputs[0].shape == (1, 1, 8, 8), lib.inputs
model = lib.create(threads=1)
x = np.load(sys.argv[1] + "/../models/digits_test_images.npy")[:1]
a, b = model.run(x)["logits"], model.run(image=x)["logits"]
assert a.shape == (1, 10) and np.array_equal(a, b)
for bad, want in ((lambda: model.run(x.astype(np.float64)), "dtype float64"),
                  (lambda: model.run(np.zeros((2, 1, 8, 8), np.float32)), "shape (2, 1, 8, 8)"),
                  (lambda: model.run(picture=x), "no input named picture"),
                  (lambda: model.set_threads(100000), "INVALID_ARGUMENT")):
    try:
        bad()
    except KilnError as e:
        assert want in str(e) + str(e.status_name), (want, str(e))
    else:
        raise AssertionError("accepted: " + want)
# The module's ABI numbers (generated from the same Swift as the header) name the library's codes.
import kiln_runtime
unknown = lib.status_string(max(kiln_runtime._STATUS_NAMES) + 1)
for code, name in kiln_runtime._STATUS_NAMES.items():
    assert lib.status_string(code) != unknown, (code, name)
assert lib.inputs[0].element_type == "f32", lib.inputs  # the library's f32 number, named by the module
model.close()
try:
    model.run(x)
except KilnError as e:
    assert "closed" in str(e)
else:
    raise AssertionError("a closed handle ran")
print("python: kiln_runtime checks passed")
PY
}

test_rust() {
    # samples/rust: std only, extern "C" and a build.rs that links libdigits.a (cargo, offline).
    command -v cargo >/dev/null || die "no cargo (scripts/test installs Debian's cargo and rustc)"
    cp -r "$root/samples/rust" "$tmp/rust-src"  # cargo writes Cargo.lock beside Cargo.toml
    show env KILN_MODEL_DIR="$lib" CARGO_TARGET_DIR="$tmp/rust-target" \
        cargo build --release --offline --quiet --manifest-path "$tmp/rust-src/Cargo.toml"
    expect_accuracy "$tmp/rust-target/release/kiln-classify"
    "$tmp/rust-target/release/kiln-classify" "$images" "$labels" | grep -q '^wrong size refused: digits_run: ' || die "no error for a wrong-size buffer"
}

test_go() {
    # samples/go: cgo with the model's header, linked through digits-static.pc.
    command -v go >/dev/null || die "no go (scripts/test installs Debian's golang-go)"
    (cd "$root/samples/go" && show env PKG_CONFIG_PATH="$lib" GOCACHE="$tmp/go-cache" GOPATH="$tmp/go-path" \
        GOFLAGS=-mod=mod GOTOOLCHAIN=local go build -o "$tmp/classify-go" .)
    expect_accuracy "$tmp/classify-go"
    "$tmp/classify-go" "$images" "$labels" | grep -q '^wrong size refused: digits_run: ' || die "no error for a wrong-size buffer"
}

test_swift() {
    # samples/swift: a system-library target (module map over digits.h, found through digits.pc).
    show env PKG_CONFIG_PATH="$lib" swift build -c release --package-path "$root/samples/swift" \
        --scratch-path "$tmp/swift-build" -Xlinker -rpath -Xlinker "$lib"
    expect_accuracy "$tmp/swift-build/release/classify"
    "$tmp/swift-build/release/classify" "$images" "$labels" | grep -q '^wrong size refused: digits_run: ' || die "no error for a wrong-size buffer"
}

prefix=$tmp/prefix   # scripts/install's prefix

test_install() {
    # scripts/install into a temporary prefix; then the installed kiln, run from a copy of the
    # prefix somewhere else with no KILN_INCLUDE_DIR, compiles a model with the headers beside it.
    show "$root/scripts/install" --prefix "$prefix"
    for f in bin/kiln include/kiln/runtime.hpp include/kiln/model.hpp lib/cmake/Kiln/KilnConfig.cmake \
             lib/cmake/Kiln/KilnConfigVersion.cmake share/doc/kiln/README.md; do
        [[ -f $prefix/$f ]] || die "scripts/install did not install $f"
    done
    cp -a "$prefix" "$tmp/moved"
    local version
    version=$(env -u KILN_INCLUDE_DIR "$tmp/moved/bin/kiln" --version) || die "kiln --version failed"
    echo "installed kiln --version: $version"
    if ldd "$tmp/moved/bin/kiln" | grep -i swift; then die "the installed kiln needs the Swift toolchain's libraries"; fi
    env -u KILN_INCLUDE_DIR "$tmp/moved/bin/kiln" compile "$model" -o "$tmp/installed-out" --name digits \
        --input-shape image=1x1x8x8 --library shared --verbose 2>&1 | tee "$tmp/installed.log"
    grep -qF -- "-I$tmp/moved/include" "$tmp/installed.log" || grep -qF -- "-I $tmp/moved/include" "$tmp/installed.log" ||
        die "the installed kiln did not compile with the headers beside it ($tmp/moved/include)"
    "$kiln" run "$tmp/installed-out/libdigits.so" --input "$images" --labels "$labels" -o "$tmp/installed-run" | grep '^accuracy'
}

test_cmake_kiln_add_model() {
    # A project using find_package(Kiln) and kiln_add_model() (Tests/consumer/cmake_model), with
    # Ninja and with Make: it builds and runs; a second build does nothing; touching the model
    # recompiles exactly its two libraries; a changed option recompiles the model it belongs to.
    [[ -x $prefix/bin/kiln ]] || die "needs test_install's prefix"
    mkdir -p "$tmp/models"
    cp "$model" "$root/samples/models/digits_calib_images.npy" "$tmp/models/"
    local gen dir out
    for gen in Ninja "Unix Makefiles"; do
        dir=$tmp/kam-${gen// /-}
        show cmake -S "$here/cmake_model" -B "$dir" -G "$gen" -DCMAKE_PREFIX_PATH="$prefix" \
            -DMODELS="$tmp/models" -DSAMPLES="$root/samples"
        out=$(cmake --build "$dir" 2>&1) || die "build ($gen) failed: $out"
        echo "$out" | grep 'Kiln: compiling'
        [[ $(grep -c 'Kiln: compiling' <<<"$out") -eq 2 ]] || die "($gen) the first build should compile both models"
        expect_accuracy "$dir/classify"
        "$dir/classify_q" "$images" "$labels" | tee "$dir/q.txt"
        grep -q '^accuracy: 3[0-9][0-9]/360' "$dir/q.txt" || die "($gen) the int8 model's accuracy is off"
        out=$(cmake --build "$dir" 2>&1) || die "rebuild ($gen) failed: $out"
        ! grep -q 'Kiln: compiling' <<<"$out" || die "($gen) a build with nothing changed recompiled a model: $out"
        sleep 1
        touch "$tmp/models/digits.onnx"
        out=$(cmake --build "$dir" 2>&1) || die "build after touching the model ($gen) failed: $out"
        [[ $(grep -c 'Kiln: compiling' <<<"$out") -eq 2 ]] || die "($gen) touching the model should recompile both of its libraries: $out"
        grep -q 'Linking' <<<"$out" || die "($gen) the programs were not relinked"
        echo "($gen) touched digits.onnx: recompiled both models, relinked"
        touch "$tmp/models/digits_calib_images.npy"
        out=$(cmake --build "$dir" 2>&1) || die "build after touching the calibration data ($gen) failed: $out"
        [[ $(grep -c 'Kiln: compiling' <<<"$out") -eq 1 ]] && grep -q 'into digits_int8' <<<"$out" ||
            die "($gen) touching the calibration data should recompile only the int8 model: $out"
        echo "($gen) touched the calibration data: recompiled digits_int8 only"
        expect_accuracy "$dir/classify"
    done
}

test_doctor() {
    # kiln doctor on this machine: ready. Against an empty prefix (a g++ whose sysroot is an empty
    # folder, so that neither /usr/include nor /usr/lib is searched): oneDNN missing, the fix
    # named, status 1. With no compiler at all: the compiler missing, status 1.
    local out rc
    out=$("$kiln" doctor) || die "kiln doctor failed on this machine: $out"
    echo "$out"
    grep -q '^kiln doctor: ready to compile' <<<"$out" || die "kiln doctor is not ready"
    mkdir -p "$tmp/empty-prefix"
    printf '#!/bin/sh\nexec g++ --sysroot=%s "$@"\n' "$tmp/empty-prefix" >"$tmp/empty-gxx"
    chmod +x "$tmp/empty-gxx"
    rc=0; out=$(KILN_CXX=$tmp/empty-gxx "$kiln" doctor) || rc=$?
    echo "$out"
    [[ $rc -eq 1 ]] || die "kiln doctor against an empty prefix exited $rc, not 1"
    grep -q '^MISSING oneDNN headers' <<<"$out" && grep -q 'fix: apt-get install libdnnl-dev' <<<"$out" ||
        die "kiln doctor against an empty prefix does not say that oneDNN is missing and how to fix it"
    rc=0; out=$(KILN_CXX=$tmp/empty-prefix/bin/g++ "$kiln" doctor) || rc=$?
    echo "$out"
    [[ $rc -eq 1 ]] && grep -q '^MISSING C++ compiler' <<<"$out" && grep -q 'fix: apt-get install g++' <<<"$out" ||
        die "kiln doctor without a compiler does not say so (status $rc)"
    "$kiln" --version
    "$kiln" --version | grep -q '^C ABI version written: 1$' || die "kiln --version does not name the C ABI version"
}

test_html_report() {
    # kiln compile's NAME.report.html for the digits model in int8 (real calibration images), in a
    # real browser: Debian's Chromium, headless. The page must load with no script error (the
    # page records any in data-errors and sets data-ready when its script has run) and render to
    # a PNG; it must fetch nothing (no URL in it).
    local out=$tmp/html html dom png
    show "$kiln" compile "$model" -o "$out" --name digits_int8 --input-shape image=1x1x8x8 --library shared \
        --quantize int8 --calibration "$root/samples/models/digits_calib_images.npy" --no-speed-check
    html=$out/digits_int8.report.html
    [[ -s $html ]] || die "kiln compile did not write $html"
    ! grep -nE '(https?|ftp)://|<link|<iframe|<img|src=' "$html" || die "the report refers to something outside itself"
    for id in ops arena steps layers int8; do
        grep -q "<section id=\"$id\">" "$html" || die "the report has no '$id' section"
    done
    local chromium
    chromium=$(command -v chromium || command -v chromium-browser) || die "no chromium (apt-get install chromium)"
    local flags=(--headless --no-sandbox --disable-gpu --user-data-dir="$tmp/chromium-profile" --enable-logging=stderr --v=0)
    dom=$(timeout 120 "$chromium" "${flags[@]}" --dump-dom "file://$html" 2>"$tmp/chromium.log") ||
        { cat "$tmp/chromium.log"; die "chromium could not load the report"; }
    ! grep -E 'Uncaught|SyntaxError|ReferenceError|TypeError' "$tmp/chromium.log" || die "script errors in the browser's console"
    grep -q '<html lang="en" data-ready="1">' <<<"$dom" ||
        die "the report's script did not run to its end: $(grep -o 'data-errors="[^"]*"' <<<"$dom")"
    grep -q '<svg class="arena"' <<<"$dom" && grep -q 'id="layerTable"' <<<"$dom" || die "the rendered page lacks its charts"
    png=$tmp/digits_int8.report.png
    timeout 120 "$chromium" "${flags[@]}" --window-size=1280,2400 --screenshot="$png" "file://$html" 2>>"$tmp/chromium.log" ||
        { cat "$tmp/chromium.log"; die "chromium could not render the report"; }
    [[ $(head -c 8 "$png" | od -An -tx1 | tr -d ' \n') == 89504e470d0a1a0a ]] || die "$png is not a PNG"
    local bytes
    bytes=$(stat -c %s "$png")
    echo "html report: $(stat -c %s "$html") bytes, rendered by $("$chromium" --version 2>/dev/null | head -1) to a ${bytes}-byte PNG"
    [[ $bytes -gt 40000 ]] || die "the rendered page is nearly blank ($bytes bytes of PNG)"
}

test_failed_compile() {
    # A compile that fails after code generation leaves the output folder as it was: files are
    # built in a staging folder and moved into place at the end. A killed g++ (a wrapper that
    # kills itself with SIGKILL, as the OOM killer would) and a full disk (a 400 KiB tmpfs) each
    # give a message naming the step, and status 1.
    local out=$tmp/failed before after rc msg
    show "$kiln" compile "$model" -o "$out" --input-shape image=1x1x8x8 --library both --quiet
    ! ls -A "$out" | grep -E '_weights\.(bin|S)$|^\.kiln-build' || die "intermediate files left in the output folder"
    before=$(cd "$out" && ls -A | sort && md5sum -- *)
    printf '#!/bin/sh\nfor a in "$@"; do case "$a" in *.cpp) kill -9 $$;; esac; done\nexec g++ "$@"\n' >"$tmp/killed-gxx"
    chmod +x "$tmp/killed-gxx"
    rc=0; msg=$(KILN_CXX=$tmp/killed-gxx "$kiln" compile "$model" -o "$out" --input-shape image=1x1x8x8 --no-time-steps 2>&1) || rc=$?
    echo "$msg"
    [[ $rc -eq 1 ]] || die "a killed g++ gave status $rc"
    grep -q 'was killed by signal 9 (SIGKILL: out of memory, or killed by hand) while compiling digits.cpp' <<<"$msg" ||
        die "the message does not name the signal and the step"
    after=$(cd "$out" && ls -A | sort && md5sum -- *)
    [[ $before == "$after" ]] || die "the failed compile changed the output folder"
    local disk=$tmp/full-disk
    mkdir -p "$disk"
    if mount -t tmpfs -o size=400k tmpfs "$disk" 2>"$tmp/mount.err"; then
        rc=0; msg=$("$kiln" compile "$model" -o "$disk/out" --input-shape image=1x1x8x8 --no-time-steps 2>&1) || rc=$?
        echo "$msg"
        local left
        left=$(ls -A "$disk/out" 2>/dev/null || true)
        umount "$disk" 2>/dev/null || true
        [[ $rc -eq 1 ]] || die "a full disk gave status $rc"
        [[ -z $left ]] || die "the failed compile left files on the full disk: $left"
        grep -q "No space left on device\|enough space" <<<"$msg" && grep -q 'while assembling the weights\|cannot write' <<<"$msg" ||
            die "the message does not say the disk is full and in which step"
        echo "full disk: status 1, the step named, nothing left behind"
    else
        echo "full disk: not tried (cannot mount a tmpfs here: $(cat "$tmp/mount.err"))"
    fi
}

test_limits() {
    # The fast form of Tests/limits/run.sh: 256 MiB of weights (scripts/test --long runs 2.25 GB).
    local python=${PYTHON:-$root/.venv/bin/python}
    [[ -x $python ]] || python=python3
    KILN=$kiln PYTHON=$python CC=$cc bash "$root/Tests/limits/run.sh" 268435456 1
}

test_sanitize_address() {
    # kiln compile --sanitize address,undefined: the C sample (static and shared), the misuse test
    # and a create/run/destroy loop of two models, all under AddressSanitizer, LeakSanitizer and
    # UndefinedBehaviorSanitizer, which stop the program at the first error or leak. A leaking
    # program first shows that LeakSanitizer works here. The same loop in a normal build: RSS flat.
    local out=$tmp/asan flags
    export ASAN_OPTIONS=detect_leaks=1:halt_on_error=1 UBSAN_OPTIONS=halt_on_error=1:print_stacktrace=1
    printf '#include <stdlib.h>\nint main(void) { void* volatile p = malloc(99); p = 0; return p != 0; }\n' >"$tmp/leak.c"
    "$cc" -O0 -g -fsanitize=address "$tmp/leak.c" -o "$tmp/leak"
    ! "$tmp/leak" 2>"$tmp/leak.log" || die "LeakSanitizer does not work here: a leaking program exited 0"
    grep -q 'detected memory leaks' "$tmp/leak.log" || die "LeakSanitizer did not report the leak"
    show "$kiln" compile "$model" -o "$out/f" --name digits --input-shape image=1x1x8x8 --library both --sanitize address,undefined --quiet
    show "$kiln" compile "$root/samples/models/digits.pt2e.onnx" -o "$out/q" --name digits_q --input-shape image=1x1x8x8 \
        --library static --sanitize address,undefined --quiet
    grep -q -- '-fsanitize=address,undefined' "$out/f/digits.pc" "$out/f/digits-static.pc" || die "the pkg-config files do not link the sanitizers"
    for pc in digits-static digits; do
        read -r -a flags <<<"$(PKG_CONFIG_PATH=$out/f pkg-config --cflags --libs $pc)"
        show "$cc" -O1 -g -std=c11 "$classify" -o "$tmp/classify-asan-$pc" "${flags[@]}" -Wl,-rpath,"$out/f"
        expect_accuracy "$tmp/classify-asan-$pc"
    done
    read -r -a flags <<<"$(PKG_CONFIG_PATH=$out/f pkg-config --cflags --libs digits-static)"
    show "$cc" -O1 -g -std=c11 "$here/misuse.c" -o "$tmp/misuse-asan" "${flags[@]}"
    show "$tmp/misuse-asan" >/dev/null
    read -r -a flags <<<"$(PKG_CONFIG_PATH=$out/f:$out/q pkg-config --cflags --libs digits-static digits_q-static)"
    show "$cc" -O1 -g -std=c11 -Wall -Wextra -Werror "$here/create_destroy.c" -o "$tmp/create-destroy-asan" "${flags[@]}"
    show "$tmp/create-destroy-asan" | sed 's/^create\/destroy:/create\/destroy: under ASan+LSan+UBSan (RSS holds ASan'"'"'s quarantine),/'
    [[ ${PIPESTATUS[0]} -eq 0 ]] || die "the create/destroy loop failed under ASan"
    unset ASAN_OPTIONS UBSAN_OPTIONS
    show "$kiln" compile "$root/samples/models/digits.pt2e.onnx" -o "$tmp/plain-q" --name digits_q --input-shape image=1x1x8x8 --library static --quiet
    read -r -a flags <<<"$(PKG_CONFIG_PATH=$lib:$tmp/plain-q pkg-config --cflags --libs digits-static digits_q-static)"
    show "$cc" -O2 -std=c11 -Wall -Wextra -Werror "$here/create_destroy.c" -o "$tmp/create-destroy" "${flags[@]}"
    show "$tmp/create-destroy" --rss
}

test_sanitize_thread() {
    # kiln compile --sanitize thread: threads.c (8 threads x 2 models, own handles created at
    # once, the single-threaded bits on every call) under ThreadSanitizer. OMP_NUM_THREADS=1: GNU
    # OpenMP is not instrumented, and TSan cannot see its barriers; every handle of the test runs
    # on one OpenMP thread anyway. A racy program first shows that ThreadSanitizer works here.
    local out=$tmp/tsan flags
    printf '#include <pthread.h>\nint n;\nvoid* f(void* a) { n++; return a; }\nint main(void) { pthread_t t; pthread_create(&t, 0, f, 0); n++; pthread_join(t, 0); return 0; }\n' >"$tmp/race.c"
    "$cc" -O0 -g -pthread -fsanitize=thread "$tmp/race.c" -o "$tmp/race"
    ! TSAN_OPTIONS=halt_on_error=1 "$tmp/race" 2>"$tmp/race.log" || die "ThreadSanitizer does not work here: a racy program exited 0"
    grep -q 'data race' "$tmp/race.log" || die "ThreadSanitizer did not report the race"
    show "$kiln" compile "$model" -o "$out/f" --name digits --input-shape image=1x1x8x8 --library static --sanitize thread --quiet
    show "$kiln" compile "$root/samples/models/digits.pt2e.onnx" -o "$out/q" --name digits_q --input-shape image=1x1x8x8 \
        --library static --sanitize thread --quiet
    read -r -a flags <<<"$(PKG_CONFIG_PATH=$out/f:$out/q pkg-config --cflags --libs digits-static digits_q-static)"
    show "$cc" -O1 -g -std=c11 -pthread "$here/threads.c" -o "$tmp/threads-tsan" "${flags[@]}"
    OMP_NUM_THREADS=1 TSAN_OPTIONS=halt_on_error=1 show "$tmp/threads-tsan" | sed 's/^threads:/threads: under ThreadSanitizer,/'
    [[ ${PIPESTATUS[0]} -eq 0 ]] || die "threads.c failed under ThreadSanitizer"
}

test_exported_symbols() {
    local bad ok=1 declared exported_so exported_a missing
    exported_so=$(nm -D --defined-only "$lib/libdigits.so" | awk 'NF >= 3 { print $3 }' | sort -u)
    exported_a=$(nm -g --defined-only "$lib/libdigits.a" | awk 'NF >= 3 { print $3 }' | sort -u)
    echo "libdigits.so exports $(wc -l <<<"$exported_so") symbols; libdigits.a $(wc -l <<<"$exported_a")"
    bad=$(grep -v '^digits_' <<<"$exported_so" || true)
    if [[ -n $bad ]]; then
        echo "libdigits.so exports symbols without the digits_ prefix:"
        nm -D --defined-only "$lib/libdigits.so" | grep -v ' digits_'
        ok=0
    fi
    bad=$(grep -v '^digits_' <<<"$exported_a" || true)
    if [[ -n $bad ]]; then
        echo "libdigits.a defines global symbols without the digits_ prefix:"
        nm -g --defined-only "$lib/libdigits.a" | awk 'NF >= 3' | grep -v ' digits_'
        ok=0
    fi
    # Every function the header declares is exported by both libraries.
    declared=$(grep -oE '\bdigits_[a-z_]+\(' "$lib/digits.h" | tr -d '(' | sort -u)
    missing=$(comm -23 <(echo "$declared") <(echo "$exported_so"))
    [[ -z $missing ]] || { echo "declared in digits.h but not exported by libdigits.so: $missing"; ok=0; }
    missing=$(comm -23 <(echo "$declared") <(echo "$exported_a"))
    [[ -z $missing ]] || { echo "declared in digits.h but not defined by libdigits.a: $missing"; ok=0; }
    echo "declared and exported: $(echo $declared)"
    [[ $ok -eq 1 ]]
}

test_needed() {
    local allowed=" libdnnl.so.2 libgomp.so.1 libstdc++.so.6 libm.so.6 libgcc_s.so.1 libc.so.6 "
    local needed ok=1 n
    needed=$(needed_of "$lib/libdigits.so")
    echo "libdigits.so NEEDED: $(echo $needed)"
    for n in $needed; do
        [[ $allowed == *" $n "* ]] || { echo "unexpected NEEDED entry: $n"; ok=0; }
    done
    if grep -qiE 'swift|foundation|python' <<<"$needed"; then
        echo "libdigits.so needs a Swift/Foundation/Python library"; ok=0
    fi
    if nm -u "$lib/libdigits.a" | grep -iE 'swift|python|Foundation' ; then
        echo "libdigits.a references Swift/Foundation/Python symbols"; ok=0
    fi
    if readelf -d "$lib/libdigits.so" | grep -E '\((RPATH|RUNPATH)\)'; then
        echo "libdigits.so carries an RPATH/RUNPATH"; ok=0
    fi
    [[ $ok -eq 1 ]]
}

test_misuse() {
    local deps
    read -r -a deps <<<"$(PKG_CONFIG_PATH=$lib pkg-config --libs digits-static)"
    show "$cc" -O2 -std=c11 -Wall -Wextra -Werror "$here/misuse.c" -o "$tmp/misuse" \
        -I "$lib" "${deps[@]}"
    show "$tmp/misuse"
}

test_header_strict() {
    # The header alone compiles as strict C99 and C++11, warnings as errors, and the C++
    # program links (extern "C").
    printf '#include "digits.h"\nint main(void) { return digits_num_inputs() == DIGITS_NUM_INPUTS ? 0 : 1; }\n' \
        >"$tmp/header.c"
    cp "$tmp/header.c" "$tmp/header.cpp"
    local deps
    read -r -a deps <<<"$(PKG_CONFIG_PATH=$lib pkg-config --libs digits-static)"
    show "$cc" -std=c99 -Wall -Wextra -Wpedantic -Werror -I "$lib" "$tmp/header.c" -o "$tmp/header-c" \
        "${deps[@]}"
    show "${CXX:-c++}" -std=c++11 -Wall -Wextra -Wpedantic -Werror -I "$lib" "$tmp/header.cpp" \
        -o "$tmp/header-cpp" "${deps[@]}"
    show "$tmp/header-c"
    show "$tmp/header-cpp"
}

test_threads() {
    # digits (FP32, static, from setup) and digits_q (the PT2E int8 model) in one program, 8 threads.
    show "$kiln" compile "$root/samples/models/digits.pt2e.onnx" -o "$tmp/q" --name digits_q \
        --input-shape image=1x1x8x8 --library static
    local cflags libs
    read -r -a cflags <<<"$(PKG_CONFIG_PATH=$lib:$tmp/q pkg-config --cflags digits-static digits_q-static)"
    read -r -a libs <<<"$(PKG_CONFIG_PATH=$lib:$tmp/q pkg-config --libs digits-static digits_q-static)"
    show "$cc" -O2 -std=c11 -Wall -Wextra -Werror -pthread "$here/threads.c" -o "$tmp/threads" \
        "${cflags[@]}" "${libs[@]}"
    show "$tmp/threads"
}

test_other_cpus() {
    # Under qemu-user as a Haswell (AVX2, no AVX-512, no VNNI): a library built for x86-64-v4
    # refuses to start with a status, never SIGILL; one built for x86-64-v3 (the default) gives
    # the native run's results: FP32 within 1e-5 of each image's largest logit; int8 (the PT2E
    # model) within 5e-2: natively on a VNNI CPU it runs oneDNN's integer kernels and on the
    # Haswell the f32 form, whose quantized values may differ by a step at .5 ties (the logits by
    # a few hundredths; one held-back image's top two logits are 0.03 apart).
    command -v qemu-x86_64 >/dev/null || die "qemu-x86_64 is missing (Debian: apt-get install qemu-user; scripts/test installs it)"
    local haswell=(qemu-x86_64 -cpu Haswell)
    show "$kiln" compile "$model" -o "$tmp/v4" --name digits --input-shape image=1x1x8x8 --library static --cpu x86-64-v4
    local flags out rc=0
    read -r -a flags <<<"$(PKG_CONFIG_PATH=$tmp/v4 pkg-config --cflags --libs digits-static)"
    show "$cc" -O2 -std=c11 "$classify" -o "$tmp/classify-v4" "${flags[@]}"
    out=$("${haswell[@]}" "$tmp/classify-v4" "$images" "$labels" 2>&1) || rc=$?
    echo "$out" | grep -v 'TCG doesn.t support' || true
    [[ $rc -eq 1 ]] || die "an x86-64-v4 library on a Haswell: exit status $rc, expected 1"
    grep -q 'lacks the instruction set' <<<"$out" || die "an x86-64-v4 library on a Haswell: no UNSUPPORTED_CPU message"
    show "$kiln" compile "$root/samples/models/digits.pt2e.onnx" -o "$tmp/q3" --name digits_q \
        --input-shape image=1x1x8x8 --library static
    local name dir tolerance
    for name in digits digits_q; do
        if [[ $name == digits ]]; then dir=$lib; tolerance=1e-5; else dir=$tmp/q3; tolerance=5e-2; fi
        read -r -a flags <<<"$(PKG_CONFIG_PATH=$dir pkg-config --cflags --libs "$name-static")"
        show "$cc" -O2 -std=c11 -DMODEL="$name" -DHEADER="\"$name.h\"" "$here/logits.c" -o "$tmp/logits-$name" "${flags[@]}" -lm
        show "$tmp/logits-$name" "$images" write "$tmp/$name.native"
        out=$("${haswell[@]}" "$tmp/logits-$name" "$images" compare "$tmp/$name.native" "$tolerance" 2>&1) ||
            { echo "$out"; die "$name under qemu -cpu Haswell differs from the native run"; }
        echo "$out" | grep -v 'TCG doesn.t support' | sed "s/^other CPU:/other CPU: $name:/"
    done
}

run_test "setup: kiln compile digits, digits_a, digits_b" setup
if [[ $failed -eq 0 ]]; then
    run_test "static link: cc + pkg-config + libdigits.a" test_static_pkg_config
    run_test "CMake: find_package(digits), digits::digits" test_cmake_find_package
    run_test "CMake: digits::shared" test_cmake_shared_target
    run_test "shared link: cc -L -ldigits + rpath" test_shared
    run_test "two models in one program (digits_a + digits_b, static)" test_two_models
    run_test "C++ program with the static library" test_cxx_consumer
    run_test "C++ RAII wrapper (kiln/model.hpp), C++11" test_cxx_wrapper
    run_test "ABI numbers: the header against kiln/abi.hpp (C++ static_assert)" test_abi_numbers
    run_test "each include/kiln header compiles alone" test_headers_self_contained
    run_test "Python host: kiln_runtime.py (ctypes + numpy)" test_python
    run_test "Rust host: extern \"C\" + build.rs, std only" test_rust
    run_test "Go host: cgo + pkg-config" test_go
    run_test "Swift host: system-library target with a module map" test_swift
    run_test "scripts/install --prefix: an installed kiln compiles with its own headers" test_install
    run_test "CMake: find_package(Kiln) + kiln_add_model (Ninja, Make, incremental)" test_cmake_kiln_add_model
    run_test "kiln doctor (this machine, an empty prefix, no compiler) and kiln --version" test_doctor
    run_test "NAME.report.html in headless Chromium: no script errors, renders to a PNG" test_html_report
    run_test "a failed compile (g++ killed, a full disk) names the step and leaves the output folder as it was" test_failed_compile
    run_test "limits: 256 MiB of weights, peak memory under 3x, static and shared libraries run" test_limits
    run_test "--sanitize address,undefined: C sample, misuse, create/destroy loop (no leak)" test_sanitize_address
    run_test "--sanitize thread: 8 threads x 2 models under ThreadSanitizer" test_sanitize_thread
    run_test "exported symbols carry the digits_ prefix" test_exported_symbols
    run_test "libdigits.so NEEDED entries" test_needed
    run_test "C API misuse" test_misuse
    run_test "header compiles as strict C99 and C++11" test_header_strict
    run_test "8 threads x 2 models (FP32 and int8), own handles: single-threaded bits" test_threads
    run_test "another CPU: qemu -cpu Haswell (x86-64-v4 refused, x86-64-v3 same results)" test_other_cpus
fi

if [[ $failed -ne 0 ]]; then
    echo "failed: ${failures[*]}"
fi
echo "consumer: $passed passed, $failed failed"
[[ $failed -eq 0 ]]
