#!/usr/bin/env python3
"""Writes a model whose weights take BYTES bytes, for Kiln's limit tests: a chain of LAYERS
MatMuls y = x · W1 · W2 ... with W_k of K×K f32 (K chosen so that the weights sum to BYTES),
stored as external data (big.onnx + big.data, as exporters write models over 2 GB), with an
input x.npy and the expected output expected.npy (computed in float64).

    big_model.py OUTDIR --bytes 268435456 --layers 1
"""
import argparse
import math
import os

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("out")
    ap.add_argument("--bytes", type=int, required=True)
    ap.add_argument("--layers", type=int, default=1)
    a = ap.parse_args()
    k = int(math.sqrt(a.bytes / 4 / a.layers))
    k -= k % 16
    os.makedirs(a.out, exist_ok=True)
    rng = np.random.default_rng(7)
    x = rng.standard_normal((1, k)).astype(np.float32)
    inits, nodes, expected = [], [], x.astype(np.float64)
    prev = "x"
    for i in range(a.layers):
        w = (rng.standard_normal((k, k), dtype=np.float32) / np.float32(math.sqrt(k))).astype(np.float32)
        expected = expected @ w.astype(np.float64)
        inits.append(numpy_helper.from_array(w, name=f"w{i}"))
        y = "y" if i == a.layers - 1 else f"h{i}"
        nodes.append(helper.make_node("MatMul", [prev, f"w{i}"], [y], name=f"matmul{i}"))
        prev = y
    graph = helper.make_graph(nodes, "big", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, k])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, k])], inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.save_model(model, os.path.join(a.out, "big.onnx"), save_as_external_data=True, all_tensors_to_one_file=True,
                    location="big.data", size_threshold=0)
    np.save(os.path.join(a.out, "x.npy"), x)
    np.save(os.path.join(a.out, "expected.npy"), expected.astype(np.float32))
    print(f"big model: {a.layers} MatMul of {k}x{k} f32, {a.layers * k * k * 4} bytes of weights in {a.out}")


if __name__ == "__main__":
    main()
