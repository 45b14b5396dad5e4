import Foundation
import KilnIR

extension NodeEvaluation {
    /// The reference of the Normalize family's ops (`OpFamily.normalize`).
    func evaluateNormalize() throws -> [Tensor] {
        switch node.op {
        case .batchNormalization(let eps):
            return [batchNorm(x(0), x(1), x(2), x(3), x(4), eps)]
        case .channelScaleShift(let postOps):
            let c = x(0).shape[1], inner = shapeProduct(Array(x(0).shape.dropFirst(2)))
            var r = x(0)
            for i in 0..<r.floats.count {
                let ch = (i / inner) % c
                r.floats[i] = r.elementType.roundFloat(r.floats[i] * x(1).floats[ch] + x(2).floats[ch])
            }
            return [applyPostOps(postOps, r, addend: nil)]
        case .softmax(let axis, let legacy):
            return [softmax(x(0), axis: try normalizeAxis(axis, rank: shape.count, what), legacy: legacy, log: false)]
        case .logSoftmax(let axis, let legacy):
            return [softmax(x(0), axis: try normalizeAxis(axis, rank: shape.count, what), legacy: legacy, log: true)]
        case .instanceNormalization(let eps):
            return [instanceNorm(x(0), x(1), x(2), eps: eps)]
        case .layerNormalization(let axis, let eps):
            let r = layerNorm(x(0), x(1), opt(2), axis: try normalizeAxis(axis, rank: shape.count, what), eps: eps)
            return Array([r.y, r.mean, r.invStdDev].prefix(node.outputs.count))
        default: preconditionFailure("\(node.op.name) is not of the normalize family")
        }
    }
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
