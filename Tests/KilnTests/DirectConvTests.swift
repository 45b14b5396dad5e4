import Foundation
import Testing
import KilnCodegen
import KilnDriver
import KilnIR
import KilnPasses
import KilnReference
import KilnTarget

/// Kiln's direct AVX2 convolution (include/kiln/direct_conv.hpp): which convs take it, and its
/// results against the reference interpreter over the geometry it handles.
@Suite(.serialized) struct DirectConvTests {
    static let origin = NodeOrigin(opType: "test", version: 17)

    struct Case {
        var c: Int, h: Int, w: Int, k: Int, kernel: [Int]
        var strides = [1, 1], pads = [0, 0, 0, 0], dilations = [1, 1]
        var batch = 1, group = 1, bias = true
        var postOps: [PostOp] = []
    }

    /// Output channels below, at and past the 8- and 16-channel blocks; odd input channel counts;
    /// asymmetric pads, strides, dilations, windows 1×3 to 7×7; batch 2; a sum with an
    /// activation; activation chains; 3 input channels; a 1×1 window (not a candidate). Then
    /// grouped convs: groups of 8 output channels (blocks of 8), of 16 and 48 (blocks of 16), a
    /// stride, a dilation, a sum, a grouped 1×1 window, groups of 4 input channels (a candidate
    /// `auto` leaves to oneDNN) and groups of 12 output channels (not a candidate).
    static let cases: [Case] = [
        Case(c: 8, h: 9, w: 11, k: 5, kernel: [3, 3], pads: [1, 1, 1, 1]),
        Case(c: 13, h: 10, w: 7, k: 20, kernel: [3, 3], strides: [2, 2], pads: [1, 0, 2, 1], batch: 2, bias: false, postOps: [.relu]),
        Case(c: 16, h: 12, w: 12, k: 24, kernel: [5, 5], pads: [2, 2, 2, 2], postOps: [.sum, .relu]),
        Case(c: 32, h: 15, w: 13, k: 16, kernel: [3, 3], pads: [2, 2, 2, 2], dilations: [2, 2], postOps: [.hardSwish]),
        Case(c: 12, h: 8, w: 20, k: 32, kernel: [1, 3], pads: [0, 1, 0, 1], postOps: [.clip(min: 0, max: 6)]),
        Case(c: 24, h: 9, w: 9, k: 40, kernel: [3, 1], strides: [1, 2], postOps: [.silu]),
        Case(c: 8, h: 30, w: 30, k: 8, kernel: [7, 7], strides: [2, 2], pads: [3, 3, 3, 3], postOps: [.sum, .leakyRelu(alpha: 0.1)]),
        Case(c: 64, h: 7, w: 7, k: 72, kernel: [3, 3], pads: [1, 1, 1, 1], postOps: [.sigmoid]),
        Case(c: 3, h: 16, w: 16, k: 16, kernel: [3, 3], pads: [1, 1, 1, 1]),
        Case(c: 16, h: 8, w: 8, k: 16, kernel: [1, 1]),
        Case(c: 16, h: 8, w: 8, k: 16, kernel: [3, 3], pads: [1, 1, 1, 1], group: 2),
        Case(c: 64, h: 9, w: 10, k: 64, kernel: [3, 3], pads: [1, 1, 1, 1], group: 4, postOps: [.relu]),
        Case(c: 48, h: 11, w: 7, k: 96, kernel: [3, 3], strides: [2, 2], pads: [1, 0, 1, 1], batch: 2, group: 2),
        Case(c: 24, h: 8, w: 8, k: 24, kernel: [3, 3], pads: [2, 2, 2, 2], dilations: [2, 2], group: 3, postOps: [.sum, .relu]),
        Case(c: 32, h: 6, w: 6, k: 64, kernel: [1, 1], group: 4, bias: false),
        Case(c: 12, h: 7, w: 7, k: 24, kernel: [3, 3], pads: [1, 1, 1, 1], group: 3),
        Case(c: 24, h: 7, w: 7, k: 36, kernel: [3, 3], pads: [1, 1, 1, 1], group: 3),
    ]

    static func output(_ c: Case, _ axis: Int) -> Int {
        let (size, k, s, d) = (axis == 0 ? c.h : c.w, c.kernel[axis], c.strides[axis], c.dilations[axis])
        return (size + c.pads[axis] + c.pads[axis + 2] - (d * (k - 1) + 1)) / s + 1
    }

    /// 3×3 stride-1 convs for the Winograd form: outputs not multiples of the 4×4 tile, a single
    /// tile, asymmetric and no pads, output channels below, at and past the 8- and 16-channel
    /// blocks, batch 2, a sum with an activation, and an image of 930 tiles (the path where each
    /// thread takes whole chunks of tiles, with 2 threads or more). The last is not a candidate
    /// (12 input channels).
    static let winogradCases: [Case] = [
        Case(c: 8, h: 9, w: 11, k: 5, kernel: [3, 3], pads: [1, 1, 1, 1]),
        Case(c: 16, h: 13, w: 10, k: 20, kernel: [3, 3], pads: [1, 0, 2, 1], batch: 2, bias: false, postOps: [.relu]),
        Case(c: 32, h: 12, w: 12, k: 24, kernel: [3, 3], pads: [1, 1, 1, 1], postOps: [.sum, .relu]),
        Case(c: 40, h: 17, w: 6, k: 16, kernel: [3, 3], postOps: [.tanh]),
        Case(c: 64, h: 8, w: 8, k: 72, kernel: [3, 3], pads: [1, 1, 1, 1], postOps: [.sigmoid]),
        Case(c: 8, h: 4, w: 4, k: 8, kernel: [3, 3], pads: [1, 1, 1, 1]),
        Case(c: 16, h: 118, w: 122, k: 9, kernel: [3, 3], pads: [1, 1, 1, 1], postOps: [.sum]),
        Case(c: 12, h: 8, w: 8, k: 8, kernel: [3, 3], pads: [1, 1, 1, 1]),
    ]

    /// Grouped convs for kiln::GroupedConv: groups of 2 and 4 channels, strides, asymmetric pads,
    /// dilation, batch 2, a sum with an activation, a 1×1 window, 24 channels (three blocks of 8:
    /// one pair and one alone). Then groups of 8 (the direct kernel's), and groups of 3 in, 6 out
    /// (no kernel of Kiln's).
    static let groupedCases: [Case] = [
        Case(c: 16, h: 9, w: 11, k: 16, kernel: [3, 3], pads: [1, 1, 1, 1], group: 4),
        Case(c: 32, h: 13, w: 10, k: 32, kernel: [3, 3], strides: [2, 2], pads: [1, 0, 2, 1], batch: 2, group: 8, postOps: [.relu]),
        Case(c: 16, h: 12, w: 12, k: 16, kernel: [3, 3], pads: [2, 2, 2, 2], dilations: [2, 2], group: 8, bias: false),
        Case(c: 24, h: 7, w: 9, k: 24, kernel: [3, 3], pads: [1, 1, 1, 1], group: 6, postOps: [.sum, .relu]),
        Case(c: 64, h: 6, w: 6, k: 64, kernel: [1, 1], group: 16, postOps: [.silu]),
        Case(c: 16, h: 8, w: 8, k: 16, kernel: [5, 5], pads: [2, 2, 2, 2], group: 2, postOps: [.tanh]),
        Case(c: 24, h: 8, w: 8, k: 48, kernel: [3, 3], pads: [1, 1, 1, 1], group: 8),
    ]

    /// Every case as one conv of one graph (one library to build), input x_i, output y_i.
    static func network(_ cases: [Case] = cases) -> (Graph, [String: Tensor]) {
        var g = Graph(name: "direct")
        var inputs: [String: Tensor] = [:]
        for (i, c) in cases.enumerated() {
            let xShape = [c.batch, c.c, c.h, c.w], yShape = [c.batch, c.k, output(c, 0), output(c, 1)]
            let x = g.addValue("x\(i)", TensorType(.f32, xShape))
            g.inputs.append(x)
            inputs["x\(i)"] = CodegenTests.random(.f32, xShape, seed: 10 * i + 1)
            let wt = CodegenTests.random(.f32, [c.k, c.c / c.group] + c.kernel, seed: 10 * i + 2)
            var operands: [ValueID?] = [x, g.addConstant("w\(i)", Tensor(.f32, shape: wt.shape, floats: wt.floats.map { $0 * 0.3 }))]
            operands.append(c.bias ? g.addConstant("b\(i)", CodegenTests.random(.f32, [c.k], seed: 10 * i + 3)) : nil)
            if c.postOps.contains(.sum) {
                let a = g.addValue("a\(i)", TensorType(.f32, yShape))
                g.inputs.append(a)
                inputs["a\(i)"] = CodegenTests.random(.f32, yShape, seed: 10 * i + 4)
                operands.append(a)
            }
            while operands.last! == nil { operands.removeLast() }
            let y = g.addValue("y\(i)", TensorType(.f32, dims: [.symbolic("?")]))
            let a = ConvAttributes(strides: c.strides, pads: c.pads, dilations: c.dilations, group: c.group, postOps: c.postOps)
            g.nodes.append(Node(name: "conv\(i)", op: .conv(a), inputs: operands, outputs: [y], origin: origin))
            g.outputs.append(y)
        }
        return (g, inputs)
    }

    @Test func candidatesAreTwoDimensionalWindowsLargerThanOneByOneOrGroupsOfEightOutputs() throws {
        var (g, _) = Self.network()
        try inferShapes(&g)
        assignLayouts(&g, policy: .channelsLast)
        let always = try emitModel(g, options: CodegenOptions(name: "direct", kilnVersion: "test", directConv: .always)).source
        let off = try emitModel(g, options: CodegenOptions(name: "direct", kilnVersion: "test", directConv: .off)).source
        let auto = try emitModel(g, options: CodegenOptions(name: "direct", kilnVersion: "test", directConv: .auto)).source
        let candidates = g.nodes.indices.filter { always.contains("kiln::DirectConv p\($0)d;") }.map { g.nodes[$0].name }
        #expect(candidates == (Array(0..<9) + Array(10..<16)).map { "conv\($0)" })
        // `auto` gives the 3-channel conv (no tanh after it) and the groups of 4 inputs Kiln's kernel
        // only where oneDNN would run them as im2col and GEMM.
        let auto_ = g.nodes.indices.filter { auto.contains("kiln::DirectConv p\($0)d;") }.map { g.nodes[$0].name }
        #expect(auto_ == candidates)
        #expect(auto.components(separatedBy: "if (kiln::DirectConv::preferred_here() && kiln::onednn_im2col(pd))").count - 1 == 2)
        #expect(always.components(separatedBy: "d.group = ").count - 1 == 6)
        #expect(auto.contains("kiln::DirectConv::preferred_here()"))
        #expect(!off.contains("kiln::DirectConv p"))
        #expect(always.contains("kiln::DirectConv::compiled_in()"))
    }

    /// Against the reference: the kernel sums in another order than the interpreter, so the error
    /// is bounded against each output's largest magnitude (1e-5 of it), as for Winograd.
    @Test(arguments: [DirectConvPolicy.always, .off])
    func matchesTheReference(_ policy: DirectConvPolicy) throws {
        var (g, inputs) = Self.network()
        try inferShapes(&g)
        let want = try ReferenceInterpreter(g).run(inputs)
        assignLayouts(&g, policy: .channelsLast)
        let (got, _) = try compileAndRun(g, inputs, name: "direct_\(policy.rawValue)", directConv: policy)
        for i in Self.cases.indices {
            let k = "y\(i)"
            let scale = want[k]!.floats.map { Double(abs($0)) }.max()!
            let problem = Conformance.compare(got[k]!, want[k]!, rtol: 0, atol: 1e-5 * scale)
            #expect(problem == nil, "\(policy) case \(i): \(problem ?? "")")
        }
    }

    /// Which convs run as Winograd: under `--winograd always` every 3×3 stride-1 candidate with
    /// input channels a multiple of 8; under auto those with at least 16 input channels, 9 output
    /// tiles and 12 MFLOP; under off none.
    @Test func winogradFormFollowsThePolicy() throws {
        var (g, _) = Self.network(Self.winogradCases)
        try inferShapes(&g)
        assignLayouts(&g, policy: .channelsLast)
        func chosen(_ policy: WinogradPolicy) throws -> [String] {
            let source = try emitModel(g, options: CodegenOptions(name: "wino", kilnVersion: "test", winograd: policy, directConv: .always)).source
            return g.nodes.indices.filter { source.contains("m->p\($0)d.winograd = true;") }.map { g.nodes[$0].name }
        }
        #expect(try chosen(.always) == (0..<7).map { "conv\($0)" })
        #expect(try chosen(.auto) == ["conv6"])
        #expect(try chosen(.off).isEmpty)
    }

    /// Convs for the rule of kilnWinogradOnAVX512, under the default policies: a residual sum on
    /// 16×16 (oneDNN's Winograd cannot take it: Kiln's from 16 tiles on), the same without the sum
    /// (oneDNN's can: stays with it below 196 tiles), 32 → 16 channels on 56×56 (196 tiles, at most
    /// 256 channels in and out: Kiln's), 240 → 32 on 56×56 (oneDNN's), a sum on 12×12 (under 12
    /// MFLOP: no Winograd at all) and a SiLU on 16×16 (oneDNN's Winograd refuses it: Kiln's).
    static let avx512WinogradCases: [Case] = [
        Case(c: 64, h: 16, w: 16, k: 64, kernel: [3, 3], pads: [1, 1, 1, 1], postOps: [.sum, .relu]),
        Case(c: 64, h: 16, w: 16, k: 64, kernel: [3, 3], pads: [1, 1, 1, 1], postOps: [.relu]),
        Case(c: 32, h: 56, w: 56, k: 16, kernel: [3, 3], pads: [1, 1, 1, 1], postOps: [.relu]),
        Case(c: 240, h: 56, w: 56, k: 32, kernel: [3, 3], pads: [1, 1, 1, 1]),
        Case(c: 32, h: 12, w: 12, k: 32, kernel: [3, 3], pads: [1, 1, 1, 1], postOps: [.sum]),
        Case(c: 64, h: 16, w: 16, k: 64, kernel: [3, 3], pads: [1, 1, 1, 1], postOps: [.silu]),
    ]

    /// On CPUs with AVX-512 too (`compiled_in()`, not `preferred_here()`), Kiln's Winograd takes
    /// the convs of kilnWinogradOnAVX512 under `auto`, and oneDNN's Winograd form of such a conv
    /// is then not even created; the library's results match the reference within Winograd's
    /// bound on this machine, whichever CPU it has.
    @Test func winogradOnEveryCPUWhereTheRuleSays() throws {
        #expect(kilnWinogradOnAVX512(inputChannels: 32, outputChannels: 32, outputHeight: 14, outputWidth: 14, oneDNNWinograd: false))
        #expect(!kilnWinogradOnAVX512(inputChannels: 32, outputChannels: 32, outputHeight: 12, outputWidth: 12, oneDNNWinograd: false))
        #expect(!kilnWinogradOnAVX512(inputChannels: 32, outputChannels: 32, outputHeight: 28, outputWidth: 28, oneDNNWinograd: true))
        #expect(kilnWinogradOnAVX512(inputChannels: 128, outputChannels: 128, outputHeight: 56, outputWidth: 56, oneDNNWinograd: true))
        #expect(!kilnWinogradOnAVX512(inputChannels: 128, outputChannels: 256, outputHeight: 56, outputWidth: 56, oneDNNWinograd: true))
        #expect(!kilnWinogradOnAVX512(inputChannels: 256, outputChannels: 256, outputHeight: 112, outputWidth: 112, oneDNNWinograd: true))
        var (g, inputs) = Self.network(Self.avx512WinogradCases)
        try inferShapes(&g)
        let want = try ReferenceInterpreter(g).run(inputs)
        assignLayouts(&g, policy: .channelsLast)
        let (got, emitted) = try compileAndRun(g, inputs, name: "wino512")
        let source = emitted.source
        func index(_ name: String) -> Int { g.nodes.firstIndex { $0.name == name }! }
        // Each block Kiln's kernel is created in on every CPU with AVX2, up to its `active = true`.
        let blocks = source.components(separatedBy: "if (kiln::DirectConv::compiled_in()) {").dropFirst()
            .map { $0.components(separatedBy: ".active = true;")[0] }
        let everywhere = g.nodes.indices.filter { i in blocks.contains { $0.contains("m->p\(i)d.winograd = true;") } }
            .map { g.nodes[$0].name }
        #expect(everywhere == ["conv0", "conv2", "conv5"])
        #expect(source.contains("if (!(kiln::DirectConv::compiled_in()))"))
        #expect(!source.contains("m->p\(index("conv4"))d.winograd = true;"))
        for i in Self.avx512WinogradCases.indices {
            let k = "y\(i)"
            let scale = want[k]!.floats.map { Double(abs($0)) }.max()!
            let problem = Conformance.compare(got[k]!, want[k]!, rtol: 0, atol: 1e-4 * scale)
            #expect(problem == nil, "case \(i): \(problem ?? "")")
        }
    }

    /// Winograd F(4×4, 3×3) against the reference: its transforms round more than the direct
    /// sums (≈5× the error on random data), so the bound is 1e-4 of each output's largest
    /// magnitude, the differential tests' rule.
    @Test func winogradMatchesTheReference() throws {
        var (g, inputs) = Self.network(Self.winogradCases)
        try inferShapes(&g)
        let want = try ReferenceInterpreter(g).run(inputs)
        assignLayouts(&g, policy: .channelsLast)
        let (got, emitted) = try compileAndRun(g, inputs, name: "wino", winograd: .always, directConv: .always)
        #expect(emitted.source.components(separatedBy: ".winograd = true;").count - 1 == 7)
        for i in Self.winogradCases.indices {
            let k = "y\(i)"
            let scale = want[k]!.floats.map { Double(abs($0)) }.max()!
            let problem = Conformance.compare(got[k]!, want[k]!, rtol: 0, atol: 1e-4 * scale)
            #expect(problem == nil, "case \(i): \(problem ?? "")")
        }
    }

    /// Grouped convs through Kiln's kernel (`--direct-conv always`) against the reference, with
    /// the direct kernel's bound (1e-5 of each output's largest magnitude).
    @Test func groupedMatchesTheReference() throws {
        var (g, inputs) = Self.network(Self.groupedCases)
        try inferShapes(&g)
        let want = try ReferenceInterpreter(g).run(inputs)
        assignLayouts(&g, policy: .channelsLast)
        let (got, emitted) = try compileAndRun(g, inputs, name: "grouped", directConv: .always)
        let taken = g.nodes.indices.filter { emitted.source.contains("kiln::GroupedConv p\($0)g;") }.map { g.nodes[$0].name }
        #expect(taken == (0..<5).map { "conv\($0)" })
        let five = g.nodes.firstIndex { $0.name == "conv5" }!
        #expect(emitted.source.contains("kiln::DirectConv p\(five)d;"))
        for i in Self.groupedCases.indices {
            let k = "y\(i)"
            let scale = want[k]!.floats.map { Double(abs($0)) }.max()!
            let problem = Conformance.compare(got[k]!, want[k]!, rtol: 0, atol: 1e-5 * scale)
            #expect(problem == nil, "case \(i): \(problem ?? "")")
        }
    }
}
