#!/usr/bin/env python3
"""Kiln differential tester: seeded random ONNX graphs and a greedy shrinker.

    difftest.py gen --seed S --count N --out DIR      # N cases DIR/s<S>_<k>/ (k = 0..N-1)
    difftest.py gen --seed S --first F --count N ...   # cases F .. F+N-1
    difftest.py gen --seed S --index K --out DIR      # just case k = K
    difftest.py shrink CASE --out OUT --check "kiln conformance {case}"

Every case is an ONNX backend-test folder: model.onnx, test_data_set_0/input_<i>.pb,
test_data_set_0/output_<j>.pb and case.json (seed, index, ops, oracle, note).

Expected outputs come from ONNX Runtime (CPU, graph optimizations off, one thread) when it
agrees with onnx.reference (per output: max|a-b| <= 1e-4*max|b| + 1e-5). Where they disagree,
onnx.reference decides only when the first node where they part is one of ONNX Runtime's known
departures from the spec (known_ort_departure: Resize from `scales` with pytorch_half_pixel or
align_corners and a non-integer size × scale; pooling with auto_pad SAME_* and dilations != 1),
noted in case.json; any other disagreement leaves no trustworthy oracle and the graph is redrawn
(seen: nearest Resize whose source coordinate is exactly an integer, which onnx.reference
computes in double as 2.9999999999999996 and floors to the wrong pixel). onnx.reference 1.23 is itself wrong for MaxPool/AveragePool with asymmetric
pads, GlobalMaxPool on non-4-D inputs and grouped ConvTranspose; those four kernels are replaced
by spec-following ones (see _reference_overrides). Graphs on which an oracle throws or yields
NaN/inf, or that break the margin rule below, are redrawn from a sub-seed ("attempt" in
case.json), so `gen` always writes exactly N cases and a case is reproducible from (seed, index)
alone.

Comparisons (Less, Greater, LessOrEqual, GreaterOrEqual, Equal) feed And/Or/Xor/Not and then
Where; Mod is fmod=1 on floats (fmod=0 is integer-only before opset 28: ONNX Runtime refuses it
for floats) and fmod=0 on Size's int64 result. A bool flipped by rounding noise would be a false
failure, so comparison operands are bit-exact values (graph inputs, data movement, Relu/Abs/Max/
Floor of exact values, Floor(x*4)) or constants, and where an operand is not bit-exact (see
exact_values) the margin rule (fragile) redraws the graph unless every element is further than
1e-4*max|v| + 1e-5 (the oracle agreement tolerance) from the other side; the same holds for Mod's
dividend against multiples of the divisor and for Floor/Ceil of an inexact value (which only the
shrinker makes).

Graph shapes the generator stays away from because the oracles, or the spec and ONNX Runtime,
disagree about them in ways that are not Kiln's business: Conv with auto_pad SAME_* and
dilations != 1 (ONNX Runtime refuses it), pooling windows that hold no input element or SAME
padding that would be negative, ceil_mode windows that start past the input (ONNX shape
inference keeps them, ONNX Runtime and PyTorch drop them), kernels larger than the padded input,
cubic Resize with pytorch_half_pixel to a length of 1 (onnx.reference uses x_original = -0.5,
the spec 0).

Shrinking (`shrink`) is greedy: candidates are one value as the only output, an output cut
back to an earlier value, an output dropped, a node bypassed (its output replaced by a
same-shaped input), and a value turned into a graph input holding the value it had; dead
nodes, inputs and initializers are pruned; smallest candidates are tried first; the first
one that still fails the check is taken, until none does.

Library use:
    from difftest import generate, oracle, make_case
    model, inputs = generate(seed, index)            # one draw (attempt 0), checked model
    outputs, name, note = oracle(model, inputs)      # raises OracleError
    model, inputs, outputs, name, note, attempt = make_case(seed, index)
"""

import argparse
import collections
import json
import math
import os
import shlex
import shutil
import subprocess
import sys
import tempfile
import time

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper, shape_inference

OPSET = 17
IR_VERSION = 8
FLOAT = TensorProto.FLOAT
BOOL = TensorProto.BOOL
CHANNELS = [1, 2, 3, 4, 5, 7, 8, 12, 16, 24, 32]
# Weights for CHANNELS: 16 and 32 often, so that Winograd-eligible convs (Cin, Cout % 16 == 0) appear.
CHANNEL_W = [3, 3, 3, 4, 2, 3, 5, 3, 15, 3, 11]
MAX_ATTEMPTS = 200


class Reject(Exception):
    """A drawn op does not fit (shape inference fails, a size < 1, ...): roll back, draw again."""


class OracleError(Exception):
    """An oracle threw, or an output is not finite: the graph is redrawn."""


# --------------------------------------------------------------------------------------------
# Graph builder
# --------------------------------------------------------------------------------------------

class Val:
    __slots__ = ("name", "shape", "dtype", "nonneg", "ge1", "bounded", "exact", "is_input")

    def __init__(self, name, shape, dtype=FLOAT, nonneg=False, ge1=False, bounded=False,
                 exact=False, is_input=False):
        self.name = name
        self.shape = tuple(int(d) for d in shape)
        self.dtype = dtype
        self.nonneg = nonneg or ge1        # >= 0
        self.ge1 = ge1                     # >= 1 (Abs(x)+1 style guard)
        self.bounded = bounded             # |x| <= ~1.5 (Sigmoid, Tanh, ...): Exp is safe
        self.exact = exact                 # bit-exact everywhere (inputs through data movement,
        self.is_input = is_input           # Relu, Abs, Max, MaxPool, Floor): Floor/Equal are safe

    @property
    def rank(self):
        return len(self.shape)


def r4(v):
    return v.rank == 4


class Builder:
    def __init__(self, rng):
        self.rng = rng
        self.nodes = []
        self.inits = {}            # name -> TensorProto
        self.vals = {}             # name -> Val (graph inputs and node outputs)
        self.pool = []             # float values usable as operands, in creation order
        self.inputs = []
        self.marked = []           # values chosen to be graph outputs during generation
        self.cid = 0
        self.vid = 0
        self.target = 0

    # ---- bookkeeping ----
    def snapshot(self):
        return (list(self.nodes), dict(self.inits), dict(self.vals), list(self.pool), list(self.marked))

    def restore(self, s):
        self.nodes, self.inits, self.vals, self.pool, self.marked = (
            list(s[0]), dict(s[1]), dict(s[2]), list(s[3]), list(s[4]))

    def remaining(self):
        return self.target - len(self.nodes)

    def dangling(self):
        """Values (other than the newest node's) that no node reads."""
        cons = self.consumed()
        return sum(1 for n in self.nodes[:-1] if not any(o in cons for o in n.output))

    def consumed(self):
        return {i for n in self.nodes for i in n.input if i}

    # ---- random helpers ----
    def r(self):
        return float(self.rng.random())

    def ri(self, lo, hi):
        """Integer in [lo, hi] inclusive."""
        return int(self.rng.integers(lo, hi + 1))

    def choice(self, seq, p=None):
        if p is not None:
            p = np.asarray(p, dtype=np.float64)
            p = p / p.sum()
        return seq[int(self.rng.choice(len(seq), p=p))]

    def channels(self, cap=None):
        cs = [(c, w) for c, w in zip(CHANNELS, CHANNEL_W) if cap is None or c <= cap]
        return self.choice([c for c, _ in cs], [w for _, w in cs])

    def randn(self, shape, scale=1.0):
        return (self.rng.standard_normal(shape) * scale).astype(np.float32)

    # ---- constants ----
    def const(self, arr):
        name = f"c{self.cid}"
        self.cid += 1
        self.inits[name] = numpy_helper.from_array(np.asarray(arr), name)
        return name

    def fconst(self, arr):
        return self.const(np.asarray(arr, dtype=np.float32))

    def iconst(self, arr):
        return self.const(np.asarray(arr, dtype=np.int64))

    # ---- values ----
    def add_input(self, shape):
        v = Val(f"in{len(self.inputs)}", shape, exact=True, is_input=True)
        self.inputs.append(v)
        self.vals[v.name] = v
        self.pool.append(v)
        return v

    def pick(self, cond=None, prefer_unused=0.5):
        c = [v for v in self.pool if cond is None or cond(v)]
        if not c:
            return None
        cons = self.consumed()
        unused_inputs = [v for v in c if v.is_input and v.name not in cons]
        if unused_inputs and self.r() < prefer_unused:
            return unused_inputs[0]
        x = self.r()
        # values nobody reads yet first (else they end up as extra outputs or dead code), the
        # newest most often; sometimes an older value, which then has several readers
        dang = [v for v in c if v.name not in cons and not v.is_input]
        if dang and x < 0.85:
            return dang[-1] if self.r() < 0.65 else dang[self.ri(0, len(dang) - 1)]
        if x < 0.5:
            return c[-1]
        if x < 0.7:
            return c[self.ri(max(0, len(c) - 3), len(c) - 1)]
        return c[self.ri(0, len(c) - 1)]

    def pick_partner(self, cond, avoid=None):
        """A second operand: prefers values nobody reads yet (so they do not dangle)."""
        c = [v for v in self.pool if cond(v)]
        if not c:
            return None
        cons = self.consumed()
        dang = [v for v in c if v.name not in cons and (avoid is None or v.name != avoid.name)]
        if dang and self.r() < 0.7:
            return dang[self.ri(0, len(dang) - 1)]
        return c[self.ri(0, len(c) - 1)]

    # ---- nodes ----
    def node(self, op, inputs, attrs=None, nout=1, pool=True, **flags):
        names = [i.name if isinstance(i, Val) else i for i in inputs]
        outs = []
        for _ in range(nout):
            outs.append(f"v{self.vid}")
            self.vid += 1
        n = helper.make_node(op, names, outs, name=f"n{outs[0][1:]}_{op}", **(attrs or {}))
        types = self.infer(n)
        res = []
        for o, (dt, shape) in zip(outs, types):
            v = Val(o, shape, dtype=dt, **flags)
            self.vals[o] = v
            if pool and dt == FLOAT:
                self.pool.append(v)
            res.append(v)
        self.nodes.append(n)
        if len(self.nodes) > 15:
            raise Reject("too many nodes")
        return res if nout > 1 else res[0]

    def infer(self, n):
        vis, inits, seen = [], [], set()
        for nm in n.input:
            if not nm or nm in seen:
                continue
            seen.add(nm)
            if nm in self.inits:
                inits.append(self.inits[nm])
            else:
                v = self.vals[nm]
                vis.append(helper.make_tensor_value_info(nm, v.dtype, list(v.shape)))
        g = helper.make_graph([n], "g", vis, [onnx.ValueInfoProto(name=o) for o in n.output],
                              initializer=inits)
        m = helper.make_model(g, opset_imports=[helper.make_opsetid("", OPSET)], ir_version=IR_VERSION)
        try:
            inf = shape_inference.infer_shapes(m, check_type=True, strict_mode=True, data_prop=True)
        except Exception as e:  # noqa: BLE001 - any inference error means "does not fit"
            raise Reject(f"{n.op_type}: {e}")
        out = []
        for o in inf.graph.output:
            tt = o.type.tensor_type
            if not tt.HasField("shape"):
                raise Reject(f"{n.op_type}: no shape")
            dims = []
            for d in tt.shape.dim:
                if not d.HasField("dim_value") or d.dim_value < 1:
                    raise Reject(f"{n.op_type}: bad dim")
                dims.append(d.dim_value)
            if len(dims) > 5 or int(np.prod(dims)) > 8192:
                raise Reject(f"{n.op_type}: too big")
            out.append((tt.elem_type, dims))
        return out


# --------------------------------------------------------------------------------------------
# Op generators. Each adds one or more nodes (raising Reject when it does not fit) and returns
# the value the graph continues from.
# --------------------------------------------------------------------------------------------

def same_pads(k, d):
    tot = (k - 1) * d
    return tot // 2, tot - tot // 2


def g_conv(b, x=None, preserve=False, chain=True):
    x = x or b.pick(r4)
    if x is None:
        raise Reject("no 4-D value")
    N, C, H, W = x.shape
    group, cout = 1, None
    r = b.r()
    if C > 1 and r < 0.2:                       # depthwise (multiplier 1, sometimes 2)
        group = C
        cout = C if (preserve or b.r() < 0.75) else 2 * C
    elif C >= 4 and r < 0.32:                   # grouped
        gs = [g for g in (2, 3, 4, 8) if C % g == 0 and g < C]
        if gs:
            group = b.choice(gs)
            if preserve:
                cout = C
            else:
                cs = [c for c in CHANNELS if c % group == 0]
                cout = b.choice(cs)
    if cout is None:
        if preserve:
            cout = C
        elif C % 16 == 0 and b.r() < 0.65:       # Winograd-eligible channel counts stay common
            cout = b.choice([16, 32, C])
        else:
            cout = b.channels()
    if C * cout > 32 * 32:
        raise Reject("too wide")
    # kernel
    kh = b.choice([1, 3, 5, 2], [3, 5, 1.2, 0.6])
    kw = kh
    if b.r() < 0.12:
        kh, kw = b.choice([(1, 3), (3, 1), (1, 5), (5, 1), (3, 5), (2, 3)])
    if preserve and (kh % 2 == 0 or kw % 2 == 0):
        kh, kw = 3, 3
    stride = 1 if (preserve or b.r() < 0.75) else 2
    sh, sw = stride, stride
    if not preserve and b.r() < 0.05:
        sh, sw = 1, 2
    dil = 2 if b.r() < 0.15 else 1
    attrs = {}
    pm = b.r()
    if preserve:
        if pm < 0.7 or dil != 1:
            ph, pw = same_pads(kh, dil), same_pads(kw, dil)
            attrs["pads"] = [ph[0], pw[0], ph[1], pw[1]]
        else:
            attrs["auto_pad"] = b.choice(["SAME_UPPER", "SAME_LOWER"])
    else:
        if pm < 0.35:
            ph, pw = same_pads(kh, dil), same_pads(kw, dil)
            attrs["pads"] = [ph[0], pw[0], ph[1], pw[1]]
        elif pm < 0.5:
            attrs["pads"] = [0, 0, 0, 0] if b.r() < 0.5 else None
            if attrs["pads"] is None:
                del attrs["pads"]
        elif pm < 0.7:
            eh, ew = (kh - 1) * dil, (kw - 1) * dil
            attrs["pads"] = [b.ri(0, eh), b.ri(0, ew), b.ri(0, eh), b.ri(0, ew)]
        else:
            attrs["auto_pad"] = b.choice(["SAME_UPPER", "SAME_LOWER", "VALID"])
    if attrs.get("auto_pad", "").startswith("SAME"):
        dil = 1                      # ONNX Runtime: "Dilation not supported for AutoPadType::SAME_*"
    p = attrs.get("pads", [0, 0, 0, 0])
    if attrs.get("auto_pad") != "SAME_UPPER" and attrs.get("auto_pad") != "SAME_LOWER":
        if H + p[0] + p[2] < (kh - 1) * dil + 1 or W + p[1] + p[3] < (kw - 1) * dil + 1:
            raise Reject("kernel larger than the padded input")
    attrs["kernel_shape"] = [kh, kw]
    if (sh, sw) != (1, 1) or b.r() < 0.3:
        attrs["strides"] = [sh, sw]
    if dil != 1 or b.r() < 0.2:
        attrs["dilations"] = [dil, dil]
    if group != 1 or b.r() < 0.1:
        attrs["group"] = group
    fan_in = (C // group) * kh * kw
    w = b.fconst(b.randn([cout, C // group, kh, kw], 1.0 / math.sqrt(fan_in)))
    ins = [x, w]
    if b.r() < 0.7:
        ins.append(b.fconst(b.randn([cout], 0.3)))
    y = b.node("Conv", ins, attrs)
    if preserve and y.shape != x.shape:
        raise Reject("conv does not preserve")
    if chain:
        y = post_chain(b, y)
    return y


def g_conv_transpose(b):
    x = b.pick(lambda v: r4(v) and v.shape[2] * v.shape[3] <= 36 and v.shape[1] <= 16)
    if x is None:
        raise Reject("no small 4-D value")
    N, C, H, W = x.shape
    group = 1
    if C > 1 and b.r() < 0.2:
        group, cout = C, C
    else:
        cout = b.channels(cap=16)
    k = b.choice([2, 3, 4])
    s = b.choice([1, 2], [1, 2])
    d = 2 if b.r() < 0.12 else 1
    eff = (k - 1) * d + 1
    pads = [b.ri(0, min(eff - 1, k)) for _ in range(4)] if b.r() < 0.7 else [0, 0, 0, 0]
    attrs = {"kernel_shape": [k, k], "strides": [s, s], "pads": pads}
    if s > 1 and b.r() < 0.4:
        attrs["output_padding"] = [b.ri(0, s - 1), b.ri(0, s - 1)]
    if d != 1:
        attrs["dilations"] = [d, d]
    if group != 1:
        attrs["group"] = group
    w = b.fconst(b.randn([C, cout // group, k, k], s / math.sqrt((C // group) * k * k)))
    ins = [x, w]
    if b.r() < 0.6:
        ins.append(b.fconst(b.randn([cout], 0.3)))
    y = b.node("ConvTranspose", ins, attrs)
    return post_chain(b, y)


def bn(b, x):
    C = x.shape[1]
    scale = (b.rng.uniform(0.5, 1.5, C) * b.rng.choice([-1, 1], C, p=[0.15, 0.85])).astype(np.float32)
    ins = [x, b.fconst(scale), b.fconst(b.randn([C], 0.2)), b.fconst(b.randn([C], 0.2)),
           b.fconst(b.rng.uniform(0.5, 2.0, C).astype(np.float32))]
    attrs = {"epsilon": b.choice([1e-5, 1e-3])} if b.r() < 0.5 else {}
    return b.node("BatchNormalization", ins, attrs)


def g_bn(b):
    x = b.pick(lambda v: v.rank in (2, 3, 4))
    return post_chain(b, bn(b, x), allow_bn=False)


def post_chain(b, y, allow_bn=True):
    """After a Conv/Gemm/BN: BatchNormalization sometimes, then 0-3 activations."""
    if allow_bn and y.rank >= 2 and b.remaining() >= 1 and b.r() < 0.25:
        y = bn(b, y)
    if b.r() < 0.7:       # 0.62 before PRelu/Elu/Selu/Softplus joined ACTS
        n = b.choice([1, 2, 3], [6, 3, 1])
        for _ in range(n):
            if b.remaining() < 1:
                break
            y = act(b, y)
    return y


ACTS = ["Relu", "LeakyRelu", "Sigmoid", "Tanh", "HardSigmoid", "HardSwish", "Clip", "SiLU",
        "GELU", "HardSwishX", "Exp", "PRelu", "Elu", "Selu", "Softplus"]
ACT_W = [8, 3, 2.5, 2, 1.5, 2, 3.5, 2.5, 2.2, 1.5, 0.8, 2.4, 1.2, 1.1, 1.4]
ACT_COST = {"SiLU": 2, "GELU": 5, "HardSwishX": 4}


def act(b, x, kind=None):
    rem = b.remaining()
    if kind is None:
        opts = [(a, w) for a, w in zip(ACTS, ACT_W)
                if ACT_COST.get(a, 1) <= rem and (a != "Exp" or x.bounded)]
        kind = b.choice([a for a, _ in opts], [w for _, w in opts])
    ex = x.exact
    if kind == "Relu":
        return b.node("Relu", [x], nonneg=True, bounded=x.bounded, exact=ex)
    if kind == "LeakyRelu":
        return b.node("LeakyRelu", [x], {"alpha": b.choice([0.01, 0.1, 0.2, 0.3])})
    if kind == "Sigmoid":
        return b.node("Sigmoid", [x], nonneg=True, bounded=True)
    if kind == "Tanh":
        return b.node("Tanh", [x], bounded=True)
    if kind == "HardSigmoid":
        attrs = {}
        if b.r() < 0.7:
            attrs = {"alpha": b.choice([0.2, 1.0 / 6, 0.5]), "beta": b.choice([0.5, 0.3])}
        return b.node("HardSigmoid", [x], attrs, nonneg=True, bounded=True)
    if kind == "HardSwish":
        return b.node("HardSwish", [x])
    if kind == "Exp":
        return b.node("Exp", [x], nonneg=True)
    if kind == "Clip":
        lo, hi = b.choice([(0.0, 6.0), (-1.0, 1.0), (0.0, 1.0), (-0.5, 0.5), (-2.0, 3.0), (0.0, 0.5)])
        m = b.r()
        if m < 0.6:
            ins = [x, b.fconst(lo), b.fconst(hi)]
            nn, bd = lo >= 0, max(abs(lo), abs(hi)) <= 1.5
        elif m < 0.8:
            ins, nn, bd = [x, b.fconst(lo)], lo >= 0, False
        else:
            ins, nn, bd = [x, "", b.fconst(hi)], False, False
        return b.node("Clip", ins, nonneg=nn, bounded=bd, exact=ex)
    if kind == "SiLU":
        s = b.node("Sigmoid", [x], nonneg=True, bounded=True)
        return b.node("Mul", [x, s] if b.r() < 0.5 else [s, x])
    if kind == "GELU":
        if b.r() < 0.7:
            t = b.node("Div", [x, b.fconst(1.4142135)])
        else:
            t = b.node("Mul", [x, b.fconst(0.70710677)])
        e = b.node("Erf", [t], bounded=True)
        a = b.node("Add", [e, b.fconst(1.0)] if b.r() < 0.7 else [b.fconst(1.0), e], nonneg=True)
        if b.r() < 0.6:
            m = b.node("Mul", [x, a])
            return b.node("Mul", [m, b.fconst(0.5)])
        h = b.node("Mul", [b.fconst(0.5), x])
        return b.node("Mul", [h, a])
    if kind == "PRelu":
        return prelu(b, x)
    if kind == "Elu":
        attrs = {"alpha": b.choice([1.0, 0.5, 0.2, 2.0])} if b.r() < 0.6 else {}
        return b.node("Elu", [x], attrs)
    if kind == "Selu":
        attrs = {}
        if b.r() < 0.5:
            attrs = {"alpha": b.choice([1.5, 1.0, 2.0]), "gamma": b.choice([1.0, 1.2, 0.8])}
            if b.r() < 0.3:
                del attrs[b.choice(["alpha", "gamma"])]
        return b.node("Selu", [x], attrs)
    if kind == "Softplus":
        return b.node("Softplus", [x], nonneg=True)
    if kind == "HardSwishX":
        a = b.node("Add", [x, b.fconst(3.0)])
        c = b.node("Clip", [a, b.fconst(0.0), b.fconst(6.0)], nonneg=True)
        m = b.node("Mul", [x, c] if b.r() < 0.6 else [c, x])
        if b.r() < 0.7:
            return b.node("Div", [m, b.fconst(6.0)])
        return b.node("Mul", [m, b.fconst(1.0 / 6.0)])
    raise AssertionError(kind)


def slope_shape(b, s):
    """A slope shape for PRelu on a value of shape s (unidirectionally broadcastable to s)."""
    r = len(s)
    if r == 4:
        opts = [([s[1], 1, 1], 5), ([1], 2), ([1, s[1], 1, 1], 1), (list(s[1:]), 1), ([s[3]], 0.5),
                ([s[2], s[3]], 0.5), (list(s), 0.5), ([], 0.4)]
    elif r == 3:
        opts = [([s[1], 1], 3), ([1], 2), ([s[2]], 1), (list(s[1:]), 1), (list(s), 0.4)]
    elif r == 2:
        opts = [([s[1]], 3), ([1], 2), ([1, s[1]], 1), (list(s), 0.5)]
    else:
        opts = [([1], 2), (list(s[-1:]), 1)]
    return b.choice([o for o, _ in opts], [w for _, w in opts])


def prelu(b, x):
    shp = slope_shape(b, x.shape)
    if b.r() < 0.7:
        slope = b.rng.uniform(0.01, 0.3, shp)
    else:
        slope = b.rng.standard_normal(shp) * 0.5
    return b.node("PRelu", [x, b.fconst(np.asarray(slope, np.float32))])


def g_act(b):
    return act(b, b.pick())


def guard_ge1(b, x):
    """Abs(x) + 1 (two nodes)."""
    a = b.node("Abs", [x], nonneg=True, bounded=x.bounded, exact=x.exact)
    one = b.fconst(np.ones([1] if b.r() < 0.3 else [], np.float32))
    return b.node("Add", [a, one] if b.r() < 0.7 else [one, a], ge1=True)


def g_unary(b):
    op = b.choice(["Exp", "Abs", "Neg", "Sqrt", "Log", "Reciprocal", "Floor", "Pow"],
                  [2, 2, 1.5, 1.5, 1.5, 1.5, 1.6, 1.8])
    if op == "Exp":
        x = b.pick(lambda v: v.bounded)
        if x is None:
            x = act(b, b.pick(), b.choice(["Tanh", "Sigmoid"]))
        return b.node("Exp", [x], nonneg=True)
    if op == "Abs":
        x = b.pick()
        return b.node("Abs", [x], nonneg=True, bounded=x.bounded, exact=x.exact)
    if op == "Neg":
        x = b.pick()
        return b.node("Neg", [x], bounded=x.bounded, exact=x.exact)
    if op == "Floor":
        x = b.pick(lambda v: v.exact)
        return b.node("Floor", [x], exact=True)
    if op == "Sqrt":
        x = b.pick(lambda v: v.nonneg)
        if x is None or b.r() < 0.3:
            x = guard_ge1(b, b.pick())
        return b.node("Sqrt", [x], nonneg=True, ge1=x.ge1)
    if op in ("Log", "Reciprocal"):
        x = b.pick(lambda v: v.ge1)
        if x is None or b.r() < 0.3:
            x = guard_ge1(b, b.pick())
        if op == "Log":
            return b.node("Log", [x], nonneg=True)
        return b.node("Reciprocal", [x], nonneg=True, bounded=True)
    if op == "Pow":
        x = b.pick(lambda v: v.nonneg)
        if x is None:
            x = act(b, b.pick(), b.choice(["Relu", "Sigmoid"]))
        e = b.choice([2.0, 0.5])
        ec = b.fconst(np.full([] if b.r() < 0.7 else [1], e, np.float32))
        return b.node("Pow", [x, ec], nonneg=True)
    raise AssertionError(op)


def bcast(a, bshape):
    try:
        return tuple(np.broadcast_shapes(tuple(a), tuple(bshape)))
    except ValueError:
        return None


def const_shape(b, s):
    """A broadcast shape for a constant operand of a value of shape s."""
    r = len(s)
    opts = [("full", 2), ("scalar", 2), ("one", 1), ("row", 1.5)]
    if r >= 3:
        opts += [("chan", 3), ("chan1", 3)]
    elif r == 2:
        opts += [("chan1", 1)]
    kind = b.choice([o for o, _ in opts], [w for _, w in opts])
    if kind == "full":
        return list(s)
    if kind == "scalar":
        return []
    if kind == "one":
        return [1]
    if kind == "row":
        return [s[-1]]
    if kind == "chan":
        return [s[1]] + [1] * (r - 2)
    return [1, s[1]] + [1] * (r - 2)


def g_binary(b, op=None, a=None):
    op = op or b.choice(["Add", "Mul", "Sub", "Div", "Max"], [3.5, 2.5, 1.5, 1.2, 1.3])
    a = a or b.pick()
    if op == "Div":
        d = b.pick_partner(lambda v: v.ge1 and bcast(a.shape, v.shape) == a.shape)
        if d is None or b.r() < 0.5:
            shp = const_shape(b, a.shape)
            mag = b.rng.uniform(0.5, 2.0, shp) * b.rng.choice([-1, 1], shp)
            d = b.fconst(np.asarray(mag, np.float32))
            return b.node("Div", [a, d], nonneg=False)
        return b.node("Div", [a, d], nonneg=a.nonneg, bounded=a.bounded)
    partner = None
    if b.r() < 0.55:
        if b.r() < 0.8:
            partner = b.pick_partner(lambda v: v.shape == a.shape and v.name != a.name, avoid=a)
        if partner is None:
            partner = b.pick_partner(lambda v: v.name != a.name and bcast(a.shape, v.shape) is not None
                                     and v.rank <= 5, avoid=a)
        if partner is None and b.r() < 0.2:
            partner = a
    if partner is None:
        shp = const_shape(b, a.shape)
        arr = b.randn(shp) if op != "Mul" else b.rng.uniform(0.5, 1.5, shp).astype(np.float32) * \
            b.rng.choice([-1, 1], shp, p=[0.2, 0.8]).astype(np.float32)
        partner_name = b.fconst(np.asarray(arr, np.float32))
        pnn, pex, pbd = bool(np.all(np.asarray(arr) >= 0)), False, False
    else:
        partner_name, pnn, pex, pbd = partner, partner.nonneg, partner.exact, partner.bounded
    ins = [a, partner_name] if b.r() < 0.6 else [partner_name, a]
    nn = {"Add": a.nonneg and pnn, "Mul": a.nonneg and pnn, "Sub": False,
          "Max": a.nonneg or pnn}[op]
    ex = op == "Max" and a.exact and pex
    bd = op == "Max" and a.bounded and pbd
    return b.node(op, ins, nonneg=nn, exact=ex, bounded=bd)


def g_residual(b):
    t = b.pick(r4)
    if t is None:
        raise Reject("no 4-D value")
    y = g_conv(b, t, preserve=True, chain=False)
    if b.r() < 0.35 and b.remaining() >= 2:
        y = bn(b, y)
    if b.r() < 0.4 and b.remaining() >= 2:
        y = act(b, y, b.choice(["Relu", "Clip", "LeakyRelu", "Sigmoid", "PRelu", "Elu"], [1, 1, 1, 1, 1, 0.4]))
    if b.r() < 0.15:
        s = b.node("Add", [y, t] if b.r() < 0.5 else [t, y])
    else:
        # sometimes onto an older value of the same shape instead of the conv's own input
        o = t
        if b.r() < 0.3:
            o = b.pick_partner(lambda v: v.shape == y.shape and v.name != y.name) or t
        s = b.node("Add", [y, o] if b.r() < 0.5 else [o, y])
    if b.r() < 0.5 and b.remaining() >= 1:
        s = act(b, s, b.choice(["Relu", "Relu", "Clip", "HardSwish"]))
    return s


def pool_ok(shape, kernel, strides, dilations, pads, auto_pad, ceil_mode):
    """Geometry on which the ONNX spec, ONNX Runtime and PyTorch agree: the (dilated) kernel fits
    the padded input, SAME padding is not negative, every window holds an input element, and with
    ceil_mode the last window starts inside the input (ONNX shape inference keeps a window that
    starts in the end padding, ONNX Runtime drops it)."""
    H, W = shape[2:]
    outs, pb, pe = pool_geometry([H, W], kernel, strides, dilations, pads or [0, 0, 0, 0], auto_pad, ceil_mode)
    for i, L in enumerate((H, W)):
        k, s, d, o = kernel[i], strides[i], dilations[i], outs[i]
        eff = (k - 1) * d + 1
        if o < 1 or L + pb[i] + pe[i] < eff:
            return False
        if auto_pad in ("SAME_UPPER", "SAME_LOWER") and (o - 1) * s + eff - L < 0:
            return False
        if ceil_mode and (o - 1) * s - pb[i] >= L:
            return False
        for j in range(o):
            if not any(0 <= j * s - pb[i] + a * d < L for a in range(k)):
                return False
    return True


def g_pool(b):
    x = b.pick(r4)
    if x is None:
        raise Reject("no 4-D value")
    op = b.choice(["MaxPool", "AveragePool"], [1.2, 1])
    kh = b.ri(1, 3)
    kw = kh if b.r() < 0.8 else b.ri(1, 3)
    s = b.choice([1, 2], [1, 1.3])
    attrs = {"kernel_shape": [kh, kw]}
    if s != 1 or b.r() < 0.3:
        attrs["strides"] = [s, s]
    dil = 1
    if op == "MaxPool" and b.r() < 0.2:
        dil = 2
        attrs["dilations"] = [2, 2]
    auto_pad, pads, ceil = "NOTSET", None, 0
    if b.r() < 0.3:
        auto_pad = attrs["auto_pad"] = b.choice(["SAME_UPPER", "SAME_LOWER", "VALID"])
    else:
        if b.r() < 0.6:
            pads = attrs["pads"] = [b.ri(0, kh - 1), b.ri(0, kw - 1), b.ri(0, kh - 1), b.ri(0, kw - 1)]
        if b.r() < 0.35:
            ceil = attrs["ceil_mode"] = 1
    if op == "AveragePool" and b.r() < 0.5:
        attrs["count_include_pad"] = b.choice([0, 1])
    if not pool_ok(x.shape, [kh, kw], [s, s], [dil, dil], pads, auto_pad, ceil):
        raise Reject("pool geometry")
    return b.node(op, [x], attrs, nonneg=x.nonneg, bounded=x.bounded,
                  exact=x.exact and op == "MaxPool")


def g_global(b):
    op = b.choice(["GlobalAveragePool", "GlobalMaxPool", "ReduceMean"], [2, 1, 2])
    x = b.pick(lambda v: v.rank >= 3) if op != "ReduceMean" else b.pick(lambda v: v.rank >= 2)
    if x is None:
        raise Reject("no value")
    if op == "ReduceMean":
        if x.rank == 4:
            axes = b.choice([[2, 3], [1], [-1], [1, 2, 3], [2], [-2, -1]], [4, 1.5, 1.5, 0.5, 0.5, 1])
        else:
            axes = b.choice([[-1], [1]])
        attrs = {"axes": axes}
        if b.r() < 0.5:
            attrs["keepdims"] = b.choice([0, 1])
        y = b.node("ReduceMean", [x], attrs, nonneg=x.nonneg, bounded=x.bounded)
    else:
        y = b.node(op, [x], nonneg=x.nonneg, bounded=x.bounded, exact=x.exact and op == "GlobalMaxPool")
    return y


def g_se(b):
    """Squeeze-excitation: x * Sigmoid(Conv1x1(Relu(Conv1x1(GAP(x)))))."""
    if b.remaining() < 5:
        raise Reject("budget")
    x = b.pick(lambda v: r4(v) and v.shape[1] >= 4)
    if x is None:
        raise Reject("no value")
    C = x.shape[1]
    g = b.node("GlobalAveragePool", [x])
    mid = max(1, C // 4)
    h = b.node("Conv", [g, b.fconst(b.randn([mid, C, 1, 1], 1 / math.sqrt(C))),
                        b.fconst(b.randn([mid], 0.1))], {"kernel_shape": [1, 1]})
    h = b.node("Relu", [h], nonneg=True)
    e = b.node("Conv", [h, b.fconst(b.randn([C, mid, 1, 1], 1 / math.sqrt(mid)))], {"kernel_shape": [1, 1]})
    s = act(b, e, b.choice(["Sigmoid", "HardSigmoid"], [3, 1]))
    return b.node("Mul", [x, s] if b.r() < 0.6 else [s, x])


def g_concat(b):
    a = b.pick(lambda v: v.rank >= 1)
    axis = 1 if (a.rank >= 2 and b.r() < 0.75) else b.ri(0, a.rank - 1)

    def fits(v):
        return v.rank == a.rank and all(v.shape[i] == a.shape[i] for i in range(a.rank) if i != axis)
    k = 2 if b.r() < 0.75 else 3
    ops = [a]
    for _ in range(k - 1):
        p = b.pick_partner(lambda v: fits(v) and v.name != a.name, avoid=a)
        if p is None or b.r() < 0.1:
            if b.r() < 0.35:
                shp = list(a.shape)
                shp[axis] = b.ri(1, 4)
                p = b.fconst(b.randn(shp))
            else:
                p = a
        ops.append(p)
    b.rng.shuffle(ops)
    ax = axis - a.rank if b.r() < 0.25 else axis
    vs = [o for o in ops if isinstance(o, Val)]
    flags = dict(nonneg=all(v.nonneg for v in vs) and len(vs) == len(ops),
                 exact=all(v.exact for v in vs) and len(vs) == len(ops),
                 bounded=all(v.bounded for v in vs) and len(vs) == len(ops))
    return b.node("Concat", ops, {"axis": ax}, **flags)


def g_split(b):
    x = b.pick(lambda v: v.rank >= 2 and max(v.shape[1:]) >= 2)
    if x is None:
        raise Reject("no value")
    if x.shape[1] >= 2 and b.r() < 0.75:
        axis = 1
    else:
        axis = b.choice([i for i in range(x.rank) if x.shape[i] >= 2])
    d = x.shape[axis]
    n = b.ri(2, min(3, d))
    ins = [x]
    if d % n == 0 and b.r() < 0.5:
        pass
    else:
        cuts = sorted(b.rng.choice(np.arange(1, d), n - 1, replace=False).tolist())
        sizes = [c1 - c0 for c0, c1 in zip([0] + cuts, cuts + [d])]
        ins.append(b.iconst(sizes))
    attrs = {"axis": axis - x.rank if b.r() < 0.2 else axis}
    outs = b.node("Split", ins, attrs, nout=n, nonneg=x.nonneg, exact=x.exact, bounded=x.bounded)
    # continue from a random part
    return outs[b.ri(0, n - 1)]


def g_slice(b):
    x = b.pick(lambda v: v.rank >= 1 and max(v.shape) >= 2)
    if x is None:
        raise Reject("no value")
    cand = [i for i in range(x.rank) if x.shape[i] >= 2 and (i != 0 or b.r() < 0.15)]
    if not cand:
        raise Reject("no axis")
    if 1 in cand and b.r() < 0.5:
        axes = [1]
    else:
        axes = [b.choice(cand)]
    if b.r() < 0.3:
        more = [i for i in cand if i not in axes]
        if more:
            axes.append(b.choice(more))
    starts, ends, steps = [], [], []
    for a in axes:
        d = x.shape[a]
        st = b.choice([1, 2, -1], [6, 1.5, 1.5])
        if st > 0:
            s0 = b.ri(0, d - 1)
            e0 = b.ri(s0 + 1, d)
            s_enc = s0 - d if b.r() < 0.25 else s0
            if e0 == d:
                e_enc = b.choice([d, 2 ** 31 - 1, 9223372036854775807, d + 3])
            else:
                e_enc = e0 - d if b.r() < 0.3 else e0
        else:
            s0 = b.ri(0, d - 1)
            e0 = b.ri(-1, s0 - 1)
            s_enc = s0 - d if b.r() < 0.3 else s0
            if s0 == d - 1 and b.r() < 0.3:
                s_enc = b.choice([-1, 9223372036854775807])
            if e0 == -1:
                e_enc = b.choice([-d - 1, -9223372036854775808, -2 ** 31])
            else:
                e_enc = e0 - d if b.r() < 0.3 else e0
        starts.append(s_enc)
        ends.append(e_enc)
        steps.append(st)
    ins = [x, b.iconst(starts), b.iconst(ends)]
    use_steps = any(s != 1 for s in steps) or b.r() < 0.3
    if use_steps or b.r() < 0.7:
        enc_axes = [a - x.rank if b.r() < 0.2 else a for a in axes]
        ins.append(b.iconst(enc_axes))
        if use_steps:
            ins.append(b.iconst(steps))
    elif axes != list(range(len(axes))):
        ins.append(b.iconst(axes))
    return b.node("Slice", ins, nonneg=x.nonneg, exact=x.exact, bounded=x.bounded)


def divisors(n):
    return [d for d in range(1, n + 1) if n % d == 0]


def encode_shape(b, target, src):
    """Shape operand for Reshape: 0 where it copies the input dim, one -1 sometimes."""
    enc = list(target)
    for i in range(len(enc)):
        if i < len(src) and src[i] == target[i] and b.r() < (0.6 if i == 0 else 0.2):
            enc[i] = 0
    if b.r() < 0.5:
        cand = [i for i in range(len(enc)) if enc[i] != 0]
        if cand:
            enc[b.choice(cand)] = -1
    return enc


def g_reshape(b):
    x = b.pick(lambda v: v.rank >= 2)
    if x is None:
        raise Reject("no value")
    s = list(x.shape)
    N = s[0]
    per = int(np.prod(s[1:]))
    r = b.r()
    if x.rank == 4 and r < 0.4:
        # same-rank regroup (channels traded with H or W)
        C, H, W = s[1:]
        opts = []
        for c2 in divisors(C * H):
            opts.append([N, c2, C * H // c2, W])
        for c2 in divisors(C * W):
            opts.append([N, c2, H, C * W // c2])
        opts = [o for o in opts if o != s] or opts
        tgt = b.choice(opts)
    elif x.rank == 4 and r < 0.65:
        tgt = b.choice([[N, per], [N, s[1], s[2] * s[3]], [N * s[1], s[2] * s[3]], [N, s[1] * s[2], s[3]]])
    elif x.rank in (2, 3) and r < 0.8:
        # back to 4-D
        f = b.choice(divisors(per))
        rest = per // f
        h = b.choice(divisors(rest))
        tgt = [N, f, h, rest // h]
        if b.r() < 0.3:
            tgt = [N, per, 1, 1]
    else:
        dv = divisors(per)
        a = b.choice(dv)
        tgt = b.choice([[N, a, per // a], [N, per], [N, per // a, a, 1]])
    enc = encode_shape(b, tgt, s)
    return b.node("Reshape", [x, b.iconst(enc)], nonneg=x.nonneg, exact=x.exact, bounded=x.bounded)


def g_shuffle(b, x=None):
    """Channel shuffle: Reshape [N,g,C/g,H,W] -> Transpose -> Reshape [N,C,H,W]."""
    x = x or b.pick(lambda v: r4(v) and v.shape[1] >= 4 and any(v.shape[1] % g == 0 for g in (2, 3, 4)))
    if x is None or x.shape[1] < 4 or not any(x.shape[1] % g == 0 for g in (2, 3, 4)):
        raise Reject("no value")
    N, C, H, W = x.shape
    g = b.choice([g for g in (2, 3, 4, 8) if C % g == 0 and C // g >= 2] or [2])
    fl = dict(nonneg=x.nonneg, exact=x.exact, bounded=x.bounded)
    y = b.node("Reshape", [x, b.iconst(encode_shape(b, [N, g, C // g, H, W], x.shape))], **fl)
    y = b.node("Transpose", [y], {"perm": [0, 2, 1, 3, 4]}, **fl)
    return b.node("Reshape", [y, b.iconst(encode_shape(b, [N, C, H, W], y.shape))], **fl)


def regroup(b, x):
    """Reshape a 4-D value to another 4-D shape with channels traded against H or W."""
    N, C, H, W = x.shape
    opts = [[N, c2, C * H // c2, W] for c2 in divisors(C * H)] + \
        [[N, c2, H, C * W // c2] for c2 in divisors(C * W)]
    opts = [o for o in opts if o != list(x.shape) and o[1] * o[1] <= 1024] or [list(x.shape)]
    tgt = b.choice(opts)
    return b.node("Reshape", [x, b.iconst(encode_shape(b, tgt, x.shape))], nonneg=x.nonneg,
                  exact=x.exact, bounded=x.bounded)


def g_conv_sandwich(b):
    """Conv -> data movement (regrouping Reshape, Transpose and back, channel shuffle, an
    NHWC excursion) -> Conv: what a layout-assigning compiler has to get right."""
    if b.remaining() < 3:
        raise Reject("budget")
    x = b.pick(r4)
    if x is None:
        raise Reject("no 4-D value")
    y = g_conv(b, x, chain=False)
    if b.r() < 0.4:
        y = act(b, y, b.choice(["Relu", "Clip", "Sigmoid", "LeakyRelu", "PRelu"]))
    kind = b.choice(["regroup", "tpair", "shuffle", "nhwc"], [3, 2, 1.5, 2])
    if kind == "regroup":
        y = regroup(b, y)
    elif kind == "shuffle":
        y = g_shuffle(b, y)
    else:
        fl = dict(nonneg=y.nonneg, exact=y.exact, bounded=y.bounded)
        t = b.node("Transpose", [y], {"perm": [0, 2, 3, 1]}, **fl)
        if kind == "nhwc":
            C = t.shape[-1]
            if b.r() < 0.5:
                t = b.node("Mul", [t, b.fconst(b.rng.uniform(0.5, 1.5, [C]).astype(np.float32))])
            else:
                t = b.node("Add", [b.fconst(b.randn([C], 0.3)), t])
        elif b.r() < 0.3:
            t = act(b, t, b.choice(["Relu", "Tanh"]))
        y = b.node("Transpose", [t], {"perm": [0, 3, 1, 2]})
    return g_conv(b, y)


def g_flatten(b):
    x = b.pick(lambda v: v.rank >= 2)
    axis = 1 if b.r() < 0.8 else b.ri(0, x.rank)
    return b.node("Flatten", [x], {"axis": axis}, nonneg=x.nonneg, exact=x.exact, bounded=x.bounded)


def g_transpose(b):
    x = b.pick(lambda v: v.rank >= 2)
    fl = dict(nonneg=x.nonneg, exact=x.exact, bounded=x.bounded)
    if x.rank == 4 and b.r() < 0.5:
        perm = b.choice([[0, 2, 3, 1], [0, 3, 1, 2], [0, 1, 3, 2]])
    else:
        perm = b.rng.permutation(x.rank).tolist()
    attrs = {"perm": perm} if b.r() < 0.9 or x.rank > 2 else {}
    y = b.node("Transpose", [x], attrs, **fl)
    if b.remaining() >= 1 and b.r() < 0.4:
        p = attrs.get("perm", list(range(x.rank))[::-1])
        inv = np.argsort(p).tolist()
        if b.r() < 0.3 and b.remaining() >= 2 and x.rank == 4:
            y = act(b, y, b.choice(["Relu", "Sigmoid", "Tanh"]))
            fl = {}
        y = b.node("Transpose", [y], {"perm": inv}, **fl)
    return y


def g_squeeze(b):
    fl = {}
    if b.r() < 0.5:
        x = b.pick(lambda v: 1 in v.shape[1:])
        if x is not None:
            fl = dict(nonneg=x.nonneg, exact=x.exact, bounded=x.bounded)
            ones = [i for i in range(1, x.rank) if x.shape[i] == 1]
            k = b.ri(1, len(ones))
            axes = sorted(b.rng.choice(ones, k, replace=False).tolist())
            axes = [a - x.rank if b.r() < 0.2 else a for a in axes]
            return b.node("Squeeze", [x, b.iconst(axes)], **fl)
    x = b.pick(lambda v: v.rank <= 3)
    if x is None:
        raise Reject("no low-rank value")
    fl = dict(nonneg=x.nonneg, exact=x.exact, bounded=x.bounded)
    if x.rank == 2 and b.r() < 0.6:
        axes = [2, 3]
    else:
        axes = [b.ri(0, x.rank)]
    return b.node("Unsqueeze", [x, b.iconst(axes)], **fl)


def to_2d(b):
    x = b.pick(lambda v: v.rank == 2)
    if x is not None and b.r() < 0.8:
        return x
    x = b.pick(r4)
    if x is None:
        x = b.pick(lambda v: v.rank >= 2)
        return b.node("Flatten", [x], {"axis": 1})
    m = b.r()
    if m < 0.35:
        return b.node("Flatten", [x], {"axis": 1})
    if m < 0.75:
        g = b.node("GlobalAveragePool", [x])
        return b.node("Flatten", [g], {"axis": 1}) if b.r() < 0.7 else \
            b.node("Reshape", [g, b.iconst(encode_shape(b, [x.shape[0], x.shape[1]], g.shape))])
    return b.node("ReduceMean", [x], {"axes": [2, 3], "keepdims": 0})


def g_gemm(b):
    a = to_2d(b)
    M, K = a.shape
    if K > 512:
        raise Reject("too wide")
    nout = b.choice(CHANNELS + [10, 6])
    if b.r() < 0.75:
        transA = 0 if b.r() < 0.9 else 1
        if transA:
            M, K = K, M
        transB = b.choice([0, 1])
        w = b.randn([nout, K] if transB else [K, nout], 1 / math.sqrt(K))
        attrs = {}
        if transA:
            attrs["transA"] = 1
        if transB or b.r() < 0.2:
            attrs["transB"] = transB
        if b.r() < 0.3:
            attrs["alpha"] = b.choice([0.5, 2.0, 1.0])
        if b.r() < 0.3:
            attrs["beta"] = b.choice([0.5, 2.0])
        ins = [a, b.fconst(w)]
        cm = b.r()
        if cm < 0.45:
            ins.append(b.fconst(b.randn([nout], 0.3)))
        elif cm < 0.65:
            ins.append(b.fconst(b.randn([1, nout], 0.3)))
        elif cm < 0.75:
            ins.append(b.fconst(b.randn([M, nout], 0.3)))
        elif cm < 0.8:
            ins.append(b.fconst(b.randn([], 0.3)))
        y = b.node("Gemm", ins, attrs)
    else:
        w = b.fconst(b.randn([K, nout], 1 / math.sqrt(K)))
        y = b.node("MatMul", [a, w])
    return post_chain(b, y)


def g_matmul_nd(b):
    x = b.pick(lambda v: v.rank in (3, 4))
    if x is None:
        raise Reject("no value")
    K = x.shape[-1]
    nout = b.ri(1, 9)
    if b.r() < 0.8:
        return b.node("MatMul", [x, b.fconst(b.randn([K, nout], 1 / math.sqrt(K)))])
    K2 = x.shape[-2]
    return b.node("MatMul", [b.fconst(b.randn([nout, K2], 1 / math.sqrt(K2))), x])


def g_resize(b):
    x = b.pick(lambda v: r4(v) and v.shape[1] <= 16)
    if x is None:
        raise Reject("no value")
    mode = b.choice(["nearest", "linear", "cubic"], [2, 2, 1])
    ctm = b.choice(["half_pixel", "asymmetric", "pytorch_half_pixel", "align_corners"], [2, 1.3, 1.3, 1.3])
    attrs = {}
    if mode != "nearest" or b.r() < 0.8:
        attrs["mode"] = mode
    if ctm != "half_pixel" or b.r() < 0.5:
        attrs["coordinate_transformation_mode"] = ctm
    if mode == "nearest" and b.r() < 0.8:
        attrs["nearest_mode"] = b.choice(["round_prefer_floor", "round_prefer_ceil", "floor", "ceil"])
    if mode == "cubic" and b.r() < 0.2:
        attrs["cubic_coeff_a"] = -0.5
    if mode == "cubic" and b.r() < 0.15:
        attrs["exclude_outside"] = 1
    H, W = x.shape[2:]
    if b.r() < 0.7:
        opts = [2.0, 0.5, 1.5, 3.0, 1.0, 0.75, 2.5]
        ow = [3, 2, 2, 1, 0.5, 0.6, 0.6]
        sh = b.choice(opts, ow)
        sw = sh if b.r() < 0.7 else b.choice(opts, ow)
        if H * sh < 1 or W * sw < 1:
            raise Reject("empty resize")
        ins = [x, "", b.fconst([1.0, 1.0, sh, sw])]
    else:
        oh = b.ri(1, min(12, 2 * H + 2))
        ow_ = b.ri(1, min(12, 2 * W + 2)) if b.r() < 0.6 else max(1, round(oh * W / H))
        ins = [x, "", "", b.iconst([x.shape[0], x.shape[1], oh, ow_])]
    if mode == "cubic" and ctm == "pytorch_half_pixel":
        out_hw = ([int(np.floor(H * sh)), int(np.floor(W * sw))] if len(ins) == 3 else [oh, ow_])
        if 1 in out_hw:      # onnx.reference takes x_original = -0.5 there, the spec says 0
            raise Reject("cubic pytorch_half_pixel to length 1")
    bd = x.bounded and mode != "cubic"
    return b.node("Resize", ins, attrs, nonneg=x.nonneg and mode != "cubic", bounded=bd,
                  exact=x.exact and mode == "nearest")


def g_softmax(b):
    x = b.pick(lambda v: v.rank >= 2)
    axis = b.choice([-1, 1, x.rank - 1], [3, 2, 1])
    attrs = {"axis": axis} if (axis != -1 or b.r() < 0.5) else {}
    return b.node("Softmax", [x], attrs, nonneg=True, bounded=True)


def g_layernorm(b):
    x = b.pick(lambda v: v.rank >= 2 and v.shape[-1] >= 2)
    if x is None:
        raise Reject("no value")
    D = x.shape[-1]
    ins = [x, b.fconst(b.rng.uniform(0.5, 1.5, [D]).astype(np.float32))]
    if b.r() < 0.8:
        ins.append(b.fconst(b.randn([D], 0.2)))
    attrs = {"axis": -1} if b.r() < 0.6 else {}
    if b.r() < 0.3:
        attrs["epsilon"] = 1e-3
    return b.node("LayerNormalization", ins, attrs)


def g_layernorm_x(b):
    """LayerNorm written out (the pattern a LayerNorm recognizer looks for)."""
    if b.remaining() < 9:
        raise Reject("budget")
    x = b.pick(lambda v: v.rank >= 2 and v.shape[-1] >= 2)
    if x is None:
        raise Reject("no value")
    D = x.shape[-1]
    m = b.node("ReduceMean", [x], {"axes": [-1]})
    d = b.node("Sub", [x, m])
    sq = b.node("Mul", [d, d], nonneg=True) if b.r() < 0.6 else \
        b.node("Pow", [d, b.fconst(np.float32(2.0))], nonneg=True)
    v = b.node("ReduceMean", [sq], {"axes": [-1]}, nonneg=True)
    ve = b.node("Add", [v, b.fconst(np.float32(1e-5))], nonneg=True)
    sd = b.node("Sqrt", [ve], nonneg=True)
    n = b.node("Div", [d, sd])
    y = b.node("Mul", [n, b.fconst(b.rng.uniform(0.5, 1.5, [D]).astype(np.float32))])
    return b.node("Add", [y, b.fconst(b.randn([D], 0.2))])


def g_pad(b):
    x = b.pick(lambda v: v.rank >= 2)
    mode = b.choice(["constant", "reflect", "edge"], [2, 1.2, 1])
    r = x.rank
    pads = [0] * (2 * r)
    axes = list(range(2, r)) if r >= 3 else [r - 1]
    if mode != "reflect" and r >= 2 and b.r() < 0.15:
        axes = axes + [1]
    for a in axes:
        lim = 2 if mode != "reflect" else min(2, x.shape[a] - 1)
        pads[a] = b.ri(0, lim)
        pads[a + r] = b.ri(0, lim)
    if sum(pads) == 0:
        raise Reject("no padding")
    ins = [x, b.iconst(pads)]
    attrs = {"mode": mode} if (mode != "constant" or b.r() < 0.5) else {}
    cv = 0.0
    if mode == "constant" and b.r() < 0.4:
        cv = b.choice([0.0, 1.0, -0.5])
        ins.append(b.fconst(np.float32(cv)))
    return b.node("Pad", ins, attrs, nonneg=x.nonneg and cv >= 0, exact=x.exact,
                  bounded=x.bounded and abs(cv) <= 1)


def g_identity(b):
    x = b.pick()
    op = b.choice(["Identity", "Dropout"])
    y = b.node(op, [x], nonneg=x.nonneg, exact=x.exact, bounded=x.bounded)
    if b.r() < 0.5:
        b.marked.append(y.name)    # feeds a graph output and (probably) later nodes
    return y


def g_expand(b):
    x = b.pick(lambda v: 1 in v.shape)
    if x is None:
        raise Reject("no value")
    tgt = list(x.shape)
    for i, d in enumerate(tgt):
        if d == 1 and (i > 0 or b.r() < 0.1):
            tgt[i] = b.ri(1, 7)
    if tgt == list(x.shape):
        raise Reject("nothing to expand")
    enc = [1 if (d == 1 or b.r() < 0.2) and x.shape[i] == d else d for i, d in enumerate(tgt)]
    return b.node("Expand", [x, b.iconst(enc)], nonneg=x.nonneg, exact=x.exact, bounded=x.bounded)


def g_gather(b):
    x = b.pick(lambda v: v.rank >= 2)
    axis = 1 if b.r() < 0.85 else b.ri(1, x.rank - 1)
    d = x.shape[axis]
    m = b.r()
    if m < 0.5:
        idx = b.rng.permutation(d).tolist()
    elif m < 0.85:
        idx = b.rng.integers(0, d, b.ri(1, d + 2)).tolist()
    else:
        idx = b.ri(0, d - 1)       # scalar index: the axis goes away
    idx = np.asarray(idx, np.int64)
    if b.r() < 0.2:
        idx = np.where(b.rng.random(idx.shape) < 0.5, idx - d, idx).astype(np.int64)
    return b.node("Gather", [x, b.iconst(idx)], {"axis": axis}, nonneg=x.nonneg, exact=x.exact,
                  bounded=x.bounded)


def g_where(b):
    if b.remaining() < 3:
        raise Reject("budget")
    e = b.pick(lambda v: v.exact)
    k = b.choice(["Relu", "Abs", "Floor"])
    f = b.node(k, [e], exact=True)
    c = b.node("Equal", [e, f] if b.r() < 0.5 else [f, e], pool=False)
    a = b.pick_partner(lambda v: bcast(v.shape, e.shape) == e.shape) or e
    if b.r() < 0.5:
        other = b.fconst(np.float32(b.choice([0.0, 1.0, -1.0])))
    else:
        other = b.pick_partner(lambda v: bcast(v.shape, e.shape) == e.shape and v.name != a.name) or \
            b.fconst(b.randn(list(e.shape[-1:])))
    return b.node("Where", [c, a, other] if b.r() < 0.6 else [c, other, a])


# ---- comparisons, logic, Mod, CastLike, Size -------------------------------------------------
# A comparison must not flip between ONNX Runtime and Kiln because of rounding noise, so its
# operands are (a) bit-exact values (graph inputs, data movement, Relu/Abs/Max/Floor of exact
# values; see Val.exact) compared with constants or with each other, (b) quantized exact values,
# Floor(x*4), Floor(x*2) or Floor(x) of an exact x (small integers; Equal is meaningful there), or
# (c) any value: then the oracle's margin rule (fragile()) redraws the graph unless every element
# is further than rounding noise from the other side. Mod (fmod=1; fmod=0 is integer-only up to
# opset 27, so it is used on Size's int64 result) follows the same plan for its dividend.

CMP_OPS = ["Less", "Greater", "LessOrEqual", "GreaterOrEqual", "Equal"]


def producer(b, v):
    for n in reversed(b.nodes):
        if v.name in n.output:
            return n.op_type
    return None


def quantized(b, e):
    """Floor(e*4), Floor(e*2) or Floor(e) of an exact value: small integers, bit-exact."""
    k = b.choice([4.0, 2.0, 1.0], [3, 1.5, 1])
    t = e
    if k != 1.0:
        sc = b.fconst(np.full([] if b.r() < 0.7 else [1], k, np.float32))
        t = b.node("Mul", [e, sc] if b.r() < 0.7 else [sc, e], exact=True, bounded=e.bounded and k <= 2,
                   nonneg=e.nonneg)
    return b.node("Floor", [t], exact=True)


def compare(b, a=None):
    """One comparison that cannot flip under rounding noise. Returns (bool Val, the Val it compares)."""
    if a is None:
        m = b.r()
        if m < 0.35 or (m < 0.75 and b.remaining() < 4):     # tight budget: no Floor(x*4)
            a = b.pick(lambda v: v.exact)
        elif m < 0.75:
            a = quantized(b, b.pick(lambda v: v.exact))
        else:
            a = b.pick()
    elif a.exact and producer(b, a) != "Floor" and b.remaining() >= 4 and b.r() < 0.4:
        a = quantized(b, a)
    integral = producer(b, a) == "Floor"
    other = None
    if b.r() < 0.4:
        if integral:
            other = b.pick_partner(lambda v: v.name != a.name and bcast(a.shape, v.shape) == a.shape
                                   and producer(b, v) == "Floor", avoid=a)
        elif a.exact:
            other = b.pick_partner(lambda v: v.name != a.name and v.exact and
                                   bcast(a.shape, v.shape) == a.shape, avoid=a)
        else:
            other = b.pick_partner(lambda v: v.name != a.name and bcast(a.shape, v.shape) == a.shape,
                                   avoid=a)
    if other is None:
        shp = const_shape(b, a.shape)
        if integral:
            arr = b.rng.integers(-3, 4, shp).astype(np.float32)
        elif b.r() < 0.3:
            arr = np.zeros(shp, np.float32)
        else:
            arr = b.randn(shp, 0.7)
        other = b.fconst(np.asarray(arr, np.float32))
        both_int = integral
    else:
        both_int = integral and producer(b, other) == "Floor"
    eq_w = 2.0 if both_int else (0.3 if a.exact else 0.0)
    op = b.choice(CMP_OPS, [2, 2, 2, 2, eq_w])
    c = b.node(op, [a, other] if b.r() < 0.7 else [other, a])
    return c, a


def g_compare(b):
    """Comparisons -> And/Or/Xor/Not -> Where(cond, a, b)."""
    if b.remaining() < 2:
        raise Reject("budget")
    c, a = compare(b)
    if b.remaining() >= 2 and b.r() < 0.85:
        base = a
        if b.r() < 0.35:
            base = b.pick_partner(lambda v: v.shape == a.shape and v.name != a.name, avoid=a) or a
        c2, _ = compare(b, base)
        if b.r() < 0.2:
            c2 = b.node("Not", [c2])
        c = b.node(b.choice(["And", "Or", "Xor"]), [c, c2] if b.r() < 0.5 else [c2, c])
    elif b.r() < 0.15:
        # an older condition read a second time
        olds = [v for v in b.vals.values() if v.dtype == BOOL and v.name != c.name and
                bcast(v.shape, c.shape) == c.shape]
        if olds:
            o = olds[b.ri(0, len(olds) - 1)]
            c = b.node(b.choice(["And", "Or", "Xor"]), [c, o] if b.r() < 0.5 else [o, c])
    if b.r() < 0.3:
        c = b.node("Not", [c])
    cs = c.shape
    x = None
    if b.r() < 0.7:
        x = b.pick_partner(lambda v: bcast(v.shape, cs) == cs)
    if x is None and b.r() < 0.5:
        x = b.pick_partner(lambda v: bcast(cs, v.shape) == v.shape)       # cond broadcast onto x
    x = x or a
    xs = bcast(cs, x.shape)
    m = b.r()
    if m < 0.45:
        cv = b.choice([0.0, 1.0, -1.0, 0.5])
        other = b.fconst(np.full([] if b.r() < 0.7 else [1], cv, np.float32))
        onn, oex, obd = cv >= 0, True, True
    elif m < 0.6:
        arr = b.randn(list(xs[-1:]) if b.r() < 0.5 else list(xs), 0.5)
        other = b.fconst(arr)
        onn, oex, obd = bool(np.all(arr >= 0)), True, False
    else:
        other = b.pick_partner(lambda v: v.name != x.name and bcast(v.shape, xs) == xs, avoid=x)
        if other is None:
            other = b.fconst(np.float32(0.0))
            onn, oex, obd = True, True, True
        else:
            onn, oex, obd = other.nonneg, other.exact, other.bounded
    ins = [c, x, other] if b.r() < 0.6 else [c, other, x]
    return b.node("Where", ins, nonneg=x.nonneg and onn, exact=x.exact and oex, bounded=x.bounded and obd)


def g_mod(b):
    """Mod with fmod=1 (C fmod) on floats; the divisor is a constant away from 0 or Abs(x)+1."""
    m = b.r()
    if m < 0.35:
        x = quantized(b, b.pick(lambda v: v.exact))
    elif m < 0.65:
        x = b.pick(lambda v: v.exact)
    else:
        x = b.pick()
    if b.r() < 0.7:
        shp = const_shape(b, x.shape)
        if b.r() < 0.6:
            arr = np.full(shp, b.choice([1.5, -1.5, 2.5, 2.0, 3.0, -2.5, 0.75]), np.float32)
        else:
            arr = (b.rng.uniform(0.75, 3.0, shp) * b.rng.choice([-1, 1], shp)).astype(np.float32)
        d = b.fconst(np.asarray(arr, np.float32))
        dex, bd = True, float(np.max(np.abs(arr))) <= 1.5
    else:
        d = None
        if b.r() < 0.5:
            d = b.pick_partner(lambda v: v.ge1 and bcast(x.shape, v.shape) == x.shape, avoid=x)
        if d is None:
            d = guard_ge1(b, b.pick(lambda v: bcast(x.shape, v.shape) == x.shape))
        dex, bd = False, False
    return b.node("Mod", [x, d], {"fmod": 1}, exact=x.exact and dex, nonneg=x.nonneg, bounded=bd)


def g_castlike(b):
    """CastLike(x, like) with a float like: float -> float."""
    x = b.pick()
    m = b.r()
    if m < 0.4:
        like = b.fconst(b.randn(b.choice([[], [1], list(x.shape[-1:])])))
    elif m < 0.8:
        like = b.pool[b.ri(0, len(b.pool) - 1)]
    else:
        like = x
    y = b.node("CastLike", [x, like], nonneg=x.nonneg, exact=x.exact, bounded=x.bounded)
    if b.remaining() >= 1 and b.r() < 0.4:
        y = act(b, y)
    return y


def g_size(b):
    """y * f(Size(x)): Size -> (Mod fmod=0 on int64) -> Cast(to=FLOAT) -> a scalar factor."""
    if b.remaining() < 2:
        raise Reject("budget")
    y = b.pick()
    x = y if b.r() < 0.5 else b.pool[b.ri(0, len(b.pool) - 1)]
    n = int(np.prod(x.shape))
    s = b.node("Size", [x])
    if b.remaining() >= 4 and b.r() < 0.3:
        k = b.choice([3, 5, 7, 16])
        s = b.node("Mod", [s, b.iconst(np.int64(k))] if b.r() < 0.6 else [s, b.iconst([k])],
                   {"fmod": 0} if b.r() < 0.5 else {})
        f = b.node("Cast", [s], {"to": FLOAT}, pool=False)
        f = b.node("Add", [f, b.fconst(np.float32(1.0))], pool=False)                # 1 .. k
        g = b.node("Mul", [f, b.fconst(np.float32(1.0 / k))], pool=False)
        return b.node("Mul", [y, g] if b.r() < 0.5 else [g, y], nonneg=y.nonneg)
    f = b.node("Cast", [s], {"to": FLOAT}, pool=False)
    m = b.r()
    if m < 0.35:
        return b.node("Div", [y, f], nonneg=y.nonneg, bounded=y.bounded)
    if m < 0.5:
        g = b.node("Sqrt", [f], pool=False)
        return b.node("Div", [y, g], nonneg=y.nonneg, bounded=y.bounded)
    c = b.choice([0.5, 1.0, 2.0, -1.0]) / n
    g = b.node("Mul", [f, b.fconst(np.float32(c))] if b.r() < 0.5 else [b.fconst(np.float32(c)), f], pool=False)
    return b.node("Mul", [y, g] if b.r() < 0.5 else [g, y])


GENS = [
    (g_conv, 19), (g_conv_sandwich, 3), (g_residual, 7), (g_conv_transpose, 3.5), (g_bn, 2.5), (g_act, 6.8), (g_unary, 6),
    (g_binary, 10), (g_pool, 7), (g_global, 4), (g_se, 2), (g_concat, 5), (g_split, 3),
    (g_slice, 3.5), (g_reshape, 3.5), (g_shuffle, 1.2), (g_flatten, 1.2), (g_transpose, 3.5),
    (g_squeeze, 2.2), (g_gemm, 4.5), (g_matmul_nd, 0.7), (g_resize, 4), (g_softmax, 2),
    (g_layernorm, 2), (g_layernorm_x, 0.6), (g_pad, 3), (g_identity, 2), (g_expand, 0.8),
    (g_gather, 1), (g_where, 1.2), (g_compare, 3.6), (g_mod, 1.5), (g_castlike, 0.9), (g_size, 1.5),
]


def input_shapes(b):
    N = 1 if b.r() < 0.85 else 2

    def hw():
        h = b.choice(list(range(1, 10)), [2, 1.2, 1.5, 1.2, 1.5, 1, 1.2, 1, 1.2])
        w = h if b.r() < 0.55 else b.ri(1, 9)
        return h, w
    m = b.r()
    if m < 0.86:
        C = b.channels()
        H, W = hw()
        s1 = [N, C, H, W]
    elif m < 0.95:
        s1 = [N, b.choice([1, 3, 8, 12, 16, 20, 32, 64])]
    else:
        s1 = [N, b.ri(1, 8), b.ri(1, 16)]
    shapes = [s1]
    if b.r() < 0.3:
        m = b.r()
        if m < 0.5 or len(s1) != 4:
            shapes.append(list(s1))
        elif m < 0.8:
            shapes.append([N, b.channels(), s1[2], s1[3]])
        else:
            shapes.append(b.choice([[1, s1[1], 1, 1], [N, s1[1], 1, 1], [s1[1], 1, 1]]))
    return shapes


def build(rng):
    """One attempt at a graph. Returns (nodes, inits, input Vals, output names, vals)."""
    b = Builder(rng)
    for s in input_shapes(b):
        b.add_input(s)
    b.target = b.ri(3, 15)
    gens = [g for g, _ in GENS]
    ws = np.array([w for _, w in GENS], np.float64)
    ws /= ws.sum()
    tries = 0
    while len(b.nodes) < b.target and tries < 100:
        tries += 1
        gen = gens[int(rng.choice(len(gens), p=ws))]
        snap = b.snapshot()
        before = b.dangling()
        try:
            gen(b)
            if len(b.nodes) > b.target + 2:     # a composite may overshoot a little
                raise Reject("over budget")
            # mostly keep the graph "one open end": a step that leaves an extra value nobody
            # reads is usually drawn again
            if b.dangling() > before and b.r() < 0.75:
                raise Reject("dangling")
        except Reject:
            b.restore(snap)
    if len(b.nodes) < 3:
        raise Reject("too few nodes")
    cons = b.consumed()
    if any(v.name not in cons for v in b.inputs):
        raise Reject("unused input")
    # ---- values nobody reads: merged into the last value where shapes allow (Add(conv, older
    # value) and friends), else graph outputs or dropped as dead code ----
    for n in list(b.nodes[:-1]):
        if any(o in b.consumed() for o in n.output) or len(b.nodes) >= 15 or b.r() < 0.25:
            continue
        d = b.vals[n.output[0]]
        last = b.vals[b.nodes[-1].output[0]]
        if d.dtype != FLOAT or last.dtype != FLOAT:
            continue
        snap = b.snapshot()
        try:
            if bcast(last.shape, d.shape) in (last.shape, d.shape):
                op = b.choice(["Add", "Mul", "Max", "Sub"], [5, 2, 1, 1])
                b.node(op, [last, d] if b.r() < 0.5 else [d, last])
            elif d.rank == last.rank and sum(x != y for x, y in zip(d.shape, last.shape)) == 1:
                axis = [i for i in range(d.rank) if d.shape[i] != last.shape[i]][0]
                b.node("Concat", [last, d] if b.r() < 0.5 else [d, last], {"axis": axis})
        except Reject:
            b.restore(snap)
    cons = b.consumed()
    last = b.nodes[-1].output[0]
    outs = [last]
    dropped = []
    for n in b.nodes[:-1]:
        if not any(o in cons for o in n.output):
            o = n.output[0] if len(n.output) == 1 else n.output[b.ri(0, len(n.output) - 1)]
            if b.r() < 0.55:
                dropped.append(o)       # dead code, pruned by assemble()
            else:
                outs.append(o)
    for m in b.marked:
        if m not in outs:
            outs.append(m)
    if b.r() < 0.2:
        mids = [o for n in b.nodes[:-1] for o in n.output if o not in outs and b.vals[o].dtype == FLOAT]
        for _ in range(b.ri(1, 2)):
            if mids:
                outs.append(mids.pop(b.ri(0, len(mids) - 1)))
    # dead code may take at most two nodes with it
    for o in dropped:
        if len(b.nodes) - len(live_nodes(b.nodes, outs)) <= 2:
            break
        outs.append(o)
    if len(outs) > 4:
        # keep the last value and three others; the rest are pruned as dead code
        keep = [outs[0]] + sorted(b.rng.choice(outs[1:], 3, replace=False).tolist())
        outs = keep
    order = {o: i for i, n in enumerate(b.nodes) for o in n.output}
    outs.sort(key=lambda o: order[o])
    if len(outs) > 1 and b.r() < 0.3:
        b.rng.shuffle(outs)
    return b, outs


def live_nodes(nodes, outs):
    """The nodes the outputs depend on (in order) and every name they read."""
    needed = set(outs)
    keep = []
    for n in reversed(nodes):
        if any(o in needed for o in n.output):
            keep.append(n)
            needed.update(i for i in n.input if i)
    keep.reverse()
    return keep


def assemble(nodes, inits, inputs, outs, name):
    """Prunes dead nodes and builds a checked model with typed outputs."""
    keep = live_nodes(nodes, outs)
    needed = set(outs) | {i for n in keep for i in n.input if i}
    ins = [vi for vi in inputs if vi.name in needed]
    ini = [t for t in inits if t.name in needed]
    g = helper.make_graph(keep, name, ins, [onnx.ValueInfoProto(name=o) for o in outs], initializer=ini)
    m = helper.make_model(g, opset_imports=[helper.make_opsetid("", OPSET)], ir_version=IR_VERSION,
                          producer_name="kiln-difftest")
    inf = shape_inference.infer_shapes(m, check_type=True, strict_mode=True, data_prop=True)
    for o in inf.graph.output:
        tt = o.type.tensor_type
        if not tt.HasField("shape") or any(not d.HasField("dim_value") for d in tt.shape.dim):
            raise Reject("output shape unknown")
    del m.graph.output[:]
    m.graph.output.extend(inf.graph.output)
    onnx.checker.check_model(m, full_check=True)
    return m


def generate(seed, index, attempt=0):
    """A random valid model and its inputs, determined by (seed, index, attempt)."""
    rng = np.random.default_rng([int(seed), int(index), int(attempt)])
    for _ in range(MAX_ATTEMPTS):
        try:
            b, outs = build(rng)
            inputs = [helper.make_tensor_value_info(v.name, v.dtype, list(v.shape)) for v in b.inputs]
            m = assemble(b.nodes, list(b.inits.values()), inputs, outs, f"difftest_s{seed}_{index}")
        except Reject:
            continue
        except (onnx.checker.ValidationError, onnx.shape_inference.InferenceError):
            continue
        if len(m.graph.node) < 3:
            continue
        feeds = {}
        for vi in m.graph.input:
            shape = [d.dim_value for d in vi.type.tensor_type.shape.dim]
            feeds[vi.name] = rng.standard_normal(shape).astype(np.float32)
        return m, feeds
    raise RuntimeError(f"could not generate a graph for seed {seed} index {index}")


# --------------------------------------------------------------------------------------------
# Oracles
# --------------------------------------------------------------------------------------------

# onnx.reference 1.23 gets some kernels wrong; these replacements follow the ONNX spec text and were
# checked against ONNX Runtime on thousands of random configurations:
#   MaxPool/AveragePool: asymmetric pads read as [x1_begin, x1_end, x2_begin, ...] (wrong shapes)
#   GlobalMaxPool: reduces the wrong axes for non-4-D inputs
#   ConvTranspose: wrong for group > 1

def pool_geometry(in_sizes, kernel, strides, dilations, pads, auto_pad, ceil_mode):
    """Spec geometry per spatial axis: (output sizes, pad_begin, pad_end)."""
    outs, pb, pe = [], [], []
    n = len(in_sizes)
    for i in range(n):
        L, k, s, d = in_sizes[i], kernel[i], strides[i], dilations[i]
        eff = (k - 1) * d + 1
        if auto_pad in ("SAME_UPPER", "SAME_LOWER"):
            o = -(-L // s)
            tot = max(0, (o - 1) * s + eff - L)
            lo = tot // 2 if auto_pad == "SAME_UPPER" else tot - tot // 2
            outs.append(o)
            pb.append(lo)
            pe.append(tot - lo)
        elif auto_pad == "VALID":
            outs.append((L - eff) // s + 1)
            pb.append(0)
            pe.append(0)
        else:
            b_, e_ = pads[i], pads[i + n]
            num = L + b_ + e_ - eff
            outs.append((-(-num // s) if ceil_mode else num // s) + 1)
            pb.append(b_)
            pe.append(e_)
    return outs, pb, pe


def _pool(x, kind, kernel, strides, dilations, pads, auto_pad, ceil_mode, count_include_pad):
    sp = x.shape[2:]
    n = len(sp)
    strides = list(strides or [1] * n)
    dilations = list(dilations or [1] * n)
    pads = list(pads or [0] * (2 * n))
    outs, pb, pe = pool_geometry(sp, kernel, strides, dilations, pads, auto_pad, ceil_mode)
    y = np.zeros(x.shape[:2] + tuple(outs), dtype=x.dtype)
    lead = (slice(None), slice(None))
    for idx in np.ndindex(*outs):
        sel, cnt = [], 1
        for i in range(n):
            start = idx[i] * strides[i] - pb[i]
            pos = [start + a * dilations[i] for a in range(kernel[i])]
            sel.append([p for p in pos if 0 <= p < sp[i]])
            cnt *= sum(1 for p in pos if -pb[i] <= p < sp[i] + pe[i])
        if not all(sel):
            raise RuntimeError("pooling window without input elements")
        win = x[lead + np.ix_(*sel)].reshape(x.shape[0], x.shape[1], -1)
        if kind == "max":
            y[lead + idx] = win.max(axis=2)
        else:
            y[lead + idx] = win.astype(np.float64).sum(axis=2) / (cnt if count_include_pad else win.shape[2])
    return y


def _str(v, default="NOTSET"):
    if isinstance(v, bytes):
        return v.decode()
    return v or default


def _reference_overrides():
    from onnx.reference.op_run import OpRun

    class MaxPool(OpRun):
        op_domain = ""

        def _run(self, x, auto_pad=None, ceil_mode=None, dilations=None, kernel_shape=None, pads=None,
                 storage_order=None, strides=None):
            return (_pool(x, "max", kernel_shape, strides, dilations, pads, _str(auto_pad), ceil_mode, 0),)

    class AveragePool(OpRun):
        op_domain = ""

        def _run(self, x, auto_pad=None, ceil_mode=None, count_include_pad=None, dilations=None,
                 kernel_shape=None, pads=None, strides=None):
            return (_pool(x, "avg", kernel_shape, strides, dilations, pads, _str(auto_pad), ceil_mode,
                          count_include_pad),)

    class GlobalMaxPool(OpRun):
        op_domain = ""

        def _run(self, x):
            return (x.max(axis=tuple(range(2, x.ndim)), keepdims=True),)

    class ConvTranspose(OpRun):
        op_domain = ""

        def _run(self, x, w, b=None, auto_pad=None, dilations=None, group=None, kernel_shape=None,
                 output_padding=None, output_shape=None, pads=None, strides=None):
            if _str(auto_pad) != "NOTSET" or output_shape:
                raise RuntimeError("ConvTranspose override: auto_pad/output_shape not supported")
            N, C, H, W = x.shape
            group = group or 1
            _, Mg, kh, kw = w.shape
            M = Mg * group
            sh, sw = strides or [1, 1]
            dh, dw = dilations or [1, 1]
            oph, opw = output_padding or [0, 0]
            p = pads or [0, 0, 0, 0]
            FH = sh * (H - 1) + (kh - 1) * dh + 1 + oph
            FW = sw * (W - 1) + (kw - 1) * dw + 1 + opw
            full = np.zeros((N, M, FH, FW))
            cg = C // group
            xd, wd = x.astype(np.float64), w.astype(np.float64)
            for g in range(group):
                xg = xd[:, g * cg:(g + 1) * cg]
                for a in range(kh):
                    for c in range(kw):
                        contrib = np.einsum("nchw,cm->nmhw", xg, wd[g * cg:(g + 1) * cg, :, a, c])
                        full[:, g * Mg:(g + 1) * Mg, a * dh:a * dh + sh * (H - 1) + 1:sh,
                             c * dw:c * dw + sw * (W - 1) + 1:sw] += contrib
            y = full[:, :, p[0]:FH - p[2], p[1]:FW - p[3]]
            if b is not None:
                y = y + b.astype(np.float64)[None, :, None, None]
            return (y.astype(x.dtype),)

    return [MaxPool, AveragePool, GlobalMaxPool, ConvTranspose]


_OVERRIDES = None

_ORT = None


def _ort():
    global _ORT
    if _ORT is None:
        import onnxruntime
        _ORT = onnxruntime
    return _ORT


def run_ort(model, feeds):
    ort = _ort()
    so = ort.SessionOptions()
    so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    so.intra_op_num_threads = 1
    so.inter_op_num_threads = 1
    so.log_severity_level = 4
    sess = ort.InferenceSession(model.SerializeToString(), so, providers=["CPUExecutionProvider"])
    return sess.run(None, feeds)


def run_reference(model, feeds):
    global _OVERRIDES
    from onnx.reference import ReferenceEvaluator
    if _OVERRIDES is None:
        _OVERRIDES = _reference_overrides()
    with np.errstate(all="ignore"):     # e.g. Sigmoid evaluates exp on both branches
        return ReferenceEvaluator(model, new_ops=_OVERRIDES).run(None, feeds)


def suspects(model):
    """Nodes where ONNX Runtime is known to depart from the spec (for the note)."""
    out = []
    for n in model.graph.node:
        a = {x.name: helper.get_attribute_value(x) for x in n.attribute}
        if n.op_type == "Resize":
            ctm = a.get("coordinate_transformation_mode", b"half_pixel").decode()
            mode = a.get("mode", b"nearest").decode()
            out.append(f"{n.name}: Resize {mode}/{ctm}")
        elif n.op_type in ("MaxPool", "AveragePool"):
            ap = a.get("auto_pad", b"NOTSET").decode()
            extra = []
            if ap != "NOTSET":
                extra.append(ap)
            if any(d != 1 for d in a.get("dilations", [])):
                extra.append("dilations=" + "x".join(map(str, a["dilations"])))
            if a.get("ceil_mode", 0):
                extra.append("ceil_mode")
            if extra:
                out.append(f"{n.name}: {n.op_type} " + ",".join(extra))
    return out


def _close(a, r):
    """Agreement rule: same shape and max|a-r| <= 1e-4*max|r| + 1e-5. Returns (ok, diff, tol)."""
    a = np.asarray(a)
    r = np.asarray(r)
    if a.shape != r.shape:
        return False, None, None
    if not a.size:
        return True, 0.0, 1e-5
    diff = float(np.max(np.abs(a.astype(np.float64) - r.astype(np.float64))))
    tol = 1e-4 * float(np.max(np.abs(r))) + 1e-5
    return diff <= tol, diff, tol


# Values the margin rule treats as bit-exact: graph inputs, initializers, non-float values and the
# outputs of these ops when their inputs are exact (Mul/Div by a power of two counts too).
EXACT_OPS = {"Identity", "Dropout", "Reshape", "Transpose", "Flatten", "Squeeze", "Unsqueeze", "Slice",
             "Gather", "Concat", "Split", "Expand", "Pad", "Relu", "Abs", "Neg", "Floor", "Ceil", "Max",
             "Min", "MaxPool", "GlobalMaxPool", "Clip", "CastLike", "Where", "Mod", "Cast", "Size", "Shape",
             "Not", "And", "Or", "Xor", "Less", "Greater", "LessOrEqual", "GreaterOrEqual", "Equal"}
FRAGILE_OPS = {"Less", "Greater", "LessOrEqual", "GreaterOrEqual", "Equal", "Mod", "Floor", "Ceil"}


def _pow2(arr):
    a = np.abs(np.asarray(arr, np.float64)).ravel()
    return a.size > 0 and bool(np.all(a > 0)) and bool(np.all(np.log2(a) == np.round(np.log2(a))))


def exact_values(model):
    """Names of values that every correct implementation computes bit for bit."""
    g = model.graph
    inits = {t.name: t for t in g.initializer}
    exact = {vi.name for vi in g.input} | set(inits)
    for n in g.node:
        ins = [i for i in n.input if i]
        op = n.op_type
        ok = False
        if op in EXACT_OPS:
            ok = all(i in exact for i in ins)
        elif op == "Resize":
            a = {x.name: helper.get_attribute_value(x) for x in n.attribute}
            ok = a.get("mode", b"nearest") == b"nearest" and ins[0] in exact
        elif op in ("Mul", "Div") and len(ins) == 2:
            cands = [1] if op == "Div" else [0, 1]
            ok = any(ins[k] in inits and _pow2(numpy_helper.to_array(inits[ins[k]])) and ins[1 - k] in exact
                     for k in cands)
        if ok:
            exact.update(o for o in n.output if o)
    return exact


def _tol(v):
    return 1e-4 * float(np.max(np.abs(v))) + 1e-5 if v.size else 0.0


def fragile(model, feeds):
    """The margin rule: '' when no comparison, Mod or Floor/Ceil can flip under rounding noise,
    else what could. A comparison with an operand that is not bit-exact needs |a - b| > tol(a) +
    tol(b) everywhere (tol(v) = 1e-4*max|v| + 1e-5, the oracle agreement rule; 0 for exact
    operands); Floor/Ceil of such a value needs it that far from an integer; Mod (fmod) needs the
    dividend that far (plus |k|*tol(divisor)) from every nonzero multiple k of the divisor.
    Values are ONNX Runtime's."""
    exact = exact_values(model)
    checks = [n for n in model.graph.node if n.op_type in FRAGILE_OPS and
              any(i and i not in exact for i in n.input)]
    if not checks:
        return ""
    inits = {t.name: numpy_helper.to_array(t) for t in model.graph.initializer}
    want = []
    for n in checks:
        for i in n.input:
            if i and i not in inits and i not in feeds and i not in want:
                want.append(i)
    vals = dict(inits)
    vals.update(feeds)
    if want:
        inf = shape_inference.infer_shapes(model, strict_mode=True)
        vis = {vi.name: vi for vi in list(inf.graph.value_info) + list(inf.graph.output)}
        m = onnx.ModelProto()
        m.CopyFrom(model)
        del m.graph.output[:]
        m.graph.output.extend(vis[o] for o in want)
        vals.update(zip(want, (np.asarray(v) for v in run_ort(m, feeds))))
    for n in checks:
        ins = [np.asarray(vals[i], np.float64) for i in n.input]
        tols = [_tol(v) if nm not in exact else 0.0 for nm, v in zip(n.input, ins)]
        if n.op_type in ("Floor", "Ceil"):
            x = ins[0]
            gap = np.abs(x - np.round(x))
            need = tols[0]
        elif n.op_type == "Mod":
            x, d = ins
            k = np.round(x / d)
            gap = np.where(k != 0, np.abs(x - k * d), np.inf)
            need = tols[0] + np.abs(k) * tols[1]
        else:
            gap = np.abs(ins[0] - ins[1])
            need = tols[0] + tols[1]
        if gap.size and np.any(gap <= need):
            return f"{n.name} ({n.op_type}) within rounding noise of a flip (min gap {float(np.min(gap)):.3g})"
    return ""


def first_divergence(model, feeds):
    """The first node (in graph order) whose output differs between the two oracles, as text."""
    n = divergent_node(model, feeds)
    if n is None:
        return ""
    a = {x.name: helper.get_attribute_value(x) for x in n.attribute}
    a = {k: (v.decode() if isinstance(v, bytes) else v) for k, v in a.items()}
    return f"first divergence at {n.name} ({n.op_type} {a})"


def known_ort_departure(model, n):
    """Whether node `n` is one of the places where ONNX Runtime departs from the ONNX spec (and
    onnx.reference, ONNX's own implementation, follows it):
    - Resize from `scales` with pytorch_half_pixel or align_corners when input size × scale is not
      an integer;
    - MaxPool/AveragePool with auto_pad SAME_UPPER/SAME_LOWER and a dilation other than 1."""
    attrs = {x.name: helper.get_attribute_value(x) for x in n.attribute}
    attrs = {k: (v.decode() if isinstance(v, bytes) else v) for k, v in attrs.items()}
    if n.op_type in ("MaxPool", "AveragePool"):
        return attrs.get("auto_pad", "NOTSET") in ("SAME_UPPER", "SAME_LOWER") and any(d != 1 for d in attrs.get("dilations", []))
    if n.op_type == "Resize":
        if attrs.get("coordinate_transformation_mode", "half_pixel") not in ("pytorch_half_pixel", "align_corners"):
            return False
        if len(n.input) < 3 or not n.input[2]:
            return False
        inits = {t.name: numpy_helper.to_array(t) for t in model.graph.initializer}
        if n.input[2] not in inits:
            return False
        scales = inits[n.input[2]]
        try:
            inf = shape_inference.infer_shapes(model, strict_mode=True)
        except Exception:  # noqa: BLE001
            return False
        vis = {vi.name: vi for vi in list(inf.graph.value_info) + list(inf.graph.input) + list(inf.graph.output)}
        if n.input[0] not in vis:
            return False
        dims = [d.dim_value for d in vis[n.input[0]].type.tensor_type.shape.dim]
        return any(abs(d * float(s) - round(d * float(s))) > 1e-6 for d, s in zip(dims, scales))
    return False


def divergent_node(model, feeds):
    """The first node (in graph order) whose output differs between the two oracles, or None."""
    try:
        inf = shape_inference.infer_shapes(model, strict_mode=True)
        vis = {vi.name: vi for vi in list(inf.graph.value_info) + list(inf.graph.output)}
        names = [o for n in model.graph.node for o in n.output
                 if o in vis and vis[o].type.tensor_type.elem_type == FLOAT]
        m = onnx.ModelProto()
        m.CopyFrom(model)
        del m.graph.output[:]
        m.graph.output.extend(vis[o] for o in names)
        got_a = dict(zip(names, run_ort(m, feeds)))
        got_r = dict(zip(names, run_reference(m, feeds)))
    except Exception:  # noqa: BLE001
        return ""
    for n in model.graph.node:
        for o in n.output:
            if o in got_a and not _close(got_a[o], got_r[o])[0]:
                return n
    return None


def oracle(model, feeds):
    """(outputs, 'ort' | 'reference', note). Raises OracleError when an oracle throws, an
    output is not finite or a comparison, Mod or Floor could flip under rounding noise (fragile)."""
    try:
        got_ort = run_ort(model, feeds)
    except Exception as e:  # noqa: BLE001
        raise OracleError(f"onnxruntime: {str(e).splitlines()[0][:300]}")
    try:
        why = fragile(model, feeds)
    except Exception as e:  # noqa: BLE001
        raise OracleError(f"margin rule: {type(e).__name__}: {str(e).splitlines()[0][:300] if str(e) else ''}")
    if why:
        raise OracleError(f"margin rule: {why}")
    try:
        got_ref = run_reference(model, feeds)
    except Exception as e:  # noqa: BLE001
        raise OracleError(f"onnx.reference: {type(e).__name__}: {str(e).splitlines()[0][:300] if str(e) else ''}")
    outs = model.graph.output
    declared = [tuple(d.dim_value for d in o.type.tensor_type.shape.dim) for o in outs]
    notes = []
    ort_a, ref_a = [], []
    for j, (o, a, r) in enumerate(zip(outs, got_ort, got_ref)):
        a = np.asarray(a)
        r = np.asarray(r)
        for who, t in (("onnxruntime", a), ("onnx.reference", r)):
            if t.dtype.kind == "f" and not np.all(np.isfinite(t)):
                raise OracleError(f"{who}: output {j} not finite")
            if t.dtype.kind == "f" and t.size and np.max(np.abs(t)) > 1e6:
                raise OracleError(f"{who}: output {j} too large")
        if r.shape != declared[j]:
            raise OracleError(f"onnx.reference: output {j} shape {r.shape} != declared {declared[j]}")
        ort_a.append(a.astype(np.float32))
        ref_a.append(r.astype(np.float32))
        ok, diff, tol = _close(a, r)
        if diff is None:
            notes.append(f"output {j} ({o.name}): shape onnxruntime {list(a.shape)} vs reference {list(r.shape)}")
        elif not ok:
            notes.append(f"output {j} ({o.name}): max|onnxruntime-reference| = {diff:.3g} (tol {tol:.3g})")
    if not notes:
        return ort_a, "ort", ""
    note = "; ".join(notes)
    # onnx.reference decides only where ONNX Runtime is known to depart from the spec; any other
    # disagreement leaves no trustworthy oracle (onnx.reference has rounding artefacts of its own,
    # e.g. nearest Resize computing coordinates in double), and the graph is drawn again.
    n = divergent_node(model, feeds)
    if n is None or not known_ort_departure(model, n):
        raise OracleError(f"oracles disagree outside ONNX Runtime's known departures: {note}"
                          + (f" at {n.name} ({n.op_type})" if n is not None else ""))
    note += "; " + first_divergence(model, feeds)
    return ref_a, "reference", note


def make_case(seed, index):
    """(model, feeds, outputs, oracle name, note, attempt): the first attempt whose oracles run."""
    for attempt in range(MAX_ATTEMPTS):
        model, feeds = generate(seed, index, attempt)
        try:
            outs, name, note = oracle(model, feeds)
        except OracleError:
            continue
        return model, feeds, outs, name, note, attempt
    raise RuntimeError(f"no runnable graph for seed {seed} index {index}")


def write_case(path, model, feeds, outs, meta):
    if os.path.isdir(path):
        shutil.rmtree(path)
    ds = os.path.join(path, "test_data_set_0")
    os.makedirs(ds)
    with open(os.path.join(path, "model.onnx"), "wb") as f:
        f.write(model.SerializeToString())
    inits = {t.name for t in model.graph.initializer}
    real = [vi for vi in model.graph.input if vi.name not in inits]
    for i, vi in enumerate(real):
        with open(os.path.join(ds, f"input_{i}.pb"), "wb") as f:
            f.write(numpy_helper.from_array(np.asarray(feeds[vi.name]), vi.name).SerializeToString())
    for j, (o, arr) in enumerate(zip(model.graph.output, outs)):
        with open(os.path.join(ds, f"output_{j}.pb"), "wb") as f:
            f.write(numpy_helper.from_array(np.asarray(arr, np.float32), o.name).SerializeToString())
    with open(os.path.join(path, "case.json"), "w") as f:
        json.dump(meta, f, indent=1, sort_keys=True)
        f.write("\n")


def load_case(path):
    model = onnx.load(os.path.join(path, "model.onnx"))
    inits = {t.name for t in model.graph.initializer}
    real = [vi for vi in model.graph.input if vi.name not in inits]
    feeds = {}
    for i, vi in enumerate(real):
        t = TensorProto()
        with open(os.path.join(path, "test_data_set_0", f"input_{i}.pb"), "rb") as f:
            t.ParseFromString(f.read())
        feeds[vi.name] = numpy_helper.to_array(t)
    meta = {}
    mp = os.path.join(path, "case.json")
    if os.path.exists(mp):
        with open(mp) as f:
            meta = json.load(f)
    return model, feeds, meta


# --------------------------------------------------------------------------------------------
# Commands
# --------------------------------------------------------------------------------------------

def cmd_gen(args):
    t0 = time.time()
    indices = [args.index] if args.index is not None else list(range(args.first, args.first + args.count))
    hist = collections.Counter()
    nref = 0
    for k in indices:
        model, feeds, outs, name, note, attempt = make_case(args.seed, k)
        ops = [n.op_type for n in model.graph.node]
        hist.update(ops)
        nref += name == "reference"
        meta = {"seed": args.seed, "index": k, "attempt": attempt, "ops": ops, "oracle": name, "note": note}
        write_case(os.path.join(args.out, f"s{args.seed}_{k}"), model, feeds, outs, meta)
        if args.verbose:
            print(f"s{args.seed}_{k}: {len(ops)} nodes, {name}{' (' + note + ')' if note else ''}")
    hs = ", ".join(f"{op}={c}" for op, c in sorted(hist.items(), key=lambda kv: (-kv[1], kv[0])))
    print(f"difftest gen: {len(indices)} graphs (seed {args.seed}), {nref} from the reference oracle, ops: {hs}")
    if args.verbose:
        print(f"({time.time() - t0:.1f}s)")
    return 0


def still_fails(check, case_dir, timeout):
    cmd = check.replace("{case}", shlex.quote(case_dir))
    try:
        p = subprocess.run(cmd, shell=True, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                           timeout=timeout)
    except subprocess.TimeoutExpired:
        return False, "timeout"
    text = p.stdout.decode("utf-8", "replace")
    fail_lines = [ln for ln in text.splitlines() if ln.startswith("FAIL")]
    return p.returncode != 0 and bool(fail_lines), (fail_lines[0] if fail_lines else "")


def _graph_inputs(model):
    inits = {t.name for t in model.graph.initializer}
    return [vi for vi in model.graph.input if vi.name not in inits]


def _intermediates(model, feeds):
    """Every float node output's value (onnx.reference), or {} when that fails."""
    g = model.graph
    names = [o for n in g.node for o in n.output if o]
    m = onnx.ModelProto()
    m.CopyFrom(model)
    del m.graph.output[:]
    m.graph.output.extend(onnx.ValueInfoProto(name=o) for o in names)
    try:
        vals = run_reference(m, feeds)
    except Exception:  # noqa: BLE001
        return {}
    return {n: np.asarray(v) for n, v in zip(names, vals)
            if isinstance(v, np.ndarray) and v.dtype == np.float32}


def _copy_nodes(nodes, rename_in=None, rename_out=None):
    out = []
    for n in nodes:
        m = onnx.NodeProto()
        m.CopyFrom(n)
        for k in range(len(m.input)):
            if rename_in and m.input[k] in rename_in:
                m.input[k] = rename_in[m.input[k]]
        for k in range(len(m.output)):
            if rename_out and m.output[k] in rename_out:
                m.output[k] = rename_out[m.output[k]]
        out.append(m)
    return out


def shrink_candidates(model, inter):
    """Candidates (description, nodes, outputs, new inputs {name: value}):
    (a) one value as the only output, or an output cut back to an earlier value; (b) one output
    dropped; (c) a node bypassed (its output replaced by a same-shaped input of it); (d) a value
    that nodes read turned into a graph input holding the value it had (cuts off what computes it).
    Everything the outputs do not need is pruned later."""
    g = model.graph
    nodes = list(g.node)
    outs = [o.name for o in g.output]
    inits = {t.name for t in g.initializer}
    gin = {vi.name for vi in g.input}
    values = [o for n in nodes for o in n.output if o]
    try:
        inf = shape_inference.infer_shapes(model, strict_mode=True)
    except Exception:  # noqa: BLE001
        inf = model
    types = {}
    for vi in list(inf.graph.value_info) + list(inf.graph.output) + list(inf.graph.input):
        tt = vi.type.tensor_type
        types[vi.name] = (tt.elem_type, tuple(d.dim_value if d.HasField("dim_value") else -1
                                               for d in tt.shape.dim))
    for t in g.initializer:
        types[t.name] = (t.data_type, tuple(t.dims))

    def is_float(v):
        return types.get(v, (0,))[0] == FLOAT
    cands = []
    for v in values:                                     # (a) one value as the only output
        if [v] != outs and is_float(v):
            cands.append((f"only output {v}", nodes, [v], {}))
    if len(outs) > 1:                                    # (b) drop an output
        for o in outs:
            cands.append((f"drop output {o}", nodes, [x for x in outs if x != o], {}))
    for o in outs:                                       # (a) cut an output back to an earlier value
        for v in values:
            if v not in outs and is_float(v):
                cands.append((f"output {o} -> {v}", nodes, [v if x == o else x for x in outs], {}))
    for idx, n in enumerate(nodes):                      # (c) bypass a node
        if len(n.output) != 1:
            continue
        o = n.output[0]
        seen = set()
        for i in n.input:
            if not i or i in seen or i in inits or types.get(i) != types.get(o) or \
                    -1 in types.get(o, (0, (-1,)))[1]:
                continue
            seen.add(i)
            rest = nodes[:idx] + nodes[idx + 1:]
            if o in outs:
                if i in gin or i in outs:
                    continue
                # the producer of i now produces o (readers of i follow)
                cands.append((f"bypass {n.name}", _copy_nodes(rest, {i: o}, {i: o}), outs, {}))
            else:
                cands.append((f"bypass {n.name}", _copy_nodes(rest, {o: i}), outs, {}))
    readers = {i for n in nodes for i in n.input if i}
    for v in values:                                     # (d) cut: value -> graph input
        if v in readers and v in inter and v not in outs:
            cands.append((f"input {v}", _copy_nodes(nodes, None, {v: v + "__cut"}), outs, {v: inter[v]}))
    return cands


def _size(model):
    return (len(model.graph.node), len(model.graph.output), len(_graph_inputs(model)),
            len(model.graph.initializer))


def cmd_shrink(args):
    model, feeds, meta = load_case(args.case)
    work = tempfile.mkdtemp(prefix="difftest-shrink-")
    try:
        ok, line = still_fails(args.check, os.path.abspath(args.case), args.timeout)
        if not ok:
            print(f"difftest shrink: {args.case} does not fail the check; nothing to do")
            return 2
        before = len(model.graph.node)
        print(f"difftest shrink: {before} nodes: {line}")
        cur, cur_feeds = model, dict(feeds)
        cur_res = None
        tried = set()
        n_checked = 0
        progress = True
        while progress:
            progress = False
            inter = _intermediates(cur, cur_feeds)
            built = []
            for desc, nodes, outs, new_inputs in shrink_candidates(cur, inter):
                ins = list(cur.graph.input) + [
                    helper.make_tensor_value_info(nm, FLOAT, list(a.shape)) for nm, a in new_inputs.items()]
                try:
                    m = assemble(nodes, list(cur.graph.initializer), ins, outs, cur.graph.name)
                except Exception:  # noqa: BLE001 - not a valid model: skip
                    continue
                if _size(m) >= _size(cur):
                    continue
                key = m.SerializeToString()
                if key in tried:
                    continue
                tried.add(key)
                f2 = dict(cur_feeds)
                f2.update(new_inputs)
                f2 = {vi.name: f2[vi.name] for vi in _graph_inputs(m)}
                built.append((_size(m), len(built), desc, m, f2))
            built.sort(key=lambda t: t[:2])
            for size, _, desc, m, f2 in built:
                try:
                    res = oracle(m, f2)
                except OracleError:
                    continue
                cdir = os.path.join(work, f"c{n_checked}")
                n_checked += 1
                write_case(cdir, m, f2, res[0], {"ops": [n.op_type for n in m.graph.node],
                                                 "oracle": res[1], "note": res[2], "candidate": desc})
                ok, line = still_fails(args.check, cdir, args.timeout)
                shutil.rmtree(cdir, ignore_errors=True)
                if ok:
                    cur, cur_feeds, cur_res = m, f2, res
                    print(f"  {desc}: {size[0]} nodes, still fails: {line}")
                    progress = True
                    break
        if cur_res is None:
            cur_res = oracle(cur, cur_feeds)
        new_meta = dict(meta)
        new_meta.update({"ops": [n.op_type for n in cur.graph.node], "oracle": cur_res[1],
                         "note": cur_res[2], "shrunk_from": os.path.abspath(args.case), "check": args.check})
        write_case(args.out, cur, cur_feeds, cur_res[0], new_meta)
        print(f"difftest shrink: {before} nodes -> {len(cur.graph.node)} nodes "
              f"({n_checked} candidates checked), written to {args.out}")
        return 0
    finally:
        shutil.rmtree(work, ignore_errors=True)


def main(argv=None):
    ap = argparse.ArgumentParser(description="Kiln random-graph differential tester")
    sub = ap.add_subparsers(dest="cmd", required=True)
    g = sub.add_parser("gen", help="generate random cases")
    g.add_argument("--seed", type=int, required=True)
    g.add_argument("--count", type=int, default=1)
    g.add_argument("--first", type=int, default=0, help="first index (cases first .. first+count-1)")
    g.add_argument("--index", type=int, default=None, help="generate only case k")
    g.add_argument("--out", required=True)
    g.add_argument("--verbose", action="store_true")
    s = sub.add_parser("shrink", help="shrink a failing case")
    s.add_argument("case")
    s.add_argument("--out", required=True)
    s.add_argument("--check", required=True,
                   help="shell command, {case} = candidate folder; fails = exit != 0 and a line starting with FAIL")
    s.add_argument("--timeout", type=float, default=900)
    args = ap.parse_args(argv)
    if args.cmd == "gen":
        return cmd_gen(args)
    return cmd_shrink(args)


if __name__ == "__main__":
    sys.exit(main())
