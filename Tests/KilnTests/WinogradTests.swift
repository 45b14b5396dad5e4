import Foundation
import Testing
import KilnCodegen
import KilnDriver
import KilnIR
import KilnPasses
import KilnReference
import KilnToolchain
import KilnTarget

/// Winograd convolutions: which convs may take them, and their results against the reference.
@Suite(.serialized) struct WinogradTests {
    static let origin = NodeOrigin(opType: "test", version: 17)

    /// conv 3×3 32→32 (+bias, relu) → conv 3×3 32→48 → conv 3×3 48→48 with the input added
    /// back (a sum post-op: stays direct) → conv 3×3 stride 2 (stays direct).
    static func network() -> (Graph, [String: Tensor]) {
        var g = Graph(name: "wino")
        let x = g.addValue("x", TensorType(.f32, [1, 32, 14, 14]))
        g.inputs = [x]
        func c(_ name: String, _ t: Tensor) -> ValueID { g.addConstant(name, t) }
        func v(_ name: String) -> ValueID { g.addValue(name, TensorType(.f32, dims: [.symbolic("?")])) }
        func r(_ shape: [Int], _ seed: Int) -> Tensor {
            let t = CodegenTests.random(.f32, shape, seed: seed)
            return Tensor(.f32, shape: shape, floats: t.floats.map { $0 * 0.2 })
        }
        let a = v("a"), b = v("b"), s = v("s"), y = v("y")
        g.nodes = [
            Node(name: "conv_a", op: .conv(ConvAttributes(pads: [1, 1, 1, 1], postOps: [.relu])), inputs: [x, c("wa", r([32, 32, 3, 3], 1)), c("ba", r([32], 2))], outputs: [a], origin: origin),
            Node(name: "conv_b", op: .conv(ConvAttributes(pads: [1, 1, 1, 1])), inputs: [a, c("wb", r([48, 32, 3, 3], 3))], outputs: [b], origin: origin),
            Node(name: "conv_s", op: .conv(ConvAttributes(pads: [1, 1, 1, 1], postOps: [.sum, .relu])), inputs: [b, c("ws", r([48, 48, 3, 3], 4)), c("bs", r([48], 5)), b], outputs: [s], origin: origin),
            Node(name: "conv_y", op: .conv(ConvAttributes(strides: [2, 2], pads: [1, 1, 1, 1])), inputs: [s, c("wy", r([16, 48, 3, 3], 6))], outputs: [y], origin: origin),
        ]
        g.outputs = [y, b]
        return (g, ["x": CodegenTests.random(.f32, [1, 32, 14, 14], seed: 7)])
    }

    static var hasAVX512: Bool {
        ((try? String(contentsOfFile: "/proc/cpuinfo", encoding: .utf8)) ?? "").contains(" avx512f")
    }

    /// Channels-last: 3×3 stride-1 convs without a sum; blocked (where the addend needs no
    /// reorder): with a sum too.
    @Test(arguments: [(LayoutPolicy.channelsLast, ["conv_a", "conv_b"]), (.blocked, ["conv_a", "conv_b", "conv_s"])])
    func onlyThreeByThreeStrideOneConvsAreCandidates(_ layout: LayoutPolicy, _ expected: [String]) throws {
        var (g, _) = Self.network()
        try inferShapes(&g)
        assignLayouts(&g, policy: layout)
        let always = try emitModel(g, options: CodegenOptions(name: "wino", kilnVersion: "test", winograd: .always)).source
        let off = try emitModel(g, options: CodegenOptions(name: "wino", kilnVersion: "test", winograd: .off)).source
        let candidates = g.nodes.indices.filter { always.contains("kiln::WinogradConv p\($0)w;") }.map { g.nodes[$0].name }
        #expect(candidates == expected)
        #expect(!off.contains("WinogradConv") && !off.contains("convolution_winograd"))
        #expect(always.contains("algorithm::convolution_winograd"))
    }

    /// Winograd transforms round differently from a direct conv: the error is relative to the
    /// size of the values summed, so it is bounded against the output's largest magnitude
    /// (1e-5 of it; measured: 1.3e-6, the same as the direct conv's), not element by element.
    @Test(arguments: [(WinogradPolicy.always, LayoutPolicy.channelsLast), (.always, .blocked), (.auto, .auto), (.off, .channelsLast)])
    func matchesTheReference(_ policy: WinogradPolicy, _ layout: LayoutPolicy) throws {
        var (g, inputs) = Self.network()
        try inferShapes(&g)
        let want = try ReferenceInterpreter(g).run(inputs)
        assignLayouts(&g, policy: layout)
        let (got, _) = try compileAndRun(g, inputs, name: "wino_\(policy.rawValue)_\(layout.rawValue)", winograd: policy)
        for k in ["y", "b"] {
            let scale = want[k]!.floats.map { Double(abs($0)) }.max()!
            let problem = Conformance.compare(got[k]!, want[k]!, rtol: 0, atol: 1e-5 * scale)
            #expect(problem == nil, "\(policy) \(k): \(problem ?? "")")
        }
        // Where oneDNN has Winograd kernels (AVX-512), `always` must really use them: the
        // rounding then differs from the direct conv's.
        if policy == .always && Self.hasAVX512 {
            let (direct, _) = try compileAndRun(g, inputs, name: "wino_direct_\(layout.rawValue)", winograd: .off)
            #expect(direct["b"]!.floats != got["b"]!.floats)
        }
    }
    /// With `auto`, the first handle of the process times the two forms and later handles reuse
    /// its choice: every handle gives the same bits (before, each handle timed on its own and
    /// handles of one library disagreed at rounding level on AVX-512 machines).
    @Test func everyHandleComputesTheSameBits() throws {
        var (g, inputs) = Self.network()
        try inferShapes(&g)
        assignLayouts(&g, policy: .channelsLast)
        let emitted = try emitModel(g, options: CodegenOptions(name: "wino_handles", kilnVersion: "test", winograd: .auto))
        #expect(emitted.source.contains("kiln::decide_once("))
        let products = try buildLibrary(header: emitted.header, source: emitted.source, weights: emitted.weights,
                                        options: BuildOptions(outputDirectory: temporaryDirectory(), name: "wino_handles", library: .shared,
                                                              includeDirectory: runtimeIncludeDirectory()))
        let lib = try CLibrary(path: products.sharedLibrary!, name: "wino_handles")
        let first = try lib.makeInstance().run(inputs)
        for _ in 0..<5 {
            let again = try lib.makeInstance().run(inputs)
            #expect(again["y"]!.floats == first["y"]!.floats && again["b"]!.floats == first["b"]!.floats)
        }
    }

}
