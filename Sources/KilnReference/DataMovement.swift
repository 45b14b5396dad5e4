import Foundation
import KilnIR

/// Builds a tensor of `shape` whose element k is `x`'s element `source(index)`
/// (or the fill value when `source` returns nil).
func gatherElements(_ x: Tensor, shape: [Int], type: ElementType? = nil, fill: Double = 0,
                    _ source: ([Int]) -> Int?) -> Tensor {
    let t = type ?? x.elementType
    let n = shapeProduct(shape)
    if t.isFloat {
        var r = [Float](repeating: Float(fill), count: n)
        forEachIndex(shape) { k, idx in if let s = source(idx) { r[k] = x.floats[s] } }
        return Tensor(t, shape: shape, floats: r)
    }
    var r = [Int64](repeating: Int64(fill), count: n)
    forEachIndex(shape) { k, idx in if let s = source(idx) { r[k] = x.ints[s] } }
    return Tensor(t, shape: shape, ints: r)
}

func concat(_ xs: [Tensor], axis: Int, out shape: [Int]) -> Tensor {
    let outer = shapeProduct(Array(shape.prefix(axis)))
    let t = xs[0].elementType
    if t.isFloat {
        var r: [Float] = []
        r.reserveCapacity(shapeProduct(shape))
        for o in 0..<outer {
            for x in xs {
                let chunk = shapeProduct(Array(x.shape.dropFirst(axis)))
                r.append(contentsOf: x.floats[(o * chunk)..<((o + 1) * chunk)])
            }
        }
        return Tensor(t, shape: shape, floats: r)
    }
    var r: [Int64] = []
    for o in 0..<outer {
        for x in xs {
            let chunk = shapeProduct(Array(x.shape.dropFirst(axis)))
            r.append(contentsOf: x.ints[(o * chunk)..<((o + 1) * chunk)])
        }
    }
    return Tensor(t, shape: shape, ints: r)
}

func slice(_ x: Tensor, _ axes: [SliceAxis]) -> Tensor {
    let strides = contiguousStrides(x.shape)
    return gatherElements(x, shape: axes.map(\.count)) { idx in
        var off = 0
        for d in 0..<idx.count { off += (axes[d].start + idx[d] * axes[d].step) * strides[d] }
        return off
    }
}

func transpose(_ x: Tensor, perm: [Int]) -> Tensor {
    let strides = contiguousStrides(x.shape)
    return gatherElements(x, shape: perm.map { x.shape[$0] }) { idx in
        var off = 0
        for d in 0..<idx.count { off += idx[d] * strides[perm[d]] }
        return off
    }
}

func gather(_ x: Tensor, _ indices: Tensor, axis: Int, out shape: [Int], _ what: String) throws -> Tensor {
    let dim = x.shape[axis]
    var idx = indices.int64Values
    for k in 0..<idx.count {
        if idx[k] < 0 { idx[k] += Int64(dim) }
        guard idx[k] >= 0 && idx[k] < Int64(dim) else {
            throw KilnError("\(what): index \(indices.int64Values[k]) is out of range for axis \(axis) of size \(dim)")
        }
    }
    let strides = contiguousStrides(x.shape)
    let ir = indices.rank
    let istrides = contiguousStrides(indices.shape)
    return gatherElements(x, shape: shape) { o in
        var off = 0
        for d in 0..<axis { off += o[d] * strides[d] }
        var flat = 0
        for d in 0..<ir { flat += o[axis + d] * istrides[d] }
        off += Int(idx[flat]) * strides[axis]
        for d in (axis + 1)..<x.rank { off += o[d + ir - 1] * strides[d] }
        return off
    }
}

func pad(_ x: Tensor, pads: [Int64], axes: [Int], mode: PadMode, value: Tensor?, out shape: [Int]) -> Tensor {
    var begin = [Int](repeating: 0, count: x.rank)
    for (k, a) in axes.enumerated() { begin[a] = Int(pads[k]) }
    let strides = contiguousStrides(x.shape)
    let fill = value.map { $0.double(at: 0) } ?? 0
    return gatherElements(x, shape: shape, fill: fill) { o in
        var off = 0
        for d in 0..<o.count {
            var i = o[d] - begin[d]
            let n = x.shape[d]
            if i < 0 || i >= n {
                if n == 0 { return nil }
                switch mode {
                case .constant: return nil
                case .edge: i = min(max(i, 0), n - 1)
                case .wrap: i = ((i % n) + n) % n
                case .reflect:
                    if n == 1 { i = 0 } else {
                        let period = 2 * (n - 1)
                        i = ((i % period) + period) % period
                        if i >= n { i = period - i }
                    }
                }
            }
            off += i * strides[d]
        }
        return off
    }
}

func range(_ start: Tensor, _ delta: Tensor, out: TensorType) -> Tensor {
    let n = out.shape![0]
    if out.elementType.isFloat {
        let s = start.floats[0], d = delta.floats[0]
        return Tensor(out.elementType, shape: [n], floats: (0..<n).map { out.elementType.roundFloat(s + Float($0) * d) })
    }
    let s = start.ints[0], d = delta.ints[0]
    return Tensor(out.elementType, shape: [n], ints: (0..<n).map { out.elementType.wrap(s &+ Int64($0) &* d) })
}

func resize(_ x: Tensor, _ r: ResizeAttributes, scales: [Float], roi: [Float]?, out shape: [Int]) -> Tensor {
    let rank = x.rank
    let strides = contiguousStrides(x.shape)
    let tables = resizeTables(input: x.shape, output: shape, scales: scales, roi: roi, attributes: r)
    let t = x.elementType
    let n = shapeProduct(shape)
    var result = [Float](repeating: 0, count: n)
    let xs = x.floatValues
    forEachIndex(shape) { k, o in
        if (0..<rank).contains(where: { tables[$0].outside[o[$0]] }) {
            result[k] = r.extrapolationValue
            return
        }
        switch r.mode {
        case .nearest:
            var off = 0
            for d in 0..<rank { off += tables[d].nearest[o[d]] * strides[d] }
            result[k] = xs[off]
        case .linear:
            var acc: Float = 0
            for corner in 0..<(1 << rank) {
                var weight: Float = 1
                var off = 0
                for d in 0..<rank {
                    let upper = (corner >> d) & 1 == 1
                    let w = tables[d].weight[o[d]]
                    weight *= upper ? w : 1 - w
                    off += (upper ? tables[d].upper[o[d]] : tables[d].lower[o[d]]) * strides[d]
                }
                if weight != 0 { acc += weight * xs[off] }
            }
            result[k] = acc
        }
    }
    if t.isFloat { return Tensor(t, shape: shape, floats: result.map(t.roundFloat)) }
    return Tensor(t, shape: shape, ints: result.map { t.wrap(saturatingInt64($0.rounded(.toNearestOrEven))) })
}

/// ONNX GatherElements: out[i…] = x[i… with indices[i…] at `axis`].
func gatherAlongAxis(_ x: Tensor, _ indices: Tensor, axis: Int, _ what: String) throws -> Tensor {
    let dim = x.shape[axis]
    let idx = indices.int64Values
    for i in idx where i < -Int64(dim) || i >= Int64(dim) {
        throw KilnError("\(what): index \(i) is out of range for axis \(axis) of size \(dim)")
    }
    let strides = contiguousStrides(x.shape), istrides = contiguousStrides(indices.shape)
    return gatherElements(x, shape: indices.shape) { o in
        var flat = 0
        for d in 0..<o.count { flat += o[d] * istrides[d] }
        let i = Int(idx[flat]) + (idx[flat] < 0 ? dim : 0)
        var off = 0
        for d in 0..<o.count { off += (d == axis ? i : o[d]) * strides[d] }
        return off
    }
}

extension NodeEvaluation {
    /// The reference of the DataMovement family's ops (`OpFamily.dataMovement`).
    func evaluateDataMovement() throws -> [Tensor] {
        switch node.op {
        case .concat(let axis):
            return [concat(inputs.compactMap { $0 }, axis: try normalizeAxis(axis, rank: shape.count, what), out: shape)]
        case .split(let axis):
            let ax = try normalizeAxis(axis, rank: x(0).rank, what)
            var outs: [Tensor] = []
            var offset = 0
            for t in types {
                let s = t.shape!
                var sl = x(0).shape.map { SliceAxis(start: 0, step: 1, count: $0) }
                sl[ax] = SliceAxis(start: offset, step: 1, count: s[ax])
                outs.append(slice(x(0), sl))
                offset += s[ax]
            }
            return outs
        case .slice:
            let sl = try resolveSlice(shape: x(0).shape, starts: x(1).int64Values, ends: x(2).int64Values,
                                      axes: opt(3)?.int64Values, steps: opt(4)?.int64Values, what)
            return [slice(x(0), sl)]
        case .reshape, .flatten, .squeeze, .unsqueeze, .identity, .layoutConvert:
            return [x(0).reshaped(shape)]
        case .dropout:
            let y = x(0)
            return node.outputs.count > 1 ? [y, Tensor(.bool, shape: shape, ints: [Int64](repeating: 1, count: y.count))] : [y]
        case .transpose(let perm):
            return [transpose(x(0), perm: perm ?? Array((0..<x(0).rank).reversed()))]
        case .gather(let axis):
            return [try gather(x(0), x(1), axis: try normalizeAxis(axis, rank: x(0).rank, what), out: shape, what)]
        case .pad(let mode):
            let axes = try padAxes(opt(3)?.int64Values, rank: x(0).rank, what)
            return [pad(x(0), pads: x(1).int64Values, axes: axes, mode: mode, value: opt(2), out: shape)]
        case .resize(let r):
            let (_, scales) = try resolveResize(input: x(0).shape, scales: opt(2)?.floatValues, sizes: opt(3)?.int64Values,
                                               attributes: r, what)
            return [resize(x(0), r, scales: scales, roi: opt(1)?.floatValues, out: shape)]
        case .expand:
            return [expand(x(0), to: shape)]
        case .depthToSpace(let b, let crd):
            // y[n, c, h·b + i, w·b + j] = x[n, DCR: (i·b + j)·C' + c, CRD: c·b² + i·b + j, h, w]
            let s = x(0).shape, c2 = s[1] / (b * b)
            return [gatherElements(x(0), shape: shape) { o in
                let (n, c, i, j) = (o[0], o[1], o[2] % b, o[3] % b)
                let ch = crd ? c * b * b + i * b + j : (i * b + j) * c2 + c
                return ((n * s[1] + ch) * s[2] + o[2] / b) * s[3] + o[3] / b
            }]
        case .spaceToDepth(let b, let crd):
            // y[n, DCR: (i·b + j)·C + c, CRD: c·b² + i·b + j, h, w] = x[n, c, h·b + i, w·b + j]
            let s = x(0).shape
            return [gatherElements(x(0), shape: shape) { o in
                let (n, ch) = (o[0], o[1])
                let (i, j, c) = crd ? ((ch % (b * b)) / b, ch % b, ch / (b * b)) : (ch / (b * s[1]), (ch / s[1]) % b, ch % s[1])
                return ((n * s[1] + c) * s[2] + o[2] * b + i) * s[3] + o[3] * b + j
            }]
        case .tile:
            let s = x(0).shape, st = contiguousStrides(s)
            return [gatherElements(x(0), shape: shape) { o in
                var off = 0
                for d in 0..<o.count { off += (o[d] % s[d]) * st[d] }
                return off
            }]
        case .gatherElements(let axis):
            return [try gatherAlongAxis(x(0), x(1), axis: try normalizeAxis(axis, rank: x(0).rank, what), what)]
        default: preconditionFailure("\(node.op.name) is not of the dataMovement family")
        }
    }
}
