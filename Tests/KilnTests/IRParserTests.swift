import Foundation
import Testing
import KilnDriver
import KilnIR
import KilnONNX
import KilnPasses

/// `parseIR` reads what `printIR` writes: every op with every attribute, the sample models and
/// the fuzz corpus before and after the pipeline, odd names; hand-written text with defaults
/// left out; errors that name the line.
@Suite struct IRParserTests {
    static let origin = NodeOrigin(opType: "test", version: 17)

    /// `printIR(parseIR(printIR(g))) == printIR(g)`; returns the parsed graph.
    @discardableResult
    func roundTrip(_ g: Graph, _ label: String = "", sourceLocation: SourceLocation = #_sourceLocation) throws -> Graph {
        let text = printIR(g)
        let parsed = try parseIR(text)
        let again = printIR(parsed)
        #expect(again == text, "\(label): the text changed on the way back\n\(textDiff(expected: text, actual: again))", sourceLocation: sourceLocation)
        return parsed
    }

    /// The parts of `b` that the text form holds equal `a`'s: names, types, layouts, constants
    /// (the values of those up to 8 elements), nodes with their operands and origins, and the ops
    /// themselves when `exactOps` (a per-axis quantization is printed as its range only).
    func expectSameGraph(_ a: Graph, _ b: Graph, exactOps: Bool, sourceLocation: SourceLocation = #_sourceLocation) {
        func name(_ g: Graph, _ v: ValueID?) -> String { v.map { g.values[$0].name } ?? "_" }
        #expect(a.name == b.name, sourceLocation: sourceLocation)
        #expect(a.inputs.map { a.values[$0].name } == b.inputs.map { b.values[$0].name }, sourceLocation: sourceLocation)
        #expect(a.inputs.map { a.values[$0].type } == b.inputs.map { b.values[$0].type }, sourceLocation: sourceLocation)
        #expect(a.outputs.map { name(a, $0) } == b.outputs.map { name(b, $0) }, sourceLocation: sourceLocation)
        #expect(a.nodes.count == b.nodes.count, sourceLocation: sourceLocation)
        for (m, n) in zip(a.nodes, b.nodes) {
            #expect(m.name == n.name && m.origin == n.origin, "\(m.label) vs \(n.label)", sourceLocation: sourceLocation)
            #expect(m.op.name == n.op.name, sourceLocation: sourceLocation)
            if exactOps { #expect(m.op == n.op, "\(m.label): \(m.op) vs \(n.op)", sourceLocation: sourceLocation) }
            #expect(m.inputs.map { name(a, $0) } == n.inputs.map { name(b, $0) }, "\(m.label)", sourceLocation: sourceLocation)
            #expect(m.outputs.map { name(a, $0) } == n.outputs.map { name(b, $0) }, "\(m.label)", sourceLocation: sourceLocation)
            for (v, w) in zip(m.inputs + m.outputs.map(Optional.some), n.inputs + n.outputs.map(Optional.some)) {
                guard let v, let w else { continue }
                #expect(a.values[v].type == b.values[w].type && a.values[v].layout == b.values[w].layout,
                        "\(a.values[v].name)", sourceLocation: sourceLocation)
                #expect((a.values[v].constant == nil) == (b.values[w].constant == nil), "\(a.values[v].name)", sourceLocation: sourceLocation)
                if let c = a.values[v].constant, c.count <= 8 {
                    // Compared as text: NaN == NaN there.
                    #expect("\(c.floats)\(c.ints)" == "\(b.values[w].constant!.floats)\(b.values[w].constant!.ints)",
                            "\(a.values[v].name)", sourceLocation: sourceLocation)
                }
            }
        }
    }

    // MARK: Every op

    static let q8 = Quantization.perTensor(.u8, scale: 0.05, zeroPoint: 128)
    static let qs8 = Quantization.perTensor(.s8, scale: 0.25, zeroPoint: 0)

    /// One op of each kind, most with attributes other than the defaults.
    static var everyOp: [Op] {
        let allPostOps: [PostOp] = [.sum, .relu, .leakyRelu(alpha: 0.1), .clip(min: 0, max: 6), .sigmoid, .tanh, .hardSwish,
                                    .hardSigmoid(alpha: 0.2, beta: 0.5), .silu, .gelu(tanhApproximation: true),
                                    .gelu(tanhApproximation: false), .fakeQuantize(q8)]
        var ops: [Op] = [
            .conv(ConvAttributes(kernelShape: [3, 3], strides: [2, 2], pads: [1, 1, 1, 1], dilations: [1, 1], group: 2,
                                 autoPad: .sameUpper, postOps: allPostOps)),
            .conv(ConvAttributes()),
            .convTranspose(ConvTransposeAttributes(conv: ConvAttributes(strides: [2, 2], group: 3), outputPadding: [1, 1], outputShape: [16, 16])),
            .quantizedConv(QuantizedConvAttributes(conv: ConvAttributes(pads: [1, 1, 1, 1], postOps: [.sum, .relu]),
                                                   input: q8, weights: qs8, output: q8, addend: q8)),
            .quantizedConv(QuantizedConvAttributes(conv: ConvAttributes(), input: q8, weights: qs8, output: nil)),
            .batchNormalization(epsilon: 1e-3),
            .channelScaleShift(postOps: [.relu]), .channelScaleShift(postOps: []),
            .gemm(GemmAttributes(alpha: 0.5, beta: 2, transA: true, transB: false, postOps: [.relu])), .gemm(GemmAttributes()),
            .matMul(MatMulAttributes(postOps: [.gelu(tanhApproximation: false)])), .matMul(MatMulAttributes()),
            .quantizedMatMul(QuantizedMatMulAttributes(input: q8, weights: qs8, output: nil, postOps: [.relu])),
            .quantizedMatMul(QuantizedMatMulAttributes(input: q8, weights: qs8, output: q8)),
            .leakyRelu(alpha: 0.2), .elu(alpha: 0.7), .selu(alpha: 1.5, gamma: 1.1), .hardSigmoid(alpha: 0.3, beta: 0.4), .clip,
            .gelu(tanhApproximation: true), .gelu(tanhApproximation: false), .alignForBroadcast(axis: 1),
            .maxPool(PoolAttributes(kernelShape: [3, 3], strides: [2, 2], pads: [1, 1, 1, 1], dilations: [2, 2], autoPad: .valid, ceilMode: true)),
            .averagePool(PoolAttributes(kernelShape: [2, 2], countIncludePad: true)),
            .globalAveragePool, .globalMaxPool, .concat(axis: -1), .split(axis: 2), .slice,
            .reshape(allowZero: true), .reshape(allowZero: false), .flatten(axis: 0), .transpose(perm: [0, 2, 3, 1]), .transpose(perm: nil),
            .squeeze, .unsqueeze, .gather(axis: 1), .shape(start: 1, end: 3), .shape(start: -2, end: nil), .size, .cast(to: .f16),
            .castLike, .constantOfShape(value: .scalar(int: 3, .s32)), .constantOfShape(value: .scalar(1.5)), .identity, .dropout,
            .pad(mode: .reflect), .pad(mode: .constant),
            .resize(ResizeAttributes(mode: .linear, coordinateTransformation: .alignCorners, nearestMode: .floor, excludeOutside: true,
                                     extrapolationValue: 0.5, axes: [2, 3], keepAspectRatioPolicy: .notLarger)),
            .resize(ResizeAttributes()),
            .softmax(axis: 1, legacy: true), .logSoftmax(axis: -1, legacy: false),
            .reduce(.mean, keepDims: true, noopWithEmptyAxes: false),
            .expand, .range, .where, .layerNormalization(axis: 1, epsilon: 1e-6), .instanceNormalization(epsilon: 1e-4),
            .depthToSpace(blockSize: 2, crd: true), .spaceToDepth(blockSize: 3, crd: false), .tile,
            .argReduce(ArgReduceAttributes(largest: false, axis: 2, keepDims: false, selectLastIndex: true)),
            .argReduce(ArgReduceAttributes(largest: true, axis: 0, keepDims: true, selectLastIndex: false)),
            .gatherElements(axis: 1), .topK(TopKAttributes(axis: 0, largest: false)), .topK(TopKAttributes(axis: -1, largest: true)),
            .quantizeLinear(axis: 0, outputType: .s8), .dequantizeLinear(axis: 0), .layoutConvert,
            .elementwiseGroup(ElementwiseGroup(steps: [
                .init(op: .dequantizeLinear(axis: 1), operands: [.input(0), .input(1), .input(2)]),
                .init(op: .leakyRelu(alpha: 0.1), operands: [.step(0)]),
                .init(op: .clip, operands: [.step(1), .absent, .input(3)]),
                .init(op: .binary(.add), operands: [.step(2), .step(0)]),
                .init(op: .hardSigmoid(alpha: 0.25, beta: 0.5), operands: [.step(3)]),
                .init(op: .quantizeLinear(axis: 1, outputType: .s8), operands: [.step(4), .input(1)]),
            ])),
            .elementwiseGroup(ElementwiseGroup(steps: [.init(op: .binary(.mul), operands: [.input(0), .input(0)])],
                                               reduction: .init(kind: .sumSquare, axes: [1, 2], keepDims: false))),
            .quantized(QuantizedOpAttributes(op: .averagePool(PoolAttributes(kernelShape: [2, 2], strides: [2, 2])), inputs: [q8], output: q8)),
            .quantized(QuantizedOpAttributes(op: .concat(axis: 1), inputs: [q8, nil, qs8], output: q8)),
            .quantized(QuantizedOpAttributes(op: .globalAveragePool, inputs: [q8], output: q8)),
            .quantized(QuantizedOpAttributes(op: .channelScaleShift(postOps: [.relu]), inputs: [q8, nil, nil], output: q8)),
            .unsupported(reason: "attribute 'foo' with \"quotes\", a \\ backslash,\na new line and # a hash  # more"),
            .unsupported(reason: ""),
            .dynamicQuantizedMatMul(DynamicQuantizedMatMulAttributes(weights: Quantization(.s8, scales: [0.25, 0.5], zeroPoints: [0, 0], axis: 1), postOps: [.gelu(tanhApproximation: true)])),
            .dynamicQuantizeLinear,
            .matMulInteger,
            .convInteger(ConvAttributes(strides: [2, 2], pads: [1, 0, 1, 0], group: 2)),
            .recurrent(RecurrentAttributes(kind: .lstm, direction: .bidirectional, hiddenSize: 8)),
            .recurrent(RecurrentAttributes(kind: .gru, hiddenSize: 3, activations: [.hardSigmoid(alpha: 0.3, beta: 0.45), .leakyRelu(alpha: 0.05)],
                                           clip: 2.5, batchMajor: true, linearBeforeReset: true)),
            .recurrent(RecurrentAttributes(kind: .rnn, direction: .reverse, hiddenSize: 1, inputForget: true)),
        ]
        ops += UnaryOp.allCases.map { .unary($0) } + BinaryOp.allCases.map { .binary($0) } + BinaryOp.allCases.map { .variadic($0) }
        ops += ReduceOp.allCases.map { .reduce($0, keepDims: false, noopWithEmptyAxes: true) }
        return ops
    }

    /// Fails to compile when `Op` gains a case: add it to `everyOp` (and to `parseIR`, when it
    /// has attributes).
    static func covered(_ op: Op) -> Bool {
        switch op {
        case .conv, .convTranspose, .quantizedConv, .batchNormalization, .channelScaleShift, .gemm, .matMul, .quantizedMatMul,
             .unary, .leakyRelu, .elu, .selu, .hardSigmoid, .clip, .gelu, .binary, .variadic, .alignForBroadcast, .maxPool,
             .averagePool, .globalAveragePool, .globalMaxPool, .concat, .split, .slice, .reshape, .flatten, .transpose, .squeeze,
             .unsqueeze, .gather, .shape, .size, .cast, .castLike, .constantOfShape, .identity, .dropout, .pad, .resize, .softmax,
             .logSoftmax, .reduce, .expand, .range, .where, .layerNormalization, .instanceNormalization, .depthToSpace,
             .spaceToDepth, .tile, .argReduce, .gatherElements, .topK, .quantizeLinear, .dequantizeLinear, .layoutConvert,
             .elementwiseGroup, .quantized, .unsupported, .dynamicQuantizedMatMul, .dynamicQuantizeLinear, .matMulInteger, .recurrent, .convInteger:
            return true
        }
    }

    /// A graph with one node per op (not type-correct: the parser does not check types).
    static func zoo() -> Graph {
        var g = Graph(name: "zoo")
        let x = g.addValue("x", TensorType(.f32, [1, 4, 8, 8]))
        let w = g.addConstant("w", Tensor(.f32, shape: [2, 2], floats: [1, -0.5, .infinity, -0.0]))
        let k = g.addConstant("k", Tensor(.s64, shape: [3], ints: [Int64.min, -1, Int64.max]))
        let big = g.addConstant("big", Tensor(.f32, shape: [3, 3], floats: (0..<9).map(Float.init)))
        let flags = g.addConstant("flags", Tensor(.bool, shape: [2], ints: [1, 0]))
        let half = g.addConstant("half", Tensor(.f16, shape: [], floats: [0.33325195]))
        g.inputs = [x]
        for (i, op) in everyOp.enumerated() {
            let layout: Layout = i % 7 == 3 ? .channelsLast : i % 7 == 5 ? .blocked16 : .plain
            var outs = [g.addValue("y\(i)", TensorType(.f32, [1, 2, 3]))]
            g.values[outs[0]].layout = layout
            if case .topK = op { outs.append(g.addValue("i\(i)", TensorType(.s64, dims: [.symbolic("k"), .fixed(3)]))) }
            g.nodes.append(Node(name: i % 5 == 0 ? "" : "node \(i)", op: op, inputs: [x, i % 3 == 0 ? nil : w, k, big, flags, half].prefix(1 + i % 6).map { $0 },
                                outputs: outs, origin: i % 4 == 0 ? NodeOrigin(opType: "FusedConv", domain: "com.microsoft", version: 1) : origin))
        }
        g.outputs = g.nodes.map { $0.outputs[0] } + [w]
        return g
    }

    @Test func everyOpReadsBack() throws {
        #expect(Self.everyOp.allSatisfy(Self.covered))
        let g = Self.zoo()
        let parsed = try roundTrip(g, "zoo")
        expectSameGraph(g, parsed, exactOps: true)
    }

    /// A per-axis quantization is printed as its count and range: it reads back with the scales
    /// spread over the range, which prints the same. The explicit form reads exactly.
    @Test func perAxisQuantization() throws {
        var g = Graph(name: "q")
        let x = g.addValue("x", TensorType(.u8, [1, 4, 8, 8]))
        let w = g.addConstant("w", Tensor(zeros: .s8, shape: [3, 4, 1, 1]))
        let y = g.addValue("y", TensorType(.u8, [1, 3, 8, 8]))
        g.inputs = [x]
        let weights = Quantization(.s8, scales: [0.02, 0.5, 0.125], zeroPoints: [0, 0, 0])
        let asymmetric = Quantization(.u8, scales: [0.1, 0.3], zeroPoints: [3, 7], axis: 1)
        g.nodes = [Node(name: "qc", op: .quantizedConv(QuantizedConvAttributes(conv: ConvAttributes(postOps: [.fakeQuantize(asymmetric)]),
                                                                                 input: Self.q8, weights: weights, output: Self.q8)),
                        inputs: [x, w], outputs: [y], origin: Self.origin)]
        g.outputs = [y]
        let parsed = try roundTrip(g)
        guard case .quantizedConv(let q) = parsed.nodes[0].op else { Issue.record("not a quantized conv"); return }
        #expect(q.weights.scales == [0.02, 0.26, 0.5] && q.weights.zeroPoints == [0, 0, 0] && q.weights.axis == 0)
        guard case .fakeQuantize(let f) = q.conv.postOps[0] else { Issue.record("no fake quantization"); return }
        #expect(f.zeroPoints == [3, 7] && f.axis == 1)

        let exact = try parseIR("""
            graph q(%x: u8[1x4x8x8]) -> (%y)
              %w = constant s8[3x4x1x1] [0]
              %y = quantized_conv(%x, %w) {input=u8(s=0.05, z=128) weights=s8(axis 0: s=[0.02, 0.5, 0.125], z=0) output=f32} : f32[1x3x8x8]
            """)
        guard case .quantizedConv(let e) = exact.nodes[0].op else { Issue.record("not a quantized conv"); return }
        #expect(e.weights == weights && e.output == nil)
    }

    // MARK: Names, types, trailers

    @Test func oddNamesAndDimensionsAreQuoted() throws {
        var g = Graph(name: "my model (v2)")
        let names = ["onnx::Conv_12", "/layer1/conv/Conv_output_0", "input.1", "has space", "a,b", "x:", "", "say \"hi\"", "#1",
                     "%p", "a=b", "über", "tab\there", "_"]
        let dims: [Dim] = [.symbolic("batch"), .symbolic("max_x"), .symbolic("N"), .symbolic("3d"), .symbolic("?"), .symbolic("x"),
                           .symbolic("seq len"), .fixed(0), .symbolic("B_2")]
        let x = g.addValue(names[0], TensorType(.f32, dims: dims))
        g.inputs = [x]
        var last = x
        for (i, n) in names.dropFirst().enumerated() {
            let v = g.addValue(n, TensorType(.f32, dims: dims))
            let nodeName = ["", "plain", "with space", "new\nline", "\"quoted\"", "ends with space ", "a  b Conv-3"][i % 7]
            g.nodes.append(Node(name: nodeName, op: .unary(.relu), inputs: [last], outputs: [v], origin: Self.origin))
            last = v
        }
        g.outputs = [last, x]
        let text = printIR(g)
        #expect(text.hasPrefix("graph \"my model (v2)\"(%onnx::Conv_12: f32[batchx\"max_x\"xNx\"3d\"x?x\"x\"x\"seq len\"x0xB_2])"))
        #expect(text.contains("%/layer1/conv/Conv_output_0 = relu(%onnx::Conv_12)"))
        let parsed = try roundTrip(g)
        expectSameGraph(g, parsed, exactOps: true)
        #expect(parsed.values[parsed.inputs[0]].type == g.values[x].type)
    }

    /// Typical graphs print as before: names and dims as they are, no quotes.
    @Test func typicalTextIsUnchanged() throws {
        let g = try loadModel(path: IRParserTests.sample("digits.onnx"), inputShapes: ["image": [1, 1, 8, 8]])
        let text = printIR(g)
        #expect(!text.contains("\""))
        #expect(text.hasPrefix("graph "))
    }

    @Test func handWrittenTextTakesDefaults() throws {
        let g = try parseIR("""
            // A comment line, then a blank one.

            graph small(%x: f32[1x2x4x4], %n: f32[Nx3]) -> (%y, %s)
              # comments start with # or //
              %w = constant f32[2x2x1x1] [1, 0, 0, 1]
              %b = constant f32[2] [0.5]
              %big = constant f32[3x3]
              %ints = constant s64[20]
              %c = conv(%x, %w, %b) : f32[1x2x4x4]
              %r = leaky_relu(%c) : f32[1x2x4x4] nhwc  # my_relu
              %y = batch_norm(%r, %b, %b, %b, %b) : f32[1x2x4x4]  # bn com.example.BatchNorm-9
              %s = gemm(%n, %big) : f32[Nx3]
            """)
        #expect(g.name == "small" && g.opset == 17)
        #expect(g.nodes.map(\.name) == ["c", "my_relu", "bn", "s"])
        #expect(g.nodes[0].op == .conv(ConvAttributes()) && g.nodes[0].origin == NodeOrigin(opType: "conv", version: 17))
        #expect(g.nodes[1].op == .leakyRelu(alpha: 0.01) && g.values[g.nodes[1].outputs[0]].layout == .channelsLast)
        #expect(g.nodes[2].op == .batchNormalization(epsilon: 1e-5))
        #expect(g.nodes[2].origin == NodeOrigin(opType: "BatchNorm", domain: "com.example", version: 9))
        #expect(g.nodes[3].op == .gemm(GemmAttributes()))
        #expect(g.values[g.nodes[0].inputs[1]!].constant?.floats == [1, 0, 0, 1])
        #expect(g.values[g.nodes[0].inputs[2]!].constant?.floats == [0.5, 0.5])
        // Left out: (k + 1) / 16 and k with k = (7i + 3) mod 16.
        let filled: [Float] = [4.0 / 16, 11.0 / 16, 2.0 / 16, 9.0 / 16]
        #expect(Array(g.values[g.nodes[3].inputs[1]!].constant!.floats.prefix(4)) == filled)
        let ints: [Int64] = [3, 10, 1, 8]
        #expect(Array(g.values.first { $0.name == "ints" }!.constant!.ints.prefix(4)) == ints)
        #expect(g.values[g.inputs[1]].type == TensorType(.f32, dims: [.symbolic("N"), .fixed(3)]))
        try verify(g)
    }

    /// An input with a constant (an initializer the caller may override) is printed in the
    /// header and as a constant; it reads back as one value.
    @Test func inputThatIsAlsoAConstant() throws {
        var g = Graph(name: "init")
        let x = g.addValue("x", TensorType(.f32, [2]))
        let s = g.addConstant("s", Tensor(.f32, shape: [2], floats: [0.5, 2]))
        let y = g.addValue("y", TensorType(.f32, [2]))
        g.inputs = [x, s]
        g.nodes = [Node(name: "mul", op: .binary(.mul), inputs: [x, s], outputs: [y], origin: Self.origin)]
        g.outputs = [y]
        let parsed = try roundTrip(g)
        #expect(parsed.values.count == 3 && parsed.inputs == [0, 1] && parsed.values[1].constant?.floats == [0.5, 2])
        expectSameGraph(g, parsed, exactOps: true)
    }

    // MARK: Models

    static func sample(_ file: String) -> String {
        URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
            .deletingLastPathComponent().appendingPathComponent("samples/models/\(file)").path
    }

    @Test(arguments: ["digits.onnx", "digits.qat.onnx", "digits.pt2e.onnx"])
    func sampleModelsReadBack(file: String) throws {
        let imported = try loadONNXModel(path: Self.sample(file))
        expectSameGraph(imported, try roundTrip(imported, "\(file) imported"), exactOps: true)
        var g = try loadModel(path: Self.sample(file), inputShapes: ["image": [1, 1, 8, 8]])
        expectSameGraph(g, try roundTrip(g, "\(file) simplified"), exactOps: true)
        try Pipeline.fuseFloat(&g)
        expectSameGraph(g, try roundTrip(g, "\(file) fused"), exactOps: true)
        var optimized = try loadModel(path: Self.sample(file), inputShapes: ["image": [1, 1, 8, 8]])
        try Pipeline.optimize(&optimized)
        expectSameGraph(optimized, try roundTrip(optimized, "\(file) optimized"), exactOps: false)
    }

    /// The fuzz corpus's ONNX seeds (one or two ops each, most kinds): imported, and through the
    /// pipeline where their shapes are static.
    @Test func fuzzCorpusReadsBack() throws {
        let dir = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
            .appendingPathComponent("fuzz/corpus/onnx")
        let files = try FileManager.default.contentsOfDirectory(atPath: dir.path).filter { $0.hasSuffix(".onnx") }.sorted()
        #expect(files.count >= 30)
        var optimized = 0
        for f in files {
            let path = dir.appendingPathComponent(f).path
            let g = try loadONNXModel(path: path)
            expectSameGraph(g, try roundTrip(g, f), exactOps: true)
            guard var s = try? loadModel(path: path), (try? Pipeline.optimize(&s)) != nil else { continue }
            try roundTrip(s, "\(f) optimized")
            optimized += 1
        }
        #expect(optimized >= 20)
    }

    /// The graphs the fusion tests build, before and after the pipeline.
    @Test func testGraphsReadBack() throws {
        var g = FusionTests.residualBlock()
        expectSameGraph(g, try roundTrip(g, "block"), exactOps: true)
        try inferShapes(&g)
        expectSameGraph(g, try roundTrip(g, "block inferred"), exactOps: true)
        try Pipeline.optimize(&g)
        expectSameGraph(g, try roundTrip(g, "block optimized"), exactOps: true)
    }

    // MARK: Errors

    func error(_ text: String) -> String {
        do {
            _ = try parseIR(text)
            return "no error"
        } catch let e as KilnError {
            return e.message
        } catch {
            return "\(error)"
        }
    }

    @Test func errorsNameTheLineAndWhatWasExpected() {
        let header = "graph g(%x: f32[2]) -> (%y)\n"
        let cases: [(String, String)] = [
            ("", "no graph"),
            ("grap g() -> ()", "line 1, column 1: expected 'graph'"),
            ("graph g(%x: f33[2]) -> (%x)", "line 1, column 13: expected an element type"),
            ("graph g(%x: f32[2]) -> (%y)", "line 1, column 25: the graph output %y is never defined"),
            (header + "  %y = relu(%z) : f32[2]", "line 2, column 13: %z is not defined"),
            (header + "  %y = frobnicate(%x) : f32[2]", "line 2, column 8: unknown op 'frobnicate'"),
            (header + "  %y = relu(%x) {alpha=0.1} : f32[2]", "line 2, column 18: relu has no attribute 'alpha'"),
            (header + "  %y = conv(%x, %x) {group=two} : f32[2]", "line 2, column 28: expected group (an integer)"),
            (header + "  %y = conv(%x, %x) {colour=red} : f32[2]", "unknown attribute 'colour'"),
            (header + "  %y = relu(%x) : f32[2], f32[2]", "expected 1 type (one per result), got 2"),
            (header + "  %y = relu(%x)", "line 2, column 16: expected ':' before the results' types, found the end of the line"),
            (header + "  %x = relu(%x) : f32[2]", "line 2, column 3: %x is defined twice (first on line 1)"),
            (header + "  %w = constant f32[3] [1.0, 2.0]\n  %y = relu(%x) : f32[2]", "line 2, column 24: expected 3 values for shape [3]"),
            (header + "  %y = concat(%x) : f32[2]", "concat needs the attribute axis="),
            (header + "  %y = relu(%x) : f32[2x]", "expected a dimension"),
            (header + "  %y = conv(%x, %x) {post_ops=[relu, swish]} : f32[2]", "expected a post-op"),
            (header + "  %y = elementwise(%x) {steps=[s0=relu(in0); s2=exp(s0)]} : f32[2]", "expected step s1"),
            (header + "  %y = elementwise(%x) {steps=[s0=concat(in0){axis=0}]} : f32[2]", "concat cannot be a step"),
            (header + "  %y = unsupported(%x) {reason=\"open} : f32[2]", "unterminated string"),
            (header + "  relu(%x)", "line 2, column 3: expected a constant or a node"),
        ]
        for (text, expected) in cases {
            let message = error(text)
            #expect(message.contains(expected), "\(text)\n→ \(message)")
        }
    }
}

/// A line diff of two texts (longest common subsequence): `-` lines expected only, `+` actual only.
func textDiff(expected: String, actual: String) -> String {
    let a = expected.split(separator: "\n", omittingEmptySubsequences: false).map(String.init)
    let b = actual.split(separator: "\n", omittingEmptySubsequences: false).map(String.init)
    var lcs = [[Int]](repeating: [Int](repeating: 0, count: b.count + 1), count: a.count + 1)
    for i in stride(from: a.count - 1, through: 0, by: -1) {
        for j in stride(from: b.count - 1, through: 0, by: -1) {
            lcs[i][j] = a[i] == b[j] ? lcs[i + 1][j + 1] + 1 : max(lcs[i + 1][j], lcs[i][j + 1])
        }
    }
    var out: [String] = []
    var i = 0, j = 0
    while i < a.count || j < b.count {
        if i < a.count, j < b.count, a[i] == b[j] {
            out.append("  " + a[i]); i += 1; j += 1
        } else if j < b.count, i == a.count || lcs[i][j + 1] >= lcs[i + 1][j] {
            out.append("+ " + b[j]); j += 1
        } else {
            out.append("- " + a[i]); i += 1
        }
    }
    return out.joined(separator: "\n")
}
