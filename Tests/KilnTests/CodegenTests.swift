import Foundation
import Testing
import KilnCodegen
import KilnDriver
import KilnIR
import KilnPasses
import KilnReference
import KilnToolchain

/// Every op, alone and with odd sizes that exercise vector tails, compiled (all into one
/// library, one g++ run) and compared with the reference interpreter: rtol 1e-4, atol 1e-5.
@Suite(.serialized) struct CodegenTests {
    /// An operand: a run-time input of a type, or a constant.
    enum Operand {
        case input(ElementType, [Int])
        case constant(Tensor)
        case absent
    }

    static func random(_ t: ElementType, _ shape: [Int], seed: Int, positive: Bool = false) -> Tensor {
        var rng = SplitMix(seed: UInt64(seed) &* 7919 &+ 17)
        let n = shapeProduct(shape)
        if t.isFloat {
            return Tensor(t, shape: shape, floats: (0..<n).map { _ in
                let u = Float(rng.next() % 20001) / 10000 - 1  // [-1, 1]
                return t.roundFloat(positive ? abs(u) + 0.1 : u * 2)
            })
        }
        let r = t.intRange
        let span = min(r.upperBound, 50) - max(r.lowerBound, -50) + 1
        return Tensor(t, shape: shape, ints: (0..<n).map { _ in max(r.lowerBound, -50) + Int64(rng.next() % UInt64(span)) })
    }

    /// One case: a graph of one node, and inputs for it.
    static func single(_ name: String, _ op: Op, _ operands: [Operand], outputs: Int = 1, seed: Int = 0,
                       positive: Bool = false) throws -> (Graph, [String: Tensor]) {
        var g = Graph(name: name)
        var ids: [ValueID?] = []
        var inputs: [String: Tensor] = [:]
        for (i, o) in operands.enumerated() {
            switch o {
            case .input(let t, let s):
                let id = g.addValue("x\(i)", TensorType(t, s))
                g.inputs.append(id)
                ids.append(id)
                inputs["x\(i)"] = random(t, s, seed: seed * 31 + i, positive: positive)
            case .constant(let c):
                ids.append(g.addConstant("c\(i)", c))
            case .absent:
                ids.append(nil)
            }
        }
        let outs = (0..<outputs).map { g.addValue("y\($0)", TensorType(.f32, dims: [.symbolic("?")])) }
        g.nodes = [Node(name: name, op: op, inputs: ids, outputs: outs, origin: NodeOrigin(opType: name, version: 21))]
        g.outputs = outs
        try inferShapes(&g)
        return (g, inputs)
    }

    static func cases() throws -> [(String, Graph, [String: Tensor])] {
        var out: [(String, Graph, [String: Tensor])] = []
        func add(_ name: String, _ op: Op, _ operands: [Operand], outputs: Int = 1, positive: Bool = false) throws {
            let (g, i) = try single(name, op, operands, outputs: outputs, seed: out.count, positive: positive)
            out.append((name, g, i))
        }
        let f = ElementType.f32
        // Convolutions (oneDNN for f32, generic loops for f16).
        try add("conv_3x3_pad", .conv(ConvAttributes(pads: [1, 1, 1, 1])), [.input(f, [1, 3, 7, 9]), .constant(random(f, [5, 3, 3, 3], seed: 1)), .constant(random(f, [5], seed: 2))])
        try add("conv_stride_dilation", .conv(ConvAttributes(strides: [2, 1], dilations: [2, 2])), [.input(f, [2, 4, 11, 10]), .constant(random(f, [6, 4, 3, 2], seed: 3)), .absent])
        try add("conv_groups", .conv(ConvAttributes(pads: [1, 0, 1, 0], group: 4)), [.input(f, [1, 8, 6, 5]), .constant(random(f, [8, 2, 3, 3], seed: 4))])
        try add("conv_depthwise_same", .conv(ConvAttributes(group: 6, autoPad: .sameUpper)), [.input(f, [1, 6, 9, 9]), .constant(random(f, [6, 1, 3, 3], seed: 5))])
        try add("conv_1d", .conv(ConvAttributes(pads: [2, 1])), [.input(f, [1, 2, 13]), .constant(random(f, [3, 2, 4], seed: 6))])
        // Activations oneDNN's AVX2 injectors compute slowly run after the conv as Kiln's loop
        // on such CPUs (from the first of them on; a sum before them stays in the conv).
        try add("conv_1x1_silu", .conv(ConvAttributes(postOps: [.silu])), [.input(f, [1, 8, 5, 7]), .constant(random(f, [16, 8, 1, 1], seed: 55)), .constant(random(f, [16], seed: 56))])
        try add("conv_depthwise_relu_sigmoid", .conv(ConvAttributes(pads: [1, 1, 1, 1], group: 8, postOps: [.relu, .sigmoid])), [.input(f, [1, 8, 6, 5]), .constant(random(f, [8, 1, 3, 3], seed: 57))])
        try add("conv_1x1_sum_gelu_tanh", .conv(ConvAttributes(postOps: [.sum, .gelu(tanhApproximation: false), .tanh])), [.input(f, [1, 8, 5, 7]), .constant(random(f, [16, 8, 1, 1], seed: 58)), .constant(random(f, [16], seed: 59)), .input(f, [1, 16, 5, 7])])
        try add("conv_runtime_weights", .conv(ConvAttributes()), [.input(f, [1, 2, 5, 5]), .input(f, [3, 2, 2, 2])])
        try add("conv_f16", .conv(ConvAttributes(pads: [1, 1, 1, 1])), [.input(.f16, [1, 2, 5, 6]), .constant(random(.f16, [3, 2, 3, 3], seed: 7))])
        try add("conv_transpose", .convTranspose(ConvTransposeAttributes(conv: ConvAttributes(strides: [2, 2], pads: [1, 1, 0, 0]), outputPadding: [1, 0])), [.input(f, [1, 3, 4, 5]), .constant(random(f, [3, 2, 3, 3], seed: 8)), .constant(random(f, [2], seed: 9))])
        try add("batch_norm", .batchNormalization(epsilon: 1e-5), [.input(f, [2, 3, 5, 7]), .constant(random(f, [3], seed: 10)), .constant(random(f, [3], seed: 11)), .constant(random(f, [3], seed: 12)), .constant(random(f, [3], seed: 13, positive: true))])
        // Matrix products.
        try add("gemm_transb_bias", .gemm(GemmAttributes(transB: true)), [.input(f, [3, 17]), .constant(random(f, [5, 17], seed: 14)), .constant(random(f, [5], seed: 15))])
        try add("gemm_alpha_beta_transa", .gemm(GemmAttributes(alpha: 0.5, beta: 2, transA: true)), [.input(f, [7, 3]), .constant(random(f, [7, 4], seed: 16)), .constant(random(f, [3, 4], seed: 17))])
        try add("gemm_runtime_b", .gemm(GemmAttributes(alpha: 1.5, beta: 0.5)), [.input(f, [2, 3]), .input(f, [3, 5]), .input(f, [1, 5])])
        try add("matmul_batched_broadcast", .matMul(MatMulAttributes()), [.input(f, [2, 1, 3, 5]), .input(f, [4, 5, 6])])
        try add("matmul_vector", .matMul(MatMulAttributes()), [.input(f, [5]), .constant(random(f, [5, 7], seed: 18))])
        try add("matmul_bias_gelu", .matMul(MatMulAttributes(postOps: [.gelu(tanhApproximation: false)])), [.input(f, [2, 7, 5]), .constant(random(f, [5, 6], seed: 43)), .constant(random(f, [6], seed: 44))])
        // 8 rows or more by constant weights: oneDNN's 1×1 conv (productsByConstantWeightsRunAsConvs).
        try add("matmul_rows_bias_gelu", .matMul(MatMulAttributes(postOps: [.gelu(tanhApproximation: false)])), [.input(f, [2, 9, 5]), .constant(random(f, [5, 6], seed: 45)), .constant(random(f, [6], seed: 46))])
        try add("gemm_rows_transb_bias", .gemm(GemmAttributes(transB: true)), [.input(f, [12, 17]), .constant(random(f, [5, 17], seed: 47)), .constant(random(f, [5], seed: 48))])
        try add("gemm_rows_row_bias", .gemm(GemmAttributes()), [.input(f, [10, 7]), .constant(random(f, [7, 4], seed: 49)), .constant(random(f, [1, 4], seed: 50))])
        try add("gemm_rows_matrix_bias", .gemm(GemmAttributes()), [.input(f, [10, 7]), .constant(random(f, [7, 4], seed: 51)), .constant(random(f, [10, 4], seed: 52))])
        try add("matmul_bias_s32", .matMul(MatMulAttributes()), [.input(.s32, [2, 3]), .input(.s32, [3, 4]), .constant(Tensor(.s32, shape: [4], ints: [1, -2, 3, 7]))])
        try add("matmul_s32", .matMul(MatMulAttributes()), [.input(.s32, [2, 3]), .input(.s32, [3, 4])])
        // Elementwise.
        for u in UnaryOp.allCases where u != .not {
            let positive = u == .log || u == .sqrt
            try add("unary_\(u.rawValue)", .unary(u), [.input(f, [3, 37])], positive: positive)
        }
        try add("unary_relu_f16", .unary(.relu), [.input(.f16, [19])])
        try add("unary_not", .unary(.not), [.input(.bool, [19])])
        try add("elu", .elu(alpha: 0.7), [.input(f, [33])])
        try add("selu", .selu(alpha: 1.6732632, gamma: 1.050701), [.input(f, [33])])
        try add("unary_neg_s32", .unary(.neg), [.input(.s32, [9])])
        try add("leaky_relu", .leakyRelu(alpha: 0.1), [.input(f, [33])])
        try add("hard_sigmoid", .hardSigmoid(alpha: 0.2, beta: 0.5), [.input(f, [33])])
        try add("gelu", .gelu(tanhApproximation: false), [.input(f, [33])])
        try add("gelu_tanh", .gelu(tanhApproximation: true), [.input(f, [33])])
        try add("clip", .clip, [.input(f, [2, 17]), .constant(.scalar(-0.5)), .constant(.scalar(0.7))])
        try add("clip_max_only", .clip, [.input(f, [17]), .absent, .constant(.scalar(0.3))])
        for b in BinaryOp.allCases where b != .pow && b != .prelu && !b.isLogical {
            try add("binary_\(b.rawValue)", .binary(b), [.input(f, [3, 1, 7]), .input(f, [4, 1])])
        }
        for b in BinaryOp.allCases where b.isLogical {
            try add("binary_\(b.rawValue)", .binary(b), [.input(.bool, [3, 1, 7]), .input(.bool, [4, 1])])
        }
        try add("prelu_channel_slope", .binary(.prelu), [.input(f, [2, 3, 4, 5]), .constant(random(f, [3, 1, 1], seed: 40))])
        try add("binary_mod_s32", .binary(.mod), [.input(.s32, [23]), .constant(Tensor(.s32, shape: [1], ints: [-3]))])
        try add("binary_fmod_s64", .binary(.fmod), [.input(.s64, [23]), .constant(Tensor(.s64, shape: [1], ints: [-3]))])
        try add("binary_pow", .binary(.pow), [.input(f, [5, 3]), .input(f, [3])], positive: true)
        try add("binary_add_s64", .binary(.add), [.input(.s64, [4, 3]), .input(.s64, [3])])
        try add("binary_div_s32", .binary(.div), [.input(.s32, [11]), .constant(Tensor(.s32, shape: [1], ints: [3]))])
        try add("binary_mul_u8", .binary(.mul), [.input(.u8, [2, 5]), .input(.u8, [5])])
        try add("sum3", .variadic(.add), [.input(f, [2, 3]), .input(f, [3]), .input(f, [2, 1])])
        try add("where", .where, [.input(.bool, [2, 3]), .input(f, [3]), .input(f, [2, 1])])
        try add("cast_f32_s32", .cast(to: .s32), [.input(f, [13])])
        try add("cast_f32_f16", .cast(to: .f16), [.input(f, [13])])
        try add("cast_s64_f32", .cast(to: .f32), [.input(.s64, [13])])
        // Pooling.
        try add("max_pool", .maxPool(PoolAttributes(kernelShape: [3, 3], strides: [2, 2], pads: [1, 1, 1, 1])), [.input(f, [1, 3, 9, 11])])
        try add("max_pool_ceil", .maxPool(PoolAttributes(kernelShape: [2, 2], strides: [2, 2], ceilMode: true)), [.input(f, [1, 2, 7, 7])])
        try add("avg_pool_include_pad", .averagePool(PoolAttributes(kernelShape: [3, 3], strides: [1, 1], pads: [1, 1, 1, 1], countIncludePad: true)), [.input(f, [1, 2, 5, 6])])
        try add("avg_pool_exclude_pad", .averagePool(PoolAttributes(kernelShape: [2, 3], strides: [2, 2], pads: [0, 1, 1, 1])), [.input(f, [1, 2, 5, 6])])
        try add("global_avg_pool", .globalAveragePool, [.input(f, [2, 3, 7, 5])])
        try add("global_max_pool", .globalMaxPool, [.input(f, [2, 3, 7, 5])])
        // Data movement.
        try add("concat", .concat(axis: 1), [.input(f, [2, 3, 5]), .input(f, [2, 1, 5]), .input(f, [2, 4, 5])])
        try add("split", .split(axis: -1), [.input(f, [3, 10]), .constant(.vector(ints: [2, 5, 3]))], outputs: 3)
        try add("slice_negative_step", .slice, [.input(f, [5, 8]), .constant(.vector(ints: [-1, 1])), .constant(.vector(ints: [0, 7])), .constant(.vector(ints: [1, 0])), .constant(.vector(ints: [-2, 2]))])
        // Runs of the innermost axis copied whole (kiln::copy_runs): 3, 5, and 6 over threads.
        try add("slice_runs_of_3", .slice, [.input(f, [4, 10, 6]), .constant(.vector(ints: [1])), .constant(.vector(ints: [4])), .constant(.vector(ints: [2]))])
        try add("slice_runs_of_5", .slice, [.input(f, [7, 9, 11]), .constant(.vector(ints: [3])), .constant(.vector(ints: [8])), .constant(.vector(ints: [-1]))])
        try add("slice_runs_parallel", .slice, [.input(f, [300, 40, 8]), .constant(.vector(ints: [2])), .constant(.vector(ints: [8])), .constant(.vector(ints: [2]))])
        try add("reshape", .reshape(allowZero: false), [.input(f, [2, 3, 4]), .constant(.vector(ints: [0, -1]))])
        try add("transpose", .transpose(perm: [2, 0, 1]), [.input(f, [2, 3, 5])])
        try add("gather_runtime_indices", .gather(axis: 1), [.input(f, [3, 5, 2]), .constant(Tensor(.s64, shape: [2, 2], ints: [4, -1, 0, 2]))])
        try add("expand", .expand, [.input(f, [3, 1]), .constant(.vector(ints: [2, 3, 4]))])
        try add("depth_to_space_dcr", .depthToSpace(blockSize: 2, crd: false), [.input(f, [2, 12, 3, 5])])
        try add("depth_to_space_crd", .depthToSpace(blockSize: 3, crd: true), [.input(f, [1, 18, 2, 3])])
        try add("space_to_depth", .spaceToDepth(blockSize: 2, crd: false), [.input(f, [2, 3, 6, 4])])
        try add("space_to_depth_crd", .spaceToDepth(blockSize: 2, crd: true), [.input(f, [1, 2, 4, 6])])
        try add("tile", .tile, [.input(f, [2, 3, 5]), .constant(.vector(ints: [3, 1, 2]))])
        try add("tile_s64", .tile, [.input(.s64, [4]), .constant(.vector(ints: [3]))])
        // Above the OpenMP threshold: planes split across threads.
        try add("instance_norm", .instanceNormalization(epsilon: 1e-5), [.input(f, [2, 8, 48, 50]), .constant(random(f, [8], seed: 41)), .constant(random(f, [8], seed: 42))])
        for mode in [PadMode.constant, .reflect, .edge, .wrap] {
            try add("pad_\(mode.rawValue)", .pad(mode: mode), [.input(f, [3, 4]), .constant(.vector(ints: [1, 2, 2, 1])), .constant(.scalar(0.5))])
        }
        try add("resize_nearest", .resize(ResizeAttributes(mode: .nearest, coordinateTransformation: .asymmetric, nearestMode: .floor)), [.input(f, [1, 2, 3, 4]), .absent, .constant(Tensor(.f32, shape: [4], floats: [1, 1, 2, 1.5]))])
        try add("resize_linear", .resize(ResizeAttributes(mode: .linear)), [.input(f, [1, 1, 4, 5]), .absent, .absent, .constant(.vector(ints: [1, 1, 7, 3]))])
        try add("softmax", .softmax(axis: -1, legacy: false), [.input(f, [3, 19])])
        try add("log_softmax_axis0", .logSoftmax(axis: 0, legacy: false), [.input(f, [4, 3])])
        // f32 kernels: rows above the OpenMP threshold, and a strided axis over two column blocks.
        try add("softmax_rows_parallel", .softmax(axis: -1, legacy: false), [.input(f, [40, 1000])])
        try add("log_softmax_rows_parallel", .logSoftmax(axis: 1, legacy: false), [.input(f, [40, 1000])])
        try add("softmax_strided_blocks", .softmax(axis: 1, legacy: false), [.input(f, [2, 7, 300])])
        try add("log_softmax_strided_blocks", .logSoftmax(axis: 1, legacy: false), [.input(f, [2, 7, 300])])
        // A strided axis longer than the 256 rows summed in float at a time.
        try add("softmax_strided_long_axis", .softmax(axis: 1, legacy: false), [.input(f, [1, 300, 20])])
        try add("log_softmax_strided_long_axis", .logSoftmax(axis: 1, legacy: false), [.input(f, [2, 260, 9])])
        try add("softmax_legacy_f16", .softmax(axis: 1, legacy: true), [.input(.f16, [3, 4, 5])])
        // One plane of 40,000: normalized by threads within the plane (MobileViTv2's GroupNorm).
        try add("instance_norm_one_plane", .instanceNormalization(epsilon: 1e-5), [.input(f, [1, 1, 200, 200]), .constant(random(f, [1], seed: 53)), .constant(random(f, [1], seed: 54))])
        // Sums over the innermost axis in vectorized rows of 256: 700 long, and with an outer axis.
        try add("reduce_sum_rows", .reduce(.sum, keepDims: false, noopWithEmptyAxes: false), [.input(f, [3, 700]), .constant(.vector(ints: [1]))])
        try add("reduce_l2_rows_two_axes", .reduce(.l2, keepDims: true, noopWithEmptyAxes: false), [.input(f, [5, 4, 300]), .constant(.vector(ints: [0, 2]))])
        try add("reduce_mean", .reduce(.mean, keepDims: true, noopWithEmptyAxes: false), [.input(f, [3, 5, 7]), .constant(.vector(ints: [1, 2]))])
        try add("reduce_sum_all", .reduce(.sum, keepDims: false, noopWithEmptyAxes: false), [.input(f, [3, 5])])
        try add("reduce_max_s32", .reduce(.max, keepDims: false, noopWithEmptyAxes: false), [.input(.s32, [3, 5]), .constant(.vector(ints: [0]))])
        for r in ReduceOp.allCases {
            try add("reduce_\(r.rawValue)_axes_0_2", .reduce(r, keepDims: r.rawValue.count % 2 == 0, noopWithEmptyAxes: false), [.input(f, [4, 3, 5]), .constant(.vector(ints: [0, -1]))], positive: r == .logSum || r == .prod)
            if !r.needsFloat {
                try add("reduce_\(r.rawValue)_s32_axis1", .reduce(r, keepDims: true, noopWithEmptyAxes: false), [.input(.s32, [3, 4]), .constant(.vector(ints: [1]))])
            }
        }
        // Ties (s32 values in -50...50 over 40 elements) and strided axes; one above the OpenMP threshold.
        try add("arg_max_ties_last", .argReduce(ArgReduceAttributes(largest: true, axis: 1, keepDims: true, selectLastIndex: true)), [.input(.s32, [2, 40, 3])])
        try add("arg_min_ties_first", .argReduce(ArgReduceAttributes(largest: false, axis: -1, keepDims: false, selectLastIndex: false)), [.input(.s32, [3, 40])])
        try add("arg_max_channels_parallel", .argReduce(ArgReduceAttributes(largest: true, axis: 1, keepDims: false, selectLastIndex: false)), [.input(f, [1, 21, 64, 64])])
        try add("top_k_largest_inner", .topK(TopKAttributes(axis: 1, largest: true)), [.input(f, [2, 30, 3]), .constant(.vector(ints: [7]))], outputs: 2)
        try add("top_k_smallest_ties_all", .topK(TopKAttributes(axis: -1, largest: false)), [.input(.s32, [3, 40]), .constant(.vector(ints: [40]))], outputs: 2)
        try add("top_k_parallel", .topK(TopKAttributes(axis: -1, largest: true)), [.input(f, [64, 1000]), .constant(.vector(ints: [5]))], outputs: 2)
        try add("gather_elements_axis1", .gatherElements(axis: 1), [.input(f, [3, 4, 5]), .constant(Tensor(.s64, shape: [3, 2, 5], ints: (0..<30).map { Int64($0 * 7 % 8) - 4 }))])
        try add("gather_elements_last_axis", .gatherElements(axis: -1), [.input(.s32, [2, 6]), .constant(Tensor(.s32, shape: [2, 9], ints: (0..<18).map { Int64($0 * 5 % 6) }))])
        try add("layer_norm", .layerNormalization(axis: -1, epsilon: 1e-5), [.input(f, [3, 21]), .constant(random(f, [21], seed: 20)), .constant(random(f, [21], seed: 21))])
        try add("quantize_u8", .quantizeLinear(axis: 1, outputType: .u8), [.input(f, [2, 3, 5]), .constant(.scalar(0.02)), .constant(.scalar(int: 128, .u8))])
        try add("quantize_s8_per_axis", .quantizeLinear(axis: 1, outputType: .s8), [.input(f, [2, 3, 5]), .constant(Tensor(.f32, shape: [3], floats: [0.01, 0.02, 0.05])), .constant(Tensor(.s8, shape: [3], ints: [0, 1, -1]))])
        try add("dequantize_u8", .dequantizeLinear(axis: 1), [.input(.u8, [2, 7]), .constant(.scalar(0.1)), .constant(.scalar(int: 3, .u8))])
        // Dynamic quantization: ONNX's DynamicQuantizeLinear and MatMulInteger (Kiln's loops), and
        // the dynamically quantized matmul (oneDNN's int8 matmul, or its f32 form without VNNI).
        try add("dynamic_quantize", .dynamicQuantizeLinear, [.input(f, [3, 37])], outputs: 3)
        try add("dynamic_quantize_positive", .dynamicQuantizeLinear, [.input(f, [70])], outputs: 3, positive: true)
        try add("matmul_integer_zero_points", .matMulInteger, [.input(.u8, [4, 5]), .input(.s8, [5, 3]), .constant(.scalar(int: 7, .u8)), .constant(Tensor(.s8, shape: [3], ints: [0, 5, -3]))])
        try add("matmul_integer_per_row", .matMulInteger, [.input(.u8, [4, 6]), .constant(random(.u8, [6, 5], seed: 60)), .constant(Tensor(.u8, shape: [4], ints: [1, 2, 3, 40])), .absent])
        try add("matmul_integer_batched", .matMulInteger, [.input(.s8, [2, 3, 5]), .input(.u8, [2, 5, 4])])
        try add("matmul_integer_shared_b", .matMulInteger, [.input(.u8, [2, 3, 5]), .constant(random(.s8, [5, 4], seed: 61))])
        try add("conv_integer_zero_points", .convInteger(ConvAttributes(pads: [1, 1, 1, 1], group: 2)), [.input(.u8, [1, 4, 6, 5]), .constant(random(.s8, [6, 2, 3, 3], seed: 65)), .constant(.scalar(int: 9, .u8)), .constant(Tensor(.s8, shape: [6], ints: [0, 1, -2, 3, 0, 5]))])
        try add("conv_integer_strided", .convInteger(ConvAttributes(strides: [2, 2])), [.input(.s8, [2, 3, 7, 7]), .constant(random(.u8, [4, 3, 2, 2], seed: 66))])
        let columns = (0..<24).map { Float(0.01 + 0.001 * Double($0)) }
        try add("dynamic_quantized_matmul_bias_gelu", .dynamicQuantizedMatMul(DynamicQuantizedMatMulAttributes(
            weights: Quantization(.s8, scales: columns, zeroPoints: [Int32](repeating: 0, count: 24), axis: 1), postOps: [.gelu(tanhApproximation: false)])),
            [.input(.u8, [2, 5, 16]), .constant(.scalar(0.05)), .constant(.scalar(int: 20, .u8)), .constant(random(.s8, [16, 24], seed: 62)), .constant(random(f, [24], seed: 63))])
        try add("dynamic_quantized_matmul_per_tensor", .dynamicQuantizedMatMul(DynamicQuantizedMatMulAttributes(weights: .perTensor(.s8, scale: 0.02, zeroPoint: 0))),
            [.input(.u8, [7, 9]), .constant(.scalar(0.1)), .constant(.scalar(int: 3, .u8)), .constant(random(.s8, [9, 5], seed: 64))])
        for t in [ElementType.u8, .s8] { try addInt8Cases(t, add) }
        return out
    }

    /// The kernels an int8 graph reaches between its quantized convs, on u8 and s8 values
    /// (u8 in 0...50, s8 in -50...50): elementwise with each broadcast pattern (wrapping as
    /// ONNX's integer ops do), pooling, reductions and every data movement, in the plain layout.
    /// Channels-last: LayoutTests.channelsLastKernelsOfEveryElementType.
    static func addInt8Cases(_ t: ElementType, _ addCase: (String, Op, [Operand], Int, Bool) throws -> Void) throws {
        func add(_ name: String, _ op: Op, _ operands: [Operand], outputs: Int = 1) throws { try addCase("\(t)_\(name)", op, operands, outputs, false) }
        func ints(_ shape: [Int], _ values: [Int64]) -> Operand { .constant(Tensor(t, shape: shape, ints: values)) }
        for b in [BinaryOp.add, .sub, .mul, .max, .min, .equal, .less, .greater] {
            try add("binary_\(b.rawValue)", .binary(b), [.input(t, [3, 1, 37]), .input(t, [4, 1])])
        }
        try add("binary_add_per_channel", .binary(.add), [.input(t, [2, 3, 4, 5]), ints([3, 1, 1], [1, 7, 20])])
        try add("binary_max_scalar", .binary(.max), [.input(t, [70]), ints([], [9])])
        try add("binary_div_scalar", .binary(.div), [.input(t, [70]), ints([1], [7])])
        try add("binary_mod", .binary(.mod), [.input(t, [70]), ints([1], [t == .u8 ? 7 : -7])])
        try add("binary_fmod", .binary(.fmod), [.input(t, [70]), ints([1], [t == .u8 ? 9 : -9])])
        try add("sum3", .variadic(.add), [.input(t, [2, 3]), .input(t, [3]), .input(t, [2, 1])])
        try add("max3", .variadic(.max), [.input(t, [2, 3]), .input(t, [3]), .input(t, [2, 1])])
        try add("where", .where, [.input(.bool, [2, 35]), .input(t, [35]), .input(t, [2, 1])])
        try add("unary_relu", .unary(.relu), [.input(t, [67])])
        if t == .s8 {
            try add("unary_neg", .unary(.neg), [.input(t, [67])])
            try add("unary_abs", .unary(.abs), [.input(t, [67])])
        }
        try add("clip", .clip, [.input(t, [2, 37]), ints([], [t == .u8 ? 5 : -20]), ints([], [30])])
        try add("cast_to_f32", .cast(to: .f32), [.input(t, [37])])
        try add("cast_to_s32", .cast(to: .s32), [.input(t, [37])])
        // Pooling.
        try add("max_pool", .maxPool(PoolAttributes(kernelShape: [3, 3], strides: [2, 2], pads: [1, 1, 1, 1])), [.input(t, [1, 3, 9, 11])])
        try add("max_pool_ceil", .maxPool(PoolAttributes(kernelShape: [2, 2], strides: [2, 2], ceilMode: true)), [.input(t, [1, 2, 7, 7])])
        try add("global_max_pool", .globalMaxPool, [.input(t, [2, 3, 7, 5])])
        // Reductions that stay in the type, and index-valued ones.
        try add("reduce_max", .reduce(.max, keepDims: true, noopWithEmptyAxes: false), [.input(t, [3, 5, 7]), .constant(.vector(ints: [1, 2]))])
        try add("reduce_min_axis0", .reduce(.min, keepDims: false, noopWithEmptyAxes: false), [.input(t, [4, 33]), .constant(.vector(ints: [0]))])
        try add("arg_max", .argReduce(ArgReduceAttributes(largest: true, axis: 1, keepDims: true, selectLastIndex: false)), [.input(t, [2, 40, 3])])
        try add("arg_min_last", .argReduce(ArgReduceAttributes(largest: false, axis: -1, keepDims: false, selectLastIndex: true)), [.input(t, [3, 40])])
        try add("top_k", .topK(TopKAttributes(axis: -1, largest: true)), [.input(t, [3, 40]), .constant(.vector(ints: [6]))], outputs: 2)
        // Data movement.
        try add("concat", .concat(axis: 1), [.input(t, [2, 3, 5]), .input(t, [2, 1, 5]), .input(t, [2, 4, 5])])
        try add("split", .split(axis: -1), [.input(t, [3, 10]), .constant(.vector(ints: [2, 5, 3]))], outputs: 3)
        try add("slice_negative_step", .slice, [.input(t, [5, 8]), .constant(.vector(ints: [-1, 1])), .constant(.vector(ints: [0, 7])), .constant(.vector(ints: [1, 0])), .constant(.vector(ints: [-2, 2]))])
        try add("reshape", .reshape(allowZero: false), [.input(t, [2, 3, 4]), .constant(.vector(ints: [0, -1]))])
        try add("transpose", .transpose(perm: [2, 0, 1]), [.input(t, [2, 3, 35])])
        try add("transpose_tiles", .transpose(perm: [0, 2, 1]), [.input(t, [2, 37, 41])])
        try add("gather", .gather(axis: 1), [.input(t, [3, 5, 2]), .constant(Tensor(.s64, shape: [2, 2], ints: [4, -1, 0, 2]))])
        try add("gather_elements", .gatherElements(axis: 1), [.input(t, [3, 4, 5]), .constant(Tensor(.s64, shape: [3, 2, 5], ints: (0..<30).map { Int64($0 * 7 % 8) - 4 }))])
        try add("expand", .expand, [.input(t, [3, 1]), .constant(.vector(ints: [2, 3, 4]))])
        try add("tile", .tile, [.input(t, [2, 3, 5]), .constant(.vector(ints: [3, 1, 2]))])
        try add("depth_to_space_dcr", .depthToSpace(blockSize: 2, crd: false), [.input(t, [2, 12, 3, 5])])
        try add("depth_to_space_crd", .depthToSpace(blockSize: 3, crd: true), [.input(t, [1, 18, 2, 3])])
        try add("space_to_depth", .spaceToDepth(blockSize: 2, crd: false), [.input(t, [2, 3, 6, 4])])
        for mode in [PadMode.constant, .reflect, .edge, .wrap] {
            try add("pad_\(mode.rawValue)", .pad(mode: mode), [.input(t, [3, 4]), .constant(.vector(ints: [1, 2, 2, 1])), ints([], [7])])
        }
        try add("resize_nearest", .resize(ResizeAttributes(mode: .nearest, coordinateTransformation: .asymmetric, nearestMode: .floor)), [.input(t, [1, 2, 3, 4]), .absent, .constant(Tensor(.f32, shape: [4], floats: [1, 1, 2, 1.5]))])
        try add("resize_nearest_2x", .resize(ResizeAttributes(mode: .nearest)), [.input(t, [1, 3, 5, 7]), .absent, .constant(Tensor(.f32, shape: [4], floats: [1, 1, 2, 2]))])
        try add("resize_linear", .resize(ResizeAttributes(mode: .linear)), [.input(t, [1, 2, 4, 5]), .absent, .absent, .constant(.vector(ints: [1, 2, 7, 3]))])
    }

    @Test func everyOpMatchesTheReference() throws {
        let all = try Self.cases()
        let merged = mergeGraphs(all.map { ($0.0, $0.1) }, name: "ops")
        var inputs: [String: Tensor] = [:]
        for (name, _, i) in all { for (k, t) in i { inputs["\(name)/\(k)"] = t } }
        let got = try compileAndRun(merged, inputs, name: "ops").outputs
        let want = try ReferenceInterpreter(merged).run(inputs)
        var failures: [String] = []
        for (k, expected) in want.sorted(by: { $0.key < $1.key }) {
            guard let g = got[k] else { failures.append("\(k): missing"); continue }
            if let problem = Conformance.compare(g, expected, rtol: 1e-4, atol: 1e-5) { failures.append("\(k): \(problem)") }
        }
        #expect(failures.isEmpty, "\(failures.joined(separator: "\n"))")
        #expect(want.count == all.reduce(0) { $0 + $1.1.outputs.count })
    }

    /// Softmax over positions masked by -3.4e38 (the additive attention mask transformers'
    /// exporters write) gives them exactly 0, never a subnormal, which made the matmul after it
    /// 50x slower; along the innermost axis (rows) and a strided one (column blocks).
    @Test func maskedSoftmaxGivesZerosNotSubnormals() throws {
        var g = Graph(name: "masked")
        let origin = NodeOrigin(opType: "test", version: 13)
        let rows = g.addValue("rows", TensorType(.f32, [4, 40])), columns = g.addValue("columns", TensorType(.f32, [2, 30, 20]))
        let a = g.addValue("a", TensorType(.f32, [4, 40])), b = g.addValue("b", TensorType(.f32, [2, 30, 20]))
        g.inputs = [rows, columns]
        g.nodes = [Node(name: "softmax_rows", op: .softmax(axis: -1, legacy: false), inputs: [rows], outputs: [a], origin: origin),
                   Node(name: "softmax_columns", op: .softmax(axis: 1, legacy: false), inputs: [columns], outputs: [b], origin: origin)]
        g.outputs = [a, b]
        // Positions whose index is 1 or 2 mod 3 are masked; their scores go to -3.4e38.
        func masked(_ shape: [Int], seed: Int) -> Tensor {
            let r = Self.random(.f32, shape, seed: seed).floats
            return floats(shape) { i in i % 3 == 0 ? r[i] : r[i] - 3.4e38 }
        }
        let inputs = ["rows": masked([4, 40], seed: 7), "columns": masked([2, 30, 20], seed: 8)]
        let got = try compileAndRun(g, inputs, name: "masked").outputs
        let want = try ReferenceInterpreter(g).run(inputs)
        for name in ["a", "b"] {
            #expect(Conformance.compare(got[name]!, want[name]!, rtol: 1e-5, atol: 1e-7) == nil, "\(name)")
            let y = got[name]!.floats
            #expect(y.indices.allSatisfy { $0 % 3 == 0 ? y[$0] >= Float.leastNormalMagnitude : y[$0] == 0 }, "\(name)")
        }
    }

    /// A product of 8 rows or more by constant weights, with no bias or one value per column, is
    /// a 1×1 conv; fewer rows, a bias matrix or runtime weights keep oneDNN's matmul. (Their
    /// results: everyOpMatchesTheReference.)
    @Test func productsByConstantWeightsRunAsConvs() throws {
        let all = try Self.cases()
        func source(_ name: String) throws -> String {
            var g = all.first { $0.0 == name }!.1
            try inferShapes(&g)
            return try emitModel(g, options: CodegenOptions(name: "p", kilnVersion: "test")).source
        }
        for name in ["matmul_rows_bias_gelu", "matmul_bias_gelu", "gemm_rows_transb_bias", "gemm_rows_row_bias"] {
            let s = try source(name)
            #expect(s.contains("dnnl::convolution_forward p") && !s.contains("dnnl::matmul p"), "\(name)")
        }
        for name in ["gemm_rows_matrix_bias", "gemm_transb_bias"] {
            let s = try source(name)
            #expect(s.contains("dnnl::matmul p") && !s.contains("dnnl::convolution_forward p"), "\(name)")
        }
        #expect(try source("gemm_rows_transb_bias").contains("tag::oihw"))
        #expect(try source("gemm_rows_row_bias").contains("tag::hwio"))
    }

    /// Names and paths from the model reach the header and the source only inside comments, made
    /// safe there: a name holding `*/`, a newline, a trigraph or a backslash puts no code into
    /// either (preprocessed, whose comments are gone, neither mentions the name's payload).
    @Test func modelNamesCannotEscapeComments() throws {
        let evil = "x */ int evil_in_header; /* \n int evil_line; // ??/"
        var g = Graph()
        let x = g.addValue(evil, TensorType(.f32, [1, 4]))
        let y = g.addValue("y??/\\", TensorType(.f32, [1, 4]))
        g.inputs = [x]
        g.outputs = [y]
        g.nodes = [Node(name: "n */ int evil_node; /*\nint evil_node2;", op: .unary(.relu), inputs: [x], outputs: [y], origin: NodeOrigin(opType: "Relu", version: 14))]
        var options = CodegenOptions(name: "safe", kilnVersion: "test")
        options.modelPath = "/tmp/a */ int evil_path; /*\nb.onnx"
        let emitted = try emitModel(g, options: options)
        let dir = temporaryDirectory()
        try emitted.header.write(toFile: dir + "/safe.h", atomically: true, encoding: .utf8)
        try emitted.source.write(toFile: dir + "/safe.cpp", atomically: true, encoding: .utf8)
        for (file, flags) in [("safe.h", ["-x", "c", "-std=c99"]), ("safe.h", ["-x", "c++", "-std=c++11"]), ("safe.cpp", ["-x", "c++", "-std=c++17", "-I", runtimeIncludeDirectory()])] {
            // Preprocessed (comments gone), with string literals (where names belong, escaped)
            // blanked: no trace of the names may remain.
            let pre = try run("g++", flags + ["-E", "-P", "-fopenmp", file], in: dir)
            let literal = try NSRegularExpression(pattern: #""(\\.|[^"\\\n])*""#)
            let code = literal.stringByReplacingMatches(in: pre, range: NSRange(pre.startIndex..., in: pre), withTemplate: "\"\"")
            #expect(!code.contains("evil_"), "\(file) (\(flags[1])): a name escaped its comment")
        }
    }

    /// Compares `text` with the snapshot file `name` (rewriting it with KILN_UPDATE_SNAPSHOTS set).
    static func expectSnapshot(_ text: String, _ name: String) throws {
        let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
        let snapshot = root.appendingPathComponent("Tests/KilnTests/Snapshots/\(name)")
        if ProcessInfo.processInfo.environment["KILN_UPDATE_SNAPSHOTS"] != nil {
            try text.write(to: snapshot, atomically: true, encoding: .utf8)
        }
        let expected = try String(contentsOf: snapshot, encoding: .utf8)
        #expect(text == expected, "\(name): regenerate with KILN_UPDATE_SNAPSHOTS=1 swift test if the change is intended")
    }

    /// The sample digits model, and the options its snapshots are emitted with.
    static func digits() throws -> (Graph, CodegenOptions) {
        let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
        let g = try loadModel(path: root.appendingPathComponent("samples/models/digits.onnx").path, inputShapes: ["image": [1, 1, 8, 8]])
        return (g, CodegenOptions(name: "digits", kilnVersion: "snapshot", modelPath: "samples/models/digits.onnx"))
    }

    @Test func headerMatchesTheSnapshot() throws {
        let (g, options) = try Self.digits()
        let emitted = try emitModel(g, options: options)
        try Self.expectSnapshot(emitted.header, "digits.h")
        // Self-contained: only <stddef.h> and <stdint.h>.
        let includes = emitted.header.split(separator: "\n").filter { $0.hasPrefix("#include") }
        #expect(includes == ["#include <stddef.h>", "#include <stdint.h>"])
    }

    /// The generated C++ of the same small model, beside the header, after the pipeline
    /// `kiln compile` runs (fusion, channels-last): a change to code generation shows up here as
    /// a reviewable diff of what a library compiles.
    @Test func sourceMatchesTheSnapshot() throws {
        var (g, options) = try Self.digits()
        _ = try Pipeline.optimize(&g, layout: .channelsLast)
        let emitted = try emitModel(g, options: options)
        try Self.expectSnapshot(emitted.source, "digits.cpp")
        // The same model and options give the same source.
        #expect(try emitModel(g, options: options).source == emitted.source)
    }

    @Test func memoryPlanReusesTheArena() throws {
        // A chain of 6 relus: at most two intermediates are alive at once.
        var g = Graph()
        var prev = g.addValue("x", TensorType(.f32, [1024]))
        g.inputs = [prev]
        for i in 0..<6 {
            let y = g.addValue("r\(i)", TensorType(.f32, [1024]))
            g.nodes.append(Node(name: "relu\(i)", op: .unary(.relu), inputs: [prev], outputs: [y], origin: NodeOrigin(opType: "Relu", version: 14)))
            prev = y
        }
        g.outputs = [prev]
        let plan = planMemory(g)
        #expect(plan.arenaBytes == 2 * 4096)
        if case .output(0) = plan.storage[prev]! {} else { Issue.record("the graph output should live in the caller's buffer") }
    }

    @Test func badNamesAreRejected() throws {
        #expect(throws: KilnError.self) { try validateModelName("9lives") }
        #expect(throws: KilnError.self) { try validateModelName("my-model") }
        try validateModelName("resnet50_v1")
    }
}
