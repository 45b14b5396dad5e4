#!/usr/bin/env python3
"""int8 on detectors, segmenters and OCR: Kiln's --quantize int8 beside Kiln FP32, ONNX Runtime
FP32, OpenVINO f32 and OpenVINO NNCF int8, side by side in one run.

    dense.py [--models a,b,...] [--threads 2] [--seconds 2] [--rounds 3] [--calibration 3]
             [--kiln BIN] [--dir DIR] [--out FILE]

Models (default: all):
- the zoo's yolov8n, yolo11n, unet, lraspp_mobilenet_v3_large, deeplabv3_mobilenet_v3_large and
  crnn (bench/export_zoo.py's exports in DIR/../zoo, made when missing; random weights);
- ppocr_det: the trained DB text detector (PP-OCRv4 det: an FPN neck with nearest Resize ×2 and
  quantized adds, a ConvTranspose head) that the PyPI package rapidocr-onnxruntime==1.4.4 ships,
  taken from its wheel (pip download, no model hub), input pinned to 1x3x640x640.

Entries, each at --threads threads:
  ort            ONNX Runtime on the FP32 model
  openvino       OpenVINO's CPU plugin, INFERENCE_PRECISION_HINT f32
  openvino-nncf  OpenVINO on nncf.quantize of the FP32 model (default preset), on the samples
  kiln           `kiln compile M.onnx`
  kiln-int8      `kiln compile M.onnx --quantize int8 --calibration DIR/calibration-<m>`
Both int8 entries calibrate on the same samples: for the zoo's random-weight models
--calibration seeded standard-normal ones (for speed only); for ppocr_det the photographs and
printed text scikit-image bundles (CALIBRATION_IMAGES), prepared as rapidocr prepares an image
(BGR, 640×640, (x/255 − 0.5)/0.5). Accuracy, for ppocr_det (trained): on EVAL_IMAGES (other
bundled images, none calibrated on; those where FP32 finds text), each int8 entry's probability
map against ONNX Runtime FP32's: cosine, and the IoU of the text masks at rapidocr's threshold 0.3. Timing: the entries take turns for --rounds rounds (the
order rotating), each timed --seconds per round (median per-inference ms; `kiln bench`'s for
Kiln), an entry's figure the median of its round medians (kilnbench.timing.take_turns).

Writes --out (default bench/results/dense.md): per model each entry's ms, Kiln int8 against Kiln
FP32 and against OpenVINO NNCF, the best FP32 peer against Kiln int8, and their geometric means;
then the accuracy table, and the int8 libraries' u8 steps over 1 MB under 50% of copy bandwidth
(`kiln bench --profile`). Needs the torch venv (scripts/lib.sh ensure_torch_venv: openvino, nncf,
ultralytics, timm, scikit-image).
"""

import argparse
import math
import os
import subprocess
import sys
import zipfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from kilnbench.kiln import bench_ms, binary, compile_library  # noqa: E402
from kilnbench.models import REPO  # noqa: E402
from kilnbench.peers import openvino_compile, ort_session  # noqa: E402
from kilnbench.report import write_table  # noqa: E402
from kilnbench.timing import median_ms, take_turns  # noqa: E402

ZOO = ["yolov8n", "yolo11n", "unet", "lraspp_mobilenet_v3_large", "deeplabv3_mobilenet_v3_large", "crnn"]
MODELS = ZOO + ["ppocr_det"]
RAPIDOCR = "rapidocr-onnxruntime==1.4.4"
PPOCR_MEMBER = "rapidocr_onnxruntime/models/ch_PP-OCRv4_det_infer.onnx"
PPOCR_SHAPE = (1, 3, 640, 640)
ENTRIES = ["ort", "openvino", "openvino-nncf", "kiln", "kiln-int8"]
# scikit-image's bundled images (skimage.data, no download): photographs and printed text.
CALIBRATION_IMAGES = ["astronaut", "coffee", "page"]
EVAL_IMAGES = ["text", "chelsea", "rocket", "coins", "clock", "moon"]
TRAINED = {"ppocr_det"}


def log(*a):
    print("dense:", *a, file=sys.stderr, flush=True)


def model_file(m, cache):
    """The model's ONNX file (exported or extracted when missing) and its input's shape or None."""
    if m == "ppocr_det":
        path = os.path.join(cache, "ppocr_det.onnx")
        if not os.path.exists(path):
            wheels = os.path.join(cache, "wheels")
            subprocess.run([sys.executable, "-m", "pip", "download", "--no-deps", "-q", "-d", wheels, RAPIDOCR], check=True)
            wheel = next(os.path.join(wheels, f) for f in os.listdir(wheels) if f.startswith("rapidocr_onnxruntime-1.4.4"))
            with zipfile.ZipFile(wheel) as z, open(path + ".tmp", "wb") as f:
                f.write(z.read(PPOCR_MEMBER))
            os.replace(path + ".tmp", path)
        return path, PPOCR_SHAPE
    zoo = os.path.join(os.path.dirname(cache), "zoo")
    path = os.path.join(zoo, f"{m}.onnx")
    if not os.path.exists(path):
        subprocess.run([sys.executable, os.path.join(REPO, "bench/export_zoo.py"), "--out", zoo, "--models", m], check=True)
    return path, None


def input_info(path, shape):
    import onnx

    g = onnx.load(path, load_external_data=False).graph
    inits = {i.name for i in g.initializer}
    x = next(i for i in g.input if i.name not in inits)
    dims = shape or tuple(d.dim_value for d in x.type.tensor_type.shape.dim)
    return x.name, tuple(dims)


def ocr_image(image, shape):
    """scikit-image's bundled image as rapidocr feeds its detector: BGR, resized to the input's
    height and width, (x/255 − 0.5)/0.5, NCHW f32."""
    import numpy as np
    from skimage import data, transform

    a = getattr(data, image)()
    a = np.stack([a] * 3, -1) if a.ndim == 2 else a[..., :3]
    a = transform.resize(a[..., ::-1], shape[2:], anti_aliasing=True)  # floats in [0, 1]
    return ((a - 0.5) / 0.5).transpose(2, 0, 1)[None].astype(np.float32)


def calibration(m, directory, name, shape, count):
    """The samples (real images for a trained model, else seeded standard normal) and the
    directory of them in Kiln's form (DIR/calibration-<m>/<input>_<k>.npy)."""
    import numpy as np

    d = os.path.join(directory, f"calibration-{m}")
    os.makedirs(d, exist_ok=True)
    if m in TRAINED:
        samples = [ocr_image(i, shape) for i in CALIBRATION_IMAGES]
    else:
        rng = np.random.default_rng(0)
        samples = [rng.standard_normal(shape).astype(np.float32) for _ in range(count)]
    for k, x in enumerate(samples):
        np.save(os.path.join(d, f"{name}_{k}.npy"), x)
    return d, samples


def accuracy(m, shape, name, sess, nncf_compiled, kiln, lib, directory):
    """Each int8 entry's outputs on EVAL_IMAGES against ONNX Runtime FP32's: {entry: (mean
    cosine, min cosine, mean IoU of the masks at 0.3, images)}, over the images where FP32 finds
    text."""
    import numpy as np

    from kilnbench.kiln import run_output

    scores = {"openvino-nncf": [], "kiln-int8": []}
    output = sess.get_outputs()[0].name
    for image in EVAL_IMAGES:
        x = ocr_image(image, shape)
        ref = sess.run(None, {name: x})[0].ravel()
        if not (ref > 0.3).any():
            continue  # no text for FP32: the map is near 0 everywhere, its cosine noise
        inp = os.path.join(directory, f"eval-{m}-{image}.npy")
        np.save(inp, x)
        got = {"openvino-nncf": np.asarray(next(iter(nncf_compiled({name: x}).values()))).ravel(),
               "kiln-int8": run_output(kiln, lib, inp, os.path.join(directory, f"eval-{m}-out"), 2, output)}
        for k, y in got.items():
            cos = float(np.dot(ref, y) / (np.linalg.norm(ref) * np.linalg.norm(y) + 1e-30))
            a, b = ref > 0.3, y > 0.3
            iou = float((a & b).sum() / (a | b).sum())
            scores[k].append((cos, iou))
    return {k: (float(np.mean([c for c, _ in v])), float(np.min([c for c, _ in v])), float(np.mean([i for _, i in v])), len(v))
            for k, v in scores.items()}


def u8_steps(kiln, lib, threads, seconds):
    """The steps of an int8 library (other than convs and matrix products) that write u8/s8 and
    move over 1 MB, from `kiln bench --profile --json` and the library's report: [(step, MB, ms,
    % of copy bandwidth)], slowest share of copy first. Each step's best of three profiled runs
    against the best copy bandwidth (one profile moves by 2-4x on this host)."""
    import json

    best, copy = {}, 0.0
    for _ in range(3):
        b = subprocess.run([kiln, "bench", lib, "--threads", str(threads), "--seconds", str(seconds), "--profile", "--json"],
                           capture_output=True, text=True, check=True)
        bench = json.loads(b.stdout)
        copy = max(copy, bench["copy_bandwidth"])
        for step in bench["steps"]:
            if step["ms"] > 0 and (step["name"] not in best or step["ms"] < best[step["name"]]["ms"]):
                best[step["name"]] = step
    report = os.path.join(os.path.dirname(lib), "m.report.json")
    with open(report) as f:
        types = {n["name"]: n["output"] for n in json.load(f)["nodes"]}
    rows = []
    for step in best.values():
        node, _, op = step["name"].rpartition(" (")
        if op.startswith(("quantized_conv", "quantized_mat")) or not types.get(node, "").startswith(("u8", "s8")):
            continue
        if step["bytes"] > 1e6:
            rows.append((step["name"], step["bytes"] / 1e6, step["ms"], 100 * step["bytes"] / (step["ms"] * 1e-3) / copy))
    return sorted(rows, key=lambda r: r[3])


def nncf_model(model, samples, xml):
    """nncf.quantize of model (an ov.Model, or a file's path) saved as xml, unless xml exists."""
    import nncf
    import openvino as ov

    if not os.path.exists(xml):
        model = ov.Core().read_model(model) if isinstance(model, str) else model
        quantized = nncf.quantize(model, nncf.Dataset(samples))
        ov.save_model(quantized, xml, compress_to_fp16=False)
    return xml


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--models", default=",".join(MODELS))
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--seconds", type=float, default=2)
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--calibration", type=int, default=3)
    p.add_argument("--kiln", default=binary(env=True))
    p.add_argument("--dir", default=os.path.expanduser("~/.cache/kiln/dense"))
    p.add_argument("--out", default=os.path.join(REPO, "bench/results/dense.md"))
    a = p.parse_args()
    import numpy as np
    import openvino as ov

    os.makedirs(a.dir, exist_ok=True)
    core = ov.Core()
    rows, accuracies, steps = [], [], []
    for m in a.models.split(","):
        path, pinned = model_file(m, a.dir)
        name, shape = input_info(path, pinned)
        cal, samples = calibration(m, a.dir, name, shape, a.calibration)
        x = np.random.default_rng(1).standard_normal(shape).astype(np.float32)
        pin = ["--input-shape", f"{name}={'x'.join(map(str, shape))}"] if pinned else []
        timers = []
        sess = ort_session(path, a.threads)
        timers.append(("ort", lambda s=sess: median_ms(lambda: s.run(None, {name: x}), a.seconds)))
        ov_model = core.read_model(path)
        if pinned:
            ov_model.reshape({name: list(shape)})
        compiled, _ = openvino_compile(core, ov_model, a.threads)
        timers.append(("openvino", lambda c=compiled: median_ms(lambda: c({name: x}), a.seconds)))
        log(f"{m}: nncf.quantize")
        calibrated_on = "images" if m in TRAINED else "normal"
        nncf_xml = nncf_model(ov_model if pinned else path, samples, os.path.join(a.dir, f"{m}.{calibrated_on}.nncf.xml"))
        nncf_compiled, _ = openvino_compile(core, nncf_xml, a.threads)
        timers.append(("openvino-nncf", lambda c=nncf_compiled: median_ms(lambda: c({name: x}), a.seconds)))
        for key, extra in (("kiln", []), ("kiln-int8", ["--quantize", "int8", "--calibration", cal])):
            log(f"{m}: kiln compile {' '.join(extra)}")
            lib, summary, _ = compile_library(a.kiln, [path] + pin + extra, os.path.join(a.dir, f"{m}-{key}"), "m")
            if lib is None:
                log(f"{m}: {key}: {summary}")
                continue
            timers.append((key, lambda lib=lib: bench_ms(a.kiln, lib, a.threads, a.seconds)))
            if key == "kiln-int8" and m in TRAINED:
                log(f"{m}: accuracy on {len(EVAL_IMAGES)} images")
                accuracies.append((m, accuracy(m, shape, name, sess, nncf_compiled, a.kiln, lib, a.dir)))
        figures = take_turns(timers, a.rounds)
        int8_lib = os.path.join(a.dir, f"{m}-kiln-int8", "libm.so")
        if os.path.exists(int8_lib):
            steps.append((m, u8_steps(a.kiln, int8_lib, a.threads, a.seconds)))
        med = {k: float(np.median(v)) for k, v in figures.items() if v}
        rows.append((m, med))
        log(m, " ".join(f"{k} {v:.2f}" for k, v in med.items()))
    lines = [f"# int8 on detectors, segmenters and OCR ({a.threads} threads, median ms of {a.rounds} rounds)", "",
             "| model | " + " | ".join(ENTRIES) + " | Kiln FP32 / int8 | NNCF / Kiln int8 | best FP32 peer / Kiln int8 |",
             "|---" * (len(ENTRIES) + 4) + "|"]
    ratios = {"self": [], "nncf": [], "peer": []}
    for m, med in rows:
        def r(num, den):
            return med[num] / med[den] if num in med and den in med else float("nan")
        peer = min((med[k] for k in ("ort", "openvino") if k in med), default=float("nan"))
        vals = {"self": r("kiln", "kiln-int8"), "nncf": r("openvino-nncf", "kiln-int8"),
                "peer": peer / med["kiln-int8"] if "kiln-int8" in med else float("nan")}
        for k, v in vals.items():
            if not math.isnan(v):
                ratios[k].append(v)
        lines.append(f"| {m} | " + " | ".join(f"{med[k]:.2f}" if k in med else "error" for k in ENTRIES)
                     + f" | {vals['self']:.2f} | {vals['nncf']:.2f} | {vals['peer']:.2f} |")

    def geo(v):
        return math.exp(sum(map(math.log, v)) / len(v)) if v else float("nan")
    lines.append(f"| geometric mean | | | | | | {geo(ratios['self']):.2f} | {geo(ratios['nncf']):.2f} | {geo(ratios['peer']):.2f} |")
    if accuracies:
        lines += ["", f"Accuracy against ONNX Runtime FP32 on scikit-image's {', '.join(EVAL_IMAGES)} (calibrated on "
                  f"{', '.join(CALIBRATION_IMAGES)}), those where FP32 finds text: output cosine mean / min, and the mean IoU "
                  "of the text masks at 0.3", "",
                  "| model | images | openvino-nncf cosine | kiln-int8 cosine | openvino-nncf IoU | kiln-int8 IoU |", "|---|---|---|---|---|---|"]
        for m, acc in accuracies:
            n, k = acc["openvino-nncf"], acc["kiln-int8"]
            lines.append(f"| {m} | {k[3]} | {n[0]:.4f} / {n[1]:.4f} | {k[0]:.4f} / {k[1]:.4f} | {n[2]:.3f} | {k[2]:.3f} |")
    if steps:
        lines += ["", "Kiln int8's u8/s8 steps other than convs that move over 1 MB: how many, and those under 50% of copy "
                  "bandwidth (`kiln bench --profile`, each step's best of three runs after the rounds)", "",
                  "| model | steps | under 50% of copy (MB, ms, % of copy) |", "|---|---|---|"]
        for m, st in steps:
            slow = "; ".join(f"{n}: {mb:.1f}, {ms:.3f}, {pc:.0f}%" for n, mb, ms, pc in st if pc < 50)
            lines.append(f"| {m} | {len(st)} | {slow or 'none'} |")
    write_table(a.out, lines)


if __name__ == "__main__":
    main()
