#!/usr/bin/env python3
"""classify.py — classify the held-back digits with a Kiln-compiled library from Python.

The Python host of the C ABI: kiln_runtime.py (ctypes + numpy, no generated glue) loads the
library, reads its inputs and outputs through introspection, and runs the images one at a
time. Prints the accuracy in the format of `kiln eval` and the median latency per image.

    kiln compile samples/models/digits.onnx -o out --name digits --input-shape image=1x1x8x8
    python3 samples/python/classify.py out/libdigits.so \\
        samples/models/digits_test_images.npy samples/models/digits_test_labels.npy
"""
import os
import sys
import time

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from kiln_runtime import KilnError, Library  # noqa: E402


def main(argv):
    if len(argv) not in (4, 5):
        print(f"usage: {argv[0]} libNAME.so IMAGES.npy LABELS.npy [NAME]", file=sys.stderr)
        return 2
    try:
        lib = Library(argv[1], name=argv[4] if len(argv) == 5 else None)
        images, labels = np.load(argv[2]), np.load(argv[3])
        (x,), (y,) = lib.inputs, lib.outputs
        if x.shape[0] != 1 or images.shape[1:] != x.shape[1:] or images.dtype != x.dtype:
            raise KilnError(f"{argv[2]}: {images.dtype}{list(images.shape)} is not N images the model "
                            f"takes one at a time ({x.element_type}{list(x.shape)})")
        if labels.shape != (images.shape[0],):
            raise KilnError(f"{argv[3]}: expected {images.shape[0]} labels in a 1-D array")
        correct, times = 0, []
        with lib.create() as model:
            for image, label in zip(images, labels):
                start = time.perf_counter()
                logits = model.run(image[None])[y.name]
                times.append(time.perf_counter() - start)
                correct += int(np.argmax(logits.reshape(-1)) == label)
    except (KilnError, OSError, ValueError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    n = len(labels)
    print(f"accuracy: {correct}/{n} = {100.0 * correct / n:.2f}%")
    print(f"median latency: {np.median(times) * 1e6:.1f} us/image ({n} runs, Kiln {lib.version}, from Python)")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
