import Foundation
import Testing
import KilnCodegen
import KilnDriver
import KilnIR
import KilnPasses
import KilnReference
import KilnQuantization

/// Kiln's own quantization (`kiln compile --quantize int8`): the recipe's plan, the QDQ it
/// inserts, the calibration's choice of ranges, the samples' forms, and the digits model's
/// accuracy in int8.
@Suite(.serialized) struct QuantizeTests {
    typealias Builder = RegressionTests.Builder

    /// x → conv+relu6 → conv(+r1)+relu → max pool → global average pool → flatten → gemm, and a
    /// sigmoid of the block's output as a second output.
    static func residualNet() -> Builder {
        var b = Builder()
        let x = b.input("x", [1, 8, 6, 6])
        let c1 = b.node(.conv(ConvAttributes(pads: [1, 1, 1, 1])), [x, b.constant("w1", [8, 8, 3, 3]), b.constant("b1", [8])], "c1")
        let r1 = b.node(.clip, [c1, b.scalar("lo", 0), b.scalar("hi", 6)], "r1")
        let c2 = b.node(.conv(ConvAttributes(pads: [1, 1, 1, 1])), [r1, b.constant("w2", [8, 8, 3, 3]), b.constant("b2", [8])], "c2")
        let sum = b.node(.binary(.add), [c2, r1], "sum")
        let r2 = b.node(.unary(.relu), [sum], "r2")
        let mp = b.node(.maxPool(PoolAttributes(kernelShape: [2, 2], strides: [2, 2])), [r2], "mp")
        let gap = b.node(.globalAveragePool, [mp], "gap")
        let flat = b.node(.flatten(axis: 1), [gap], "flat")
        let y = b.node(.gemm(GemmAttributes(transB: true)), [flat, b.constant("w3", [5, 8]), b.constant("b3", [5])], "y")
        let s = b.node(.unary(.sigmoid), [r2], "s")
        b.g.outputs = [y, s]
        return b
    }

    @Test func recipePlanOfAResidualNet() throws {
        var g = Self.residualNet().g
        try Pipeline.simplify(&g, inputShapes: [:])
        try Pipeline.fuseFloat(&g)
        let plan = planQuantization(g)
        func named(_ v: ValueID) -> String { g.values[v].name }
        // The image; the block's input (conv source and residual addend); the block's output
        // and its max pooling (shared); the global pooling and its flattening (shared).
        let groups = Set(plan.groups.map { Set($0.map(named)) })
        #expect(groups == [["x"], ["r1"], ["r2", "mp"], ["gap", "flat"]], "\(plan.groups.map { $0.map(named) })\n\(printIR(g))")
        #expect(plan.decisions.count == 3 && plan.decisions.allSatisfy { $0.hasSuffix(": int8") }, "\(plan.decisions)")
        // Sigmoid stays f32: not in the plan.
        let sigmoid = try #require(g.nodes.firstIndex { if case .unary(.sigmoid) = $0.op { return true }; return false })
        #expect(!plan.quantizedNodes.contains(sigmoid))
    }

    /// A slice between two convs (ShuffleNet's split) moves u8 values: it shares its input's parameters.
    @Test func slicesShareTheirInputsParameters() throws {
        var b = Builder()
        let x = b.input("x", [1, 8, 6, 6])
        let c1 = b.node(.conv(ConvAttributes()), [x, b.constant("w1", [8, 8, 1, 1]), b.constant("b1", [8])], "c1")
        let r1 = b.node(.unary(.relu), [c1], "r1")
        let ints = { (v: [Int64]) in Tensor(.s64, shape: [v.count], ints: v) }
        let half = b.node(.slice, [r1, b.g.addConstant("starts", ints([4])), b.g.addConstant("ends", ints([8])), b.g.addConstant("axes", ints([1]))], "half")
        let y = b.node(.conv(ConvAttributes()), [half, b.constant("w2", [4, 4, 1, 1]), b.constant("b2", [4])], "y")
        b.g.outputs = [y]
        var g = b.g
        try Pipeline.simplify(&g, inputShapes: [:])
        try Pipeline.fuseFloat(&g)
        let plan = planQuantization(g)
        #expect(Set(plan.groups.map { Set($0.map { g.values[$0].name }) }) == [["x"], ["r1", "half"]], "\(printIR(g))")
    }

    /// A transformer's residual add before its LayerNorm stays f32: no int8 op reads its result
    /// (quantizing it rounded BERT's residual stream, whose few outlier channels set the scale:
    /// all-MiniLM-L6-v2's embedding cosine to FP32 0.874 with it, 0.991 without). The same add
    /// read by a matmul runs int8.
    @Test func residualAddBeforeLayerNormStaysF32() throws {
        for normalized in [true, false] {
            var b = Builder()
            let x = b.input("x", [1, 16, 8])
            let m = b.node(.matMul(MatMulAttributes()), [x, b.constant("w1", [8, 8])], "m")
            let a = b.node(.binary(.add), [m, x], "a")
            let next = normalized ? b.node(.layerNormalization(axis: 2, epsilon: 1e-5), [a, b.constant("gamma", [8]), b.constant("beta", [8])], "ln") : a
            b.g.outputs = [b.node(.matMul(MatMulAttributes()), [next, b.constant("w2", [8, 4])], "y")]
            var g = b.g
            try Pipeline.simplify(&g, inputShapes: [:])
            try Pipeline.fuseFloat(&g)
            let plan = planQuantization(g)
            let groups = Set(plan.groups.flatMap { $0.map { g.values[$0].name } })
            #expect(groups == (normalized ? ["x", "ln"] : ["x", "m", "a"]), "\(plan.groups.map { $0.map { g.values[$0].name } })\n\(printIR(g))")
            #expect(plan.precisionOf["a"] == (normalized ? "FP32: no int8 form in the X86 recipe" : "int8"), "\(plan.precisionOf)")
        }
    }

    /// Values that one elementwise loop computes and consumes are not quantized: `x·s` in x + x·s
    /// (PP-OCR's neck), and `a + b` in (a + b) + c, whose add reads u8 operands only. The loop's
    /// operands and its result, which a conv reads, are.
    @Test func valuesInsideOneLoopStayF32() throws {
        var b = Builder()
        let x = b.input("x", [1, 8, 6, 6]), y = b.input("y", [1, 8, 6, 6])
        let c1 = b.node(.conv(ConvAttributes()), [x, b.constant("w1", [8, 8, 1, 1]), b.constant("b1", [8])], "c1")
        let xs = b.node(.binary(.mul), [c1, b.constant("s", [1, 8, 1, 1])], "xs")
        let a1 = b.node(.binary(.add), [c1, xs], "a1")
        let a2 = b.node(.binary(.add), [x, y], "a2")
        let a3 = b.node(.binary(.add), [a2, a1], "a3")
        b.g.outputs = [b.node(.conv(ConvAttributes()), [a3, b.constant("w2", [8, 8, 1, 1]), b.constant("b2", [8])], "c2")]
        var g = b.g
        try Pipeline.simplify(&g, inputShapes: [:])
        try Pipeline.fuseFloat(&g)
        let plan = planQuantization(g)
        let groups = Set(plan.groups.flatMap { $0.map { g.values[$0].name } })
        #expect(groups == ["x", "y", "c1", "a3"], "\(plan.groups.map { $0.map { g.values[$0].name } })\n\(printIR(g))")
        #expect(plan.precisionOf["a1"] == "int8" && plan.precisionOf["a2"] == "int8", "\(plan.precisionOf)")
        // Inserted and lowered: one loop from the u8 values to a3's, and the library computes the
        // reference interpreter's function of the inserted QDQ graph.
        let params = plan.groups.indices.map { Quantization.perTensor(.u8, scale: 0.05, zeroPoint: Int32(100 + $0)) }
        insertQuantization(&g, plan, parameters: params)
        let want = try ReferenceInterpreter(g).run(b.inputs)
        try Pipeline.lower(&g)
        assignLayouts(&g, policy: .channelsLast)
        let loops = g.nodes.filter { if case .elementwiseGroup = $0.op { return true }; return false }
        #expect(loops.count == 1, "\(printIR(g))")
        let (got, _) = try compileAndRun(g, b.inputs, name: "inloop", winograd: .off)
        for (k, expected) in want {
            let d = got[k].flatMap { Conformance.compare($0, expected, rtol: 1e-4, atol: 1e-5) } ?? (got[k] == nil ? "missing" : nil)
            #expect(d == nil, "\(k): \(d ?? "")")
        }
    }

    /// The plan with made-up parameters, inserted and lowered: every conv and the gemm run int8, the
    /// sigmoid reads the block's output through DequantizeLinear (what the int8 conv wrote), and the
    /// library computes the reference interpreter's function of the inserted QDQ graph.
    @Test func insertedQuantizationLowersAndMatchesTheReference() throws {
        let b = Self.residualNet()
        var g = b.g
        try Pipeline.simplify(&g, inputShapes: [:])
        try Pipeline.fuseFloat(&g)
        let plan = planQuantization(g)
        // Zero points 0 and ranges within [0, 5.1]: the convs' ReLU6 and ReLU are the output's
        // saturation, and go from the primitives' post-ops.
        let params = plan.groups.indices.map { Quantization.perTensor(.u8, scale: $0 == 0 ? 0.03 : 0.02, zeroPoint: $0 == 0 ? 128 : 0) }
        insertQuantization(&g, plan, parameters: params)
        try verify(g, requireStaticShapes: true)
        let want = try ReferenceInterpreter(g).run(b.inputs)
        var lowered = g
        try Pipeline.lower(&lowered)
        assignLayouts(&lowered, policy: .channelsLast)
        let quantized = lowered.nodes.filter {
            switch $0.op { case .quantizedConv, .quantizedMatMul: return true; default: return false }
        }
        #expect(quantized.count == 3, "\(printIR(lowered))")
        #expect(!lowered.nodes.contains { switch $0.op { case .conv, .gemm, .matMul: return true; default: return false } }, "\(printIR(lowered))")
        let (got, _) = try compileAndRun(lowered, b.inputs, name: "selfq", winograd: .off)
        for (k, expected) in want {
            let d = got[k].flatMap { Conformance.compare($0, expected, rtol: 1e-4, atol: 1e-5) } ?? (got[k] == nil ? "missing" : nil)
            #expect(d == nil, "\(k): \(d ?? "")")
        }
    }

    /// Bias correction: int8 computes with the rounded weights ŵ, shifting each output channel by
    /// Σ (ŵ − w)·mean(x). On an input constant per channel (exact in u8: multiples of the scale)
    /// the corrected graph gives the f32 conv's outputs; without the correction it does not.
    @Test func biasCorrectionCancelsTheWeightsShift() throws {
        for group in [1, 4] {
            var b = Builder()
            let x = b.input("x", [1, 8, 5, 5])
            let y = b.node(.conv(ConvAttributes(group: group)), [x, b.constant("w", [8, 8 / group, 3, 3]), nil], "y")
            b.g.outputs = [y]
            let channels = (0..<8).map { Float($0 * 3 + 1) / 64 }
            b.inputs["x"] = Tensor(.f32, shape: [1, 8, 5, 5], floats: channels.flatMap { [Float](repeating: $0, count: 25) })
            var g = b.g
            try Pipeline.simplify(&g, inputShapes: [:])
            try Pipeline.fuseFloat(&g)
            let want = try ReferenceInterpreter(g).run(b.inputs)["y"]!
            let plan = planQuantization(g)
            let params = plan.groups.map { _ in Quantization.perTensor(.u8, scale: 1 / 64, zeroPoint: 0) }
            let xv = g.inputs[0]
            func run(corrected: Bool) throws -> Tensor {
                var q = g
                insertQuantization(&q, plan, parameters: params, inputMeans: { v, axis in
                    corrected && v == xv && axis == 1 ? channels.map(Double.init) : nil
                })
                return try ReferenceInterpreter(q).run(b.inputs)["y"]!
            }
            let plain = try run(corrected: false), fixed = try run(corrected: true)
            let worst = { (t: Tensor) in zip(t.floats, want.floats).map { abs($0 - $1) }.max()! }
            #expect(worst(fixed) < 1e-5, "group \(group): corrected \(worst(fixed))")
            #expect(worst(plain) > 1e-4, "group \(group): uncorrected \(worst(plain))")
        }
    }

    /// A final ReLU or clip that the output's saturation applies leaves oneDNN's post-ops.
    @Test func saturatingActivationsLeaveThePostOps() {
        let u8 = { (s: Float, z: Int32) in Quantization.perTensor(.u8, scale: s, zeroPoint: z) }
        #expect(oneDNNInt8Lowering([.clip(min: 0, max: 6)], output: u8(6 / 255, 0), addend: nil)?.postOps == [])
        #expect(oneDNNInt8Lowering([.clip(min: 0, max: 6)], output: u8(0.01, 0), addend: nil)?.postOps == [])
        #expect(oneDNNInt8Lowering([.sum, .relu], output: u8(0.01, 0), addend: u8(0.02, 5))?.postOps.count == 1)
        // Not covered: a range past 6, a zero point above 0, an f32 output.
        #expect(oneDNNInt8Lowering([.clip(min: 0, max: 6)], output: u8(0.05, 0), addend: nil)?.postOps.count == 2)
        #expect(oneDNNInt8Lowering([.relu], output: u8(0.01, 3), addend: nil)?.postOps.count == 1)
        #expect(oneDNNInt8Lowering([.relu], output: nil, addend: nil)?.postOps.count == 1)
        #expect(oneDNNInt8Lowering([.relu], output: .perTensor(.s8, scale: 0.01, zeroPoint: -128), addend: nil)?.postOps == [])
    }

    /// The error model behind the ranges and the SQNR: rounding inside, distance outside.
    @Test func quantizationErrorModel() {
        // 100 values in bin 2 of 4 over [0, 2) (centre 1.25), 10 in bin 3 (centre 1.75).
        let counts: [Double] = [0, 0, 100, 10]
        let inside = quantizationError(counts: counts, lo: 0, hi: 2, range: (0, 2.55))
        #expect(abs(inside.noise / (110 * 0.01 * 0.01 / 12) - 1) < 1e-6 && abs(inside.signal - (100 * 1.5625 + 10 * 3.0625)) < 1e-9, "\(inside)")
        // Clipped at 1.5: the 10 values at 1.75 err by 0.25 each.
        let clipped = quantizationError(counts: counts, lo: 0, hi: 2, range: (0, 1.5))
        #expect(abs(clipped.noise / (100 * (1.5 / 255) * (1.5 / 255) / 12 + 10 * 0.0625) - 1) < 1e-6, "\(clipped)")
    }

    @Test func symmetricWeightsPerChannel() {
        let w = Tensor(.f32, shape: [2, 3], floats: [0.5, -1.27, 0.01, 0, 0, 0])
        let (q, p) = quantizeWeightsSymmetric(w, axis: 0)
        #expect(p.scales == [0.01, 1] && p.isSymmetric && p.axis == 0)
        #expect(q.ints == [50, -127, 1, 0, 0, 0])
        let zero = affineU8Parameters(lo: -1, hi: 1.55)
        #expect(zero.zeroPoints == [100] && abs(zero.scales[0] - 0.01) < 1e-7)
        #expect(affineU8Parameters(lo: 0.5, hi: 2.55).zeroPoints == [0])
        #expect(affineU8Parameters(lo: 0, hi: 0) == .perTensor(.u8, scale: 1, zeroPoint: 0))
    }

    /// The histogram's L2-optimal range: a rare far outlier is clipped where its squared
    /// clipping error meets the rounding error it would spread over the rest, and a uniform
    /// distribution stays (almost) whole.
    @Test func histogramRangeClipsOutliers() {
        var counts = [Double](repeating: 0, count: 2048)
        // 10^6 values spread over [0, 0.98), one at 99.98 (bin centres). The expected error for a
        // range [0, b] past the bulk is (99.98 − b)² + 10^6 · (b / 255)² / 12, least at b ≈ 43.8.
        for i in 0..<20 { counts[i] = 50_000 }
        counts[2047] = 1
        let (a, b) = l2OptimalRange(counts: counts, lo: 0, hi: 100)
        #expect(a == 0 && abs(b - 43.8) < 0.3, "\(a) \(b)")
        let uniform = [Double](repeating: 10, count: 2048)
        let (u0, u1) = l2OptimalRange(counts: uniform, lo: -1, hi: 3)
        #expect(u0 >= -1 && u0 < -0.98 && u1 <= 3 && u1 > 2.98, "\(u0) \(u1)")
        // Every candidate holds 0, also where 0 falls inside a bin: all values near -1 still give b ≥ 0.
        let (n0, n1) = l2OptimalRange(counts: [100, 0, 0, 0], lo: -1.5, hi: 2.5)
        #expect(n0 <= 0 && n1 >= 0, "\(n0) \(n1)")
    }

    static let samplesDir: String = {
        URL(fileURLWithPath: BadInputTests().digitsModel()).deletingLastPathComponent().path
    }()

    /// The digits model, calibrated on its calibration images and compiled int8 through the
    /// public pipeline: every conv and gemm int8, and the held-back digits' top-1 within 0.5
    /// points of FP32's (the FP32 figure is PyTorch's, recorded with the model).
    @Test(arguments: [CalibrationMethod.histogram, .minmax])
    func digitsInInt8(method: CalibrationMethod) throws {
        let dir = temporaryDirectory()
        var o = CompileOptions(modelPath: BadInputTests().digitsModel(), outputDirectory: dir, name: "digits_int8", kilnVersion: "test")
        o.inputShapes = ["image": [1, 1, 8, 8]]
        o.library = .shared
        o.quantize = QuantizeOptions(samples: .path((Self.samplesDir as NSString).appendingPathComponent("digits_calib_images.npy")), method: method)
        o.quantize?.speedCheck = false
        let r = try compileModel(o)
        #expect(r.report.summary.hasPrefix("int8: 5 of 5 convs and matrix products"), "\(r.report.summary)")
        #expect(r.report.notes.first?.hasPrefix("calibration: 128 samples from ") == true, "\(r.report.notes)")
        // The int8 library against the f32 one on the samples, and each tensor's own SQNR.
        let measured = try #require(r.quantizationLines.first { $0.hasPrefix("int8 against FP32 on the 128 calibration samples: output 'logits' SQNR ") }, "\(r.quantizationLines)")
        let figures = measured.split(separator: " ").compactMap { Double($0.trimmingCharacters(in: CharacterSet(charactersIn: ","))) }
        #expect(figures.count == 3 && figures[1] > 20 && figures[2] > 0.99 && figures[2] <= 1, "\(measured)")
        #expect(r.report.notes.contains(measured))
        let tensors = r.report.quantizedTensors
        #expect(tensors.count == 8 && tensors.allSatisfy { ($0.sqnrDB ?? 0) > 15 }, "\(tensors.map { ($0.tensor, $0.sqnrDB) })")
        let images = try NPY.read(path: (Self.samplesDir as NSString).appendingPathComponent("digits_test_images.npy"))
        let labels = try NPY.read(path: (Self.samplesDir as NSString).appendingPathComponent("digits_test_labels.npy"))
        let instance = try CLibrary(path: r.products.sharedLibrary!, name: "digits_int8").makeInstance()
        // The batch-1 library over the 360 images: 360 runs.
        let logits = try #require(try instance.runBatches(["image": images])["logits"])
        #expect(logits.shape == [images.shape[0], 10])
        let accuracy = try top1Accuracy(logits: logits, labels: labels)
        let first = try #require(try instance.run(["image": Tensor(.f32, shape: [1, 1, 8, 8], floats: Array(images.floats[0..<64]))])["logits"])
        #expect(first.floats == Array(logits.floats[0..<10]))
        struct Recorded: Decodable { let fp32_accuracy: Double }
        let fp32 = try JSONDecoder().decode(Recorded.self, from: Data(contentsOf: URL(fileURLWithPath: (Self.samplesDir as NSString).appendingPathComponent("digits_pt2e.json")))).fp32_accuracy
        #expect(accuracy.total == 360 && abs(Double(accuracy.correct) / 360 - fp32) <= 0.005, "int8 \(accuracy), FP32 \(fp32)")
    }

    /// `--quantize dynamic` on the trained digits model: its Gemms int8 with their sources
    /// quantized as the model runs, the convs FP32, no calibration; the held-back digits' top-1
    /// within 0.5 points of FP32's. Calibration flags with it are refused.
    @Test func digitsDynamic() throws {
        let dir = temporaryDirectory()
        var o = CompileOptions(modelPath: BadInputTests().digitsModel(), outputDirectory: dir, name: "digits_dynamic", kilnVersion: "test")
        o.inputShapes = ["image": [1, 1, 8, 8]]
        o.library = .shared
        o.quantizeDynamic = true
        let r = try compileModel(o)
        let dynamic = r.report.nodes.filter { $0.precision == "int8 (dynamic)" }
        #expect(!dynamic.isEmpty && dynamic.allSatisfy { $0.op == "dynamic_quantized_matmul" }, "\(r.report.nodes.map { ($0.op, $0.precision) })")
        #expect(r.report.summary.hasPrefix("int8: \(dynamic.count) of 5 convs and matrix products"), "\(r.report.summary)")
        #expect(r.report.notes.contains { $0.hasPrefix("--quantize dynamic: \(dynamic.count) matrix product") }, "\(r.report.notes)")
        let images = try NPY.read(path: (Self.samplesDir as NSString).appendingPathComponent("digits_test_images.npy"))
        let labels = try NPY.read(path: (Self.samplesDir as NSString).appendingPathComponent("digits_test_labels.npy"))
        let instance = try CLibrary(path: r.products.sharedLibrary!, name: "digits_dynamic").makeInstance()
        let logits = try #require(try instance.runBatches(["image": images])["logits"])
        let accuracy = try top1Accuracy(logits: logits, labels: labels)
        struct Recorded: Decodable { let fp32_accuracy: Double }
        let fp32 = try JSONDecoder().decode(Recorded.self, from: Data(contentsOf: URL(fileURLWithPath: (Self.samplesDir as NSString).appendingPathComponent("digits_pt2e.json")))).fp32_accuracy
        #expect(accuracy.total == 360 && abs(Double(accuracy.correct) / 360 - fp32) <= 0.005, "dynamic \(accuracy), FP32 \(fp32)")
        let cli = BadInputTests()
        let refused = try cli.kiln(["compile", BadInputTests().digitsModel(), "-o", temporaryDirectory(), "--quantize", "dynamic", "--calibration-random", "4"])
        #expect(refused.status != 0 && refused.err.contains("--quantize dynamic needs no calibration"), "\(refused.err)")
        let unknown = try cli.kiln(["compile", BadInputTests().digitsModel(), "-o", temporaryDirectory(), "--quantize", "int4"])
        #expect(unknown.status != 0 && unknown.err.contains("--quantize must be int8 or dynamic"), "\(unknown.err)")
    }

    /// The directory form through the CLI, and each wrong form refused with a message that says why.
    @Test func calibrationSampleForms() throws {
        let cli = BadInputTests()
        let calib = try NPY.read(path: (Self.samplesDir as NSString).appendingPathComponent("digits_calib_images.npy"))
        func sample(_ k: Int) -> Tensor { Tensor(.f32, shape: [1, 1, 8, 8], floats: Array(calib.floats[(k * 64)..<((k + 1) * 64)])) }
        let good = temporaryDirectory()
        for k in 0..<4 { try NPY.write(sample(k), path: (good as NSString).appendingPathComponent("image_\(k).npy")) }
        // A batch of 8 counts as 8 samples.
        try NPY.write(Tensor(.f32, shape: [8, 1, 8, 8], floats: Array(calib.floats[0..<(8 * 64)])), path: (good as NSString).appendingPathComponent("image_4.npy"))
        try "not a sample".write(toFile: (good as NSString).appendingPathComponent("README.txt"), atomically: true, encoding: .utf8)
        let model = cli.digitsModel()
        let out = temporaryDirectory()
        let ok = try cli.kiln(["compile", model, "--input-shape", "image=1x1x8x8", "-o", out, "--library", "shared",
                               "--quantize", "int8", "--calibration", good, "--calibration-method", "minmax", "--no-speed-check"])
        #expect(ok.status == 0, "\(ok.err)")
        #expect(ok.out.contains("int8: 5 of 5 convs and matrix products"), "\(ok.out)")
        let run = try cli.kiln(["run", (out as NSString).appendingPathComponent("libdigits.so"), "--input", (Self.samplesDir as NSString).appendingPathComponent("digits_test_images.npy"),
                                "--labels", (Self.samplesDir as NSString).appendingPathComponent("digits_test_labels.npy"), "-o", temporaryDirectory()])
        #expect(run.status == 0 && run.out.contains("/360 = "), "\(run.out) \(run.err)")
        let report = try String(contentsOfFile: (out as NSString).appendingPathComponent("digits.report.md"), encoding: .utf8)
        #expect(report.contains("calibration: 12 samples from \(good), minmax ranges"), "\(report)")

        func refused(_ files: [String: Tensor], _ message: String, extra: [String] = []) throws {
            let dir = temporaryDirectory()
            for (name, t) in files { try NPY.write(t, path: (dir as NSString).appendingPathComponent(name)) }
            let r = try cli.kiln(["compile", model, "--input-shape", "image=1x1x8x8", "-o", temporaryDirectory(),
                                  "--quantize", "int8", "--calibration", dir] + extra)
            #expect(r.status != 0 && r.err.contains(message), "\(files.keys.sorted()): \(r.err)")
        }
        try refused([:], "no .npy files")
        try refused(["image_0.npy": sample(0), "photo_1.npy": sample(1)], "photo_1.npy names no input of the model")
        try refused(["image_0.npy": sample(0), "image_2.npy": sample(2)], "image_1.npy is missing")
        try refused(["image_0.npy": Tensor(.f32, shape: [1, 2, 8, 8], floats: [Float](repeating: 0, count: 128))], "has shape 1x2x8x8")
        try refused(["image_0.npy": Tensor(.s32, shape: [1, 1, 8, 8], ints: [Int64](repeating: 0, count: 64))], "holds s32 values")

        let none = try cli.kiln(["compile", model, "--input-shape", "image=1x1x8x8", "-o", temporaryDirectory(), "--quantize", "int8"])
        #expect(none.status != 0 && none.err.contains("--quantize int8 needs calibration samples"), "\(none.err)")
        let stray = try cli.kiln(["compile", model, "--input-shape", "image=1x1x8x8", "-o", temporaryDirectory(), "--calibration", good])
        #expect(stray.status != 0 && stray.err.contains("go with --quantize int8"), "\(stray.err)")
        let method = try cli.kiln(["compile", model, "--input-shape", "image=1x1x8x8", "-o", temporaryDirectory(), "--calibration-method", "minmax"])
        #expect(method.status != 0 && method.err.contains("go with --quantize int8"), "\(method.err)")
        let qdq = try cli.kiln(["compile", (Self.samplesDir as NSString).appendingPathComponent("digits.pt2e.onnx"), "--input-shape", "image=1x1x8x8",
                                "-o", temporaryDirectory(), "--quantize", "int8", "--calibration", good])
        #expect(qdq.status != 0 && qdq.err.contains("is already quantized"), "\(qdq.err)")
    }

    /// Calibration samples of any input type: a token-id model (int64 ids into an embedding
    /// Gather, an int64 mask) calibrates from `input_ids_<k>.npy` and `attention_mask_<k>.npy`
    /// (one file a batch of 3 samples), its matmul runs int8, and its output follows FP32's.
    @Test func calibratesTokenIdInputs() throws {
        let cli = BadInputTests()
        var rng = SplitMix64(seed: 11)
        func uniform(_ n: Int, _ scale: Float) -> [Float] { (0..<n).map { _ in Float(rng.nextDouble() * 2 - 1) * scale } }
        var m = ModelBuilder()
        m.input("input_ids", .s64, [.fixed(1), .fixed(16)])
        m.input("attention_mask", .s64, [.fixed(1), .fixed(16)])
        m.initializer("embedding", Tensor(.f32, shape: [50, 32], floats: uniform(50 * 32, 1)))
        m.initializer("w", Tensor(.f32, shape: [32, 24], floats: uniform(32 * 24, 0.3)))
        m.initializer("axes", .vector(ints: [2]))
        m.node("Gather", ["embedding", "input_ids"], ["e"], name: "embed")
        m.node("Cast", ["attention_mask"], ["mf"], name: "cast", attributes: [ModelBuilder.int("to", 1)])
        m.node("Unsqueeze", ["mf", "axes"], ["mu"], name: "unsqueeze")
        m.node("Mul", ["e", "mu"], ["masked"], name: "mask")
        m.node("MatMul", ["masked", "w"], ["y"], name: "dense")
        m.output("y", .f32, [.fixed(1), .fixed(16), .fixed(24)])
        let model = try m.write()
        func ids(_ n: Int) -> Tensor { Tensor(.s64, shape: [n, 16], ints: (0..<(n * 16)).map { _ in Int64(rng.next() % 50) }) }
        func mask(_ n: Int) -> Tensor { Tensor(.s64, shape: [n, 16], ints: (0..<(n * 16)).map { $0 % 16 < 12 ? 1 : 0 }) }
        let dir = temporaryDirectory()
        for k in 0..<2 {
            try NPY.write(ids(1), path: (dir as NSString).appendingPathComponent("input_ids_\(k).npy"))
            try NPY.write(mask(1), path: (dir as NSString).appendingPathComponent("attention_mask_\(k).npy"))
        }
        try NPY.write(ids(3), path: (dir as NSString).appendingPathComponent("input_ids_2.npy"))
        try NPY.write(mask(3), path: (dir as NSString).appendingPathComponent("attention_mask_2.npy"))
        let out = temporaryDirectory()
        let r = try cli.kiln(["compile", model, "-o", out, "--name", "tokens", "--library", "shared", "--quantize", "int8", "--calibration", dir, "--no-speed-check"])
        #expect(r.status == 0, "\(r.err)")
        #expect(r.out.contains("int8: 1 of 1 convs and matrix products"), "\(r.out)")
        let line = try #require(r.out.split(separator: "\n").first { $0.hasPrefix("int8 against FP32 on the 5 calibration samples: output 'y'") }, "\(r.out)")
        let cosine = try #require(Double(line.split(separator: " ").last!), "\(line)")
        #expect(cosine > 0.999, "\(line)")
    }

    /// A model plain post-training quantization breaks, written as an exporter would: the image's
    /// first channel is large (±40) and the first conv ignores it (zero weights), so the per-tensor
    /// u8 quantization of the image (step about 0.3) rounds the other channels (±0.05), all that
    /// conv sees, to nothing. Then ReLU, a second conv, global average pooling and a Gemm.
    static func outlierModel(samples: Int) throws -> (model: String, samples: String) {
        var rng = SplitMix64(seed: 7)
        func uniform(_ n: Int, _ scale: Float) -> [Float] { (0..<n).map { _ in Float(rng.nextDouble() * 2 - 1) * scale } }
        var m = ModelBuilder()
        m.input("x", .f32, [.fixed(1), .fixed(4), .fixed(8), .fixed(8)])
        var w1 = uniform(8 * 4 * 9, 3)
        for o in 0..<8 { for k in 0..<9 { w1[o * 36 + k] = 0 } }  // input channel 0 ignored
        m.initializer("w1", Tensor(.f32, shape: [8, 4, 3, 3], floats: w1))
        m.initializer("b1", Tensor(.f32, shape: [8], floats: uniform(8, 0.01)))
        m.initializer("w2", Tensor(.f32, shape: [8, 8, 3, 3], floats: uniform(8 * 8 * 9, 0.5)))
        m.initializer("b2", Tensor(.f32, shape: [8], floats: uniform(8, 0.1)))
        m.initializer("w3", Tensor(.f32, shape: [10, 8], floats: uniform(80, 1)))
        m.initializer("b3", Tensor(.f32, shape: [10], floats: uniform(10, 0.1)))
        m.node("Conv", ["x", "w1", "b1"], ["c1"], name: "conv1", attributes: [ModelBuilder.ints("pads", [1, 1, 1, 1])])
        m.node("Relu", ["c1"], ["r1"], name: "relu1")
        m.node("Conv", ["r1", "w2", "b2"], ["c2"], name: "conv2", attributes: [ModelBuilder.ints("pads", [1, 1, 1, 1])])
        m.node("Relu", ["c2"], ["r2"], name: "relu2")
        m.node("GlobalAveragePool", ["r2"], ["g"], name: "gap")
        m.node("Flatten", ["g"], ["f"], name: "flatten")
        m.node("Gemm", ["f", "w3", "b3"], ["logits"], name: "fc", attributes: [ModelBuilder.int("transB", 1)])
        m.output("logits", .f32, [.fixed(1), .fixed(10)])
        let dir = temporaryDirectory()
        for k in 0..<samples {
            var x = uniform(4 * 64, 0.05)
            for i in 0..<64 { x[i] = Float(rng.nextDouble() * 2 - 1) * 40 }
            try NPY.write(Tensor(.f32, shape: [1, 4, 8, 8], floats: x), path: (dir as NSString).appendingPathComponent("x_\(k).npy"))
        }
        return (try m.write(), dir)
    }

    /// --accuracy-budget: plain int8 misses the budget on the outlier model; the budget keeps the
    /// layer whose own int8 error is largest (conv1, fed by the badly quantized image) FP32, and the
    /// library meets it. The precision plan written replays to the same library without measuring.
    @Test func accuracyBudgetKeepsTheSensitiveLayerFP32() throws {
        let (model, samples) = try Self.outlierModel(samples: 24)
        let cli = BadInputTests()
        func cosine(_ out: String) -> Double? {
            out.split(separator: "\n").first { $0.hasPrefix("int8 against FP32 on the 24 calibration samples: output 'logits'") }
                .flatMap { Double($0.split(separator: " ").last ?? "") }
        }
        let plain = temporaryDirectory()
        let p = try cli.kiln(["compile", model, "-o", plain, "--name", "outlier", "--library", "shared", "--quantize", "int8", "--calibration", samples, "--no-speed-check"])
        #expect(p.status == 0, "\(p.err)")
        let plainCosine = try #require(cosine(p.out), "\(p.out)")
        #expect(plainCosine < 0.99, "plain int8 should miss the budget here: \(p.out)")

        let fitted = temporaryDirectory()
        let b = try cli.kiln(["compile", model, "-o", fitted, "--name", "outlier", "--library", "shared", "--quantize", "int8", "--calibration", samples,
                              "--accuracy-budget", "cosine=0.999", "--no-speed-check"])
        #expect(b.status == 0, "\(b.err)")
        #expect(b.out.contains("accuracy budget (cosine to FP32 >= 0.999): every layer int8 gives cosine"), "\(b.out)")
        #expect(b.out.contains("1 of 4 layers kept FP32 give cosine"), "\(b.out)")
        #expect(b.out.contains("  kept FP32: node 'conv1' (Conv-11), its int8 error alone SQNR"), "\(b.out)")
        #expect(b.out.contains("int8: 2 of 3 convs and matrix products; FP32: 1"), "\(b.out)")
        let fittedCosine = try #require(cosine(b.out), "\(b.out)")
        #expect(fittedCosine >= 0.999, "\(b.out)")
        let planPath = (fitted as NSString).appendingPathComponent("outlier.precision.json")
        let plan = try PrecisionPlan.read(path: planPath)
        #expect(plan.layers.map(\.node) == ["conv1", "conv2", "gap", "fc"])
        #expect(plan.layers.map(\.precision) == ["fp32", "int8", "int8", "int8"])
        #expect(plan.layers[0].reason?.hasPrefix("kept FP32 by --accuracy-budget (cosine to FP32 >= 0.999): its int8 error alone (SQNR") == true, "\(plan.layers[0])")
        #expect(plan.layers.allSatisfy { $0.sqnrDB != nil })
        let report = try String(contentsOfFile: (fitted as NSString).appendingPathComponent("outlier.report.md"), encoding: .utf8)
        #expect(report.contains("node 'conv1' (Conv-11): FP32 (kept FP32 by --accuracy-budget"), "\(report)")

        // Replayed: the same decisions and the same generated code, no measuring.
        let replayed = temporaryDirectory()
        let r = try cli.kiln(["compile", model, "-o", replayed, "--name", "outlier", "--library", "shared", "--quantize", "int8", "--calibration", samples,
                              "--precision-plan", planPath])
        #expect(r.status == 0 && !r.out.contains("accuracy budget"), "\(r.out) \(r.err)")
        #expect(cosine(r.out) == fittedCosine, "\(r.out)")
        let source = { (d: String) in try String(contentsOfFile: (d as NSString).appendingPathComponent("outlier.cpp"), encoding: .utf8) }
        #expect(try source(replayed) == source(fitted))

        // Wrong budgets and plans are refused with a reason.
        let bad = try cli.kiln(["compile", model, "-o", temporaryDirectory(), "--quantize", "int8", "--calibration", samples, "--accuracy-budget", "0.5"])
        #expect(bad.status != 0 && bad.err.contains("expected N% (top-1 agreement"), "\(bad.err)")
        var other = plan
        other.layers[1].node = "conv9"
        let otherPath = (temporaryDirectory() as NSString).appendingPathComponent("other.json")
        try other.json.write(toFile: otherPath, atomically: true, encoding: .utf8)
        let unknown = try cli.kiln(["compile", model, "-o", temporaryDirectory(), "--quantize", "int8", "--calibration", samples, "--precision-plan", otherPath])
        #expect(unknown.status != 0 && unknown.err.contains("1 layer the X86 recipe does not quantize in this model: 'conv9'"), "\(unknown.err)")
        let stray = try cli.kiln(["compile", model, "-o", temporaryDirectory(), "--accuracy-budget", "1%"])
        #expect(stray.status != 0 && stray.err.contains("go with --quantize int8"), "\(stray.err)")
    }

    /// The speed check (on by default): every layer's int8 and FP32 step timed on this machine and
    /// recorded in the precision plan, and a decision said either way; then the whole int8 library
    /// timed against the FP32 one. Which way it goes depends on the machine and its load, so only
    /// that it was measured, said and followed is checked here.
    @Test func speedCheckTimesEveryLayer() throws {
        let out = temporaryDirectory()
        let r = try BadInputTests().kiln(["compile", BadInputTests().digitsModel(), "--input-shape", "image=1x1x8x8", "-o", out, "--library", "shared",
                                          "--quantize", "int8", "--calibration", (Self.samplesDir as NSString).appendingPathComponent("digits_calib_images.npy")])
        #expect(r.status == 0, "\(r.err)")
        let said = r.out.split(separator: "\n").filter { $0.hasPrefix("speed: ") }
        #expect(said.count == 2 && (said[0].contains("every int8 layer's step is faster") || said[0].contains("slower in int8")), "\(r.out)")
        // Then the whole int8 library against the FP32 one: int8 kept only where it is faster.
        let int8Slower = said.count == 2 && said[1].hasSuffix("int8 is slower, every layer FP32")
        #expect(said.count == 2 && said[1].hasPrefix("speed: the int8 library ") && said[1].contains("the FP32 library"), "\(r.out)")
        let plan = try PrecisionPlan.read(path: (out as NSString).appendingPathComponent("digits.precision.json"))
        #expect(plan.layers.count == 6 && plan.layers.allSatisfy { ($0.int8Ms ?? 0) > 0 && ($0.fp32Ms ?? 0) > 0 }, "\(plan.json)")
        #expect(plan.layers.allSatisfy { $0.precision == "int8" || $0.reason?.contains("slower") == true }, "\(plan.json)")
        #expect(!int8Slower || plan.layers.allSatisfy { $0.precision == "fp32" }, "\(plan.json)")
    }
}
