#!/usr/bin/env python3
"""int8 on quantized (QDQ) graphs: Kiln against ONNX Runtime and OpenVINO on the same graph.

    qdq.py --models resnet18,mobilenet_v2 [--dir DIR] [--threads 2] [--seconds 1] [--rounds 3]
           [--cosine-inputs 8] [--calibration 16] [--fast] [--self]

For each model: the FP32 export (bench/export_models.py, cached in DIR), ONNX Runtime's
quantize_static (QDQ format, per-channel s8 weights, u8 activations) calibrated on seeded random
samples (the same for every tool), then
- ONNX Runtime on the QDQ graph (2 threads, sequential), OpenVINO on the same file (CPU plugin,
  which reads QDQ as int8; 2 threads, latency hint, INFERENCE_PRECISION_HINT=f32 so that no
  bf16 enters where the graph says FP32) and Kiln's library of it (`kiln compile`, default flags;
  `kiln bench`), latency medians measured in one run; with --fast also Kiln's library compiled
  with `--int8 fast` (oneDNN's int8 kernels on every CPU, which without VNNI can saturate);
  with --self also Kiln quantizing the FP32 model itself (`kiln compile --quantize int8
  --calibration DIR`, DIR holding the same samples as input_<k>.npy), in a second table.
  The tools take turns: in each of --rounds rounds each one is timed for --seconds, and a tool's
  figure is the median of its round medians, so that a slow minute of a shared host falls on
  all three alike;
- each output's cosine similarity to the FP32 model's output (ONNX Runtime FP32): on the model's
  input file, and the mean over --cosine-inputs inputs (that file and seeded random ones): on
  one input, implementations that round a rare tie differently land a few 1e-6 apart either way.
Prints a Markdown table. Needs the torch venv (scripts/lib.sh ensure_torch_venv).
"""
import argparse
import os, subprocess, sys
import numpy as np

here = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, here)

from kilnbench import kiln as kilnbin  # noqa: E402
from kilnbench.models import QDQ_DIR, calibration_samples, cosine_inputs, write_calibration  # noqa: E402
from kilnbench.peers import ort_session, quantize_qdq  # noqa: E402
from kilnbench.report import cos, geomean  # noqa: E402
from kilnbench.timing import median_ms, take_turns  # noqa: E402
from kilnbench.workers import OpenVINO  # noqa: E402


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--models", default="resnet18,mobilenet_v2")
    ap.add_argument("--dir", default=QDQ_DIR)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--seconds", type=float, default=1, help="seconds per tool and round")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--cosine-inputs", type=int, default=8)
    ap.add_argument("--calibration", type=int, default=16)
    ap.add_argument("--kiln", default=kilnbin.binary())
    ap.add_argument("--fast", action="store_true", help="also time Kiln with --int8 fast")
    ap.add_argument("--self", action="store_true",
                    help="also time Kiln quantizing the FP32 model itself (--quantize int8) on the same calibration samples")
    a = ap.parse_args()
    os.makedirs(a.dir, exist_ok=True)
    models = a.models.split(",")
    subprocess.run([sys.executable, os.path.join(here, "export_models.py"), "--out", a.dir, "--models", a.models], check=True)
    rows, self_rows = [], []
    for m in models:
        fp32 = os.path.join(a.dir, f"{m}.onnx")
        qdq = os.path.join(a.dir, f"{m}.qdq.onnx")
        x = np.load(os.path.join(a.dir, f"{m}.input.npy"))
        samples = calibration_samples(x, a.calibration)
        quantize_qdq(fp32, qdq, samples)
        ref_session = ort_session(fp32, a.threads, cpu_only=False)
        sess = ort_session(qdq, a.threads, cpu_only=False)
        inputs = cosine_inputs(x, a.cosine_inputs)
        refs = [ref_session.run(None, {"input": xi})[0].ravel() for xi in inputs]
        ov = OpenVINO(qdq, a.threads)
        kiln = {}
        calibration = os.path.join(a.dir, f"calibration-{m}")
        if a.self:
            write_calibration(calibration, samples)
        for variant in ["exact"] + (["fast"] if a.fast else []) + (["self"] if a.self else []):
            out = os.path.join(a.dir, f"kiln-{m}" + ("" if variant == "exact" else "-" + variant))
            args = ([fp32, "--quantize", "int8", "--calibration", calibration] if variant == "self"
                    else [qdq, "--int8", variant])
            lib, summary, seconds = kilnbin.compile_library(a.kiln, args, out, m)
            if variant == "self":
                print(f"{m}: kiln --quantize int8 compiled in {seconds:.1f} s", file=sys.stderr)
            if lib is None:
                kiln[variant] = None
                print(f"{m}: kiln compile failed: {summary}", file=sys.stderr)
                continue
            kiln[variant] = {"lib": lib, "out": out, "summary": summary, "ms": [], "cos": []}
        cos_ort, cos_ov = [], []
        for k, xi in enumerate(inputs):
            inp = os.path.join(a.dir, "in.npy")
            np.save(inp, xi)
            cos_ort.append(cos(sess.run(None, {"input": xi})[0].ravel(), refs[k]))
            y_ov = ov.output(inp, os.path.join(a.dir, "ov-out.npy"))
            cos_ov.append(cos(y_ov, refs[k]) if y_ov is not None else None)
            for v in kiln.values():
                if v:
                    v["cos"].append(cos(kilnbin.run_output(a.kiln, v["lib"], inp, v["out"], a.threads), refs[k]))
        # In this order every round (ONNX Runtime, OpenVINO, Kiln's libraries).
        ms = take_turns([("ort", lambda: median_ms(lambda: sess.run(None, {"input": x}), a.seconds)),
                         ("openvino", lambda: ov.time(a.seconds))]
                        + [(variant, lambda v=v: kilnbin.bench_ms(a.kiln, v["lib"], a.threads, a.seconds))
                           for variant, v in kiln.items() if v], a.rounds, rotate=False)
        ort_ms, ov_ms = ms["ort"], ms["openvino"]
        for variant, v in kiln.items():
            if v:
                v["ms"] = ms[variant]
        ov.close()
        med = lambda xs: float(np.median(xs)) if xs else None
        mean = lambda xs: float(np.mean(xs)) if xs and None not in xs else None
        ov_row = (med(ov_ms), cos_ov[0], mean(cos_ov), ov.error)
        kiln_rows = {k: (med(v["ms"]), v["cos"][0], mean(v["cos"]), v["summary"]) if v else None for k, v in kiln.items()}
        rows.append((m, med(ort_ms), ov_row, kiln_rows["exact"], (cos_ort[0], mean(cos_ort)), kiln_rows.get("fast")))
        if a.self:
            self_rows.append((m, med(ort_ms), ov_row[0], kiln_rows["exact"], kiln_rows["self"], mean(cos_ort), ov_row[2]))
    fast = a.fast
    print(f"{a.rounds} rounds of {a.seconds:g} s per tool; cosine on the input file / mean over {a.cosine_inputs} inputs\n")
    print("| model | ORT ms | OpenVINO ms | Kiln ms | Kiln/ORT | Kiln/OpenVINO | cosine ORT | cosine OpenVINO | cosine Kiln |"
          + (" Kiln fast ms | fast/OpenVINO | cosine Kiln fast |" if fast else "") + " Kiln |")
    print("|---" * (10 + 3 * fast) + "|")
    f = lambda v, d=2: "-" if v is None else f"{v:.{d}f}"
    c2 = lambda one, avg: "-" if one is None else f"{one:.5f} / {f(avg, 6)}"
    ratios, fast_ratios = [], []
    for m, o, (v, cv, cvm, verr), k, (co, com), kf in rows:
        k_ms, ck, ckm, s = k or (None, None, None, "compile failed")
        best = min(t for t in (o, v) if t is not None)
        if k_ms:
            ratios.append((k_ms / o, k_ms / v if v else None, k_ms / best))
        line = (f"| {m} | {f(o)} | {f(v) if v else 'failed: ' + str(verr)} | {f(k_ms)} | {f(k_ms / o if k_ms else None)} | "
                f"{f(k_ms / v if k_ms and v else None)} | {c2(co, com)} | {c2(cv, cvm)} | {c2(ck, ckm)} |")
        if fast:
            kfm, kfc, kfcm, _ = kf or (None, None, None, None)
            line += f" {f(kfm)} | {f(kfm / v if kfm and v else None)} | {c2(kfc, kfcm)} |"
            if kfm:
                fast_ratios.append((kfm / o, kfm / v if v else None, kfm / best))
        print(line + f" {s} |")
    g = lambda xs: geomean(xs) if xs else float("nan")
    for label, rs in [("Kiln", ratios)] + ([("Kiln --int8 fast", fast_ratios)] if fast else []):
        if rs:
            print(f"\ngeometric mean of {label}/ORT {g([r[0] for r in rs]):.3f}, "
                  f"{label}/OpenVINO {g([r[1] for r in rs if r[1]]):.3f}, "
                  f"{label}/best peer {g([r[2] for r in rs]):.3f} over {len(rs)} models")
    if self_rows:
        print("\nKiln quantizing the FP32 model itself (`--quantize int8`, the same calibration samples as quantize_static), "
              "against the tools on quantize_static's graph; cosine: mean over the inputs\n")
        print("| model | ORT ms | OpenVINO ms | Kiln (QDQ) ms | Kiln self ms | self/OpenVINO | self/best peer | "
              "cosine ORT | cosine OpenVINO | cosine Kiln (QDQ) | cosine Kiln self | Kiln self |")
        print("|---" * 11 + "|")
        sr = []
        for m, o, v, kq, ks, co, cv in self_rows:
            kq_ms, _, kq_c, _ = kq or (None, None, None, None)
            ks_ms, _, ks_c, s = ks or (None, None, None, "compile failed")
            best = min(t for t in (o, v) if t is not None)
            if ks_ms:
                sr.append((ks_ms / v if v else None, ks_ms / best))
            print(f"| {m} | {f(o)} | {f(v)} | {f(kq_ms)} | {f(ks_ms)} | {f(ks_ms / v if ks_ms and v else None)} | "
                  f"{f(ks_ms / best if ks_ms else None)} | {f(co, 6)} | {f(cv, 6)} | {f(kq_c, 6)} | {f(ks_c, 6)} | {s} |")
        if sr:
            print(f"\ngeometric mean of Kiln self/OpenVINO {g([r[0] for r in sr if r[0]]):.3f}, "
                  f"Kiln self/best peer {g([r[1] for r in sr]):.3f} over {len(sr)} models")


if __name__ == "__main__":
    main()
