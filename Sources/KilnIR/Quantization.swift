/// How a quantized integer tensor stands for real values: `real = (q − zeroPoint) · scale`, and
/// `q = saturate(round_half_to_even(real / scale) + zeroPoint)` (ONNX's QuantizeLinear), with one
/// scale and zero point for the whole tensor or one per index of `axis`.
public struct Quantization: Sendable, Equatable, CustomStringConvertible {
    /// u8 or s8.
    public var type: ElementType
    public var scales: [Float]
    /// One per scale.
    public var zeroPoints: [Int32]
    /// The axis the parameters run along when there is more than one (ignored per tensor).
    public var axis: Int

    public init(_ type: ElementType, scales: [Float], zeroPoints: [Int32], axis: Int = 0) {
        precondition(scales.count == zeroPoints.count && !scales.isEmpty)
        self.type = type
        self.scales = scales
        self.zeroPoints = zeroPoints
        self.axis = axis
    }

    public static func perTensor(_ type: ElementType, scale: Float, zeroPoint: Int32) -> Quantization {
        Quantization(type, scales: [scale], zeroPoints: [zeroPoint])
    }

    public var isPerTensor: Bool { scales.count == 1 }
    /// Every zero point is 0.
    public var isSymmetric: Bool { zeroPoints.allSatisfy { $0 == 0 } }

    /// Parameter `k` (per tensor: always the one).
    public func scale(_ k: Int) -> Float { isPerTensor ? scales[0] : scales[k] }
    public func zeroPoint(_ k: Int) -> Int32 { isPerTensor ? zeroPoints[0] : zeroPoints[k] }

    /// The quantized value of `real` under parameter `k`.
    public func quantize(_ real: Float, _ k: Int = 0) -> Int64 {
        let q = (real / scale(k)).rounded(.toNearestOrEven)
        let v = Double(q) + Double(zeroPoint(k))
        if v.isNaN { return 0 }
        let r = type.intRange
        return min(max(saturatingInt64(v), r.lowerBound), r.upperBound)
    }

    /// The real value of `q` under parameter `k`.
    public func dequantize(_ q: Int64, _ k: Int = 0) -> Float {
        Float(q - Int64(zeroPoint(k))) * scale(k)
    }

    public var description: String {
        if isPerTensor { return "\(type)(s=\(scales[0]), z=\(zeroPoints[0]))" }
        let z = isSymmetric ? "z=0" : "z=\(zeroPoints)"
        return "\(type)(axis \(axis): \(scales.count) scales in [\(scales.min()!), \(scales.max()!)], \(z))"
    }
}

/// A convolution over quantized values, the form `dequantize → Conv → quantize` takes once
/// lowered: what it computes is `postOps(conv(dequantize(X), dequantize(W)) + B [+ addend])`,
/// quantized by `output`, or left in f32 when `output` is nil.
public struct QuantizedConvAttributes: Sendable, Equatable {
    /// Geometry, group and post-ops; the post-ops apply to real values, `.sum` adds the addend's.
    public var conv: ConvAttributes
    /// The source's parameters (per tensor).
    public var input: Quantization
    /// The weights' parameters: s8, symmetric, per tensor or per output channel (axis 0).
    public var weights: Quantization
    /// The result's parameters (per tensor), or nil for an f32 result.
    public var output: Quantization?
    /// The addend's parameters when it is quantized (per tensor, the output's type), nil when f32.
    public var addend: Quantization?

    public init(conv: ConvAttributes, input: Quantization, weights: Quantization, output: Quantization?, addend: Quantization? = nil) {
        self.conv = conv
        self.input = input
        self.weights = weights
        self.output = output
        self.addend = addend
    }
}

/// A matrix product over quantized values, the form `dequantize → MatMul/Gemm → quantize` takes
/// once lowered: `postOps(dequantize(A) · dequantize(B) + bias)`, quantized by `output`, or f32
/// when `output` is nil. A is [..., M, K]; B is constant [K, N]; the bias is [N].
public struct QuantizedMatMulAttributes: Sendable, Equatable {
    /// The source's parameters (per tensor).
    public var input: Quantization
    /// The weights' parameters: s8, symmetric, per tensor or per column (axis 1).
    public var weights: Quantization
    /// The result's parameters (per tensor), or nil for an f32 result.
    public var output: Quantization?
    /// Applied to the real result, in order (no `.sum`).
    public var postOps: [PostOp]

    public init(input: Quantization, weights: Quantization, output: Quantization?, postOps: [PostOp] = []) {
        self.input = input
        self.weights = weights
        self.output = output
        self.postOps = postOps
    }
}

/// A matrix product over a source quantized when the model runs, by a DynamicQuantizeLinear whose
/// three results are its first operands, as ONNX Runtime's `quantize_dynamic` writes it
/// (DynamicQuantizeLinear → MatMulInteger → Cast → Mul) and `--quantize dynamic` makes it:
/// `postOps((A − a_zero_point) · a_scale · dequantize(B) + bias)`.
public struct DynamicQuantizedMatMulAttributes: Sendable, Equatable {
    /// The weights' parameters: s8, symmetric, per tensor or per column (axis 1).
    public var weights: Quantization
    /// Applied to the real result, in order (no `.sum`).
    public var postOps: [PostOp]

    public init(weights: Quantization, postOps: [PostOp] = []) {
        self.weights = weights
        self.postOps = postOps
    }
}

/// ONNX DynamicQuantizeLinear's parameters for values in [lo, hi]: the range widened to hold 0,
/// scale (hi − lo) / 255 (1 / 255 when the range is empty, as ONNX's reference does), zero point
/// round_half_to_even(−lo / scale) within 0..255.
public func dynamicQuantizationParameters(min lo: Float, max hi: Float) -> (scale: Float, zeroPoint: Int32) {
    let lo = Swift.min(lo, 0), hi = Swift.max(hi, 0)
    let scale: Float = (hi == lo ? 1 : hi - lo) / 255
    let z = Swift.max(0, Swift.min(255, 0 - lo / scale)).rounded(.toNearestOrEven)
    return (scale, Int32(z))
}

/// An op over quantized values that is neither a conv nor a matrix product: what it computes is
/// `quantize(op(dequantize(X0), dequantize(X1), ...), output)`, each input dequantized by its
/// own parameters (inputs without parameters are read as they are). Average pooling,
/// concatenation and per-channel scale-shift requantize this way: `AveragePool` of u8 values
/// whose result has other parameters, `Concat` of inputs quantized differently, DenseNet's
/// BatchNormalization + ReLU between a concatenation and a conv.
public struct QuantizedOpAttributes: Sendable, Equatable {
    /// The f32 op applied to the real values.
    public var op: Op
    /// Per input: its parameters (per tensor), or nil when it is not quantized.
    public var inputs: [Quantization?]
    /// The result's parameters (per tensor).
    public var output: Quantization

    public init(op: Op, inputs: [Quantization?], output: Quantization) {
        self.op = op
        self.inputs = inputs
        self.output = output
    }
}
