import ArgumentParser
import Foundation
import KilnDriver
import KilnIR

struct Compile: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Compile a model into a C library: NAME.h, libNAME.a / libNAME.so, pkg-config and CMake files.",
        discussion: """
            Writes into OUTDIR the C header, the libraries, the generated C++ (kept for the curious and \
            for debuggers), a report (NAME.report.md and NAME.report.json: every node, the precision of \
            each conv and matrix product, the quantized tensors' scales and zero points, the memory; \
            NAME.report.html: the same as pictures, with each step's share of a run on this machine, the \
            arena over time and the compile steps' durations; open it in a browser), pkg-config files (NAME.pc for the shared library, NAME-static.pc for the \
            static one) and a CMake package (find_package(NAME) with CMAKE_PREFIX_PATH=OUTDIR; target \
            NAME::NAME is the static library when built). Every dynamic dimension must be pinned with --input-shape. The \
            libraries need libdnnl (Debian: libdnnl2), libgomp and libstdc++ at run time.
            """)

    @OptionGroup var options: ModelOptions

    @Option(name: [.customShort("o"), .customLong("output-dir")], help: "Where to write the library and its files.")
    var outputDir: String

    @Option(help: "The model's name: the prefix of every exported symbol and the header's name (default: from the file name).")
    var name: String?

    @Option(help: "Which libraries to build: static, shared or both.")
    var library: String = "both"

    @Option(help: "Instruction set of the generated kernels: native, x86-64-v3 (AVX2) or x86-64-v4 (AVX-512). On a CPU without it the library refuses to start (NAME_ERROR_UNSUPPORTED_CPU).")
    var cpu: String = TargetCPU.x86_64_v3.rawValue

    @Option(help: "3×3 stride-1 convs as Winograd convs: auto (oneDNN's on AVX-512 CPUs where timed 5% faster, Kiln's by a rule of the shapes), always, or off (direct only). Rules: docs/optimizations.md.")
    var winograd: String = WinogradPolicy.auto.rawValue

    @Option(help: "Quantized convs and matrix products on CPUs without VNNI: exact (the model's function on every CPU) or fast (oneDNN's int8 kernels everywhere: about 2× faster, may saturate). See docs/int8.md.")
    var int8: String = Int8Policy.exact.rawValue

    @Option(name: .customLong("direct-conv"), help: "FP32 convs as Kiln's own AVX2 kernels (direct, grouped, Winograd): auto (where oneDNN has no AVX-512 kernels, by a rule of the shapes), always, or off. Rules: docs/optimizations.md.")
    var directConv: String = DirectConvPolicy.auto.rawValue

    @Option(help: "Activation layout around convs: auto (channels-last, or oneDNN's blocked nChw16c for Winograd-heavy graphs on AVX-512 targets), nhwc, or blocked. Rules: docs/optimizations.md.")
    var layout: String = LayoutPolicy.auto.rawValue

    @Option(help: "Quantize an FP32 model: int8 (the X86 recipe, scales from --calibration) or dynamic (MatMul/Gemm weights int8, their sources quantized as the model runs; no calibration). A model already quantized (QuantizeLinear/DequantizeLinear, or ONNX Runtime's quantize_dynamic) needs no flag. See docs/int8.md.")
    var quantize: String?

    @Option(help: "Calibration samples for --quantize: a directory of <input name>_<k>.npy files (k = 0, 1, ...), or one .npy file for a model with one input. Forms: docs/int8.md.")
    var calibration: String?

    @Option(name: .customLong("calibration-method"), help: "How each quantized tensor's range is chosen from the samples: histogram (the least squared quantization error) or minmax (the observed range). Default: histogram.")
    var calibrationMethod: String?

    @Option(name: .customLong("calibration-random"), help: "Calibrate on N seeded random samples instead of --calibration: for smoke tests only, the scales mean nothing.")
    var calibrationRandom: Int?

    @Option(name: .customLong("accuracy-budget"), help: "With --quantize: keep the layers with the largest int8 error FP32 until the outputs meet the budget on the samples: N% (top-1 differs from FP32's on at most N% of rows) or cosine=F.")
    var accuracyBudget: String?

    @Option(name: .customLong("precision-plan"), help: "With --quantize: replay the layer precisions of an earlier compile's NAME.precision.json (editable by hand): nothing is measured, the same inputs give the same library.")
    var precisionPlan: String?

    @Flag(name: .customLong("speed-check"), inversion: .prefixedNo, help: "With --quantize: keep FP32 the layers whose int8 step is slower on this machine, if the whole model is then faster; then every layer, if the int8 library is slower than the FP32 one. --no-speed-check: every layer the recipe allows runs int8.")
    var speedCheck = true

    @Flag(name: .customLong("time-steps"), inversion: .prefixedNo, help: "Run the built library here (zeros, about 0.25 s) for each step's time share in NAME.report.html. --no-time-steps: no timings, and the same model and options give byte-identical files.")
    var timeSteps = true

    @Option(help: "Build with g++'s sanitizers to test a program: address,undefined (either alone too) or thread. The program must link with the same -fsanitize= (NAME.pc adds it). Not for shipping.")
    var sanitize: String?

    @Option(name: .customLong("print-after"), help: ArgumentHelp("Print the IR after this pass (repeatable; all: after every pass; a wrong name lists the passes).", valueName: "pass"))
    var printAfter: [String] = []

    @Option(name: .customLong("disable-pass"), help: ArgumentHelp("Skip this optimisation pass, for debugging: the library still computes the model (repeatable; a wrong name lists the passes).", valueName: "pass"))
    var disablePass: [String] = []

    @Flag(help: "Print nothing but warnings and errors: no progress, no summary.")
    var quiet = false

    @Flag(help: "Show each step, the g++ command lines, and which convs and matrix products stay FP32 or run as generic loops instead of oneDNN, and why (all in NAME.report.md too).")
    var verbose = false

    func run() throws {
        guard let layoutPolicy = LayoutPolicy(rawValue: layout) else {
            throw ValidationError("--layout must be one of: \(LayoutPolicy.allCases.map(\.rawValue).joined(separator: ", "))")
        }
        guard let winogradPolicy = WinogradPolicy(rawValue: winograd) else {
            throw ValidationError("--winograd must be one of: \(WinogradPolicy.allCases.map(\.rawValue).joined(separator: ", "))")
        }
        guard let int8Policy = Int8Policy(rawValue: int8) else {
            throw ValidationError("--int8 must be one of: \(Int8Policy.allCases.map(\.rawValue).joined(separator: ", "))")
        }
        guard let directConvPolicy = DirectConvPolicy(rawValue: directConv) else {
            throw ValidationError("--direct-conv must be one of: \(DirectConvPolicy.allCases.map(\.rawValue).joined(separator: ", "))")
        }
        guard let kind = LibraryKind(rawValue: library) else {
            throw ValidationError("--library must be static, shared or both")
        }
        guard let target = TargetCPU(rawValue: cpu) else {
            throw ValidationError("--cpu must be one of: \(TargetCPU.allCases.map(\.rawValue).joined(separator: ", "))")
        }
        var quantizeOptions: QuantizeOptions?
        if quantize == "dynamic" {
            if calibration != nil || calibrationRandom != nil || calibrationMethod != nil || accuracyBudget != nil || precisionPlan != nil || !speedCheck {
                throw ValidationError("--quantize dynamic needs no calibration: --calibration, --calibration-random, --calibration-method, --accuracy-budget, --precision-plan and --no-speed-check go with --quantize int8")
            }
        } else if let quantize {
            guard quantize == "int8" else { throw ValidationError("--quantize must be int8 or dynamic") }
            guard let method = CalibrationMethod(rawValue: calibrationMethod ?? CalibrationMethod.histogram.rawValue) else {
                throw ValidationError("--calibration-method must be one of: \(CalibrationMethod.allCases.map(\.rawValue).joined(separator: ", "))")
            }
            let budget = try accuracyBudget.map { text in
                do { return try AccuracyBudget(parsing: text) } catch let e as KilnError { throw ValidationError(e.message) }
            }
            switch (calibration, calibrationRandom) {
            case (let path?, nil): quantizeOptions = QuantizeOptions(samples: .path(path), method: method, accuracyBudget: budget, precisionPlan: precisionPlan)
            case (nil, let n?):
                guard (1...100_000).contains(n) else { throw ValidationError("--calibration-random must be between 1 and 100000") }
                quantizeOptions = QuantizeOptions(samples: .random(n), method: method, accuracyBudget: budget, precisionPlan: precisionPlan)
            case (nil, nil): throw ValidationError("--quantize int8 needs calibration samples: --calibration DIR (a directory of <input name>_<k>.npy files, or one .npy file)")
            case (_?, _?): throw ValidationError("give --calibration or --calibration-random, not both")
            }
        } else if calibration != nil || calibrationRandom != nil || calibrationMethod != nil || accuracyBudget != nil || precisionPlan != nil || !speedCheck {
            throw ValidationError("--calibration, --calibration-random, --calibration-method, --accuracy-budget, --precision-plan and --no-speed-check go with --quantize int8")
        }
        if quiet && verbose { throw ValidationError("--quiet and --verbose: choose one") }
        let progress = ProgressDisplay(verbose: verbose, quiet: quiet)
        defer { progress.finish() }
        var o = CompileOptions(modelPath: options.model, outputDirectory: outputDir,
                               name: name ?? defaultModelName(options.model), kilnVersion: kilnVersion)
        o.inputShapes = try options.shapes()
        o.library = kind
        o.cpu = target
        o.winograd = winogradPolicy
        o.int8 = int8Policy
        o.directConv = directConvPolicy
        o.layout = layoutPolicy
        quantizeOptions?.speedCheck = speedCheck
        o.quantize = quantizeOptions
        o.quantizeDynamic = quantize == "dynamic"
        o.timeSteps = timeSteps
        o.passes.disabled = Set(disablePass)
        o.passes.printAfter = Set(printAfter)
        o.passes.printIR = { pass, ir in print("// IR after \(pass)\n\(ir)") }
        if let sanitize {
            do { o.sanitize = try Sanitizer.parse(sanitize) } catch let e as KilnError { throw ValidationError(e.message) }
        }
        if calibrationRandom != nil {
            FileHandle.standardError.write(Data("kiln: warning: calibrating on random samples (--calibration-random): the int8 library's scales mean nothing; use it to test the flow, not to run the model\n".utf8))
        }
        let started = Date()
        let r = try compileModel(o, progress: { progress($0) }, log: { line in
            if verbose { FileHandle.standardError.write(Data("  $ \(line)\n".utf8)) }
        })
        progress.finish()
        if quiet { return }
        print("compiled \(options.model) in \(String(format: "%.1f", Date().timeIntervalSince(started))) s: \(r.oneDNNNodes) oneDNN primitives, \(r.loopNodes) generated kernels")
        print("arena: \(formatCount(r.arenaBytes)) bytes per instance; weights: \(formatCount(r.weightsBytes)) bytes")
        if r.report.isQuantized { print(r.report.summary) }
        for line in r.quantizationLines { print(line) }
        if verbose { for f in r.report.notes { print(f) } }
        for p in ([r.products.header, r.products.staticLibrary, r.products.sharedLibrary] + r.products.pkgConfig.map { $0 } + [r.products.cmakeConfig, r.products.source] + r.reportFiles).compactMap({ $0 }) {
            print("wrote \(p)")
        }
    }
}
