import Foundation
import Testing
import KilnCodegen
import KilnDriver
import KilnIR
import KilnPasses
import KilnReference
import KilnToolchain

/// QDQ convolutions (QuantizeLinear → DequantizeLinear → Conv → QuantizeLinear, with s8 weights
/// behind DequantizeLinear) lowered to quantized convs and compiled: the library's u8/s8 outputs
/// must be within one quantization step of the reference interpreter running the QDQ graph as
/// written (dequantize, f32 conv, quantize), under each layout.
@Suite(.serialized) struct QuantizedConvTests {
    typealias Builder = RegressionTests.Builder

    /// The reference's outputs against the compiled library's, for each layout; returns the optimized graph.
    @discardableResult
    static func check(_ b: Builder, layouts: [LayoutPolicy] = [.channelsLast, .blocked], quantizedConvs: Int,
                      expect: (Graph) -> Void = { _ in }) throws -> Graph {
        var g0 = b.g
        try inferShapes(&g0)
        let want = try ReferenceInterpreter(g0).run(b.inputs)
        var last = b.g
        for layout in layouts {
            var g = b.g
            try Pipeline.simplify(&g, inputShapes: [:])
            try Pipeline.optimize(&g, layout: layout)
            let lowered = g.nodes.filter { if case .quantizedConv = $0.op { return true } else { return false } }
            #expect(lowered.count == quantizedConvs, "\(printIR(g))")
            #expect(!g.nodes.contains { if case .conv = $0.op { return true } else { return false } }, "\(printIR(g))")
            expect(g)
            let (got, emitted) = try compileAndRun(g, b.inputs, name: "qconv", winograd: .off)
            #expect(emitted.fallbacks.isEmpty, "\(emitted.fallbacks)")
            for (k, expected) in want {
                // Integers: one quantization step. f32 results: accumulation order only.
                let d = got[k].flatMap {
                    expected.elementType.isFloat ? Conformance.compare($0, expected, rtol: 1e-4, atol: 1e-5)
                                                 : Conformance.compare($0, expected, rtol: 0, atol: 1)
                } ?? (got[k] == nil ? "missing" : nil)
                #expect(d == nil, "\(layout) \(k): \(d ?? "")")
            }
            last = g
        }
        return last
    }

    /// x → Q → DQ → Conv(DQ(w), b) → [post-op] → Q: one quantized conv with a u8 (or s8) output.
    @Test(arguments: [(Int64(64), ElementType.u8), (Int64(127), ElementType.u8), (Int64(127), ElementType.s8)])
    func convWithQuantizedOutput(limit: Int64, type: ElementType) throws {
        for (group, post) in [(1, Op.unary(.relu)), (16, .clip), (1, .unary(.hardSwish)), (2, .identity)] {
            var b = Builder()
            let x = b.input("x", [1, 16, 9, 9])
            let (_, xd) = b.fakeQuantize(x, type, scale: 0.02, zero: type == .u8 ? 100 : -3, "x")
            let (w, bias) = b.weights([32, 16 / group, 3, 3], limit: limit, "c")
            let c = b.node(.conv(ConvAttributes(pads: [1, 1, 1, 1], group: group)), [xd, w, bias], "c")
            var a = c
            if case .clip = post {
                a = b.node(.clip, [c, b.g.addConstant("lo", .scalar(0)), b.g.addConstant("hi", .scalar(6))], "a")
            } else if post != .identity {
                a = b.node(post, [c], "a")
            }
            let (yq, _) = b.fakeQuantize(a, type, scale: 0.05, zero: type == .u8 ? 7 : 2, "y")
            b.g.outputs = [yq]
            try Self.check(b, layouts: [.channelsLast], quantizedConvs: 1)
        }
    }

    /// A quantized conv whose result no QuantizeLinear reads writes f32; strided, not padded.
    @Test func convWithF32Output() throws {
        var b = Builder()
        let x = b.input("x", [2, 8, 11, 10])
        let (_, xd) = b.fakeQuantize(x, .u8, scale: 0.03, zero: 128, "x")
        let (w, bias) = b.weights([24, 8, 3, 3], limit: 127, "c")
        let c = b.node(.conv(ConvAttributes(strides: [2, 2])), [xd, w, bias], "c")
        b.g.outputs = [c]
        try Self.check(b, layouts: [.channelsLast], quantizedConvs: 1)
    }

    /// Two quantized convs in a row, the second adding a quantized residual and a ReLU
    /// (`conv → add(DQ(skip)) → relu → Q`, PT2E's fused pattern): u8 between them, the sum in the conv.
    @Test(arguments: [Int64(64), 127])
    func residualBlock(limit: Int64) throws {
        var b = Builder()
        let x = b.input("x", [1, 16, 8, 8])
        let (_, xd) = b.fakeQuantize(x, .u8, scale: 0.02, zero: 110, "x")
        let (w1, b1) = b.weights([16, 16, 1, 1], limit: limit, "c1")
        let c1 = b.node(.conv(ConvAttributes()), [xd, w1, b1], "c1")
        let r1 = b.node(.unary(.relu), [c1], "r1")
        let (_, h) = b.fakeQuantize(r1, .u8, scale: 0.04, zero: 0, "h")
        let (w2, b2) = b.weights([16, 16, 3, 3], limit: limit, "c2")
        let c2 = b.node(.conv(ConvAttributes(pads: [1, 1, 1, 1])), [h, w2, b2], "c2")
        let sum = b.node(.binary(.add), [c2, xd], "sum")
        let r2 = b.node(.unary(.relu), [sum], "r2")
        let (yq, _) = b.fakeQuantize(r2, .u8, scale: 0.06, zero: 3, "y")
        b.g.outputs = [yq]
        let g = try Self.check(b, quantizedConvs: 2)
        let second = g.nodes.compactMap { n -> QuantizedConvAttributes? in
            if case .quantizedConv(let q) = n.op, q.conv.postOps.contains(.sum) { return q } else { return nil }
        }
        #expect(second.count == 1 && second[0].addend == .perTensor(.u8, scale: 0.02, zeroPoint: 110) && second[0].output?.type == .u8)
    }

    /// Graphs the lowering must leave to the f32 path: per-tensor activations only.
    @Test func perChannelActivationsStayF32() throws {
        var b = Builder()
        let x = b.input("x", [1, 4, 5, 5])
        let s = b.g.addConstant("s", Tensor(.f32, shape: [4], floats: [0.01, 0.02, 0.03, 0.04]))
        let z = b.g.addConstant("z", Tensor(.u8, shape: [4], ints: [1, 2, 3, 4]))
        let q = b.node(.quantizeLinear(axis: 1, outputType: .u8), [x, s, z], "q")
        let d = b.node(.dequantizeLinear(axis: 1), [q, s, z], "d")
        let (w, bias) = b.weights([4, 4, 3, 3], limit: 127, "c")
        let c = b.node(.conv(ConvAttributes()), [d, w, bias], "c")
        b.g.outputs = [c]
        var g = b.g
        try Pipeline.simplify(&g, inputShapes: [:])
        try Pipeline.optimize(&g)
        #expect(g.nodes.contains { if case .conv = $0.op { return true } else { return false } })
        #expect(!g.nodes.contains { if case .dequantizeLinear = $0.op { return $0.inputs.first.map { g.values[$0!].constant != nil } == true } else { return false } },
                "weights' DequantizeLinear folded: \(printIR(g))")
    }

    /// The nodes of `g` that are Q or DQ on their own (not inside an elementwise group).
    static func standaloneQDQ(_ g: Graph) -> [String] {
        g.nodes.filter {
            switch $0.op {
            case .quantizeLinear, .dequantizeLinear: return true
            default: return false
            }
        }.map(\.name)
    }

    /// ONNX Runtime's residual block: each conv's output quantized, then `Q(relu(DQ(a) + DQ(b)))`
    /// with three sets of parameters: the later conv takes the add (`fuseQuantizedSums`), its own
    /// output's quantization becoming a fake quantization before the sum of the other's u8 output.
    @Test func quantizedAddOfTwoConvs() throws {
        var b = Builder()
        let x = b.input("x", [1, 8, 6, 6])
        let (_, xd) = b.fakeQuantize(x, .u8, scale: 0.02, zero: 120, "x")
        let (w1, b1) = b.weights([8, 8, 3, 3], limit: 127, "c1")
        let c1 = b.node(.conv(ConvAttributes(pads: [1, 1, 1, 1])), [xd, w1, b1], "c1")
        let (_, c1d) = b.fakeQuantize(c1, .u8, scale: 0.03, zero: 128, "c1o")
        let (w2, b2) = b.weights([8, 8, 1, 1], limit: 127, "c2")
        let c2 = b.node(.conv(ConvAttributes()), [xd, w2, b2], "c2")
        let (_, c2d) = b.fakeQuantize(c2, .u8, scale: 0.025, zero: 131, "c2o")
        let sum = b.node(.binary(.add), [c1d, c2d], "sum")
        let r = b.node(.unary(.relu), [sum], "r")
        let (yq, _) = b.fakeQuantize(r, .u8, scale: 0.04, zero: 0, "y")
        b.g.outputs = [yq]
        try Self.check(b, quantizedConvs: 2) { g in
            #expect(!g.nodes.contains { if case .elementwiseGroup = $0.op { return true } else { return false } }, "\(printIR(g))")
            let fused = g.nodes.compactMap { n -> QuantizedConvAttributes? in
                if case .quantizedConv(let q) = n.op, q.conv.postOps.contains(.sum) { return q } else { return nil }
            }
            #expect(fused.count == 1 && fused[0].conv.postOps == [.fakeQuantize(.perTensor(.u8, scale: 0.025, zeroPoint: 131)), .sum, .relu]
                    && fused[0].addend == .perTensor(.u8, scale: 0.03, zeroPoint: 128) && fused[0].output == .perTensor(.u8, scale: 0.04, zeroPoint: 0),
                    "\(printIR(g))")
            #expect(Self.standaloneQDQ(g) == ["x_q"], "\(printIR(g))")
        }
    }

    /// The same residual pattern whose skip is the block's input and whose add has no activation
    /// after it (MobileNetV2's blocks), with s8 values; and one whose sum cannot fuse because the
    /// skip is not of the output's type, which stays a loop over the integers.
    @Test func quantizedAddOfAConvAndItsInput() throws {
        for skipType in [ElementType.s8, .u8] {
            var b = Builder()
            let x = b.input("x", [1, 8, 6, 6])
            let (_, xd) = b.fakeQuantize(x, skipType, scale: 0.02, zero: skipType == .s8 ? -5 : 120, "x")
            let (w, bias) = b.weights([8, 8, 3, 3], limit: 127, "c")
            let c = b.node(.conv(ConvAttributes(pads: [1, 1, 1, 1])), [xd, w, bias], "c")
            let (_, cd) = b.fakeQuantize(c, .s8, scale: 0.03, zero: 4, "co")
            let sum = b.node(.binary(.add), [cd, xd], "sum")
            let (yq, _) = b.fakeQuantize(sum, .s8, scale: 0.045, zero: -2, "y")
            b.g.outputs = [yq]
            try Self.check(b, quantizedConvs: 1) { g in
                let groups = g.nodes.filter { if case .elementwiseGroup = $0.op { return true } else { return false } }
                #expect(groups.count == (skipType == .s8 ? 0 : 1), "\(printIR(g))")
            }
        }
    }

    /// Activations between quantized tensors: Q(f(DQ(x))) as one loop, for u8 and s8: from an f32
    /// input (its quantization joins the loop), and from an integer input, where the loop is a
    /// 256-entry table (kiln::lookup8; 40,010 elements: three chunks in parallel, the last not a multiple of 64).
    @Test(arguments: [ElementType.u8, .s8])
    func activationsOnQuantizedValues(type: ElementType) throws {
        for op in [Op.unary(.sigmoid), .unary(.hardSwish), .unary(.tanh), .leakyRelu(alpha: 0.1)] {
            for (integerInput, shape) in [(false, [2, 5, 1700]), (true, [2, 5, 4001])] {
                var b = Builder()
                let xd: ValueID
                let s = b.g.addConstant("x_s", .scalar(0.015))
                let z = b.g.addConstant("x_z", Tensor(type, shape: [], ints: [type == .u8 ? 128 : 0]))
                if integerInput {
                    let x = b.g.addValue("x", TensorType(type, shape))
                    b.g.inputs.append(x)
                    b.inputs["x"] = CodegenTests.random(type, shape, seed: 7)
                    xd = b.node(.dequantizeLinear(axis: 1), [x, s, z], "x_dq")
                } else {
                    let x = b.input("x", shape)
                    xd = b.node(.dequantizeLinear(axis: 1), [b.node(.quantizeLinear(axis: 1, outputType: type), [x, s, z], "x_q"), s, z], "x_dq")
                }
                let a = b.node(op, [xd], "a")
                let (yq, _) = b.fakeQuantize(a, type, scale: 1.0 / 255, zero: type == .u8 ? 0 : -128, "y")
                b.g.outputs = [yq]
                try Self.check(b, layouts: [.channelsLast], quantizedConvs: 0) { g in
                    #expect(Self.standaloneQDQ(g).isEmpty && g.nodes.count == 1, "\(printIR(g))")
                }
            }
        }
    }

    /// Max pooling and concatenation between quantized convs, written as ONNX Runtime writes them
    /// (DQ → op → Q with equal parameters): they run on u8, and no value goes through f32.
    @Test func poolingAndConcatOnQuantizedValues() throws {
        var b = Builder()
        let x = b.input("x", [1, 8, 10, 10])
        let (_, xd) = b.fakeQuantize(x, .u8, scale: 0.02, zero: 120, "x")
        let (w1, b1) = b.weights([8, 8, 3, 3], limit: 127, "c1")
        let c1 = b.node(.conv(ConvAttributes(pads: [1, 1, 1, 1])), [xd, w1, b1], "c1")
        let (_, c1d) = b.fakeQuantize(c1, .u8, scale: 0.03, zero: 128, "c1o")
        let p = b.node(.maxPool(PoolAttributes(kernelShape: [3, 3], strides: [2, 2], pads: [1, 1, 1, 1])), [c1d], "p")
        let (_, pd) = b.fakeQuantize(p, .u8, scale: 0.03, zero: 128, "po")
        let (w2, b2) = b.weights([8, 8, 1, 1], limit: 127, "c2")
        let c2 = b.node(.conv(ConvAttributes()), [pd, w2, b2], "c2")
        let (_, c2d) = b.fakeQuantize(c2, .u8, scale: 0.05, zero: 100, "c2o")
        let (w3, b3) = b.weights([8, 8, 3, 3], limit: 127, "c3")
        let c3 = b.node(.conv(ConvAttributes(pads: [1, 1, 1, 1])), [pd, w3, b3], "c3")
        let (_, c3d) = b.fakeQuantize(c3, .u8, scale: 0.05, zero: 100, "c3o")
        let cat = b.node(.concat(axis: 1), [c2d, c3d], "cat")
        let (_, catd) = b.fakeQuantize(cat, .u8, scale: 0.05, zero: 100, "cato")
        let (w4, b4) = b.weights([4, 16, 1, 1], limit: 127, "c4")
        let c4 = b.node(.conv(ConvAttributes()), [catd, w4, b4], "c4")
        let (yq, _) = b.fakeQuantize(c4, .u8, scale: 0.1, zero: 10, "y")
        b.g.outputs = [yq]
        try Self.check(b, quantizedConvs: 4) { g in
            #expect(Self.standaloneQDQ(g) == ["x_q"], "\(printIR(g))")
            let f32 = g.nodes.flatMap(\.outputs).filter { g.values[$0].type.elementType == .f32 }
            #expect(f32.isEmpty, "\(printIR(g))")
        }
    }

    /// A concatenation of conv outputs quantized differently, wide enough (64, 72 and 40 channels
    /// of 12x12 pixels in channels-last: whole 64-byte rows, a row with a masked tail, a row shorter
    /// than 64) for the table form of `kiln::concat_requantize`, with a fourth input already in the
    /// output's parameters (copied), for u8 and s8. The requantized inputs' steps are at most
    /// the output's: a conv's one step of freedom (accumulation order) then stays within one.
    @Test(arguments: [ElementType.u8, .s8])
    func requantizingConcatOfWideInputs(type: ElementType) throws {
        var b = Builder()
        let x = b.input("x", [1, 16, 12, 12])
        let z: (Int64, Int64) -> Int64 = { u, s in type == .u8 ? u : s }
        let (_, xd) = b.fakeQuantize(x, type, scale: 0.02, zero: z(120, -7), "x")
        let (w1, b1) = b.weights([64, 16, 1, 1], limit: 127, "c1")
        let (_, c1d) = b.fakeQuantize(b.node(.conv(ConvAttributes()), [xd, w1, b1], "c1"), type, scale: 0.03, zero: z(128, 3), "c1o")
        let (w2, b2) = b.weights([72, 16, 3, 3], limit: 127, "c2")
        let (_, c2d) = b.fakeQuantize(b.node(.conv(ConvAttributes(pads: [1, 1, 1, 1])), [xd, w2, b2], "c2"), type, scale: 0.047, zero: z(90, -20), "c2o")
        let (w3, b3) = b.weights([8, 16, 1, 1], limit: 127, "c3")
        let (_, c3d) = b.fakeQuantize(b.node(.conv(ConvAttributes()), [xd, w3, b3], "c3"), type, scale: 0.05, zero: z(100, 1), "c3o")
        let (w4, b4) = b.weights([40, 16, 1, 1], limit: 127, "c4")
        let (_, c4d) = b.fakeQuantize(b.node(.conv(ConvAttributes()), [xd, w4, b4], "c4"), type, scale: 0.043, zero: z(70, 9), "c4o")
        let cat = b.node(.concat(axis: 1), [c1d, c2d, c3d, c4d], "cat")
        let (yq, _) = b.fakeQuantize(cat, type, scale: 0.05, zero: z(100, 1), "y")
        b.g.outputs = [yq]
        try Self.check(b, layouts: [.channelsLast], quantizedConvs: 4) { g in
            let requantizing = g.nodes.compactMap { n -> String? in if case .quantized(let q) = n.op { return q.op.name } else { return nil } }
            #expect(requantizing == ["concat"], "\(printIR(g))")
        }
    }

    /// Average pooling, concatenation of inputs quantized differently, an unfolded
    /// BatchNormalization with ReLU, and global average pooling between dequantization and a
    /// quantization with other parameters: each becomes one
    /// `quantized` op that reads and writes u8 (requantizing), and nothing in between is f32.
    @Test(arguments: [false, true])
    func requantizingPoolingAndConcat(countIncludePad: Bool) throws {
        var b = Builder()
        let x = b.input("x", [2, 8, 9, 9])
        let (_, xd) = b.fakeQuantize(x, .u8, scale: 0.02, zero: 120, "x")
        let (w1, b1) = b.weights([8, 8, 3, 3], limit: 127, "c1")
        let c1 = b.node(.conv(ConvAttributes(pads: [1, 1, 1, 1])), [xd, w1, b1], "c1")
        let (_, c1d) = b.fakeQuantize(c1, .u8, scale: 0.03, zero: 128, "c1o")
        let pool = PoolAttributes(kernelShape: [3, 3], strides: [2, 2], pads: [1, 1, 1, 1], countIncludePad: countIncludePad)
        let p = b.node(.averagePool(pool), [c1d], "p")
        let (_, pd) = b.fakeQuantize(p, .u8, scale: 0.011, zero: 131, "po")
        let (w2, b2) = b.weights([8, 8, 1, 1], limit: 127, "c2")
        let (_, c2d) = b.fakeQuantize(b.node(.conv(ConvAttributes()), [pd, w2, b2], "c2"), .u8, scale: 0.05, zero: 100, "c2o")
        let (w3, b3) = b.weights([4, 8, 3, 3], limit: 127, "c3")
        let (_, c3d) = b.fakeQuantize(b.node(.conv(ConvAttributes(pads: [1, 1, 1, 1])), [pd, w3, b3], "c3"), .u8, scale: 0.04, zero: 90, "c3o")
        let cat = b.node(.concat(axis: 1), [c2d, c3d, pd], "cat")
        let (_, catd) = b.fakeQuantize(cat, .u8, scale: 0.05, zero: 100, "cato")
        // DenseNet's pre-activation: BatchNormalization and ReLU between the concatenation and the next conv.
        var stats: [ValueID?] = []
        for (k, name) in ["gamma", "beta", "mean", "var"].enumerated() {
            stats.append(b.g.addConstant("bn_\(name)", floats([20]) { i in k == 3 ? 0.5 + Float(i % 5) * 0.3 : Float((i * 7 + k * 3) % 11) * 0.2 - 0.9 }))
        }
        let bn = b.node(.batchNormalization(epsilon: 1e-5), [catd] + stats, "bn")
        let (_, bnd) = b.fakeQuantize(b.node(.unary(.relu), [bn], "bnr"), .u8, scale: 0.02, zero: 0, "bno")
        let gap = b.node(.globalAveragePool, [bnd], "gap")
        let (yq, _) = b.fakeQuantize(gap, .u8, scale: 0.007, zero: 3, "y")
        b.g.outputs = [yq]
        try Self.check(b, quantizedConvs: 3) { g in
            let requantizing = g.nodes.compactMap { n -> String? in if case .quantized(let q) = n.op { return q.op.name } else { return nil } }
            #expect(requantizing.sorted() == ["average_pool", "concat", "global_average_pool", "scale_shift"], "\(printIR(g))")
            #expect(Self.standaloneQDQ(g) == ["x_q"], "\(printIR(g))")
            let f32 = g.nodes.flatMap(\.outputs).filter { g.values[$0].type.elementType == .f32 }
            #expect(f32.isEmpty, "\(printIR(g))")
        }
    }

    /// An unfolded BatchNormalization between quantized tensors, alone and with an activation
    /// (ReLU lets the kernel fold the output's scale into its per-channel factors, sigmoid does
    /// not), into u8 and s8: one requantizing scale-and-shift, within one step of the reference
    /// in both layouts (channels-last and planar loops).
    @Test(arguments: [ElementType.u8, .s8])
    func requantizingScaleShift(type: ElementType) throws {
        for act in [nil, UnaryOp.relu, .sigmoid] {
            var b = Builder()
            let x = b.input("x", [2, 24, 5, 7])
            let (_, xd) = b.fakeQuantize(x, .u8, scale: 0.03, zero: 120, "x")
            var stats: [ValueID?] = []
            for (k, name) in ["gamma", "beta", "mean", "var"].enumerated() {
                stats.append(b.g.addConstant("bn_\(name)", floats([24]) { i in k == 3 ? 0.5 + Float(i % 5) * 0.3 : Float((i * 7 + k * 3) % 11) * 0.2 - 0.9 }))
            }
            let bn = b.node(.batchNormalization(epsilon: 1e-5), [xd] + stats, "bn")
            let a = act.map { b.node(.unary($0), [bn], "act") } ?? bn
            let (yq, _) = b.fakeQuantize(a, type, scale: act == .sigmoid ? 0.004 : 0.02, zero: type == .u8 ? 7 : -5, "y")
            b.g.outputs = [yq]
            try Self.check(b, quantizedConvs: 0) { g in
                let requantizing = g.nodes.compactMap { n -> String? in if case .quantized(let q) = n.op { return q.op.name } else { return nil } }
                #expect(requantizing == ["scale_shift"], "\(act.map { "\($0)" } ?? "none"): \(printIR(g))")
            }
        }
    }

    /// An image's stem and a mean-pooled head as quantize_static writes them: the input's
    /// quantization writes the conv's channels-last u8 source in one pass (no layout conversion;
    /// 1, 3 and 4 channels, two images of 20×17 pixels: 256-pixel tasks with a tail), and
    /// `Q(reshape(mean(DQ(h))))` (MnasNet's `x.mean([2, 3])`) becomes a quantized global pooling.
    @Test(arguments: [1, 3, 4])
    func imageStemAndMeanPooledHead(channels: Int) throws {
        var b = Builder()
        let x = b.input("x", [2, channels, 20, 17])
        let (_, xd) = b.fakeQuantize(x, .u8, scale: 0.02, zero: 114, "x")
        let (w1, b1) = b.weights([16, channels, 3, 3], limit: 127, "stem")
        let c1 = b.node(.conv(ConvAttributes(strides: [2, 2], pads: [1, 1, 1, 1])), [xd, w1, b1], "stem")
        let (_, hd) = b.fakeQuantize(b.node(.unary(.relu), [c1], "r"), .u8, scale: 0.03, zero: 0, "h")
        let mean = b.node(.reduce(.mean, keepDims: false, noopWithEmptyAxes: false), [hd, b.g.addConstant("axes", .vector(ints: [2, 3]))], "mean")
        let (_, md) = b.fakeQuantize(mean, .u8, scale: 0.011, zero: 2, "m")
        let (w2, b2) = b.weights([10, 16], limit: 127, "fc")
        let fc = b.node(.gemm(GemmAttributes(transB: true)), [md, w2, b2], "fc")
        let (yq, _) = b.fakeQuantize(fc, .u8, scale: 0.05, zero: 128, "y")
        b.g.outputs = [yq]
        try Self.check(b, layouts: [.channelsLast], quantizedConvs: 1) { g in
            var converts = 0
            var inputLayout = Layout.plain
            for n in g.nodes {
                if case .layoutConvert = n.op, g.values[n.outputs[0]].layout == .channelsLast { converts += 1 }
                if n.name == "x_q" { inputLayout = g.values[n.outputs[0]].layout }
            }
            #expect(converts == 0 && inputLayout == .channelsLast, "\(printIR(g))")
            let requantizing = g.nodes.compactMap { n -> String? in if case .quantized(let q) = n.op { return q.op.name } else { return nil } }
            #expect(requantizing == ["global_average_pool"], "\(printIR(g))")
            #expect(Self.standaloneQDQ(g) == ["x_q"], "\(printIR(g))")
        }
    }

    /// A QDQ MLP: Gemm (transposed weights, per-row scales, bias, ReLU) to u8, then MatMul +
    /// Add(bias) to f32, on a 3-D input.
    @Test(arguments: [Int64(64), 127])
    func quantizedMLP(limit: Int64) throws {
        var b = Builder()
        let x = b.input("x", [6, 32])
        let (_, xd) = b.fakeQuantize(x, .u8, scale: 0.02, zero: 128, "x")
        let (w1, b1) = b.weights([16, 32], limit: limit, "fc1")
        let h = b.node(.gemm(GemmAttributes(transB: true)), [xd, w1, b1], "fc1")
        let r = b.node(.unary(.relu), [h], "r")
        let (_, hd) = b.fakeQuantize(r, .u8, scale: 0.03, zero: 0, "h")
        let hr = b.node(.reshape(allowZero: false), [hd, b.g.addConstant("shape", .vector(ints: [2, 3, 16]))], "hr")
        // MatMul weights [K, N] with per-column scales (axis 1).
        var rng = SplitMix(seed: 99)
        let w2 = Tensor(.s8, shape: [16, 10], ints: (0..<160).map { _ in Int64(rng.next() % UInt64(2 * limit + 1)) - limit })
        let w2d = b.node(.dequantizeLinear(axis: 1), [b.g.addConstant("w2q", w2),
                                                      b.g.addConstant("w2s", Tensor(.f32, shape: [10], floats: (0..<10).map { 0.002 + 0.0005 * Float($0) }))], "w2")
        let m = b.node(.matMul(MatMulAttributes()), [hr, w2d], "m")
        let y = b.node(.binary(.add), [m, b.g.addConstant("b2", Tensor(.f32, shape: [10], floats: (0..<10).map { Float($0) * 0.01 }))], "y")
        b.g.outputs = [y]
        try Self.check(b, layouts: [.channelsLast], quantizedConvs: 0) { g in
            let mm = g.nodes.filter { if case .quantizedMatMul = $0.op { return true } else { return false } }
            #expect(mm.count == 2, "\(printIR(g))")
            #expect(Self.standaloneQDQ(g) == ["x_q"], "\(printIR(g))")
        }
    }

    /// Every x86-64 CPU computes the same function: the library run as on a CPU without VNNI
    /// (`ONEDNN_MAX_CPU_ISA=AVX2`, where oneDNN's int8 kernels would saturate pairs of products
    /// at 16 bits) gives the outputs of the run on this CPU, and both are within one quantization
    /// step of the reference; and no primitive runs on a oneDNN reference kernel. (Run through
    /// `kiln run`: oneDNN reads its variables once per process.)
    @Test func sameResultsWithoutVNNI() throws {
        var b = Builder()
        let x = b.input("x", [1, 16, 8, 8])
        let (_, xd) = b.fakeQuantize(x, .u8, scale: 0.02, zero: 110, "x")
        let (w1, b1) = b.weights([16, 16, 3, 3], limit: 127, "c1")
        let c1 = b.node(.conv(ConvAttributes(pads: [1, 1, 1, 1])), [xd, w1, b1], "c1")
        let sum = b.node(.binary(.add), [c1, xd], "sum")
        let (_, h) = b.fakeQuantize(b.node(.unary(.relu), [sum], "r"), .u8, scale: 0.05, zero: 0, "h")
        let (w2, b2) = b.weights([8, 16, 1, 1], limit: 127, "c2")
        let (yq, _) = b.fakeQuantize(b.node(.conv(ConvAttributes()), [h, w2, b2], "c2"), .u8, scale: 0.04, zero: 128, "y")
        b.g.outputs = [yq]
        try Self.expectSameResultsWithoutVNNI(b, name: "qcpu", output: "y_q")
    }

    /// Runs `b`'s graph natively and as on an AVX2 CPU (`runNativeAndAsAVX2`): both runs within
    /// one step of the reference and of each other, and no primitive on one of oneDNN's reference
    /// kernels (the 5th field of an exec line names the kernel).
    static func expectSameResultsWithoutVNNI(_ b: Builder, name: String, output: String) throws {
        let (want, runs) = try runNativeAndAsAVX2(b, CodegenOptions(name: name, kilnVersion: "test"), output: output)
        for run in runs {
            let executed = run.verbose.split(separator: "\n").filter { $0.hasPrefix("onednn_verbose,exec,") }
            #expect(executed.count >= 2, "\(run.verbose)")
            let reference = executed.filter { $0.split(separator: ",").dropFirst(4).first?.hasPrefix("ref") == true }
            #expect(reference.isEmpty, "\(reference)")
            #expect(Conformance.compare(run.got, want, rtol: 0, atol: 1) == nil)
        }
        #expect(Conformance.compare(runs[1].got, runs[0].got, rtol: 0, atol: 1) == nil)
    }

    /// ONNX Runtime's residual pattern (each conv's output quantized before the add) fused into
    /// the conv: natively oneDNN's int8 kernel with round, clip and sum post-ops, as on an AVX2 CPU
    /// the f32 form with the fake quantization and the sum in Kiln's loop; both within one step of
    /// the reference and of each other, no reference kernel.
    @Test func requantizedResidualWithoutVNNI() throws {
        var b = Builder()
        let x = b.input("x", [1, 16, 8, 8])
        let (_, xd) = b.fakeQuantize(x, .u8, scale: 0.02, zero: 110, "x")
        let (w1, b1) = b.weights([16, 16, 3, 3], limit: 127, "c1")
        let c1 = b.node(.conv(ConvAttributes(pads: [1, 1, 1, 1])), [xd, w1, b1], "c1")
        let (_, c1d) = b.fakeQuantize(b.node(.unary(.relu), [c1], "r1"), .u8, scale: 0.03, zero: 0, "c1o")
        let (w2, b2) = b.weights([16, 16, 1, 1], limit: 127, "c2")
        let (_, c2d) = b.fakeQuantize(b.node(.conv(ConvAttributes()), [c1d, w2, b2], "c2"), .u8, scale: 0.05, zero: 120, "c2o")
        let sum = b.node(.binary(.add), [c2d, xd], "sum")
        let (yq, _) = b.fakeQuantize(b.node(.unary(.relu), [sum], "r"), .u8, scale: 0.04, zero: 0, "y")
        b.g.outputs = [yq]
        try Self.expectSameResultsWithoutVNNI(b, name: "qres", output: "y_q")
    }

    /// Compiles `b`'s graph into a shared library and runs it through `kiln run` with
    /// ONEDNN_VERBOSE on, natively and as on a CPU without AVX-512 and VNNI
    /// (ONEDNN_MAX_CPU_ISA=AVX2): the reference interpreter's `output`, and each run's verbose
    /// output and `output`.
    static func runNativeAndAsAVX2(_ b: Builder, _ options: CodegenOptions, output: String) throws -> (want: Tensor, runs: [(verbose: String, got: Tensor)]) {
        var g0 = b.g
        try inferShapes(&g0)
        let want = try ReferenceInterpreter(g0).run(b.inputs)
        var g = b.g
        try Pipeline.simplify(&g, inputShapes: [:])
        try Pipeline.optimize(&g)
        let dir = temporaryDirectory()
        let emitted = try emitModel(g, options: options)
        let products = try buildLibrary(header: emitted.header, source: emitted.source, weights: emitted.weights,
                                        options: BuildOptions(outputDirectory: dir, name: options.name, library: .shared,
                                                              includeDirectory: runtimeIncludeDirectory()))
        var args: [String] = []
        for (name, t) in b.inputs.sorted(by: { $0.key < $1.key }) {
            let path = (dir as NSString).appendingPathComponent("\(name).npy")
            try NPY.write(t, path: path)
            args += ["--input", "\(name)=\(path)"]
        }
        var runs: [(verbose: String, got: Tensor)] = []
        for isa in [nil, "AVX2"] {
            let out = (dir as NSString).appendingPathComponent("out-\(isa ?? "native")")
            var environment = ["ONEDNN_VERBOSE": "1"]
            if let isa { environment["ONEDNN_MAX_CPU_ISA"] = isa }
            let r = try BadInputTests().kiln(["run", products.sharedLibrary!] + args + ["--output-dir", out], environment: environment)
            #expect(r.status == 0, "\(r.err)")
            runs.append((r.out, try NPY.read(path: (out as NSString).appendingPathComponent("\(output).npy"))))
        }
        return (try #require(want[output]), runs)
    }
}

/// `--int8 fast`: oneDNN's int8 kernels on every CPU, also without VNNI (as ONNX Runtime and
/// OpenVINO run QDQ graphs). With sources small enough that no pair of products saturates
/// (u8 ≤ 100 · 127 · 2 < 2^15) the results are the definition's, natively and as on an AVX2 CPU.
@Suite struct FastInt8Tests {
    @Test func fastInt8RunsTheInt8KernelsEverywhere() throws {
        var b = RegressionTests.Builder()
        let x = b.input("x", [1, 16, 8, 8])
        b.inputs["x"] = floats([1, 16, 8, 8]) { i in Float((i * 37) % 101) * 0.0199 }
        let (_, xd) = b.fakeQuantize(x, .u8, scale: 0.02, zero: 0, "x")
        let (w, bias) = b.weights([16, 16, 3, 3], limit: 127, "c")
        let (yq, _) = b.fakeQuantize(b.node(.conv(ConvAttributes(pads: [1, 1, 1, 1])), [xd, w, bias], "c"), .u8, scale: 0.03, zero: 128, "y")
        b.g.outputs = [yq]
        let (want, runs) = try QuantizedConvTests.runNativeAndAsAVX2(b, CodegenOptions(name: "qfast", kilnVersion: "test", int8: .fast), output: "y_q")
        for run in runs {
            // The conv ran oneDNN's int8 kernel (u8 source), not the f32 form.
            #expect(run.verbose.split(separator: "\n").contains { $0.hasPrefix("onednn_verbose,exec,") && $0.contains("src_u8") }, "\(run.verbose)")
            #expect(Conformance.compare(run.got, want, rtol: 0, atol: 1) == nil)
        }
    }
}

/// The sample model quantized by PyTorch's PT2E flow (X86InductorQuantizer, PTQ and QAT) and exported
/// with torch.onnx.export(dynamo=True): compiled through the CLI, every conv and Gemm runs int8, and
/// the library's held-back accuracy equals PyTorch's own quantized model's within 0.3 points.
@Suite struct PT2ETests {
    struct Expected: Decodable {
        struct Model: Decodable {
            let torch_eager_accuracy: Double
            let torch_inductor_accuracy: Double
            let held_back_images: Int
        }
        let ptq: Model
        let qat: Model
    }

    @Test(arguments: ["digits.pt2e", "digits.qat"])
    func pt2eDigitsModel(_ name: String) throws {
        let cli = BadInputTests()
        let samples = URL(fileURLWithPath: cli.digitsModel()).deletingLastPathComponent()
        let expected = try JSONDecoder().decode(Expected.self, from: Data(contentsOf: samples.appendingPathComponent("digits_pt2e.json")))
        let torch = name == "digits.qat" ? expected.qat : expected.ptq
        let dir = temporaryDirectory()
        let images = samples.appendingPathComponent("digits_test_images.npy").path
        let labels = samples.appendingPathComponent("digits_test_labels.npy").path
        let compiled = try cli.kiln(["compile", samples.appendingPathComponent("\(name).onnx").path, "--input-shape",
                                     "image=\(torch.held_back_images)x1x8x8", "-o", dir, "--name", "digits_q", "--library", "shared"])
        #expect(compiled.status == 0, "\(compiled.err)")
        #expect(compiled.out.contains("int8: 5 of 5 convs and matrix products\n"), "\(compiled.out)")
        let run = try cli.kiln(["run", (dir as NSString).appendingPathComponent("libdigits_q.so"), "--input", images, "--labels", labels])
        #expect(run.status == 0, "\(run.err)")
        let line = try #require(run.out.split(separator: "\n").first { $0.hasPrefix("accuracy: ") }, "\(run.out)")
        let counts = line.dropFirst("accuracy: ".count).split(separator: " ")[0].split(separator: "/").compactMap { Int($0) }
        try #require(counts.count == 2 && counts[1] == torch.held_back_images, "\(line)")
        let accuracy = Double(counts[0]) / Double(counts[1])
        // 0.3 points: one image of 360 is 0.28.
        #expect(abs(accuracy - torch.torch_eager_accuracy) <= 0.003, "Kiln \(accuracy), PyTorch eager \(torch.torch_eager_accuracy)")
        #expect(abs(accuracy - torch.torch_inductor_accuracy) <= 0.003, "Kiln \(accuracy), PyTorch Inductor \(torch.torch_inductor_accuracy)")
    }
}

/// Quantized operands for the graphs of the tests.
extension RegressionTests.Builder {
    /// Q then DQ of `x` per tensor.
    mutating func fakeQuantize(_ x: ValueID, _ t: ElementType, scale: Float, zero: Int64, _ name: String) -> (q: ValueID, dq: ValueID) {
        let s = g.addConstant("\(name)_s", .scalar(scale))
        let z = g.addConstant("\(name)_z", Tensor(t, shape: [], ints: [zero]))
        let q = node(.quantizeLinear(axis: 1, outputType: t), [x, s, z], "\(name)_q")
        return (q, node(.dequantizeLinear(axis: 1), [q, s, z], "\(name)_dq"))
    }

    /// DQ of random s8 weights within ±`limit`, per output channel, and an f32 bias.
    mutating func weights(_ shape: [Int], limit: Int64, _ name: String) -> (w: ValueID, b: ValueID) {
        seed += 1
        var rng = SplitMix(seed: UInt64(seed) &* 101)
        let n = shapeProduct(shape)
        let w = Tensor(.s8, shape: shape, ints: (0..<n).map { _ in Int64(rng.next() % UInt64(2 * limit + 1)) - limit })
        let scales = (0..<shape[0]).map { Float(0.002 + 0.001 * Double($0 % 7)) }
        let wq = g.addConstant("\(name)_wq", w)
        let ws = g.addConstant("\(name)_ws", Tensor(.f32, shape: [shape[0]], floats: scales))
        let dq = node(.dequantizeLinear(axis: 0), [wq, ws], "\(name)_w")
        let b = g.addConstant("\(name)_b", Tensor(.f32, shape: [shape[0]], floats: (0..<shape[0]).map { Float($0 % 5) * 0.05 - 0.1 }))
        return (dq, b)
    }
}
