import Foundation
import Testing
import KilnCodegen
import KilnDriver
import KilnIR
import KilnPasses
import KilnReference

/// FuseElementwise: chains of elementwise ops as one loop, and an elementwise op feeding a
/// reduction in the reduction's loop; IR before and after, then compiled against the reference.
@Suite(.serialized) struct ElementwiseFusionTests {
    static let origin = NodeOrigin(opType: "test", version: 17)

    /// A normalization written out op by op, then a scaled, clipped, rectified result:
    ///     m = mean(x, 1); d = x − m; v = mean(d·d, 1); s = sqrt(v + eps)
    ///     y = relu(clip(d / s · 2, max: 1))
    static func normalization() -> (Graph, [String: Tensor]) {
        var g = Graph(name: "norm")
        let x = g.addValue("x", TensorType(.f32, [4, 16]))
        g.inputs = [x]
        func c(_ name: String, _ t: Tensor) -> ValueID { g.addConstant(name, t) }
        func v(_ name: String) -> ValueID { g.addValue(name, TensorType(.f32, dims: [.symbolic("?")])) }
        let axis = c("axis", .vector(ints: [1]))
        let m = v("m"), d = v("d"), q = v("q"), variance = v("variance"), e = v("e"), s = v("s")
        let n = v("n"), k = v("k"), cl = v("cl"), y = v("y")
        g.nodes = [
            Node(name: "mean", op: .reduce(.mean, keepDims: true, noopWithEmptyAxes: false), inputs: [x, axis], outputs: [m], origin: origin),
            Node(name: "sub", op: .binary(.sub), inputs: [x, m], outputs: [d], origin: origin),
            Node(name: "square", op: .binary(.mul), inputs: [d, d], outputs: [q], origin: origin),
            Node(name: "var", op: .reduce(.mean, keepDims: true, noopWithEmptyAxes: false), inputs: [q, axis], outputs: [variance], origin: origin),
            Node(name: "add_eps", op: .binary(.add), inputs: [variance, c("eps", .scalar(1e-5))], outputs: [e], origin: origin),
            Node(name: "sqrt", op: .unary(.sqrt), inputs: [e], outputs: [s], origin: origin),
            Node(name: "div", op: .binary(.div), inputs: [d, s], outputs: [n], origin: origin),
            Node(name: "twice", op: .binary(.mul), inputs: [n, c("two", .scalar(2))], outputs: [k], origin: origin),
            Node(name: "clip", op: .clip, inputs: [k, nil, c("one", .scalar(1))], outputs: [cl], origin: origin),
            Node(name: "relu", op: .unary(.relu), inputs: [cl], outputs: [y], origin: origin),
        ]
        g.outputs = [y]
        return (g, ["x": CodegenTests.random(.f32, [4, 16], seed: 21)])
    }

    @Test func chainsAndReductionsBecomeOneLoopEach() throws {
        var (g, inputs) = Self.normalization()
        try inferShapes(&g)
        let before = try ReferenceInterpreter(g).run(inputs)
        fuseElementwise(&g)
        try verify(g, requireStaticShapes: true)
        // after:
        //   %m = reduce_mean(%x, %axis)                       (its input is no elementwise op)
        //   %d = sub(%x, %m)                                  (two readers: stays on its own)
        //   %variance = elementwise_reduce_mean(%d) {[s0=mul(in0, in0)] axes=[1]}
        //   %s = elementwise(%variance, %eps) {[s0=add(in0, in1); s1=sqrt(s0)]}
        //   %y = elementwise(%d, %s, %two, %one) {[div, mul, clip, relu]}   (s is [4x1]: not inlined)
        #expect(g.nodes.map(\.name) == ["mean", "sub", "var", "sqrt", "relu"])
        #expect(g.nodes.map(\.op.name) == ["reduce_mean", "sub", "elementwise_reduce_mean", "elementwise", "elementwise"])
        let text = printIR(g)
        #expect(text.contains("%variance = elementwise_reduce_mean(%d) {steps=[s0=mul(in0, in0)] reduce_mean axes=[1] keepdims=true}"), "\(text)")
        #expect(text.contains("%s = elementwise(%variance, %eps) {steps=[s0=add(in0, in1); s1=sqrt(s0)]}"), "\(text)")
        #expect(text.contains("%y = elementwise(%d, %s, %two, %one) {steps=[s0=div(in0, in1); s1=mul(s0, in2); s2=clip(s1, _, in3); s3=relu(s2)]}"), "\(text)")
        let after = try ReferenceInterpreter(g).run(inputs)
        #expect(Conformance.compare(after["y"]!, before["y"]!, rtol: 1e-6, atol: 1e-6) == nil)
    }

    @Test func readersOutsideTheChainKeepTheirValue() throws {
        var (g, _) = Self.normalization()
        g.outputs.append(g.nodes[7].outputs[0])  // `twice` is also a graph output
        try inferShapes(&g)
        fuseElementwise(&g)
        #expect(g.nodes.map(\.name) == ["mean", "sub", "var", "sqrt", "twice", "relu"])
        #expect(g.nodes[5].op == .elementwiseGroup(ElementwiseGroup(steps: [
            .init(op: .clip, operands: [.input(0), .absent, .input(1)]),
            .init(op: .unary(.relu), operands: [.step(0)]),
        ])))
    }

    /// conv → ·k + b (per channel) → tanh → · x: a chain in the channels-last layout.
    static func channelsLastChain() -> (Graph, [String: Tensor]) {
        var g = Graph(name: "nhwc_chain")
        let x = g.addValue("x", TensorType(.f32, [1, 8, 5, 5]))
        g.inputs = [x]
        func c(_ name: String, _ t: Tensor) -> ValueID { g.addConstant(name, t) }
        func v(_ name: String) -> ValueID { g.addValue(name, TensorType(.f32, dims: [.symbolic("?")])) }
        let cv = v("cv"), sc = v("sc"), sh = v("sh"), t = v("t"), y = v("y")
        g.nodes = [
            Node(name: "conv", op: .conv(ConvAttributes()), inputs: [x, c("w", CodegenTests.random(.f32, [8, 8, 1, 1], seed: 1))], outputs: [cv], origin: origin),
            Node(name: "scale", op: .binary(.mul), inputs: [cv, c("k", CodegenTests.random(.f32, [8, 1, 1], seed: 2))], outputs: [sc], origin: origin),
            Node(name: "shift", op: .binary(.add), inputs: [sc, c("b", CodegenTests.random(.f32, [8, 1, 1], seed: 3))], outputs: [sh], origin: origin),
            Node(name: "tanh", op: .unary(.tanh), inputs: [sh], outputs: [t], origin: origin),
            Node(name: "gate", op: .binary(.mul), inputs: [t, x], outputs: [y], origin: origin),
        ]
        g.outputs = [y]
        return (g, ["x": CodegenTests.random(.f32, [1, 8, 5, 5], seed: 4)])
    }

    @Test func fusedLoopsCompileAndMatchTheReference() throws {
        for (graph, inputs) in [Self.normalization(), Self.channelsLastChain()] {
            var g = graph
            try inferShapes(&g)
            let want = try ReferenceInterpreter(g).run(inputs)
            try Pipeline.optimize(&g)
            #expect(g.nodes.contains { if case .elementwiseGroup = $0.op { return true } else { return false } })
            if g.name == "nhwc_chain" {
                let group = g.nodes.first { if case .elementwiseGroup = $0.op { return true } else { return false } }!
                #expect(g.values[group.outputs[0]].layout == .channelsLast)
            }
            let (got, emitted) = try compileAndRun(g, inputs, name: g.name)
            // A strided loop where operands broadcast, a flat one where none does.
            #expect(emitted.source.contains("kiln::for_each_strided<") || emitted.source.contains("for (int64_t k = 0; k < "))
            let problem = Conformance.compare(got["y"]!, want["y"]!, rtol: 1e-5, atol: 1e-6)
            #expect(problem == nil, "\(g.name): \(problem ?? "")")
        }
    }

    /// A quantized residual with a per-channel weight, as in PP-OCR's FPN (x + x·w, requantized) over
    /// 24 channels: the dequantization of x, read twice, is inlined into the loop (the loop reads
    /// u8 only), and rows of 24 go four at a time. Against the reference within one quantization
    /// step (g++ may fuse a multiply and an add).
    @Test func quantizedResidualOverShortRowsMatchesTheReference() throws {
        var g = Graph(name: "short_rows")
        let x = g.addValue("x", TensorType(.u8, [4, 4, 24])), w = g.addValue("w", TensorType(.f32, [24]))
        g.inputs = [x, w]
        func v(_ name: String) -> ValueID { g.addValue(name, TensorType(.f32, dims: [.symbolic("?")])) }
        let scale = g.addConstant("s", .scalar(0.05)), zero = g.addConstant("z", Tensor(.u8, shape: [], ints: [120]))
        let d = v("d"), m = v("m"), a = v("a"), y = g.addValue("y", TensorType(.u8, dims: [.symbolic("?")]))
        g.nodes = [
            Node(name: "dq", op: .dequantizeLinear(axis: 1), inputs: [x, scale, zero], outputs: [d], origin: Self.origin),
            Node(name: "mul", op: .binary(.mul), inputs: [d, w], outputs: [m], origin: Self.origin),
            Node(name: "add", op: .binary(.add), inputs: [d, m], outputs: [a], origin: Self.origin),
            Node(name: "q", op: .quantizeLinear(axis: 1, outputType: .u8), inputs: [a, g.addConstant("s2", .scalar(0.08)), zero], outputs: [y], origin: Self.origin),
        ]
        g.outputs = [y]
        try inferShapes(&g)
        let inputs = ["x": CodegenTests.random(.u8, [4, 4, 24], seed: 5), "w": CodegenTests.random(.f32, [24], seed: 6)]
        let want = try ReferenceInterpreter(g).run(inputs)
        try Pipeline.optimize(&g)
        #expect(g.nodes.count == 1 && g.nodes[0].inputs.first == x)
        let (got, emitted) = try compileAndRun(g, inputs, name: g.name)
        #expect(emitted.source.contains("k < 96; k++"))
        #expect(Conformance.compare(got["y"]!, want["y"]!, rtol: 0, atol: 1) == nil, "\(Conformance.compare(got["y"]!, want["y"]!, rtol: 0, atol: 1) ?? "")")
    }
}
