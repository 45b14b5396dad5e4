import Foundation
import Testing
import KilnCodegen
import KilnDriver
import KilnIR
import KilnPasses
import KilnReference

/// ConvTranspose through oneDNN's deconvolution primitive: channels-last, its activation as a
/// post-op, groups, dilations, asymmetric pads, output padding and auto_pad; the generic loop
/// where oneDNN's output-size rule cannot express ONNX's (an output_shape larger than the full
/// transposed convolution). Compared with the reference interpreter, rtol 1e-4, atol 1e-5.
@Suite(.serialized) struct DeconvolutionTests {
    struct Case: Sendable, CustomStringConvertible {
        var c: Int, m: Int, group: Int, kernel: Int, stride: Int
        var pads: [Int]? = nil, outputPadding: [Int]? = nil, dilation: Int = 1
        var autoPad: AutoPad = .notSet, outputShape: [Int]? = nil
        var oneDNN = true
        var description: String { "c\(c) m\(m) g\(group) k\(kernel) s\(stride) pads \(pads ?? []) op \(outputPadding ?? []) d\(dilation) \(autoPad) \(outputShape ?? [])" }
    }

    static let cases: [Case] = [
        Case(c: 8, m: 4, group: 1, kernel: 3, stride: 2, pads: [1, 1, 1, 1], outputPadding: [1, 1]),
        Case(c: 8, m: 8, group: 8, kernel: 4, stride: 2, pads: [1, 1, 1, 1]),
        Case(c: 6, m: 4, group: 2, kernel: 3, stride: 1, dilation: 2),
        Case(c: 5, m: 3, group: 1, kernel: 2, stride: 2, pads: [0, 1, 1, 0], outputPadding: [1, 0]),
        Case(c: 16, m: 16, group: 1, kernel: 3, stride: 2, autoPad: .sameUpper),
        Case(c: 4, m: 4, group: 1, kernel: 3, stride: 2, autoPad: .sameLower),
        Case(c: 3, m: 2, group: 1, kernel: 3, stride: 2, outputShape: [13, 15], oneDNN: false),
    ]

    @Test(arguments: cases)
    func matchesTheReference(_ k: Case) throws {
        var g = Graph(name: "deconv")
        let x = g.addValue("x", TensorType(.f32, [1, k.c, 5, 6]))
        g.inputs = [x]
        let w = g.addConstant("w", CodegenTests.random(.f32, [k.c, k.m / k.group, k.kernel, k.kernel], seed: 3))
        let b = g.addConstant("b", CodegenTests.random(.f32, [k.m], seed: 4))
        let t = g.addValue("t", TensorType(.f32, dims: [.symbolic("?")]))
        let y = g.addValue("y", TensorType(.f32, dims: [.symbolic("?")]))
        let conv = ConvAttributes(kernelShape: [k.kernel, k.kernel], strides: [k.stride, k.stride], pads: k.pads,
                                  dilations: [k.dilation, k.dilation], group: k.group, autoPad: k.autoPad)
        let origin = NodeOrigin(opType: "test", version: 17)
        g.nodes = [
            Node(name: "deconv", op: .convTranspose(ConvTransposeAttributes(conv: conv, outputPadding: k.outputPadding, outputShape: k.outputShape)),
                 inputs: [x, w, b], outputs: [t], origin: origin),
            Node(name: "relu", op: .unary(.relu), inputs: [t], outputs: [y], origin: origin),
        ]
        g.outputs = [y]
        try inferShapes(&g)
        let inputs = ["x": CodegenTests.random(.f32, [1, k.c, 5, 6], seed: 5)]
        let want = try ReferenceInterpreter(g).run(inputs)
        try Pipeline.optimize(&g)
        // The relu is a post-op of the transposed convolution.
        #expect(g.nodes.filter { if case .convTranspose(let a) = $0.op { return a.conv.postOps == [.relu] }; return false }.count == 1)
        let (got, emitted) = try compileAndRun(g, inputs, name: "deconv")
        #expect(emitted.source.contains("deconvolution_forward") == k.oneDNN)
        #expect(emitted.source.contains("tag::acdb") == k.oneDNN)
        let d = Conformance.compare(got["y"]!, want["y"]!, rtol: 1e-4, atol: 1e-5)
        #expect(d == nil, "\(d ?? "")")
    }
    /// A transposed conv whose square kernel equals its stride becomes a 1×1 conv to K·s²
    /// channels (bias and ReLU on it) and a channels-last DepthToSpace (ConvTransposeAsConv);
    /// with two groups it stays a deconvolution. Against the reference, rtol 1e-4, atol 1e-5.
    @Test(arguments: [(c: 8, m: 4, s: 2, bias: true, batch: 1, group: 1), (c: 5, m: 3, s: 3, bias: false, batch: 2, group: 1),
                      (c: 16, m: 24, s: 2, bias: true, batch: 1, group: 1), (c: 8, m: 4, s: 2, bias: true, batch: 1, group: 2)])
    func upsamplingDeconvsBecomeOneByOneConvs(_ k: (c: Int, m: Int, s: Int, bias: Bool, batch: Int, group: Int)) throws {
        var g = Graph(name: "upsample")
        let x = g.addValue("x", TensorType(.f32, [k.batch, k.c, 5, 6]))
        g.inputs = [x]
        var operands: [ValueID?] = [x, g.addConstant("w", CodegenTests.random(.f32, [k.c, k.m / k.group, k.s, k.s], seed: 13))]
        if k.bias { operands.append(g.addConstant("b", CodegenTests.random(.f32, [k.m], seed: 14))) }
        let t = g.addValue("t", TensorType(.f32, dims: [.symbolic("?")]))
        let y = g.addValue("y", TensorType(.f32, dims: [.symbolic("?")]))
        let conv = ConvAttributes(kernelShape: [k.s, k.s], strides: [k.s, k.s], group: k.group)
        let origin = NodeOrigin(opType: "test", version: 17)
        g.nodes = [
            Node(name: "up", op: .convTranspose(ConvTransposeAttributes(conv: conv)), inputs: operands, outputs: [t], origin: origin),
            Node(name: "relu", op: .unary(.relu), inputs: [t], outputs: [y], origin: origin),
        ]
        g.outputs = [y]
        try inferShapes(&g)
        let inputs = ["x": CodegenTests.random(.f32, [k.batch, k.c, 5, 6], seed: 15)]
        let want = try ReferenceInterpreter(g).run(inputs)
        try Pipeline.optimize(&g, layout: .channelsLast)
        let ops = g.nodes.map(\.op.name).filter { $0 != "layout_convert" }
        if k.group == 1 {
            #expect(ops == ["conv", "depth_to_space"])
            let c = try #require(g.nodes.first { $0.op.name == "conv" })
            if case .conv(let a) = c.op { #expect(a.postOps == [.relu]) }
            #expect(g.values[c.outputs[0]].type.shape == [k.batch, k.m * k.s * k.s, 5, 6])
            let d = try #require(g.nodes.first { $0.op.name == "depth_to_space" })
            #expect(g.values[d.inputs[0]!].layout == .channelsLast && g.values[d.outputs[0]].layout == .channelsLast)
        } else {
            #expect(ops == ["conv_transpose"])
        }
        let (got, _) = try compileAndRun(g, inputs, name: "upsample")
        let d = Conformance.compare(got["y"]!, want["y"]!, rtol: 1e-4, atol: 1e-5)
        #expect(d == nil, "\(d ?? "")")
    }
}
