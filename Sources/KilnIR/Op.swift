/// The operations of Kiln's IR, with typed attributes. Every pass, the reference interpreter
/// and every emitter switch over `Op` exhaustively, so an op they forget does not compile.
///
/// Operands that ONNX passes as inputs (Reshape's shape, Slice's starts, Clip's bounds, ...)
/// stay inputs here; older opsets' attribute forms become constant inputs at import, so each
/// op has one meaning whatever opset it came from.
public enum Op: Sendable, Equatable {
    /// X, W, B? -> Y
    case conv(ConvAttributes)
    /// X, W, B? -> Y
    case convTranspose(ConvTransposeAttributes)
    /// X (u8/s8), W (s8 constant), B? (f32 constant, real units), addend? -> Y (the output's type,
    /// or f32): a conv over quantized values (`QuantizedConvAttributes` says what it computes).
    case quantizedConv(QuantizedConvAttributes)
    /// X, scale, bias, mean, var -> Y (inference form)
    case batchNormalization(epsilon: Float)
    /// X, scale[C], shift[C] -> post(X · scale + shift) per channel (axis 1): a BatchNormalization
    /// lowered with its statistics folded, and the activations fused after it.
    case channelScaleShift(postOps: [PostOp])
    /// A, B, C? -> Y
    case gemm(GemmAttributes)
    /// A, B, bias? -> Y (numpy matmul semantics; bias f32 [N] added along the last axis, then the
    /// post-ops)
    case matMul(MatMulAttributes)
    /// A (u8/s8 [..., M, K]), B (s8 constant [K, N]), bias? (f32 [N], real units) -> Y [..., M, N]
    /// (the output's type, or f32): a matrix product over quantized values.
    case quantizedMatMul(QuantizedMatMulAttributes)
    /// A (u8 [..., M, K]), a_scale (f32 []), a_zero_point (u8 []), B (s8 constant [K, N]), bias? (f32
    /// [N]) -> Y (f32 [..., M, N]): a matrix product over a source quantized when the model runs
    /// (`DynamicQuantizedMatMulAttributes`), its parameters operands.
    case dynamicQuantizedMatMul(DynamicQuantizedMatMulAttributes)
    /// X (u8/s8), W (u8/s8), x_zero_point?, w_zero_point? -> Y (s32): ONNX ConvInteger,
    /// conv(X − x_zero_point, W − w_zero_point) exactly (no post-ops).
    case convInteger(ConvAttributes)
    /// X (f32) -> Y (u8), scale (f32 scalar), zero point (u8 scalar): ONNX DynamicQuantizeLinear.
    case dynamicQuantizeLinear
    /// A (u8/s8 [..., M, K]), B (u8/s8 [..., K, N]), a_zero_point?, b_zero_point? -> Y (s32):
    /// ONNX MatMulInteger, (A − a_zero_point) · (B − b_zero_point) exactly.
    case matMulInteger
    /// X, W, R, B?, sequence_lens?, initial_h?, initial_c?, P? -> Y, Y_h, Y_c (as many as the
    /// node lists): ONNX RNN, GRU and LSTM (`RecurrentAttributes`).
    case recurrent(RecurrentAttributes)
    /// X -> Y, elementwise
    case unary(UnaryOp)
    /// X -> Y
    case leakyRelu(alpha: Float)
    /// X -> Y: x > 0 ? x : alpha·(exp(x) − 1)
    case elu(alpha: Float)
    /// X -> Y: gamma · (x > 0 ? x : alpha·(exp(x) − 1))
    case selu(alpha: Float, gamma: Float)
    /// X -> Y: max(0, min(1, alpha*x + beta))
    case hardSigmoid(alpha: Float, beta: Float)
    /// X, min?, max? -> Y
    case clip
    /// X -> Y; tanh approximation when `tanhApproximation`
    case gelu(tanhApproximation: Bool)
    /// A, B -> C with numpy broadcasting
    case binary(BinaryOp)
    /// X0, X1, ... -> Y: Sum/Max/Min over any number of inputs, numpy broadcasting
    case variadic(BinaryOp)
    /// A, B -> B': B reshaped (trailing ones appended) so that numpy broadcasting aligns it with
    /// A at `axis` — the legacy (opset < 7) `broadcast=1, axis=k` form of the binary ops.
    case alignForBroadcast(axis: Int)
    /// X -> Y
    case maxPool(PoolAttributes)
    /// X -> Y
    case averagePool(PoolAttributes)
    /// X -> Y
    case globalAveragePool
    /// X -> Y
    case globalMaxPool
    /// X0, X1, ... -> Y
    case concat(axis: Int)
    /// X, split? -> Y0, Y1, ...; equal parts when `split` is absent
    case split(axis: Int)
    /// data, starts, ends, axes?, steps? -> Y
    case slice
    /// data, shape -> Y
    case reshape(allowZero: Bool)
    /// X -> Y (2-D)
    case flatten(axis: Int)
    /// X -> Y; reversed axes when `perm` is nil
    case transpose(perm: [Int]?)
    /// X, axes? -> Y; all size-1 axes when `axes` is absent
    case squeeze
    /// X, axes -> Y
    case unsqueeze
    /// data, indices -> Y
    case gather(axis: Int)
    /// X -> s64[rank or end-start]
    case shape(start: Int, end: Int?)
    /// X -> s64 scalar: the element count
    case size
    /// X -> Y
    case cast(to: ElementType)
    /// X, Like -> X cast to Like's element type; `inferShapes` turns it into `cast`.
    case castLike
    /// shape -> Y filled with `value` (a one-element tensor)
    case constantOfShape(value: Tensor)
    /// X -> Y
    case identity
    /// X, ratio?, training_mode? -> Y, mask?  (inference: Y = X, mask = true)
    case dropout
    /// data, pads, constant_value?, axes? -> Y
    case pad(mode: PadMode)
    /// X, roi?, scales?, sizes? -> Y
    case resize(ResizeAttributes)
    /// X -> Y. `legacy` is Softmax-1..12: the input is coerced to 2-D at `axis`.
    case softmax(axis: Int, legacy: Bool)
    case logSoftmax(axis: Int, legacy: Bool)
    /// data, axes? -> reduced
    case reduce(ReduceOp, keepDims: Bool, noopWithEmptyAxes: Bool)
    /// X, shape -> Y
    case expand
    /// start, limit, delta -> Y
    case range
    /// cond, X, Y -> Z
    case `where`
    /// X, scale, bias? -> Y (mean and inverse std outputs are not supported)
    case layerNormalization(axis: Int, epsilon: Float)
    /// X, scale, B -> Y: each (batch, channel) plane normalized, then scaled and shifted per channel
    case instanceNormalization(epsilon: Float)
    /// X -> Y: channels moved into b×b spatial blocks (DCR order, or CRD when `crd`)
    case depthToSpace(blockSize: Int, crd: Bool)
    /// X -> Y: b×b spatial blocks moved into channels (DCR order, or CRD when `crd`)
    case spaceToDepth(blockSize: Int, crd: Bool)
    /// X, repeats -> Y
    case tile
    /// X -> s64: the index of the largest (or smallest) element along `axis`.
    case argReduce(ArgReduceAttributes)
    /// data, indices (same rank) -> Y: Y[i…] = data[i… with indices[i…] at `axis`].
    case gatherElements(axis: Int)
    /// X, K (a constant) -> Values, Indices (s64): the K largest (or smallest) along `axis`.
    case topK(TopKAttributes)
    /// X, y_scale, y_zero_point? -> Y (u8 or s8); per tensor, or per `axis` when the scale is 1-D
    case quantizeLinear(axis: Int, outputType: ElementType)
    /// X, x_scale, x_zero_point? -> Y (f32); per tensor, or per `axis` when the scale is 1-D
    case dequantizeLinear(axis: Int)
    /// X -> Y: the same tensor in the output value's layout (inserted by the layout pass).
    case layoutConvert
    /// inputs... -> Y: elementwise ops (and optionally a reduction) as one loop.
    case elementwiseGroup(ElementwiseGroup)
    /// inputs (u8/s8 where quantized) -> Y (u8/s8): an op that moves or averages values, over
    /// quantized values (`QuantizedOpAttributes` says what it computes): average and global
    /// average pooling, concatenation whose inputs' parameters differ, per-channel scale-shift.
    indirect case quantized(QuantizedOpAttributes)
    /// A node Kiln cannot handle, kept so that `inspect` can list every one of them.
    case unsupported(reason: String)

    /// Whether the node accumulates onto its fourth operand, the addend, with a `.sum` post-op.
    public var sumsIntoAddend: Bool {
        switch self {
        case .conv(let a): return a.postOps.contains(.sum)
        case .quantizedConv(let q): return q.conv.postOps.contains(.sum)
        default: return false
        }
    }

    /// A short name for diagnostics, histograms and the text form.
    public var name: String {
        switch self {
        case .conv: return "conv"
        case .convTranspose: return "conv_transpose"
        case .quantizedConv: return "quantized_conv"
        case .batchNormalization: return "batch_norm"
        case .channelScaleShift: return "scale_shift"
        case .gemm: return "gemm"
        case .matMul: return "matmul"
        case .quantizedMatMul: return "quantized_matmul"
        case .dynamicQuantizedMatMul: return "dynamic_quantized_matmul"
        case .dynamicQuantizeLinear: return "dynamic_quantize_linear"
        case .convInteger: return "conv_integer"
        case .recurrent(let a): return a.kind.rawValue
        case .matMulInteger: return "matmul_integer"
        case .unary(let u): return u.rawValue
        case .leakyRelu: return "leaky_relu"
        case .elu: return "elu"
        case .selu: return "selu"
        case .hardSigmoid: return "hard_sigmoid"
        case .clip: return "clip"
        case .gelu: return "gelu"
        case .binary(let b): return b.rawValue
        case .variadic(let b): return "variadic_\(b.rawValue)"
        case .alignForBroadcast: return "align_for_broadcast"
        case .maxPool: return "max_pool"
        case .averagePool: return "average_pool"
        case .globalAveragePool: return "global_average_pool"
        case .globalMaxPool: return "global_max_pool"
        case .concat: return "concat"
        case .split: return "split"
        case .slice: return "slice"
        case .reshape: return "reshape"
        case .flatten: return "flatten"
        case .transpose: return "transpose"
        case .squeeze: return "squeeze"
        case .unsqueeze: return "unsqueeze"
        case .gather: return "gather"
        case .shape: return "shape"
        case .size: return "size"
        case .cast: return "cast"
        case .castLike: return "cast_like"
        case .constantOfShape: return "constant_of_shape"
        case .identity: return "identity"
        case .dropout: return "dropout"
        case .pad: return "pad"
        case .resize: return "resize"
        case .softmax: return "softmax"
        case .logSoftmax: return "log_softmax"
        case .reduce(let r, _, _): return "reduce_\(r.rawValue)"
        case .expand: return "expand"
        case .range: return "range"
        case .where: return "where"
        case .layerNormalization: return "layer_norm"
        case .instanceNormalization: return "instance_norm"
        case .depthToSpace: return "depth_to_space"
        case .spaceToDepth: return "space_to_depth"
        case .tile: return "tile"
        case .argReduce(let a): return a.largest ? "arg_max" : "arg_min"
        case .gatherElements: return "gather_elements"
        case .topK: return "top_k"
        case .quantizeLinear: return "quantize_linear"
        case .dequantizeLinear: return "dequantize_linear"
        case .layoutConvert: return "layout_convert"
        case .elementwiseGroup(let e): return e.reduction.map { "elementwise_reduce_\($0.kind.rawValue)" } ?? "elementwise"
        case .quantized(let q): return "quantized_\(q.op.name)"
        case .unsupported: return "unsupported"
        }
    }
}

public enum UnaryOp: String, Sendable, CaseIterable {
    case relu, sigmoid, tanh, erf, exp, log, sqrt, neg, abs, reciprocal, floor, hardSwish = "hard_swish"
    case softplus
    /// x · tanh(softplus(x))
    case mish
    /// Logical not (bool).
    case not
}

public enum BinaryOp: String, Sendable, CaseIterable {
    case add, sub, mul, div, pow, max, min, equal
    case less, greater, lessOrEqual = "less_or_equal", greaterOrEqual = "greater_or_equal"
    case and, or, xor
    /// Mod with fmod=0: an integer remainder with the divisor's sign (Python's %).
    case mod
    /// Mod with fmod=1: C's fmod, the remainder with the dividend's sign.
    case fmod
    /// PRelu: x < 0 ? slope · x : x, the slope (second operand) broadcast to x.
    case prelu

    /// Comparisons and logic produce bool.
    public var producesBool: Bool {
        switch self {
        case .equal, .less, .greater, .lessOrEqual, .greaterOrEqual, .and, .or, .xor: return true
        default: return false
        }
    }
    /// And, Or, Xor take bool operands.
    public var isLogical: Bool { self == .and || self == .or || self == .xor }
}

/// The ONNX reductions. Each accumulates g(x) over the reduced axes, starting from `identity`,
/// then applies a final step: sum_square adds x², l1 |x|, l2 x² then √, log_sum x then log,
/// log_sum_exp eˣ then log, mean x then ÷ count.
/// ArgMax (`largest`) or ArgMin over one axis; ties go to the first index, or the last when
/// `selectLastIndex`; a NaN counts as the extreme value (as numpy's argmax does).
public struct ArgReduceAttributes: Sendable, Equatable {
    public var largest: Bool
    public var axis: Int
    public var keepDims: Bool
    public var selectLastIndex: Bool
    public init(largest: Bool, axis: Int, keepDims: Bool, selectLastIndex: Bool) {
        self.largest = largest
        self.axis = axis
        self.keepDims = keepDims
        self.selectLastIndex = selectLastIndex
    }
}

/// ONNX's recurrent layers over a sequence, in each direction: RNN (one gate), GRU (update,
/// reset, hidden: `zrh`) and LSTM (input, output, forget, cell: `iofc`), with ONNX's operand
/// shapes (W [directions, gates·hidden, input], R [directions, gates·hidden, hidden], B
/// [directions, 2·gates·hidden], P [directions, 3·hidden]) and outputs Y [seq, directions, batch,
/// hidden] and Y_h, Y_c [directions, batch, hidden] (`batchMajor`, ONNX's layout 1: X [batch,
/// seq, input], Y [batch, seq, directions, hidden], Y_h, Y_c [batch, directions, hidden]). A
/// batch entry shorter than the sequence (sequence_lens) stops there: Y is 0 beyond it, Y_h and
/// Y_c hold its last step (0 for an entry of no steps, as ONNX Runtime gives).
public struct RecurrentAttributes: Sendable, Equatable {
    public enum Kind: String, Sendable, CaseIterable {
        case rnn, gru, lstm
        /// Gates per direction (the row blocks of W and R).
        public var gates: Int { self == .rnn ? 1 : self == .gru ? 3 : 4 }
        /// Activation functions per direction (f; f, g; f, g, h).
        public var functions: Int { self == .rnn ? 1 : self == .gru ? 2 : 3 }
        /// ONNX's defaults for one direction.
        public var defaultActivations: [PostOp] { self == .rnn ? [.tanh] : self == .gru ? [.sigmoid, .tanh] : [.sigmoid, .tanh, .tanh] }
    }
    public enum Direction: String, Sendable, CaseIterable {
        case forward, reverse, bidirectional
        public var count: Int { self == .bidirectional ? 2 : 1 }
    }
    public var kind: Kind
    public var direction: Direction
    public var hiddenSize: Int
    /// `kind.functions` per direction, the forward direction's first.
    public var activations: [PostOp]
    /// Bounds the activations' inputs to [−clip, clip].
    public var clip: Float?
    public var batchMajor: Bool
    /// GRU: the reset gate multiplies (H·Rₕᵀ + Rbₕ) instead of H.
    public var linearBeforeReset: Bool
    /// LSTM: the forget gate is 1 − the input gate.
    public var inputForget: Bool

    public init(kind: Kind, direction: Direction = .forward, hiddenSize: Int, activations: [PostOp]? = nil, clip: Float? = nil,
                batchMajor: Bool = false, linearBeforeReset: Bool = false, inputForget: Bool = false) {
        self.kind = kind
        self.direction = direction
        self.hiddenSize = hiddenSize
        self.activations = activations ?? Array(Array(repeating: kind.defaultActivations, count: direction.count).joined())
        self.clip = clip
        self.batchMajor = batchMajor
        self.linearBeforeReset = linearBeforeReset
        self.inputForget = inputForget
    }
}

/// TopK: the K largest (or smallest) elements along `axis`, in order (Kiln always sorts, which
/// `sorted = 0` allows); equal values keep their index order.
public struct TopKAttributes: Sendable, Equatable {
    public var axis: Int
    public var largest: Bool
    public init(axis: Int, largest: Bool) {
        self.axis = axis
        self.largest = largest
    }
}

public enum ReduceOp: String, Sendable, CaseIterable {
    case mean, sum, max, min, prod, sumSquare = "sum_square", l1, l2, logSum = "log_sum", logSumExp = "log_sum_exp"

    /// The ONNX op type (`ReduceSumSquare`, ...).
    public var onnxName: String {
        switch self {
        case .mean: return "ReduceMean"
        case .sum: return "ReduceSum"
        case .max: return "ReduceMax"
        case .min: return "ReduceMin"
        case .prod: return "ReduceProd"
        case .sumSquare: return "ReduceSumSquare"
        case .l1: return "ReduceL1"
        case .l2: return "ReduceL2"
        case .logSum: return "ReduceLogSum"
        case .logSumExp: return "ReduceLogSumExp"
        }
    }

    /// Whether the result involves a square root or a logarithm, which Kiln computes for
    /// floating-point tensors only.
    public var needsFloat: Bool { [.l2, .logSum, .logSumExp].contains(self) }
}

public enum AutoPad: String, Sendable {
    case notSet = "NOTSET", sameUpper = "SAME_UPPER", sameLower = "SAME_LOWER", valid = "VALID"
}

public enum PadMode: String, Sendable {
    case constant, reflect, edge, wrap
}

public struct ConvAttributes: Sendable, Equatable {
    /// Spatial kernel size; taken from the weight's shape when the model omits it.
    public var kernelShape: [Int]?
    public var strides: [Int]?
    /// Begin pads of every spatial axis, then end pads (ONNX order).
    public var pads: [Int]?
    public var dilations: [Int]?
    public var group: Int
    public var autoPad: AutoPad
    /// Fused onto the output, in order. With `.sum`, the node has a fourth operand, the addend
    /// (X, W, B?, addend).
    public var postOps: [PostOp]

    public init(kernelShape: [Int]? = nil, strides: [Int]? = nil, pads: [Int]? = nil,
                dilations: [Int]? = nil, group: Int = 1, autoPad: AutoPad = .notSet, postOps: [PostOp] = []) {
        self.kernelShape = kernelShape
        self.strides = strides
        self.pads = pads
        self.dilations = dilations
        self.group = group
        self.autoPad = autoPad
        self.postOps = postOps
    }
}

public struct ConvTransposeAttributes: Sendable, Equatable {
    public var conv: ConvAttributes
    public var outputPadding: [Int]?
    public var outputShape: [Int]?

    public init(conv: ConvAttributes, outputPadding: [Int]? = nil, outputShape: [Int]? = nil) {
        self.conv = conv
        self.outputPadding = outputPadding
        self.outputShape = outputShape
    }
}

public struct PoolAttributes: Sendable, Equatable {
    public var kernelShape: [Int]
    public var strides: [Int]?
    public var pads: [Int]?
    public var dilations: [Int]?
    public var autoPad: AutoPad
    public var ceilMode: Bool
    /// AveragePool only: whether padded cells count in the divisor.
    public var countIncludePad: Bool

    public init(kernelShape: [Int], strides: [Int]? = nil, pads: [Int]? = nil, dilations: [Int]? = nil,
                autoPad: AutoPad = .notSet, ceilMode: Bool = false, countIncludePad: Bool = false) {
        self.kernelShape = kernelShape
        self.strides = strides
        self.pads = pads
        self.dilations = dilations
        self.autoPad = autoPad
        self.ceilMode = ceilMode
        self.countIncludePad = countIncludePad
    }
}

public struct MatMulAttributes: Sendable, Equatable {
    public var postOps: [PostOp]
    public init(postOps: [PostOp] = []) {
        self.postOps = postOps
    }
}

public struct GemmAttributes: Sendable, Equatable {
    public var alpha: Float
    public var beta: Float
    public var transA: Bool
    public var transB: Bool
    /// Fused onto the output, in order (`.sum` is not used on Gemm).
    public var postOps: [PostOp]

    public init(alpha: Float = 1, beta: Float = 1, transA: Bool = false, transB: Bool = false, postOps: [PostOp] = []) {
        self.alpha = alpha
        self.beta = beta
        self.transA = transA
        self.transB = transB
        self.postOps = postOps
    }
}

public struct ResizeAttributes: Sendable, Equatable {
    public enum Mode: String, Sendable { case nearest, linear }
    public enum CoordinateTransformation: String, Sendable {
        case halfPixel = "half_pixel", halfPixelSymmetric = "half_pixel_symmetric"
        case pytorchHalfPixel = "pytorch_half_pixel", alignCorners = "align_corners"
        case asymmetric, tfCropAndResize = "tf_crop_and_resize"
    }
    public enum NearestMode: String, Sendable {
        case roundPreferFloor = "round_prefer_floor", roundPreferCeil = "round_prefer_ceil", floor, ceil
    }
    public enum AspectRatioPolicy: String, Sendable { case stretch, notLarger = "not_larger", notSmaller = "not_smaller" }

    public var mode: Mode
    public var coordinateTransformation: CoordinateTransformation
    public var nearestMode: NearestMode
    public var excludeOutside: Bool
    public var extrapolationValue: Float
    /// Axes that scales/sizes refer to (all axes when nil).
    public var axes: [Int]?
    public var keepAspectRatioPolicy: AspectRatioPolicy

    public init(mode: Mode = .nearest, coordinateTransformation: CoordinateTransformation = .halfPixel,
                nearestMode: NearestMode = .roundPreferFloor, excludeOutside: Bool = false,
                extrapolationValue: Float = 0, axes: [Int]? = nil, keepAspectRatioPolicy: AspectRatioPolicy = .stretch) {
        self.mode = mode
        self.coordinateTransformation = coordinateTransformation
        self.nearestMode = nearestMode
        self.excludeOutside = excludeOutside
        self.extrapolationValue = extrapolationValue
        self.axes = axes
        self.keepAspectRatioPolicy = keepAspectRatioPolicy
    }
}
