"""The benchmark models: their names and sets, where their files are, their inputs and the
calibration samples. Standard library only at import time (numpy inside the functions)."""

import os

BENCH = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))  # bench/
REPO = os.path.dirname(BENCH)

# The twelve torchvision CNNs of export_models.py (random weights, batch 1, 3x224x224).
TORCHVISION_MODELS = [
    "alexnet",
    "densenet121",
    "mnasnet1_0",
    "mobilenet_v2",
    "mobilenet_v3_large",
    "resnet18",
    "resnet50",
    "resnet152",
    "resnext50_32x4d",
    "shufflenet_v2_x1_0",
    "squeezenet1_1",
    "vgg16",
]
# export_models.py's model with a symbolic batch (the front end's check, not a benchmark).
DYNAMIC_MODELS = ["dynamic_reshape"]

# The public zoo of export_zoo.py (random weights, batch 1, each at its own input size).
TIMM_MODELS = [
    "efficientnet_b0",
    "convnext_tiny",
    "regnety_008",
    "ghostnet_100",
    "mobilevitv2_050",
    "deit_tiny_patch16_224",
    "repvgg_a0",
    "mixnet_s",
]
SEGMENTATION_MODELS = ["deeplabv3_mobilenet_v3_large", "lraspp_mobilenet_v3_large"]
YOLO_MODELS = {"yolov8n": "yolov8n.yaml", "yolo11n": "yolo11n.yaml"}  # name: ultralytics' yaml
CUSTOM_MODELS = ["unet", "crnn", "espcn"]
ZOO_MODELS = TIMM_MODELS + SEGMENTATION_MODELS + list(YOLO_MODELS) + CUSTOM_MODELS

# Model sets, for --models and --set: the torchvision CNNs of export_models.py, the public zoo
# of export_zoo.py, or both.
MODEL_SETS = {"cnn12": list(TORCHVISION_MODELS), "zoo": list(ZOO_MODELS),
              "all": list(TORCHVISION_MODELS) + list(ZOO_MODELS)}

INPUT_SEED = 1234
OPSET = 17  # of the ONNX exports


def model_set(name):
    """The set a benchmark model belongs to: "cnn12" or "zoo"."""
    return "cnn12" if name in TORCHVISION_MODELS else "zoo"


def export_script(name):
    """The script that exports the model."""
    return "export_models.py" if name in TORCHVISION_MODELS else "export_zoo.py"


def build_torch(name):
    """The PyTorch module (seed 0, eval mode) that the model's ONNX file is exported from: of
    export_models.py for the torchvision CNNs, of export_zoo.py for the zoo (not the YOLO
    exports, which are ultralytics' own)."""
    if name in TORCHVISION_MODELS:
        from export_models import build_torchvision

        return build_torchvision(name)
    from export_zoo import build_torch as build_zoo

    return build_zoo(name)


def resolve_models(models, model_set):
    """The model names of --models and --set, sets expanded, in order, each once."""
    words = [m.strip() for m in (models or "").split(",") if m.strip()]
    if model_set:
        words.insert(0, model_set)
    if not words:
        words = ["cnn12"]
    out, unknown = [], []
    for w in words:
        names = MODEL_SETS.get(w, [w])
        for name in names:
            if name not in MODEL_SETS["all"]:
                unknown.append(name)
            elif name not in out:
                out.append(name)
    if unknown:
        raise ValueError(f"unknown model(s): {', '.join(unknown)} (models: {', '.join(MODEL_SETS['all'])}; "
                         f"sets: {', '.join(MODEL_SETS)})")
    if not out:
        raise ValueError("no models")
    return out


# --------------------------------------------------------------------------------------------
# Where things are.
# --------------------------------------------------------------------------------------------


def cache_root():
    """${KILN_CACHE:-~/.cache/kiln}."""
    return os.environ.get("KILN_CACHE") or os.path.join(os.path.expanduser("~"), ".cache", "kiln")


def bench_cache():
    """The exports of export_models.py and export_zoo.py, the AOTInductor packages, ...:
    ${KILN_CACHE:-~/.cache/kiln}/bench (bench/perf.sh's)."""
    return os.path.join(cache_root(), "bench")


# qdq.py's and int8.py's default --dir: the FP32 exports, inputs, QDQ graphs and calibration
# samples (under ~/.cache/kiln whatever KILN_CACHE says).
QDQ_DIR = os.path.expanduser("~/.cache/kiln/qdq")


def model_paths(directory, name):
    """(<name>.onnx, <name>.input.npy) in directory, as the export scripts write them."""
    return os.path.join(directory, f"{name}.onnx"), os.path.join(directory, f"{name}.input.npy")


def write_atomically(path, write):
    """Calls write(tmp_path), then renames tmp_path to path."""
    root, ext = os.path.splitext(path)
    tmp = f"{root}.tmp{os.getpid()}{ext}"
    try:
        write(tmp)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)


def export_parser(doc, models):
    """The export scripts' command line (description: doc's first paragraph): --out, --models
    (a comma-separated subset of models, all by default), --force. Parse --models with
    model_names."""
    import argparse

    parser = argparse.ArgumentParser(description=doc.split("\n\n")[0])
    parser.add_argument("--out", required=True, help="output directory")
    parser.add_argument(
        "--models",
        default=",".join(models),
        help="comma-separated subset of: " + ", ".join(models),
    )
    parser.add_argument("--force", action="store_true", help="re-export existing models")
    return parser


def model_names(parser, text, known):
    """The names of the comma-separated text; parser.error when one is not in known."""
    names = [n.strip() for n in text.split(",") if n.strip()]
    unknown = [n for n in names if n not in known]
    if unknown:
        parser.error(f"unknown model(s): {', '.join(unknown)}")
    return names


def export_onnx(model, example, path, dynamic_batch=False, tracer_warnings=True):
    """torch.onnx.export of model on example to path (atomically): the TorchScript exporter
    (dynamo=False), opset OPSET, input "input", output "output", constants folded; with
    dynamic_batch, their axis 0 "batch"; without tracer_warnings, torch.jit.TracerWarning
    silenced (timm's shape assertions, constant in a traced graph)."""
    import warnings

    import torch

    kwargs = dict(
        opset_version=OPSET,
        dynamo=False,
        input_names=["input"],
        output_names=["output"],
        do_constant_folding=True,
    )
    if dynamic_batch:
        kwargs["dynamic_axes"] = {"input": {0: "batch"}, "output": {0: "batch"}}
    with torch.no_grad(), warnings.catch_warnings():
        # "You are using the legacy TorchScript-based ONNX export": we mean to.
        warnings.filterwarnings("ignore", message=".*legacy TorchScript-based ONNX export")
        if not tracer_warnings:
            warnings.filterwarnings("ignore", category=torch.jit.TracerWarning)
        write_atomically(path, lambda tmp: torch.onnx.export(model, (example,), tmp, **kwargs))


# --------------------------------------------------------------------------------------------
# Inputs and calibration samples.
# --------------------------------------------------------------------------------------------


def make_input(name, shape):
    """The model's input file: float32, standard normal, a fixed seed per model name."""
    import numpy as np

    # A distinct but fixed stream per model.
    seed = INPUT_SEED + sum(map(ord, name))
    rng = np.random.default_rng(seed)
    return rng.standard_normal(shape).astype(np.float32)


def write_input(path, name, shape, force=False):
    """The model's input file (make_input) at path, unless it exists (and not force)."""
    import numpy as np

    if force or not os.path.exists(path):
        data = make_input(name, shape)
        write_atomically(path, lambda tmp: np.save(tmp, data))


def calibration_samples(x, n):
    """The calibration samples, the same for every tool: n seeded random arrays shaped like x."""
    import numpy as np

    rng = np.random.default_rng(0)
    return [rng.standard_normal(x.shape).astype(np.float32) for _ in range(n)]


def cosine_inputs(x, n):
    """The inputs of the cosine: x (the model's input file) and n - 1 seeded random ones."""
    import numpy as np

    rng = np.random.default_rng(1)
    return [x] + [rng.standard_normal(x.shape).astype(np.float32) for _ in range(n - 1)]


def write_calibration(directory, samples):
    """directory holding exactly the samples, as input_<k>.npy (`kiln compile --calibration`)."""
    import numpy as np

    os.makedirs(directory, exist_ok=True)
    for f in os.listdir(directory):
        os.remove(os.path.join(directory, f))
    for k, s in enumerate(samples):
        np.save(os.path.join(directory, f"input_{k}.npy"), s)


def read_calibration(directory):
    """The samples of a calibration directory, input_0.npy, input_1.npy, ... in order."""
    import numpy as np

    n = len([f for f in os.listdir(directory) if f.startswith("input_") and f.endswith(".npy")])
    return [np.load(os.path.join(directory, f"input_{k}.npy")) for k in range(n)]


if __name__ == "__main__":
    # For the shell scripts: `python3 bench/kilnbench/models.py cnn12` prints the set's models,
    # comma-separated.
    import sys

    if len(sys.argv) != 2 or sys.argv[1] not in MODEL_SETS:
        sys.exit(f"usage: {os.path.basename(__file__)} {'|'.join(MODEL_SETS)}")
    print(",".join(MODEL_SETS[sys.argv[1]]))
