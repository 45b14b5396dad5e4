import Foundation
import Testing
import KilnCodegen
import KilnDriver
import KilnIR
import KilnPasses
import KilnReference

/// RecognizeLayerNorm: layer normalization written out of primitive ops becomes one op.
@Suite(.serialized) struct LayerNormTests {
    static let origin = NodeOrigin(opType: "test", version: 13)

    /// PyTorch's decomposed LayerNorm over `axes` of x [2, 3, 8]; `square` by pow or mul;
    /// with gamma and beta when `affine`; a relu after it.
    static func decomposed(axes: [Int64] = [-1], pow: Bool = true, affine: Bool = true) -> (Graph, [String: Tensor]) {
        var g = Graph(name: "ln")
        let x = g.addValue("x", TensorType(.f32, [2, 3, 8]))
        g.inputs = [x]
        func c(_ name: String, _ t: Tensor) -> ValueID { g.addConstant(name, t) }
        func v(_ name: String) -> ValueID { g.addValue(name, TensorType(.f32, dims: [.symbolic("?")])) }
        let ax = c("axes", .vector(ints: axes))
        let m = v("m"), d = v("d"), p = v("p"), variance = v("variance"), e = v("e"), s = v("s"), n = v("n"), y = v("y")
        g.nodes = [
            Node(name: "mean", op: .reduce(.mean, keepDims: true, noopWithEmptyAxes: false), inputs: [x, ax], outputs: [m], origin: origin),
            Node(name: "sub", op: .binary(.sub), inputs: [x, m], outputs: [d], origin: origin),
            pow ? Node(name: "pow", op: .binary(.pow), inputs: [d, c("two", .scalar(2))], outputs: [p], origin: origin)
                : Node(name: "square", op: .binary(.mul), inputs: [d, d], outputs: [p], origin: origin),
            Node(name: "var", op: .reduce(.mean, keepDims: true, noopWithEmptyAxes: false), inputs: [p, ax], outputs: [variance], origin: origin),
            Node(name: "add_eps", op: .binary(.add), inputs: [variance, c("eps", .scalar(1e-5))], outputs: [e], origin: origin),
            Node(name: "sqrt", op: .unary(.sqrt), inputs: [e], outputs: [s], origin: origin),
            Node(name: "div", op: .binary(.div), inputs: [d, s], outputs: [n], origin: origin),
        ]
        var last = n
        if affine {
            let scaled = v("scaled"), shifted = v("shifted")
            g.nodes.append(Node(name: "gamma", op: .binary(.mul), inputs: [n, c("g", CodegenTests.random(.f32, [8], seed: 1))], outputs: [scaled], origin: origin))
            g.nodes.append(Node(name: "beta", op: .binary(.add), inputs: [c("b", CodegenTests.random(.f32, [8], seed: 2)), scaled], outputs: [shifted], origin: origin))
            last = shifted
        }
        g.nodes.append(Node(name: "relu", op: .unary(.relu), inputs: [last], outputs: [y], origin: origin))
        g.outputs = [y]
        return (g, ["x": CodegenTests.random(.f32, [2, 3, 8], seed: 3)])
    }

    @Test(arguments: [(true, true), (false, false), (true, false)])
    func isRecognisedAndMatchesTheReference(_ pow: Bool, _ affine: Bool) throws {
        var (g, inputs) = Self.decomposed(pow: pow, affine: affine)
        try inferShapes(&g)
        let want = try ReferenceInterpreter(g).run(inputs)
        recognizeLayerNorm(&g)
        try verify(g, requireStaticShapes: true)
        // after: %shifted = layer_norm(%x, %g, %b) {axis=2 epsilon=1e-05}; %y = relu(%shifted)
        #expect(g.nodes.map(\.op) == [.layerNormalization(axis: 2, epsilon: 1e-5), .unary(.relu)])
        #expect(g.nodes[0].inputs.count == (affine ? 3 : 2))
        let text = printIR(g)
        #expect(text.contains(affine ? "= layer_norm(%x, %g, %b) {axis=2 epsilon=1e-05}" : "= layer_norm(%x, %div_ones) {axis=2 epsilon=1e-05}"), "\(text)")
        let after = try ReferenceInterpreter(g).run(inputs)
        #expect(Conformance.compare(after["y"]!, want["y"]!, rtol: 1e-5, atol: 1e-6) == nil)
        try Pipeline.optimize(&g)
        let (got, _) = try compileAndRun(g, inputs, name: "ln")
        #expect(Conformance.compare(got["y"]!, want["y"]!, rtol: 1e-5, atol: 1e-6) == nil)
    }

    @Test func overTwoTrailingAxesToo() throws {
        var (g, _) = Self.decomposed(axes: [1, 2], affine: false)
        try inferShapes(&g)
        recognizeLayerNorm(&g)
        #expect(g.nodes.first?.op == .layerNormalization(axis: 1, epsilon: 1e-5))
    }

    @Test func aMeanOverLeadingAxesIsNoLayerNorm() throws {
        var (g, _) = Self.decomposed(axes: [1])
        try inferShapes(&g)
        let before = g.nodes.count
        recognizeLayerNorm(&g)
        #expect(g.nodes.count == before)
    }
}
