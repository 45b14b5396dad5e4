import KilnIR

/// The pass sequences, each a short list read top to bottom.
public enum Pipeline {
    /// Import → static, simplified graph: what the reference interpreter and later stages take.
    public static func simplify(_ g: inout Graph, inputShapes: [String: [Int]],
                                progress: (String) -> Void = { _ in }) throws {
        progress("pin input shapes");   try pinInputShapes(&g, inputShapes)
        progress("infer shapes, fold"); try inferShapes(&g)
        progress("remove identities");  removeIdentities(&g)
        progress("eliminate dead code"); eliminateDeadCode(&g)
        try verify(g, requireStaticShapes: true)
    }

    /// Simplified graph → fused graph. Returns the convs and matrix products of a quantized graph
    /// that stay FP32, each with why. `kilnConvKernels`: whether Kiln's own conv kernels may run
    /// (`--direct-conv` not off). `quantize` (Kiln's own quantization, `--quantize int8`) runs
    /// between the f32 fusions and the lowering: it sees convs with their post-ops and residual
    /// sums fused, and writes the QDQ form the lowering takes, as a quantized graph arrives.
    @discardableResult
    public static func fuse(_ g: inout Graph, kilnConvKernels: Bool = true, quantize: (inout Graph) throws -> Void = { _ in },
                            progress: (String) -> Void = { _ in }) throws -> [String] {
        fuseFloat(&g, kilnConvKernels: kilnConvKernels, progress: progress)
        try quantize(&g)
        return try lower(&g, progress: progress)
    }

    /// The f32 fusions: what a conv, a matrix product and their post-ops become.
    public static func fuseFloat(_ g: inout Graph, kilnConvKernels: Bool = true, progress: (String) -> Void = { _ in }) {
        progress("grouped convs");      mergeGroupedConvs(&g)
        progress("trim conv taps");     trimConvTaps(&g)
        progress("pad conv inputs");    padConvInputs(&g, kilnConvKernels: kilnConvKernels)
        progress("activations");        recognizeActivations(&g)
        progress("layer norms");        recognizeLayerNorm(&g)
        progress("channel shuffles");   recognizeChannelShuffle(&g)
        progress("global pooling");     recognizeGlobalPooling(&g)
        progress("fold batch norm");    foldBatchNorm(&g)
        progress("fold into concats");  foldIntoConcatProducers(&g)
        progress("lower batch norm");   lowerBatchNorm(&g)
        progress("fuse post-ops");      fusePostOps(&g)
        progress("fuse residual sums"); fuseSum(&g)
        progress("fuse post-ops");      fusePostOps(&g)
        progress("upsampling deconvs"); convTransposeAsConv(&g)
    }

    /// Quantize/dequantize pairs → quantized ops; then the elementwise loops. Returns the convs and
    /// matrix products of a quantized graph that stay FP32, each with why.
    @discardableResult
    public static func lower(_ g: inout Graph, progress: (String) -> Void = { _ in }) throws -> [String] {
        progress("sink dequantization"); sinkDequantize(&g)
        // Again: a QDQ graph's shuffles show once the dequantization between their steps has sunk.
        progress("channel shuffles");   recognizeChannelShuffle(&g)
        progress("lower quantized ops"); let keptFloat = lowerQuantized(&g)
        progress("fuse quantized sums"); fuseQuantizedSums(&g)
        progress("fuse elementwise");   fuseElementwise(&g)
        try verify(g, requireStaticShapes: true)
        return keptFloat
    }

    /// Simplified graph → what code generation takes: fused, with memory layouts assigned.
    @discardableResult
    public static func optimize(_ g: inout Graph, layout: LayoutPolicy = .auto, kilnConvKernels: Bool = true,
                                quantize: (inout Graph) throws -> Void = { _ in },
                                progress: (String) -> Void = { _ in }) throws -> [String] {
        fuseFloat(&g, kilnConvKernels: kilnConvKernels, progress: progress)
        try quantize(&g)
        return try finish(&g, layout: layout, progress: progress)
    }

    /// Fused (and quantized) graph → what code generation takes: lowered, with memory layouts.
    /// Returns the convs and matrix products of a quantized graph that stay FP32, each with why.
    @discardableResult
    public static func finish(_ g: inout Graph, layout: LayoutPolicy = .auto, progress: (String) -> Void = { _ in }) throws -> [String] {
        let keptFloat = try lower(&g, progress: progress)
        progress("assign layouts");     assignLayouts(&g, policy: layout)
        try verify(g, requireStaticShapes: true)
        return keptFloat
    }
}
