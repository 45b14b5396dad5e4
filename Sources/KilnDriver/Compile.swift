@_exported import enum KilnToolchain.LibraryKind
@_exported import enum KilnTarget.TargetCPU
@_exported import enum KilnToolchain.Sanitizer
@_exported import enum KilnTarget.WinogradPolicy
@_exported import enum KilnTarget.Int8Policy
@_exported import enum KilnTarget.DirectConvPolicy
@_exported import enum KilnPasses.LayoutPolicy
@_exported import struct KilnPasses.PassOptions
@_exported import enum KilnPasses.Pipeline
@_exported import enum KilnQuantization.CalibrationMethod
import Foundation
import KilnCodegen
import KilnIR
import KilnPasses
import KilnToolchain
import KilnTarget
import KilnQuantization

public struct CompileOptions: Sendable {
    public var modelPath: String
    public var outputDirectory: String
    public var name: String
    public var inputShapes: [String: [Int]] = [:]
    public var library: LibraryKind = .both
    public var cpu: TargetCPU = .x86_64_v3
    public var winograd: WinogradPolicy = .auto
    public var directConv: DirectConvPolicy = .auto
    public var int8: Int8Policy = .exact
    public var layout: LayoutPolicy = .auto
    /// Kiln's own int8 quantization of an f32 model (`--quantize int8`), nil to keep the model's precision.
    public var quantize: QuantizeOptions?
    /// `--quantize dynamic`: every MatMul/Gemm with constant weights int8, its source quantized when
    /// the model runs (`quantizeDynamically`); no calibration.
    public var quantizeDynamic = false
    /// Run the built library on this machine (zero inputs, about a quarter of a second) and show
    /// each step's share of the time and each compile step's duration in NAME.report.html.
    /// `kiln compile` does unless --no-time-steps; without, every file is the same from compile to compile.
    public var timeSteps = false
    /// g++'s sanitizers to build the library with (`--sanitize`). Such a library cannot be loaded
    /// into Kiln's own process: nothing is measured on it.
    public var sanitize: [Sanitizer] = []
    /// Passes to skip, and after which to print the IR (`--disable-pass`, `--print-after`).
    public var passes = PassOptions()
    public var kilnVersion: String

    public init(modelPath: String, outputDirectory: String, name: String, kilnVersion: String) {
        self.modelPath = modelPath
        self.outputDirectory = outputDirectory
        self.name = name
        self.kilnVersion = kilnVersion
    }
}

/// `--quantize int8`: where the calibration samples come from and how ranges are chosen.
public struct QuantizeOptions: Sendable {
    public enum Samples: Sendable {
        /// A directory of `<input name>_<k>.npy` files, or one `.npy` file (see `CalibrationSamples.load`).
        case path(String)
        /// Seeded random samples, for smoke tests.
        case random(Int)
    }
    public var samples: Samples
    public var method: CalibrationMethod
    /// Keep the layers whose int8 error is largest FP32 until the outputs meet this on the samples.
    public var accuracyBudget: AccuracyBudget?
    /// A precision plan to replay (NAME.precision.json of an earlier compile): its FP32 layers stay FP32, nothing is measured.
    public var precisionPlan: String?
    /// Time each int8 layer against FP32 on the compiling machine and keep FP32 those int8 makes
    /// slower (when the whole model gains). Off: every layer the recipe and the budget allow is int8.
    public var speedCheck = true

    public init(samples: Samples, method: CalibrationMethod = .histogram, accuracyBudget: AccuracyBudget? = nil, precisionPlan: String? = nil) {
        self.samples = samples
        self.method = method
        self.accuracyBudget = accuracyBudget
        self.precisionPlan = precisionPlan
    }
}

public struct CompileReport: Sendable {
    public var products: BuildProducts
    public var arenaBytes: Int
    public var weightsBytes: Int
    public var oneDNNNodes: Int
    public var loopNodes: Int
    /// Nodes that run as generic loops where oneDNN usually runs them, each with why.
    public var fallbacks: [String]
    /// The report written as NAME.report.md and NAME.report.json (and, with timings and pictures, NAME.report.html).
    public var report: ModelReport
    public var reportFiles: [String]
    /// With --quantize: the calibration's samples and seconds, and each output's SQNR and cosine
    /// against FP32 on the samples (what `kiln compile` prints).
    public var quantizationLines: [String] = []
}

/// The default library name for a model file: its base name as a C identifier, lower case.
public func defaultModelName(_ path: String) -> String {
    let base = ((path as NSString).lastPathComponent as NSString).deletingPathExtension
    return cIdentifier(base.lowercased())
}

/// Where Kiln's runtime headers are: $KILN_INCLUDE_DIR, next to the executable's package
/// (`<root>/include` for `<root>/.build/*/kiln`), or the source tree Kiln was built from.
public func runtimeIncludeDirectory() -> String {
    let fm = FileManager.default
    func ok(_ d: String) -> Bool { fm.fileExists(atPath: (d as NSString).appendingPathComponent("kiln/runtime.hpp")) }
    if let env = ProcessInfo.processInfo.environment["KILN_INCLUDE_DIR"], ok(env) { return env }
    var exe = URL(fileURLWithPath: CommandLine.arguments.first ?? "").resolvingSymlinksInPath().deletingLastPathComponent()
    for _ in 0..<4 {
        let candidate = exe.appendingPathComponent("include").path
        if ok(candidate) { return candidate }
        exe.deleteLastPathComponent()
    }
    let source = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
        .deletingLastPathComponent().appendingPathComponent("include").path
    return source
}

/// The whole pipeline as one list: import, simplify, generate, build.
public func compileModel(_ o: CompileOptions, progress show: @escaping ProgressHandler = { _ in },
                         log: (String) -> Void = { _ in }) throws -> CompileReport {
    // Each step's duration goes into NAME.report.html.
    var stepTimes = StepTimes()
    let progress: ProgressHandler = { u in
        stepTimes.note(u)
        show(u)
    }
    try Pipeline.checkPassNames(o.passes)
    var graph = try loadModel(path: o.modelPath, inputShapes: o.inputShapes, passes: o.passes, progress: progress)
    // oneDNN 2.6 has fast blocked (nChw16c) kernels only for AVX-512: elsewhere its reference
    // kernels would run, a thousand times slower. Choose blocked only when the target has it.
    let layout: LayoutPolicy = o.layout == .auto && !o.cpu.guaranteesAVX512 ? .channelsLast : o.layout
    var quantizationNotes: [String] = []
    var samples: CalibrationSamples?
    if o.quantize != nil && o.quantizeDynamic { throw KilnError("--quantize takes int8 or dynamic, not both") }
    if o.quantize != nil || o.quantizeDynamic, graph.nodes.contains(where: {
        if case .quantizeLinear = $0.op { return true }; if case .dequantizeLinear = $0.op { return true }; return false
    }) {
        throw KilnError("\(o.modelPath) is already quantized (it has QuantizeLinear/DequantizeLinear nodes): compile it without --quantize, and Kiln keeps its scales and zero points")
    }
    if let q = o.quantize {
        if graph.nodes.contains(where: { if case .quantizeLinear = $0.op { return true }; if case .dequantizeLinear = $0.op { return true }; return false }) {
            throw KilnError("\(o.modelPath) is already quantized (it has QuantizeLinear/DequantizeLinear nodes): compile it without --quantize, and Kiln keeps its scales and zero points")
        }
        // Read the samples' shapes before the long steps: a wrong file fails fast.
        switch q.samples {
        case .path(let p): samples = try CalibrationSamples.load(path: p, graph: graph)
        case .random(let n): samples = try CalibrationSamples.random(count: n, graph: graph)
        }
    }
    var quantizer: ModelQuantizer?
    var sqnr: [String: Double?] = [:]
    var keptFloat = try Pipeline.optimize(&graph, layout: layout, kilnConvKernels: o.directConv != .off, quantize: { g in
        if o.quantizeDynamic {
            progress("quantize: dynamic")
            let names = quantizeDynamically(&g)
            quantizationNotes.append(names.isEmpty
                ? "--quantize dynamic: no MatMul or Gemm with constant weights; the library is FP32"
                : "--quantize dynamic: \(names.count) matrix product\(names.count == 1 ? "" : "s") int8 (weights s8 per column, each source u8 per tensor, quantized when the model runs); the rest FP32")
            return
        }
        guard let q = o.quantize, let samples else { return }
        progress("quantize: plan by the X86 recipe")
        let recipe = planQuantization(g)
        guard !recipe.groups.isEmpty else {
            quantizationNotes.append("--quantize int8: nothing to quantize by the X86 recipe (no conv, matrix product, add or pooling on f32 activations); the library is FP32")
            quantizationNotes += recipe.decisions.filter { $0.hasSuffix(")") }
            return
        }
        let m = try ModelQuantizer(g, recipe: recipe, options: q, samples: samples, cpu: o.cpu, kilnVersion: o.kilnVersion, progress: progress, log: log)
        progress("quantize: insert quantization")
        (g, sqnr) = m.quantizedGraph()
        quantizer = m
    }, options: o.passes, progress: { progress(ProgressUpdate($0)) })
    let codegen = CodegenOptions(name: o.name, kilnVersion: o.kilnVersion, modelPath: o.modelPath, winograd: o.winograd, int8: o.int8, directConv: o.directConv)
    // Everything is written into a staging folder inside the output folder and moved into place
    // at the end: a compile that fails (g++ killed, a full disk) leaves the output folder as it
    // was. Its name is new for each compile, as dlopen would return a library loaded earlier from the same path.
    let fm = FileManager.default
    let outputDirectory = URL(fileURLWithPath: o.outputDirectory).standardizedFileURL.path
    do {
        try fm.createDirectory(atPath: outputDirectory, withIntermediateDirectories: true)
    } catch {
        throw KilnError("cannot create the output folder '\(outputDirectory)': \(error.localizedDescription)")
    }
    let stage = (outputDirectory as NSString).appendingPathComponent(".kiln-build-\(o.name)-\(UUID().uuidString.prefix(8))")
    defer { try? fm.removeItem(atPath: stage) }
    var build = BuildOptions(outputDirectory: stage, name: o.name, library: o.library,
                             includeDirectory: runtimeIncludeDirectory())
    build.cpu = o.cpu
    build.sanitizers = o.sanitize
    /// Whether the built library may be loaded here (a sanitized one needs its runtime first in the process).
    let loadable = o.sanitize.isEmpty
    progress("generate C++")
    var emitted = try emitModel(graph, options: codegen)
    progress("compile with g++")
    var products = try buildLibrary(header: emitted.header, source: emitted.source, weights: emitted.weights, options: build, log: log)
    // `--quantize dynamic` says what it quantized (no calibration, nothing measured).
    var quantizationLines: [String] = o.quantizeDynamic ? quantizationNotes : []
    // The library the outputs and steps are measured on: the final one, or after a rebuild its
    // trial twin (the same code; the rebuilt file's path is already loaded, and dlopen would
    // return the library it replaced).
    var measured: CLibrary?
    if let m = quantizer {
        let c = m.calibration
        /// `fused` (quantized or not) lowered and built as this compile would build it, as a shared
        /// library in the calibration's folder `folder`, loaded: what the speed check times.
        func trialLibrary(_ fused: Graph, in folder: String) throws -> (graph: Graph, kept: [String], emitted: EmittedModel, lib: CLibrary) {
            var g = fused
            let kept = try Pipeline.finish(&g, layout: layout, options: o.passes.printingNothing)
            let e = try emitModel(g, options: codegen)
            var b = build
            b.outputDirectory = (c.directory as NSString).appendingPathComponent(folder)
            b.library = .shared
            let products = try buildLibrary(header: e.header, source: e.source, weights: e.weights, options: b, log: log)
            guard let so = products.sharedLibrary else { throw KilnError("the trial library was not built") }
            return (g, kept, e, try CLibrary(path: so, name: o.name))
        }
        quantizationLines.append(String(format: "calibration: %d samples, %.1f s", c.samples.count, c.seconds))
        quantizationLines += m.budgetLines
        // Per-layer precision by measured speed: layers whose int8 step is slower than their f32
        // one go FP32 if the whole model is then faster. A replayed plan measures nothing.
        if !loadable {
            m.noteSpeed("speed: not measured (a library built with --sanitize cannot run inside kiln)")
            quantizationLines += m.speedLines
        } else if o.quantize?.precisionPlan == nil, o.quantize?.speedCheck == true {
            do {
                guard let so = products.sharedLibrary else { throw KilnError("no shared library built; --library shared or both measures it") }
                let lib = try CLibrary(path: so, name: o.name)
                measured = lib
                let slower = try m.slowerInInt8(lib, progress: progress)
                if slower.isEmpty {
                    m.noteSpeed("speed: every int8 layer's step is faster than its FP32 one on this machine (\(o.name).precision.json has the figures)")
                } else {
                    progress("speed: the whole model with \(slower.count) layer\(slower.count == 1 ? "" : "s") FP32")
                    let (trialGraph, trialSQNR) = m.quantizedGraph(keeping: m.keep.merging(slower) { a, _ in a })
                    let (g, trialKept, trialEmitted, trialLib) = try trialLibrary(trialGraph, in: "speed")
                    let (ratio, a, b) = try m.compareLatency(lib, trialLib)
                    let names = slower.keys.sorted().prefix(4).map { "'\($0)'" }.joined(separator: ", ") + (slower.count > 4 ? ", ..." : "")
                    if ratio < 0.99 {
                        m.keepFloat(slower, line: String(format: "speed: %d layer%@ slower in int8 (%@) kept FP32: the whole model %.4f -> %.4f ms on this machine (interleaved, median ratio %.3f)", slower.count, slower.count == 1 ? "" : "s", names, a, b, ratio))
                        progress("compile with g++ (\(slower.count) layers FP32)")
                        (graph, sqnr, keptFloat, emitted, measured) = (g, trialSQNR, trialKept, trialEmitted, trialLib)
                        products = try buildLibrary(header: emitted.header, source: emitted.source, weights: emitted.weights, options: build, log: log)
                    } else {
                        m.noteSpeed(String(format: "speed: %d layer%@ slower in int8 by their steps (%@), but the whole model is not faster with them FP32 (%.4f -> %.4f ms, median ratio %.3f): int8 kept", slower.count, slower.count == 1 ? "" : "s", names, a, b, ratio))
                    }
                }
                // The whole int8 library against the FP32 library of the same model: int8 is never
                // slower on the compiling machine; where it is, every layer goes FP32.
                progress("speed: the int8 library against the FP32 library")
                let (f, floatKept, floatEmitted, floatLib) = try trialLibrary(m.fused, in: "fp32")
                let (ratio, fp32, int8) = try m.compareLatency(floatLib, measured!, seconds: 0.3)
                if ratio > 1 {
                    m.keepFloat(m.int8Layers(reason: String(format: "kept FP32: the int8 library is slower than the FP32 one on the compiling machine (%.4f against %.4f ms)", int8, fp32)),
                                line: String(format: "speed: the int8 library %.4f ms, the FP32 library %.4f ms on this machine (interleaved, median ratio %.3f): int8 is slower, every layer FP32", int8, fp32, ratio))
                    progress("compile with g++ (every layer FP32)")
                    (graph, sqnr, keptFloat, emitted, measured) = (f, [:], floatKept, floatEmitted, floatLib)
                    products = try buildLibrary(header: emitted.header, source: emitted.source, weights: emitted.weights, options: build, log: log)
                } else {
                    m.noteSpeed(String(format: "speed: the int8 library %.4f ms, the FP32 library %.4f ms on this machine (interleaved, median ratio %.3f)", int8, fp32, ratio))
                }
            } catch {
                m.noteSpeed("speed: not measured (\(error))")
            }
            quantizationLines += m.speedLines
        }
        if !loadable {
            quantizationLines.append("int8 against FP32: not measured (a library built with --sanitize cannot run inside kiln)")
        } else if let so = products.sharedLibrary {
            do {
                let lib = try measured ?? CLibrary(path: so, name: o.name)
                measured = lib
                quantizationLines += try c.compare(lib, progress: progress).map { r in
                    String(format: "int8 against FP32 on the %d calibration samples: output '%@' SQNR %@, cosine %.6f", c.samples.count, r.output,
                           r.sqnr.isFinite ? String(format: "%.1f dB", r.sqnr) : r.sqnr > 0 ? "infinite (identical)" : "-infinite (the FP32 output is all zeros)", r.cosine)
                }
            } catch {
                // A library for a CPU this machine lacks (--cpu x86-64-v4 here) cannot run here.
                quantizationLines.append("int8 against FP32: not measured (\(error))")
            }
        } else {
            quantizationLines.append("int8 against FP32: not measured (no shared library built; --library shared or both measures it)")
        }
        let notes = m.notes
        quantizationNotes = [notes[0]] + quantizationLines.filter { $0.hasPrefix("int8 against FP32") } + notes.dropFirst()
    }
    var precisionPlan = quantizer?.precisionPlan
    precisionPlan?.model = (o.modelPath as NSString).lastPathComponent
    var report = ModelReport(graph: graph, name: o.name, model: o.modelPath, kilnVersion: o.kilnVersion, arenaBytes: emitted.arenaBytes,
                             weightsBytes: emitted.weights.count, notes: (loadable ? [] : ["built with \(Sanitizer.flag(o.sanitize)) for testing: link programs with the same flag (the pkg-config and CMake files add it); not for shipping"]) + quantizationNotes + keptFloat.filter { k in !quantizationNotes.contains { $0.hasPrefix((k.components(separatedBy: ": FP32").first ?? k) + ": FP32") } } + emitted.fallbacks.map { "not through oneDNN: \($0)" },
                             int8Policy: o.int8, sqnr: sqnr, decisions: quantizer?.plan(keeping: quantizer!.keep).precisionOf ?? [:])
    report.layers = precisionPlan?.layers ?? []
    let dir = stage as NSString
    var files = [dir.appendingPathComponent("\(o.name).report.md"), dir.appendingPathComponent("\(o.name).report.json"),
                 dir.appendingPathComponent("\(o.name).report.html")]
    if precisionPlan != nil { files.append(dir.appendingPathComponent("\(o.name).precision.json")) }
    var html = HTMLReport(report: report)
    for n in graph.nodes where html.results[n.name] == nil { html.results[n.name] = ModelReport.tensorName(graph.values[n.outputs[0]].name) }
    // The weights are in the library now: let their copies go before the library runs here
    // (its mapped weights and oneDNN's reordered ones then take their place).
    let weightsBytes = emitted.weights.count
    emitted.weights = []
    graph = Graph()
    var stepProfile: [StepProfile]?
    var profileNote = "compiled with --no-time-steps."
    if o.timeSteps && !loadable {
        profileNote = "built with --sanitize, which cannot run inside kiln; kiln bench --profile on a normal build measures it."
    } else if o.timeSteps {
        if let so = products.sharedLibrary {
            progress("time each step on this machine")
            do {
                let lib = try measured ?? CLibrary(path: so, name: o.name)
                let (steps, runs) = try timeSteps(lib)
                stepProfile = steps
                profileNote = "Measured when it was compiled: \(runs) runs on zeros as inputs, \(ProcessInfo.processInfo.activeProcessorCount) threads (kiln bench --profile measures it again, with bandwidths)."
            } catch {
                profileNote = "the library did not run on the compiling machine (\(error))."
            }
        } else {
            profileNote = "no shared library built (--library static); kiln bench --profile on a shared build measures it."
        }
    }
    stepTimes.finish()
    html.arena = emitted.arena
    html.arenaNodes = emitted.nodeNames
    // Without step times the report holds no timings at all: two compiles give the same files.
    html.compileSteps = o.timeSteps ? stepTimes.steps : []
    html.profile = stepProfile
    html.profileNote = profileNote
    do {
        try report.markdown.write(toFile: files[0], atomically: true, encoding: .utf8)
        try report.json.write(toFile: files[1], atomically: true, encoding: .utf8)
        try html.html.write(toFile: files[2], atomically: true, encoding: .utf8)
        if let precisionPlan { try precisionPlan.json.write(toFile: files[3], atomically: true, encoding: .utf8) }
    } catch {
        throw KilnError("cannot write the report into \(o.outputDirectory): \(error.localizedDescription)")
    }
    // Into place: each file replaces its old version at once (rename(2)).
    progress("move the files into \(outputDirectory)")
    let staged = (try? fm.contentsOfDirectory(atPath: stage)) ?? []
    for f in staged.sorted() {
        let from = (stage as NSString).appendingPathComponent(f), to = (outputDirectory as NSString).appendingPathComponent(f)
        guard rename(from, to) == 0 else {
            throw KilnError("cannot move \(f) into \(outputDirectory): \(String(cString: strerror(errno)))")
        }
    }
    products = products.moved(from: stage, to: outputDirectory)
    files = files.map { ($0 as NSString).lastPathComponent }.map { (outputDirectory as NSString).appendingPathComponent($0) }
    return CompileReport(products: products, arenaBytes: emitted.arenaBytes, weightsBytes: weightsBytes,
                         oneDNNNodes: emitted.oneDNNNodes, loopNodes: emitted.loopNodes, fallbacks: emitted.fallbacks,
                         report: report, reportFiles: files, quantizationLines: quantizationLines)
}

/// Runs `lib` on zeros as inputs (3 runs to warm up, then at least 5 runs and 0.25 s) with every
/// processor, and returns each step's milliseconds per run, and the runs timed.
func timeSteps(_ lib: CLibrary) throws -> (steps: [StepProfile], runs: Int) {
    let instance = try lib.makeInstance(threads: 0)
    let inputs = lib.inputs.map { s -> UnsafeMutableRawPointer in
        let p = UnsafeMutableRawPointer.allocate(byteCount: max(s.bytes, 1), alignment: 64)
        memset(p, 0, max(s.bytes, 1))
        return p
    }
    let outputs = lib.outputs.map { UnsafeMutableRawPointer.allocate(byteCount: max($0.bytes, 1), alignment: 64) }
    defer { (inputs + outputs).forEach { $0.deallocate() } }
    let (ib, ob) = (lib.inputs.map(\.bytes), lib.outputs.map(\.bytes))
    let (steps, runs) = try instance.profiledRuns(minRuns: 5, seconds: 0.25, maxRuns: 1000) {
        try instance.run(inputs: inputs.map { UnsafeRawPointer($0) }, inputBytes: ib, outputs: outputs, outputBytes: ob)
    }
    return (steps.map { StepProfile(name: $0.name, ms: $0.ms, bytes: $0.bytes, ops: $0.ops) }, runs)
}
