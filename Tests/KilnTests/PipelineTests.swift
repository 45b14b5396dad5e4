import Foundation
import Testing
import KilnIR
import KilnPasses
import KilnReference
import KilnDriver

/// The pipeline's named passes: every pass verified after it (type rules included), each
/// optimisation pass skippable with the model still computed, the IR printed after a pass.
@Suite struct PipelineTests {
    static let models = ["digits.onnx", "digits.qat.onnx", "digits.pt2e.onnx"]

    func model(_ file: String) -> String {
        URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
            .deletingLastPathComponent().appendingPathComponent("samples/models/\(file)").path
    }

    /// The first sample of the digits test images, as the model's input.
    func input() throws -> [String: Tensor] {
        let all = try NPY.read(path: model("digits_test_images.npy"))
        return ["image": Tensor(.f32, shape: [1, 1, 8, 8], floats: Array(all.floats.prefix(64)))]
    }

    func verifying(disabled: Set<String> = []) -> PassOptions {
        var o = PassOptions()
        o.verifyEachPass = true
        o.disabled = disabled
        return o
    }

    /// Each optional pass skipped: the fused graph still computes what the simplified one does
    /// (reference interpreter, within 1e-5 of the largest output), and verifies after every pass.
    @Test(arguments: models) func everyOptionalPassCanBeSkipped(file: String) throws {
        let x = try input()
        let simple = try loadModel(path: model(file), inputShapes: ["image": [1, 1, 8, 8]], passes: verifying())
        let want = try ReferenceInterpreter(simple).run(x).values.first!.floats
        let scale = want.map(abs).max()!
        for pass in [""] + Pipeline.optionalPassNames {
            var g = simple
            try Pipeline.fuse(&g, options: verifying(disabled: pass.isEmpty ? [] : [pass]))
            let got = try ReferenceInterpreter(g).run(x).values.first!.floats
            let diff = zip(got, want).map { abs($0 - $1) }.max()!
            // A QDQ graph lowered to int8 ops rounds differently from its f32 definition: one step.
            let tol: Float = file == "digits.onnx" ? 1e-5 * scale : 0.05 * scale
            #expect(diff <= tol, "\(file) without \(pass.isEmpty ? "nothing" : pass): max |diff| \(diff)")
        }
    }

    /// The verifier finds a node whose output type its type rule does not give.
    @Test func verifierChecksTypeRules() throws {
        var g = try loadModel(path: model("digits.onnx"), inputShapes: ["image": [1, 1, 8, 8]])
        try verify(g, requireStaticShapes: true, checkTypeRules: true)
        let conv = g.nodes.firstIndex { if case .conv = $0.op { return true }; return false }!
        let out = g.nodes[conv].outputs[0]
        g.values[out].type = TensorType(.f32, [1, 3, 8, 8])
        #expect(throws: KilnError.self) { try verify(g, requireStaticShapes: true, checkTypeRules: true) }
        #expect(throws: Never.self) { try verify(g, requireStaticShapes: true) }
    }

    /// --print-after gets the IR after the named pass, --disable-pass refuses a pass the graph needs.
    @Test func printAfterAndPassNames() throws {
        final class Box: @unchecked Sendable { var printed: [(String, String)] = [] }
        let box = Box()
        var o = PassOptions()
        o.printAfter = ["fuse-post-ops"]
        o.printIR = { box.printed.append(($0, $1)) }
        var g = try loadModel(path: model("digits.onnx"), inputShapes: ["image": [1, 1, 8, 8]])
        try Pipeline.optimize(&g, options: o)
        #expect(box.printed.map(\.0) == ["fuse-post-ops", "fuse-post-ops"])
        #expect(box.printed.last!.1.contains("post_ops=[relu]"))
        var bad = PassOptions()
        bad.disabled = ["lower-quantized"]
        #expect(throws: KilnError.self) { try Pipeline.checkPassNames(bad) }
        bad.disabled = ["no-such-pass"]
        #expect(throws: KilnError.self) { try Pipeline.checkPassNames(bad) }
        #expect(Set(Pipeline.optionalPassNames).isSubset(of: Set(Pipeline.passNames)))
    }
}
