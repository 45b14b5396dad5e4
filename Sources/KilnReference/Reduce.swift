import Foundation
import KilnIR

extension NodeEvaluation {
    /// The reference of the Reduce family's ops (`OpFamily.reduce`).
    func evaluateReduce() throws -> [Tensor] {
        switch node.op {
        case .reduce(let r, _, let noop):
            let axes = try resolveReduceAxes(opt(1)?.int64Values, rank: x(0).rank, noopWithEmptyAxes: noop, what)
            return [reduce(r, x(0), axes: axes, out: shape)]
        case .argReduce(let a):
            return [argReduce(x(0), a, axis: try normalizeAxis(a.axis, rank: x(0).rank, what), out: shape)]
        case .topK(let a):
            let r = topK(x(0), k: Int(x(1).int64Values[0]), axis: try normalizeAxis(a.axis, rank: x(0).rank, what), largest: a.largest)
            return [r.values, r.indices]
        default: preconditionFailure("\(node.op.name) is not of the reduce family")
        }
    }
}

func reduce(_ op: ReduceOp, _ x: Tensor, axes: [Int], out shape: [Int]) -> Tensor {
    if axes.isEmpty { return x.reshaped(shape) }
    // Output position of each input element: drop (or zero) the reduced axes.
    var keptStrides = [Int](repeating: 0, count: x.rank)
    var acc = 1
    for d in stride(from: x.rank - 1, through: 0, by: -1) where !axes.contains(d) {
        keptStrides[d] = acc
        acc *= x.shape[d]
    }
    let n = shapeProduct(shape)
    let count = shapeProduct(axes.map { x.shape[$0] })
    let t = x.elementType
    if t.isFloat {
        let start: Double = op == .max ? -.infinity : op == .min ? .infinity : op == .prod ? 1 : 0
        var r = [Double](repeating: start, count: n)
        forEachIndex(x.shape) { k, idx in
            var o = 0
            for d in 0..<idx.count { o += idx[d] * keptStrides[d] }
            let v = Double(x.floats[k])
            switch op {
            case .sum, .mean, .logSum: r[o] += v
            case .sumSquare, .l2: r[o] += v * v
            case .l1: r[o] += abs(v)
            case .logSumExp: r[o] += Foundation.exp(v)
            case .prod: r[o] *= v
            case .max: if v > r[o] || v.isNaN { r[o] = v }
            case .min: if v < r[o] || v.isNaN { r[o] = v }
            }
        }
        for i in 0..<n {
            switch op {
            case .mean: r[i] /= Double(count)
            case .l2: r[i] = r[i].squareRoot()
            case .logSum, .logSumExp: r[i] = Foundation.log(r[i])
            default: break
            }
        }
        return Tensor(t, shape: shape, floats: r.map { t.roundFloat(Float($0)) })
    }
    // Integers (TypeRules keeps L2 and the logarithms to floating point) wrap like the C++ kernel.
    let start: Int64 = op == .max ? t.intRange.lowerBound : op == .min ? t.intRange.upperBound : op == .prod ? 1 : 0
    var r = [Int64](repeating: start, count: n)
    forEachIndex(x.shape) { k, idx in
        var o = 0
        for d in 0..<idx.count { o += idx[d] * keptStrides[d] }
        let v = x.ints[k]
        switch op {
        case .sum, .mean, .logSum, .logSumExp: r[o] = r[o] &+ v
        case .sumSquare, .l2: r[o] = r[o] &+ v &* v
        case .l1: r[o] = r[o] &+ (v < 0 ? 0 &- v : v)
        case .prod: r[o] = r[o] &* v
        case .max: r[o] = max(r[o], v)
        case .min: r[o] = min(r[o], v)
        }
    }
    if op == .mean { for i in 0..<n { r[i] = count == 0 ? 0 : r[i] / Int64(count) } }
    return Tensor(t, shape: shape, ints: r.map(t.wrap))
}

/// The element at `k` of a tensor as a Double, for ordering (integers exactly up to 2⁵³).
private func orderValue(_ x: Tensor, _ k: Int) -> Double {
    x.elementType.isFloat ? Double(x.floats[k]) : Double(x.ints[k])
}

/// ONNX ArgMax/ArgMin: ties to the first index (the last with select_last_index); a NaN wins, as
/// in numpy's argmax and argmin, which ONNX's reference uses.
func argReduce(_ x: Tensor, _ a: ArgReduceAttributes, axis: Int, out shape: [Int]) -> Tensor {
    let outer = shapeProduct(Array(x.shape.prefix(axis))), len = x.shape[axis]
    let inner = shapeProduct(Array(x.shape.dropFirst(axis + 1)))
    var r: [Int64] = []
    for o in 0..<outer {
        for i in 0..<inner {
            func at(_ l: Int) -> Double { orderValue(x, (o * len + l) * inner + i) }
            var best = at(0), index = 0
            for l in 1..<len {
                let v = at(l)
                let take = best.isNaN ? (a.selectLastIndex && v.isNaN)
                    : v.isNaN || (a.largest ? v > best : v < best) || (a.selectLastIndex && v == best)
                if take { best = v; index = l }
            }
            r.append(Int64(index))
        }
    }
    return Tensor(.s64, shape: shape, ints: r)
}

/// ONNX TopK, sorted: larger first (smaller first when not `largest`), equal values by index, a
/// NaN counting as larger than any number.
func topK(_ x: Tensor, k: Int, axis: Int, largest: Bool) -> (values: Tensor, indices: Tensor) {
    let outer = shapeProduct(Array(x.shape.prefix(axis))), len = x.shape[axis]
    let inner = shapeProduct(Array(x.shape.dropFirst(axis + 1)))
    var shape = x.shape
    shape[axis] = k
    var picks = [Int](repeating: 0, count: shapeProduct(shape))
    var indices = [Int64](repeating: 0, count: picks.count)
    for o in 0..<outer {
        for i in 0..<inner {
            func at(_ l: Int) -> Double { orderValue(x, (o * len + l) * inner + i) }
            let order = (0..<len).sorted { a, b in
                let va = at(a), vb = at(b)
                if va.isNaN || vb.isNaN { return va.isNaN && vb.isNaN ? a < b : (largest ? va.isNaN : vb.isNaN) }
                return va != vb ? (largest ? va > vb : va < vb) : a < b
            }
            for l in 0..<k {
                picks[(o * k + l) * inner + i] = (o * len + order[l]) * inner + i
                indices[(o * k + l) * inner + i] = Int64(order[l])
            }
        }
    }
    let strides = contiguousStrides(shape)
    let values = gatherElements(x, shape: shape) { o in
        var flat = 0
        for d in 0..<o.count { flat += o[d] * strides[d] }
        return picks[flat]
    }
    return (values, Tensor(.s64, shape: shape, ints: indices))
}
