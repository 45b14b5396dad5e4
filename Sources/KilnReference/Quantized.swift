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
        case .dynamicQuantizedMatMul(let q):
            let p = Quantization.perTensor(.u8, scale: x(1).floats[0], zeroPoint: Int32(x(2).ints[0]))
            var y = matMul(dequantize(x(0), p), dequantize(x(3), q.weights), out: TensorType(.f32, shape))
            if let bias = opt(4) { y = try binary(.add, y, bias, out: y.type) }
            return [applyPostOps(q.postOps, y, addend: nil)]
        case .dynamicQuantizeLinear:
            let (xq, p) = dynamicallyQuantized(x(0))
            return [xq, Tensor(.f32, shape: [], floats: [p.scales[0]]), Tensor(.u8, shape: [], ints: [Int64(p.zeroPoints[0])])]
        case .convInteger(let a):
            return [try convInteger(x(0), x(1), opt(2), opt(3), a, out: shape, what)]
        case .matMulInteger:
            // Exactly, in 64 bits: (A − a_zero_point) · (B − b_zero_point), then s32.
            func centered(_ t: Tensor, _ zp: Tensor?, perRow: Bool) -> Tensor {
                guard let zp else { return Tensor(.s32, shape: t.shape, ints: t.ints) }
                let n = t.shape.last ?? 1
                return Tensor(.s32, shape: t.shape, ints: t.ints.indices.map { i in
                    t.ints[i] - (zp.count == 1 ? zp.ints[0] : zp.ints[perRow ? i / n : i % n])
                })
            }
            return [matMul(centered(x(0), opt(2), perRow: true), centered(x(1), opt(3), perRow: false), out: out)]
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

/// Index of the quantization parameter for each element: per tensor, or per `axis`. Checks that
/// the scale is a float tensor and the zero point, when given, an integer one of the same count.
private func quantParamIndex(_ x: Tensor, _ scale: Tensor, _ zp: Tensor?, axis: Int, _ what: String) throws -> (Int) -> Int {
    guard scale.elementType.isFloat, scale.count > 0 else { throw KilnError("\(what): the scale must be a non-empty float tensor, not \(scale.type)") }
    if let zp {
        guard !zp.elementType.isFloat, zp.count == scale.count else {
            throw KilnError("\(what): the zero point (\(zp.type)) must be an integer tensor with one value per scale (\(scale.count))")
        }
    }
    if scale.count == 1 && scale.rank <= 1 { return { _ in 0 } }
    guard scale.rank == 1 else { throw KilnError("\(what): scale must be a scalar or 1-D (blocked quantization is not supported)") }
    let ax = try normalizeAxis(axis, rank: x.rank, what)
    guard scale.count == x.shape[ax] else {
        throw KilnError("\(what): \(scale.count) scales for axis \(ax) of size \(x.shape[ax])")
    }
    let inner = shapeProduct(Array(x.shape.dropFirst(ax + 1)))
    let dim = x.shape[ax]
    return { ($0 / inner) % dim }
}

/// ONNX QuantizeLinear: saturate(round_half_to_even(x / scale) + zero_point).
func quantize(_ x: Tensor, _ scale: Tensor, _ zp: Tensor?, axis: Int, to t: ElementType, _ what: String) throws -> Tensor {
    guard !t.isFloat else { throw KilnError("\(what): quantizes to \(t), not an integer type") }
    let p = try quantParamIndex(x, scale, zp, axis: axis, what)
    let r = t.intRange
    let xs = x.floatValues
    let out: [Int64] = (0..<x.count).map { i in
        let k = p(i)
        let q = (xs[i] / scale.floats[k]).rounded(.toNearestOrEven)
        let v = Double(q) + Double(zp?.ints[k] ?? 0)
        if v.isNaN { return 0 }
        return min(max(saturatingInt64(v), r.lowerBound), r.upperBound)
    }
    return Tensor(t, shape: x.shape, ints: out)
}

/// ONNX DequantizeLinear: (x - zero_point) * scale.
func dequantize(_ x: Tensor, _ scale: Tensor, _ zp: Tensor?, axis: Int, to t: ElementType, _ what: String) throws -> Tensor {
    guard !x.elementType.isFloat, t.isFloat else { throw KilnError("\(what): dequantizes \(x.elementType) to \(t); it takes an integer tensor to a float one") }
    let p = try quantParamIndex(x, scale, zp, axis: axis, what)
    let out: [Float] = (0..<x.count).map { i in
        let k = p(i)
        return t.roundFloat(Float(x.ints[i] - (zp?.ints[k] ?? 0)) * scale.floats[k])
    }
    return Tensor(t, shape: x.shape, floats: out)
}

/// The parameter index of each element of a tensor of `shape` under `q`.
private func parameterIndex(_ q: Quantization, _ shape: [Int]) -> (Int) -> Int {
    guard !q.isPerTensor else { return { _ in 0 } }
    let axis = q.axis < 0 ? q.axis + shape.count : q.axis
    let inner = shapeProduct(Array(shape.dropFirst(axis + 1))), dim = shape[axis]
    return { ($0 / inner) % dim }
}

/// ONNX DynamicQuantizeLinear: `x` as u8 over its range widened to hold 0, and the parameters.
public func dynamicallyQuantized(_ x: Tensor) -> (Tensor, Quantization) {
    let v = x.floatValues
    let (s, z) = dynamicQuantizationParameters(min: v.min() ?? 0, max: v.max() ?? 0)
    let p = Quantization.perTensor(.u8, scale: s, zeroPoint: z)
    return (quantize(x, p), p)
}

/// The real values of a quantized tensor (`Quantization.dequantize`, element by element).
public func dequantize(_ x: Tensor, _ q: Quantization) -> Tensor {
    let k = parameterIndex(q, x.shape)
    return Tensor(.f32, shape: x.shape, floats: x.ints.indices.map { q.dequantize(x.ints[$0], k($0)) })
}

/// A real tensor quantized by `q` (`Quantization.quantize`, element by element).
public func quantize(_ x: Tensor, _ q: Quantization) -> Tensor {
    let k = parameterIndex(q, x.shape)
    return Tensor(q.type, shape: x.shape, ints: x.floats.indices.map { q.quantize(x.floats[$0], k($0)) })
}
