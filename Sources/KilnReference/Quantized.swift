import Foundation
import KilnIR

extension NodeEvaluation {
    /// The reference of the Quantized family's ops (`OpFamily.quantized`).
    func evaluateQuantized() throws -> [Tensor] {
        switch node.op {
        case .quantizedConv(let q):
            // By definition: dequantize, convolve in f32, quantize.
            let y = try conv(dequantize(x(0), q.input), dequantize(x(1), q.weights), opt(2), q.conv, out: shape, what)
            let addend = opt(3).map { a in q.addend.map { dequantize(a, $0) } ?? a }
            let real = applyPostOps(q.conv.postOps, y, addend: addend)
            return [q.output.map { quantize(real, $0) } ?? real]
        case .quantizedMatMul(let q):
            var y = matMul(dequantize(x(0), q.input), dequantize(x(1), q.weights), out: TensorType(.f32, shape))
            if let bias = opt(2) { y = try binary(.add, y, bias, out: y.type) }
            let real = applyPostOps(q.postOps, y, addend: nil)
            return [q.output.map { quantize(real, $0) } ?? real]
        case .quantizeLinear(let axis, _):
            return [try quantize(x(0), x(1), opt(2), axis: axis, to: out.elementType, what)]
        case .dequantizeLinear(let axis):
            return [try dequantize(x(0), x(1), opt(2), axis: axis, to: out.elementType, what)]
        case .quantized(let q):
            // By definition: dequantize the quantized inputs, apply the op, quantize.
            var inner = node
            inner.op = q.op
            let real = zip(inputs, q.inputs + Array(repeating: nil, count: max(0, inputs.count - q.inputs.count))).map { x, p in
                p.flatMap { p in x.map { dequantize($0, p) } } ?? x
            }
            return [quantize(try evaluateNode(inner, real)[0], q.output)]
        default: preconditionFailure("\(node.op.name) is not of the quantized family")
        }
    }
}
