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

    @Option(help: "Instruction set of the generated kernels: native, x86-64-v3 (AVX2) or x86-64-v4 (AVX-512). The library refuses to start (NAME_ERROR_UNSUPPORTED_CPU) on a CPU without it.")
    var cpu: String = TargetCPU.x86_64_v3.rawValue

    @Option(help: "3×3 stride-1 convs as Winograd convs: auto (oneDNN's on CPUs with AVX-512: the first handle created in a process times both forms and keeps the faster, later handles reuse the choice; Kiln's F(4×4, 3×3) where Kiln's conv kernel runs, by rule: at least 16 input channels, a multiple of 8, 9 output tiles of 4×4 and 12 MFLOP; on CPUs with AVX-512 also, by rule, from 14×14 outputs where oneDNN's Winograd cannot take the conv and from 56×56 with at most 256 channels in and out together where it can), always, or off (direct only; outputs identical across machines).")
    var winograd: String = WinogradPolicy.auto.rawValue

    @Option(help: "Quantized convs and matrix products on CPUs without VNNI: exact (the model's function on every CPU: oneDNN's int8 kernels where they cannot saturate, the f32 form of the definition elsewhere) or fast (oneDNN's int8 kernels everywhere, as ONNX Runtime and OpenVINO run them: about 2× faster without VNNI, where a pair of large u8·s8 products can saturate at 16 bits). The same on CPUs with VNNI.")
    var int8: String = Int8Policy.exact.rawValue

    @Option(name: .customLong("direct-conv"), help: "FP32 channels-last convs with constant weights, one group and a window larger than 1×1 or groups of a multiple of 8 output channels, and grouped convs with groups of 2 or 4 channels in and out, as Kiln's own AVX2 kernels: auto (where oneDNN has no AVX-512 kernels on the CPU the library runs on, ONEDNN_MAX_CPU_ISA included, for convs with at least 8 input channels per group or a tanh after them, and for the others where oneDNN would run an im2col GEMM), always, or off (oneDNN's kernels only).")
    var directConv: String = DirectConvPolicy.auto.rawValue

    @Option(help: "Layout of the activations around convolutions: auto (oneDNN's blocked nChw16c when the --cpu target has AVX-512, 3×3 stride-1 convs, Winograd's, dominate and nothing else reads the activations; channels-last otherwise), nhwc, or blocked (fast only on AVX-512 CPUs).")
    var layout: String = LayoutPolicy.auto.rawValue

    @Option(help: "Quantize an FP32 model: int8 (the X86 recipe: u8 activations per tensor, s8 weights per output channel, FP32 bias; convs with their post-ops and residual adds, matrix products, adds, poolings and the concatenations and reshapes between them run int8, the rest FP32; scales from --calibration). A model that is already quantized (QuantizeLinear/DequantizeLinear) needs no flag: its own scales are kept.")
    var quantize: String?

    @Option(help: "Calibration samples for --quantize: a directory of <input name>_<k>.npy files (k = 0, 1, ...; the input name as the model spells it or with characters other than letters, digits, '.', '-' and '_' written '_'), or one .npy file for a model with one input. A file holds one sample, or a batch along its first axis (N samples for an input of batch 1, N / B for batch B).")
    var calibration: String?

    @Option(name: .customLong("calibration-method"), help: "How each quantized tensor's range is chosen from the samples: histogram (the range minimising the squared quantization error over a 2048-bin histogram) or minmax (the observed minimum and maximum). Default: histogram.")
    var calibrationMethod: String?

    @Option(name: .customLong("calibration-random"), help: "Calibrate on N seeded random samples instead of --calibration: for smoke tests only, the scales mean nothing.")
    var calibrationRandom: Int?

    @Option(name: .customLong("accuracy-budget"), help: "With --quantize: keep the layers whose int8 error is largest FP32 until the outputs meet the budget on the calibration samples, and say which and what each cost: N% (each output's top-1, the largest element along its last axis, agrees with FP32's on at least 100 - N percent of the samples' rows) or cosine=F (each output's mean cosine similarity to FP32 at least F). Each layer's own int8 error is measured once; each try builds a library (the fewest layers found by doubling, then bisection).")
    var accuracyBudget: String?

    @Option(name: .customLong("precision-plan"), help: "With --quantize: replay the layer precisions of an earlier compile (its OUTDIR/NAME.precision.json, which every --quantize compile writes; edit a layer's \"precision\" to \"fp32\" or \"int8\" by hand if you like): the same model, samples and plan give the same library, nothing is measured again.")
    var precisionPlan: String?

    @Flag(name: .customLong("speed-check"), inversion: .prefixedNo, help: "With --quantize: time each int8 layer's step against its FP32 one on the compiling machine (the final library against the calibration's f32 build, on the first sample) and, when some are slower in int8, build the model with them FP32 and keep it if the whole model is faster. --no-speed-check: every layer the recipe (and --accuracy-budget) allows runs int8. Timings vary from run to run: NAME.precision.json records the decisions, and --precision-plan replays them.")
    var speedCheck = true

    @Flag(name: .customLong("time-steps"), inversion: .prefixedNo, help: "Run the built library on this machine (zeros as inputs, about a quarter of a second) to show each step's share of the time in NAME.report.html, with each compile step's duration. --no-time-steps: nothing runs (a library for a CPU this machine lacks never runs anyway) and the report holds no timings: the same model and options give byte-identical files.")
    var timeSteps = true

    @Option(help: "Build the library with g++'s sanitizers, to test a program with it: address,undefined (AddressSanitizer, UndefinedBehaviorSanitizer; either alone too) or thread (ThreadSanitizer). Programs must be compiled and linked with the same -fsanitize= (NAME.pc and NAMEConfig.cmake add it to the link). Slower and larger: for tests, not for shipping. Nothing is measured on such a library while compiling.")
    var sanitize: String?

    @Option(name: .customLong("print-after"), help: ArgumentHelp("Print the IR after this pass (repeatable; all: after every pass; a wrong name lists the passes).", valueName: "pass"))
    var printAfter: [String] = []

    @Option(name: .customLong("disable-pass"), help: ArgumentHelp("Skip this optimisation pass, for debugging: the library still computes the model (repeatable; a wrong name lists the passes).", valueName: "pass"))
    var disablePass: [String] = []

    @Flag(help: "Print nothing but warnings and errors: no progress, no summary.")
    var quiet = false

    @Flag(help: "Show each step, the g++ command lines, which convolutions and matrix products of a quantized model stay FP32, and which run as generic loops instead of oneDNN, and why (all of it is in NAME.report.md too).")
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
        if let quantize {
            guard quantize == "int8" else { throw ValidationError("--quantize must be int8") }
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
