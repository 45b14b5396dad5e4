#!/usr/bin/env python3
"""Finds the first node whose output differs between `kiln eval` and ONNX Runtime.

    debug_intermediates.py MODEL INPUT.npy [--first N] [--tol 1e-4] [--work DIR]

Makes a copy of MODEL in which every node output is also a graph output, runs
it through `kiln eval` ($KILN, default <repo>/.build/release/kiln) and through
ONNX Runtime with every graph optimization off (so that the intermediate names
survive), then walks the nodes in graph order and prints the first N
intermediates that disagree: name, op type, node name, shapes, max abs diff,
max |ref| and their ratio, which fails when above --tol (the same relative
measure as compare_ort.py: max|kiln - ort| <= tol * max|ort|).

The input goes to the model's only graph input (or --input-name NAME). Node
outputs kiln did not write (e.g. folded away) are listed as missing and do not
count as disagreements. Exit status: 0 when nothing disagrees, 1 otherwise.
"""

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time

import numpy as np
import onnx

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from kilnbench import kiln as kilnbin  # noqa: E402
from kilnbench.peers import ort_session  # noqa: E402


def with_all_outputs(model):
    """The model with every node output appended to the graph outputs (untyped,
    which ONNX Runtime accepts). Returns (model, [(tensor, node), ...])."""
    graph = model.graph
    existing = {o.name for o in graph.output}
    order = []
    for node in graph.node:
        for out in node.output:
            if not out:
                continue
            order.append((out, node))
            if out not in existing:
                graph.output.append(onnx.ValueInfoProto(name=out))
                existing.add(out)
    return model, order


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("model")
    parser.add_argument("input", help="the input .npy")
    parser.add_argument("--input-name", help="graph input to feed (default: the only one)")
    parser.add_argument("--first", type=int, default=5, help="how many disagreements to print")
    parser.add_argument("--tol", type=float, default=1e-4)
    parser.add_argument("--work", help="scratch directory to keep (default: a temporary one)")
    parser.add_argument("--kiln", default=kilnbin.binary(env=True))
    args = parser.parse_args()

    model = onnx.load(args.model)
    inits = {i.name: list(i.dims) for i in model.graph.initializer}
    inputs = [i.name for i in model.graph.input if i.name not in inits]
    name = args.input_name
    if name is None:
        if len(inputs) != 1:
            parser.error(f"the model has inputs {inputs}: say which with --input-name")
        name = inputs[0]
    data = np.load(args.input)

    model, order = with_all_outputs(model)
    work = args.work or tempfile.mkdtemp(prefix="kiln-debug-")
    os.makedirs(work, exist_ok=True)
    try:
        debug_model = os.path.join(work, "all_outputs.onnx")
        # External data keeps big models (vgg16) under protobuf's 2 GB limit.
        onnx.save_model(
            model,
            debug_model,
            save_as_external_data=True,
            all_tensors_to_one_file=True,
            location="all_outputs.onnx.data",
            size_threshold=1024,
        )
        del model

        out_dir = os.path.join(work, "kiln")
        start = time.monotonic()
        proc = subprocess.run(
            [args.kiln, "eval", debug_model, "--input", f"{name}={args.input}", "--output-dir", out_dir],
            capture_output=True,
            text=True,
        )
        kiln_s = time.monotonic() - start
        if proc.returncode != 0:
            print(f"kiln eval failed (exit {proc.returncode}):\n{proc.stderr}{proc.stdout}")
            return 1
        print(f"kiln eval: {kiln_s:.1f} s, {len(order)} node outputs")

        sess = ort_session(debug_model, optimization="ORT_DISABLE_ALL")
        names = [o.name for o in sess.get_outputs()]
        refs = dict(zip(names, sess.run(names, {name: data})))
        refs.setdefault(name, data)

        bad = 0
        missing = []
        for tensor, node in order:
            ref = np.asarray(refs[tensor])
            path = os.path.join(out_dir, kilnbin.output_file_name(tensor) + ".npy")
            if not os.path.exists(path):
                missing.append(tensor)
                continue
            got = np.load(path)
            where = f"{tensor!r} ({node.op_type} node {node.name!r})"
            if got.shape != ref.shape:
                verdict = f"shape kiln {list(got.shape)} vs ort {list(ref.shape)}"
            elif ref.size == 0:
                continue
            else:
                g = got.astype(np.float64)
                r = ref.astype(np.float64)
                diff = float(np.max(np.abs(g - r)))
                scale = float(np.max(np.abs(r)))
                rel = diff / scale if scale > 0 else diff
                if rel <= args.tol:  # (NaN fails)
                    continue
                idx = np.unravel_index(int(np.nanargmax(np.abs(g - r))), r.shape) if r.ndim else ()
                verdict = (
                    f"shape {list(ref.shape)} {ref.dtype}: max abs diff {diff:.4e},"
                    f" max |ref| {scale:.4e}, rel {rel:.3e};"
                    f" worst at {tuple(int(i) for i in idx)}: kiln {g[idx]:.6g} ort {r[idx]:.6g}"
                )
            bad += 1
            if bad <= args.first:
                inputs_desc = ", ".join(
                    f"{i}{list(np.shape(refs[i]))}" if i in refs
                    else f"{i}{inits[i]} (initializer)" if i in inits else i
                    for i in node.input if i
                )
                print(f"#{bad} {where}: {verdict}\n    inputs: {inputs_desc}")
        if missing:
            shown = ", ".join(missing[:8]) + (" ..." if len(missing) > 8 else "")
            print(f"{len(missing)} node outputs not written by kiln (not compared): {shown}")
        print(f"{bad} of {len(order)} node outputs disagree (tol {args.tol:g})")
        return 1 if bad else 0
    finally:
        if not args.work:
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
