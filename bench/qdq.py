#!/usr/bin/env python3
"""int8 on quantized (QDQ) graphs: Kiln against ONNX Runtime and OpenVINO on the same graph.

    qdq.py --models resnet18,mobilenet_v2 [--dir DIR] [--threads 2] [--seconds 3] [--calibration 16] [--fast]

For each model: the FP32 export (bench/export_models.py, cached in DIR), ONNX Runtime's
quantize_static (QDQ format, per-channel s8 weights, u8 activations) calibrated on seeded random
samples (the same for every tool), then
- ONNX Runtime on the QDQ graph (2 threads, sequential), OpenVINO on the same file (CPU plugin,
  which reads QDQ as int8; 2 threads, latency hint, INFERENCE_PRECISION_HINT=f32 so that no
  bf16 enters where the graph says FP32) and Kiln's library of it (`kiln compile`, default flags;
  `kiln bench`), latency medians measured in one run; with --fast also Kiln's library compiled
  with `--int8 fast` (oneDNN's int8 kernels on every CPU, which without VNNI can saturate);
- each output's cosine similarity to the FP32 model's output (ONNX Runtime FP32), on one input.
Prints a Markdown table. Needs the torch venv (scripts/lib.sh ensure_torch_venv).
"""
import argparse, json, os, re, subprocess, sys, time
import numpy as np

here = os.path.dirname(os.path.abspath(__file__))
root = os.path.dirname(here)


def median_ms(fn, seconds):
    for _ in range(5):
        fn()
    times = []
    t_end = time.time() + seconds
    while time.time() < t_end or len(times) < 10:
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return 1000 * float(np.median(times))


def openvino(path, x, threads, seconds, scratch):
    """OpenVINO's latency and output on the QDQ graph, or (None, None, why) when it fails. Runs in a
    child process: OpenVINO crashed (a signal, not an exception) compiling densenet121's QDQ graph once."""
    inp, out = os.path.join(scratch, "ov-in.npy"), os.path.join(scratch, "ov-out.npy")
    np.save(inp, x)
    r = subprocess.run([sys.executable, __file__, "--openvino-worker", path, inp, out, str(threads), str(seconds)],
                       capture_output=True, text=True)
    if r.returncode != 0:
        why = (r.stderr.strip().splitlines() or [f"exit status {r.returncode}"])[-1]
        return None, None, why[:120]
    return float(r.stdout.split()[-1]), np.load(out).ravel(), ""


def openvino_worker(path, inp, out, threads, seconds):
    import openvino as ov
    compiled = ov.Core().compile_model(path, "CPU", {"INFERENCE_NUM_THREADS": int(threads), "PERFORMANCE_HINT": "LATENCY",
                                                      "INFERENCE_PRECISION_HINT": "f32"})
    request = compiled.create_infer_request()
    x = np.load(inp)
    np.save(out, np.array(request.infer({0: x})[compiled.output(0)]))
    print(median_ms(lambda: request.infer({0: x}), float(seconds)))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--models", default="resnet18,mobilenet_v2")
    ap.add_argument("--dir", default=os.path.expanduser("~/.cache/kiln/qdq"))
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--seconds", type=float, default=3)
    ap.add_argument("--calibration", type=int, default=16)
    ap.add_argument("--kiln", default=os.path.join(root, ".build/release/kiln"))
    ap.add_argument("--fast", action="store_true", help="also time Kiln with --int8 fast")
    a = ap.parse_args()
    import onnxruntime as ort
    from onnxruntime.quantization import quantize_static, CalibrationDataReader, QuantFormat, QuantType
    os.makedirs(a.dir, exist_ok=True)
    models = a.models.split(",")
    subprocess.run([sys.executable, os.path.join(here, "export_models.py"), "--out", a.dir, "--models", a.models], check=True)
    rows = []
    for m in models:
        fp32 = os.path.join(a.dir, f"{m}.onnx")
        qdq = os.path.join(a.dir, f"{m}.qdq.onnx")
        x = np.load(os.path.join(a.dir, f"{m}.input.npy"))
        if not os.path.exists(qdq):
            rng = np.random.default_rng(0)
            samples = [rng.standard_normal(x.shape).astype(np.float32) for _ in range(a.calibration)]

            class Reader(CalibrationDataReader):
                def __init__(self):
                    self.it = iter([{"input": s} for s in samples])

                def get_next(self):
                    return next(self.it, None)

            quantize_static(fp32, qdq, Reader(), quant_format=QuantFormat.QDQ, per_channel=True,
                            activation_type=QuantType.QUInt8, weight_type=QuantType.QInt8)
        so = ort.SessionOptions()
        so.intra_op_num_threads = a.threads
        so.inter_op_num_threads = 1
        ref = ort.InferenceSession(fp32, so).run(None, {"input": x})[0].ravel()
        sess = ort.InferenceSession(qdq, so)
        y_ort = sess.run(None, {"input": x})[0].ravel()
        ort_ms = median_ms(lambda: sess.run(None, {"input": x}), a.seconds)
        ov_ms, y_ov, ov_error = openvino(qdq, x, a.threads, a.seconds, a.dir)
        ov = (ov_ms, cos(y_ov, ref) if y_ov is not None else None, ov_error)
        np.save(os.path.join(a.dir, "in.npy"), x)
        kiln = {}
        for variant in ["exact"] + (["fast"] if a.fast else []):
            out = os.path.join(a.dir, f"kiln-{m}" + ("" if variant == "exact" else "-fast"))
            c = subprocess.run([a.kiln, "compile", qdq, "-o", out, "--name", m, "--library", "shared", "--int8", variant],
                               capture_output=True, text=True)
            if c.returncode != 0:
                kiln[variant] = (None, None, c.stderr.strip()[-200:])
                continue
            summary = next((l for l in c.stdout.splitlines() if l.startswith("int8:")), "")
            lib = os.path.join(out, f"lib{m}.so")
            subprocess.run([a.kiln, "run", lib, "--input", os.path.join(a.dir, "in.npy"), "--output-dir", out, "--threads", str(a.threads)],
                           check=True, capture_output=True)
            y_kiln = np.load(os.path.join(out, "output.npy")).ravel()
            b = subprocess.run([a.kiln, "bench", lib, "--threads", str(a.threads), "--seconds", str(a.seconds)], capture_output=True, text=True, check=True)
            med = re.search(r"median\s+([0-9.]+)", b.stdout)
            kiln[variant] = (float(med.group(1)) if med else float("nan"), cos(y_kiln, ref), summary)
        kiln_ms, kiln_cos, summary = kiln["exact"]
        rows.append((m, ort_ms, ov, kiln_ms, cos(y_ort, ref), kiln_cos, summary, kiln.get("fast")))
    fast = a.fast
    print("| model | ORT ms | OpenVINO ms | Kiln ms | Kiln/ORT | Kiln/OpenVINO | cosine ORT | cosine OpenVINO | cosine Kiln |"
          + (" Kiln fast ms | fast/OpenVINO | cosine Kiln fast |" if fast else "") + " Kiln |")
    print("|---" * (10 + 3 * fast) + "|")
    f = lambda v, d=2: "-" if v is None else f"{v:.{d}f}"
    ratios, fast_ratios = [], []
    for m, o, (v, cv, verr), k, co, ck, s, kf in rows:
        best = min(t for t in (o, v) if t is not None)
        if k:
            ratios.append((k / o, k / v if v else None, k / best))
        line = (f"| {m} | {f(o)} | {f(v) if v else 'failed: ' + verr} | {f(k)} | {f(k / o if k else None)} | "
                f"{f(k / v if k and v else None)} | {f(co, 5)} | {f(cv, 5)} | {f(ck, 5)} |")
        if fast:
            kfm, kfc, _ = kf or (None, None, None)
            line += f" {f(kfm)} | {f(kfm / v if kfm and v else None)} | {f(kfc, 5)} |"
            if kfm:
                fast_ratios.append((kfm / o, kfm / v if v else None, kfm / best))
        print(line + f" {s} |")
    g = lambda xs: float(np.exp(np.mean(np.log(xs)))) if xs else float("nan")
    for label, rs in [("Kiln", ratios)] + ([("Kiln --int8 fast", fast_ratios)] if fast else []):
        if rs:
            print(f"\ngeometric mean of {label}/ORT {g([r[0] for r in rs]):.3f}, "
                  f"{label}/OpenVINO {g([r[1] for r in rs if r[1]]):.3f}, "
                  f"{label}/best peer {g([r[2] for r in rs]):.3f} over {len(rs)} models")


def cos(a, b):
    return float(np.dot(a, b) / (np.linalg.norm(a) * np.linalg.norm(b) + 1e-30))


if __name__ == "__main__":
    if len(sys.argv) == 7 and sys.argv[1] == "--openvino-worker":
        openvino_worker(*sys.argv[2:])
    else:
        main()
