#!/usr/bin/env python3
"""Compares the outputs `kiln eval` wrote with ONNX Runtime's on the same inputs.

    compare_ort.py MODEL --input NAME=FILE.npy [--input ...] --kiln-dir DIR

Runs the model in two ONNX Runtime sessions, one with every graph optimization
off and one with the defaults, and for every graph output compares
DIR/<sanitised output name>.npy with each session's result:

    rel = max|kiln - ort| / max|ort|        passes when rel <= --tol (1e-4)

(when max|ort| is 0, rel is max|kiln - ort| itself). Shapes and dtypes must
match too. Prints one line per output and session, then a last line

    max_rel_diff <worst rel over outputs and sessions>

Exit status: 0 when everything passes, 1 on a mismatch or a missing output,
2 on a usage error or when ONNX Runtime cannot run the model.
"""

import argparse
import os
import sys

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from kilnbench.kiln import output_file_name  # noqa: E402
from kilnbench.peers import ort_session  # noqa: E402
from kilnbench.report import rel_diff  # noqa: E402


def parse_inputs(pairs):
    feeds = {}
    for pair in pairs:
        name, sep, path = pair.partition("=")
        if not sep:
            raise SystemExit(f"compare_ort: --input wants NAME=FILE.npy, got {pair!r}")
        feeds[name] = np.load(path)
    return feeds


def ort_sessions(model):
    return {
        "ort-noopt": ort_session(model, optimization="ORT_DISABLE_ALL"),
        "ort-default": ort_session(model),
    }


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("model")
    parser.add_argument("--input", action="append", default=[], metavar="NAME=FILE")
    parser.add_argument("--kiln-dir", required=True, help="the --output-dir of kiln eval")
    parser.add_argument("--tol", type=float, default=1e-4)
    args = parser.parse_args()

    feeds = parse_inputs(args.input)
    try:
        sessions = ort_sessions(args.model)
    except Exception as e:  # noqa: BLE001 - report whatever ORT says
        print(f"compare_ort: onnxruntime cannot load {args.model}: {e}", file=sys.stderr)
        return 2

    ok = True
    worst = 0.0
    output_names = [o.name for o in next(iter(sessions.values())).get_outputs()]
    kiln_out = {}
    for name in output_names:
        path = os.path.join(args.kiln_dir, output_file_name(name) + ".npy")
        if not os.path.exists(path):
            print(f"{name}: MISSING kiln output {path}")
            ok = False
            continue
        kiln_out[name] = np.load(path)

    for label, sess in sessions.items():
        try:
            results = sess.run(output_names, feeds)
        except Exception as e:  # noqa: BLE001
            print(f"compare_ort: onnxruntime ({label}) failed: {e}", file=sys.stderr)
            return 2
        for name, ref in zip(output_names, results):
            got = kiln_out.get(name)
            if got is None:
                continue
            ref = np.asarray(ref)
            if got.shape != ref.shape or got.dtype != ref.dtype:
                print(
                    f"{name} vs {label}: MISMATCH kiln {got.dtype}{list(got.shape)}"
                    f" but ORT {ref.dtype}{list(ref.shape)}"
                )
                ok = False
                worst = float("inf")
                continue
            rel, abs_diff = rel_diff(got, ref)
            worst = max(worst, rel)
            passed = rel <= args.tol
            ok = ok and passed
            print(
                f"{name} vs {label}: {'ok' if passed else 'MISMATCH'}"
                f" rel {rel:.3e} (max abs diff {abs_diff:.3e},"
                f" max |ort| {float(np.max(np.abs(ref))) if ref.size else 0.0:.3e},"
                f" shape {list(ref.shape)})"
            )
    print(f"max_rel_diff {worst:.3e}")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
