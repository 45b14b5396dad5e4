/// What the passes ask of an op, declared for every op in one exhaustive switch (`Op.traits`), so
/// that a new op states them where it is added and a pass asks the op instead of listing ops.
public struct OpTraits: Sendable, Equatable {
    /// How an op moves values without computing new ones.
    public enum Movement: Sendable, Equatable {
        /// The output is the first operand's elements in the same order (reshapes, identity).
        case reshapes
        /// The output is the first operand's elements, each once, in another order (transpose).
        case permutes
        /// Each output element is one of the first operand's elements, or (for max pooling) the
        /// largest of several (splits, slices, gathers, tiling, nearest resizing, depth/space moves).
        case selectsFromFirst
        /// Each output element is one element of one operand (concatenation).
        case selectsFromEvery
    }

    /// How `assignLayouts` places the op's operands and result.
    public enum LayoutRule: Sendable, Equatable {
        /// Every operand and the result plain (row-major NCHW).
        case plain
        /// The first operand and the result in the first operand's layout (4-D to 4-D), the other
        /// operands plain: elementwise functions of one tensor, pooling, per-channel scaling.
        case followsFirst
        /// Operands read through strides whatever their layout; the result channels-last when a
        /// 4-D operand is: the broadcasting elementwise ops.
        case strided
        /// The kernel's or the op's own rule, written in `assignLayouts` (convolutions, the
        /// (de)quantizations, slices, concatenation, transposes, resizes, ...).
        case own
    }

    /// Nil when the op computes new values.
    public var movement: Movement?
    public var layout: LayoutRule
    /// Whether the op can be a step of an elementwise group (`ElementwiseGroup`): elementwise,
    /// float in and out, or a per-tensor (de)quantization.
    public var elementwiseStep: Bool

    public init(movement: Movement? = nil, layout: LayoutRule = .plain, elementwiseStep: Bool = false) {
        self.movement = movement
        self.layout = layout
        self.elementwiseStep = elementwiseStep
    }

    /// The operands whose values a moving op moves: they commute with every increasing
    /// elementwise function (a per-tensor quantization, for one) applied to all of them alike.
    public func movedOperands(of inputCount: Int) -> [Int]? {
        switch movement {
        case .reshapes, .permutes, .selectsFromFirst: return [0]
        case .selectsFromEvery: return Array(0..<inputCount)
        case nil: return nil
        }
    }
}

extension Op {
    /// The op's traits (see `OpTraits`).
    public var traits: OpTraits {
        switch self {
        case .conv, .convTranspose, .quantizedConv: return OpTraits(layout: .own)
        case .batchNormalization, .channelScaleShift: return OpTraits(layout: .followsFirst)
        case .gemm, .matMul, .quantizedMatMul, .dynamicQuantizedMatMul, .dynamicQuantizeLinear, .matMulInteger, .convInteger: return OpTraits()
        case .unary(let u): return OpTraits(layout: .followsFirst, elementwiseStep: u != .not)
        case .leakyRelu, .elu, .selu, .hardSigmoid, .clip, .gelu: return OpTraits(layout: .followsFirst, elementwiseStep: true)
        case .binary(let b): return OpTraits(layout: .strided, elementwiseStep: !b.producesBool && b != .mod)
        case .variadic, .where: return OpTraits(layout: .strided)
        case .alignForBroadcast: return OpTraits()
        case .maxPool, .globalMaxPool: return OpTraits(movement: .selectsFromFirst, layout: .followsFirst)
        case .averagePool, .globalAveragePool: return OpTraits(layout: .followsFirst)
        case .concat: return OpTraits(movement: .selectsFromEvery, layout: .own)
        case .split, .slice, .gather, .depthToSpace, .spaceToDepth: return OpTraits(movement: .selectsFromFirst, layout: .own)
        case .reshape, .flatten, .squeeze, .unsqueeze, .dropout: return OpTraits(movement: .reshapes)
        case .identity: return OpTraits(movement: .reshapes, layout: .followsFirst)
        case .transpose: return OpTraits(movement: .permutes, layout: .own)
        case .tile, .expand: return OpTraits(movement: .selectsFromFirst)
        case .resize(let r): return OpTraits(movement: r.mode == .nearest ? .selectsFromFirst : nil, layout: .own)
        case .pad: return OpTraits(layout: .own)
        case .cast: return OpTraits(layout: .followsFirst)
        case .castLike, .shape, .size, .constantOfShape, .range, .recurrent: return OpTraits()
        case .softmax, .logSoftmax, .layerNormalization, .instanceNormalization: return OpTraits()
        case .reduce, .argReduce, .topK, .gatherElements: return OpTraits()
        case .quantizeLinear, .dequantizeLinear: return OpTraits(layout: .own, elementwiseStep: true)
        case .layoutConvert: return OpTraits(layout: .own)
        case .elementwiseGroup(let e): return OpTraits(layout: e.reduction != nil ? .plain : .strided)
        case .quantized: return OpTraits(layout: .own)
        case .unsupported: return OpTraits()
        }
    }
}
