import Foundation

/// Every elementwise function of one float that Kiln computes, each defined once: its value (what
/// the reference interpreter and constant folding compute), its C++ expression of the float `v`
/// (what generated loops, post-op functors and u8 tables compute), its oneDNN eltwise steps where
/// a oneDNN primitive applies it as a post-op, and whether it is worth a 256-entry table on 8-bit
/// inputs. Ops (`Op.scalarFunction`) and post-ops (`PostOp.function`) map onto it.
public enum ScalarFunction: Sendable, Equatable {
    case relu
    case leakyRelu(alpha: Float)
    /// Clamps to [min, max]; NaN stays NaN.
    case clip(min: Float, max: Float)
    case sigmoid, tanh, erf, exp, log, sqrt, neg, abs, reciprocal, floor
    /// log(1 + eˣ)
    case softplus
    /// x · tanh(softplus(x))
    case mish
    /// x · max(0, min(1, x/6 + 1/2))
    case hardSwish
    /// max(0, min(1, alpha·x + beta))
    case hardSigmoid(alpha: Float, beta: Float)
    /// x · sigmoid(x)
    case silu
    /// x·Φ(x) with the erf form, or its tanh approximation
    case gelu(tanhApproximation: Bool)
    /// x > 0 ? x : alpha·(eˣ − 1)
    case elu(alpha: Float)
    /// gamma · (x > 0 ? x : alpha·(eˣ − 1))
    case selu(alpha: Float, gamma: Float)

    /// The function's value, in the precision the reference computes it in.
    public func apply(_ x: Float) -> Float {
        switch self {
        case .relu: return x > 0 ? x : 0
        case .leakyRelu(let a): return x < 0 ? a * x : x
        case .clip(let lo, let hi): return x.isNaN ? x : min(max(x, lo), hi)
        case .sigmoid: return Float(1 / (1 + Foundation.exp(-Double(x))))
        case .tanh: return Foundation.tanh(x)
        case .erf: return Float(Foundation.erf(Double(x)))
        case .exp: return Foundation.exp(x)
        case .log: return Foundation.log(x)
        case .sqrt: return x.squareRoot()
        case .neg: return -x
        case .abs: return Swift.abs(x)
        case .reciprocal: return 1 / x
        case .floor: return x.rounded(.down)
        case .softplus: return Float(Foundation.log1p(Foundation.exp(Double(x))))
        case .mish: return Float(Double(x) * Foundation.tanh(Foundation.log1p(Foundation.exp(Double(x)))))
        case .hardSwish: return x * max(0, min(1, x / 6 + 0.5))
        case .hardSigmoid(let a, let b): return max(0, min(1, a * x + b))
        case .silu: return Float(Double(x) / (1 + Foundation.exp(-Double(x))))
        case .gelu(let t):
            if t {
                let c = Float((2.0 / Double.pi).squareRoot())
                return 0.5 * x * (1 + Foundation.tanh(c * (x + 0.044715 * x * x * x)))
            }
            return Float(0.5 * Double(x) * (1 + Foundation.erf(Double(x) / 2.0.squareRoot())))
        case .elu(let a): return x > 0 ? x : Float(Double(a) * Foundation.expm1(Double(x)))
        case .selu(let a, let g): return Float(Double(g) * (x > 0 ? Double(x) : Double(a) * Foundation.expm1(Double(x))))
        }
    }

    /// The function as a C++ expression of the float `v` (the kiln:: functions are in
    /// include/kiln/elementwise.hpp).
    public var cpp: String {
        switch self {
        case .relu: return "v > 0 ? v : 0.0f"
        case .leakyRelu(let a): return "v < 0 ? \(floatLiteral(a)) * v : v"
        case .clip(let lo, let hi): return "std::isnan(v) ? v : std::min(std::max(v, \(floatLiteral(lo))), \(floatLiteral(hi)))"
        case .sigmoid: return "kiln::sigmoid_f(v)"
        case .tanh: return "kiln::tanh_f(v)"
        case .erf: return "(float)std::erf((double)v)"
        case .exp: return "kiln::exp_f(v)"
        case .log: return "std::log(v)"
        case .sqrt: return "std::sqrt(v)"
        case .neg: return "-v"
        case .abs: return "std::fabs(v)"
        case .reciprocal: return "1.0f / v"
        case .floor: return "std::floor(v)"
        case .softplus: return "(float)std::log1p(std::exp((double)v))"
        case .mish: return "(float)((double)v * std::tanh(std::log1p(std::exp((double)v))))"
        case .hardSwish: return "v * std::max(0.0f, std::min(1.0f, v / 6.0f + 0.5f))"
        case .hardSigmoid(let a, let b): return "std::max(0.0f, std::min(1.0f, \(floatLiteral(a)) * v + \(floatLiteral(b))))"
        case .silu: return "kiln::silu_f(v)"
        case .gelu(let t): return t ? "0.5f * v * (1.0f + kiln::tanh_f(0.7978845608f * (v + 0.044715f * v * v * v)))" : "kiln::gelu_erf_f(v)"
        case .elu(let a): return "v > 0 ? v : (float)(\(Double(a)) * std::expm1((double)v))"
        case .selu(let a, let g): return "(float)(\(Double(g)) * (v > 0 ? (double)v : \(Double(a)) * std::expm1((double)v)))"
        }
    }

    /// The oneDNN 2.6 eltwise steps (algorithm, alpha, beta) that compute the function as a
    /// post-op, or nil where Kiln does not fuse it into a oneDNN primitive.
    public var oneDNN: [(OneDNNEltwise, Float, Float)]? {
        switch self {
        case .relu: return [(.relu, 0, 0)]
        case .leakyRelu(let a): return [(.relu, a, 0)]
        case .clip(let lo, let hi): return [(.clip, lo, hi)]
        case .sigmoid: return [(.logistic, 0, 0)]
        case .tanh: return [(.tanh, 0, 0)]
        case .hardSwish: return [(.hardswish, 0, 0)]
        case .hardSigmoid(let a, let b): return [(.linear, a, b), (.clip, 0, 1)]
        case .silu: return [(.swish, 1, 0)]
        case .gelu(let t): return [(t ? .geluTanh : .geluErf, 0, 0)]
        case .erf, .exp, .log, .sqrt, .neg, .abs, .reciprocal, .floor, .softplus, .mish, .elu, .selu: return nil
        }
    }

    /// Whether it calls exp, tanh, erf or log: on 8-bit inputs a 256-entry table, computed once by
    /// the same expression, is cheaper than the call.
    public var isTranscendental: Bool {
        switch self {
        case .sigmoid, .tanh, .erf, .exp, .log, .softplus, .mish, .silu, .gelu, .elu, .selu: return true
        case .relu, .leakyRelu, .clip, .sqrt, .neg, .abs, .reciprocal, .floor, .hardSwish, .hardSigmoid: return false
        }
    }

    /// The floating-point function of a unary op (nil for Not, which is logical).
    public init?(_ u: UnaryOp) {
        switch u {
        case .relu: self = .relu
        case .sigmoid: self = .sigmoid
        case .tanh: self = .tanh
        case .erf: self = .erf
        case .exp: self = .exp
        case .log: self = .log
        case .sqrt: self = .sqrt
        case .neg: self = .neg
        case .abs: self = .abs
        case .reciprocal: self = .reciprocal
        case .floor: self = .floor
        case .hardSwish: self = .hardSwish
        case .softplus: self = .softplus
        case .mish: self = .mish
        case .not: return nil
        }
    }
}

extension Op {
    /// The scalar function an elementwise op of one operand computes on floats (nil for Clip,
    /// whose bounds are operands, and for every other op).
    public var scalarFunction: ScalarFunction? {
        switch self {
        case .unary(let u): return ScalarFunction(u)
        case .leakyRelu(let a): return .leakyRelu(alpha: a)
        case .elu(let a): return .elu(alpha: a)
        case .selu(let a, let g): return .selu(alpha: a, gamma: g)
        case .hardSigmoid(let a, let b): return .hardSigmoid(alpha: a, beta: b)
        case .gelu(let t): return .gelu(tanhApproximation: t)
        default: return nil
        }
    }
}

/// A C++ float literal of `f` (NAN and ±INFINITY for the values without one).
public func floatLiteral(_ f: Float) -> String {
    if f.isNaN { return "NAN" }
    if f.isInfinite { return f > 0 ? "INFINITY" : "-INFINITY" }
    return "\(f)f"
}
