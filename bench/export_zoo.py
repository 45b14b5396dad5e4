#!/usr/bin/env python3
"""Exports a "public zoo" of ONNX models (random weights), with a random input for each.

    export_zoo.py --out DIR [--models efficientnet_b0,yolov8n,...] [--force] [--threads N]

Writes DIR/<name>.onnx and DIR/<name>.input.npy (float32, standard normal,
fixed seed), then runs each model once with ONNX Runtime (CPU) and fails unless
every output is finite. All weights are random (torch.manual_seed(0), nothing
is downloaded); eval mode, batch 1, opset 17.

- timm (timm.create_model(name, pretrained=False)), at the model's default
  input size (pretrained_cfg["input_size"]: 3x224x224, 3x256x256 for
  mobilevitv2_050): efficientnet_b0, convnext_tiny, regnety_008, ghostnet_100,
  mobilevitv2_050, deit_tiny_patch16_224, repvgg_a0 (its training-time,
  multi-branch form, as create_model returns it), mixnet_s;
- torchvision segmentation (weights=None, weights_backbone=None), 1x3x512x512,
  only the "out" tensor of the output dict: deeplabv3_mobilenet_v3_large,
  lraspp_mobilenet_v3_large;
- ultralytics YOLO n-size detectors built from their yaml (YOLO("yolov8n.yaml"),
  YOLO("yolo11n.yaml")) and exported by ultralytics' own ONNX export
  (imgsz=640, opset=17, simplify=True, i.e. onnxslim): yolov8n, yolo11n. Their
  input is "images" (1x3x640x640) and output "output0" (1x84x8400), as
  ultralytics names them. YOLO_OFFLINE and YOLO_AUTOINSTALL=False are set, so
  ultralytics neither pip-installs nor downloads nor sends analytics;
- defined here: "unet" (4 levels, 32-64-128-256 channels, BatchNorm+ReLU
  double convs, ConvTranspose2d(k=2, s=2) upsampling, 1x3x256x256 -> 1x1x256x256
  logits), "crnn" (a text recognizer: a conv stack taking 1x3x32x320 to height 1,
  then Linear(256, 6625) and Softmax over the last axis -> 1x80x6625; no LSTM)
  and "espcn" (super-resolution x3: conv5x5 64, tanh, conv3x3 32, tanh,
  conv3x3 9, PixelShuffle(3) (DepthToSpace); 1x1x224x224 -> 1x1x672x672).

The torch exports use the TorchScript exporter (dynamo=False) with input
"input" and output "output", as export_models.py does.

Models (and inputs) that already exist are skipped unless --force; the
ONNX Runtime check runs either way. Needs the packages of
bench/requirements-torch.txt (scripts/lib.sh ensure_torch_venv), timm and
ultralytics among them.
"""

import os
import shutil
import sys
import tempfile
import time
from collections import Counter

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

# The model lists, the same atomic write and seeded inputs as the 12 CNNs (stdlib-only at
# import time).
from kilnbench.models import SEGMENTATION_MODELS, TIMM_MODELS, YOLO_MODELS  # noqa: E402
from kilnbench.models import ZOO_MODELS as ALL_MODELS  # noqa: E402
from kilnbench.models import OPSET, export_onnx, export_parser, model_names, model_paths  # noqa: E402
from kilnbench.models import write_atomically, write_input  # noqa: E402
from kilnbench.peers import ort_session  # noqa: E402
from kilnbench.report import logger  # noqa: E402

SEGMENTATION_SHAPE = (1, 3, 512, 512)
YOLO_IMGSZ = 640
CUSTOM_SHAPES = {
    "unet": (1, 3, 256, 256),
    "crnn": (1, 3, 32, 320),
    "espcn": (1, 1, 224, 224),
}
CRNN_CLASSES = 6625
ESPCN_SCALE = 3


log = logger("export_zoo")


def input_shape(name):
    """The model's input shape (batch 1)."""
    if name in TIMM_MODELS:
        import timm

        # The default input size; no weights are built for this (meta device).
        cfg = timm.get_pretrained_cfg(name)
        return (1, *cfg.input_size)
    if name in SEGMENTATION_MODELS:
        return SEGMENTATION_SHAPE
    if name in YOLO_MODELS:
        return (1, 3, YOLO_IMGSZ, YOLO_IMGSZ)
    return CUSTOM_SHAPES[name]


# ---------------------------------------------------------------- models


def build_timm(name):
    import timm
    import torch

    torch.manual_seed(0)
    return timm.create_model(name, pretrained=False).eval()


def build_segmentation(name):
    import torch
    import torchvision
    from torch import nn

    class OutOnly(nn.Module):
        """torchvision's segmentation models return {"out": ...}; keeps "out"."""

        def __init__(self, model):
            super().__init__()
            self.model = model

        def forward(self, x):
            return self.model(x)["out"]

    torch.manual_seed(0)
    model = torchvision.models.get_model(name, weights=None, weights_backbone=None)
    return OutOnly(model).eval()


def build_unet():
    import torch
    from torch import nn

    def double_conv(cin, cout):
        return nn.Sequential(
            nn.Conv2d(cin, cout, 3, padding=1, bias=False),
            nn.BatchNorm2d(cout),
            nn.ReLU(inplace=True),
            nn.Conv2d(cout, cout, 3, padding=1, bias=False),
            nn.BatchNorm2d(cout),
            nn.ReLU(inplace=True),
        )

    class UNet(nn.Module):
        """Four levels (32, 64, 128, 256 channels; the 256 one is the
        bottleneck, at 1/8 resolution), max-pool down, ConvTranspose2d up,
        skip connections by concatenation, a 1x1 conv to one class."""

        def __init__(self, in_channels=3, classes=1, widths=(32, 64, 128, 256)):
            super().__init__()
            self.down = nn.ModuleList()
            cin = in_channels
            for w in widths[:-1]:
                self.down.append(double_conv(cin, w))
                cin = w
            self.pool = nn.MaxPool2d(2)
            self.bottleneck = double_conv(widths[-2], widths[-1])
            self.up = nn.ModuleList()
            self.dec = nn.ModuleList()
            for w_hi, w in zip(reversed(widths[1:]), reversed(widths[:-1])):
                self.up.append(nn.ConvTranspose2d(w_hi, w, kernel_size=2, stride=2))
                self.dec.append(double_conv(2 * w, w))
            self.head = nn.Conv2d(widths[0], classes, kernel_size=1)

        def forward(self, x):
            skips = []
            for block in self.down:
                x = block(x)
                skips.append(x)
                x = self.pool(x)
            x = self.bottleneck(x)
            for up, dec, skip in zip(self.up, self.dec, reversed(skips)):
                x = dec(torch.cat([up(x), skip], dim=1))
            return self.head(x)

    torch.manual_seed(0)
    return UNet().eval()


def build_crnn():
    import torch
    from torch import nn

    def conv_bn_relu(cin, cout, kernel=3, padding=1):
        return [
            nn.Conv2d(cin, cout, kernel, padding=padding, bias=False),
            nn.BatchNorm2d(cout),
            nn.ReLU(inplace=True),
        ]

    class CRNN(nn.Module):
        """A CRNN-style recognizer for 32-pixel-high text lines: the conv stack
        halves the width twice and the height five times (32x320 -> 1x80),
        then a per-column Linear to the 6625 classes (PaddleOCR's dictionary
        size, with blank) and a softmax. The usual bidirectional LSTM is left
        out: the sequence head is convolutional (the stack's receptive field)
        plus the Linear."""

        def __init__(self, classes=CRNN_CLASSES):
            super().__init__()
            self.features = nn.Sequential(
                *conv_bn_relu(3, 32),
                nn.MaxPool2d(2, 2),  # 16x160
                *conv_bn_relu(32, 64),
                nn.MaxPool2d(2, 2),  # 8x80
                *conv_bn_relu(64, 128),
                *conv_bn_relu(128, 128),
                nn.MaxPool2d((2, 1), (2, 1)),  # 4x80
                *conv_bn_relu(128, 256),
                *conv_bn_relu(256, 256),
                nn.MaxPool2d((2, 1), (2, 1)),  # 2x80
                *conv_bn_relu(256, 256, kernel=(2, 1), padding=0),  # 1x80
            )
            self.fc = nn.Linear(256, classes)
            self.softmax = nn.Softmax(dim=-1)

        def forward(self, x):
            x = self.features(x)  # [N, 256, 1, W/4]
            x = x.squeeze(2).permute(0, 2, 1)  # [N, W/4, 256]
            return self.softmax(self.fc(x))  # [N, W/4, classes]

    torch.manual_seed(0)
    return CRNN().eval()


def build_espcn():
    import torch
    from torch import nn

    class ESPCN(nn.Module):
        """Shi et al. 2016, on one (luma) channel, scale 3."""

        def __init__(self, channels=1, scale=ESPCN_SCALE):
            super().__init__()
            self.body = nn.Sequential(
                nn.Conv2d(channels, 64, 5, padding=2),
                nn.Tanh(),
                nn.Conv2d(64, 32, 3, padding=1),
                nn.Tanh(),
                nn.Conv2d(32, channels * scale * scale, 3, padding=1),
                nn.PixelShuffle(scale),
            )

        def forward(self, x):
            return self.body(x)

    torch.manual_seed(0)
    return ESPCN().eval()


def build_torch(name):
    if name in TIMM_MODELS:
        return build_timm(name)
    if name in SEGMENTATION_MODELS:
        return build_segmentation(name)
    return {"unet": build_unet, "crnn": build_crnn, "espcn": build_espcn}[name]()


# ---------------------------------------------------------------- export


def export_yolo(name, path):
    """ultralytics' own export, in a scratch directory (it writes the .onnx
    next to the model's yaml name, in the working directory)."""
    # Before ultralytics is imported: no pip installs, no downloads, no analytics.
    os.environ.setdefault("YOLO_OFFLINE", "1")
    os.environ.setdefault("YOLO_AUTOINSTALL", "False")
    import torch
    from ultralytics import YOLO

    cwd = os.getcwd()
    with tempfile.TemporaryDirectory(prefix="export_zoo.") as scratch:
        os.chdir(scratch)
        try:
            torch.manual_seed(0)
            model = YOLO(YOLO_MODELS[name])
            exported = model.export(
                format="onnx", imgsz=YOLO_IMGSZ, opset=OPSET, simplify=True, device="cpu"
            )
            exported = os.path.join(scratch, exported)
            if not os.path.isfile(exported):
                raise SystemExit(f"{name}: ultralytics export wrote no {exported}")
            write_atomically(path, lambda tmp: shutil.move(exported, tmp))
        finally:
            os.chdir(cwd)


def check(name, onnx_path, npy_path, threads):
    """Runs the model once with ONNX Runtime and fails unless its outputs are
    finite; logs the node count and the op histogram."""
    import numpy as np
    import onnx

    graph = onnx.load(onnx_path, load_external_data=False).graph
    ops = Counter(node.op_type for node in graph.node)
    histogram = ", ".join(f"{op} {n}" for op, n in sorted(ops.items(), key=lambda kv: (-kv[1], kv[0])))
    log(f"{name}: {len(graph.node)} nodes: {histogram}")

    session = ort_session(onnx_path, threads)
    [inp] = session.get_inputs()
    outputs = session.run(None, {inp.name: np.load(npy_path)})
    for meta, value in zip(session.get_outputs(), outputs):
        if not np.isfinite(value).all():
            raise SystemExit(f"{name}: ONNX Runtime output {meta.name!r} is not finite")
    shapes = ", ".join(f"{m.name} {list(v.shape)}" for m, v in zip(session.get_outputs(), outputs))
    log(f"{name}: ONNX Runtime ok: {inp.name} {list(np.load(npy_path).shape)} -> {shapes}")


def export_one(name, out_dir, force, threads):
    onnx_path, npy_path = model_paths(out_dir, name)
    shape = input_shape(name)
    write_input(npy_path, name, shape, force)

    if os.path.exists(onnx_path) and not force:
        log(f"{name}: exists, skipped")
    else:
        start = time.monotonic()
        if name in YOLO_MODELS:
            export_yolo(name, onnx_path)
        else:
            import torch

            model = build_torch(name)
            # Tracer warnings from timm's shape assertions (constant in a traced graph): silenced.
            export_onnx(model, torch.zeros(*shape), onnx_path, tracer_warnings=False)
        size = os.path.getsize(onnx_path) / 1e6
        log(f"{name}: exported ({size:.1f} MB, {time.monotonic() - start:.1f} s)")

    check(name, onnx_path, npy_path, threads)


def main():
    parser = export_parser(__doc__, ALL_MODELS)
    parser.add_argument(
        "--threads",
        type=int,
        default=1,
        help="threads for torch and for the ONNX Runtime check (default: 1)",
    )
    args = parser.parse_args()

    names = model_names(parser, args.models, ALL_MODELS)
    os.makedirs(args.out, exist_ok=True)
    import torch

    torch.set_num_threads(args.threads)
    for name in names:
        # Absolute: the YOLO export changes the working directory.
        export_one(name, os.path.abspath(args.out), args.force, args.threads)


if __name__ == "__main__":
    main()
