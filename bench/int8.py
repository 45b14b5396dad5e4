#!/usr/bin/env python3
"""int8 side by side: Kiln against ONNX Runtime, OpenVINO (+NNCF) and PyTorch PT2E, with FP32 rows.

    int8.py [--models a,b,...] [--entries e1,e2,...] [--threads 2] [--seconds 1] [--rounds 3]
            [--cosine-inputs 8] [--calibration 16] [--kiln BIN] [--dir DIR] [--out FILE]

For each of the twelve torchvision CNNs of export_models.py (random weights, torch.manual_seed(0);
batch 1, 3x224x224) every entry below runs with --threads threads. Every int8 entry is calibrated
on the same --calibration seeded random samples (bench/qdq.py's: DIR/calibration-<m>/input_<k>.npy),
and the FP32 export, its input file, the samples and ONNX Runtime's quantize_static graph
(DIR/<m>.qdq.onnx) are bench/qdq.py's files in DIR (made here when missing).

FP32 entries:
  ort            ONNX Runtime on the FP32 export (intra-op --threads, inter-op 1; the reference)
  openvino       OpenVINO's CPU plugin on the FP32 export (INFERENCE_PRECISION_HINT f32, latency hint)
  inductor       torch.compile with freezing, of the module the ONNX file was exported from
  aoti           torch.export + aoti_compile_and_package (freezing), the same module
  kiln           `kiln compile M.onnx --library shared`
int8 entries:
  ort-qdq        ONNX Runtime on quantize_static's QDQ graph (per-channel s8 weights, u8 activations)
  openvino-qdq   OpenVINO on that same QDQ graph
  openvino-nncf  OpenVINO on nncf.quantize of the FP32 model (the OpenVINO model read from the
                 FP32 export; the samples as nncf.Dataset; default preset and options)
  pt2e-inductor  PyTorch PT2E: torch.export, torchao's X86InductorQuantizer with
                 get_default_x86_inductor_quantization_config(), prepare_pt2e, the samples,
                 convert_pt2e; then torch.compile with freezing
  pt2e-aoti      the same quantized module through torch.export + AOTInductor (freezing)
  kiln-qdq       `kiln compile M.qdq.onnx` (default flags)
  kiln-self      `kiln compile M.onnx --quantize int8 --calibration DIR/calibration-<m>`

ResNet blocks and PT2E: torchvision's BasicBlock and Bottleneck call their one `relu` module two
or three times. torch.export keeps one source partition per module, so the quantizer's
conv-add-relu matcher sees a ReLU partition with two (three) outputs and prepare_pt2e fails
("ValueError: Input partition has more than one output node", in
_annotate_conv2d_binary_unary; torchao 0.18, torch 2.13) on resnet18, resnet50, resnet152 and
resnext50_32x4d. distinct_relus() gives every call its own nn.ReLU module (a patched forward,
numerically the same module: a ReLU has no parameters); then every conv(+bn)+relu and
conv(+bn)+add+relu is annotated as one fused pattern (resnet18: 21 per-channel weight
quantizations, every relu followed by a quantize). The FP32 Inductor and AOTInductor entries run
the unpatched module.

Each runtime that loads torch or OpenVINO runs in a worker process (kilnbench's LineWorker) that
stays for the model's rounds, so that a crash (OpenVINO dies of SIGSEGV compiling densenet121's
QDQ graph) is an "error" cell, not a dead script; the NNCF quantization runs in a child process
too. ONNX Runtime runs in this process; Kiln's libraries through `kiln run` and `kiln bench`.

Timing as in bench/qdq.py: the entries take turns (the order rotating from round to round), each
timed for --seconds per round (median per-inference time; `kiln bench`'s median for Kiln), and an
entry's figure is the median of its round medians, so that a slow minute of a shared host falls
on all alike. Cosine: each entry's output against ONNX Runtime FP32's on the same input, the mean
over --cosine-inputs inputs (the model's input file and seeded random ones, as bench/qdq.py).
A model whose FP32 output is degenerate is flagged, its cosines saying little: all logits equal
on every input, or logits that vanish (random weights: mnasnet1_0, mobilenet_v2 and
mobilenet_v3_large end at |logit| ~1e-8..1e-10, their activations shrinking layer by layer below
the smallest scale PT2E's observers (eps 2^-12) and NNCF (a range of at least 8e-5) allow, so
that both output all zeros: cosine 0, where quantize_static's graph and Kiln, with no such
floor, keep 0.9996 or more; the summary's cosine counts leave such models out). Random weights also make every model's output nearly independent of its input: the
"input-blind" column (the FP32 outputs of the other inputs against the first's, 0.993 to 1.0)
is what an output that ignored its input would score.

Compile times: Kiln's are measured in the run (`kiln compile`, --quantize's including its
calibration); the PT2E quantization (export, prepare, calibration, convert), Inductor's first
call (from an empty Inductor cache), AOTInductor's export + compile and NNCF's quantize are
measured when built. AOTInductor packages are cached under ${KILN_CACHE:-~/.cache/kiln}/bench/aoti
(FP32: bench/perf.py's packages, keyed by torch, torchvision and CPU; int8: the same key plus
torchao's version and the number of samples), NNCF's models under .../bench/nncf (keyed by the
NNCF and OpenVINO versions); a cached one shows the time measured when it was built, marked *.
Kiln's libraries go to .../bench/int8/<model>.

Summary: the geometric mean over the models of (best FP32 peer: the fastest of ONNX Runtime,
OpenVINO, Inductor and AOTInductor FP32) / (Kiln int8 self-quantized), against the target 3.19x;
the models where Kiln self is the fastest int8 entry, where it beats Kiln FP32, and where its
cosine is at least PT2E's (the better of its two entries) and OpenVINO-NNCF's.

Writes --out (default bench/results/int8.md) and prints it. Needs the torch venv with nncf
(scripts/lib.sh ensure_torch_venv).
"""
import argparse
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
import types

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

from kilnbench import kiln as kilnbin  # noqa: E402  (all of kilnbench: stdlib-only at import time)
from kilnbench.machine import command_output, dist_version, git_commit, gxx_version, load_average  # noqa: E402
from kilnbench.machine import machine_info, utc_now  # noqa: E402
from kilnbench.models import QDQ_DIR, REPO, TORCHVISION_MODELS, bench_cache, calibration_samples  # noqa: E402
from kilnbench.models import cosine_inputs, read_calibration, write_calibration  # noqa: E402
from kilnbench.peers import TorchRunner, aoti_dir, aoti_key, ort_session, quantize_qdq  # noqa: E402
from kilnbench.report import Notes, cos, fmt_ms, geomean, logger, short_error  # noqa: E402
from kilnbench.timing import median_ms, take_turns  # noqa: E402
from kilnbench.workers import LineWorker, OpenVINO, serve, worker_channel  # noqa: E402

FP32 = ["ort", "openvino", "inductor", "aoti", "kiln"]
INT8 = ["ort-qdq", "openvino-qdq", "openvino-nncf", "pt2e-inductor", "pt2e-aoti", "kiln-qdq", "kiln-self"]
ENTRIES = FP32 + INT8
FP32_PEERS = ["ort", "openvino", "inductor", "aoti"]
PT2E = ["pt2e-inductor", "pt2e-aoti"]
LABELS = {"ort": "ORT", "openvino": "OpenVINO", "inductor": "Inductor", "aoti": "AOTI", "kiln": "Kiln",
          "ort-qdq": "ORT QDQ", "openvino-qdq": "OpenVINO QDQ", "openvino-nncf": "OpenVINO NNCF",
          "pt2e-inductor": "PT2E Inductor", "pt2e-aoti": "PT2E AOTI", "kiln-qdq": "Kiln QDQ",
          "kiln-self": "Kiln self"}
SETUP_ORDER = ["ort", "ort-qdq", "kiln", "kiln-qdq", "kiln-self", "openvino", "openvino-qdq", "openvino-nncf",
               "inductor", "aoti", "pt2e-inductor", "pt2e-aoti"]  # cheap ones first
TARGET = 3.19
# Bump when the PT2E recipe (quantizer, configuration, distinct_relus) changes: cached int8
# AOTInductor packages are rebuilt.
PT2E_RECIPE = "1"


log = logger("int8", stamp=True)


# --------------------------------------------------------------------------------------------
# PT2E and NNCF (in child processes).
# --------------------------------------------------------------------------------------------


def _block_forward(self, x):
    # torchvision's BasicBlock.forward and Bottleneck.forward, with each relu call but the first
    # on a module of its own.
    out = self.relu(self.bn1(self.conv1(x)))
    if hasattr(self, "conv3"):  # a Bottleneck
        out = self.relu_mid(self.bn2(self.conv2(out)))
        out = self.bn3(self.conv3(out))
    else:
        out = self.bn2(self.conv2(out))
    out += x if self.downsample is None else self.downsample(x)
    return self.relu_out(out)


def distinct_relus(model):
    """model with each call of a ResNet block's shared `relu` on a module of its own (see the
    docstring at the top); other models unchanged. Returns the number of blocks patched too."""
    from torch import nn
    from torchvision.models.resnet import BasicBlock, Bottleneck

    patched = 0
    for block in model.modules():
        if isinstance(block, (BasicBlock, Bottleneck)):
            block.relu_out = nn.ReLU(inplace=True)
            if isinstance(block, Bottleneck):
                block.relu_mid = nn.ReLU(inplace=True)
            block.forward = types.MethodType(_block_forward, block)
            patched += 1
    return model, patched


def pt2e_model(name, calibration):
    """The torchvision module name (export_models.build_torchvision's, ResNet ReLUs made
    distinct) quantized by PT2E with X86InductorQuantizer's default configuration, calibrated on
    the samples of the directory calibration."""
    import torch
    import torchao.quantization.pt2e.quantizer.x86_inductor_quantizer as xiq
    from torchao.quantization.pt2e.quantize_pt2e import convert_pt2e, prepare_pt2e

    from export_models import build_torchvision

    samples = [torch.from_numpy(s) for s in read_calibration(calibration)]
    model, _ = distinct_relus(build_torchvision(name))
    with torch.no_grad():
        exported = torch.export.export(model, (samples[0],)).module()
        quantizer = xiq.X86InductorQuantizer()
        quantizer.set_global(xiq.get_default_x86_inductor_quantization_config())
        prepared = prepare_pt2e(exported, quantizer)
        for s in samples:
            prepared(s)
        return convert_pt2e(prepared)


def torch_worker(cfg_json):
    """A LineWorker serving Inductor or AOTInductor (kilnbench's TorchRunner) on the FP32 module or, with
    cfg["int8"], on pt2e_model's; writes what it measured to cfg["info"] once ready."""
    cfg = json.loads(cfg_json)
    channel = worker_channel()
    # Before torch is imported: an empty Inductor cache, so that compile times are cold.
    os.environ["TORCHINDUCTOR_CACHE_DIR"] = cfg["inductor_cache"]
    import torch

    info, build = {}, None
    package = cfg["aoti_package"]
    if cfg["int8"]:
        cached = (cfg["kind"] == "aoti" and not cfg["fresh_aoti"]
                  and all(os.path.exists(p) for p in (package, package + ".json", package + ".pt2e.json")))
        if cached:  # the package is all AOTInductor needs
            with open(package + ".pt2e.json") as f:
                info.update(json.load(f))

            def build(name):
                return None
        else:
            def build(name):
                start = time.perf_counter()
                model = pt2e_model(name, cfg["calibration"])
                info["pt2e_s"] = time.perf_counter() - start
                return model
    runner = TorchRunner(cfg, cfg["kind"], build)
    info.update(runner.info)
    if cfg["int8"] and cfg["kind"] == "aoti" and "pt2e_s" in info:
        with open(package + ".pt2e.json", "w") as f:
            json.dump({"pt2e_s": info["pt2e_s"]}, f)
    with open(cfg["info"], "w") as f:
        json.dump(info, f, default=str)

    def output(y):
        return (y[0] if isinstance(y, (list, tuple)) else y).detach().numpy()

    serve(channel, runner.fn, output, load=lambda path: torch.from_numpy(np.load(path)))


def nncf_quantize(fp32, calibration, xml):
    """nncf.quantize of the FP32 ONNX file (read by OpenVINO), default options, on the samples
    of the directory calibration; saves the OpenVINO model as xml (+ .bin) and its quantize
    seconds as .json (written last: the cache entry is complete when it exists)."""
    import nncf
    import openvino as ov

    model = ov.Core().read_model(fp32)
    start = time.perf_counter()
    quantized = nncf.quantize(model, nncf.Dataset(read_calibration(calibration)))
    seconds = time.perf_counter() - start
    base, tmp = xml[: -len(".xml")], f"{xml[: -len('.xml')]}.tmp{os.getpid()}"
    ov.save_model(quantized, tmp + ".xml", compress_to_fp16=False)
    os.replace(tmp + ".bin", base + ".bin")
    os.replace(tmp + ".xml", xml)
    with open(base + ".json", "w") as f:
        json.dump({"quantize_s": seconds, "nncf": nncf.__version__, "openvino": ov.get_version()}, f)


# --------------------------------------------------------------------------------------------
# The entries, in this process.
# --------------------------------------------------------------------------------------------


class Entry:
    """One column: output(k), its output on cosine input k, and time(seconds), an ms figure
    appended to ms; None once it failed, `error` saying why. info: compile_s, cached, ..."""

    def __init__(self, key, error=None):
        self.key, self.error, self.ms, self.cos, self.info = key, error, [], [], {}

    def _call(self, fn, *args):
        if self.error:
            return None
        try:
            result = fn(*args)
        except subprocess.CalledProcessError as exc:
            text = exc.stderr.decode(errors="replace") if isinstance(exc.stderr, bytes) else exc.stderr
            result, self.error = None, short_error(text or exc)
        except Exception as exc:  # noqa: BLE001 - an entry's failure is its cell, not the run's
            result, self.error = None, short_error(exc)
        if result is None and not self.error:
            self.error = self.why()
        return result

    def output(self, k):
        return self._call(self._output, k)

    def time(self, seconds):
        ms = self._call(self._time, seconds)
        if ms is not None:
            self.ms.append(ms)

    def why(self):
        return "failed"

    def close(self):
        pass


class OrtEntry(Entry):
    def __init__(self, key, path, threads, inputs):
        super().__init__(key)
        self.session, self.inputs = ort_session(path, threads, cpu_only=False), inputs

    def _output(self, k):
        return self.session.run(None, {"input": self.inputs[k]})[0].ravel()

    def _time(self, seconds):
        x = self.inputs[0]
        return median_ms(lambda: self.session.run(None, {"input": x}), seconds)


class WorkerEntry(Entry):
    """An entry served by a LineWorker (OpenVINO, Inductor, AOTInductor)."""

    def __init__(self, key, worker, paths, out):
        super().__init__(key)
        self.worker, self.paths, self.out = worker, paths, out

    def _output(self, k):
        return self.worker.output(self.paths[k], self.out)

    def _time(self, seconds):
        return self.worker.time(seconds)

    def why(self):
        return self.worker.error or "failed"

    def close(self):
        self.worker.close()


class KilnEntry(Entry):
    def __init__(self, key, kiln, lib, threads, paths):
        super().__init__(key)
        self.kiln, self.lib, self.threads, self.paths = kiln, lib, threads, paths

    def _output(self, k):
        return kilnbin.run_output(self.kiln, self.lib, self.paths[k], os.path.dirname(self.lib), self.threads)

    def _time(self, seconds):
        return kilnbin.bench_ms(self.kiln, self.lib, self.threads, seconds)


def setup_kiln(key, m, a, files, work):
    args = {"kiln": [files["fp32"]], "kiln-qdq": [files["qdq"]],
            "kiln-self": [files["fp32"], "--quantize", "int8", "--calibration", files["calibration"]]}[key]
    lib, summary, seconds = kilnbin.compile_library(a.kiln, args, os.path.join(work, key), m)
    if lib is None:
        return Entry(key, error="kiln compile failed: " + short_error(summary))
    e = KilnEntry(key, a.kiln, lib, a.threads, files["inputs"])
    e.info.update(compile_s=seconds, summary=summary)
    return e


def setup_openvino(key, m, a, files, work, state):
    path = files["fp32" if key == "openvino" else "qdq"]
    info = {}
    if key == "openvino-nncf":
        d = os.path.join(state["cache"], "nncf", state["nncf_key"])
        os.makedirs(d, exist_ok=True)
        path = os.path.join(d, f"{m}-c{a.calibration}.xml")
        meta = path[: -len(".xml")] + ".json"
        cached = os.path.exists(path) and os.path.exists(meta)
        if not cached:
            log(f"{m}: nncf.quantize")
            c = subprocess.run([sys.executable, os.path.abspath(__file__), "--nncf-quantize", files["fp32"],
                                files["calibration"], path], capture_output=True, text=True)
            if c.returncode != 0 or not os.path.exists(meta):
                lines = c.stderr.strip().splitlines()
                why = lines[-1] if lines and c.returncode >= 0 else f"exit status {c.returncode}"
                return Entry(key, error="nncf.quantize: " + short_error(why))
        with open(meta) as f:
            info.update(compile_s=json.load(f)["quantize_s"], cached=cached)
    e = WorkerEntry(key, OpenVINO(path, a.threads), files["inputs"], os.path.join(work, f"{key}.out.npy"))
    e.info.update(info)
    return e


def setup_torch(key, m, a, files, work, state):
    int8 = key in PT2E
    kind = "aoti" if key.endswith("aoti") else "inductor"
    if int8:
        package = os.path.join(state["aoti_dir"] + f"_ao-{state['torchao']}_p{PT2E_RECIPE}",
                               f"{m}-pt2e-int8-c{a.calibration}.pt2")
    else:
        package = os.path.join(state["aoti_dir"], f"{m}.pt2")  # bench/perf.py's
    cfg = {"model": m, "kind": kind, "int8": int8, "threads": a.threads, "input_npy": files["input"],
           "aoti_package": package, "aoti_key": state["aoti_key"], "fresh_aoti": a.fresh_aoti,
           "calibration": files["calibration"], "inductor_cache": os.path.join(state["inductor_cache"], f"{m}-{key}"),
           "info": os.path.join(work, f"{key}.info.json")}
    if os.path.exists(cfg["info"]):
        os.remove(cfg["info"])
    worker = LineWorker([sys.executable, os.path.abspath(__file__), "--torch-worker", json.dumps(cfg)])
    e = WorkerEntry(key, worker, files["inputs"], os.path.join(work, f"{key}.out.npy"))
    e.info["info_path"] = cfg["info"]
    return e


def model_files(m, a):
    """bench/qdq.py's files of model m in --dir, made where missing, and the cosine inputs."""
    suffix = "" if a.calibration == 16 else f"-c{a.calibration}"  # 16: qdq.py's default
    files = {"fp32": os.path.join(a.dir, f"{m}.onnx"), "input": os.path.join(a.dir, f"{m}.input.npy"),
             "qdq": os.path.join(a.dir, f"{m}.qdq{suffix}.onnx"),
             "calibration": os.path.join(a.dir, f"calibration-{m}{suffix}")}
    x = np.load(files["input"])
    samples = calibration_samples(x, a.calibration)
    quantize_qdq(files["fp32"], files["qdq"], samples)
    have = read_calibration(files["calibration"]) if os.path.isdir(files["calibration"]) else []
    if len(have) != len(samples) or not all(np.array_equal(h, s) for h, s in zip(have, samples)):
        log(f"{m}: writing the calibration samples to {files['calibration']}")
        write_calibration(files["calibration"], samples)
    return files, cosine_inputs(x, a.cosine_inputs)


def degenerate_output(refs):
    """Why the FP32 outputs refs (one per input) make cosines meaningless, or None."""
    if all(np.ptp(r) <= 1e-6 * np.max(np.abs(r)) for r in refs):
        return "all logits equal on every input"
    big = max(float(np.max(np.abs(r))) for r in refs)
    if big < 1e-6:
        return (f"the logits vanish (max |logit| {big:.1e}; random weights), the activations shrinking below "
                "the smallest scale PT2E's observers (2^-12) and NNCF (a range of 8e-5) allow: theirs output 0")
    return None


def bench_model(m, a, state):
    work = os.path.join(state["cache"], "int8", m)
    os.makedirs(work, exist_ok=True)
    files, inputs = model_files(m, a)
    files["inputs"] = []
    for k, xi in enumerate(inputs):
        files["inputs"].append(os.path.join(work, f"in-{k}.npy"))
        np.save(files["inputs"][-1], xi)
    reference = ort_session(files["fp32"], a.threads, cpu_only=False)
    refs = [reference.run(None, {"input": xi})[0].ravel() for xi in inputs]
    degenerate = degenerate_output(refs)
    # What an output that ignores its input would score: the FP32 outputs of the other inputs
    # against the first's (with random weights they hardly depend on the input).
    blind = float(np.mean([cos(r, refs[0]) for r in refs[1:]])) if len(refs) > 1 else None
    del reference
    entries = {}
    try:
        for key in [k for k in SETUP_ORDER if k in a.entries]:
            log(f"{m}: setting up {LABELS[key]}")
            start = time.monotonic()
            try:
                if key in ("ort", "ort-qdq"):
                    e = OrtEntry(key, files["fp32" if key == "ort" else "qdq"], a.threads, inputs)
                elif key.startswith("kiln"):
                    e = setup_kiln(key, m, a, files, work)
                elif key.startswith("openvino"):
                    e = setup_openvino(key, m, a, files, work, state)
                else:
                    e = setup_torch(key, m, a, files, work, state)
            except Exception as exc:  # noqa: BLE001
                e = Entry(key, error=short_error(exc))
            entries[key] = e
            # The outputs: the first waits until a worker is ready.
            ys = [e.output(k) for k in range(len(inputs))]
            if "info_path" in e.info and os.path.exists(e.info["info_path"]):
                with open(e.info.pop("info_path")) as f:
                    e.info.update(json.load(f))
            if not e.error:
                e.cos = [cos(y, r) for y, r in zip(ys, refs)]
            e.info["setup_s"] = time.monotonic() - start
            how = f"failed: {e.error}" if e.error else f"ready in {e.info['setup_s']:.1f} s"
            log(f"{m}: {LABELS[key]} {how}")
        live = [k for k in entries if not entries[k].error]
        # Each entry keeps its figures (Entry.ms); a pause after each, the last one's threads going idle.
        take_turns([(k, lambda e=entries[k]: e.time(a.seconds)) for k in live], a.rounds, pause=a.pause)
    finally:
        for e in entries.values():
            e.close()
        for key in entries:
            shutil.rmtree(os.path.join(state["inductor_cache"], f"{m}-{key}"), ignore_errors=True)
    rec = {"model": m, "degenerate": degenerate, "blind": blind, "entries": {}}
    for key, e in entries.items():
        rec["entries"][key] = dict(e.info, error=e.error, ms=float(np.median(e.ms)) if e.ms and not e.error else None,
                                   cos=float(np.mean(e.cos)) if e.cos and not e.error else None)
    got = ", ".join(f"{LABELS[k]} {v['ms']:.2f}" for k, v in rec["entries"].items() if v["ms"] is not None)
    log(f"{m}: median ms: {got}")
    return rec


# --------------------------------------------------------------------------------------------
# Report.
# --------------------------------------------------------------------------------------------


def best(rec, keys):
    """(ms, key) of the fastest of keys that ran on the model, or (None, None)."""
    timed = [(rec["entries"][k]["ms"], k) for k in keys if k in rec["entries"] and rec["entries"][k]["ms"] is not None]
    return min(timed) if timed else (None, None)


def get(rec, key, field):
    return rec["entries"].get(key, {}).get(field)


def report(results, a, meta):
    notes = Notes()
    note = notes.mark

    shown = [k for k in ENTRIES if k in a.entries]
    int8_shown = [k for k in INT8 if k in shown]

    def cell(rec, key, field, fmt):
        e = rec["entries"].get(key)
        if e is None:
            return "—"
        if e["error"]:
            return "error " + note(f"{rec['model']}, {LABELS[key]}: {e['error']}")
        v = e.get(field)
        return "—" if v is None else fmt(v)

    lat = ["| model | " + " | ".join(f"{LABELS[k]} ms" for k in shown)
           + " | best FP32 peer | best FP32 peer / Kiln self | fastest int8 |",
           "|---|" + "---:|" * len(shown) + "---|---:|---|"]
    speedups, fastest_all, fastest_peers, beats_fp32, n_self = [], 0, 0, 0, 0
    for rec in results:
        peer_ms, peer = best(rec, FP32_PEERS)
        self_ms = get(rec, "kiln-self", "ms")
        int8_ms, int8_key = best(rec, int8_shown)
        others_ms, _ = best(rec, [k for k in int8_shown if k not in ("kiln-self", "kiln-qdq")])
        if self_ms is not None:
            n_self += 1
            fastest_all += int8_key == "kiln-self"
            fastest_peers += others_ms is None or self_ms < others_ms
            kiln_fp32 = get(rec, "kiln", "ms")
            beats_fp32 += kiln_fp32 is not None and self_ms < kiln_fp32
        ratio = peer_ms / self_ms if peer_ms and self_ms else None
        if ratio:
            speedups.append(ratio)
        lat.append(f"| {rec['model']} | " + " | ".join(cell(rec, k, "ms", fmt_ms) for k in shown)
                   + f" | {LABELS[peer] + ' ' + fmt_ms(peer_ms) if peer else '—'} | "
                   + f"{f'{ratio:.2f}×' if ratio else '—'} | {LABELS[int8_key] if int8_key else '—'} |")
    gm = geomean(speedups)

    cos_keys = [k for k in shown if k != "ort"]
    cos_rows = ["| model | input-blind | " + " | ".join(LABELS[k] for k in cos_keys)
                + " | Kiln self ≥ PT2E | Kiln self ≥ OpenVINO NNCF |",
                "|---|---:|" + "---:|" * len(cos_keys) + "---|---|"]
    counts, flagged = {"pt2e": [0, 0], "nncf": [0, 0]}, []  # [Kiln self's at least the other's, compared]
    for rec in results:
        ks = get(rec, "kiln-self", "cos")
        pt2e = [get(rec, k, "cos") for k in PT2E if get(rec, k, "cos") is not None]
        verdict = []
        for what, other in (("pt2e", max(pt2e) if pt2e else None), ("nncf", get(rec, "openvino-nncf", "cos"))):
            if ks is None or other is None:
                verdict.append("—")
            elif rec["degenerate"]:
                verdict.append(f"not counted ({ks - other:+.1e})")
            else:
                counts[what][0] += ks >= other
                counts[what][1] += 1
                verdict.append(f"{'yes' if ks >= other else 'no'} ({ks - other:+.1e})")
        name = rec["model"]
        if rec["degenerate"]:
            flagged.append(name)
            name += " (degenerate) " + note(f"{rec['model']}: degenerate FP32 output, {rec['degenerate']}; "
                                            "its cosines say little")
        blind = "—" if rec["blind"] is None else f"{rec['blind']:.6f}"
        if rec["blind"] is not None and rec["blind"] > 0.99999:
            blind += " " + note("The output hardly depends on the input (input-blind cosine above 0.99999): "
                                "the int8 cosines mostly measure its constant part.")
        cos_rows.append(f"| {name} | {blind} | " + " | ".join(cell(rec, k, "cos", lambda v: f"{v:.6f}") for k in cos_keys)
                        + f" | {verdict[0]} | {verdict[1]} |")

    comp_cols = [("kiln", "compile_s", "Kiln FP32"), ("kiln-qdq", "compile_s", "Kiln QDQ"),
                 ("kiln-self", "compile_s", "Kiln self (with calibration)"),
                 ("pt2e-inductor", "pt2e_s", "PT2E quantize"), ("pt2e-inductor", "compile_s", "PT2E Inductor 1st call"),
                 ("pt2e-aoti", "compile_s", "PT2E AOTI export + compile"), ("openvino-nncf", "compile_s", "NNCF quantize"),
                 ("inductor", "compile_s", "Inductor FP32 1st call"), ("aoti", "compile_s", "AOTI FP32 export + compile")]
    comp_cols = [c for c in comp_cols if c[0] in shown]
    comp = ["| model | " + " | ".join(c[2] for c in comp_cols) + " | Kiln self |",
            "|---|" + "---:|" * len(comp_cols) + "---|"]
    for rec in results:
        cells = []
        for key, field, _ in comp_cols:
            v = get(rec, key, field)
            cells.append("—" if v is None else f"{v:.1f}" + ("*" if get(rec, key, "cached") else ""))
        comp.append(f"| {rec['model']} | " + " | ".join(cells) + f" | {get(rec, 'kiln-self', 'summary') or '—'} |")

    n = len(results)
    summary = [
        f"- **best FP32 peer / Kiln int8 self, geometric mean: {f'{gm:.2f}×' if gm else '—'}** over "
        f"{len(speedups)} of {n} model(s) (target ≥ {TARGET}×: {'met' if gm and gm >= TARGET else 'not met'}).",
        f"- Kiln self the fastest int8 entry: {fastest_all} of {n_self}; faster than every other tool's "
        f"int8 entry (Kiln QDQ aside): {fastest_peers} of {n_self}.",
        f"- Kiln self faster than Kiln FP32: {beats_fp32} of {n_self}.",
        f"- Kiln self's cosine ≥ PT2E's (the better of its entries): {counts['pt2e'][0]} of {counts['pt2e'][1]}; "
        f"≥ OpenVINO NNCF's: {counts['nncf'][0]} of {counts['nncf'][1]} (models flagged degenerate not counted).",
        "- Degenerate FP32 output: " + (", ".join(flagged) if flagged else "none") + ".",
    ]
    machine = meta["machine"]
    versions = ", ".join(f"{k} {v}" for k, v in meta["versions"].items() if v)
    lines = [
        "# int8 side by side: Kiln against ONNX Runtime, OpenVINO (+NNCF) and PyTorch PT2E, with FP32 rows",
        "",
        f"Generated by `{meta['command']}` on {meta['date']} ({meta['wall_min']:.0f} min); Kiln {meta['kiln']} "
        f"(binary `{a.kiln}`), repository at {meta['commit']}.",
        f"Machine: {machine['cpu']}, {machine['logical_cpus']} logical CPUs ({', '.join(machine['isa']) or 'no AVX2'}); "
        f"load average {meta['load_start']} at the start, {meta['load_end']} at the end.",
        f"Versions: {versions}.",
        "",
        f"The twelve torchvision CNNs of `export_models.py` (random weights, seed 0), batch 1, 3×224×224, "
        f"{a.threads} threads each. FP32: ORT on the FP32 export, OpenVINO (f32 precision hint), Inductor "
        "(`torch.compile`, freezing), AOTI (`torch.export` + `aoti_compile_and_package`, freezing), Kiln. "
        f"int8, every entry calibrated on the same {a.calibration} seeded random samples: ORT and OpenVINO "
        "on ORT's `quantize_static` QDQ graph, OpenVINO on `nncf.quantize` of the FP32 model (default preset), "
        "PyTorch PT2E (`X86InductorQuantizer`, default configuration; ResNet blocks' ReLU calls on distinct "
        "modules) through Inductor and AOTI, Kiln on the QDQ graph (Kiln QDQ) and quantizing the FP32 model "
        "itself (Kiln self: `--quantize int8 --calibration`). See `bench/int8.py`'s docstring.",
        f"Latency: the entries take turns over {a.rounds} round(s) of {a.seconds:g} s each (the order rotating); "
        "an entry's figure is the median of its round medians. Best FP32 peer: the fastest of ORT, OpenVINO, "
        "Inductor and AOTI FP32.",
        "",
        *lat,
        "",
        *summary,
        "",
        f"Cosine to ORT FP32's output, mean over {a.cosine_inputs} input(s) (the model's input file and seeded "
        "random ones). Input-blind: the FP32 outputs of the other inputs against the first's, what an output "
        "that ignored its input would score (random weights make the outputs nearly constant). The last "
        "columns: Kiln self's cosine minus the other's.",
        "",
        *cos_rows,
        "",
        "Compile and quantization seconds: Kiln's measured in this run; the others' when built "
        "(\\* = cached, the time measured when it was built; Inductor's first calls from an empty cache).",
        "",
        *comp,
    ]
    if notes:
        lines.append("")
        lines.extend(notes.lines())
    return "\n".join(lines) + "\n"


def parse_args(argv):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--models", default=",".join(TORCHVISION_MODELS),
                    help="comma-separated subset of: " + ", ".join(TORCHVISION_MODELS))
    ap.add_argument("--entries", default=",".join(ENTRIES), help="comma-separated subset of: " + ", ".join(ENTRIES))
    ap.add_argument("--dir", default=QDQ_DIR,
                    help="bench/qdq.py's directory: the FP32 exports, inputs, QDQ graphs and calibration samples")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--seconds", type=float, default=1, help="seconds per entry and round")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--pause", type=float, default=0.05, help="seconds between two timed entries")
    ap.add_argument("--cosine-inputs", type=int, default=8)
    ap.add_argument("--calibration", type=int, default=16, help="number of calibration samples")
    ap.add_argument("--kiln", default=kilnbin.binary())
    ap.add_argument("--fresh-aoti", action="store_true", help="rebuild cached AOTInductor packages")
    ap.add_argument("--out", default=os.path.join(HERE, "results", "int8.md"))
    a = ap.parse_args(argv)
    a.models = [m.strip() for m in a.models.split(",") if m.strip()]
    a.entries = [e.strip() for e in a.entries.split(",") if e.strip()]
    for what, got, known in (("model", a.models, TORCHVISION_MODELS), ("entry", a.entries, ENTRIES)):
        bad = [g for g in got if g not in known]
        if bad:
            ap.error(f"unknown {what}(s): {', '.join(bad)}")
    if a.cosine_inputs < 1 or a.rounds < 1 or a.calibration < 1:
        ap.error("--cosine-inputs, --rounds and --calibration must be at least 1")
    a.kiln = os.path.abspath(a.kiln)
    return a


def main(argv=None):
    argv = sys.argv[1:] if argv is None else argv
    a = parse_args(argv)
    # The thread count of every runtime (AOTInductor reads it), before anything reads it; the
    # workers inherit it.
    os.environ["OMP_NUM_THREADS"] = str(a.threads)
    wall = time.monotonic()
    load_start = load_average()
    os.makedirs(a.dir, exist_ok=True)
    subprocess.run([sys.executable, os.path.join(HERE, "export_models.py"), "--out", a.dir, "--models",
                    ",".join(a.models)], check=True)
    v = dist_version
    key = aoti_key()  # perf.py's
    state = {"cache": bench_cache(), "aoti_key": key, "torchao": v("torchao"), "aoti_dir": aoti_dir(key),
             "nncf_key": f"nncf-{v('nncf')}_ov-{v('openvino')}"}
    os.makedirs(state["cache"], exist_ok=True)
    state["inductor_cache"] = tempfile.mkdtemp(prefix="int8-inductor-", dir=state["cache"])
    results = []
    try:
        for m in a.models:
            start = time.monotonic()
            results.append(bench_model(m, a, state))
            log(f"{m}: done in {time.monotonic() - start:.0f} s")
    finally:
        shutil.rmtree(state["inductor_cache"], ignore_errors=True)
    kiln_version = command_output([a.kiln, "--version"]) or "unknown"
    commit = git_commit(REPO)
    meta = {
        "command": "bench/int8.py " + " ".join(argv),
        "date": utc_now(),
        "wall_min": (time.monotonic() - wall) / 60, "kiln": kiln_version, "commit": commit,
        "machine": machine_info(a.threads), "load_start": load_start,
        "load_end": load_average(),
        "versions": {name: v(name) for name in ("torch", "torchvision", "torchao", "onnxruntime", "openvino",
                                                  "nncf", "onnx", "numpy")}
        | {"python": platform.python_version(), "g++": gxx_version()},
    }
    text = report(results, a, meta)
    os.makedirs(os.path.dirname(os.path.abspath(a.out)), exist_ok=True)
    with open(a.out, "w") as f:
        f.write(text)
    print(text)
    log(f"wrote {a.out} ({meta['wall_min']:.1f} min)")


if __name__ == "__main__":
    if len(sys.argv) == 3 and sys.argv[1] == "--torch-worker":
        torch_worker(sys.argv[2])
    elif len(sys.argv) == 5 and sys.argv[1] == "--nncf-quantize":
        nncf_quantize(*sys.argv[2:])
    else:
        main()
