#!/usr/bin/env python3
"""Writes the ONNX backend conformance test data for Kiln's conformance tests.

    python scripts/gen_conformance.py --out DIR

Layout, the same as onnx's own backend test data (onnx/backend/test/data):

    DIR/node/<case>/model.onnx
    DIR/node/<case>/test_data_set_<N>/input_<K>.pb    TensorProto
    DIR/node/<case>/test_data_set_<N>/output_<K>.pb   TensorProto
    DIR/node/SKIPPED.txt      <case><TAB><reason>, one a line
    DIR/node/CASES.txt        the written cases, one a line
    DIR/<name>/...            copied as-is from the onnx wheel, for name in
                              pytorch-converted, pytorch-operator, light, simple

The node cases come from onnx.backend.test.case.node.collect_testcases(), the
Python definitions that onnx's own `cmd_tools generate-data` serialises (the
wheel does not ship the serialised node cases). Unlike generate-data, a case
with an input or output that is not a plain tensor (sequence, optional, map,
sparse tensor) is not written but listed in SKIPPED.txt: Kiln compiles tensor
graphs only.
"""
from __future__ import annotations

import argparse
import os
import shutil
import sys
import time
import warnings

import numpy as np

import onnx
from onnx import TensorProto, numpy_helper
from onnx.backend.test.case import node as node_cases

COPIED_DATA_DIRS = ("pytorch-converted", "pytorch-operator", "light", "simple")


def _non_tensor_kind(value_info: onnx.ValueInfoProto) -> str | None:
    """None for a tensor-typed graph input/output, else a word for its kind."""
    kind = value_info.type.WhichOneof("value")
    if kind == "tensor_type":
        return None
    return {
        "sequence_type": "sequence",
        "optional_type": "optional",
        "map_type": "map",
        "sparse_tensor_type": "sparse tensor",
        None: "untyped",
    }.get(kind, kind)


def _to_tensor_proto(value, name: str) -> TensorProto:
    if isinstance(value, TensorProto):
        t = TensorProto()
        t.CopyFrom(value)
        if not t.name:
            t.name = name
        return t
    if not isinstance(value, (np.ndarray, np.generic)):
        raise TypeError(f"value of {name!r} is a {type(value).__name__}, not an array")
    return numpy_helper.from_array(np.asarray(value), name)


def _serialize_case(case) -> list[tuple[str, bytes]] | str:
    """The files of one case as (relative path, bytes), or a reason to skip it."""
    model = case.model
    graph = model.graph
    for role, infos in (("input", graph.input), ("output", graph.output)):
        for vi in infos:
            kind = _non_tensor_kind(vi)
            if kind is not None:
                return f"{role} {vi.name!r} is a {kind}"
    files = [("model.onnx", model.SerializeToString())]
    for i, (inputs, outputs) in enumerate(case.data_sets):
        if len(inputs) != len(graph.input) or len(outputs) != len(graph.output):
            return (
                f"data set {i} has {len(inputs)} inputs / {len(outputs)} outputs, "
                f"graph has {len(graph.input)} / {len(graph.output)}"
            )
        for role, values, infos in (
            ("input", inputs, graph.input),
            ("output", outputs, graph.output),
        ):
            for k, (value, vi) in enumerate(zip(values, infos)):
                try:
                    proto = _to_tensor_proto(value, vi.name)
                except Exception as e:  # noqa: BLE001 - reason goes to SKIPPED.txt
                    return f"{role} {vi.name!r} does not serialise: {e}"
                files.append(
                    (f"test_data_set_{i}/{role}_{k}.pb", proto.SerializeToString())
                )
    return files


def write_node_cases(out: str) -> tuple[int, int]:
    node_dir = os.path.join(out, "node")
    os.makedirs(node_dir, exist_ok=True)
    # The case definitions compute expected outputs with numpy and provoke
    # overflow / divide-by-zero warnings on purpose (inf, nan cases).
    with warnings.catch_warnings(), np.errstate(all="ignore"):
        warnings.simplefilter("ignore")
        cases = sorted(node_cases.collect_testcases(), key=lambda c: c.name)
    written: list[str] = []
    skipped: list[tuple[str, str]] = []
    for case in cases:
        result = _serialize_case(case)
        if isinstance(result, str):
            skipped.append((case.name, result))
            continue
        case_dir = os.path.join(node_dir, case.name)
        for rel, data in result:
            path = os.path.join(case_dir, rel)
            os.makedirs(os.path.dirname(path), exist_ok=True)
            with open(path, "wb") as f:
                f.write(data)
        written.append(case.name)
    with open(os.path.join(node_dir, "CASES.txt"), "w") as f:
        f.writelines(name + "\n" for name in written)
    with open(os.path.join(node_dir, "SKIPPED.txt"), "w") as f:
        f.writelines(f"{name}\t{reason}\n" for name, reason in skipped)
    return len(written), len(skipped)


def copy_wheel_data(out: str) -> dict[str, int]:
    data_dir = os.path.join(os.path.dirname(onnx.__file__), "backend", "test", "data")
    counts = {}
    for name in COPIED_DATA_DIRS:
        src = os.path.join(data_dir, name)
        if not os.path.isdir(src):
            continue
        dst = os.path.join(out, name)
        if os.path.exists(dst):
            shutil.rmtree(dst)
        shutil.copytree(src, dst)
        counts[name] = len(os.listdir(dst))
    return counts


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", required=True, help="output directory")
    args = parser.parse_args()
    start = time.monotonic()
    os.makedirs(args.out, exist_ok=True)
    n_written, n_skipped = write_node_cases(args.out)
    copied = copy_wheel_data(args.out)
    with open(os.path.join(args.out, "ONNX_VERSION"), "w") as f:
        f.write(onnx.__version__ + "\n")
    copied_text = ", ".join(f"{k}: {v}" for k, v in copied.items()) or "none"
    print(
        f"gen_conformance: onnx {onnx.__version__}: {n_written} node cases written, "
        f"{n_skipped} skipped (node/SKIPPED.txt); copied from the wheel: {copied_text}; "
        f"{time.monotonic() - start:.1f}s -> {args.out}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
