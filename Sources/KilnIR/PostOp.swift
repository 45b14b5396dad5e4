import Foundation

/// An operation fused onto the output of a convolution or matrix product, applied in order to
/// each element of the result (oneDNN's post-ops).
public enum PostOp: Sendable, Equatable, CustomStringConvertible {
    /// Adds the node's extra "addend" operand (the residual of a ResNet block), in place.
    case sum
    case relu
    case leakyRelu(alpha: Float)
    /// Clamps to [min, max] (ReLU6 is clip(0, 6)).
    case clip(min: Float, max: Float)
    case sigmoid
    case tanh
    case hardSwish
    case hardSigmoid(alpha: Float, beta: Float)
    /// x · sigmoid(x)
    case silu
    case gelu(tanhApproximation: Bool)
    /// Rounds to the grid of a per-tensor quantization and back, dequantize(quantize(x)): the
    /// QuantizeLinear/DequantizeLinear pair a quantized graph puts between a conv and the residual
    /// add fused into it (`fuseQuantizedSums`).
    case fakeQuantize(Quantization)

    public var description: String {
        switch self {
        case .sum: return "sum"
        case .relu: return "relu"
        case .leakyRelu(let a): return "leaky_relu(\(a))"
        case .clip(let lo, let hi): return "clip(\(lo), \(hi))"
        case .sigmoid: return "sigmoid"
        case .tanh: return "tanh"
        case .hardSwish: return "hard_swish"
        case .hardSigmoid(let a, let b): return "hard_sigmoid(\(a), \(b))"
        case .silu: return "silu"
        case .gelu(let t): return t ? "gelu_tanh" : "gelu"
        case .fakeQuantize(let q): return "fake_quantize(\(q))"
        }
    }

    /// The scalar function this post-op applies (nil for the sum and the fake quantization).
    public var function: ScalarFunction? {
        switch self {
        case .sum, .fakeQuantize: return nil
        case .relu: return .relu
        case .leakyRelu(let a): return .leakyRelu(alpha: a)
        case .clip(let lo, let hi): return .clip(min: lo, max: hi)
        case .sigmoid: return .sigmoid
        case .tanh: return .tanh
        case .hardSwish: return .hardSwish
        case .hardSigmoid(let a, let b): return .hardSigmoid(alpha: a, beta: b)
        case .silu: return .silu
        case .gelu(let t): return .gelu(tanhApproximation: t)
        }
    }

    /// The elementwise function (the identity for `.sum`, which needs the addend).
    public func apply(_ x: Float) -> Float {
        switch self {
        case .sum: return x
        case .fakeQuantize(let q): return q.dequantize(q.quantize(x))
        default: return function!.apply(x)
        }
    }

    /// The post-op an elementwise node is, when it can be fused (bounds must be constant).
    public static func from(_ op: Op, constants: [Tensor?]) -> PostOp? {
        switch op {
        case .unary(.relu): return .relu
        case .unary(.sigmoid): return .sigmoid
        case .unary(.tanh): return .tanh
        case .unary(.hardSwish): return .hardSwish
        case .leakyRelu(let a): return .leakyRelu(alpha: a)
        case .hardSigmoid(let a, let b): return .hardSigmoid(alpha: a, beta: b)
        case .gelu(let t): return .gelu(tanhApproximation: t)
        case .clip:
            let lo = constants.count > 1 ? constants[1] : nil, hi = constants.count > 2 ? constants[2] : nil
            return .clip(min: lo?.floats.first ?? -.infinity, max: hi?.floats.first ?? .infinity)
        default: return nil
        }
    }
}

/// A oneDNN 2.6 eltwise algorithm a post-op lowers to (the name after `algorithm::eltwise_`).
public enum OneDNNEltwise: String, Sendable, Equatable {
    case relu, clip, clipV2 = "clip_v2", linear, logistic, tanh, hardswish, swish
    case geluTanh = "gelu_tanh", geluErf = "gelu_erf"
    /// Round half to even (the CPU's default mode); `pow` with beta 1 is a second scaling, alpha · x.
    case round, pow
}

/// One entry of a oneDNN post-op list.
public enum OneDNNPostOp: Sendable, Equatable {
    /// dst = scale · (dst − zeroPoint) + result
    case sum(scale: Float = 1, zeroPoint: Int32 = 0)
    case eltwise(OneDNNEltwise, alpha: Float, beta: Float)
}

extension PostOp {
    /// This post-op as oneDNN eltwise steps (empty for `.sum`).
    var oneDNNSteps: [(OneDNNEltwise, Float, Float)] {
        switch self {
        case .sum: return []
        case .fakeQuantize(let q):
            let r = q.type.intRange, z = Float(q.zeroPoints[0])
            return [(.linear, 1 / q.scales[0], 0), (.round, 0, 0), (.clip, Float(r.lowerBound) - z, Float(r.upperBound) - z), (.pow, q.scales[0], 1)]
        default: return function!.oneDNN!
        }
    }

    /// The oneDNN post-op list for `ops`, or nil when oneDNN 2.6 cannot compute it correctly.
    ///
    /// oneDNN 2.6's JIT kernels keep one eltwise injector per algorithm, built from the first
    /// post-op of that algorithm: a second post-op of the same algorithm with other (alpha, beta)
    /// silently computes with the first one's (Conv → Clip(0, 6) → HardSigmoid lost its final
    /// clamp). Repeats with equal parameters are safe; a second distinct clip uses `clip_v2`, which
    /// computes the same forward function; anything else that would repeat an algorithm with other
    /// parameters has no correct lowering, so fusion must not build it.
    public static func oneDNNLowering(_ ops: [PostOp]) -> [OneDNNPostOp]? {
        distinctInjectors(ops.flatMap { p in p == .sum ? [.sum()] : p.oneDNNSteps.map { OneDNNPostOp.eltwise($0.0, alpha: $0.1, beta: $0.2) } })
    }

    /// `steps` with every eltwise algorithm used with one (alpha, beta) only (a second distinct
    /// clip as `clip_v2`), or nil when that cannot be (see `oneDNNLowering`).
    static func distinctInjectors(_ steps: [OneDNNPostOp]) -> [OneDNNPostOp]? {
        var used: [OneDNNEltwise: (Float, Float)] = [:]
        var out: [OneDNNPostOp] = []
        for step in steps {
            guard case .eltwise(let alg, let a, let b) = step else { out.append(step); continue }
            let candidates: [OneDNNEltwise] = alg == .clip ? [.clip, .clipV2] : [alg]
            guard let chosen = candidates.first(where: { c in used[c].map { $0 == (a, b) } ?? true }) else { return nil }
            used[chosen] = (a, b)
            out.append(.eltwise(chosen, alpha: a, beta: b))
        }
        return out
    }

    /// Whether applying this post-op commutes with multiplying by a positive factor.
    var isHomogeneous: Bool {
        switch self {
        case .sum, .relu, .leakyRelu: return true
        default: return false
        }
    }

    public var isFakeQuantize: Bool {
        if case .fakeQuantize = self { return true } else { return false }
    }
}

extension QuantizedConvAttributes {
    /// How oneDNN 2.6's int8 convolution computes this conv, or nil when it cannot
    /// (`oneDNNInt8Lowering`).
    public var oneDNNInt8PostOps: (factor: Float, postOps: [OneDNNPostOp])? {
        oneDNNInt8Lowering(conv.postOps, output: output, addend: addend)
    }
}

extension QuantizedMatMulAttributes {
    /// How oneDNN 2.6's int8 matmul computes this product, or nil when it cannot.
    public var oneDNNInt8PostOps: (factor: Float, postOps: [OneDNNPostOp])? {
        oneDNNInt8Lowering(postOps, output: output, addend: nil)
    }
}

/// How a oneDNN 2.6 int8 primitive (convolution or matmul) applies `postOps` to real values.
/// oneDNN adds the bias to the s32 accumulator, multiplies by the output scales, applies the
/// post-ops, adds the destination's zero point and saturates. With output scales
/// s_x·s_w[oc]·`factor` and the bias divided by s_x·s_w[oc], the post-ops see real values when
/// `factor` is 1; a quantized output then needs a final `linear(1/s_y)`, unless every post-op
/// commutes with a positive scale (sum, ReLU, leaky ReLU): then `factor` is 1/s_y and the sum's
/// scale is divided by s_y too. Nil when oneDNN cannot compute the list.
public func oneDNNInt8Lowering(_ postOps: [PostOp], output: Quantization?, addend: Quantization?) -> (factor: Float, postOps: [OneDNNPostOp])? {
    var postOps = postOps
    // A final ReLU or clip that the output's saturation already applies goes: quantize(relu(x))
    // is quantize(x) when the zero point is the type's minimum, and quantize(clip(x, lo, hi)) is
    // quantize(x) when [lo, hi] covers the representable range (a quarter step of margin for the
    // rounding of the products). Then the rest may lower without the final rescaling.
    if let out = output, out.isPerTensor {
        let s = out.scales[0], z = Float(out.zeroPoints[0])
        let r = out.type.intRange
        let low = (Float(r.lowerBound) - z + 0.25) * s, high = (Float(r.upperBound) - z - 0.25) * s
        while let last = postOps.last {
            if last == .relu, 0 <= low {
                postOps.removeLast()
            } else if case .clip(let lo, let hi) = last, lo <= low, hi >= high {
                postOps.removeLast()
            } else {
                break
            }
        }
    }
    if let i = postOps.firstIndex(where: \.isFakeQuantize) { return fakeQuantizedInt8Lowering(postOps, at: i, output: output, addend: addend) }
    guard var ops = PostOp.oneDNNLowering(postOps) else { return nil }
    let addendScale = addend?.scales[0] ?? 1, addendZero = addend?.zeroPoints[0] ?? 0
    let sumIndex = ops.firstIndex(of: .sum())
    guard let out = output else {
        if let k = sumIndex { ops[k] = .sum(scale: addendScale, zeroPoint: addendZero) }
        return (1, ops)
    }
    let inverse = 1 / out.scales[0]
    if postOps.allSatisfy(\.isHomogeneous) {
        if let k = sumIndex { ops[k] = .sum(scale: addendScale * inverse, zeroPoint: addendZero) }
        return (inverse, ops)
    }
    guard !ops.contains(where: { if case .eltwise(.linear, _, _) = $0 { return true } else { return false } }) else { return nil }
    if let k = sumIndex { ops[k] = .sum(scale: addendScale, zeroPoint: addendZero) }
    return (1, ops + [.eltwise(.linear, alpha: inverse, beta: 0)])
}

/// `oneDNNInt8Lowering` of a list with a fake quantization (s_q, z_q) at `i`: the output scales
/// bring the accumulator to units of s_q (factor 1/s_q), where the post-ops before it (which must
/// commute with a positive factor, no sum) apply; `round` and `clip(lo − z_q, hi − z_q)` put it on
/// the grid. The rest runs from there: after a `linear(s_q/s_y)` in the output's units when all of
/// it commutes with a positive factor (the sum's scale divided by s_y), else after a `linear(s_q)`
/// on real values, with a final `pow(1/s_y, 1)` (a second scaling) for a quantized output.
private func fakeQuantizedInt8Lowering(_ postOps: [PostOp], at i: Int, output: Quantization?, addend: Quantization?) -> (factor: Float, postOps: [OneDNNPostOp])? {
    guard case .fakeQuantize(let fq) = postOps[i], fq.isPerTensor else { return nil }
    let before = postOps[..<i], after = postOps[(i + 1)...]
    guard before.allSatisfy({ $0.isHomogeneous && $0 != .sum }), !after.contains(where: \.isFakeQuantize) else { return nil }
    func steps(_ p: PostOp) -> [OneDNNPostOp] { p.oneDNNSteps.map { .eltwise($0.0, alpha: $0.1, beta: $0.2) } }
    let r = fq.type.intRange, z = Float(fq.zeroPoints[0]), s = fq.scales[0]
    var ops = before.flatMap(steps) + [.eltwise(.round, alpha: 0, beta: 0), .eltwise(.clip, alpha: Float(r.lowerBound) - z, beta: Float(r.upperBound) - z)]
    let homogeneous = after.allSatisfy(\.isHomogeneous)
    let unit = homogeneous ? 1 / (output?.scales[0] ?? 1) : 1
    ops.append(.eltwise(.linear, alpha: s * unit, beta: 0))
    for p in after {
        ops += p == .sum ? [.sum(scale: (addend?.scales[0] ?? 1) * unit, zeroPoint: addend?.zeroPoints[0] ?? 0)] : steps(p)
    }
    if !homogeneous, let o = output { ops.append(.eltwise(.pow, alpha: 1 / o.scales[0], beta: 1)) }
    guard let distinct = PostOp.distinctInjectors(ops) else { return nil }
    return (1 / s, distinct)
}
