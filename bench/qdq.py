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
import json, os, re, subprocess, sys, tempfile, time
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


class Worker:
    """A child process that stays for a model's rounds and answers one line per request (see
    serve), so that a crash (a signal, not an exception: OpenVINO compiling densenet121's QDQ
    graph) costs its entry, not the script. `error` says why it failed, else None. Its stderr
    goes to a file (a pipe nobody reads could fill and block it)."""

    def __init__(self, argv):
        self.log = tempfile.TemporaryFile("w+")
        self.p = subprocess.Popen(argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=self.log, text=True)
        self.error = None

    def ask(self, line):
        if self.error:
            return None
        try:
            self.p.stdin.write(line + "\n")
            self.p.stdin.flush()
            answer = self.p.stdout.readline()
        except BrokenPipeError:
            answer = ""
        if not answer:
            self.p.wait()
            self.log.seek(0)
            lines = [l for l in self.log.read().strip().splitlines() if l.strip()]
            # Killed by a signal: what it printed before says nothing about it.
            why = lines[-1].strip() if lines and self.p.returncode >= 0 else f"exit status {self.p.returncode}"
            self.error = why[:120]
            return None
        return answer.strip()

    def time(self, seconds):
        answer = self.ask(f"time {seconds}")
        return float(answer) if answer else None

    def output(self, inp, out):
        return np.load(out).ravel() if self.ask(f"run {inp} {out}") else None

    def close(self):
        if not self.error:
            self.p.stdin.close()
            self.p.wait()
        self.log.close()


class OpenVINO(Worker):
    """OpenVINO on an ONNX (or OpenVINO IR) file in a Worker."""

    def __init__(self, path, threads):
        super().__init__([sys.executable, os.path.abspath(__file__), "--openvino-worker", path, str(threads)])


def worker_channel():
    """In a worker process: the file its answers go to (the original stdout); whatever else
    writes to stdout (a library's messages) goes to stderr."""
    channel = os.fdopen(os.dup(1), "w")
    os.dup2(2, 1)
    return channel


def serve(channel, infer, output, load=np.load):
    """A worker's loop: `run IN OUT` loads input file IN, runs infer on it and saves output(its
    result) to OUT, answering "ok"; `time S` answers the median ms of infer on the last input
    over S seconds."""
    x = None
    for line in sys.stdin:
        cmd, *args = line.split()
        if cmd == "run":
            x = load(args[0])
            np.save(args[1], output(infer(x)))
            print("ok", file=channel, flush=True)
        elif cmd == "time":
            print(median_ms(lambda: infer(x), float(args[0])), file=channel, flush=True)


def openvino_worker(path, threads):
    channel = worker_channel()
    import openvino as ov
    compiled = ov.Core().compile_model(path, "CPU", {"INFERENCE_NUM_THREADS": int(threads), "PERFORMANCE_HINT": "LATENCY",
                                                      "INFERENCE_PRECISION_HINT": "f32"})
    request = compiled.create_infer_request()
    serve(channel, lambda x: request.infer({0: x}), lambda r: np.array(r[compiled.output(0)]))


def calibration_samples(x, n):
    """The calibration samples, the same for every tool: n seeded random arrays shaped like x."""
    rng = np.random.default_rng(0)
    return [rng.standard_normal(x.shape).astype(np.float32) for _ in range(n)]


def cosine_inputs(x, n):
    """The inputs of the cosine: x (the model's input file) and n - 1 seeded random ones."""
    rng = np.random.default_rng(1)
    return [x] + [rng.standard_normal(x.shape).astype(np.float32) for _ in range(n - 1)]


def quantize_qdq(fp32, qdq, samples):
    """ONNX Runtime's quantize_static of fp32 into qdq (QDQ format, per-channel s8 weights, u8
    activations) calibrated on samples, unless qdq exists."""
    if os.path.exists(qdq):
        return
    from onnxruntime.quantization import quantize_static, CalibrationDataReader, QuantFormat, QuantType

    class Reader(CalibrationDataReader):
        def __init__(self):
            self.it = iter([{"input": s} for s in samples])

        def get_next(self):
            return next(self.it, None)

    quantize_static(fp32, qdq, Reader(), quant_format=QuantFormat.QDQ, per_channel=True,
                    activation_type=QuantType.QUInt8, weight_type=QuantType.QInt8)


def write_calibration(directory, samples):
    """directory holding exactly the samples, as input_<k>.npy (`kiln compile --calibration`)."""
    os.makedirs(directory, exist_ok=True)
    for f in os.listdir(directory):
        os.remove(os.path.join(directory, f))
    for k, s in enumerate(samples):
        np.save(os.path.join(directory, f"input_{k}.npy"), s)


def kiln_compile(kiln, args, out, name):
    """`kiln compile ARGS -o OUT --name NAME --library shared`: (library path, its "int8: ..."
    summary line, seconds), or (None, the end of its error, seconds)."""
    t0 = time.time()
    c = subprocess.run([kiln, "compile"] + args + ["-o", out, "--name", name, "--library", "shared"],
                       capture_output=True, text=True)
    seconds = time.time() - t0
    if c.returncode != 0:
        return None, c.stderr.strip()[-200:], seconds
    return os.path.join(out, f"lib{name}.so"), next((l for l in c.stdout.splitlines() if l.startswith("int8:")), ""), seconds


def kiln_output(kiln, lib, inp, out, threads):
    """The library's output on the input file inp (`kiln run`, written into the directory out)."""
    subprocess.run([kiln, "run", lib, "--input", inp, "--output-dir", out, "--threads", str(threads)],
                   check=True, capture_output=True)
    return np.load(os.path.join(out, "output.npy")).ravel()


def kiln_bench(kiln, lib, threads, seconds):
    """The library's median ms over seconds (`kiln bench`)."""
    b = subprocess.run([kiln, "bench", lib, "--threads", str(threads), "--seconds", str(seconds)],
                       capture_output=True, text=True, check=True)
    med = re.search(r"median\s+([0-9.]+)", b.stdout)
    return float(med.group(1)) if med else float("nan")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--models", default="resnet18,mobilenet_v2")
    ap.add_argument("--dir", default=os.path.expanduser("~/.cache/kiln/qdq"))
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--seconds", type=float, default=1, help="seconds per tool and round")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--cosine-inputs", type=int, default=8)
    ap.add_argument("--calibration", type=int, default=16)
    ap.add_argument("--kiln", default=os.path.join(root, ".build/release/kiln"))
    ap.add_argument("--fast", action="store_true", help="also time Kiln with --int8 fast")
    ap.add_argument("--self", action="store_true",
                    help="also time Kiln quantizing the FP32 model itself (--quantize int8) on the same calibration samples")
    a = ap.parse_args()
    import onnxruntime as ort
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
        so = ort.SessionOptions()
        so.intra_op_num_threads = a.threads
        so.inter_op_num_threads = 1
        ref_session = ort.InferenceSession(fp32, so)
        sess = ort.InferenceSession(qdq, so)
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
            lib, summary, seconds = kiln_compile(a.kiln, args, out, m)
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
                    v["cos"].append(cos(kiln_output(a.kiln, v["lib"], inp, v["out"], a.threads), refs[k]))
        ort_ms, ov_ms = [], []
        for _ in range(a.rounds):
            ort_ms.append(median_ms(lambda: sess.run(None, {"input": x}), a.seconds))
            t = ov.time(a.seconds)
            if t is not None:
                ov_ms.append(t)
            for v in kiln.values():
                if v:
                    v["ms"].append(kiln_bench(a.kiln, v["lib"], a.threads, a.seconds))
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
    g = lambda xs: float(np.exp(np.mean(np.log(xs)))) if xs else float("nan")
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


def cos(a, b):
    return float(np.dot(a, b) / (np.linalg.norm(a) * np.linalg.norm(b) + 1e-30))


if __name__ == "__main__":
    if len(sys.argv) == 4 and sys.argv[1] == "--openvino-worker":
        openvino_worker(*sys.argv[2:])
    else:
        main()
