import Foundation
import KilnIR

/// For each element of `out` (C order), the index of the element of a tensor of shape `shape`
/// that numpy broadcasting reads. Nil when the shapes are equal (identity).
func broadcastIndex(_ shape: [Int], to out: [Int]) -> [Int]? {
    if shape == out { return nil }
    let n = shapeProduct(out)
    let rank = out.count
    let padded = [Int](repeating: 1, count: rank - shape.count) + shape
    let inStrides = contiguousStrides(padded)
    var strides = [Int](repeating: 0, count: rank)
    for i in 0..<rank where padded[i] != 1 { strides[i] = inStrides[i] }
    var idx = [Int](repeating: 0, count: n)
    var counter = [Int](repeating: 0, count: rank)
    var offset = 0
    for k in 0..<n {
        idx[k] = offset
        var d = rank - 1
        while d >= 0 {
            counter[d] += 1
            offset += strides[d]
            if counter[d] < out[d] { break }
            offset -= strides[d] * counter[d]
            counter[d] = 0
            d -= 1
        }
    }
    return idx
}

/// Applies `f` to every element of a floating-point tensor, rounding to its precision.
func mapFloat(_ x: Tensor, _ f: (Float) -> Float) -> Tensor {
    let t = x.elementType
    return Tensor(t, shape: x.shape, floats: x.floats.map { t.roundFloat(f($0)) })
}

func unary(_ u: UnaryOp, _ x: Tensor) -> Tensor {
    if !x.elementType.isFloat {
        let t = x.elementType
        let f: (Int64) -> Int64
        switch u {
        case .relu: f = { max($0, 0) }
        case .neg: f = { 0 &- $0 }
        case .abs: f = { $0 < 0 ? 0 &- $0 : $0 }
        case .not: f = { $0 == 0 ? 1 : 0 }
        default: f = { $0 }
        }
        return Tensor(t, shape: x.shape, ints: x.ints.map { t.wrap(f($0)) })
    }
    return ScalarFunction(u).map { mapFloat(x, $0.apply) } ?? x
}

func clip(_ x: Tensor, _ lo: Tensor?, _ hi: Tensor?) -> Tensor {
    if x.elementType.isFloat {
        let l = lo?.floats.first ?? -.infinity, h = hi?.floats.first ?? .infinity
        return mapFloat(x, ScalarFunction.clip(min: l, max: h).apply)
    }
    let l = lo?.ints.first ?? Int64.min, h = hi?.ints.first ?? Int64.max
    return Tensor(x.elementType, shape: x.shape, ints: x.ints.map { min(max($0, l), h) })
}

func binary(_ b: BinaryOp, _ a: Tensor, _ c: Tensor, out: TensorType) throws -> Tensor {
    let shape = out.shape!
    let n = shapeProduct(shape)
    let ia = broadcastIndex(a.shape, to: shape), ic = broadcastIndex(c.shape, to: shape)
    if b.producesBool {
        let f: (Double, Double) -> Bool
        switch b {
        case .equal: f = (==)
        case .less: f = (<)
        case .greater: f = (>)
        case .lessOrEqual: f = (<=)
        case .greaterOrEqual: f = (>=)
        case .and: f = { $0 != 0 && $1 != 0 }
        case .or: f = { $0 != 0 || $1 != 0 }
        default: f = { ($0 != 0) != ($1 != 0) }  // xor
        }
        var r = [Int64](repeating: 0, count: n)
        for k in 0..<n {
            let i = ia?[k] ?? k, j = ic?[k] ?? k
            r[k] = f(a.double(at: i), c.double(at: j)) ? 1 : 0
        }
        return Tensor(.bool, shape: shape, ints: r)
    }
    let t = out.elementType
    if t.isFloat {
        let f: (Float, Float) -> Float
        switch b {
        case .add: f = (+)
        case .sub: f = (-)
        case .mul: f = (*)
        case .div: f = (/)
        case .pow: f = { Foundation.pow($0, $1) }
        case .max: f = { $0.isNaN || $1.isNaN ? .nan : Swift.max($0, $1) }
        case .min: f = { $0.isNaN || $1.isNaN ? .nan : Swift.min($0, $1) }
        case .fmod: f = { Foundation.fmod($0, $1) }
        case .mod: f = floatMod
        case .prelu: f = { $0 < 0 ? $1 * $0 : $0 }
        case .equal, .less, .greater, .lessOrEqual, .greaterOrEqual, .and, .or, .xor: f = { _, _ in 0 }  // (bool: above)
        }
        let cf = c.floatValues
        var r = [Float](repeating: 0, count: n)
        a.floats.withUnsafeBufferPointer { pa in
            cf.withUnsafeBufferPointer { pc in
                for k in 0..<n { r[k] = t.roundFloat(f(pa[ia?[k] ?? k], pc[ic?[k] ?? k])) }
            }
        }
        return Tensor(t, shape: shape, floats: r)
    }
    let f: (Int64, Int64) -> Int64
    switch b {
    case .add: f = (&+)
    case .sub: f = (&-)
    case .mul: f = (&*)
    case .div: f = { $1 == 0 ? 0 : ($0 == Int64.min && $1 == -1 ? $0 : $0 / $1) }
    case .pow: f = intPow
    case .max: f = { Swift.max($0, $1) }
    case .min: f = { Swift.min($0, $1) }
    case .fmod: f = { $1 == 0 ? 0 : ($1 == -1 ? 0 : $0 % $1) }
    case .mod: f = { x, y in
        guard y != 0, y != -1 else { return 0 }
        let r = x % y
        return r != 0 && (r < 0) != (y < 0) ? r + y : r
    }
    case .prelu: f = { $0 < 0 ? $1 &* $0 : $0 }
    case .equal, .less, .greater, .lessOrEqual, .greaterOrEqual, .and, .or, .xor: f = { _, _ in 0 }  // (bool: above)
    }
    let ci = c.int64Values
    var r = [Int64](repeating: 0, count: n)
    for k in 0..<n { r[k] = t.wrap(f(a.ints[ia?[k] ?? k], ci[ic?[k] ?? k])) }
    return Tensor(t, shape: shape, ints: r)
}

/// Mod with fmod=0 of floats: the remainder with the divisor's sign (numpy's mod).
private func floatMod(_ a: Float, _ b: Float) -> Float {
    let r = Foundation.fmod(a, b)
    if r != 0 && (r < 0) != (b < 0) { return r + b }
    return r == 0 ? Float(signOf: b, magnitudeOf: 0) : r
}

private func intPow(_ base: Int64, _ exp: Int64) -> Int64 {
    if exp < 0 { return base == 1 ? 1 : (base == -1 ? (exp % 2 == 0 ? 1 : -1) : 0) }
    var result: Int64 = 1, b = base, e = exp
    while e > 0 {
        if e & 1 == 1 { result = result &* b }
        b = b &* b
        e >>= 1
    }
    return result
}

func expand(_ x: Tensor, to shape: [Int]) -> Tensor {
    let idx = broadcastIndex(x.shape, to: shape)
    let n = shapeProduct(shape)
    if x.elementType.isFloat {
        return Tensor(x.elementType, shape: shape, floats: (0..<n).map { x.floats[idx?[$0] ?? $0] })
    }
    return Tensor(x.elementType, shape: shape, ints: (0..<n).map { x.ints[idx?[$0] ?? $0] })
}

func whereOp(_ cond: Tensor, _ a: Tensor, _ b: Tensor, out: TensorType) -> Tensor {
    let shape = out.shape!
    let n = shapeProduct(shape)
    let ic = broadcastIndex(cond.shape, to: shape), ia = broadcastIndex(a.shape, to: shape), ib = broadcastIndex(b.shape, to: shape)
    if out.elementType.isFloat {
        return Tensor(out.elementType, shape: shape, floats: (0..<n).map {
            cond.ints[ic?[$0] ?? $0] != 0 ? a.floats[ia?[$0] ?? $0] : b.floats[ib?[$0] ?? $0]
        })
    }
    return Tensor(out.elementType, shape: shape, ints: (0..<n).map {
        cond.ints[ic?[$0] ?? $0] != 0 ? a.ints[ia?[$0] ?? $0] : b.ints[ib?[$0] ?? $0]
    })
}

func cast(_ x: Tensor, to t: ElementType) -> Tensor {
    if t.isFloat {
        if x.elementType.isFloat { return Tensor(t, shape: x.shape, floats: x.floats.map(t.roundFloat)) }
        return Tensor(t, shape: x.shape, floats: x.ints.map { t.roundFloat(Float($0)) })
    }
    if t == .bool {
        if x.elementType.isFloat { return Tensor(t, shape: x.shape, ints: x.floats.map { $0 != 0 ? 1 : 0 }) }
        return Tensor(t, shape: x.shape, ints: x.ints.map { $0 != 0 ? 1 : 0 })
    }
    if x.elementType.isFloat {
        return Tensor(t, shape: x.shape, ints: x.floats.map { t.wrap(saturatingInt64($0)) })
    }
    return Tensor(t, shape: x.shape, ints: x.ints.map(t.wrap))
}

extension NodeEvaluation {
    /// The reference of the Elementwise family's ops (`OpFamily.elementwise`).
    func evaluateElementwise() throws -> [Tensor] {
        switch node.op {
        case .unary(let u):
            return [unary(u, x(0))]
        case .leakyRelu, .elu, .selu, .hardSigmoid, .gelu:
            return [mapFloat(x(0), node.op.scalarFunction!.apply)]
        case .clip:
            return [clip(x(0), opt(1), opt(2))]
        case .binary(let b):
            return [try binary(b, x(0), x(1), out: out)]
        case .variadic(let b):
            var acc = x(0)
            for i in 1..<inputs.count {
                let t = try broadcastShapes([acc.shape, x(i).shape], what)
                acc = try binary(b, acc, x(i), out: TensorType(out.elementType, t))
            }
            if acc.shape != shape { acc = expand(acc, to: shape) }
            return [acc]
        case .alignForBroadcast:
            return [x(1).reshaped(shape)]
        case .cast(let to):
            return [cast(x(0), to: to)]
        case .castLike:
            return [cast(x(0), to: x(1).elementType)]
        case .where:
            return [whereOp(x(0), x(1), x(2), out: out)]
        case .elementwiseGroup(let e):
            // Each step as the op it stands for, then the reduction as a reduce node.
            var results: [Tensor] = []
            for (k, step) in e.steps.enumerated() {
                let operands: [Tensor?] = step.operands.map { o in
                    switch o {
                    case .input(let i): return inputs[i]
                    case .step(let j): return results[j]
                    case .absent: return nil
                    }
                }
                let stepNode = Node(name: "\(node.name)/s\(k)", op: step.op, inputs: operands.indices.map { ValueID($0) },
                                    outputs: [ValueID(0)], origin: node.origin)
                results.append(try evaluateNode(stepNode, operands)[0])
            }
            let result = results.last!
            guard let r = e.reduction else { return [expand(result, to: shape)] }
            let full = try broadcastShapes(inputs.map { $0!.shape }, what)
            return [reduce(r.kind, expand(result, to: full), axes: r.axes, out: shape)]
        default: preconditionFailure("\(node.op.name) is not of the elementwise family")
        }
    }
}
