import Foundation
import KilnIR

/// One step of the pipeline: a name for `--print-after` and `--disable-pass`, the progress line
/// it shows, and whether the graph is still correct without it (`optional`: an optimisation).
public struct Pass {
    public let name: String
    public let label: String
    public let optional: Bool
    let run: (inout Graph) throws -> Void

    init(_ name: String, _ label: String, optional: Bool = true, _ run: @escaping (inout Graph) throws -> Void) {
        self.name = name
        self.label = label
        self.optional = optional
        self.run = run
    }
}

/// How the passes run: which to skip, after which to print the IR, whether to verify after each.
public struct PassOptions: Sendable {
    /// Passes not to run (`--disable-pass`): optional ones only (`Pipeline.checkPassNames`).
    public var disabled: Set<String> = []
    /// Passes after which `printIR` gets the graph's text form (`--print-after`; "all": every pass).
    public var printAfter: Set<String> = []
    /// Called with the pass's name and the IR after it.
    public var printIR: @Sendable (String, String) -> Void = { _, _ in }
    /// Verify the graph after every pass, each node's type rule included. On in tests (the
    /// environment variable KILN_VERIFY_PASSES=1, which scripts/test sets).
    public var verifyEachPass = PassOptions.verifyFromEnvironment

    public init() {}

    /// The same passes, printing nothing (a second build of the graph in one compile).
    public var printingNothing: PassOptions {
        var o = self
        o.printAfter = []
        return o
    }

    static let verifyFromEnvironment: Bool = {
        guard let v = getenv("KILN_VERIFY_PASSES") else { return false }
        return String(cString: v) == "1"
    }()
}

/// The pass sequences, each a short list read top to bottom.
public enum Pipeline {
    /// Import → static, simplified graph: what the reference interpreter and later stages take.
    public static func simplify(_ g: inout Graph, inputShapes: [String: [Int]], options: PassOptions = PassOptions(),
                                progress: (String) -> Void = { _ in }) throws {
        try run(simplification(inputShapes: inputShapes), on: &g, options: options, progress: progress, staticAfter: "infer-shapes")
        try verify(g, requireStaticShapes: true)
    }

    static func simplification(inputShapes: [String: [Int]]) -> [Pass] {
        [
            Pass("pin-input-shapes", "pin input shapes", optional: false) { try pinInputShapes(&$0, inputShapes) },
            Pass("infer-shapes", "infer shapes, fold", optional: false) { try inferShapes(&$0) },
            Pass("remove-identities", "remove identities", optional: false) { removeIdentities(&$0) },
            Pass("eliminate-dead-code", "eliminate dead code") { eliminateDeadCode(&$0) },
        ]
    }

    /// The f32 fusions: what a conv, a matrix product and their post-ops become.
    /// `kilnConvKernels`: whether Kiln's own conv kernels may run (`--direct-conv` not off).
    static func floatFusions(kilnConvKernels: Bool) -> [Pass] {
        [
            Pass("merge-grouped-convs", "grouped convs") { mergeGroupedConvs(&$0) },
            Pass("trim-conv-taps", "trim conv taps") { trimConvTaps(&$0) },
            Pass("pad-conv-inputs", "pad conv inputs") { padConvInputs(&$0, kilnConvKernels: kilnConvKernels) },
            Pass("recognize-dynamic-quantization", "dynamic quantization") { recognizeDynamicQuantization(&$0) },
            Pass("recognize-activations", "activations") { recognizeActivations(&$0) },
            Pass("recognize-layer-norm", "layer norms") { recognizeLayerNorm(&$0) },
            Pass("recognize-channel-shuffle", "channel shuffles") { recognizeChannelShuffle(&$0) },
            Pass("recognize-global-pooling", "global pooling") { recognizeGlobalPooling(&$0) },
            Pass("fold-bias-adds", "fold bias adds") { foldBiasAdds(&$0) },
            Pass("fold-batch-norm", "fold batch norm") { foldBatchNorm(&$0) },
            Pass("fold-into-concat-producers", "fold into concats") { foldIntoConcatProducers(&$0) },
            Pass("lower-batch-norm", "lower batch norm", optional: false) { lowerBatchNorm(&$0) },
            Pass("fuse-post-ops", "fuse post-ops") { fusePostOps(&$0) },
            Pass("fuse-sum", "fuse residual sums") { fuseSum(&$0) },
            Pass("fuse-post-ops", "fuse post-ops") { fusePostOps(&$0) },
            Pass("conv-transpose-as-conv", "upsampling deconvs") { convTransposeAsConv(&$0) },
        ]
    }

    /// Quantize/dequantize pairs → quantized ops; then the elementwise loops. `keptFloat` gets the
    /// convs and matrix products of a quantized graph that stay FP32, each with why.
    static func lowering(keptFloat: @escaping ([String]) -> Void) -> [Pass] {
        [
            Pass("sink-dequantize", "sink dequantization") { sinkDequantize(&$0) },
            // Again: a QDQ graph's shuffles show once the dequantization between their steps has sunk.
            Pass("recognize-channel-shuffle", "channel shuffles") { recognizeChannelShuffle(&$0) },
            Pass("lower-quantized", "lower quantized ops", optional: false) { keptFloat(lowerQuantized(&$0)) },
            Pass("fuse-quantized-sums", "fuse quantized sums") { fuseQuantizedSums(&$0) },
            Pass("fuse-elementwise", "fuse elementwise") { fuseElementwise(&$0) },
        ]
    }

    static func layouts(_ policy: LayoutPolicy) -> [Pass] {
        [Pass("assign-layouts", "assign layouts", optional: false) { assignLayouts(&$0, policy: policy) }]
    }

    /// Every pass, in pipeline order (a pass that runs twice, twice).
    static var allPasses: [Pass] {
        simplification(inputShapes: [:]) + floatFusions(kilnConvKernels: true) + lowering { _ in } + layouts(.auto)
    }

    /// Every pass's name, in pipeline order, each once.
    public static var passNames: [String] {
        var names: [String] = []
        for p in allPasses where !names.contains(p.name) { names.append(p.name) }
        return names
    }

    /// The names of the passes that `--disable-pass` may skip.
    public static var optionalPassNames: [String] {
        let required = Set(allPasses.filter { !$0.optional }.map(\.name))
        return passNames.filter { !required.contains($0) }
    }

    /// Checks the names given to `--print-after` ("all" too) and `--disable-pass` (optional passes only).
    public static func checkPassNames(_ o: PassOptions) throws {
        let names = passNames
        for p in o.printAfter where p != "all" && !names.contains(p) {
            throw KilnError("--print-after \(p): no such pass (the passes: \(names.joined(separator: ", ")), or all)")
        }
        for p in o.disabled where !optionalPassNames.contains(p) {
            throw KilnError(names.contains(p)
                ? "--disable-pass \(p): the graph cannot be compiled without it (passes that may be disabled: \(optionalPassNames.joined(separator: ", ")))"
                : "--disable-pass \(p): no such pass (passes that may be disabled: \(optionalPassNames.joined(separator: ", ")))")
        }
    }

    /// Simplified graph → fused graph. Returns the convs and matrix products of a quantized graph
    /// that stay FP32, each with why. `quantize` (Kiln's own quantization, `--quantize int8`) runs
    /// between the f32 fusions and the lowering: it sees convs with their post-ops and residual
    /// sums fused, and writes the QDQ form the lowering takes, as a quantized graph arrives.
    @discardableResult
    public static func fuse(_ g: inout Graph, kilnConvKernels: Bool = true, quantize: (inout Graph) throws -> Void = { _ in },
                            options: PassOptions = PassOptions(), progress: (String) -> Void = { _ in }) throws -> [String] {
        try fuseFloat(&g, kilnConvKernels: kilnConvKernels, options: options, progress: progress)
        try quantize(&g)
        return try lower(&g, options: options, progress: progress)
    }

    /// The f32 fusions: what a conv, a matrix product and their post-ops become.
    public static func fuseFloat(_ g: inout Graph, kilnConvKernels: Bool = true, options: PassOptions = PassOptions(),
                                 progress: (String) -> Void = { _ in }) throws {
        try run(floatFusions(kilnConvKernels: kilnConvKernels), on: &g, options: options, progress: progress)
    }

    /// Quantize/dequantize pairs → quantized ops; then the elementwise loops. Returns the convs and
    /// matrix products of a quantized graph that stay FP32, each with why.
    @discardableResult
    public static func lower(_ g: inout Graph, options: PassOptions = PassOptions(),
                             progress: (String) -> Void = { _ in }) throws -> [String] {
        var kept: [String] = []
        try run(lowering { kept = $0 }, on: &g, options: options, progress: progress)
        try verify(g, requireStaticShapes: true)
        return kept
    }

    /// Simplified graph → what code generation takes: fused, with memory layouts assigned.
    @discardableResult
    public static func optimize(_ g: inout Graph, layout: LayoutPolicy = .auto, kilnConvKernels: Bool = true,
                                quantize: (inout Graph) throws -> Void = { _ in }, options: PassOptions = PassOptions(),
                                progress: (String) -> Void = { _ in }) throws -> [String] {
        try fuseFloat(&g, kilnConvKernels: kilnConvKernels, options: options, progress: progress)
        try quantize(&g)
        return try finish(&g, layout: layout, options: options, progress: progress)
    }

    /// Fused (and quantized) graph → what code generation takes: lowered, with memory layouts.
    /// Returns the convs and matrix products of a quantized graph that stay FP32, each with why.
    @discardableResult
    public static func finish(_ g: inout Graph, layout: LayoutPolicy = .auto, options: PassOptions = PassOptions(),
                              progress: (String) -> Void = { _ in }) throws -> [String] {
        let keptFloat = try lower(&g, options: options, progress: progress)
        try run(layouts(layout), on: &g, options: options, progress: progress)
        try verify(g, requireStaticShapes: true)
        return keptFloat
    }

    /// Runs `passes` in order: each shows its progress line, is skipped when disabled, prints the
    /// IR after it when asked, and is verified after when `verifyEachPass` (static shapes required
    /// from `staticAfter` on, or from the start when nil).
    static func run(_ passes: [Pass], on g: inout Graph, options: PassOptions, progress: (String) -> Void,
                    staticAfter: String? = nil) throws {
        var isStatic = staticAfter == nil
        for p in passes {
            progress(p.label)
            if p.optional && options.disabled.contains(p.name) { continue }
            try p.run(&g)
            if p.name == staticAfter { isStatic = true }
            if options.verifyEachPass {
                do {
                    try verify(g, requireStaticShapes: isStatic, checkTypeRules: isStatic)
                } catch let e as KilnError {
                    throw KilnError("after pass \(p.name): \(e.message)")
                }
            }
            if options.printAfter.contains(p.name) || options.printAfter.contains("all") {
                options.printIR(p.name, printIR(g))
            }
        }
    }
}
