#!/usr/bin/env python3
"""Quantizes the sample digits CNN with PyTorch's PT2E flow and exports QDQ ONNX.

    source scripts/lib.sh; ensure_torch_venv
    $KILN_TORCH_PY samples/models/quantize_digits_pt2e.py

The recipe is the one PyTorch's Inductor CPU backend compiles: torchao's
X86InductorQuantizer with its default configuration (u8 activations per tensor,
affine; s8 weights per output channel, symmetric; FP32 bias). The FP32 weights
are digits.onnx's own (loaded into the same nn.Module that train_digits.py
trained), so the quantized models are that model quantized, not a new one.

Writes, next to this script:
    digits.pt2e.onnx    post-training quantization (PTQ): prepare_pt2e, calibration
                        on digits_calib_images.npy, convert_pt2e
    digits.qat.onnx     quantization-aware training (QAT): prepare_qat_pt2e, three
                        epochs of fine-tuning on the training split, convert_pt2e
    digits_pt2e.json    PyTorch's own held-back accuracy of each quantized model,
                        eager (the decomposed quantize/dequantize ops, the graph
                        the exporter writes) and compiled by Inductor (its int8
                        kernels): what Kiln's compiled libraries are held to

Both are exported with torch.onnx.export(..., dynamo=True), opset 20. The
exporter writes plain QDQ: DequantizeLinear of s8 initializers (axis 0) for the
weights, QuantizeLinear -> DequantizeLinear pairs (u8, per tensor) on the
activations, FP32 Conv/Gemm between them. BatchNormalization is folded into the
convolutions by prepare_pt2e / prepare_qat_pt2e.

Deterministic: fixed seeds, single-threaded torch, deterministic algorithms.
"""
from __future__ import annotations

import json
import os
import sys
import time
import warnings

import numpy as np
import onnx
import onnxruntime as ort
import torch
from onnx import numpy_helper

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
from train_digits import SEED, DigitsCNN, load_split, seed_everything  # noqa: E402

QAT_EPOCHS = 3


def load_fp32_model() -> torch.nn.Module:
    """DigitsCNN with the weights of digits.onnx (its initializers are named as the state dict)."""
    m = onnx.load(os.path.join(HERE, "digits.onnx"))
    state = {i.name: torch.from_numpy(numpy_helper.to_array(i).copy()) for i in m.graph.initializer}
    model = DigitsCNN()
    missing, unexpected = model.load_state_dict(state, strict=False)
    if unexpected or any(not k.endswith("num_batches_tracked") for k in missing):
        raise SystemExit(f"digits.onnx does not match DigitsCNN: missing {missing}, unexpected {unexpected}")
    return model.eval()


def quantizer(is_qat: bool):
    import torchao.quantization.pt2e.quantizer.x86_inductor_quantizer as xiq

    q = xiq.X86InductorQuantizer()
    q.set_global(xiq.get_default_x86_inductor_quantization_config(is_qat=is_qat))
    return q


def exported(model: torch.nn.Module, example: torch.Tensor) -> torch.fx.GraphModule:
    batch = torch.export.Dim("batch")
    return torch.export.export(model, (example,), dynamic_shapes=({0: batch},)).module()


def ptq(model: torch.nn.Module, calib: np.ndarray) -> torch.fx.GraphModule:
    from torchao.quantization.pt2e.quantize_pt2e import convert_pt2e, prepare_pt2e

    prepared = prepare_pt2e(exported(model, torch.from_numpy(calib[:4])), quantizer(is_qat=False))
    with torch.no_grad():
        prepared(torch.from_numpy(calib))
    return convert_pt2e(prepared)


def qat(model: torch.nn.Module, x: np.ndarray, y: np.ndarray) -> torch.fx.GraphModule:
    from torchao.quantization.pt2e import move_exported_model_to_eval
    from torchao.quantization.pt2e.quantize_pt2e import convert_pt2e, prepare_qat_pt2e

    model.train()
    prepared = prepare_qat_pt2e(exported(model, torch.from_numpy(x[:4])), quantizer(is_qat=True))
    opt = torch.optim.SGD(prepared.parameters(), lr=1e-3, momentum=0.9)
    xt, yt = torch.from_numpy(x), torch.from_numpy(y)
    gen = torch.Generator().manual_seed(SEED)
    for epoch in range(QAT_EPOCHS):
        perm = torch.randperm(len(xt), generator=gen)
        total = 0.0
        for i in range(0, len(xt), 32):
            idx = perm[i : i + 32]
            opt.zero_grad()
            loss = torch.nn.functional.cross_entropy(prepared(xt[idx]), yt[idx])
            loss.backward()
            opt.step()
            total += loss.item() * len(idx)
        print(f"QAT epoch {epoch + 1}: training loss {total / len(xt):.4f}")
    move_exported_model_to_eval(prepared)
    return convert_pt2e(prepared)


def export_onnx(model: torch.fx.GraphModule, example: np.ndarray, path: str) -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        program = torch.onnx.export(
            model,
            (torch.from_numpy(example),),
            dynamo=True,
            input_names=["image"],
            output_names=["logits"],
            dynamic_shapes=({0: torch.export.Dim("batch")},),
            verbose=False,
        )
    program.save(path)
    onnx.checker.check_model(onnx.load(path), full_check=True)


def accuracy(logits: np.ndarray, labels: np.ndarray) -> float:
    return float((logits.argmax(1) == labels).mean())


def evaluate(name: str, model: torch.fx.GraphModule, path: str, x: np.ndarray, y: np.ndarray) -> dict:
    with torch.no_grad():
        eager = model(torch.from_numpy(x)).numpy()
    import torch._inductor.config as inductor_config

    inductor_config.freezing = True
    with torch.no_grad():
        compiled = torch.compile(model)(torch.from_numpy(x)).numpy()
    sess = ort.InferenceSession(path, providers=["CPUExecutionProvider"])
    ort_logits = sess.run(["logits"], {"image": x})[0]
    m = onnx.load(path)
    ops: dict[str, int] = {}
    for node in m.graph.node:
        ops[node.op_type] = ops.get(node.op_type, 0) + 1
    info = {
        "model": os.path.basename(path),
        "held_back_images": len(y),
        "torch_eager_accuracy": accuracy(eager, y),
        "torch_inductor_accuracy": accuracy(compiled, y),
        "onnxruntime_accuracy": accuracy(ort_logits, y),
        "max_abs_logit_diff_eager_vs_inductor": float(np.abs(eager - compiled).max()),
        "onnx_ops": ops,
    }
    print(f"{name}: PyTorch eager {info['torch_eager_accuracy'] * 100:.2f}%, "
          f"Inductor {info['torch_inductor_accuracy'] * 100:.2f}%, "
          f"ONNX Runtime on {info['model']} {info['onnxruntime_accuracy'] * 100:.2f}%")
    return info


def main() -> int:
    start = time.monotonic()
    seed_everything(SEED)
    x_train, x_test, y_train, y_test = load_split()
    calib = np.load(os.path.join(HERE, "digits_calib_images.npy"))
    with torch.no_grad():
        fp32 = accuracy(load_fp32_model()(torch.from_numpy(x_test)).numpy(), y_test)
    print(f"FP32 (digits.onnx): {fp32 * 100:.2f}%")

    results = {"torch": torch.__version__, "fp32_accuracy": fp32}
    import torchao

    results["torchao"] = torchao.__version__
    ptq_path = os.path.join(HERE, "digits.pt2e.onnx")
    ptq_model = ptq(load_fp32_model(), calib)
    export_onnx(ptq_model, calib[:4], ptq_path)
    results["ptq"] = evaluate("PTQ", ptq_model, ptq_path, x_test, y_test)

    seed_everything(SEED)
    qat_path = os.path.join(HERE, "digits.qat.onnx")
    qat_model = qat(load_fp32_model(), x_train, y_train)
    export_onnx(qat_model, calib[:4], qat_path)
    results["qat"] = evaluate("QAT", qat_model, qat_path, x_test, y_test)

    with open(os.path.join(HERE, "digits_pt2e.json"), "w") as f:
        json.dump(results, f, indent=2, sort_keys=True)
        f.write("\n")
    print(f"done in {time.monotonic() - start:.1f}s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
