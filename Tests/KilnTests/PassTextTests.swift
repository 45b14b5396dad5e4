import Foundation
import Testing
import KilnIR
import KilnPasses

/// Runs `pass` on the graph `before` describes and compares the result's text with `after`.
/// Both texts are IR (`parseIR`); the result and `after` are compared as `printIR` prints them
/// (so spacing, attribute defaults and number spelling in `after` do not matter), without the
/// `# node-name origin` trailers. Constants must be listed in the order `printIR` lists them
/// (the graph's, then those the pass added), and only those some node or output reads. Both
/// graphs are verified, type rules included. A mismatch is reported as a line diff.
/// `checkTypes: false` for a `before` whose types are not all known yet (`f32[?]`, for
/// `inferShapes`): the graphs are then verified without the type rules.
func checkPass(_ pass: (inout Graph) throws -> Void, before: String, after: String, checkTypes: Bool = true,
               sourceLocation: SourceLocation = #_sourceLocation) throws {
    /// Errors say which text they are about.
    func labelled<T>(_ which: String, _ body: () throws -> T) throws -> T {
        do { return try body() } catch let e as KilnError { throw KilnError("\(which): \(e.message)") }
    }
    var g = try labelled("before") { try parseIR(before) }
    try labelled("before") { try verify(g, checkTypeRules: checkTypes) }
    try pass(&g)
    try labelled("the pass's result") { try verify(g, checkTypeRules: checkTypes) }
    let expected = try labelled("after") { try parseIR(after) }
    try labelled("after") { try verify(expected, checkTypeRules: checkTypes) }
    let want = withoutTrailers(printIR(expected)), got = withoutTrailers(printIR(g))
    if got != want {
        Issue.record(Comment(rawValue: "the pass's result differs from `after` (- expected, + got):\n" + textDiff(expected: want, actual: got)),
                     sourceLocation: sourceLocation)
    }
}

/// `printIR`'s text without the `  # node-name origin` trailers.
func withoutTrailers(_ text: String) -> String {
    text.split(separator: "\n", omittingEmptySubsequences: false).map { line in
        guard let r = line.range(of: "  # ", options: .backwards) else { return String(line) }
        return String(line[..<r.lowerBound])
    }.joined(separator: "\n")
}

/// Pass tests written as IR before and after (the same passes as in FusionTests and PassTests,
/// there built node by node).
@Suite struct PassTextTests {
    @Test func foldBatchNormScalesTheWeights() throws {
        // s = scale / √(var + ε) = [2, 1]; w' = w · s per output channel; b' = (b − mean) · s + bias.
        // The second conv's output is read by its batch norm and by the add: it stays.
        try checkPass(foldBatchNorm, before: """
            graph block(%x: f32[1x2x4x4]) -> (%y, %z)
              %w = constant f32[2x2x1x1] [1.0, 0.5, -1.0, 2.0]
              %b = constant f32[2] [0.5, -0.5]
              %scale = constant f32[2] [4.0, 3.0]
              %bias = constant f32[2] [1.0, 1.0]
              %mean = constant f32[2] [0.5, 0.5]
              %var = constant f32[2] [3.0, 8.0]
              %c = conv(%x, %w, %b) : f32[1x2x4x4]
              %bn = batch_norm(%c, %scale, %bias, %mean, %var) {epsilon=1.0} : f32[1x2x4x4]
              %y = relu(%bn) : f32[1x2x4x4]
              %c2 = conv(%x, %w) : f32[1x2x4x4]
              %bn2 = batch_norm(%c2, %scale, %bias, %mean, %var) {epsilon=1.0} : f32[1x2x4x4]
              %z = add(%bn2, %c2) : f32[1x2x4x4]
            """, after: """
            graph block(%x: f32[1x2x4x4]) -> (%y, %z)
              %w = constant f32[2x2x1x1] [1.0, 0.5, -1.0, 2.0]
              %scale = constant f32[2] [4.0, 3.0]
              %bias = constant f32[2] [1.0, 1.0]
              %mean = constant f32[2] [0.5, 0.5]
              %var = constant f32[2] [3.0, 8.0]
              %w_bn = constant f32[2x2x1x1] [2.0, 1.0, -1.0, 2.0]
              %bn_bias = constant f32[2] [1.0, 0.0]
              %bn = conv(%x, %w_bn, %bn_bias) : f32[1x2x4x4]
              %y = relu(%bn) : f32[1x2x4x4]
              %c2 = conv(%x, %w) : f32[1x2x4x4]
              %bn2 = batch_norm(%c2, %scale, %bias, %mean, %var) {epsilon=1.0} : f32[1x2x4x4]
              %z = add(%bn2, %c2) : f32[1x2x4x4]
            """)
    }

    @Test func aPerChannelConstantAddBecomesTheConvsBias() throws {
        // The transposed conv has no bias: the add's [1, 2, 1, 1] constant becomes it. The conv's
        // bias [0.5, -0.5] takes the one-element constant 1. A rank-1 [2] constant broadcasts
        // along the width, and an add after a post-op is not the conv's bias: both stay.
        try checkPass(foldBiasAdds, before: """
            graph block(%x: f32[1x2x2x2]) -> (%y, %z, %u, %v)
              %w = constant f32[2x2x1x1] [1.0, 0.5, -1.0, 2.0]
              %b = constant f32[2] [0.5, -0.5]
              %k = constant f32[1x2x1x1] [3.0, 4.0]
              %one = constant f32[] [1.0]
              %t = conv_transpose(%x, %w) {kernel=[1, 1]} : f32[1x2x2x2]
              %y = add(%t, %k) : f32[1x2x2x2]
              %c = conv(%x, %w, %b) : f32[1x2x2x2]
              %z = add(%one, %c) : f32[1x2x2x2]
              %c2 = conv(%x, %w) : f32[1x2x2x2]
              %u = add(%c2, %b) : f32[1x2x2x2]
              %c3 = conv(%x, %w) {post_ops=[relu]} : f32[1x2x2x2]
              %v = add(%c3, %k) : f32[1x2x2x2]
            """, after: """
            graph block(%x: f32[1x2x2x2]) -> (%y, %z, %u, %v)
              %w = constant f32[2x2x1x1] [1.0, 0.5, -1.0, 2.0]
              %b = constant f32[2] [0.5, -0.5]
              %k = constant f32[1x2x1x1] [3.0, 4.0]
              %y_bias = constant f32[2] [3.0, 4.0]
              %z_bias = constant f32[2] [1.5, 0.5]
              %y = conv_transpose(%x, %w, %y_bias) {kernel=[1, 1]} : f32[1x2x2x2]
              %z = conv(%x, %w, %z_bias) : f32[1x2x2x2]
              %c2 = conv(%x, %w) : f32[1x2x2x2]
              %u = add(%c2, %b) : f32[1x2x2x2]
              %c3 = conv(%x, %w) {post_ops=[relu]} : f32[1x2x2x2]
              %v = add(%c3, %k) : f32[1x2x2x2]
            """)
    }

    @Test func activationsBecomePostOps() throws {
        // ReLU, ReLU6 (a clip with constant bounds) and SiLU (x · sigmoid(x)) join their conv; the
        // relu of a conv that is also a graph output does not.
        try checkPass(fusePostOps, before: """
            graph acts(%x: f32[1x2x4x4]) -> (%r, %r6, %silu, %kept, %k)
              %w = constant f32[2x2x1x1] [1.0, 0.0, 0.0, 1.0]
              %lo = constant f32[] [0.0]
              %hi = constant f32[] [6.0]
              %a = conv(%x, %w) : f32[1x2x4x4]
              %r = relu(%a) : f32[1x2x4x4]
              %b = conv(%x, %w) : f32[1x2x4x4]
              %r6 = clip(%b, %lo, %hi) : f32[1x2x4x4]
              %c = conv(%x, %w) : f32[1x2x4x4]
              %s = sigmoid(%c) : f32[1x2x4x4]
              %silu = mul(%c, %s) : f32[1x2x4x4]
              %k = conv(%x, %w) : f32[1x2x4x4]
              %kept = relu(%k) : f32[1x2x4x4]
            """, after: """
            graph acts(%x: f32[1x2x4x4]) -> (%r, %r6, %silu, %kept, %k)
              %w = constant f32[2x2x1x1] [1.0, 0.0, 0.0, 1.0]
              %r = conv(%x, %w) {post_ops=[relu]} : f32[1x2x4x4]
              %r6 = conv(%x, %w) {post_ops=[clip(0, 6)]} : f32[1x2x4x4]
              %silu = conv(%x, %w) {post_ops=[silu]} : f32[1x2x4x4]
              %k = conv(%x, %w) : f32[1x2x4x4]
              %kept = relu(%k) : f32[1x2x4x4]
            """)
    }

    @Test func residualAddBecomesASum() throws {
        // The add joins the conv computed last as a sum post-op; the other operand is the addend.
        try checkPass(fuseSum, before: """
            graph residual(%x: f32[1x2x4x4]) -> (%y)
              %w = constant f32[2x2x1x1] [1.0, 0.0, 0.0, 1.0]
              %c1 = conv(%x, %w) : f32[1x2x4x4]
              %c2 = conv(%c1, %w) : f32[1x2x4x4]
              %y = add(%c1, %c2) : f32[1x2x4x4]
            """, after: """
            graph residual(%x: f32[1x2x4x4]) -> (%y)
              %w = constant f32[2x2x1x1] [1.0, 0.0, 0.0, 1.0]
              %c1 = conv(%x, %w) : f32[1x2x4x4]
              %y = conv(%c1, %w, _, %c1) {post_ops=[sum]} : f32[1x2x4x4]
            """)
    }

    @Test func decomposedGeluAndHardSwishAreRecognised() throws {
        try checkPass(recognizeActivations, before: """
            graph acts(%x: f32[2x7]) -> (%gelu, %hs)
              %sqrt2 = constant f32[] [1.4142135]
              %one = constant f32[] [1.0]
              %half = constant f32[] [0.5]
              %three = constant f32[] [3.0]
              %zero = constant f32[] [0.0]
              %six = constant f32[] [6.0]
              %d = div(%x, %sqrt2) : f32[2x7]
              %e = erf(%d) : f32[2x7]
              %a = add(%e, %one) : f32[2x7]
              %m = mul(%x, %a) : f32[2x7]
              %gelu = mul(%m, %half) : f32[2x7]
              %a3 = add(%x, %three) : f32[2x7]
              %cl = clip(%a3, %zero, %six) : f32[2x7]
              %m2 = mul(%x, %cl) : f32[2x7]
              %hs = div(%m2, %six) : f32[2x7]
            """, after: """
            graph acts(%x: f32[2x7]) -> (%gelu, %hs)
              %gelu = gelu(%x) : f32[2x7]
              %hs = hard_swish(%x) : f32[2x7]
            """)
    }

    @Test func identitiesAndDropoutsGo() throws {
        // Readers read the input; an identity producing a graph output hands its name over.
        try checkPass(removeIdentities, before: """
            graph ids(%x: f32[4]) -> (%y, %out)
              %i = identity(%x) : f32[4]
              %d = dropout(%i) : f32[4]
              %y = relu(%d) : f32[4]
              %e = exp(%y) : f32[4]
              %out = identity(%e) : f32[4]
            """, after: """
            graph ids(%x: f32[4]) -> (%y, %out)
              %y = relu(%x) : f32[4]
              %out = exp(%y) : f32[4]
            """)
    }

    @Test func channelShuffleBecomesAGather() throws {
        try checkPass(recognizeChannelShuffle, before: """
            graph shuffle(%x: f32[1x6x2x2]) -> (%y)
              %split = constant s64[5] [1, 2, 3, 2, 2]
              %back = constant s64[4] [1, 6, 2, 2]
              %r = reshape(%x, %split) : f32[1x2x3x2x2]
              %t = transpose(%r) {perm=[0, 2, 1, 3, 4]} : f32[1x3x2x2x2]
              %y = reshape(%t, %back) : f32[1x6x2x2]
            """, after: """
            graph shuffle(%x: f32[1x6x2x2]) -> (%y)
              %y_channels = constant s64[6] [0, 3, 1, 4, 2, 5]
              %y = gather(%x, %y_channels) {axis=1} : f32[1x6x2x2]
            """)
    }

    @Test func lonelyBatchNormBecomesAScaleShift() throws {
        // s = scale / √(var + ε), shift = bias − mean · s
        try checkPass(lowerBatchNorm, before: """
            graph preact(%x: f32[1x2x3x3]) -> (%y)
              %scale = constant f32[2] [4.0, 3.0]
              %bias = constant f32[2] [1.0, -1.0]
              %mean = constant f32[2] [0.5, 2.0]
              %var = constant f32[2] [3.0, 8.0]
              %y = batch_norm(%x, %scale, %bias, %mean, %var) {epsilon=1.0} : f32[1x2x3x3]
            """, after: """
            graph preact(%x: f32[1x2x3x3]) -> (%y)
              %y_scale = constant f32[2] [2.0, 1.0]
              %y_shift = constant f32[2] [0.0, -3.0]
              %y = scale_shift(%x, %y_scale, %y_shift) : f32[1x2x3x3]
            """)
    }

    @Test func elementwiseChainsBecomeOneLoop() throws {
        try checkPass(fuseElementwise, before: """
            graph chain(%x: f32[2x8], %m: f32[2x1]) -> (%y)
              %d = sub(%x, %m) : f32[2x8]
              %l = leaky_relu(%d) {alpha=0.1} : f32[2x8]
              %y = mul(%l, %l) : f32[2x8]
            """, after: """
            graph chain(%x: f32[2x8], %m: f32[2x1]) -> (%y)
              %y = elementwise(%x, %m) {steps=[s0=sub(in0, in1); s1=leaky_relu(s0){alpha=0.1}; s2=mul(s1, s1)]} : f32[2x8]
            """)
    }

    @Test func aDequantizationJoinsEveryLoopThatReadsIt() throws {
        // %d has two elementwise readers: each loop dequantizes the u8 values itself, %d goes.
        try checkPass(fuseElementwise, before: """
            graph g(%q: u8[2x8], %w: f32[2x8]) -> (%y, %z)
              %s = constant f32[] [0.5]
              %zp = constant u8[] [3]
              %d = dequantize_linear(%q, %s, %zp) {axis=1} : f32[2x8]
              %y = mul(%d, %w) : f32[2x8]
              %z = relu(%d) : f32[2x8]
            """, after: """
            graph g(%q: u8[2x8], %w: f32[2x8]) -> (%y, %z)
              %s = constant f32[] [0.5]
              %zp = constant u8[] [3]
              %y = elementwise(%q, %s, %zp, %w) {steps=[s0=dequantize_linear(in0, in1, in2){axis=1}; s1=mul(s0, in3)]} : f32[2x8]
              %z = elementwise(%q, %s, %zp) {steps=[s0=dequantize_linear(in0, in1, in2){axis=1}; s1=relu(s0)]} : f32[2x8]
            """)
        // A reader that is not a loop (the transpose) keeps %d; the loop still reads the u8 values.
        try checkPass(fuseElementwise, before: """
            graph g(%q: u8[2x8]) -> (%y, %t)
              %s = constant f32[] [0.5]
              %d = dequantize_linear(%q, %s) {axis=1} : f32[2x8]
              %y = relu(%d) : f32[2x8]
              %t = transpose(%d) {perm=[1, 0]} : f32[8x2]
            """, after: """
            graph g(%q: u8[2x8]) -> (%y, %t)
              %s = constant f32[] [0.5]
              %d = dequantize_linear(%q, %s) {axis=1} : f32[2x8]
              %y = elementwise(%q, %s) {steps=[s0=dequantize_linear(in0, in1){axis=1}; s1=relu(s0)]} : f32[2x8]
              %t = transpose(%d) {perm=[1, 0]} : f32[8x2]
            """)
    }

    @Test func dequantizationSinksBelowASplit() throws {
        // YOLO's C2f block: a Split of a dequantized tensor moves the u8 values; each output is
        // dequantized after it, and the quantization of an output then cancels.
        try checkPass(sinkDequantize, before: """
            graph g(%q: u8[1x4x2x2]) -> (%b, %r)
              %s = constant f32[] [0.5]
              %z = constant u8[] [3]
              %sizes = constant s64[2] [2, 2]
              %flat = constant s64[2] [2, 4]
              %d = dequantize_linear(%q, %s, %z) {axis=1} : f32[1x4x2x2]
              %a, %b = split(%d, %sizes) {axis=1} : f32[1x2x2x2], f32[1x2x2x2]
              %aq = quantize_linear(%a, %s, %z) {axis=1 to=u8} : u8[1x2x2x2]
              %r = reshape(%aq, %flat) : u8[2x4]
            """, after: """
            graph g(%q: u8[1x4x2x2]) -> (%b, %r)
              %s = constant f32[] [0.5]
              %z = constant u8[] [3]
              %sizes = constant s64[2] [2, 2]
              %flat = constant s64[2] [2, 4]
              %a_quantized, %b_quantized = split(%q, %sizes) {axis=1} : u8[1x2x2x2], u8[1x2x2x2]
              %b = dequantize_linear(%b_quantized, %s, %z) {axis=1} : f32[1x2x2x2]
              %r = reshape(%a_quantized, %flat) : u8[2x4]
            """)
    }

    @Test func inferShapesFoldsConstantSubgraphs() throws {
        // add(a, b) feeds expand's shape: it folds to the constant [3, 4], and expand's type follows.
        try checkPass({ _ = try inferShapes(&$0) }, before: """
            graph g(%x: f32[3x1]) -> (%y)
              %a = constant s64[2] [2, 3]
              %b = constant s64[2] [1, 1]
              %sum = add(%a, %b) : s64[?]
              %y = expand(%x, %sum) : f32[?]
            """, after: """
            graph g(%x: f32[3x1]) -> (%y)
              %sum = constant s64[2] [3, 4]
              %y = expand(%x, %sum) : f32[3x4]
            """, checkTypes: false)
    }

    @Test func deadNodesGo() throws {
        try checkPass(eliminateDeadCode, before: """
            graph dead(%x: f32[4]) -> (%a)
              %a = relu(%x) : f32[4]
              %b = exp(%x) : f32[4]
            """, after: """
            graph dead(%x: f32[4]) -> (%a)
              %a = relu(%x) : f32[4]
            """)
    }

    @Test func ortDynamicMatMulsBecomeOneOp() throws {
        // quantize_dynamic's chain: the weights' zero points all 0, the scale product of the
        // source's scale and the per-column scales; what the match leaves unread goes.
        try checkPass(recognizeDynamicQuantization, before: """
            graph dq(%x: f32[4x3]) -> (%y)
              %w = constant s8[3x2] [1, -2, 3, 4, -5, 6]
              %wz = constant s8[2] [0, 0]
              %ws = constant f32[2] [0.5, 0.25]
              %q, %s, %z = dynamic_quantize_linear(%x) : u8[4x3], f32[], u8[]
              %i = matmul_integer(%q, %w, %z, %wz) : s32[4x2]
              %f = cast(%i) {to=f32} : f32[4x2]
              %k = mul(%s, %ws) : f32[2]
              %y = mul(%f, %k) : f32[4x2]
            """, after: """
            graph dq(%x: f32[4x3]) -> (%y)
              %w = constant s8[3x2] [1, -2, 3, 4, -5, 6]
              %q, %s, %z = dynamic_quantize_linear(%x) : u8[4x3], f32[], u8[]
              %y = dynamic_quantized_matmul(%q, %s, %z, %w) {weights=s8(axis 1: s=[0.5, 0.25], z=0)} : f32[4x2]
            """)
    }

    @Test func ortDynamicConvBecomesADequantizedConv() throws {
        // ConvInteger with a weight zero point of 1 and one scale: the source dequantized by its
        // run-time parameters, the weights by their constant ones ((w − 1) · 0.5).
        try checkPass(recognizeDynamicQuantization, before: """
            graph dc(%x: f32[1x1x3x3]) -> (%y)
              %w = constant s8[2x1x1x1] [3, -1]
              %wz = constant s8[] [1]
              %ws = constant f32[] [0.5]
              %q, %s, %z = dynamic_quantize_linear(%x) : u8[1x1x3x3], f32[], u8[]
              %i = conv_integer(%q, %w, %z, %wz) : s32[1x2x3x3]
              %f = cast(%i) {to=f32} : f32[1x2x3x3]
              %k = mul(%s, %ws) : f32[]
              %y = mul(%f, %k) : f32[1x2x3x3]
            """, after: """
            graph dc(%x: f32[1x1x3x3]) -> (%y)
              %w_dequantized = constant f32[2x1x1x1] [1.0, -1.0]
              %q, %s, %z = dynamic_quantize_linear(%x) : u8[1x1x3x3], f32[], u8[]
              %q_dequantized = dequantize_linear(%q, %s, %z) {axis=1} : f32[1x1x3x3]
              %y = conv(%q_dequantized, %w_dequantized) : f32[1x2x3x3]
            """)
    }

    @Test func dynamicMatMulWithNonzeroWeightZeroPointStays() throws {
        // Asymmetric weights are not what the dynamically quantized matmul computes: MatMulInteger stays.
        let text = """
            graph dq(%x: f32[4x3]) -> (%y)
              %w = constant s8[3x2] [1, -2, 3, 4, -5, 6]
              %wz = constant s8[2] [0, 1]
              %ws = constant f32[2] [0.5, 0.25]
              %q, %s, %z = dynamic_quantize_linear(%x) : u8[4x3], f32[], u8[]
              %i = matmul_integer(%q, %w, %z, %wz) : s32[4x2]
              %f = cast(%i) {to=f32} : f32[4x2]
              %k = mul(%s, %ws) : f32[2]
              %y = mul(%f, %k) : f32[4x2]
            """
        try checkPass(recognizeDynamicQuantization, before: text, after: text)
    }

    @Test func quantizeDynamicallySharesTheSourceQuantization() throws {
        // Two matmuls read %x: one DynamicQuantizeLinear; the weights s8 per column (max|w| / 127),
        // the bias and post-ops kept; the Gemm's transposed weights stored [K, N].
        try checkPass({ quantizeDynamically(&$0) }, before: """
            graph mlp(%x: f32[2x2]) -> (%y, %g)
              %w = constant f32[2x2] [1.2, -0.5, -2.54, 0.2]
              %b = constant f32[2] [0.5, -0.5]
              %y = matmul(%x, %w, %b) {post_ops=[relu]} : f32[2x2]
              %g = gemm(%x, %w) {trans_b=true} : f32[2x2]
            """, after: """
            graph mlp(%x: f32[2x2]) -> (%y, %g)
              %b = constant f32[2] [0.5, -0.5]
              %y_weights = constant s8[2x2] [60, -127, -127, 51]
              %g_weights = constant s8[2x2] [127, -127, -53, 10]
              %x_quantized, %x_scale, %x_zero_point = dynamic_quantize_linear(%x) : u8[2x2], f32[], u8[]
              %y = dynamic_quantized_matmul(%x_quantized, %x_scale, %x_zero_point, %y_weights, %b) {weights=s8(axis 1: s=[0.02, 0.003937008], z=0) post_ops=[relu]} : f32[2x2]
              %g = dynamic_quantized_matmul(%x_quantized, %x_scale, %x_zero_point, %g_weights) {weights=s8(axis 1: s=[0.009448819, 0.02], z=0)} : f32[2x2]
            """)
    }
}
