#!/usr/bin/env python3
"""Differential testing of Kiln's dynamic quantization on random graphs.

    dynamic.py --seed S --count N [--kiln PATH] [--work DIR] [--tolerance T]

Each graph is one of difftest.py's random FP32 graphs (seed, index) that has a MatMul with
constant weights, quantized by ONNX Runtime's `quantize_dynamic` as a user would: s8 weights,
symmetric, per channel or per tensor; each MatMul's source quantized when the graph runs
(DynamicQuantizeLinear → MatMulInteger → Cast → Mul). The oracle is ONNX Runtime with every graph
optimization off. Kiln runs that file through its reference interpreter (`kiln eval`) and
compiled (`kiln compile`: the dynamically quantized matmul on oneDNN's int8 kernel), and
compiles the FP32 file itself with `--quantize dynamic` (per-channel cases: the same weights).

The sources' scales come from the values themselves, so f32 rounding that differs in the last
bit can move a value to the next integer step, and a step moves what follows. Each output must
agree within T (default 0.01) of its largest magnitude on every element: one step of one source
value moves a K-term product by about 1/(127·√K) of its range.

Exit status 1 when Kiln disagrees on any graph; each disagreement prints its (seed, index).
"""
import argparse
import os
import shutil
import sys
import tempfile
import time

import numpy as np
import onnx
from onnx import numpy_helper

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
sys.path.insert(0, HERE)
import difftest  # noqa: E402
from qdq import kiln_outputs, run_ort  # noqa: E402


def has_constant_matmul(model):
    inits = {t.name: t for t in model.graph.initializer}
    return any(n.op_type == "MatMul" and n.input[1] in inits and len(inits[n.input[1]].dims) == 2 for n in model.graph.node)


def quantize(model, path, rng):
    """The graph quantized by quantize_dynamic into `path`, and how (None when it cannot be)."""
    from onnxruntime.quantization import QuantType, quantize_dynamic

    if not has_constant_matmul(model) or any(vi.type.tensor_type.elem_type != onnx.TensorProto.FLOAT for vi in model.graph.input):
        return None
    fp32 = path + ".fp32.onnx"
    onnx.save(model, fp32)
    per_channel = bool(rng.integers(2))
    try:
        quantize_dynamic(fp32, path, per_channel=per_channel, weight_type=QuantType.QInt8, op_types_to_quantize=["MatMul"])
    except Exception:  # noqa: BLE001 (quantize_dynamic refuses some graphs: not Kiln's business)
        os.remove(fp32)
        return None
    if not any(n.op_type == "MatMulInteger" for n in onnx.load(path).graph.node):
        os.remove(fp32)
        return None
    return fp32, per_channel


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--seed", type=int, required=True)
    ap.add_argument("--count", type=int, required=True)
    ap.add_argument("--tolerance", type=float, default=0.01)
    ap.add_argument("--kiln", default=os.environ.get("KILN_BIN", os.path.join(ROOT, ".build/release/kiln")))
    ap.add_argument("--work")
    args = ap.parse_args()
    work = args.work or tempfile.mkdtemp(prefix="kiln-dynamic-")
    start = time.time()
    checked = skipped = runs = 0
    failures = []
    worst = 0.0
    for index in range(args.count):
        rng = np.random.default_rng([args.seed, index, 11])
        model, feeds = difftest.generate(args.seed, index)
        case = os.path.join(work, f"s{args.seed}_{index}")
        os.makedirs(case, exist_ok=True)
        path = os.path.join(case, "model.dynamic.onnx")
        q = quantize(model, path, rng)
        if q is None:
            skipped += 1
            shutil.rmtree(case, ignore_errors=True)
            continue
        fp32, per_channel = q
        how = "per-channel" if per_channel else "per-tensor"
        names = [o.name for o in model.graph.output]
        try:
            want = run_ort(path, feeds)
        except Exception:  # noqa: BLE001 (no oracle)
            skipped += 1
            continue
        if not all(np.all(np.isfinite(w)) for w in want if w.dtype.kind == "f"):
            skipped += 1
            continue
        checked += 1
        paths = [(path, False, [], "reference interpreter"), (path, True, [], "compiled")]
        if per_channel:
            paths.append((fp32, True, ["--quantize", "dynamic"], "--quantize dynamic"))
        for file, compiled, extra, where in paths:
            got = kiln_outputs(args.kiln, file, feeds, names, os.path.join(case, where.replace(" ", "_")), compiled, extra)
            runs += 1
            if isinstance(got, str):
                failures.append(f"s{args.seed}_{index} ({how}, {where}): {got}")
                continue
            for name, g, w in zip(names, got, want):
                if g.shape != w.shape or g.dtype != w.dtype:
                    failures.append(f"s{args.seed}_{index} ({how}, {where}): {name}: {g.dtype}{list(g.shape)}, expected {w.dtype}{list(w.shape)}")
                    continue
                if w.dtype.kind != "f" or w.size == 0:
                    if not np.array_equal(g, w):
                        failures.append(f"s{args.seed}_{index} ({how}, {where}): {name}: differs")
                    continue
                diff = float(np.abs(g.astype(np.float64) - w.astype(np.float64)).max())
                rel = diff / (float(np.abs(w).max()) + 1e-6)
                worst = max(worst, rel)
                if rel > args.tolerance:
                    failures.append(f"s{args.seed}_{index} ({how}, {where}): {name}: |diff| {diff:.4g} = {rel:.4f} of its largest magnitude")
        if not failures or not failures[-1].startswith(f"s{args.seed}_{index} "):
            shutil.rmtree(case, ignore_errors=True)
    for f in failures:
        print(f"FAIL {f}")
    print(f"dynamic difftest: {args.count} graphs (seed {args.seed}), {checked} quantized and checked, {skipped} skipped "
          f"(no MatMul with constant weights, or quantize_dynamic or ONNX Runtime refused them), largest difference "
          f"{worst:.4f} of an output's magnitude, {time.time() - start:.0f} s")
    print(f"dynamic difftest: {runs - len(failures)} passed, {len(failures)} failed")
    if not args.work and not failures:
        shutil.rmtree(work, ignore_errors=True)
    sys.exit(1 if failures else 0)


if __name__ == "__main__":
    main()
