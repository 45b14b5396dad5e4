import Foundation
import KilnIR

extension NodeEvaluation {
    /// The reference of the Pool family's ops (`OpFamily.pool`).
    func evaluatePool() throws -> [Tensor] {
        switch node.op {
        case .maxPool(let p):
            return [try pool(x(0), p, average: false, out: shape, what)]
        case .averagePool(let p):
            return [try pool(x(0), p, average: true, out: shape, what)]
        case .globalAveragePool:
            return [globalPool(x(0), average: true)]
        case .globalMaxPool:
            return [globalPool(x(0), average: false)]
        default: preconditionFailure("\(node.op.name) is not of the pool family")
        }
    }
}

func pool(_ x: Tensor, _ p: PoolAttributes, average: Bool, out shape: [Int], _ what: String) throws -> Tensor {
    let geo = try windowGeometry(input: Array(x.shape.dropFirst(2)), kernel: p.kernelShape, strides: p.strides, pads: p.pads,
                                 dilations: p.dilations, autoPad: p.autoPad, ceilMode: p.ceilMode, what)
    guard geo.input.count <= 3 else { throw KilnError("\(what): more than 3 spatial axes are not supported") }
    let g = Geometry3(geo)
    let planes = x.shape[0] * x.shape[1]
    let t = x.elementType
    let xs = x.floatValues
    var r = [Float](repeating: 0, count: planes * g.outSize)
    // Padded extent per axis (for count_include_pad, which counts pads but not ceil-mode overhang).
    let padEnd = [Int](repeating: 0, count: 3 - geo.input.count) + geo.padsEnd
    for plane in 0..<planes {
        let xin = plane * g.inSize
        for od in 0..<g.out[0] { for oh in 0..<g.out[1] { for ow in 0..<g.out[2] {
            var acc: Float = average ? 0 : -.infinity
            var count = 0, padCount = 1
            let o3 = [od, oh, ow]
            for ax in 0..<3 {
                // Window cells inside the padded input along this axis.
                let start = o3[ax] * g.s[ax] - g.p[ax]
                var inPadded = 0
                for kk in 0..<g.k[ax] {
                    let i = start + kk * g.d[ax]
                    if i >= -g.p[ax] && i < g.inp[ax] + padEnd[ax] { inPadded += 1 }
                }
                padCount *= inPadded
            }
            for kd in 0..<g.k[0] {
                let id = od * g.s[0] + kd * g.d[0] - g.p[0]
                if id < 0 || id >= g.inp[0] { continue }
                for kh in 0..<g.k[1] {
                    let ih = oh * g.s[1] + kh * g.d[1] - g.p[1]
                    if ih < 0 || ih >= g.inp[1] { continue }
                    for kw in 0..<g.k[2] {
                        let iw = ow * g.s[2] + kw * g.d[2] - g.p[2]
                        if iw < 0 || iw >= g.inp[2] { continue }
                        let v = xs[xin + (id * g.inp[1] + ih) * g.inp[2] + iw]
                        if average { acc += v } else if v > acc || v.isNaN { acc = v }
                        count += 1
                    }
                }
            }
            let o = plane * g.outSize + (od * g.out[1] + oh) * g.out[2] + ow
            if average {
                let div = p.countIncludePad ? padCount : count
                r[o] = div > 0 ? acc / Float(div) : 0
            } else {
                r[o] = acc
            }
        } } }
    }
    if t.isFloat { return Tensor(t, shape: shape, floats: r.map(t.roundFloat)) }
    return Tensor(t, shape: shape, ints: r.map { saturatingInt64($0) })
}

func globalPool(_ x: Tensor, average: Bool) -> Tensor {
    let planes = x.shape[0] * x.shape[1]
    let inner = shapeProduct(Array(x.shape.dropFirst(2)))
    let shape = Array(x.shape.prefix(2)) + [Int](repeating: 1, count: x.rank - 2)
    let t = x.elementType
    let xs = x.floatValues
    let r: [Float] = (0..<planes).map { p in
        let s = xs[(p * inner)..<((p + 1) * inner)]
        if average { return s.reduce(0, +) / Float(inner) }
        return s.reduce(-.infinity) { max($0, $1) }
    }
    if t.isFloat { return Tensor(t, shape: shape, floats: r.map(t.roundFloat)) }
    return Tensor(t, shape: shape, ints: r.map { saturatingInt64($0) })
}
