#!/usr/bin/env python3
"""Kiln's RNN, GRU and LSTM against ONNX Runtime's, over their attributes.

    recurrent.py [--kiln PATH] [--work DIR] [--seed S]

One graph of 36 nodes: each of RNN, GRU and LSTM, forward, reverse and bidirectional, with and
without sequence_lens (one entry full, one shorter, one empty) and clip, and across the nodes
non-default activations (with their alpha and beta), linear_before_reset, input_forget,
peepholes and initial states. ONNX's conformance cases cover the defaults and layout 1 (which
ONNX Runtime refuses); these cover what they leave out. Kiln runs the graph through its
reference interpreter (`kiln eval`) and compiled; every output must agree with ONNX Runtime's
within 1e-5 absolute (the values are within ±1 and sums of a few dozen products).

Exit status 1 on any disagreement.
"""
import argparse
import os
import subprocess
import sys
import tempfile

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
GATES = {"RNN": 1, "GRU": 3, "LSTM": 4}
ACTIVATIONS = {"RNN": ["Relu"], "GRU": ["HardSigmoid", "LeakyRelu"], "LSTM": ["HardSigmoid", "Tanh", "LeakyRelu"]}


def build(rng, seq=5, batch=3, inputs=3, hidden=4):
    nodes, graph_inputs, outputs, inits, feeds, described = [], [], [], [], {}, []
    k = 0
    for kind in ["RNN", "GRU", "LSTM"]:
        for direction in ["forward", "reverse", "bidirectional"]:
            for lens in [None, [seq, 3, 0]]:
                for clip in [None, 0.7]:
                    k += 1
                    p = f"n{k}_"
                    g, d = GATES[kind], 2 if direction == "bidirectional" else 1
                    x = rng.normal(0, 1, (seq, batch, inputs)).astype(np.float32)
                    feeds[p + "X"] = x
                    graph_inputs.append(helper.make_tensor_value_info(p + "X", TensorProto.FLOAT, list(x.shape)))
                    inits += [numpy_helper.from_array(rng.normal(0, 0.5, s).astype(np.float32), p + n)
                              for n, s in [("W", (d, g * hidden, inputs)), ("R", (d, g * hidden, hidden)), ("B", (d, 2 * g * hidden))]]
                    ins = [p + "X", p + "W", p + "R", p + "B"]
                    if lens is not None:
                        feeds[p + "L"] = np.array(lens, np.int32)
                        graph_inputs.append(helper.make_tensor_value_info(p + "L", TensorProto.INT32, [batch]))
                    ins.append(p + "L" if lens is not None else "")
                    initial, peepholes = k % 3 != 1, kind == "LSTM" and k % 2 == 1
                    for n in (["h0", "c0"] if kind == "LSTM" else ["h0"]):
                        if initial:
                            inits.append(numpy_helper.from_array(rng.normal(0, 1, (d, batch, hidden)).astype(np.float32), p + n))
                        ins.append(p + n if initial else "")
                    if peepholes:
                        inits.append(numpy_helper.from_array(rng.normal(0, 0.5, (d, 3 * hidden)).astype(np.float32), p + "P"))
                        ins.append(p + "P")
                    while ins and ins[-1] == "":
                        ins.pop()
                    attrs = {"hidden_size": hidden, "direction": direction}
                    if clip:
                        attrs["clip"] = clip
                    if k % 3 == 0:
                        attrs["activations"] = ACTIVATIONS[kind] * d
                        attrs["activation_alpha"] = [0.3, 0.05] * d
                        attrs["activation_beta"] = [0.45] * d
                    if kind == "GRU" and k % 2 == 0:
                        attrs["linear_before_reset"] = 1
                    if kind == "LSTM" and k % 4 == 0:
                        attrs["input_forget"] = 1
                    outs = [p + o for o in (["Y", "Y_h", "Y_c"] if kind == "LSTM" else ["Y", "Y_h"])]
                    nodes.append(helper.make_node(kind, ins, outs, name=p + kind, **attrs))
                    outputs += [helper.make_tensor_value_info(o, TensorProto.FLOAT, None) for o in outs]
                    described.append(f"{p}{kind} {direction} lens={lens} clip={clip} {attrs}")
    model = helper.make_model(helper.make_graph(nodes, "recurrent", graph_inputs, outputs, inits),
                              opset_imports=[helper.make_opsetid("", 14)])
    model.ir_version = 8
    return model, feeds, described


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--kiln", default=os.environ.get("KILN_BIN", os.path.join(ROOT, ".build/release/kiln")))
    ap.add_argument("--work")
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    import onnxruntime as ort

    work = args.work or tempfile.mkdtemp(prefix="kiln-recurrent-")
    model, feeds, described = build(np.random.default_rng(args.seed))
    path = os.path.join(work, "recurrent.onnx")
    onnx.save(model, path)
    names = [o.name for o in model.graph.output]
    want = dict(zip(names, ort.InferenceSession(path, providers=["CPUExecutionProvider"]).run(None, feeds)))
    files = []
    for k, v in feeds.items():
        f = os.path.join(work, k + ".npy")
        np.save(f, v)
        files += ["--input", f"{k}={f}"]
    failures, checked = [], 0
    for mode in ("eval", "compiled"):
        out = os.path.join(work, "out_" + mode)
        if mode == "eval":
            r = subprocess.run([args.kiln, "eval", path] + files + ["-o", out], capture_output=True, text=True)
        else:
            lib = os.path.join(work, "lib")
            r = subprocess.run([args.kiln, "compile", path, "-o", lib, "--name", "recurrent", "--library", "shared"], capture_output=True, text=True)
            if r.returncode == 0:
                r = subprocess.run([args.kiln, "run", os.path.join(lib, "librecurrent.so")] + files + ["-o", out], capture_output=True, text=True)
        if r.returncode != 0:
            failures.append(f"{mode}: {(r.stderr.strip().splitlines() or ['?'])[-1][:300]}")
            continue
        for n in names:
            got = np.load(os.path.join(out, n + ".npy"))
            checked += 1
            if got.shape != want[n].shape:
                failures.append(f"{mode}: {n}: shape {got.shape}, expected {want[n].shape}")
            elif not np.abs(got - want[n]).max() <= 1e-5:
                node = next(d for d in described if d.startswith(n.split("_")[0] + "_"))
                failures.append(f"{mode}: {n}: |diff| {np.abs(got - want[n]).max():.3g} ({node})")
    for f in failures:
        print(f"FAIL {f}")
    print(f"recurrent difftest: {len(described)} nodes, {checked - len(failures)} passed, {len(failures)} failed")
    sys.exit(1 if failures else 0)


if __name__ == "__main__":
    main()
