#!/usr/bin/env python3
"""Differential testing of Kiln's int8 path on random quantized (QDQ) graphs.

    qdq.py --seed S --count N [--kiln PATH] [--work DIR] [--steps K]

Each graph is one of difftest.py's random FP32 graphs (seed, index), quantized by ONNX Runtime's
`quantize_static` as a user would quantize a model: QDQ format, s8 weights (or 7-bit, with
`reduce_range`) per channel or per tensor, u8 activations (asymmetric) or s8 (symmetric), calibrated on the graph's own inputs and
perturbed copies of them. The oracle is ONNX Runtime with every graph optimization off, which
evaluates the QDQ graph by its definition (dequantize, f32 op, quantize). Kiln runs the same
file through its reference interpreter (`kiln eval`) and compiled (`kiln compile`, `kiln run`:
quantized convs and matrix products, u8 kernels).

Integer arithmetic and the f32 arithmetic of the definition round differently where a value
lands on a .5 tie, so each quantized value may differ by one step, and a step early in the
graph can move later ones. Each output (f32, the dequantization of the graph's last quantized
values) must agree within K steps of its own scale (default 2) on every element.

Exit status 1 when Kiln disagrees on any graph; each disagreement prints its (seed, index).
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
from onnx import numpy_helper

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
sys.path.insert(0, HERE)
import difftest  # noqa: E402


def quantize(model, feeds, path, rng):
    """The graph quantized by quantize_static into `path`, and how (None when it cannot be)."""
    from onnxruntime.quantization import CalibrationDataReader, QuantFormat, QuantType, quantize_static

    if any(vi.type.tensor_type.elem_type != onnx.TensorProto.FLOAT for vi in model.graph.input):
        return None
    fp32 = path + ".fp32.onnx"
    onnx.save(model, fp32)
    samples = [feeds] + [{k: (v * rng.uniform(0.5, 1.5) + rng.normal(0, 0.1, v.shape)).astype(np.float32)
                          for k, v in feeds.items()} for _ in range(3)]

    class Reader(CalibrationDataReader):
        def __init__(self):
            self.it = iter(samples)

        def get_next(self):
            return next(self.it, None)

    per_channel = bool(rng.integers(2))
    signed = bool(rng.integers(3) == 0)
    # 7-bit weights (reduce_range, as for CPUs without VNNI) half of the time: with u8 activations
    # Kiln then runs oneDNN's int8 kernels on every CPU, not only on VNNI ones.
    reduce_range = bool(rng.integers(2))
    how = (f"{'per-channel' if per_channel else 'per-tensor'} {'7-bit' if reduce_range else 's8'} weights, "
           f"{'s8 symmetric' if signed else 'u8'} activations")
    try:
        quantize_static(fp32, path, Reader(), quant_format=QuantFormat.QDQ, per_channel=per_channel,
                        activation_type=QuantType.QInt8 if signed else QuantType.QUInt8, weight_type=QuantType.QInt8,
                        reduce_range=reduce_range, extra_options={"ActivationSymmetric": signed})
    except Exception as e:  # noqa: BLE001 (quantize_static refuses some graphs: not Kiln's business)
        return None
    finally:
        os.remove(fp32)
    return how


def output_scales(model):
    """Per graph output: the scale of the DequantizeLinear that writes it (None when none does)."""
    inits = {t.name: numpy_helper.to_array(t) for t in model.graph.initializer}
    by_output = {o: n for n in model.graph.node for o in n.output}
    scales = []
    for o in model.graph.output:
        n = by_output.get(o.name)
        s = inits.get(n.input[1]) if n is not None and n.op_type == "DequantizeLinear" else None
        scales.append(float(np.max(s)) if s is not None else None)
    return scales


def run_ort(path, feeds):
    import onnxruntime as ort

    so = ort.SessionOptions()
    so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    so.intra_op_num_threads = 1
    return ort.InferenceSession(path, so, providers=["CPUExecutionProvider"]).run(None, feeds)


def kiln_outputs(kiln, path, feeds, names, work, compiled, compile_args=()):
    """Kiln's outputs (reference interpreter, or compiled with compile_args), or a string saying why there are none."""
    os.makedirs(work, exist_ok=True)
    args = []
    for k, v in feeds.items():
        f = os.path.join(work, f"in_{len(args)}.npy")
        np.save(f, v)
        args += ["--input", f"{k}={f}"]
    out = os.path.join(work, "out")
    if compiled:
        lib = os.path.join(work, "lib")
        shapes = sum((["--input-shape", f"{k}={'x'.join(map(str, v.shape)) or '1'}"] for k, v in feeds.items()), [])
        r = subprocess.run([kiln, "compile", path, "-o", lib, "--name", "q", "--library", "shared"] + shapes + list(compile_args),
                           capture_output=True, text=True)
        if r.returncode != 0:
            return f"compile: {(r.stderr.strip().splitlines() or ['?'])[-1][:300]}"
        cmd = [kiln, "run", os.path.join(lib, "libq.so")] + args + ["-o", out]
    else:
        cmd = [kiln, "eval", path] + args + ["-o", out]
    r = subprocess.run(cmd, capture_output=True, text=True)
    if r.returncode != 0:
        return f"{'run' if compiled else 'eval'}: {(r.stderr.strip().splitlines() or ['?'])[-1][:300]}"
    safe = lambda n: "".join(c if c.isalnum() or c in "-_." else "_" for c in n)
    return [np.load(os.path.join(out, safe(n) + ".npy")) for n in names]


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--seed", type=int, required=True)
    ap.add_argument("--count", type=int, required=True)
    ap.add_argument("--steps", type=float, default=2)
    ap.add_argument("--kiln", default=os.environ.get("KILN_BIN", os.path.join(ROOT, ".build/release/kiln")))
    ap.add_argument("--work")
    args = ap.parse_args()
    work = args.work or tempfile.mkdtemp(prefix="kiln-qdq-")
    start = time.time()
    checked = skipped = 0
    failures = []
    worst_steps = 0.0
    for index in range(args.count):
        rng = np.random.default_rng([args.seed, index, 7])
        model, feeds = difftest.generate(args.seed, index)
        case = os.path.join(work, f"s{args.seed}_{index}")
        os.makedirs(case, exist_ok=True)
        path = os.path.join(case, "model.qdq.onnx")
        how = quantize(model, feeds, path, rng)
        if how is None:
            skipped += 1
            continue
        qmodel = onnx.load(path)
        names = [o.name for o in qmodel.graph.output]
        try:
            want = run_ort(path, feeds)
        except Exception:  # noqa: BLE001 (no oracle)
            skipped += 1
            continue
        if not all(np.all(np.isfinite(w)) for w in want if w.dtype.kind == "f"):
            skipped += 1
            continue
        scales = output_scales(qmodel)
        checked += 1
        for compiled in (False, True):
            got = kiln_outputs(args.kiln, path, feeds, names, os.path.join(case, "compiled" if compiled else "eval"), compiled)
            where = "compiled" if compiled else "reference interpreter"
            if isinstance(got, str):
                if "not supported" in got or "unsupported" in got:
                    continue
                failures.append(f"s{args.seed}_{index} ({how}, {where}): {got}")
                continue
            for name, g, w, s in zip(names, got, want, scales):
                if g.shape != w.shape or g.dtype != w.dtype:
                    failures.append(f"s{args.seed}_{index} ({how}, {where}): {name}: {g.dtype}{list(g.shape)}, expected {w.dtype}{list(w.shape)}")
                    continue
                diff = np.abs(g.astype(np.float64) - w.astype(np.float64))
                step = s if s is not None else 1e-3 * float(np.max(np.abs(w))) + 1e-5
                steps = float(diff.max() / step) if diff.size else 0.0
                worst_steps = max(worst_steps, steps)
                if steps > args.steps + 1e-3:
                    failures.append(f"s{args.seed}_{index} ({how}, {where}): {name}: {steps:.2f} steps off "
                                    f"(|diff| {diff.max():.4g}, step {step:.4g})")
        if not failures or not failures[-1].startswith(f"s{args.seed}_{index} "):
            shutil.rmtree(case, ignore_errors=True)
    for f in failures:
        print(f"FAIL {f}")
    print(f"qdq difftest: {args.count} graphs (seed {args.seed}), {checked} quantized and checked, {skipped} skipped "
          f"(quantize_static or ONNX Runtime refused them), largest difference {worst_steps:.2f} steps, "
          f"{time.time() - start:.0f} s")
    print(f"qdq difftest: {2 * checked - len(failures)} passed, {len(failures)} failed")
    if not args.work and not failures:
        shutil.rmtree(work, ignore_errors=True)
    sys.exit(1 if failures else 0)


if __name__ == "__main__":
    main()
