import Foundation
import Testing
import KilnCodegen
import KilnDriver
import KilnIR
import KilnPasses
import KilnReference
import KilnToolchain
import KilnTarget

/// The layout pass: channels-last between convolutions, conversions only at the edges and
/// before shape-reinterpreting ops; and the channels-last kernels, compiled and compared.
@Suite(.serialized) struct LayoutTests {
    static let origin = NodeOrigin(opType: "test", version: 17)

    /// conv → max_pool → [conv, batch_norm] → concat → mul by a per-channel constant →
    /// global_avg_pool → flatten → gemm; and avg_pool on a branch returned as a 4-D output.
    static func network() -> (Graph, [String: Tensor]) {
        var g = Graph(name: "net")
        let x = g.addValue("x", TensorType(.f32, [1, 3, 9, 9]))
        g.inputs = [x]
        func c(_ name: String, _ t: Tensor) -> ValueID { g.addConstant(name, t) }
        func v(_ name: String) -> ValueID { g.addValue(name, TensorType(.f32, dims: [.symbolic("?")])) }
        func r(_ shape: [Int], _ seed: Int, positive: Bool = false) -> Tensor { CodegenTests.random(.f32, shape, seed: seed, positive: positive) }
        let c1 = v("c1"), p1 = v("p1"), c2 = v("c2"), bn = v("bn"), cat = v("cat"), scaled = v("scaled")
        let gap = v("gap"), flat = v("flat"), logits = v("logits"), avg = v("avg")
        g.nodes = [
            Node(name: "conv1", op: .conv(ConvAttributes(pads: [1, 1, 1, 1], postOps: [.relu])), inputs: [x, c("w1", r([8, 3, 3, 3], 1)), c("b1", r([8], 2))], outputs: [c1], origin: origin),
            Node(name: "pool", op: .maxPool(PoolAttributes(kernelShape: [3, 3], strides: [2, 2], pads: [1, 1, 1, 1])), inputs: [c1], outputs: [p1], origin: origin),
            Node(name: "conv2", op: .conv(ConvAttributes(pads: [1, 1, 1, 1])), inputs: [p1, c("w2", r([8, 8, 3, 3], 3))], outputs: [c2], origin: origin),
            Node(name: "bn", op: .batchNormalization(epsilon: 1e-5), inputs: [p1, c("s", r([8], 4, positive: true)), c("b", r([8], 5)), c("m", r([8], 6)), c("var", r([8], 7, positive: true))], outputs: [bn], origin: origin),
            Node(name: "cat", op: .concat(axis: 1), inputs: [c2, bn], outputs: [cat], origin: origin),
            Node(name: "scale", op: .binary(.mul), inputs: [cat, c("k", r([16, 1, 1], 8))], outputs: [scaled], origin: origin),
            Node(name: "gap", op: .globalAveragePool, inputs: [scaled], outputs: [gap], origin: origin),
            Node(name: "flat", op: .flatten(axis: 1), inputs: [gap], outputs: [flat], origin: origin),
            Node(name: "fc", op: .gemm(GemmAttributes(transB: true)), inputs: [flat, c("fw", r([5, 16], 9)), c("fb", r([5], 10))], outputs: [logits], origin: origin),
            Node(name: "avg", op: .averagePool(PoolAttributes(kernelShape: [2, 2], strides: [2, 2], countIncludePad: true)), inputs: [scaled], outputs: [avg], origin: origin),
        ]
        g.outputs = [logits, avg]
        return (g, ["x": CodegenTests.random(.f32, [1, 3, 9, 9], seed: 11)])
    }

    /// `--cpu native` guarantees AVX-512 (and gets the blocked layout's choice) by the whole
    /// flag avx512f of the first processor, not by a prefix: avx512_fp16 alone is not it.
    @Test func hostCPUFlagsAreWholeWords() {
        let two = "processor\t: 0\nmodel name\t: CPU A\nflags\t\t: fpu avx2 avx512_fp16\n\nprocessor\t: 1\nmodel name\t: CPU B\nflags\t\t: fpu avx512f\n"
        let cpu = HostCPU.parse(two)
        #expect(cpu.model == "CPU A")
        #expect(cpu.flags == ["fpu", "avx2", "avx512_fp16"])
        #expect(!cpu.flags.contains("avx512f"))
        #expect(HostCPU.parse("flags : sse avx512f avx512bw\n").flags.contains("avx512f"))
        #expect(HostCPU.parse("") == HostCPU(model: "unknown CPU", flags: []))
    }

    @Test func convolutionsAndTheirNeighboursStayChannelsLast() throws {
        var (g, _) = Self.network()
        try inferShapes(&g)
        assignLayouts(&g)
        try verify(g, requireStaticShapes: true)
        let layoutOf = Dictionary(uniqueKeysWithValues: g.values.map { ($0.name, $0.layout) })
        for name in ["c1", "p1", "c2", "bn", "cat", "scaled", "avg_nhwc"] { #expect(layoutOf[name] == .channelsLast, "\(name)") }
        for name in ["x", "gap_plain", "flat", "logits", "avg"] { #expect(layoutOf[name] == .plain, "\(name)") }
        // Conversions: the input, before flatten (a no-op copy for N x C x 1 x 1), and the 4-D output.
        let converts = g.nodes.filter { $0.op == .layoutConvert }.map(\.name)
        #expect(converts == ["x_to_nhwc", "gap_to_plain", "avg_to_plain"])
        #expect(printIR(g).contains("%c1 = conv(%x_nhwc, %w1, %b1) {group=1 pads=[1, 1, 1, 1] post_ops=[relu]} : f32[1x8x9x9] nhwc"))
    }

    /// ShuffleNet's block: concat → channel shuffle → split, all channels-last.
    static func shuffleBlock() -> (Graph, [String: Tensor]) {
        var g = Graph(name: "shuffle")
        let x = g.addValue("x", TensorType(.f32, [1, 4, 5, 3]))
        g.inputs = [x]
        func v(_ name: String) -> ValueID { g.addValue(name, TensorType(.f32, dims: [.symbolic("?")])) }
        let c1 = v("c1"), c2 = v("c2"), cat = v("cat"), r = v("r"), t = v("t"), sh = v("sh"), a = v("a"), b = v("b"), y = v("y")
        let w1 = g.addConstant("w1", CodegenTests.random(.f32, [4, 4, 1, 1], seed: 1))
        let w2 = g.addConstant("w2", CodegenTests.random(.f32, [4, 4, 1, 1], seed: 2))
        g.nodes = [
            Node(name: "conv1", op: .conv(ConvAttributes()), inputs: [x, w1], outputs: [c1], origin: origin),
            Node(name: "conv2", op: .conv(ConvAttributes()), inputs: [x, w2], outputs: [c2], origin: origin),
            Node(name: "cat", op: .concat(axis: 1), inputs: [c1, c2], outputs: [cat], origin: origin),
            Node(name: "r", op: .reshape(allowZero: false), inputs: [cat, g.addConstant("s5", .vector(ints: [1, 2, 4, 5, 3]))], outputs: [r], origin: origin),
            Node(name: "t", op: .transpose(perm: [0, 2, 1, 3, 4]), inputs: [r], outputs: [t], origin: origin),
            Node(name: "sh", op: .reshape(allowZero: false), inputs: [t, g.addConstant("s4", .vector(ints: [1, 8, 5, 3]))], outputs: [sh], origin: origin),
            Node(name: "split", op: .split(axis: 1), inputs: [sh, g.addConstant("sizes", .vector(ints: [4, 4]))], outputs: [a, b], origin: origin),
            Node(name: "add", op: .binary(.add), inputs: [a, b], outputs: [y], origin: origin),
        ]
        g.outputs = [y]
        return (g, ["x": CodegenTests.random(.f32, [1, 4, 5, 3], seed: 3)])
    }

    @Test func channelShuffleStaysChannelsLast() throws {
        var (g, inputs) = Self.shuffleBlock()
        try inferShapes(&g)
        let want = try ReferenceInterpreter(g).run(inputs)
        try Pipeline.optimize(&g)
        // before: reshape → transpose → reshape; after: one gather of channels, no conversions inside.
        #expect(g.nodes.map(\.op.name) == ["layout_convert", "conv", "conv", "concat", "gather", "split", "add", "layout_convert"])
        let got = try ReferenceInterpreter(g).run(inputs)
        #expect(Conformance.compare(got["y"]!, want["y"]!, rtol: 1e-6, atol: 1e-6) == nil)
        let (compiled, emitted) = try compileAndRun(g, inputs, name: "shuffle")
        #expect(emitted.source.contains("kiln::channel_shuffle<2>"))
        #expect(Conformance.compare(compiled["y"]!, want["y"]!, rtol: 1e-4, atol: 1e-5) == nil)
    }

    @Test func spatialMeanBecomesGlobalPooling() throws {
        var g = Graph(name: "mean")
        let x = g.addValue("x", TensorType(.f32, [1, 3, 5, 4]))
        g.inputs = [x]
        let w = g.addConstant("w", CodegenTests.random(.f32, [6, 3, 1, 1], seed: 1))
        let c = g.addValue("c", TensorType(.f32, dims: [])), y = g.addValue("y", TensorType(.f32, dims: []))
        g.nodes = [
            Node(name: "conv", op: .conv(ConvAttributes()), inputs: [x, w], outputs: [c], origin: Self.origin),
            Node(name: "mean", op: .reduce(.mean, keepDims: false, noopWithEmptyAxes: false), inputs: [c, g.addConstant("axes", .vector(ints: [2, 3]))], outputs: [y], origin: Self.origin),
        ]
        g.outputs = [y]
        try inferShapes(&g)
        let input = ["x": CodegenTests.random(.f32, [1, 3, 5, 4], seed: 2)]
        let want = try ReferenceInterpreter(g).run(input)
        try Pipeline.optimize(&g)
        // after: conv (nhwc) → global_average_pool (nhwc) → reshape of the 1x1 result (no real conversion)
        #expect(g.nodes.map(\.op.name) == ["layout_convert", "conv", "global_average_pool", "layout_convert", "reshape"])
        #expect(Conformance.compare(try ReferenceInterpreter(g).run(input)["y"]!, want["y"]!, rtol: 1e-6, atol: 1e-6) == nil)
    }

    /// YOLO's neck and DeepLab's head: conv → resize (nearest 2×, linear to a size) → conv stays
    /// channels-last (kiln::resize_hw along the channels); a resize that is a graph output runs
    /// plain on the converted input; a resize of the channel axis takes the generic kernel.
    /// A detector's int8 neck: conv → quantize → nearest resize ×2 of the u8 values → dequantize →
    /// conv: the u8 resize stays channels-last too (kiln::resize_hw_nearest), no conversion on
    /// either side, and copies the same bytes as the reference.
    @Test func quantizedNearestResizeStaysChannelsLast() throws {
        var g = Graph(name: "upsample_u8")
        let x = g.addValue("x", TensorType(.f32, [1, 3, 5, 6]))
        g.inputs = [x]
        func v(_ name: String) -> ValueID { g.addValue(name, TensorType(.f32, dims: [.symbolic("?")])) }
        let c1 = v("c1"), q = v("q"), up = v("up"), d = v("d"), c2 = v("c2")
        let scale = g.addConstant("scale", .scalar(0.05)), zero = g.addConstant("zero", Tensor(.u8, shape: [], ints: [128]))
        let attrs = ResizeAttributes(mode: .nearest, coordinateTransformation: .asymmetric, nearestMode: .floor)
        g.nodes = [
            Node(name: "conv1", op: .conv(ConvAttributes(pads: [1, 1, 1, 1])), inputs: [x, g.addConstant("w1", CodegenTests.random(.f32, [19, 3, 3, 3], seed: 1))], outputs: [c1], origin: Self.origin),
            Node(name: "q", op: .quantizeLinear(axis: 1, outputType: .u8), inputs: [c1, scale, zero], outputs: [q], origin: Self.origin),
            Node(name: "up", op: .resize(attrs), inputs: [q, nil, g.addConstant("sc", Tensor(.f32, shape: [4], floats: [1, 1, 2, 2]))], outputs: [up], origin: Self.origin),
            Node(name: "d", op: .dequantizeLinear(axis: 1), inputs: [up, scale, zero], outputs: [d], origin: Self.origin),
            Node(name: "conv2", op: .conv(ConvAttributes()), inputs: [d, g.addConstant("w2", CodegenTests.random(.f32, [4, 19, 1, 1], seed: 2))], outputs: [c2], origin: Self.origin),
        ]
        g.outputs = [c2]
        try inferShapes(&g)
        let inputs = ["x": CodegenTests.random(.f32, [1, 3, 5, 6], seed: 3)]
        let want = try ReferenceInterpreter(g).run(inputs)
        try Pipeline.optimize(&g)
        let layoutOf = Dictionary(uniqueKeysWithValues: g.values.map { ($0.name, $0.layout) })
        #expect(layoutOf["up"] == .channelsLast && g.values.first { $0.name == "up" }?.type.elementType == .u8)
        #expect(g.nodes.filter { $0.op == .layoutConvert }.count == 2)  // the image in, the result out
        let (got, emitted) = try compileAndRun(g, inputs, name: "upsample_u8")
        #expect(emitted.source.contains("kiln::resize_hw_nearest(v"))
        #expect(Conformance.compare(got["c2"]!, want["c2"]!, rtol: 1e-5, atol: 1e-5) == nil, "\(Conformance.compare(got["c2"]!, want["c2"]!, rtol: 1e-5, atol: 1e-5) ?? "")")
    }

    @Test(arguments: [ResizeAttributes.Mode.nearest, .linear])
    func spatialResizeStaysChannelsLast(_ mode: ResizeAttributes.Mode) throws {
        var g = Graph(name: "upsample")
        let x = g.addValue("x", TensorType(.f32, [1, 3, 5, 6]))
        g.inputs = [x]
        func v(_ name: String) -> ValueID { g.addValue(name, TensorType(.f32, dims: [.symbolic("?")])) }
        let c1 = v("c1"), up = v("up"), c2 = v("c2"), head = v("head"), mixed = v("mixed")
        let attrs = ResizeAttributes(mode: mode, coordinateTransformation: mode == .nearest ? .asymmetric : .halfPixel,
                                     nearestMode: .floor)
        g.nodes = [
            Node(name: "conv1", op: .conv(ConvAttributes(pads: [1, 1, 1, 1])), inputs: [x, g.addConstant("w1", CodegenTests.random(.f32, [19, 3, 3, 3], seed: 1))], outputs: [c1], origin: Self.origin),
            Node(name: "up", op: .resize(attrs), inputs: [c1, nil, g.addConstant("sc", Tensor(.f32, shape: [4], floats: [1, 1, 2, 2]))], outputs: [up], origin: Self.origin),
            Node(name: "conv2", op: .conv(ConvAttributes()), inputs: [up, g.addConstant("w2", CodegenTests.random(.f32, [4, 19, 1, 1], seed: 2))], outputs: [c2], origin: Self.origin),
            Node(name: "head", op: .resize(attrs), inputs: [c2, nil, nil, g.addConstant("sz", .vector(ints: [1, 4, 23, 17]))], outputs: [head], origin: Self.origin),
            Node(name: "mixed", op: .resize(attrs), inputs: [c2, nil, nil, g.addConstant("sz2", .vector(ints: [1, 7, 10, 12]))], outputs: [mixed], origin: Self.origin),
        ]
        g.outputs = [head, mixed]
        try inferShapes(&g)
        let inputs = ["x": CodegenTests.random(.f32, [1, 3, 5, 6], seed: 3)]
        let want = try ReferenceInterpreter(g).run(inputs)
        try Pipeline.optimize(&g)
        let layoutOf = Dictionary(uniqueKeysWithValues: g.values.map { ($0.name, $0.layout) })
        #expect(layoutOf["up"] == .channelsLast && layoutOf["head"] == .plain && layoutOf["mixed"] == .plain)
        #expect(!g.nodes.contains { $0.op == .layoutConvert && $0.name.hasPrefix("c1") })
        let (got, emitted) = try compileAndRun(g, inputs, name: "upsample_\(mode.rawValue)")
        #expect(emitted.source.components(separatedBy: mode == .nearest ? "kiln::resize_hw_nearest(" : "kiln::resize_hw(").count == 3)
        #expect(emitted.source.contains("kiln::resize("))
        for (k, expected) in want {
            #expect(Conformance.compare(got[k]!, expected, rtol: 1e-5, atol: 1e-6) == nil, "\(k): \(Conformance.compare(got[k]!, expected, rtol: 1e-5, atol: 1e-6) ?? "")")
        }
    }

    /// ConvNeXt's block: depthwise conv → permute to NHWC → LayerNorm → MatMul → permute back →
    /// conv. The permutes keep the channels-last bytes: no conversion, no copy.
    @Test func permutesAroundChannelsLastCostNothing() throws {
        var g = Graph(name: "convnext")
        let x = g.addValue("x", TensorType(.f32, [1, 8, 5, 6]))
        g.inputs = [x]
        func v(_ name: String) -> ValueID { g.addValue(name, TensorType(.f32, dims: [.symbolic("?")])) }
        func c(_ name: String, _ shape: [Int], _ seed: Int) -> ValueID { g.addConstant(name, CodegenTests.random(.f32, shape, seed: seed)) }
        let dw = v("dw"), nhwc = v("nhwc"), ln = v("ln"), mm = v("mm"), nchw = v("nchw"), y = v("y")
        g.nodes = [
            Node(name: "dw", op: .conv(ConvAttributes(pads: [1, 1, 1, 1], group: 8)), inputs: [x, c("wd", [8, 1, 3, 3], 1)], outputs: [dw], origin: Self.origin),
            Node(name: "to_nhwc", op: .transpose(perm: [0, 2, 3, 1]), inputs: [dw], outputs: [nhwc], origin: Self.origin),
            Node(name: "ln", op: .layerNormalization(axis: -1, epsilon: 1e-6), inputs: [nhwc, c("s", [8], 2), c("b", [8], 3)], outputs: [ln], origin: Self.origin),
            Node(name: "fc", op: .matMul(MatMulAttributes()), inputs: [ln, c("w", [8, 8], 4)], outputs: [mm], origin: Self.origin),
            Node(name: "to_nchw", op: .transpose(perm: [0, 3, 1, 2]), inputs: [mm], outputs: [nchw], origin: Self.origin),
            Node(name: "pw", op: .conv(ConvAttributes()), inputs: [nchw, c("wp", [4, 8, 1, 1], 5)], outputs: [y], origin: Self.origin),
        ]
        g.outputs = [y]
        try inferShapes(&g)
        let inputs = ["x": CodegenTests.random(.f32, [1, 8, 5, 6], seed: 6)]
        let want = try ReferenceInterpreter(g).run(inputs)
        try Pipeline.optimize(&g)
        #expect(g.nodes.map(\.op.name) == ["layout_convert", "conv", "transpose", "layer_norm", "matmul", "transpose", "conv", "layout_convert"], "\(printIR(g))")
        let layoutOf = Dictionary(uniqueKeysWithValues: g.values.map { ($0.name, $0.layout) })
        #expect(layoutOf["dw"] == .channelsLast && layoutOf["nhwc"] == .plain && layoutOf["nchw"] == .channelsLast)
        let plan = planMemory(g)
        for t in g.nodes where t.op.name == "transpose" { #expect(plan.storage[t.outputs[0]] == plan.storage[t.inputs[0]!]) }
        let (got, _) = try compileAndRun(g, inputs, name: "convnext_block")
        #expect(Conformance.compare(got["y"]!, want["y"]!, rtol: 1e-4, atol: 1e-5) == nil)
    }

    @Test func channelsLastKernelsMatchTheReference() throws {
        let (g0, inputs) = Self.network()
        var g = g0
        try inferShapes(&g)
        let want = try ReferenceInterpreter(g).run(inputs)
        try Pipeline.optimize(&g)
        let (got, emitted) = try compileAndRun(g, inputs, name: "net")
        #expect(emitted.source.contains("tag::acdb"))
        #expect(emitted.source.contains("kiln::pool_nhwc"))
        for (k, expected) in want {
            #expect(Conformance.compare(got[k]!, expected, rtol: 1e-4, atol: 1e-5) == nil, "\(k): \(Conformance.compare(got[k]!, expected, rtol: 1e-4, atol: 1e-5) ?? "")")
        }
    }

    /// A ResNet-like graph whose conv work is mostly 3×3 stride-1 (Winograd's): stem conv 3→32
    /// → max_pool → three 3×3 convs 32→32, the last adding the pooled input back → conv 32→24
    /// (24 channels: a padded block) → global_avg_pool → flatten → gemm.
    static func winogradHeavy() -> (Graph, [String: Tensor]) {
        var g = Graph(name: "blocked")
        let x = g.addValue("x", TensorType(.f32, [1, 3, 16, 16]))
        g.inputs = [x]
        func c(_ name: String, _ t: Tensor) -> ValueID { g.addConstant(name, t) }
        func v(_ name: String) -> ValueID { g.addValue(name, TensorType(.f32, dims: [.symbolic("?")])) }
        func r(_ shape: [Int], _ seed: Int) -> Tensor {
            Tensor(.f32, shape: shape, floats: CodegenTests.random(.f32, shape, seed: seed).floats.map { $0 * 0.2 })
        }
        let stem = v("stem"), pool = v("pool"), a = v("a"), b = v("b"), s = v("s"), n = v("narrow"), gap = v("gap"), flat = v("flat"), y = v("y")
        let pads = [1, 1, 1, 1]
        g.nodes = [
            Node(name: "stem", op: .conv(ConvAttributes(pads: pads, postOps: [.relu])), inputs: [x, c("w0", r([32, 3, 3, 3], 1)), c("b0", r([32], 2))], outputs: [stem], origin: origin),
            Node(name: "pool", op: .maxPool(PoolAttributes(kernelShape: [3, 3], strides: [2, 2], pads: pads)), inputs: [stem], outputs: [pool], origin: origin),
            Node(name: "conv_a", op: .conv(ConvAttributes(pads: pads, postOps: [.relu])), inputs: [pool, c("wa", r([32, 32, 3, 3], 3))], outputs: [a], origin: origin),
            Node(name: "conv_b", op: .conv(ConvAttributes(pads: pads, postOps: [.relu])), inputs: [a, c("wb", r([32, 32, 3, 3], 4))], outputs: [b], origin: origin),
            Node(name: "conv_s", op: .conv(ConvAttributes(pads: pads, postOps: [.sum, .relu])), inputs: [b, c("ws", r([32, 32, 3, 3], 5)), c("bs", r([32], 6)), pool], outputs: [s], origin: origin),
            Node(name: "narrow", op: .conv(ConvAttributes(pads: pads)), inputs: [s, c("wn", r([24, 32, 3, 3], 7))], outputs: [n], origin: origin),
            Node(name: "gap", op: .globalAveragePool, inputs: [n], outputs: [gap], origin: origin),
            Node(name: "flat", op: .flatten(axis: 1), inputs: [gap], outputs: [flat], origin: origin),
            Node(name: "fc", op: .gemm(GemmAttributes(transB: true)), inputs: [flat, c("fw", r([5, 24], 8)), c("fb", r([5], 9))], outputs: [y], origin: origin),
        ]
        g.outputs = [y, n]
        return (g, ["x": CodegenTests.random(.f32, [1, 3, 16, 16], seed: 10)])
    }

    @Test func winogradHeavyGraphsTakeTheBlockedLayout() throws {
        var (g, _) = Self.winogradHeavy()
        try inferShapes(&g)
        assignLayouts(&g)
        try verify(g, requireStaticShapes: true)
        let layoutOf = Dictionary(uniqueKeysWithValues: g.values.map { ($0.name, $0.layout) })
        for name in ["stem", "pool", "a", "b", "s", "narrow_blocked"] { #expect(layoutOf[name] == .blocked16, "\(name)") }
        // The stem reads the plain input (3 channels); global pooling reads a channels-last copy;
        // the 4-D output is converted back to plain.
        #expect(g.nodes[0].inputs[0] == g.inputs[0])
        let converts = g.nodes.filter { $0.op == .layoutConvert }.map(\.name)
        #expect(converts == ["narrow_to_nhwc", "gap_to_plain", "narrow_to_plain"], "\(converts)")
        #expect(printIR(g).contains("%pool = max_pool(%stem) {kernel=[3, 3] strides=[2, 2] pads=[1, 1, 1, 1]} : f32[1x32x8x8] nchw16c"), "\(printIR(g))")
        // The layout tests' network (a concatenation, elementwise ops) stays channels-last.
        var other = Self.network().0
        try inferShapes(&other)
        assignLayouts(&other)
        #expect(!other.values.contains { $0.layout == .blocked16 })
    }

    @Test(arguments: [WinogradPolicy.always, .off])
    func blockedGraphsMatchTheReference(_ winograd: WinogradPolicy) throws {
        var (g, inputs) = Self.winogradHeavy()
        try inferShapes(&g)
        let want = try ReferenceInterpreter(g).run(inputs)
        try Pipeline.optimize(&g, layout: .blocked)
        let (got, emitted) = try compileAndRun(g, inputs, name: "blocked_\(winograd.rawValue)", winograd: winograd)
        #expect(emitted.source.contains("tag::aBcd16b"))
        for (k, expected) in want {
            // Winograd's rounding error scales with the output's magnitude (WinogradTests).
            let scale = expected.floats.map { Double(abs($0)) }.max()!
            let problem = Conformance.compare(got[k]!, expected, rtol: 1e-5, atol: 1e-5 * scale)
            #expect(problem == nil, "\(k): \(problem ?? "")")
        }
    }
    /// Channels-last max pooling (kiln::max_pool_nhwc_2d) of f32, u8 and s8 over the windows
    /// real models use (3×3/2 with pads, SPPF's 5×5/1, 2×2/2 in ceil mode, asymmetric pads,
    /// windows reaching past the input), against the reference on the plain graph: exact.
    @Test(arguments: [ElementType.f32, .u8, .s8])
    func channelsLastMaxPoolingMatchesTheReference(_ t: ElementType) throws {
        let geometries: [PoolAttributes] = [
            PoolAttributes(kernelShape: [3, 3], strides: [2, 2], pads: [1, 1, 1, 1]),
            PoolAttributes(kernelShape: [5, 5], strides: [1, 1], pads: [2, 2, 2, 2]),
            PoolAttributes(kernelShape: [2, 2], strides: [2, 2], ceilMode: true),
            PoolAttributes(kernelShape: [3, 3], strides: [2, 2], pads: [0, 1, 1, 0]),
            PoolAttributes(kernelShape: [3, 3], strides: [3, 3], pads: [2, 2, 2, 2]),
            PoolAttributes(kernelShape: [1, 2], strides: [1, 1]),
        ]
        var plain = Graph(name: "pools"), nhwc = Graph(name: "pools")
        // The first geometry also over rows wider than 64 KB (the pixel-by-pixel form).
        let shapes = [[1, 600, 5, 120]] + Array(repeating: [2, 19, 11, 13], count: geometries.count)
        for (i, p) in ([geometries[0]] + geometries).enumerated() {
            let shape = shapes[i]
            let x = plain.addValue("x\(i)", TensorType(t, shape))
            let y = plain.addValue("y\(i)", TensorType(t, dims: [.symbolic("?")]))
            plain.inputs.append(x)
            plain.outputs.append(y)
            plain.nodes.append(Node(name: "pool\(i)", op: .maxPool(p), inputs: [x], outputs: [y], origin: Self.origin))
            // The same pool between conversions to and from channels-last.
            let xn = nhwc.addValue("x\(i)", TensorType(t, shape))
            let xc = nhwc.addValue("x\(i)_nhwc", TensorType(t, shape))
            nhwc.values[xc].layout = .channelsLast
            let yl = nhwc.addValue("y\(i)_nhwc", TensorType(t, dims: [.symbolic("?")]))
            let yn = nhwc.addValue("y\(i)", TensorType(t, dims: [.symbolic("?")]))
            nhwc.inputs.append(xn)
            nhwc.outputs.append(yn)
            nhwc.nodes += [
                Node(name: "in\(i)", op: .layoutConvert, inputs: [xn], outputs: [xc], origin: Self.origin),
                Node(name: "pool\(i)", op: .maxPool(p), inputs: [xc], outputs: [yl], origin: Self.origin),
                Node(name: "out\(i)", op: .layoutConvert, inputs: [yl], outputs: [yn], origin: Self.origin),
            ]
        }
        try inferShapes(&plain)
        try inferShapes(&nhwc)
        for i in shapes.indices { nhwc.values[nhwc.nodes[3 * i + 1].outputs[0]].layout = .channelsLast }
        var inputs: [String: Tensor] = [:]
        for i in shapes.indices { inputs["x\(i)"] = CodegenTests.random(t, shapes[i], seed: 50 + i) }
        let want = try ReferenceInterpreter(plain).run(inputs)
        let (got, emitted) = try compileAndRun(nhwc, inputs, name: "pools_\(t)")
        #expect(emitted.source.components(separatedBy: "kiln::max_pool_nhwc_2d(").count == shapes.count + 1)
        for i in shapes.indices {
            #expect(got["y\(i)"] == want["y\(i)"], "\(t) geometry \(i)")
        }
    }
    /// Every kernel that reads a channels-last value, on f32, u8 and s8: each op reads an input
    /// converted to channels-last (20 channels: vector tails in every type), the layout pass
    /// keeps it so, and the result matches the reference on the plain graph (exact for the
    /// integer types; rtol 1e-5 for f32).
    @Test(arguments: [ElementType.f32, .u8, .s8])
    func channelsLastKernelsOfEveryElementType(_ t: ElementType) throws {
        let shape = [2, 20, 6, 10]
        func scalar(_ v: Int64) -> Tensor { t.isFloat ? Tensor(t, shape: [], floats: [Float(v) / 40]) : Tensor(t, shape: [], ints: [v]) }
        func ints(_ s: [Int64]) -> Tensor { .vector(ints: s) }
        // (name, op, operands after the channels-last input: constants, or runtime inputs), outputs.
        enum Extra { case constant(Tensor), input(ElementType, [Int]) }
        let perChannel = CodegenTests.random(t, [20, 1, 1], seed: 70)
        let ops: [(String, Op, [Extra], Int)] = [
            ("relu", .unary(.relu), [], 1),
            ("clip", .clip, [.constant(scalar(t == .u8 ? 5 : -20)), .constant(scalar(30))], 1),
            ("cast", .cast(to: t == .f32 ? .s32 : .f32), [], 1),
            ("add_per_channel", .binary(.add), [.constant(perChannel)], 1),
            ("mul_row", .binary(.mul), [.input(t, [10])], 1),
            ("max_plain", .binary(.max), [.input(t, shape)], 1),
            ("where", .where, [.input(.bool, [1, 1, 6, 10]), .constant(perChannel)], 1),
            ("global_max_pool", .globalMaxPool, [], 1),
            ("slice_channels", .slice, [.constant(ints([2])), .constant(ints([17])), .constant(ints([1])), .constant(ints([3]))], 1),
            ("slice_width_reversed", .slice, [.constant(ints([-1])), .constant(ints([-100])), .constant(ints([3])), .constant(ints([-2]))], 1),
            ("split_channels", .split(axis: 1), [.constant(ints([5, 15]))], 2),
            ("d2s_dcr", .depthToSpace(blockSize: 2, crd: false), [], 1),
            ("d2s_crd", .depthToSpace(blockSize: 2, crd: true), [], 1),
            ("s2d", .spaceToDepth(blockSize: 2, crd: false), [], 1),
            ("pad_constant", .pad(mode: .constant), [.constant(ints([0, 0, 1, 2, 0, 3, 2, 1])), .constant(scalar(7))], 1),
            ("pad_reflect", .pad(mode: .reflect), [.constant(ints([0, 0, 1, 2, 0, 0, 2, 1]))], 1),
            ("gather_channels", .gather(axis: 1), [.constant(ints([19, 0, 5, 5, 3]))], 1),
            ("concat", .concat(axis: 1), [], 1),
            ("transpose_to_nhwc", .transpose(perm: [0, 2, 3, 1]), [], 1),
            ("resize_nearest_2x", .resize(ResizeAttributes(mode: .nearest)), [.constant(Tensor(.f32, shape: [0], floats: [])), .constant(Tensor(.f32, shape: [4], floats: [1, 1, 2, 2]))], 1),
            ("resize_linear", .resize(ResizeAttributes(mode: .linear)), [.constant(Tensor(.f32, shape: [0], floats: [])), .constant(Tensor(.f32, shape: [0], floats: [])), .constant(ints([2, 20, 9, 17]))], 1),
        ]
        var g = Graph(name: "nhwc_\(t)")
        var inputs: [String: Tensor] = [:]
        for (i, (name, op, extras, outputs)) in ops.enumerated() {
            let x = g.addValue("\(name)_x", TensorType(t, shape))
            g.inputs.append(x)
            inputs["\(name)_x"] = CodegenTests.random(t, shape, seed: 71 + i)
            let xc = g.addValue("\(name)_x_nhwc", TensorType(t, shape))
            g.values[xc].layout = .channelsLast
            g.nodes.append(Node(name: "\(name)_to_nhwc", op: .layoutConvert, inputs: [x], outputs: [xc], origin: Self.origin))
            var operands: [ValueID?] = [xc]
            for (k, e) in extras.enumerated() {
                switch e {
                case .constant(let c): operands.append(g.addConstant("\(name)_c\(k)", c))
                case .input(let et, let s):
                    let v = g.addValue("\(name)_in\(k)", TensorType(et, s))
                    g.inputs.append(v)
                    inputs["\(name)_in\(k)"] = CodegenTests.random(et, s, seed: 100 + 7 * i + k)
                    operands.append(v)
                }
            }
            if case .concat = op { operands.append(xc) }
            if case .where = op { operands.swapAt(0, 1) }  // the condition first
            let ys = (0..<outputs).map { g.addValue(outputs == 1 ? name : "\(name)_\($0)", TensorType(t, dims: [.symbolic("?")])) }
            if case .resize = op {
                // A resized graph output would be converted before the resize (the smaller copy).
                let r = g.addValue("\(name)_nhwc", TensorType(t, dims: [.symbolic("?")]))
                g.nodes.append(Node(name: name, op: op, inputs: operands, outputs: [r], origin: Self.origin))
                g.nodes.append(Node(name: "\(name)_out", op: .identity, inputs: [r], outputs: ys, origin: Self.origin))
            } else {
                g.nodes.append(Node(name: name, op: op, inputs: operands, outputs: ys, origin: Self.origin))
            }
            g.outputs += ys
        }
        try inferShapes(&g)
        let want = try ReferenceInterpreter(g).run(inputs)
        assignLayouts(&g)
        try verify(g, requireStaticShapes: true)
        for (name, _, _, _) in ops {
            let n = try #require(g.nodes.first { $0.name == name })
            // Kiln's Resize reads channels-last f32, and 8-bit integers when nearest; the others
            // follow any channels-last input.
            let followed = !name.hasPrefix("resize") || t == .f32 || name.hasPrefix("resize_nearest")
            let x = n.inputs[name == "where" ? 1 : 0]!
            #expect((g.values[x].layout == .channelsLast) == followed, "\(name) reads \(g.values[x].layout)")
        }
        let (got, _) = try compileAndRun(g, inputs, name: "nhwc_\(t)")
        for (k, expected) in want.sorted(by: { $0.key < $1.key }) {
            let problem = Conformance.compare(try #require(got[k], "\(k)"), expected, rtol: t.isFloat ? 1e-5 : 0, atol: t.isFloat ? 1e-6 : 0)
            #expect(problem == nil, "\(t) \(k): \(problem ?? "")")
        }
    }

    /// DepthToSpace and SpaceToDepth (DCR and CRD) after a conv stay channels-last: strided
    /// copies in the NHWC order, against the reference (rtol 1e-5, atol 1e-5·max).
    @Test func channelsLastDepthToSpaceAndSpaceToDepth() throws {
        var g = Graph(name: "d2s")
        let x = g.addValue("x", TensorType(.f32, [2, 3, 6, 8]))
        g.inputs = [x]
        let c = g.addValue("c", TensorType(.f32, dims: [.symbolic("?")]))
        g.nodes = [Node(name: "conv", op: .conv(ConvAttributes(kernelShape: [1, 1])),
                        inputs: [x, g.addConstant("w", CodegenTests.random(.f32, [16, 3, 1, 1], seed: 61))], outputs: [c], origin: Self.origin)]
        let ops: [(String, Op)] = [("d2s_dcr", .depthToSpace(blockSize: 2, crd: false)), ("d2s_crd", .depthToSpace(blockSize: 2, crd: true)),
                                   ("s2d_dcr", .spaceToDepth(blockSize: 2, crd: false)), ("s2d_crd", .spaceToDepth(blockSize: 2, crd: true))]
        for (name, op) in ops {
            let y = g.addValue(name, TensorType(.f32, dims: [.symbolic("?")]))
            g.nodes.append(Node(name: name, op: op, inputs: [c], outputs: [y], origin: Self.origin))
            g.outputs.append(y)
        }
        try inferShapes(&g)
        let inputs = ["x": CodegenTests.random(.f32, [2, 3, 6, 8], seed: 62)]
        let want = try ReferenceInterpreter(g).run(inputs)
        assignLayouts(&g, policy: .channelsLast)
        for (name, _) in ops {
            let n = try #require(g.nodes.first { $0.name == name })
            #expect(g.values[n.inputs[0]!].layout == .channelsLast && g.values[n.outputs[0]].layout == .channelsLast, "\(name)")
        }
        let (got, _) = try compileAndRun(g, inputs, name: "d2s")
        for (name, _) in ops {
            let scale = want[name]!.floats.map { Double(abs($0)) }.max()!
            let problem = Conformance.compare(got[name]!, want[name]!, rtol: 1e-5, atol: 1e-5 * scale)
            #expect(problem == nil, "\(name): \(problem ?? "")")
        }
    }
}
