# shellcheck shell=bash
# Kiln's shared shell helpers. Source it (scripts/test and scripts/demo do):
#
#   source "$(dirname "$0")/lib.sh"
#   ensure_venv                 # $kiln_root/.venv with onnx, onnxruntime, numpy; exports KILN_PY
#   ensure_conformance_data     # ONNX backend node tests under $kiln_root/.cache/conformance
#   ensure_torch_venv           # PyTorch (CPU) venv for samples and benchmarks; exports KILN_TORCH_PY
#   ensure_apt_packages PKG...  # installs the Debian packages that are missing
#
# Everything is safe under `set -euo pipefail` and idempotent: a second call
# that has nothing to do costs no more than a few file reads (no Python start).

if [[ -n "${KILN_LIB_SH_LOADED:-}" ]]; then
    return 0
fi
KILN_LIB_SH_LOADED=1

kiln_root="$(cd -P -- "$(dirname -- "${BASH_SOURCE[0]}")/.." && pwd -P)"
export kiln_root

# Requirements of the project venv (.venv). Changing this list rebuilds the venv
# on the next ensure_venv. onnx is pinned to the release whose backend node
# tests the conformance suite is generated from.
KILN_VENV_REQUIREMENTS=(
    "onnx==1.23.2"
    "onnxruntime==1.32.0"
    "numpy==2.4.6"
)

kiln_log() {
    printf 'kiln: %s\n' "$*" >&2
}

# Runs "$@" as root: directly if we are root, through sudo when it exists.
kiln_as_root() {
    if [[ "$(id -u)" -eq 0 ]]; then
        "$@"
    elif command -v sudo >/dev/null 2>&1; then
        sudo "$@"
    else
        kiln_log "need root to run: $* (not root and no sudo)"
        return 1
    fi
}

kiln_apt_updated=""

# ensure_apt_packages PKG... — installs the Debian packages not yet installed.
ensure_apt_packages() {
    local pkg status
    local -a missing=()
    for pkg in "$@"; do
        status="$(dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null || true)"
        if [[ "$status" != "install ok installed" ]]; then
            missing+=("$pkg")
        fi
    done
    if [[ ${#missing[@]} -eq 0 ]]; then
        return 0
    fi
    kiln_log "installing Debian packages: ${missing[*]}"
    # apt's chatter goes to a log that is shown only when apt fails.
    local log rc=0
    log="$(mktemp)" || return 1
    if [[ -z "$kiln_apt_updated" ]]; then
        kiln_as_root env DEBIAN_FRONTEND=noninteractive apt-get update -q >"$log" 2>&1 || rc=$?
        [[ $rc -eq 0 ]] && kiln_apt_updated=1
    fi
    if [[ $rc -eq 0 ]]; then
        kiln_as_root env DEBIAN_FRONTEND=noninteractive \
            apt-get install -y -q --no-install-recommends "${missing[@]}" >>"$log" 2>&1 || rc=$?
    fi
    if [[ $rc -ne 0 ]]; then
        cat "$log" >&2
        kiln_log "apt-get failed (exit $rc) installing: ${missing[*]}"
    fi
    rm -f "$log"
    return "$rc"
}

# Prints the python3 to build venvs from (KILN_BASE_PYTHON overrides).
kiln_base_python() {
    local py="${KILN_BASE_PYTHON:-}"
    if [[ -z "$py" ]]; then
        py="$(command -v python3 || true)"
    fi
    if [[ -z "$py" ]]; then
        ensure_apt_packages python3 || return 1
        py="$(command -v python3)" || return 1
    fi
    # venv needs ensurepip; Debian's python3 ships that in python3-venv.
    if ! "$py" -c 'import venv, ensurepip' >/dev/null 2>&1; then
        local ver
        ver="$("$py" -c 'import sys; print("%d.%d" % sys.version_info[:2])')" || return 1
        if ! ensure_apt_packages "python${ver}-venv"; then
            ensure_apt_packages python3-venv || return 1
        fi
    fi
    printf '%s\n' "$py"
}

# kiln_stamp_is FILE TEXT — true when the stamp file holds exactly TEXT.
kiln_stamp_is() {
    [[ -f "$1" ]] && [[ "$(cat "$1")" == "$2" ]]
}

# kiln_make_venv DIR LOCKFILE STAMP_TEXT PIP_ARGS... — (re)creates the venv DIR
# and pip-installs PIP_ARGS into it unless DIR/.kiln-stamp already holds
# STAMP_TEXT. Serialised with flock on LOCKFILE so that two scripts started
# together do not race. Checks its own errors, so it also works without set -e
# and inside `if`.
kiln_make_venv() {
    local dir="$1" lock="$2" stamp="$3"
    shift 3
    if [[ -x "$dir/bin/python" ]] && kiln_stamp_is "$dir/.kiln-stamp" "$stamp"; then
        return 0
    fi
    mkdir -p "$(dirname "$dir")" "$(dirname "$lock")" || return 1
    (
        if command -v flock >/dev/null 2>&1; then
            flock 9 || exit 1
        fi
        # Someone else may have finished the job while we waited.
        if [[ -x "$dir/bin/python" ]] && kiln_stamp_is "$dir/.kiln-stamp" "$stamp"; then
            exit 0
        fi
        py="$(kiln_base_python)" || exit 1
        kiln_log "setting up Python venv $dir"
        rm -f "$dir/.kiln-stamp"
        # A venv whose interpreter no longer starts (base Python moved) is rebuilt.
        if [[ -e "$dir" ]] && ! "$dir/bin/python" -c '' >/dev/null 2>&1; then
            rm -rf "$dir"
        fi
        if [[ ! -x "$dir/bin/python" ]]; then
            "$py" -m venv "$dir" || exit 1
        fi
        "$dir/bin/python" -m pip install -q --disable-pip-version-check "$@" || exit 1
        printf '%s' "$stamp" >"$dir/.kiln-stamp" || exit 1
    ) 9>"$lock"
}

# ensure_venv — the project venv at $kiln_root/.venv; exports KILN_PY.
ensure_venv() {
    local dir="$kiln_root/.venv"
    local stamp
    stamp="$(printf '%s\n' "${KILN_VENV_REQUIREMENTS[@]}")"
    kiln_make_venv "$dir" "$kiln_root/.cache/venv.lock" "$stamp" \
        "${KILN_VENV_REQUIREMENTS[@]}" || return 1
    KILN_PY="$dir/bin/python"
    export KILN_PY
}

# Prints the version of a distribution installed in a venv, read from its
# dist-info folder name (no Python start).
kiln_venv_dist_version() {
    local venv="$1" dist="$2" d
    for d in "$venv"/lib/python*/site-packages/"$dist"-*.dist-info; do
        if [[ -d "$d" ]]; then
            d="${d##*/}"
            d="${d#"$dist"-}"
            printf '%s\n' "${d%.dist-info}"
            return 0
        fi
    done
    printf 'unknown\n'
}

# ensure_conformance_data — writes the ONNX backend node test cases (and the
# real-model directories the onnx wheel ships) to $kiln_root/.cache/conformance,
# once per onnx version and version of scripts/gen_conformance.py.
# Exports KILN_CONFORMANCE_DIR.
ensure_conformance_data() {
    ensure_venv || return 1
    local out="$kiln_root/.cache/conformance"
    local gen="$kiln_root/scripts/gen_conformance.py"
    local stamp
    stamp="onnx $(kiln_venv_dist_version "$kiln_root/.venv" onnx)
$(sha256sum "$gen" | cut -d' ' -f1)"
    KILN_CONFORMANCE_DIR="$out"
    export KILN_CONFORMANCE_DIR
    if kiln_stamp_is "$out/.kiln-stamp" "$stamp"; then
        return 0
    fi
    mkdir -p "$(dirname "$out")" || return 1
    (
        if command -v flock >/dev/null 2>&1; then
            flock 9 || exit 1
        fi
        if kiln_stamp_is "$out/.kiln-stamp" "$stamp"; then
            exit 0
        fi
        kiln_log "generating ONNX conformance data in $out"
        tmp="$out.tmp.$$"
        rm -rf "$tmp"
        if ! "$KILN_PY" "$gen" --out "$tmp" >&2; then
            rm -rf "$tmp"
            exit 1
        fi
        printf '%s' "$stamp" >"$tmp/.kiln-stamp" || exit 1
        rm -rf "$out" && mv "$tmp" "$out" || exit 1
    ) 9>"$out.lock"
}

# ensure_torch_venv — PyTorch (CPU-only) venv for the sample models and the
# benchmarks, at ${KILN_CACHE:-~/.cache/kiln}/torch-venv, with the packages of
# bench/requirements-torch.txt, then bench/requirements-torch-nodeps.txt without
# their declared dependencies. Exports KILN_TORCH_PY.
ensure_torch_venv() {
    local cache="${KILN_CACHE:-${HOME:-/root}/.cache/kiln}"
    local dir="$cache/torch-venv"
    local req="$kiln_root/bench/requirements-torch.txt"
    local stamp
    stamp="$(cat "$req")" || return 1
    if ! kiln_make_venv "$dir" "$cache/torch-venv.lock" "$stamp" -r "$req"; then
        # The CPU-only torch wheel (a local version, 2.x.y+cpu) is not on every
        # package index; PyPI's default build works too, with GBs of CUDA wheels.
        grep -q '+cpu' "$req" || return 1
        kiln_log "warning: no CPU-only torch wheel here; falling back to PyPI's default torch (large CUDA dependencies)"
        sed 's/+cpu//' "$req" >"$cache/requirements-torch-fallback.txt" || return 1
        kiln_make_venv "$dir" "$cache/torch-venv.lock" "$stamp" \
            -r "$cache/requirements-torch-fallback.txt" || return 1
    fi
    local nodeps="$kiln_root/bench/requirements-torch-nodeps.txt" nodeps_stamp
    nodeps_stamp="$(cat "$nodeps")" || return 1
    if ! kiln_stamp_is "$dir/.kiln-stamp-nodeps" "$nodeps_stamp"; then
        kiln_log "installing bench/requirements-torch-nodeps.txt into $dir (without declared dependencies)"
        "$dir/bin/python" -m pip install -q --disable-pip-version-check --no-deps -r "$nodeps" || return 1
        printf '%s' "$nodeps_stamp" >"$dir/.kiln-stamp-nodeps" || return 1
    fi
    kiln_install_torchvision_cpu_shim "$dir" || return 1
    KILN_TORCH_PY="$dir/bin/python"
    export KILN_TORCH_PY
}

# PyPI's torchvision wheels are built against CUDA torch: under the CPU-only
# torch their C++ ops (_C.so) do not load, and `import torchvision` then fails
# with "operator torchvision::nms does not exist" (its fake-tensor registration
# of nms/qnms needs the op schemas). This shim, loaded by a .pth file, declares
# those two schemas when _C.so did not load, so that torchvision (its models,
# transforms, datasets) imports and works. The C++ ops themselves (nms,
# roi_align, deform_conv2d, ...) stay unavailable and raise torchvision's own
# "Couldn't load custom C++ ops" error. With a torchvision whose ops load it does
# nothing. It costs one meta-path entry at interpreter start; torch is imported
# only when torchvision is.
KILN_TORCHVISION_SHIM='"""Kiln: lets PyPI'"'"'s torchvision import under CPU-only torch (see scripts/lib.sh)."""
import sys

_lib = None


class _KilnTorchvisionFinder:
    @staticmethod
    def find_spec(name, path=None, target=None):
        if name == "torchvision._meta_registrations":
            _declare_missing_ops()
        return None


def _declare_missing_ops():
    global _lib
    import torch
    import torchvision.extension

    if _lib is not None or torchvision.extension._has_ops():
        return
    _lib = torch.library.Library("torchvision", "FRAGMENT")
    for schema in (
        "nms(Tensor dets, Tensor scores, float iou_threshold) -> Tensor",
        "qnms(Tensor dets, Tensor scores, float iou_threshold) -> Tensor",
    ):
        _lib.define(schema)


if not any(isinstance(f, _KilnTorchvisionFinder) for f in sys.meta_path):
    sys.meta_path.insert(0, _KilnTorchvisionFinder())
'

kiln_install_torchvision_cpu_shim() {
    local dir="$1" site
    for site in "$dir"/lib/python3*/site-packages; do
        [[ -d "$site/torchvision" ]] || continue
        # ($(cat) drops the trailing newline, so compare without it.)
        if ! kiln_stamp_is "$site/_kiln_torchvision_cpu.py" "${KILN_TORCHVISION_SHIM%$'\n'}"; then
            printf '%s' "$KILN_TORCHVISION_SHIM" >"$site/_kiln_torchvision_cpu.py" || return 1
            printf 'import _kiln_torchvision_cpu\n' >"$site/_kiln_torchvision_cpu.pth" || return 1
        fi
    done
}
