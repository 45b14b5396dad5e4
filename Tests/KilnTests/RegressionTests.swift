import Foundation
import Testing
import KilnCodegen
import KilnDriver
import KilnIR
import KilnPasses
import KilnReference
import KilnToolchain

/// Valid graphs that once gave wrong answers or failed, each minimised: the graph is built here,
/// run by the reference interpreter before any simplification, then simplified, optimized and
/// compiled under each layout, and compared (rtol 1e-4, atol 1e-5).
@Suite(.serialized) struct RegressionTests {
    static let origin = NodeOrigin(opType: "test", version: 17)

    /// A small graph builder: values get their types from shape inference.
    struct Builder {
        var g = Graph(name: "regression")
        var inputs: [String: Tensor] = [:]
        var seed = 0

        mutating func input(_ name: String, _ shape: [Int]) -> ValueID {
            let id = g.addValue(name, TensorType(.f32, shape))
            g.inputs.append(id)
            seed += 1
            inputs[name] = CodegenTests.random(.f32, shape, seed: 100 + seed)
            return id
        }

        mutating func constant(_ name: String, _ shape: [Int]) -> ValueID {
            seed += 1
            return g.addConstant(name, CodegenTests.random(.f32, shape, seed: 200 + seed))
        }

        mutating func scalar(_ name: String, _ v: Float) -> ValueID { g.addConstant(name, .scalar(v)) }

        mutating func node(_ op: Op, _ ins: [ValueID?], _ out: String) -> ValueID {
            let y = g.addValue(out, TensorType(.f32, dims: [.symbolic("?")]))
            g.nodes.append(Node(name: out, op: op, inputs: ins, outputs: [y], origin: RegressionTests.origin))
            return y
        }
    }

    /// Reference outputs of the graph as built, then the compiled library's under each layout.
    static func check(_ b: Builder, layouts: [LayoutPolicy] = [.channelsLast, .blocked],
                      expectPostOps: [PostOp]? = nil) throws {
        var g0 = b.g
        try inferShapes(&g0)
        let want = try ReferenceInterpreter(g0).run(b.inputs)
        for layout in layouts {
            var g = b.g
            try Pipeline.simplify(&g, inputShapes: [:])
            try Pipeline.optimize(&g, layout: layout)
            if let expectPostOps {
                let convs = g.nodes.compactMap { n -> [PostOp]? in if case .conv(let a) = n.op { return a.postOps }; return nil }
                #expect(convs == [expectPostOps], "\(printIR(g))")
            }
            let (got, _) = try compileAndRun(g, b.inputs, name: "regression", winograd: .off)
            for (k, expected) in want {
                let d = got[k].flatMap { Conformance.compare($0, expected, rtol: 1e-4, atol: 1e-5) } ?? (got[k] == nil ? "missing" : nil)
                #expect(d == nil, "\(layout) \(k): \(d ?? "")")
            }
        }
    }

    /// A: an Identity whose output is both a graph output and read by a later node. The
    /// simplifier renamed the producer but left the reader on the removed value.
    @Test(arguments: [Op.identity, .dropout])
    func identityFeedingAnOutputAndANode(_ op: Op) throws {
        var b = Builder()
        let x = b.input("x", [1, 4])
        let r = b.node(.unary(.relu), [x], "r")
        let d = b.node(op, [r], "d")
        let y = b.node(.unary(.neg), [d], "y")
        b.g.outputs = [y, d]
        var g = b.g
        try Pipeline.simplify(&g, inputShapes: [:])
        #expect(g.nodes.count == 2)
        try Self.check(b, layouts: [.channelsLast])
    }

    /// B: a residual add whose addend is the conv's own input. The sum post-op wrote in place
    /// over the input the conv was still reading.
    @Test(arguments: [(8, 3, 1), (8, 3, 2), (8, 3, 8), (24, 1, 1), (16, 3, 1)])
    func residualOntoTheConvInput(channels: Int, kernel: Int, group: Int) throws {
        var b = Builder()
        let x = b.input("x", [1, channels, 6, 7])
        let t = b.node(.unary(.relu), [x], "t")
        let w = b.constant("w", [channels, channels / group, kernel, kernel])
        let p = kernel / 2
        let c = b.node(.conv(ConvAttributes(pads: [p, p, p, p], group: group)), [t, w], "c")
        let y = b.node(.binary(.add), [c, t], "y")
        b.g.outputs = [y]
        try Self.check(b)
    }

    /// B, with the addend read again later and as a graph output.
    @Test func residualOntoTheConvInputReadLater() throws {
        var b = Builder()
        let x = b.input("x", [1, 8, 5, 5])
        let t = b.node(.unary(.relu), [x], "t")
        let w = b.constant("w", [8, 8, 3, 3])
        let c = b.node(.conv(ConvAttributes(pads: [1, 1, 1, 1])), [t, w], "c")
        let a = b.node(.binary(.add), [t, c], "a")
        let y = b.node(.binary(.mul), [a, t], "y")
        b.g.outputs = [y, t]
        try Self.check(b)
    }

    /// C: Conv → Clip → HardSigmoid. oneDNN 2.6 keeps one injector per eltwise algorithm, so the
    /// second clip (HardSigmoid's clamp) ran with the first one's bounds.
    @Test func clipThenHardSigmoidAfterAConv() throws {
        var b = Builder()
        let x = b.input("x", [1, 8, 5, 5])
        let w = b.constant("w", [8, 8, 3, 3])
        let c = b.node(.conv(ConvAttributes(pads: [1, 1, 1, 1])), [x, w], "c")
        let k = b.node(.clip, [c, b.scalar("lo", 0), b.scalar("hi", 6)], "k")
        let y = b.node(.hardSigmoid(alpha: 0.2, beta: 0.5), [k], "y")
        b.g.outputs = [y]
        try Self.check(b, expectPostOps: [.clip(min: 0, max: 6), .hardSigmoid(alpha: 0.2, beta: 0.5)])
    }

    /// Two LeakyRelus with different slopes cannot both be oneDNN post-ops: the second stays a loop.
    @Test func repeatedEltwiseAlgorithmsStaySeparate() throws {
        var b = Builder()
        let x = b.input("x", [1, 8, 5, 5])
        let w = b.constant("w", [8, 8, 1, 1])
        let c = b.node(.conv(ConvAttributes()), [x, w], "c")
        let k = b.node(.leakyRelu(alpha: 0.1), [c], "k")
        let y = b.node(.leakyRelu(alpha: 0.3), [k], "y")
        b.g.outputs = [y]
        try Self.check(b, expectPostOps: [.leakyRelu(alpha: 0.1)])
    }

    @Test func oneDNNLoweringOfPostOpLists() {
        #expect(PostOp.oneDNNLowering([.clip(min: 0, max: 6), .hardSigmoid(alpha: 0.2, beta: 0.5)]) == [
            .eltwise(.clip, alpha: 0, beta: 6), .eltwise(.linear, alpha: 0.2, beta: 0.5), .eltwise(.clipV2, alpha: 0, beta: 1)])
        #expect(PostOp.oneDNNLowering([.sum, .relu, .relu]) == [.sum(), .eltwise(.relu, alpha: 0, beta: 0), .eltwise(.relu, alpha: 0, beta: 0)])
        #expect(PostOp.oneDNNLowering([.relu, .leakyRelu(alpha: 0.1)]) == nil)
        #expect(PostOp.oneDNNLowering([.hardSigmoid(alpha: 0.2, beta: 0.5), .hardSigmoid(alpha: 0.5, beta: 0)]) == nil)
        #expect(PostOp.oneDNNLowering([.clip(min: 0, max: 6), .clip(min: 1, max: 2), .clip(min: -1, max: 1)]) == nil)
    }

    /// D: an output folder whose name holds a comma (g++'s -Wl, splits its argument at commas).
    @Test func outputFolderWithACommaInItsName() throws {
        var b = ModelBuilder()
        b.input("x", .f32, [.fixed(1), .fixed(4)])
        b.output("y", .f32, [.fixed(1), .fixed(4)])
        b.node("Relu", ["x"], ["y"])
        let dir = (temporaryDirectory() as NSString).appendingPathComponent("out,with, commas")
        var o = CompileOptions(modelPath: try b.write(), outputDirectory: dir, name: "comma", kilnVersion: "test")
        o.library = .both
        let report = try compileModel(o)
        let lib = try #require(report.products.sharedLibrary)
        let x = Tensor(.f32, shape: [1, 4], floats: [-1, 2, -3, 4])
        let y = try CLibrary(path: lib, name: "comma").makeInstance().run(["x": x])
        #expect(y["y"]?.floats == [0, 2, 0, 4])
        #expect(FileManager.default.fileExists(atPath: (dir as NSString).appendingPathComponent("libcomma.a")))
    }

    /// A library built for AVX-512 says NAME_ERROR_UNSUPPORTED_CPU from create on a CPU without
    /// it (and runs on one with it). create's CPU check is compiled for plain x86-64: its target
    /// attribute once stood where g++ ignores it, so create itself was built for the library's ISA.
    @Test func libraryForAMissingInstructionSetSaysSo() throws {
        var b = ModelBuilder()
        b.input("x", .f32, [.fixed(1), .fixed(4)])
        b.output("y", .f32, [.fixed(1), .fixed(4)])
        b.node("Relu", ["x"], ["y"])
        var o = CompileOptions(modelPath: try b.write(), outputDirectory: temporaryDirectory(), name: "avx512", kilnVersion: "test")
        o.library = .shared
        o.cpu = .x86_64_v4
        let report = try compileModel(o)
        let lib = try CLibrary(path: try #require(report.products.sharedLibrary), name: "avx512")
        if WinogradTests.hasAVX512 {
            #expect(throws: Never.self) { _ = try lib.makeInstance() }
        } else {
            #expect { _ = try lib.makeInstance() } throws: { ($0 as? KilnError)?.message.contains("(status 5)") == true }
        }
    }
}
