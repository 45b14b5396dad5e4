/// The families ops are sliced by in every layer: the type rules (`KilnIR/TypeRules/`), the
/// reference interpreter, the importer and the emitters each keep one file per family, so an op
/// lives in one family file per layer. `Op.family` is the one place that assigns them.
public enum OpFamily: String, Sendable, CaseIterable {
    /// Convolutions and transposed convolutions (FP32).
    case conv
    /// Max, average and global pooling.
    case pool
    /// Functions of one or more tensors element by element (with broadcasting), casts, and the
    /// fused elementwise groups.
    case elementwise
    /// Batch, layer and instance normalization, the per-channel scale-shift, softmax.
    case normalize
    /// Reductions over axes: Reduce*, ArgMax/ArgMin, TopK.
    case reduce
    /// Ops that move, select or copy values: concat, split, slice, reshape, transpose, gather,
    /// pad, resize, tile, depth-to-space and back, layout conversion.
    case dataMovement
    /// Gemm and MatMul (FP32).
    case matMul
    /// Quantize and dequantize, and the ops over quantized values (quantized conv, matmul and the
    /// generic quantized ops).
    case quantized
    /// Ops that compute shapes or fill tensors: Shape, Size, ConstantOfShape, Range.
    case shape
    /// RNN, GRU and LSTM.
    case recurrent
    /// A node Kiln cannot handle.
    case unsupported
}

extension Op {
    /// The op's family: where its type rule, reference, importer and emitter live.
    public var family: OpFamily {
        switch self {
        case .conv, .convTranspose: return .conv
        case .maxPool, .averagePool, .globalAveragePool, .globalMaxPool: return .pool
        case .unary, .leakyRelu, .elu, .selu, .hardSigmoid, .clip, .gelu, .binary, .variadic, .alignForBroadcast,
             .where, .cast, .castLike, .elementwiseGroup: return .elementwise
        case .batchNormalization, .channelScaleShift, .layerNormalization, .instanceNormalization, .softmax, .logSoftmax:
            return .normalize
        case .reduce, .argReduce, .topK: return .reduce
        case .concat, .split, .slice, .reshape, .flatten, .transpose, .squeeze, .unsqueeze, .gather, .gatherElements,
             .identity, .dropout, .pad, .resize, .expand, .tile, .depthToSpace, .spaceToDepth, .layoutConvert:
            return .dataMovement
        case .gemm, .matMul: return .matMul
        case .quantizedConv, .quantizedMatMul, .dynamicQuantizedMatMul, .dynamicQuantizeLinear, .matMulInteger, .convInteger, .quantizeLinear,
             .dequantizeLinear,
             .quantized: return .quantized
        case .shape, .size, .constantOfShape, .range: return .shape
        case .recurrent: return .recurrent
        case .unsupported: return .unsupported
        }
    }
}
