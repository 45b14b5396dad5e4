import ArgumentParser
import Foundation
import KilnDriver
import KilnIR

struct Kiln: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "kiln",
        abstract: "Kiln: an ahead-of-time compiler from ONNX models to self-contained C libraries.",
        discussion: """
            Examples:
              kiln inspect model.onnx --input-shape input=1x3x224x224
              kiln eval model.onnx --input input=image.npy --output-dir out/
              kiln compile model.onnx -o out/ --name resnet
              kiln run out/libresnet.so --input input=image.npy --output-dir results/
              kiln bench out/libresnet.so --threads 2
            """,
        version: kilnVersion,
        subcommands: [Inspect.self, Eval.self, Compile.self, Run.self, Bench.self, ConformanceCommand.self])
}

/// Options shared by the commands that read a model.
struct ModelOptions: ParsableArguments {
    @Argument(help: "The ONNX model file.")
    var model: String

    @Option(name: .customLong("input-shape"),
            help: ArgumentHelp("Pin an input's shape, e.g. image=1x3x224x224 (repeatable).", valueName: "NAME=SHAPE"))
    var inputShapes: [String] = []

    func shapes() throws -> [String: [Int]] {
        var out: [String: [Int]] = [:]
        for s in inputShapes {
            let (name, shape) = try parseInputShape(s)
            out[name] = shape
        }
        return out
    }
}

struct Inspect: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Describe a model: inputs, outputs, ops, parameters, MACs and anything Kiln cannot handle.",
        discussion: "Exits with status 1 when any node is unsupported or the shapes do not check out.")

    @OptionGroup var options: ModelOptions

    @Flag(help: "Print the report as JSON.")
    var json = false

    @Flag(name: .customLong("print-ir"), help: "Print the simplified IR (needs every input dimension pinned).")
    var printIR = false

    func run() throws {
        let r = try inspectModel(path: options.model, inputShapes: try options.shapes())
        if json {
            let enc = JSONEncoder()
            enc.outputFormatting = [.prettyPrinted, .sortedKeys]
            print(String(decoding: try enc.encode(r), as: UTF8.self))
        } else {
            print(formatInspection(r))
        }
        if printIR {
            let g = try loadModel(path: options.model, inputShapes: try options.shapes())
            print(KilnIR.printIR(g), terminator: "")
        }
        if !r.isSupported { throw ExitCode(1) }
    }
}

func formatCount(_ n: Int) -> String {
    let f = NumberFormatter()
    f.numberStyle = .decimal
    f.groupingSeparator = ","
    return f.string(from: NSNumber(value: n)) ?? String(n)
}

func formatScaled(_ n: Int) -> String {
    let d = Double(n)
    if d >= 1e9 { return String(format: "%.2f G", d / 1e9) }
    if d >= 1e6 { return String(format: "%.2f M", d / 1e6) }
    if d >= 1e3 { return String(format: "%.2f K", d / 1e3) }
    return String(n)
}

func formatInspection(_ r: Inspection) -> String {
    var s = "model: \(r.model) (opset \(r.opset), \(r.nodeCount) nodes)\n"
    func tensor(_ t: Inspection.TensorInfo) -> String { "  \(t.name): \(t.type)[\(t.shape.joined(separator: "x"))]\n" }
    s += "inputs:\n" + r.inputs.map(tensor).joined()
    s += "outputs:\n" + r.outputs.map(tensor).joined()
    s += "ops:\n"
    for (op, n) in r.ops.sorted(by: { $0.value != $1.value ? $0.value > $1.value : $0.key < $1.key }) {
        s += "  \(op.padding(toLength: max(op.count, 22), withPad: " ", startingAt: 0)) \(n)\n"
    }
    s += "parameters: \(formatCount(r.parameters)) (\(formatScaled(r.parameterBytes))B)\n"
    s += "multiply-accumulates: " + (r.macs.map { "\(formatScaled($0)) (\(formatCount($0)))" } ?? "unknown until every input dimension is pinned") + "\n"
    for u in r.unpinned {
        s += "unpinned: dimension \(u.dimension) ('\(u.symbol)') of input '\(u.input)' feeds \(u.feeds.prefix(3).joined(separator: ", "))\(u.feeds.count > 3 ? ", ..." : "") — pin it with --input-shape \(u.input)=...\n"
    }
    if r.unsupported.isEmpty && r.shapeErrors.isEmpty {
        s += "unsupported: none"
    } else {
        s += "unsupported: \(r.unsupported.count) node\(r.unsupported.count == 1 ? "" : "s")\n"
        for u in r.unsupported {
            s += "  node '\(u.name)' (\(u.opType), opset \(u.opset)): \(u.reason)\n"
        }
        for e in r.shapeErrors { s += "  \(e)\n" }
        s.removeLast()
    }
    return s
}

struct Eval: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Run a model with the reference interpreter and write its outputs as .npy files.",
        discussion: """
            Inputs are .npy files (float32, float16, int8, uint8, int32, int64 or bool, C order). A dynamic \
            dimension is pinned from the input file's shape unless --input-shape says otherwise. Each output \
            is written as DIR/<output name>.npy (characters unsafe in file names become '_').
            """)

    @OptionGroup var options: ModelOptions

    @Option(name: .customLong("input"), help: ArgumentHelp("An input: NAME=FILE.npy, or just FILE.npy for a single-input model (repeatable).", valueName: "NAME=FILE"))
    var inputs: [String] = []

    @OptionGroup var results: ResultOptions

    @Flag(name: .customLong("print-ir"), help: "Print the simplified IR before running.")
    var printIR = false

    func run() throws {
        var shapes = try options.shapes()
        let imported = try inspectInputs(options.model)
        let tensors = try readInputs(inputs, names: imported.map(\.name))
        for (name, t) in tensors {
            guard shapes[name] == nil, let decl = imported.first(where: { $0.name == name }), decl.dynamic else { continue }
            guard t.shape.count == decl.rank else {
                throw KilnError("input '\(name)' has rank \(decl.rank), the file holds shape \(shapeString(t.shape))")
            }
            shapes[name] = t.shape
        }
        let g = try loadModel(path: options.model, inputShapes: shapes)
        if printIR { print(KilnIR.printIR(g), terminator: "") }
        let outs = try evaluateReference(g, inputs: tensors)
        try results.write(outs, names: g.outputs.map { g.values[$0].name })
    }
}

/// Where `eval` and `run` put what they compute: .npy files and/or a top-1 accuracy.
struct ResultOptions: ParsableArguments {
    @Option(name: [.customShort("o"), .customLong("output-dir")], help: "Where to write the outputs (created if missing).")
    var outputDir: String?

    @Option(help: ArgumentHelp("Integer class labels (.npy): print the top-1 accuracy of the first output.", valueName: "FILE"))
    var labels: String?

    func validate() throws {
        guard outputDir != nil || labels != nil else {
            throw ValidationError("give --output-dir DIR (and/or --labels FILE.npy)")
        }
    }

    /// Writes each output as DIR/<name>.npy and prints the accuracy of the first against the labels.
    func write(_ outs: [String: Tensor], names: [String]) throws {
        if let dir = outputDir {
            try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
            for name in names {
                let path = (dir as NSString).appendingPathComponent(sanitizedFileName(name) + ".npy")
                try NPY.write(outs[name]!, path: path)
                print("wrote \(path) (\(outs[name]!.type))")
            }
        }
        if let labels, let first = names.first {
            let l = try NPY.read(path: labels)
            let (ok, total) = try top1Accuracy(logits: outs[first]!, labels: l)
            print(String(format: "accuracy: %d/%d = %.2f%%", ok, total, 100 * Double(ok) / Double(max(total, 1))))
        }
    }
}

/// Progress lines on stderr: shown on a terminal, or always with --verbose.
struct Progress {
    let enabled: Bool
    let start = Date()
    init(verbose: Bool) { enabled = verbose || isatty(2) != 0 }
    func callAsFunction(_ step: String) {
        guard enabled else { return }
        FileHandle.standardError.write(Data(String(format: "[%6.2fs] %@\n", Date().timeIntervalSince(start), step).utf8))
    }
}

struct Compile: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Compile a model into a C library: NAME.h, libNAME.a / libNAME.so, pkg-config and CMake files.",
        discussion: """
            Writes into OUTDIR the C header, the libraries, the generated C++ (kept for the curious and \
            for debuggers), a report (NAME.report.md and NAME.report.json: every node, the precision of \
            each conv and matrix product, the quantized tensors' scales and zero points, the memory), pkg-config files (NAME.pc for the shared library, NAME-static.pc for the \
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

    @Option(help: "3×3 stride-1 convs as Winograd convs: auto (oneDNN's on CPUs with AVX-512: the first handle created in a process times both forms and keeps the faster, later handles reuse the choice; Kiln's F(4×4, 3×3) where Kiln's conv kernel runs, by rule: at least 16 input channels, a multiple of 8, 9 output tiles of 4×4 and 12 MFLOP), always, or off (direct only; outputs identical across machines).")
    var winograd: String = WinogradPolicy.auto.rawValue

    @Option(help: "Quantized convs and matrix products on CPUs without VNNI: exact (the model's function on every CPU: oneDNN's int8 kernels where they cannot saturate, the f32 form of the definition elsewhere) or fast (oneDNN's int8 kernels everywhere, as ONNX Runtime and OpenVINO run them: about 2× faster without VNNI, where a pair of large u8·s8 products can saturate at 16 bits). The same on CPUs with VNNI.")
    var int8: String = Int8Policy.exact.rawValue

    @Option(name: .customLong("direct-conv"), help: "FP32 channels-last convs with a window larger than 1×1 (one group, constant weights), and grouped convs with groups of 2, 4 or 8 channels in and out, as Kiln's own AVX2 kernels: auto (where oneDNN has no AVX-512 kernels on the CPU the library runs on, ONEDNN_MAX_CPU_ISA included, for convs with at least 8 input channels or a tanh after them), always, or off (oneDNN's kernels only).")
    var directConv: String = DirectConvPolicy.auto.rawValue

    @Option(help: "Layout of the activations around convolutions: auto (oneDNN's blocked nChw16c when the --cpu target has AVX-512, 3×3 stride-1 convs, Winograd's, dominate and nothing else reads the activations; channels-last otherwise), nhwc, or blocked (fast only on AVX-512 CPUs).")
    var layout: String = LayoutPolicy.auto.rawValue

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
        let progress = Progress(verbose: verbose)
        var o = CompileOptions(modelPath: options.model, outputDirectory: outputDir,
                               name: name ?? defaultModelName(options.model), kilnVersion: kilnVersion)
        o.inputShapes = try options.shapes()
        o.library = kind
        o.cpu = target
        o.winograd = winogradPolicy
        o.int8 = int8Policy
        o.directConv = directConvPolicy
        o.layout = layoutPolicy
        let started = Date()
        let r = try compileModel(o, progress: { progress($0) }, log: { line in
            if verbose { FileHandle.standardError.write(Data("  $ \(line)\n".utf8)) }
        })
        print("compiled \(options.model) in \(String(format: "%.1f", Date().timeIntervalSince(started))) s: \(r.oneDNNNodes) oneDNN primitives, \(r.loopNodes) generated kernels")
        print("arena: \(formatCount(r.arenaBytes)) bytes per instance; weights: \(formatCount(r.weightsBytes)) bytes")
        if r.report.isQuantized { print(r.report.summary) }
        if verbose { for f in r.report.notes { print(f) } }
        for p in ([r.products.header, r.products.staticLibrary, r.products.sharedLibrary] + r.products.pkgConfig.map { $0 } + [r.products.cmakeConfig, r.products.source] + r.reportFiles).compactMap({ $0 }) {
            print("wrote \(p)")
        }
    }
}

/// Reads `--input NAME=FILE.npy` (or `FILE.npy` for a single input) against a list of input names.
func readInputs(_ specs: [String], names: [String]) throws -> [String: Tensor] {
    var tensors: [String: Tensor] = [:]
    for spec in specs {
        var name: String, file: String
        if let eq = spec.firstIndex(of: "="), !FileManager.default.fileExists(atPath: spec) {
            name = String(spec[..<eq])
            file = String(spec[spec.index(after: eq)...])
        } else {
            guard names.count == 1 else { throw KilnError("--input \(spec): the model has \(names.count) inputs; name it as NAME=FILE.npy") }
            name = names[0]
            file = spec
        }
        guard names.contains(name) else {
            throw KilnError("--input \(spec): the model has no input '\(name)' (inputs: \(names.joined(separator: ", ")))")
        }
        tensors[name] = try NPY.read(path: file)
    }
    return tensors
}

/// Options shared by the commands that load a compiled library.
struct LibraryOptions: ParsableArguments {
    @Argument(help: "The compiled shared library (libNAME.so).")
    var library: String

    @Option(help: "The model's name, if it differs from the library's file name.")
    var name: String?

    @Option(name: .customLong("input"), help: ArgumentHelp("An input: NAME=FILE.npy, or FILE.npy for a single-input model (repeatable).", valueName: "NAME=FILE"))
    var inputs: [String] = []

    @Option(help: "Threads (0: OpenMP's default).")
    var threads: Int = 0

    /// Loads the library, reads the given inputs, and makes an instance with the thread count set.
    func open() throws -> (CLibrary, CLibrary.Instance, [String: Tensor]) {
        let lib = try CLibrary(path: library, name: name)
        let tensors = try readInputs(inputs, names: lib.inputs.map(\.name))
        let instance = try lib.makeInstance()
        try instance.setThreads(threads)
        return (lib, instance, tensors)
    }
}

struct Run: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Run a compiled shared library (through its C API) and write its outputs as .npy files.",
        discussion: "Each output is written as DIR/<output name>.npy (characters unsafe in file names become '_').")

    @OptionGroup var options: LibraryOptions

    @OptionGroup var results: ResultOptions

    func run() throws {
        let (lib, instance, tensors) = try options.open()
        let outs = try instance.run(tensors)
        try results.write(outs, names: lib.outputs.map(\.name))
    }
}

struct Bench: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Time a compiled shared library: median, p10 and p90 latency and throughput after warm-up.",
        discussion: "Inputs are random unless given with --input. Uses only the library's C API.")

    @OptionGroup var options: LibraryOptions

    @Option(help: "Timed runs (default: as many as fit in --seconds).")
    var iterations: Int?

    @Option(help: "Seconds to spend timing when --iterations is not given.")
    var seconds: Double = 3

    @Option(help: "Untimed warm-up runs.")
    var warmup: Int = 10

    @Flag(help: "Also print the time of every step (node or fused group), slowest first, with the bandwidth it reaches (bytes read and written per second, and as a share of this machine's memcpy bandwidth, measured after the runs) and, for convs and matrix products, its GOP/s.")
    var profile = false

    @Flag(help: "Print the figures as one JSON object instead (latency_ms; with --profile also copy_bandwidth in bytes/s and steps in run order: name, ms, bytes, ops per run).")
    var json = false

    func run() throws {
        let (lib, instance, given) = try options.open()
        var inputData: [[UInt8]] = []
        for spec in lib.inputs {
            if let t = given[spec.name] {
                guard t.elementType == spec.type, t.shape == spec.shape else {
                    throw KilnError("input '\(spec.name)' must be \(spec.type)[\(shapeString(spec.shape))]")
                }
                inputData.append(t.rawBytes())
            } else {
                var rng = UInt64(0x9E3779B97F4A7C15)
                inputData.append((0..<spec.bytes).map { _ in
                    rng = rng &* 6364136223846793005 &+ 1442695040888963407
                    // Small values for float types (bits of exponent kept moderate), any byte otherwise.
                    return spec.type.isFloat ? UInt8(truncatingIfNeeded: (rng >> 33) & 0x3F) : UInt8(truncatingIfNeeded: rng >> 56)
                })
            }
        }
        var outputs = lib.outputs.map { [UInt8](repeating: 0, count: max($0.bytes, 1)) }
        var times: [Double] = []
        try withPointers(inputData) { ins in
            try withMutablePointers(&outputs) { outs in
                let ib = lib.inputs.map(\.bytes), ob = lib.outputs.map(\.bytes)
                for _ in 0..<warmup { try instance.run(inputs: ins, inputBytes: ib, outputs: outs, outputBytes: ob) }
                let deadline = Date().addingTimeInterval(seconds)
                var k = 0
                while iterations.map({ k < $0 }) ?? (Date() < deadline || k < 5) {
                    var t0 = timespec(), t1 = timespec()
                    clock_gettime(CLOCK_MONOTONIC, &t0)
                    try instance.run(inputs: ins, inputBytes: ib, outputs: outs, outputBytes: ob)
                    clock_gettime(CLOCK_MONOTONIC, &t1)
                    times.append(Double(t1.tv_sec - t0.tv_sec) * 1e3 + Double(t1.tv_nsec - t0.tv_nsec) / 1e6)
                    k += 1
                }
            }
        }
        times.sort()
        func pct(_ p: Double) -> Double { times[min(times.count - 1, Int(p * Double(times.count - 1)))] }
        let median = pct(0.5)
        var report = BenchReport(library: lib.name, threads: options.threads, runs: times.count,
                                 latencyMs: .init(median: median, p10: pct(0.1), p90: pct(0.9)))
        if !json {
            print("\(lib.name): \(times.count) runs, \(options.threads == 0 ? "default" : String(options.threads)) threads")
            if median < 0.1 {
                print(String(format: "latency us: median %.3f  p10 %.3f  p90 %.3f", median * 1000, pct(0.1) * 1000, pct(0.9) * 1000))
            } else {
                print(String(format: "latency ms: median %.4f  p10 %.4f  p90 %.4f", median, pct(0.1), pct(0.9)))
            }
            print(String(format: "throughput: %.1f inferences/s", 1000 / median))
        }
        if profile {
            // Separate runs with timing on, so that the figures above are not disturbed by it.
            try instance.setProfiling(true)
            let runs = max(10, min(times.count, 200))
            let profiledStart = Date()
            try withPointers(inputData) { ins in
                try withMutablePointers(&outputs) { outs in
                    for _ in 0..<runs {
                        try instance.run(inputs: ins, inputBytes: lib.inputs.map(\.bytes), outputs: outs, outputBytes: lib.outputs.map(\.bytes))
                    }
                }
            }
            report.profiledWallMs = Date().timeIntervalSince(profiledStart) * 1000 / Double(runs)
            report.profiledRuns = runs
            report.steps = instance.profile().map { StepProfile(name: $0.name, ms: $0.ms / Double(runs), bytes: $0.bytes, ops: $0.ops) }
            report.copyBandwidth = measureCopyBandwidth(threads: options.threads)
            if !json { print(report.profileText()) }
        }
        if json { print(try report.json()) }
    }
}

/// The model's inputs: names, ranks and whether any dimension is symbolic.
func inspectInputs(_ path: String) throws -> [(name: String, rank: Int, dynamic: Bool)] {
    let r = try inspectModel(path: path)
    return r.inputs.map { ($0.name, $0.shape.count, $0.shape.contains { Int($0) == nil }) }
}

struct ConformanceCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "conformance",
        abstract: "Run ONNX conformance cases (model.onnx + test_data_set_N) through the reference interpreter.",
        shouldDisplay: false)

    @Argument(help: "Folders to search for cases.")
    var roots: [String]

    @Option(help: "Expected failures: one case name a line, '#' starts a reason.")
    var expectedFailures: String?

    @Flag(help: "Print every case's outcome.")
    var verbose = false

    @Option(help: "Only run cases whose folder name contains this text.")
    var filter: String?

    @Flag(help: "Also compile every case that passes on the reference path, run the libraries and compare.")
    var compiled = false

    @Option(help: "Where the compiled path builds its libraries (default: a temporary folder).")
    var workDir: String?

    @Option(name: .customLong("setting"), help: "With --compiled: compile with these options, LAYOUT:WINOGRAD (e.g. nhwc:off, blocked:always); repeat for several (default auto:auto).")
    var settings: [String] = []

    @Option(help: "With --compiled: g++'s optimization level for the libraries.")
    var optimization = "-O1"

    func run() throws {
        var expected: [String: String] = [:]
        if let f = expectedFailures {
            guard let text = try? String(contentsOfFile: f, encoding: .utf8) else { throw KilnError("\(f): cannot read") }
            for line in text.split(separator: "\n") {
                let parts = line.split(separator: "#", maxSplits: 1)
                let name = parts.first.map { $0.trimmingCharacters(in: .whitespaces) } ?? ""
                if !name.isEmpty { expected[name] = parts.count > 1 ? parts[1].trimmingCharacters(in: .whitespaces) : "" }
            }
        }
        var passed = 0, failed = 0, unsupported = 0, unexpected = 0
        var reasons: [String: Int] = [:]
        var compiledCases: [CompiledConformance.Case] = []
        for root in roots {
            for dir in Conformance.findCases(root: root) {
                let name = (dir as NSString).lastPathComponent
                if let f = filter, !dir.contains(f) { continue }
                let key = "\((root as NSString).lastPathComponent)/\(name)"
                let (outcome, cases) = Conformance.runCollecting(caseDir: dir, key: key)
                compiledCases += cases
                switch outcome {
                case .passed:
                    passed += 1
                    if expected[name] != nil || expected[key] != nil { print("now passes (remove from the expected failures): \(key)") }
                    if verbose { print("pass \(key)") }
                case .failed(let why):
                    failed += 1
                    if expected[name] == nil && expected[key] == nil {
                        unexpected += 1
                        print("FAIL \(key): \(why)")
                    } else if verbose {
                        print("expected failure \(key): \(why)")
                    }
                case .unsupported(let why):
                    unsupported += 1
                    let short = String(why.split(separator: ":").suffix(2).joined(separator: ":").prefix(90))
                    reasons[short, default: 0] += 1
                    if verbose { print("unsupported \(key): \(why)") }
                }
            }
        }
        print("unsupported cases by reason:")
        for (r, n) in reasons.sorted(by: { $0.value > $1.value }).prefix(verbose ? 1000 : 25) {
            print(String(format: "  %4d %@", n, r.trimmingCharacters(in: .whitespaces)))
        }
        let total = passed + failed
        print(String(format: "supported cases passing: %.1f%% (%d of %d); unexpected failures: %d", 100 * Double(passed) / Double(max(total, 1)), passed, total, unexpected))
        print("conformance: \(passed) passed, \(failed) failed, \(unsupported) unsupported")
        if compiled {
            let parsed = try settings.map { try CompiledConformance.Setting(parsing: $0) }
            for setting in parsed.isEmpty ? [CompiledConformance.Setting()] : parsed {
                let label = parsed.isEmpty ? "compiled" : "compiled \(setting)"
                // One folder per setting: a library path loaded once is not loaded again.
                let base = workDir ?? (NSTemporaryDirectory() as NSString).appendingPathComponent("kiln-conformance-\(getpid())")
                let work = (base as NSString).appendingPathComponent("\(setting.layout.rawValue)-\(setting.winograd.rawValue)")
                let progress = Progress(verbose: verbose)
                let outcomes = CompiledConformance.run(compiledCases, workDirectory: work, setting: setting, optimization: optimization, progress: { progress($0) })
                // A case passes when every one of its test data sets does.
                var byCase: [String: Conformance.Outcome] = [:]
                for (k, o) in outcomes.sorted(by: { $0.key < $1.key }) {
                    let caseKey = String(k.split(separator: "#").first ?? "")
                    switch (byCase[caseKey], o) {
                    case (nil, _), (.passed?, _): byCase[caseKey] = o
                    default: break
                    }
                }
                var cPassed = 0, cFailed = 0, cUnsupported = 0
                for (k, o) in byCase.sorted(by: { $0.key < $1.key }) {
                    switch o {
                    case .passed: cPassed += 1
                    case .failed(let why):
                        cFailed += 1
                        let name = String(k.split(separator: "/").last ?? "")
                        if expected["compiled:" + k] == nil && expected["compiled:" + name] == nil {
                            unexpected += 1
                            print("FAIL (\(label)) \(k): \(why)")
                        }
                    case .unsupported(let why):
                        cUnsupported += 1
                        if verbose { print("unsupported (\(label)) \(k): \(why)") }
                    }
                }
                if workDir == nil { try? FileManager.default.removeItem(atPath: base) }
                print("conformance (\(label)): \(cPassed) passed, \(cFailed) failed, \(cUnsupported + unsupported + failed) unsupported")
            }
        }
        if unexpected > 0 { throw ExitCode(1) }
    }
}

/// Kiln's version, stamped into everything it writes.
let kilnVersion = "0.1.0"

do {
    var command = try Kiln.parseAsRoot()
    try command.run()
} catch let e as KilnError {
    FileHandle.standardError.write(Data("kiln: error: \(e.message)\n".utf8))
    exit(1)
} catch {
    Kiln.exit(withError: error)
}
