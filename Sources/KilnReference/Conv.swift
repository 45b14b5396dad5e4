import Foundation
import KilnIR

extension NodeEvaluation {
    /// The reference of the Conv family's ops (`OpFamily.conv`).
    func evaluateConv() throws -> [Tensor] {
        switch node.op {
        case .conv(let a):
            return [applyPostOps(a.postOps, try conv(x(0), x(1), opt(2), a, out: shape, what), addend: opt(3))]
        case .convTranspose(let a):
            return [applyPostOps(a.conv.postOps, try convTranspose(x(0), x(1), opt(2), a, out: shape, what), addend: nil)]
        default: preconditionFailure("\(node.op.name) is not of the conv family")
        }
    }
}

func conv(_ x: Tensor, _ w: Tensor, _ b: Tensor?, _ a: ConvAttributes, out shape: [Int], _ what: String) throws -> Tensor {
    let t = x.elementType
    let bs = b?.floatValues
    let result = try directConv(x.floats, w.floats, xShape: x.shape, wShape: w.shape, bias: { bs?[$0] ?? 0 }, a, out: shape, what)
    return Tensor(t, shape: shape, floats: t == .f32 ? result : result.map(t.roundFloat))
}

/// ONNX ConvInteger: conv(x − x_zero_point, w − w_zero_point) in 64-bit integers, as s32.
func convInteger(_ x: Tensor, _ w: Tensor, _ xz: Tensor?, _ wz: Tensor?, _ a: ConvAttributes, out shape: [Int], _ what: String) throws -> Tensor {
    let zx = xz?.ints[0] ?? 0
    let perChannel = (wz?.count ?? 1) > 1, k = shapeProduct(Array(w.shape.dropFirst()))
    let xs = x.ints.map { $0 - zx }
    let ws = w.ints.indices.map { i in w.ints[i] - (wz.map { perChannel ? $0.ints[i / k] : $0.ints[0] } ?? 0) }
    let result = try directConv(xs, ws, xShape: x.shape, wShape: w.shape, bias: { _ in 0 }, a, out: shape, what)
    return Tensor(.s32, shape: shape, ints: result.map(ElementType.s32.wrap))
}

/// The direct convolution of x (N×C×spatial) by w (M×C/group×kernel), plus bias(oc), in T.
private func directConv<T: Numeric & Sendable>(_ xs: [T], _ ws: [T], xShape: [Int], wShape: [Int], bias: (Int) -> T, _ a: ConvAttributes,
                                    out shape: [Int], _ what: String) throws -> [T] {
    let geo = try windowGeometry(input: Array(xShape.dropFirst(2)), kernel: Array(wShape.dropFirst(2)), strides: a.strides,
                                 pads: a.pads, dilations: a.dilations, autoPad: a.autoPad, what)
    guard geo.input.count <= 3 else { throw KilnError("\(what): convolutions over more than 3 spatial axes are not supported") }
    let g = Geometry3(geo)
    let n = xShape[0], c = xShape[1], m = wShape[0], groups = a.group
    let cg = c / groups, mg = m / groups
    var result = [T](repeating: 0, count: shapeProduct(shape))
    let biases = (0..<m).map(bias)
    result.withUnsafeMutableBufferPointer { out in
        let outBase = out.baseAddress!
        xs.withUnsafeBufferPointer { xp in
            ws.withUnsafeBufferPointer { wp in
                parallelFor(n * m) { job in
                    let batch = job / m, oc = job % m, grp = oc / mg
                    let o = outBase + job * g.outSize
                    for i in 0..<g.outSize { o[i] = biases[oc] }
                    for icg in 0..<cg {
                        let ic = grp * cg + icg
                        let xin = xp.baseAddress! + (batch * c + ic) * g.inSize
                        let wk = wp.baseAddress! + (oc * cg + icg) * g.kSize
                        for kd in 0..<g.k[0] { for kh in 0..<g.k[1] { for kw in 0..<g.k[2] {
                            let wv = wk[(kd * g.k[1] + kh) * g.k[2] + kw]
                            for od in 0..<g.out[0] {
                                let id = od * g.s[0] + kd * g.d[0] - g.p[0]
                                if id < 0 || id >= g.inp[0] { continue }
                                for oh in 0..<g.out[1] {
                                    let ih = oh * g.s[1] + kh * g.d[1] - g.p[1]
                                    if ih < 0 || ih >= g.inp[1] { continue }
                                    let row = xin + (id * g.inp[1] + ih) * g.inp[2]
                                    let orow = o + (od * g.out[1] + oh) * g.out[2]
                                    for ow in 0..<g.out[2] {
                                        let iw = ow * g.s[2] + kw * g.d[2] - g.p[2]
                                        if iw >= 0 && iw < g.inp[2] { orow[ow] += wv * row[iw] }
                                    }
                                }
                            }
                        } } }
                    }
                }
            }
        }
    }
    return result
}

func convTranspose(_ x: Tensor, _ w: Tensor, _ b: Tensor?, _ a: ConvTransposeAttributes, out shape: [Int],
                   _ what: String) throws -> Tensor {
    let geo = try convTransposeGeometry(input: Array(x.shape.dropFirst(2)), kernel: Array(w.shape.dropFirst(2)), attributes: a, what)
    guard geo.input.count <= 3 else { throw KilnError("\(what): more than 3 spatial axes are not supported") }
    let g = Geometry3(geo)
    let n = x.shape[0], c = x.shape[1], groups = a.conv.group
    let cg = c / groups, mg = w.shape[1], m = mg * groups
    let t = x.elementType
    var result = [Float](repeating: 0, count: shapeProduct(shape))
    let xs = x.floats, ws = w.floats, bs = b?.floatValues
    result.withUnsafeMutableBufferPointer { out in
        let outBase = out.baseAddress!
        parallelFor(n * m) { job in
            let batch = job / m, oc = job % m, grp = oc / mg, ocg = oc % mg
            let o = outBase + job * g.outSize
            let bias = bs?[oc] ?? 0
            for i in 0..<g.outSize { o[i] = bias }
            for icg in 0..<cg {
                let ic = grp * cg + icg
                let xoff = (batch * c + ic) * g.inSize
                let woff = (ic * mg + ocg) * g.kSize
                for id in 0..<g.inp[0] { for ih in 0..<g.inp[1] { for iw in 0..<g.inp[2] {
                    let xv = xs[xoff + (id * g.inp[1] + ih) * g.inp[2] + iw]
                    for kd in 0..<g.k[0] {
                        let od = id * g.s[0] + kd * g.d[0] - g.p[0]
                        if od < 0 || od >= g.out[0] { continue }
                        for kh in 0..<g.k[1] {
                            let oh = ih * g.s[1] + kh * g.d[1] - g.p[1]
                            if oh < 0 || oh >= g.out[1] { continue }
                            for kw in 0..<g.k[2] {
                                let ow = iw * g.s[2] + kw * g.d[2] - g.p[2]
                                if ow < 0 || ow >= g.out[2] { continue }
                                o[(od * g.out[1] + oh) * g.out[2] + ow] += xv * ws[woff + (kd * g.k[1] + kh) * g.k[2] + kw]
                            }
                        }
                    }
                } } }
            }
        }
    }
    return Tensor(t, shape: shape, floats: t == .f32 ? result : result.map(t.roundFloat))
}
