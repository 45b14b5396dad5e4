#!/usr/bin/env python3
"""Trains Kiln's sample CNN on scikit-learn's bundled digits and exports it to ONNX.

    source scripts/lib.sh; ensure_torch_venv
    $KILN_TORCH_PY samples/models/train_digits.py

Writes, next to this script:
    digits.onnx                 the model, opset 17, input "image" [batch,1,8,8]
                                float32 (pixels / 16, in 0..1), output "logits" [batch,10]
    digits_test_images.npy      float32 (N,1,8,8): the held-back 20%, never trained on
    digits_test_labels.npy      int64 (N,)
    digits_calib_images.npy     float32 (128,1,8,8): training images, for calibrating
                                quantization (never the held-back ones)
    README.md

Deterministic: fixed seeds, a fixed stratified split, single-threaded torch.
"""
from __future__ import annotations

import os
import random
import sys
import time
import warnings

import numpy as np
import onnx
import onnxruntime as ort
import torch
from sklearn.datasets import load_digits
from sklearn.model_selection import train_test_split
from torch import nn

HERE = os.path.dirname(os.path.abspath(__file__))
SEED = 0
EPOCHS = 30
BATCH = 32
CALIB_COUNT = 128


class DigitsCNN(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv2d(1, 16, 3, padding=1),
            nn.BatchNorm2d(16),
            nn.ReLU(),
            nn.Conv2d(16, 32, 3, padding=1),
            nn.BatchNorm2d(32),
            nn.ReLU(),
            nn.MaxPool2d(2),  # 8x8 -> 4x4
            nn.Conv2d(32, 32, 3, padding=1),
            nn.BatchNorm2d(32),
            nn.ReLU(),
            nn.AvgPool2d(2),  # 4x4 -> 2x2
        )
        self.classifier = nn.Sequential(
            nn.Flatten(),
            nn.Linear(32 * 2 * 2, 64),
            nn.ReLU(),
            nn.Linear(64, 10),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.features(x))


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)
    torch.set_num_threads(1)
    torch.use_deterministic_algorithms(True)


def load_split():
    digits = load_digits()
    x = (digits.data.astype(np.float32) / 16.0).reshape(-1, 1, 8, 8)
    y = digits.target.astype(np.int64)
    x_train, x_test, y_train, y_test = train_test_split(
        x, y, test_size=0.2, stratify=y, random_state=SEED
    )
    return (
        np.ascontiguousarray(x_train),
        np.ascontiguousarray(x_test),
        np.ascontiguousarray(y_train),
        np.ascontiguousarray(y_test),
    )


def train(model: nn.Module, x: np.ndarray, y: np.ndarray) -> None:
    xt, yt = torch.from_numpy(x), torch.from_numpy(y)
    opt = torch.optim.Adam(model.parameters(), lr=3e-3, weight_decay=1e-4)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=EPOCHS)
    loss_fn = nn.CrossEntropyLoss()
    gen = torch.Generator().manual_seed(SEED)
    model.train()
    for epoch in range(EPOCHS):
        perm = torch.randperm(len(xt), generator=gen)
        total = 0.0
        for i in range(0, len(xt), BATCH):
            idx = perm[i : i + BATCH]
            opt.zero_grad()
            loss = loss_fn(model(xt[idx]), yt[idx])
            loss.backward()
            opt.step()
            total += loss.item() * len(idx)
        sched.step()
        if epoch % 10 == 9 or epoch == EPOCHS - 1:
            print(f"epoch {epoch + 1:2d}: training loss {total / len(xt):.4f}")


def export(model: nn.Module, path: str) -> None:
    model.eval()
    with warnings.catch_warnings():
        # The legacy exporter warns that it is deprecated, and that constant
        # folding in PRESERVE mode could alter parameters of a model in
        # training mode; this one is in eval mode.
        warnings.simplefilter("ignore", DeprecationWarning)
        warnings.simplefilter("ignore", UserWarning)
        torch.onnx.export(
            model,
            (torch.zeros(1, 1, 8, 8),),
            path,
            opset_version=17,
            dynamo=False,
            input_names=["image"],
            output_names=["logits"],
            dynamic_axes={"image": {0: "batch"}, "logits": {0: "batch"}},
            do_constant_folding=True,
            # PRESERVE exports the eval-mode model as it is, so the
            # BatchNormalization nodes stay in the graph for Kiln to fold;
            # the default (EVAL) would fold them into the convolutions.
            training=torch.onnx.TrainingMode.PRESERVE,
        )
    onnx.checker.check_model(onnx.load(path), full_check=True)


def write_readme(path: str, info: dict) -> None:
    text = f"""# Sample model: digits CNN

`digits.onnx` is a small convolutional network that classifies scikit-learn's
bundled 8x8 handwritten digits (`sklearn.datasets.load_digits`, 1797 images,
pixel values 0..16). It is Kiln's end-to-end sample: real trained weights, a
real held-back test set, small enough to compile and run in seconds.

- Input `image`: float32 `[batch, 1, 8, 8]`, pixels divided by 16 (0..1).
- Output `logits`: float32 `[batch, 10]`; the predicted digit is the argmax.
- Graph: ONNX opset {info['opset']}, {info['size_kb']:.0f} KB, {info['params']} parameters,
  ops: {info['ops']}.
  The BatchNormalization nodes are left in the graph (exported with
  `training=TrainingMode.PRESERVE` from an eval-mode model), not folded by the
  exporter.
- Architecture: Conv(1->16, 3x3) BN ReLU, Conv(16->32, 3x3) BN ReLU, MaxPool 2,
  Conv(32->32, 3x3) BN ReLU, AvgPool 2, Flatten, Linear(128->64) ReLU, Linear(64->10).

## Training

PyTorch {info['torch']} on CPU, {EPOCHS} epochs of Adam (lr 3e-3, cosine schedule,
batch {BATCH}) on a fixed stratified 80% split (`train_test_split(test_size=0.2,
stratify=y, random_state={SEED})`); seeds fixed, deterministic algorithms, one thread.
The other 20% ({info['n_test']} images) is held back and never trained on.

Held-back accuracy, measured by running `digits.onnx` in ONNX Runtime
{info['ort']}: **{info['ort_acc'] * 100:.2f}%** ({info['ort_correct']}/{info['n_test']}).
PyTorch's own accuracy on the same images: {info['torch_acc'] * 100:.2f}%;
largest |logit difference| PyTorch vs ONNX Runtime: {info['max_diff']:.2e}.

## Files

- `digits.onnx` — the model.
- `digits_test_images.npy` — float32 `(N, 1, 8, 8)`, C order: the held-back images.
- `digits_test_labels.npy` — int64 `(N,)`: their labels.
- `digits_calib_images.npy` — float32 `({CALIB_COUNT}, 1, 8, 8)`: training images, for
  calibrating quantization (never the held-back ones).
- `train_digits.py` — the script that wrote all of the above.

## Regenerate

```sh
source scripts/lib.sh; ensure_torch_venv
$KILN_TORCH_PY samples/models/train_digits.py
```

## Quantized by PyTorch (PT2E)

`quantize_digits_pt2e.py` quantizes `digits.onnx`'s model (its weights loaded back
into the same `nn.Module`) with PyTorch's PT2E flow and torchao's
`X86InductorQuantizer` (the recipe of PyTorch's Inductor CPU backend: u8
activations per tensor, s8 weights per output channel, FP32 bias), and exports
each result with `torch.onnx.export(..., dynamo=True)` (opset 20):

- `digits.pt2e.onnx` — post-training quantization, calibrated on
  `digits_calib_images.npy`;
- `digits.qat.onnx` — quantization-aware training, three epochs of fine-tuning
  on the training split;
- `digits_pt2e.json` — PyTorch's own held-back accuracy of each (eager and
  compiled by Inductor), and ONNX Runtime's on the exported file.

The exporter writes plain QDQ: DequantizeLinear of s8 initializers (axis 0) for
the weights and QuantizeLinear → DequantizeLinear pairs (u8, per tensor) on the
activations; BatchNormalization is folded into the convolutions. Kiln compiles
both with every conv and Gemm int8, and a test holds Kiln's held-back accuracy
to PyTorch's within 0.3 points.

```sh
source scripts/lib.sh; ensure_torch_venv
$KILN_TORCH_PY samples/models/quantize_digits_pt2e.py
```
"""
    with open(path, "w") as f:
        f.write(text)


def main() -> int:
    start = time.monotonic()
    seed_everything(SEED)
    x_train, x_test, y_train, y_test = load_split()
    print(f"digits: {len(x_train)} training images, {len(x_test)} held back")

    model = DigitsCNN()
    train(model, x_train, y_train)
    model.eval()
    with torch.no_grad():
        torch_logits = model(torch.from_numpy(x_test)).numpy()
    torch_acc = float((torch_logits.argmax(1) == y_test).mean())

    onnx_path = os.path.join(HERE, "digits.onnx")
    export(model, onnx_path)
    np.save(os.path.join(HERE, "digits_test_images.npy"), x_test.astype(np.float32))
    np.save(os.path.join(HERE, "digits_test_labels.npy"), y_test.astype(np.int64))
    np.save(
        os.path.join(HERE, "digits_calib_images.npy"),
        np.ascontiguousarray(x_train[:CALIB_COUNT], dtype=np.float32),
    )

    sess = ort.InferenceSession(onnx_path, providers=["CPUExecutionProvider"])
    ort_logits = sess.run(["logits"], {"image": x_test})[0]
    ort_pred = ort_logits.argmax(1)
    ort_correct = int((ort_pred == y_test).sum())
    ort_acc = ort_correct / len(y_test)
    max_diff = float(np.abs(ort_logits - torch_logits).max())

    m = onnx.load(onnx_path)
    ops: dict[str, int] = {}
    for node in m.graph.node:
        ops[node.op_type] = ops.get(node.op_type, 0) + 1
    ops_text = ", ".join(f"{k} x{v}" if v > 1 else k for k, v in ops.items())
    info = {
        "opset": m.opset_import[0].version,
        "size_kb": os.path.getsize(onnx_path) / 1024,
        "params": sum(p.numel() for p in model.parameters()),
        "ops": ops_text,
        "torch": torch.__version__,
        "ort": ort.__version__,
        "n_test": len(y_test),
        "ort_acc": ort_acc,
        "ort_correct": ort_correct,
        "torch_acc": torch_acc,
        "max_diff": max_diff,
    }
    write_readme(os.path.join(HERE, "README.md"), info)

    print(f"ops: {ops_text}")
    print(f"digits.onnx: {info['size_kb']:.0f} KB, {info['params']} parameters")
    print(f"held-back accuracy: PyTorch {torch_acc * 100:.2f}%, "
          f"ONNX Runtime {ort_acc * 100:.2f}% ({ort_correct}/{len(y_test)}); "
          f"max |logit diff| {max_diff:.2e}")
    print(f"done in {time.monotonic() - start:.1f}s")
    if ort_acc < 0.95:
        print("error: held-back accuracy below 95%", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
