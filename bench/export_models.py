#!/usr/bin/env python3
"""Exports the benchmark models to ONNX, with a random input for each.

    export_models.py --out DIR [--models alexnet,resnet18,...] [--force]

Writes DIR/<name>.onnx and DIR/<name>.input.npy (float32, fixed seed) for:

- the twelve torchvision CNNs below, with random weights (weights=None,
  torch.manual_seed(0)), eval mode, batch 1, 3x224x224, exported by the
  TorchScript exporter (dynamo=False) at opset 17 with input "input" and
  output "output";
- "dynamic_reshape": a tiny conv net that flattens with x.view(x.size(0), -1),
  exported with a dynamic batch axis so that the Reshape's target shape comes
  from a Shape -> Gather -> Unsqueeze -> Concat sub-graph (checked after export).
  Its input file has batch 2, so that a consumer that pins the batch from the
  input file sees a batch other than the 1 of the example used for export.

Models (and inputs) that already exist are skipped unless --force.
Needs torch, torchvision, onnx and numpy (scripts/lib.sh ensure_torch_venv).
"""

import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

# The model lists, the seeded inputs and the atomic write (stdlib-only at import time).
from kilnbench.models import DYNAMIC_MODELS, TORCHVISION_MODELS, export_onnx, export_parser, model_names  # noqa: E402
from kilnbench.models import model_paths, write_input  # noqa: E402
from kilnbench.report import logger  # noqa: E402

ALL_MODELS = TORCHVISION_MODELS + DYNAMIC_MODELS

INPUT_SHAPE = (1, 3, 224, 224)
DYNAMIC_INPUT_SHAPE = (2, 3, 32, 32)  # the input file's shape for dynamic_reshape

log = logger("export_models")


def build_torchvision(name):
    import torch
    import torchvision

    torch.manual_seed(0)
    model = torchvision.models.get_model(name, weights=None)
    return model.eval()


def build_dynamic_reshape():
    import torch
    from torch import nn

    class DynamicReshape(nn.Module):
        def __init__(self):
            super().__init__()
            self.conv = nn.Conv2d(3, 8, kernel_size=3, stride=2, padding=1)
            self.relu = nn.ReLU()
            self.fc = nn.Linear(8 * 16 * 16, 10)

        def forward(self, x):
            x = self.relu(self.conv(x))
            x = x.view(x.size(0), -1)
            return self.fc(x)

    torch.manual_seed(0)
    return DynamicReshape().eval()


def check_shape_subgraph(path):
    """Fails unless a Reshape's shape input is computed from a Shape node
    (through Gather, ...), i.e. the export really left a shape sub-graph."""
    import onnx

    graph = onnx.load(path, load_external_data=False).graph
    producer = {out: node for node in graph.node for out in node.output}

    def ancestors(tensor, seen):
        """The nodes the tensor is computed from, up to (and with) Shape nodes."""
        node = producer.get(tensor)
        if node is None or id(node) in seen:
            return
        seen.add(id(node))
        if node.op_type != "Shape":
            for inp in node.input:
                ancestors(inp, seen)

    for node in graph.node:
        if node.op_type != "Reshape":
            continue
        seen = set()
        ancestors(node.input[1], seen)
        ops = [n.op_type for n in graph.node if id(n) in seen and n.op_type != "Constant"]
        if "Shape" in ops and "Gather" in ops:
            chain = " -> ".join(ops + ["Reshape"])
            log(f"{os.path.basename(path)}: Reshape {node.name!r} target from {chain}")
            dims = [
                d.dim_param or d.dim_value
                for d in graph.input[0].type.tensor_type.shape.dim
            ]
            log(f"{os.path.basename(path)}: input dims {dims}")
            return
    raise SystemExit(f"{path}: no Reshape fed by a Shape -> Gather sub-graph")


def export_one(name, out_dir, force):
    onnx_path, npy_path = model_paths(out_dir, name)
    dynamic = name in DYNAMIC_MODELS
    write_input(npy_path, name, DYNAMIC_INPUT_SHAPE if dynamic else INPUT_SHAPE, force)

    if os.path.exists(onnx_path) and not force:
        log(f"{name}: exists, skipped")
    else:
        import torch

        start = time.monotonic()
        if dynamic:
            model = build_dynamic_reshape()
            example = torch.zeros(1, *DYNAMIC_INPUT_SHAPE[1:])
        else:
            model = build_torchvision(name)
            example = torch.zeros(*INPUT_SHAPE)
        export_onnx(model, example, onnx_path, dynamic_batch=dynamic)
        size = os.path.getsize(onnx_path) / 1e6
        log(f"{name}: exported ({size:.1f} MB, {time.monotonic() - start:.1f} s)")

    if dynamic:
        check_shape_subgraph(onnx_path)


def main():
    parser = export_parser(__doc__, ALL_MODELS)
    args = parser.parse_args()

    names = model_names(parser, args.models, ALL_MODELS)
    os.makedirs(args.out, exist_ok=True)
    for name in names:
        export_one(name, args.out, args.force)


if __name__ == "__main__":
    main()
