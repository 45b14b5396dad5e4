import Foundation
import Testing
import KilnCodegen
import KilnDriver
import KilnIR
import KilnPasses
import KilnReference
import KilnToolchain
import KilnTarget

/// The fusion passes, each with the IR before and after, and the fused graphs compiled and
/// checked against the reference interpreter on the unfused graph.
@Suite(.serialized) struct FusionTests {
    static let origin = NodeOrigin(opType: "test", version: 17)

    /// x → conv → batch_norm → relu, plus a residual add of x and a final clip (ReLU6).
    static func residualBlock() -> Graph {
        var g = Graph(name: "block")
        let x = g.addValue("x", TensorType(.f32, [1, 4, 6, 6]))
        g.inputs = [x]
        func c(_ name: String, _ t: Tensor) -> ValueID { g.addConstant(name, t) }
        func v(_ name: String) -> ValueID { g.addValue(name, TensorType(.f32, dims: [.symbolic("?")])) }
        let w1 = c("w1", CodegenTests.random(.f32, [4, 4, 3, 3], seed: 1))
        let b1 = c("b1", CodegenTests.random(.f32, [4], seed: 2))
        let scale = c("scale", CodegenTests.random(.f32, [4], seed: 3, positive: true))
        let bias = c("bias", CodegenTests.random(.f32, [4], seed: 4))
        let mean = c("mean", CodegenTests.random(.f32, [4], seed: 5))
        let variance = c("var", CodegenTests.random(.f32, [4], seed: 6, positive: true))
        let w2 = c("w2", CodegenTests.random(.f32, [4, 4, 1, 1], seed: 7))
        let lo = c("lo", .scalar(0)), hi = c("hi", .scalar(6))
        let conv1 = v("conv1"), bn = v("bn"), relu = v("relu"), conv2 = v("conv2"), add = v("add"), out = v("y")
        g.nodes = [
            Node(name: "conv1", op: .conv(ConvAttributes(pads: [1, 1, 1, 1])), inputs: [x, w1, b1], outputs: [conv1], origin: origin),
            Node(name: "bn", op: .batchNormalization(epsilon: 1e-5), inputs: [conv1, scale, bias, mean, variance], outputs: [bn], origin: origin),
            Node(name: "relu", op: .unary(.relu), inputs: [bn], outputs: [relu], origin: origin),
            Node(name: "conv2", op: .conv(ConvAttributes()), inputs: [relu, w2], outputs: [conv2], origin: origin),
            Node(name: "add", op: .binary(.add), inputs: [x, conv2], outputs: [add], origin: origin),
            Node(name: "relu6", op: .clip, inputs: [add, lo, hi], outputs: [out], origin: origin),
        ]
        g.outputs = [out]
        return g
    }

    @Test func foldBatchNormScalesTheWeights() throws {
        var g = Self.residualBlock()
        try inferShapes(&g)
        let before = try ReferenceInterpreter(g).run(["x": CodegenTests.random(.f32, [1, 4, 6, 6], seed: 9)])
        foldBatchNorm(&g)
        try verify(g, requireStaticShapes: true)
        // before: conv1 → bn → relu; after: conv1 (folded) → relu
        #expect(g.nodes.map(\.name) == ["conv1", "relu", "conv2", "add", "relu6"])
        #expect(g.values[g.nodes[0].outputs[0]].name == "bn")
        let after = try ReferenceInterpreter(g).run(["x": CodegenTests.random(.f32, [1, 4, 6, 6], seed: 9)])
        #expect(Conformance.compare(after["y"]!, before["y"]!, rtol: 1e-5, atol: 1e-5) == nil)
    }

    @Test func fusePostOpsAndSum() throws {
        var g = Self.residualBlock()
        try inferShapes(&g)
        try Pipeline.fuse(&g)
        // after: conv1 {relu}; conv2 {sum, clip(0, 6)} with x as the addend
        #expect(g.nodes.count == 2)
        guard case .conv(let a1) = g.nodes[0].op, case .conv(let a2) = g.nodes[1].op else {
            Issue.record("expected two convolutions: \(printIR(g))")
            return
        }
        #expect(a1.postOps == [.relu])
        #expect(a2.postOps == [.sum, .clip(min: 0, max: 6)])
        #expect(g.nodes[1].inputs.count == 4 && g.nodes[1].inputs[3] == g.inputs[0])
        #expect(printIR(g).contains("post_ops=[sum, clip(0.0, 6.0)]"))
    }

    @Test func standaloneBatchNormBecomesAScaleShiftWithItsActivation() throws {
        var g = Graph(name: "preact")
        let x = g.addValue("x", TensorType(.f32, [1, 3, 4, 4]))
        g.inputs = [x]
        func c(_ name: String, _ seed: Int, positive: Bool = false) -> ValueID {
            g.addConstant(name, CodegenTests.random(.f32, [3], seed: seed, positive: positive))
        }
        let bn = g.addValue("bn", TensorType(.f32, dims: [])), y = g.addValue("y", TensorType(.f32, dims: []))
        g.nodes = [
            Node(name: "bn", op: .batchNormalization(epsilon: 1e-5), inputs: [x, c("s", 1, positive: true), c("b", 2), c("m", 3), c("v", 4, positive: true)], outputs: [bn], origin: Self.origin),
            Node(name: "relu", op: .unary(.relu), inputs: [bn], outputs: [y], origin: Self.origin),
        ]
        g.outputs = [y]
        try inferShapes(&g)
        let input = CodegenTests.random(.f32, [1, 3, 4, 4], seed: 5)
        let before = try ReferenceInterpreter(g).run(["x": input])["y"]!
        try Pipeline.fuse(&g)
        // after: %y = scale_shift(%x, %bn_scale, %bn_shift) {post_ops=[relu]}
        #expect(g.nodes.count == 1)
        #expect(g.nodes[0].op == .channelScaleShift(postOps: [.relu]))
        let after = try ReferenceInterpreter(g).run(["x": input])["y"]!
        #expect(Conformance.compare(after, before, rtol: 1e-5, atol: 1e-6) == nil)
    }

    /// MixNet's mixed conv: a Split, a 3×3 and a 5×5 depthwise conv, a Concat, BatchNormalization
    /// and `then` (SiLU as sigmoid and mul, or ReLU). The statistics and the activation move into
    /// the convs; the concat is left. A second concat whose input is also read elsewhere keeps
    /// its BatchNormalization (as a scale-and-shift).
    @Test(arguments: ["silu", "relu"])
    func batchNormAndActivationMoveIntoTheConvsOfAConcat(_ then: String) throws {
        var g = Graph(name: "mixed")
        let x = g.addValue("x", TensorType(.f32, [1, 6, 7, 7]))
        g.inputs = [x]
        func c(_ name: String, _ shape: [Int], _ seed: Int, positive: Bool = false) -> ValueID {
            g.addConstant(name, CodegenTests.random(.f32, shape, seed: seed, positive: positive))
        }
        func v(_ name: String) -> ValueID { g.addValue(name, TensorType(.f32, dims: [.symbolic("?")])) }
        let (x0, x1, a, b, cat, bn, sig, y) = (v("x0"), v("x1"), v("a"), v("b"), v("cat"), v("bn"), v("sig"), v("y"))
        let (a2, b2, cat2, bn2) = (v("a2"), v("b2"), v("cat2"), v("bn2"))
        func dw(_ k: Int) -> ConvAttributes { ConvAttributes(pads: [k / 2, k / 2, k / 2, k / 2], group: 2) }
        func stats(_ name: String, _ n: Int, _ seed: Int) -> [ValueID?] {
            [c("\(name)s", [n], seed, positive: true), c("\(name)b", [n], seed + 1), c("\(name)m", [n], seed + 2), c("\(name)v", [n], seed + 3, positive: true)]
        }
        g.nodes = [
            Node(name: "split", op: .split(axis: 1), inputs: [x, g.addConstant("sizes", Tensor(.s64, shape: [2], ints: [2, 4]))], outputs: [x0, x1], origin: Self.origin),
            Node(name: "dw3", op: .conv(dw(3)), inputs: [x0, c("w3", [2, 1, 3, 3], 1), c("b3", [2], 2)], outputs: [a], origin: Self.origin),
            Node(name: "dw5", op: .conv(ConvAttributes(pads: [2, 2, 2, 2], group: 4)), inputs: [x1, c("w5", [4, 1, 5, 5], 3)], outputs: [b], origin: Self.origin),
            Node(name: "cat", op: .concat(axis: 1), inputs: [a, b], outputs: [cat], origin: Self.origin),
            Node(name: "bn", op: .batchNormalization(epsilon: 1e-5), inputs: [cat] + stats("bn", 6, 10), outputs: [bn], origin: Self.origin),
        ]
        if then == "silu" {
            g.nodes += [Node(name: "sigmoid", op: .unary(.sigmoid), inputs: [bn], outputs: [sig], origin: Self.origin),
                        Node(name: "mul", op: .binary(.mul), inputs: [bn, sig], outputs: [y], origin: Self.origin)]
        } else {
            g.nodes.append(Node(name: "relu", op: .unary(.relu), inputs: [bn], outputs: [y], origin: Self.origin))
        }
        // The second: conv a2 is also a graph output, so nothing moves.
        g.nodes += [
            Node(name: "dw3b", op: .conv(dw(3)), inputs: [x0, c("w3b", [2, 1, 3, 3], 20)], outputs: [a2], origin: Self.origin),
            Node(name: "dw5b", op: .conv(ConvAttributes(pads: [2, 2, 2, 2], group: 4)), inputs: [x1, c("w5b", [4, 1, 5, 5], 21)], outputs: [b2], origin: Self.origin),
            Node(name: "cat2", op: .concat(axis: 1), inputs: [a2, b2], outputs: [cat2], origin: Self.origin),
            Node(name: "bn2", op: .batchNormalization(epsilon: 1e-5), inputs: [cat2] + stats("bn2", 6, 30), outputs: [bn2], origin: Self.origin),
        ]
        g.outputs = [y, bn2, a2]
        try inferShapes(&g)
        let input = CodegenTests.random(.f32, [1, 6, 7, 7], seed: 5)
        let want = try ReferenceInterpreter(g).run(["x": input])
        var fused = g
        try Pipeline.fuse(&fused)
        let post: PostOp = then == "silu" ? .silu : .relu
        let convs = fused.nodes.filter { if case .conv = $0.op { return true } else { return false } }
        #expect(convs.map(\.name) == ["dw3", "dw5", "dw3b", "dw5b"])
        #expect(convs.map { if case .conv(let a) = $0.op { return a.postOps } else { return [] } } == [[post], [post], [], []])
        #expect(fused.nodes.filter { $0.op == .concat(axis: 1) }.count == 2)
        #expect(!fused.nodes.contains { $0.op == .batchNormalization(epsilon: 1e-5) })
        #expect(fused.nodes.filter { if case .channelScaleShift = $0.op { return true } else { return false } }.count == 1)
        let got = try ReferenceInterpreter(fused).run(["x": input])
        for k in ["y", "bn2", "a2"] { #expect(Conformance.compare(got[k]!, want[k]!, rtol: 1e-5, atol: 1e-6) == nil, "\(k)") }
        let (compiled, _) = try compileAndRun(fused, ["x": input], name: "mixed_\(then)")
        for k in ["y", "bn2", "a2"] { #expect(Conformance.compare(compiled[k]!, want[k]!, rtol: 1e-4, atol: 1e-5) == nil, "compiled \(k)") }
    }

    /// MixNet's grouped pointwise conv written out: a Split into equal parts, a 1×1 conv per part
    /// (one without bias), a Concat, then BatchNormalization and ReLU. It becomes one conv with
    /// group 2 (the BatchNormalization folded into it, ReLU its post-op), nothing copied. Left as
    /// they are: a mixed conv (3×3 and 5×5 parts), unequal parts, and convs read elsewhere too.
    @Test func splitConvsAndConcatBecomeOneGroupedConv() throws {
        var g = Graph(name: "grouped")
        let x = g.addValue("x", TensorType(.f32, [2, 8, 5, 6]))
        g.inputs = [x]
        func c(_ name: String, _ shape: [Int], _ seed: Int, positive: Bool = false) -> ValueID {
            g.addConstant(name, CodegenTests.random(.f32, shape, seed: seed, positive: positive))
        }
        func v(_ name: String) -> ValueID { g.addValue(name, TensorType(.f32, dims: [.symbolic("?")])) }
        func node(_ name: String, _ op: Op, _ inputs: [ValueID?], _ outputs: [ValueID]) -> Node {
            Node(name: name, op: op, inputs: inputs, outputs: outputs, origin: Self.origin)
        }
        let stats: [ValueID?] = [c("s", [12], 1, positive: true), c("sb", [12], 2), c("m", [12], 3), c("var", [12], 4, positive: true)]
        let (x0, x1, a, b, cat, bn, y) = (v("x0"), v("x1"), v("a"), v("b"), v("cat"), v("bn"), v("y"))
        // Not merged: 3×3 and 5×5 parts; parts of 3 and 5 channels; a conv also a graph output.
        let (m0, m1, ma, mb, mcat) = (v("m0"), v("m1"), v("ma"), v("mb"), v("mcat"))
        let (u0, u1, ua, ub, ucat) = (v("u0"), v("u1"), v("ua"), v("ub"), v("ucat"))
        let (o0, o1, oa, ob, ocat) = (v("o0"), v("o1"), v("oa"), v("ob"), v("ocat"))
        g.nodes = [
            node("split", .split(axis: 1), [x], [x0, x1]),
            node("pw0", .conv(ConvAttributes()), [x0, c("w0", [6, 4, 1, 1], 5), c("b0", [6], 6)], [a]),
            node("pw1", .conv(ConvAttributes()), [x1, c("w1", [6, 4, 1, 1], 7)], [b]),
            node("cat", .concat(axis: 1), [a, b], [cat]),
            node("bn", .batchNormalization(epsilon: 1e-5), [cat] + stats, [bn]),
            node("relu", .unary(.relu), [bn], [y]),
            node("msplit", .split(axis: 1), [x], [m0, m1]),
            node("mix3", .conv(ConvAttributes(pads: [1, 1, 1, 1])), [m0, c("mw3", [3, 4, 3, 3], 8)], [ma]),
            node("mix5", .conv(ConvAttributes(pads: [2, 2, 2, 2])), [m1, c("mw5", [3, 4, 5, 5], 9)], [mb]),
            node("mcat", .concat(axis: 1), [ma, mb], [mcat]),
            node("usplit", .split(axis: 1), [x, g.addConstant("sizes", Tensor(.s64, shape: [2], ints: [3, 5]))], [u0, u1]),
            node("u3", .conv(ConvAttributes()), [u0, c("uw3", [4, 3, 1, 1], 10)], [ua]),
            node("u5", .conv(ConvAttributes()), [u1, c("uw5", [4, 5, 1, 1], 11)], [ub]),
            node("ucat", .concat(axis: 1), [ua, ub], [ucat]),
            node("osplit", .split(axis: 1), [x], [o0, o1]),
            node("o0", .conv(ConvAttributes()), [o0, c("ow0", [2, 4, 1, 1], 12)], [oa]),
            node("o1", .conv(ConvAttributes()), [o1, c("ow1", [2, 4, 1, 1], 13)], [ob]),
            node("ocat", .concat(axis: 1), [oa, ob], [ocat]),
        ]
        g.outputs = [y, mcat, ucat, ocat, oa]
        try inferShapes(&g)
        let input = CodegenTests.random(.f32, [2, 8, 5, 6], seed: 14)
        let want = try ReferenceInterpreter(g).run(["x": input])
        var fused = g
        try Pipeline.fuse(&fused)
        let convs = fused.nodes.compactMap { n -> (String, ConvAttributes)? in if case .conv(let a) = n.op { return (n.name, a) } else { return nil } }
        #expect(convs.map(\.0) == ["pw0", "mix3", "mix5", "u3", "u5", "o0", "o1"], "\(printIR(fused))")
        #expect(convs.map(\.1.group) == [2, 1, 1, 1, 1, 1, 1])
        #expect(convs[0].1.postOps == [.relu])
        #expect(!fused.nodes.contains { $0.name == "split" || $0.name == "cat" || $0.name == "bn" }, "\(printIR(fused))")
        #expect(fused.nodes.filter { if case .split = $0.op { return true } else { return false } }.count == 3)
        let outputs = ["y", "mcat", "ucat", "ocat", "oa"]
        let got = try ReferenceInterpreter(fused).run(["x": input])
        for k in outputs { #expect(Conformance.compare(got[k]!, want[k]!, rtol: 1e-5, atol: 1e-6) == nil, "\(k)") }
        let (compiled, _) = try compileAndRun(fused, ["x": input], name: "grouped")
        for k in outputs { #expect(Conformance.compare(compiled[k]!, want[k]!, rtol: 1e-4, atol: 1e-5) == nil, "compiled \(k)") }
    }

    @Test func decomposedGeluAndHardSwishAreRecognised() throws {
        var g = Graph(name: "acts")
        let x = g.addValue("x", TensorType(.f32, [2, 7]))
        g.inputs = [x]
        func c(_ v: Float) -> ValueID { g.addConstant("k\(g.values.count)", .scalar(v)) }
        func v(_ name: String) -> ValueID { g.addValue(name, TensorType(.f32, dims: [])) }
        let d = v("d"), e = v("e"), a = v("a"), m = v("m"), gelu = v("gelu")
        let a2 = v("a2"), cl = v("cl"), m2 = v("m2"), hs = v("hs")
        g.nodes = [
            Node(name: "div", op: .binary(.div), inputs: [x, c(1.4142135)], outputs: [d], origin: Self.origin),
            Node(name: "erf", op: .unary(.erf), inputs: [d], outputs: [e], origin: Self.origin),
            Node(name: "add", op: .binary(.add), inputs: [e, c(1)], outputs: [a], origin: Self.origin),
            Node(name: "mul", op: .binary(.mul), inputs: [x, a], outputs: [m], origin: Self.origin),
            Node(name: "half", op: .binary(.mul), inputs: [m, c(0.5)], outputs: [gelu], origin: Self.origin),
            Node(name: "add3", op: .binary(.add), inputs: [x, c(3)], outputs: [a2], origin: Self.origin),
            Node(name: "clip", op: .clip, inputs: [a2, c(0), c(6)], outputs: [cl], origin: Self.origin),
            Node(name: "mulx", op: .binary(.mul), inputs: [x, cl], outputs: [m2], origin: Self.origin),
            Node(name: "div6", op: .binary(.div), inputs: [m2, c(6)], outputs: [hs], origin: Self.origin),
        ]
        g.outputs = [gelu, hs]
        try inferShapes(&g)
        let input = CodegenTests.random(.f32, [2, 7], seed: 3)
        let before = try ReferenceInterpreter(g).run(["x": input])
        recognizeActivations(&g)
        try verify(g)
        // after: %gelu = gelu(%x); %hs = hard_swish(%x)
        #expect(g.nodes.map(\.op) == [.gelu(tanhApproximation: false), .unary(.hardSwish)])
        let after = try ReferenceInterpreter(g).run(["x": input])
        for k in ["gelu", "hs"] { #expect(Conformance.compare(after[k]!, before[k]!, rtol: 1e-5, atol: 1e-6) == nil, "\(k)") }
    }

    @Test func siluIsRecognised() throws {
        var g = Graph(name: "silu")
        let x = g.addValue("x", TensorType(.f32, [1, 2, 4, 4]))
        g.inputs = [x]
        let w = g.addConstant("w", CodegenTests.random(.f32, [3, 2, 1, 1], seed: 1))
        let c = g.addValue("c", TensorType(.f32, dims: [])), s = g.addValue("s", TensorType(.f32, dims: [])), y = g.addValue("y", TensorType(.f32, dims: []))
        g.nodes = [
            Node(name: "conv", op: .conv(ConvAttributes()), inputs: [x, w], outputs: [c], origin: Self.origin),
            Node(name: "sig", op: .unary(.sigmoid), inputs: [c], outputs: [s], origin: Self.origin),
            Node(name: "mul", op: .binary(.mul), inputs: [s, c], outputs: [y], origin: Self.origin),
        ]
        g.outputs = [y]
        try inferShapes(&g)
        fusePostOps(&g)
        #expect(g.nodes.count == 1)
        if case .conv(let a) = g.nodes[0].op { #expect(a.postOps == [.silu]) }
        #expect(g.nodes[0].outputs == [y])
    }

    @Test func readersOutsideTheChainBlockFusion() throws {
        var g = Self.residualBlock()
        g.outputs.append(g.nodes[3].outputs[0])  // conv2's output is now also a graph output
        try inferShapes(&g)
        try Pipeline.fuse(&g)
        // conv2 cannot absorb the add: its output is read outside. (The add and the clip after
        // it then run as one elementwise loop.)
        #expect(g.nodes.contains { n in
            if case .binary(.add) = n.op { return true }
            if case .elementwiseGroup(let e) = n.op { return e.steps.contains { $0.op == .binary(.add) } }
            return false
        })
    }

    /// YOLO's bottleneck, x + SiLU(conv(x)): the activation is fused, the add is not. oneDNN's
    /// f32 kernels without AVX-512 take a sum only as the first post-op (else its reference
    /// kernel runs).
    @Test func noSumAfterAnActivation() throws {
        var g = Graph(name: "silu_residual")
        let x = g.addValue("x", TensorType(.f32, [1, 4, 6, 6]))
        g.inputs = [x]
        let w = g.addConstant("w", CodegenTests.random(.f32, [4, 4, 3, 3], seed: 1))
        func v(_ name: String) -> ValueID { g.addValue(name, TensorType(.f32, dims: [.symbolic("?")])) }
        let c = v("c"), s = v("s"), m = v("m"), y = v("y")
        g.nodes = [
            Node(name: "conv", op: .conv(ConvAttributes(pads: [1, 1, 1, 1])), inputs: [x, w], outputs: [c], origin: Self.origin),
            Node(name: "sig", op: .unary(.sigmoid), inputs: [c], outputs: [s], origin: Self.origin),
            Node(name: "mul", op: .binary(.mul), inputs: [c, s], outputs: [m], origin: Self.origin),
            Node(name: "add", op: .binary(.add), inputs: [x, m], outputs: [y], origin: Self.origin),
        ]
        g.outputs = [y]
        try inferShapes(&g)
        try Pipeline.fuse(&g)
        guard case .conv(let a) = g.nodes[0].op else {
            Issue.record("expected the conv first: \(printIR(g))")
            return
        }
        #expect(a.postOps == [.silu], "\(printIR(g))")
        #expect(g.nodes.count == 2 && g.nodes[0].inputs.count < 4)
    }

    /// A transformer MLP as the TorchScript exporter writes it: MatMul → Add(bias [1, 1, N]) →
    /// GELU (x · 0.5 · (1 + erf(x / √2))). The bias and the GELU join the MatMul.
    @Test func matMulTakesItsBiasAndActivation() throws {
        var g = Graph(name: "mlp")
        let x = g.addValue("x", TensorType(.f32, [1, 7, 12]))
        g.inputs = [x]
        func v(_ name: String) -> ValueID { g.addValue(name, TensorType(.f32, dims: [.symbolic("?")])) }
        func c(_ name: String, _ t: Tensor) -> ValueID { g.addConstant(name, t) }
        let mm = v("mm"), biased = v("biased"), d = v("d"), e = v("e"), a = v("a"), m = v("m"), y = v("y")
        g.nodes = [
            Node(name: "fc", op: .matMul(MatMulAttributes()), inputs: [x, c("w", CodegenTests.random(.f32, [12, 9], seed: 1))], outputs: [mm], origin: Self.origin),
            Node(name: "bias", op: .binary(.add), inputs: [c("b", CodegenTests.random(.f32, [1, 1, 9], seed: 2)), mm], outputs: [biased], origin: Self.origin),
            Node(name: "div", op: .binary(.div), inputs: [biased, c("sqrt2", .scalar(1.4142135))], outputs: [d], origin: Self.origin),
            Node(name: "erf", op: .unary(.erf), inputs: [d], outputs: [e], origin: Self.origin),
            Node(name: "add1", op: .binary(.add), inputs: [e, c("one", .scalar(1))], outputs: [a], origin: Self.origin),
            Node(name: "mul", op: .binary(.mul), inputs: [biased, a], outputs: [m], origin: Self.origin),
            Node(name: "half", op: .binary(.mul), inputs: [m, c("h", .scalar(0.5))], outputs: [y], origin: Self.origin),
        ]
        g.outputs = [y]
        try inferShapes(&g)
        let inputs = ["x": CodegenTests.random(.f32, [1, 7, 12], seed: 3)]
        let want = try ReferenceInterpreter(g).run(inputs)
        try Pipeline.optimize(&g)
        #expect(g.nodes.count == 1, "\(printIR(g))")
        guard case .matMul(let attrs) = g.nodes[0].op else {
            Issue.record("expected one matmul: \(printIR(g))")
            return
        }
        #expect(attrs.postOps == [.gelu(tanhApproximation: false)])
        #expect(g.nodes[0].inputs.count == 3 && g.values[g.nodes[0].inputs[2]!].type.shape == [9])
        let (got, emitted) = try compileAndRun(g, inputs, name: "mlp")
        #expect(emitted.source.contains("matmul::desc(a_md, b_md, bias_md, dst_md)") && emitted.source.contains("eltwise_gelu_erf"))
        #expect(Conformance.compare(got["y"]!, want["y"]!, rtol: 1e-4, atol: 1e-5) == nil)
    }

    /// DeepLabV3's atrous branches on a small map: a 3×3 conv whose outer taps only read padding
    /// (dilation 9, pads 9 on 8×8) becomes 1×1; with dilation 3 every tap reads the input and the
    /// conv stays; along one axis only (dilations [9, 2]) the kernel becomes 1×3.
    @Test func convTapsThatOnlyReadPaddingGo() throws {
        var g = Graph(name: "atrous")
        let x = g.addValue("x", TensorType(.f32, [1, 5, 8, 8]))
        g.inputs = [x]
        func v(_ name: String) -> ValueID { g.addValue(name, TensorType(.f32, dims: [.symbolic("?")])) }
        let w = g.addConstant("w", CodegenTests.random(.f32, [6, 5, 3, 3], seed: 1))
        let a9 = v("a9"), a3 = v("a3"), mixed = v("mixed")
        g.nodes = [
            Node(name: "a9", op: .conv(ConvAttributes(pads: [9, 9, 9, 9], dilations: [9, 9])), inputs: [x, w, g.addConstant("b", CodegenTests.random(.f32, [6], seed: 2))], outputs: [a9], origin: Self.origin),
            Node(name: "a3", op: .conv(ConvAttributes(pads: [3, 3, 3, 3], dilations: [3, 3])), inputs: [x, w], outputs: [a3], origin: Self.origin),
            Node(name: "mixed", op: .conv(ConvAttributes(pads: [9, 2, 9, 2], dilations: [9, 2])), inputs: [x, g.addConstant("w2", CodegenTests.random(.f32, [6, 5, 3, 3], seed: 3))], outputs: [mixed], origin: Self.origin),
        ]
        g.outputs = [a9, a3, mixed]
        try inferShapes(&g)
        let inputs = ["x": CodegenTests.random(.f32, [1, 5, 8, 8], seed: 4)]
        let want = try ReferenceInterpreter(g).run(inputs)
        trimConvTaps(&g)
        try verify(g, requireStaticShapes: true)
        func kernel(_ k: Int) -> [Int] { Array(g.values[g.nodes[k].inputs[1]!].type.shape!.dropFirst(2)) }
        #expect(kernel(0) == [1, 1] && kernel(1) == [3, 3] && kernel(2) == [1, 3])
        guard case .conv(let c0) = g.nodes[0].op, case .conv(let c2) = g.nodes[2].op else { return }
        #expect(c0.pads == [0, 0, 0, 0] && c2.pads == [0, 2, 0, 2])
        // w is shared by a9 and a3: a9 reads a trimmed copy, a3 the original.
        #expect(g.nodes[0].inputs[1] != w && g.nodes[1].inputs[1] == w)
        let got = try ReferenceInterpreter(g).run(inputs)
        let (compiled, _) = try compileAndRun(g, inputs, name: "atrous")
        for k in ["a9", "a3", "mixed"] {
            #expect(Conformance.compare(got[k]!, want[k]!, rtol: 1e-5, atol: 1e-6) == nil, "\(k)")
            #expect(Conformance.compare(compiled[k]!, want[k]!, rtol: 1e-4, atol: 1e-5) == nil, "\(k)")
        }
    }

    /// Begin pads wider than 3 become an explicit channels-last Pad in front of the conv (oneDNN's
    /// direct kernels without AVX-512 take only narrow ones): an atrous conv and an 11×11
    /// depthwise conv after a conv. While Kiln's own conv kernels may run, the atrous conv (8
    /// input channels, one group) keeps its pads: that kernel reads them as zeros.
    @Test func widePadsBecomeAPadNode() throws {
        var g = Graph(name: "wide")
        let x = g.addValue("x", TensorType(.f32, [1, 4, 9, 9]))
        g.inputs = [x]
        func v(_ name: String) -> ValueID { g.addValue(name, TensorType(.f32, dims: [.symbolic("?")])) }
        func c(_ name: String, _ shape: [Int], _ seed: Int) -> ValueID { g.addConstant(name, CodegenTests.random(.f32, shape, seed: seed)) }
        let c1 = v("c1"), atrous = v("atrous"), dw = v("dw")
        g.nodes = [
            Node(name: "c1", op: .conv(ConvAttributes(pads: [1, 1, 1, 1])), inputs: [x, c("w1", [8, 4, 3, 3], 1)], outputs: [c1], origin: Self.origin),
            Node(name: "atrous", op: .conv(ConvAttributes(pads: [4, 4, 4, 4], dilations: [4, 4], postOps: [.relu])), inputs: [c1, c("w2", [6, 8, 3, 3], 2), c("b2", [6], 3)], outputs: [atrous], origin: Self.origin),
            Node(name: "dw", op: .conv(ConvAttributes(strides: [2, 2], pads: [5, 5, 5, 5], group: 8)), inputs: [c1, c("w3", [8, 1, 11, 11], 4)], outputs: [dw], origin: Self.origin),
        ]
        g.outputs = [atrous, dw]
        try inferShapes(&g)
        let inputs = ["x": CodegenTests.random(.f32, [1, 4, 9, 9], seed: 5)]
        let want = try ReferenceInterpreter(g).run(inputs)
        func padNodes(_ g: Graph) -> [Node] { g.nodes.filter { if case .pad = $0.op { return true } else { return false } } }
        var oneDNNOnly = g
        try Pipeline.optimize(&oneDNNOnly, kilnConvKernels: false)
        let pads = padNodes(oneDNNOnly)
        #expect(pads.count == 2 && pads.allSatisfy { oneDNNOnly.values[$0.outputs[0]].layout == .channelsLast }, "\(printIR(oneDNNOnly))")
        for n in oneDNNOnly.nodes { if case .conv(let a) = n.op, n.name != "c1" { #expect(a.pads == [0, 0, 0, 0], "\(n.name)") } }
        try Pipeline.optimize(&g)
        #expect(padNodes(g).map(\.name) == ["dw_pad"], "\(printIR(g))")
        for (graph, policy) in [(oneDNNOnly, DirectConvPolicy.off), (g, .auto)] {
            let (got, _) = try compileAndRun(graph, inputs, name: "wide", directConv: policy)
            for k in ["atrous", "dw"] { #expect(Conformance.compare(got[k]!, want[k]!, rtol: 1e-4, atol: 1e-5) == nil, "\(policy) \(k)") }
        }
    }

    @Test func sumWritesInPlaceWhenTheAddendDies() throws {
        var g = Self.residualBlock()
        // Make the addend an intermediate: y0 = relu(x) feeds conv1 and the add.
        let x = g.inputs[0]
        let r = g.addValue("x_relu", TensorType(.f32, [1, 4, 6, 6]))
        g.nodes.insert(Node(name: "pre", op: .unary(.relu), inputs: [x], outputs: [r], origin: Self.origin), at: 0)
        for i in 1..<g.nodes.count { g.nodes[i].inputs = g.nodes[i].inputs.map { $0 == x ? r : $0 } }
        // And a last node, so that the block's output is an intermediate.
        let final = g.addValue("final", TensorType(.f32, [1, 4, 6, 6]))
        g.nodes.append(Node(name: "exp", op: .unary(.exp), inputs: [g.outputs[0]], outputs: [final], origin: Self.origin))
        g.outputs = [final]
        try inferShapes(&g)
        try Pipeline.fuse(&g)
        let plan = planMemory(g)
        let conv2 = g.nodes[g.nodes.count - 2]
        guard case .conv(let a) = conv2.op, a.postOps.contains(.sum) else {
            Issue.record("expected a sum post-op: \(printIR(g))")
            return
        }
        // The addend (x_relu) dies at conv2: conv2 accumulates into its buffer.
        #expect(plan.storage[conv2.outputs[0]] == plan.storage[conv2.inputs[3]!])
        if case .arena = plan.storage[r]! {} else { Issue.record("x_relu should live in the arena") }
    }

    @Test func fusedGraphsCompileAndMatchTheReference() throws {
        var graphs: [(String, Graph)] = []
        var inputs: [String: Tensor] = [:]
        // The residual block; a Gemm with a fused activation; the SiLU conv.
        var block = Self.residualBlock()
        try inferShapes(&block)
        graphs.append(("block", block))
        inputs["block/x"] = CodegenTests.random(.f32, [1, 4, 6, 6], seed: 11)
        for (name, op) in [("gemm_relu", Op.unary(.relu)), ("gemm_gelu", .gelu(tanhApproximation: false)),
                           ("gemm_hard_sigmoid", .hardSigmoid(alpha: 0.2, beta: 0.5)), ("gemm_hard_swish", .unary(.hardSwish)),
                           ("gemm_tanh", .unary(.tanh)), ("gemm_leaky", .leakyRelu(alpha: 0.1)), ("gemm_sigmoid", .unary(.sigmoid))] {
            var g = Graph(name: name)
            let a = g.addValue("a", TensorType(.f32, [3, 9]))
            let b = g.addConstant("b", CodegenTests.random(.f32, [9, 5], seed: 12))
            let c = g.addConstant("c", CodegenTests.random(.f32, [5], seed: 13))
            let m = g.addValue("m", TensorType(.f32, dims: [])), y = g.addValue("y", TensorType(.f32, dims: []))
            g.inputs = [a]
            g.nodes = [Node(name: "gemm", op: .gemm(GemmAttributes()), inputs: [a, b, c], outputs: [m], origin: Self.origin),
                       Node(name: "act", op: op, inputs: [m], outputs: [y], origin: Self.origin)]
            g.outputs = [y]
            try inferShapes(&g)
            graphs.append((name, g))
            inputs["\(name)/a"] = CodegenTests.random(.f32, [3, 9], seed: 14)
        }
        let merged = mergeGraphs(graphs, name: "fused")
        let want = try ReferenceInterpreter(merged).run(inputs)
        var fused = merged
        try Pipeline.optimize(&fused)
        // Two convolutions and seven Gemms, plus the block's layout conversions in and out.
        #expect(fused.nodes.count == 2 + 7 + 2)
        let (got, emitted) = try compileAndRun(fused, inputs, name: "fused")
        for (k, expected) in want {
            #expect(Conformance.compare(got[k]!, expected, rtol: 1e-4, atol: 1e-5) == nil, "\(k)")
        }
        // With the conversion out (a oneDNN reorder); the input's few channels go in by Kiln's copy.
        #expect(emitted.oneDNNNodes == 9 + 1)
    }
}
