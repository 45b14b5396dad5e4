import Foundation
import KilnIR

/// Spatial geometry padded to three axes (D, H, W) so that 1-D, 2-D and 3-D share one loop nest.
private struct Geometry3 {
    var inp: [Int], out: [Int], k: [Int], s: [Int], d: [Int], p: [Int]
    init(_ g: WindowGeometry) {
        let pad = 3 - g.input.count
        func ext(_ a: [Int], _ v: Int) -> [Int] { [Int](repeating: v, count: pad) + a }
        inp = ext(g.input, 1); out = ext(g.output, 1); k = ext(g.kernel, 1)
        s = ext(g.strides, 1); d = ext(g.dilations, 1); p = ext(g.padsBegin, 0)
    }
    var inSize: Int { inp[0] * inp[1] * inp[2] }
    var outSize: Int { out[0] * out[1] * out[2] }
    var kSize: Int { k[0] * k[1] * k[2] }
}

/// Runs `body(i)` for i in 0..<n on all cores.
private func parallelFor(_ n: Int, _ body: (Int) -> Void) {
    if n <= 1 { for i in 0..<n { body(i) }; return }
    DispatchQueue.concurrentPerform(iterations: n, execute: body)
}

func conv(_ x: Tensor, _ w: Tensor, _ b: Tensor?, _ a: ConvAttributes, out shape: [Int], _ what: String) throws -> Tensor {
    let geo = try windowGeometry(input: Array(x.shape.dropFirst(2)), kernel: Array(w.shape.dropFirst(2)), strides: a.strides,
                                 pads: a.pads, dilations: a.dilations, autoPad: a.autoPad, what)
    guard geo.input.count <= 3 else { throw KilnError("\(what): convolutions over more than 3 spatial axes are not supported") }
    let g = Geometry3(geo)
    let n = x.shape[0], c = x.shape[1], m = w.shape[0], groups = a.group
    let cg = c / groups, mg = m / groups
    let t = x.elementType
    var result = [Float](repeating: 0, count: shapeProduct(shape))
    let xs = x.floats, ws = w.floats, bs = b?.floatValues
    result.withUnsafeMutableBufferPointer { out in
        let outBase = out.baseAddress!
        xs.withUnsafeBufferPointer { xp in
            ws.withUnsafeBufferPointer { wp in
                parallelFor(n * m) { job in
                    let batch = job / m, oc = job % m, grp = oc / mg
                    let o = outBase + job * g.outSize
                    let bias = bs?[oc] ?? 0
                    for i in 0..<g.outSize { o[i] = bias }
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
    return Tensor(t, shape: shape, floats: t == .f32 ? result : result.map(t.roundFloat))
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

func batchNorm(_ x: Tensor, _ scale: Tensor, _ bias: Tensor, _ mean: Tensor, _ variance: Tensor, _ eps: Float) -> Tensor {
    let c = x.shape[1]
    let inner = shapeProduct(Array(x.shape.dropFirst(2)))
    let t = x.elementType
    var r = x.floats
    for i in 0..<r.count {
        let ch = (i / inner) % c
        let inv = 1 / (variance.floats[ch] + eps).squareRoot()
        r[i] = t.roundFloat((r[i] - mean.floats[ch]) * inv * scale.floats[ch] + bias.floats[ch])
    }
    return Tensor(t, shape: x.shape, floats: r)
}

/// C[m][n] += sum_k A[m][k] * B[k][n] for row-major A (M×K, or K×M when transA) and B.
private func matmulKernel(_ a: UnsafePointer<Float>, _ b: UnsafePointer<Float>, _ c: UnsafeMutablePointer<Float>,
                          m: Int, n: Int, k: Int, transA: Bool, transB: Bool) {
    for i in 0..<m {
        let crow = c + i * n
        for kk in 0..<k {
            let av = transA ? a[kk * m + i] : a[i * k + kk]
            if av == 0 { continue }
            if transB {
                for j in 0..<n { crow[j] += av * b[j * k + kk] }
            } else {
                let brow = b + kk * n
                for j in 0..<n { crow[j] += av * brow[j] }
            }
        }
    }
}

func gemm(_ a: Tensor, _ b: Tensor, _ c: Tensor?, _ attrs: GemmAttributes, out shape: [Int]) -> Tensor {
    let m = shape[0], n = shape[1]
    let k = attrs.transA ? a.shape[0] : a.shape[1]
    let t = a.elementType
    if !t.isFloat {
        var r = [Int64](repeating: 0, count: m * n)
        for i in 0..<m { for j in 0..<n {
            var acc: Int64 = 0
            for kk in 0..<k {
                let av = attrs.transA ? a.ints[kk * m + i] : a.ints[i * k + kk]
                let bv = attrs.transB ? b.ints[j * k + kk] : b.ints[kk * n + j]
                acc = acc &+ av &* bv
            }
            r[i * n + j] = acc
        } }
        if let c { let ci = broadcastIndex(c.shape, to: shape); for i in 0..<r.count { r[i] = r[i] &+ c.ints[ci?[i] ?? i] } }
        return Tensor(t, shape: shape, ints: r.map(t.wrap))
    }
    var r = [Float](repeating: 0, count: m * n)
    a.floats.withUnsafeBufferPointer { pa in
        b.floats.withUnsafeBufferPointer { pb in
            r.withUnsafeMutableBufferPointer { pr in
                let base = pr.baseAddress!
                let rows = max(1, min(m, 64))
                let chunk = (m + rows - 1) / rows
                parallelFor(rows) { part in
                    let lo = part * chunk, hi = min(m, lo + chunk)
                    if lo >= hi { return }
                    let aStart = attrs.transA ? pa.baseAddress! + lo : pa.baseAddress! + lo * k
                    if attrs.transA {
                        // Column slice of a K×M matrix: handle element-wise.
                        for i in lo..<hi { for kk in 0..<k {
                            let av = pa[kk * m + i]
                            for j in 0..<n { base[i * n + j] += av * (attrs.transB ? pb[j * k + kk] : pb[kk * n + j]) }
                        } }
                    } else {
                        matmulKernel(aStart, pb.baseAddress!, base + lo * n, m: hi - lo, n: n, k: k, transA: false, transB: attrs.transB)
                    }
                }
            }
        }
    }
    for i in 0..<r.count { r[i] *= attrs.alpha }
    if let c, attrs.beta != 0 {
        let ci = broadcastIndex(c.shape, to: shape)
        for i in 0..<r.count { r[i] += attrs.beta * c.floats[ci?[i] ?? i] }
    }
    return Tensor(t, shape: shape, floats: r.map(t.roundFloat))
}

func matMul(_ a: Tensor, _ b: Tensor, out: TensorType) -> Tensor {
    let a2 = a.rank == 1 ? [1, a.shape[0]] : a.shape
    let b2 = b.rank == 1 ? [b.shape[0], 1] : b.shape
    let m = a2[a2.count - 2], k = a2[a2.count - 1], n = b2[b2.count - 1]
    let batch = try! broadcastShapes([Array(a2.dropLast(2)), Array(b2.dropLast(2))], "matmul")
    let nb = shapeProduct(batch)
    let ia = broadcastIndex(Array(a2.dropLast(2)), to: batch), ib = broadcastIndex(Array(b2.dropLast(2)), to: batch)
    let t = out.elementType
    let shape = out.shape!
    if !t.isFloat {
        var r = [Int64](repeating: 0, count: nb * m * n)
        for bi in 0..<nb {
            let ao = (ia?[bi] ?? bi) * m * k, bo = (ib?[bi] ?? bi) * k * n
            for i in 0..<m { for j in 0..<n {
                var acc: Int64 = 0
                for kk in 0..<k { acc = acc &+ a.ints[ao + i * k + kk] &* b.ints[bo + kk * n + j] }
                r[(bi * m + i) * n + j] = t.wrap(acc)
            } }
        }
        return Tensor(t, shape: shape, ints: r)
    }
    var r = [Float](repeating: 0, count: nb * m * n)
    a.floats.withUnsafeBufferPointer { pa in
        b.floats.withUnsafeBufferPointer { pb in
            r.withUnsafeMutableBufferPointer { pr in
                let base = pr.baseAddress!
                parallelFor(nb) { bi in
                    let ao = (ia?[bi] ?? bi) * m * k, bo = (ib?[bi] ?? bi) * k * n
                    matmulKernel(pa.baseAddress! + ao, pb.baseAddress! + bo, base + bi * m * n, m: m, n: n, k: k,
                                 transA: false, transB: false)
                }
            }
        }
    }
    return Tensor(t, shape: shape, floats: t == .f32 ? r : r.map(t.roundFloat))
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

func softmax(_ x: Tensor, axis: Int, legacy: Bool, log: Bool) -> Tensor {
    // Legacy form: coerce to 2-D and normalize over everything from `axis` on.
    let outer: Int, len: Int, inner: Int
    if legacy {
        outer = shapeProduct(Array(x.shape.prefix(axis)))
        len = shapeProduct(Array(x.shape.dropFirst(axis)))
        inner = 1
    } else {
        outer = shapeProduct(Array(x.shape.prefix(axis)))
        len = x.shape[axis]
        inner = shapeProduct(Array(x.shape.dropFirst(axis + 1)))
    }
    let t = x.elementType
    var r = x.floats
    for o in 0..<outer { for i in 0..<inner {
        var mx = -Float.infinity
        for l in 0..<len { mx = max(mx, r[(o * len + l) * inner + i]) }
        var sum: Double = 0
        for l in 0..<len { sum += Foundation.exp(Double(r[(o * len + l) * inner + i] - mx)) }
        for l in 0..<len {
            let k = (o * len + l) * inner + i
            let v = Double(r[k] - mx)
            r[k] = t.roundFloat(Float(log ? v - Foundation.log(sum) : Foundation.exp(v) / sum))
        }
    } }
    return Tensor(t, shape: x.shape, floats: r)
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

func layerNorm(_ x: Tensor, _ scale: Tensor, _ bias: Tensor?, axis: Int, eps: Float) -> (y: Tensor, mean: Tensor, invStdDev: Tensor) {
    let outer = shapeProduct(Array(x.shape.prefix(axis)))
    let len = shapeProduct(Array(x.shape.dropFirst(axis)))
    let normShape = Array(x.shape.dropFirst(axis))
    let si = broadcastIndex(scale.shape, to: normShape)
    let bi = bias.flatMap { broadcastIndex($0.shape, to: normShape) }
    let t = x.elementType
    var r = x.floats
    var means = [Float](repeating: 0, count: outer), invs = means
    for o in 0..<outer {
        var mean: Double = 0
        for l in 0..<len { mean += Double(r[o * len + l]) }
        mean /= Double(len)
        var variance: Double = 0
        for l in 0..<len { let d = Double(r[o * len + l]) - mean; variance += d * d }
        variance /= Double(len)
        let inv = 1 / (variance + Double(eps)).squareRoot()
        means[o] = Float(mean)
        invs[o] = Float(inv)
        for l in 0..<len {
            let k = o * len + l
            var v = Float((Double(r[k]) - mean) * inv) * scale.floats[si?[l] ?? l]
            if let bias { v += bias.floats[bi?[l] ?? l] }
            r[k] = t.roundFloat(v)
        }
    }
    let statShape = Array(x.shape.prefix(axis)) + [Int](repeating: 1, count: x.rank - axis)
    return (Tensor(t, shape: x.shape, floats: r), Tensor(.f32, shape: statShape, floats: means),
            Tensor(.f32, shape: statShape, floats: invs))
}

/// InstanceNormalization: each (n, c) plane normalized by its own mean and variance (in double),
/// then y = scale[c] · x̂ + B[c].
func instanceNorm(_ x: Tensor, _ scale: Tensor, _ bias: Tensor, eps: Float) -> Tensor {
    let c = x.shape[1], inner = shapeProduct(Array(x.shape.dropFirst(2)))
    let planes = x.count / max(inner, 1)
    let v = x.floats, sc = scale.floatValues, b = bias.floatValues
    var y = [Float](repeating: 0, count: x.count)
    for p in 0..<planes where inner > 0 {
        let base = p * inner
        var mean = 0.0
        for k in 0..<inner { mean += Double(v[base + k]) }
        mean /= Double(inner)
        var variance = 0.0
        for k in 0..<inner { let d = Double(v[base + k]) - mean; variance += d * d }
        variance /= Double(inner)
        let inv = 1 / (variance + Double(eps)).squareRoot()
        let ch = p % c
        for k in 0..<inner {
            y[base + k] = x.elementType.roundFloat(Float((Double(v[base + k]) - mean) * inv * Double(sc[ch]) + Double(b[ch])))
        }
    }
    return Tensor(x.elementType, shape: x.shape, floats: y)
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
