import Foundation
import Testing
import KilnIR
import KilnReference

/// Hand-computed cases for the reference interpreter (ONNX's own cases run in the conformance suite).
@Suite struct ReferenceTests {
    func node(_ op: Op, inputs: Int, outputs: Int = 1) -> Node {
        Node(name: "n", op: op, inputs: (0..<inputs).map { $0 }, outputs: (0..<outputs).map { 100 + $0 },
             origin: NodeOrigin(opType: op.name, version: 21))
    }

    @Test func quantizeRoundsHalfToEvenAndSaturates() throws {
        let x = Tensor(.f32, shape: [7], floats: [0.5, 1.5, 2.5, -0.5, -1.5, 1000, -1000])
        let u8 = try evaluateNode(node(.quantizeLinear(axis: 1, outputType: .u8), inputs: 3),
                                  [x, .scalar(1), .scalar(int: 10, .u8)])[0]
        #expect(u8.ints == [10, 12, 12, 10, 8, 255, 0])
        let s8 = try evaluateNode(node(.quantizeLinear(axis: 1, outputType: .s8), inputs: 3),
                                  [x, .scalar(1), .scalar(int: 0, .s8)])[0]
        #expect(s8.ints == [0, 2, 2, 0, -2, 127, -128])
    }

    @Test func perAxisDequantize() throws {
        let x = Tensor(.s8, shape: [2, 2], ints: [1, 2, 3, 4])
        let y = try evaluateNode(node(.dequantizeLinear(axis: 0), inputs: 3),
                                 [x, Tensor(.f32, shape: [2], floats: [0.5, 2]), Tensor(.s8, shape: [2], ints: [1, -1])])[0]
        #expect(y.floats == [0, 0.5, 8, 10])
    }

    @Test func convWithPaddingAndGroups() throws {
        // 1x2x2x2 input, depthwise 3x3 kernel of ones, pad 1: each output sums a 3x3 neighbourhood.
        let x = Tensor(.f32, shape: [1, 2, 2, 2], floats: [1, 2, 3, 4, 10, 20, 30, 40])
        let w = Tensor(.f32, shape: [2, 1, 3, 3], floats: [Float](repeating: 1, count: 18))
        let y = try evaluateNode(node(.conv(ConvAttributes(pads: [1, 1, 1, 1], group: 2)), inputs: 2), [x, w])[0]
        #expect(y.shape == [1, 2, 2, 2])
        #expect(y.floats == [10, 10, 10, 10, 100, 100, 100, 100])
    }

    @Test func averagePoolCountIncludePad() throws {
        let x = Tensor(.f32, shape: [1, 1, 2, 2], floats: [4, 4, 4, 4])
        let attrs = PoolAttributes(kernelShape: [2, 2], strides: [1, 1], pads: [1, 1, 0, 0], countIncludePad: true)
        let y = try evaluateNode(node(.averagePool(attrs), inputs: 1), [x])[0]
        #expect(y.floats == [1, 2, 2, 4])
        var excl = attrs
        excl.countIncludePad = false
        #expect(try evaluateNode(node(.averagePool(excl), inputs: 1), [x])[0].floats == [4, 4, 4, 4])
    }

    @Test func broadcastingBinaryOps() throws {
        let a = Tensor(.f32, shape: [2, 1], floats: [1, 2])
        let b = Tensor(.f32, shape: [3], floats: [10, 20, 30])
        let y = try evaluateNode(node(.binary(.add), inputs: 2), [a, b])[0]
        #expect(y.shape == [2, 3])
        #expect(y.floats == [11, 21, 31, 12, 22, 32])
        let e = try evaluateNode(node(.binary(.equal), inputs: 2), [a, Tensor(.f32, shape: [1], floats: [2])])[0]
        #expect(e.elementType == .bool && e.ints == [0, 1])
    }

    @Test func integerOverflowWrapsInsteadOfTrapping() throws {
        let a = Tensor(.s64, shape: [2], ints: [Int64.max, Int64.min])
        let y = try evaluateNode(node(.binary(.add), inputs: 2), [a, Tensor(.s64, shape: [2], ints: [1, -1])])[0]
        #expect(y.ints == [Int64.min, Int64.max])
        let d = try evaluateNode(node(.binary(.div), inputs: 2), [a, Tensor(.s64, shape: [2], ints: [0, -1])])[0]
        #expect(d.ints.count == 2)
        let c = try evaluateNode(node(.cast(to: .s32), inputs: 1), [Tensor(.f32, shape: [3], floats: [.nan, 1e30, -2.7])])[0]
        #expect(c.ints[2] == -2)
    }

    @Test func softmaxLegacyCoercesTo2D() throws {
        let x = Tensor(.f32, shape: [1, 2, 2], floats: [0, 0, 0, 0])
        let y = try evaluateNode(node(.softmax(axis: 1, legacy: true), inputs: 1), [x])[0]
        #expect(y.floats == [0.25, 0.25, 0.25, 0.25])
        let z = try evaluateNode(node(.softmax(axis: 1, legacy: false), inputs: 1), [x])[0]
        #expect(z.floats == [0.5, 0.5, 0.5, 0.5])
    }
}
