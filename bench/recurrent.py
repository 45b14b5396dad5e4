#!/usr/bin/env python3
"""A CRNN text recognizer (conv backbone -> 2-layer BiLSTM -> CTC logits): Kiln FP32 and
--quantize dynamic beside ONNX Runtime (FP32 and its quantize_dynamic) and OpenVINO f32, side by
side in one process.

    recurrent.py [--threads 2] [--seconds 2] [--rounds 3] [--width 128] [--hidden 256] [--kiln BIN]
                 [--dir DIR] [--out FILE]

Model: the CRNN of Shi et al. as OCR toolkits ship it, built in PyTorch with seeded random
weights (speed; the LSTM's arithmetic does not depend on the values): a 32 x --width grey image,
seven 3x3 convs (BatchNorm after three) and four max pools down to a 1 x (--width/4 + 1)
feature row of 512 channels, two bidirectional LSTM layers of --hidden units each with a linear
projection, and a linear layer to 37 classes per column. Exported by PyTorch's TorchScript
exporter (opset 17): ONNX LSTM nodes.

Entries, each at --threads threads:
  ort               ONNX Runtime on the FP32 model
  ort-dynamic       ONNX Runtime on quantize_dynamic of it (per-channel s8 weights, u8 activations:
                    its MatMuls and LSTMs: DynamicQuantizeLSTM)
  openvino          OpenVINO's CPU plugin, INFERENCE_PRECISION_HINT f32
  kiln              `kiln compile M.onnx --cpu native`
  kiln-dynamic      `kiln compile M.onnx --cpu native --quantize dynamic`

Each entry's logits against ONNX Runtime FP32's on 8 random images: cosine mean and minimum, and
whether the per-column argmax (the CTC path) is the same. Writes --out (default
bench/results/recurrent.md) and prints it. Needs the torch venv (scripts/lib.sh ensure_torch_venv).
"""

import argparse
import os
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

from kilnbench.kiln import bench_ms, binary, compile_library, run_output  # noqa: E402
from kilnbench.models import REPO  # noqa: E402
from kilnbench.peers import openvino_compile, ort_session  # noqa: E402
from kilnbench.report import write_table  # noqa: E402
from kilnbench.timing import median_ms, take_turns  # noqa: E402

ENTRIES = ["ort", "ort-dynamic", "openvino", "kiln", "kiln-dynamic"]


def export(path, width, hidden):
    import torch
    from torch import nn

    torch.manual_seed(0)

    def block(cin, cout, bn):
        return [nn.Conv2d(cin, cout, 3, 1, 1)] + ([nn.BatchNorm2d(cout)] if bn else []) + [nn.ReLU()]

    class BiLSTM(nn.Module):
        def __init__(self, n_in, n_hidden, n_out):
            super().__init__()
            self.rnn = nn.LSTM(n_in, n_hidden, bidirectional=True)
            self.proj = nn.Linear(2 * n_hidden, n_out)

        def forward(self, x):
            y, _ = self.rnn(x)
            return self.proj(y)

    class CRNN(nn.Module):
        def __init__(self):
            super().__init__()
            self.cnn = nn.Sequential(*block(1, 64, False), nn.MaxPool2d(2, 2), *block(64, 128, False), nn.MaxPool2d(2, 2),
                                     *block(128, 256, True), *block(256, 256, False), nn.MaxPool2d((2, 2), (2, 1), (0, 1)),
                                     *block(256, 512, True), *block(512, 512, False), nn.MaxPool2d((2, 2), (2, 1), (0, 1)),
                                     nn.Conv2d(512, 512, 2, 1, 0), nn.BatchNorm2d(512), nn.ReLU())
            self.rnn = nn.Sequential(BiLSTM(512, hidden, hidden), BiLSTM(hidden, hidden, 37))

        def forward(self, x):
            f = self.cnn(x).squeeze(2).permute(2, 0, 1)  # [T, N, C]
            return self.rnn(f)

    m = CRNN().eval()
    for mod in m.modules():
        if isinstance(mod, nn.BatchNorm2d):
            mod.running_mean.uniform_(-0.1, 0.1)
            mod.running_var.uniform_(0.5, 1.5)
    torch.onnx.export(m, torch.zeros(1, 1, 32, width), path, input_names=["image"], output_names=["logits"],
                      opset_version=17, dynamo=False)


def main():
    import numpy as np

    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--seconds", type=float, default=2)
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--width", type=int, default=128)
    p.add_argument("--hidden", type=int, default=256)
    p.add_argument("--kiln", default=binary(env=True))
    p.add_argument("--dir", default=os.path.join(os.path.expanduser("~"), ".cache", "kiln", "recurrent"))
    p.add_argument("--out", default=os.path.join(REPO, "bench", "results", "recurrent.md"))
    args = p.parse_args()
    os.environ.setdefault("OMP_NUM_THREADS", str(args.threads))
    work = os.path.join(args.dir, f"crnn_w{args.width}_h{args.hidden}")
    os.makedirs(work, exist_ok=True)
    onnx_path = os.path.join(work, "crnn.onnx")
    if not os.path.exists(onnx_path):
        export(onnx_path, args.width, args.hidden)
    dyn = os.path.join(work, "crnn.dynamic.onnx")
    if not os.path.exists(dyn):
        from onnxruntime.quantization import QuantType, quantize_dynamic

        quantize_dynamic(onnx_path, dyn, per_channel=True, weight_type=QuantType.QInt8)
    rng = np.random.default_rng(1)
    images = [rng.uniform(0, 1, (1, 1, 32, args.width)).astype(np.float32) for _ in range(8)]

    def ort_entry(path):
        s = ort_session(path, args.threads, "ORT_ENABLE_ALL", sequential=True)
        return lambda x: s.run(None, {"image": x})[0].ravel()

    def ov_entry():
        import openvino as ov

        compiled, _ = openvino_compile(ov.Core(), onnx_path, args.threads, streams=1)
        request = compiled.create_infer_request()
        return lambda x: np.array(request.infer({"image": x})[0]).ravel()

    def kiln_entry(extra, name):
        lib, summary, _ = compile_library(args.kiln, [onnx_path, "--cpu", "native"] + extra, os.path.join(work, name), name)
        if lib is None:
            raise RuntimeError(summary)
        out = os.path.join(work, name, "run")
        os.makedirs(out, exist_ok=True)

        def run(x):
            f = os.path.join(out, "image.npy")
            np.save(f, x)
            return run_output(args.kiln, lib, f, out, args.threads, "logits")

        run.lib = lib
        return run

    makers = {"ort": lambda: ort_entry(onnx_path), "ort-dynamic": lambda: ort_entry(dyn), "openvino": ov_entry,
              "kiln": lambda: kiln_entry([], "kiln_crnn"), "kiln-dynamic": lambda: kiln_entry(["--quantize", "dynamic"], "kiln_crnn_dynamic")}
    runs = {}
    for name in ENTRIES:
        print(f"setting up {name}", file=sys.stderr, flush=True)
        runs[name] = makers[name]()
    ref = [runs["ort"](x) for x in images]
    acc = {}
    for name, run in runs.items():
        got = [run(x) for x in images]
        cos = [float(a @ b / np.linalg.norm(a) / np.linalg.norm(b)) for a, b in zip(ref, got)]
        same = sum(int(np.array_equal(a.reshape(-1, 37).argmax(1), b.reshape(-1, 37).argmax(1))) for a, b in zip(ref, got))
        acc[name] = (float(np.mean(cos)), float(np.min(cos)), same)
    timed = os.path.join(work, "timed_image.npy")
    np.save(timed, images[0])

    def timer(run):
        if hasattr(run, "lib"):
            return lambda: bench_ms(args.kiln, run.lib, args.threads, args.seconds, timed)
        return lambda: median_ms(lambda: run(images[0]), args.seconds)

    figures = take_turns([(n, timer(r)) for n, r in runs.items()], args.rounds)
    ms = {n: float(np.median(v)) for n, v in figures.items()}
    lines = [f"# CRNN (conv backbone, 2 BiLSTM layers of {args.hidden}, CTC logits), 1x1x32x{args.width}, {args.threads} threads "
             f"(median ms of {args.rounds} rounds, one process)", "",
             f"Each entry's logits against ONNX Runtime FP32's on {len(images)} random images (random weights): "
             "cosine, and on how many images every column's argmax (the CTC path) is the same.", "",
             "| entry | ms | cosine mean | cosine min | same argmax | ms / ORT | ms / ORT dynamic |", "|---|---|---|---|---|---|---|"]
    for n in ENTRIES:
        lines.append(f"| {n} | {ms[n]:.2f} | {acc[n][0]:.5f} | {acc[n][1]:.5f} | {acc[n][2]}/{len(images)} | "
                     f"{ms[n] / ms['ort']:.2f} | {ms[n] / ms['ort-dynamic']:.2f} |")
    write_table(args.out, lines)


if __name__ == "__main__":
    main()
