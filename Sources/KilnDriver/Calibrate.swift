import Foundation
import KilnCodegen
import KilnIR
import KilnPasses
import KilnQuantization
import KilnToolchain
import KilnTarget

/// Calibration samples, read one at a time: for each sample, one tensor per graph input.
public struct CalibrationSamples: Sendable {
    /// Where sample k of input i comes from: a file, and the index along its first axis when
    /// the file holds a batch of samples.
    enum Source: Sendable {
        case files([[(path: String, index: Int?)]])
        case random(seed: UInt64)
    }
    let inputs: [(name: String, type: TensorType)]
    let source: Source
    public let count: Int
    /// Where the samples came from, for the report.
    public let description: String

    /// Sample `k`: one tensor per graph input, in the graph's input order.
    public func sample(_ k: Int, cache: inout [String: Tensor]) throws -> [Tensor] {
        switch source {
        case .random(let seed):
            var rng = SplitMix64(seed: seed &+ UInt64(k) &* 0x9E37_79B9_7F4A_7C15)
            return inputs.map { i in
                let n = shapeProduct(i.type.shape ?? [])
                return Tensor(.f32, shape: i.type.shape ?? [], floats: (0..<n).map { _ in Float(rng.nextDouble() * 2 - 1) })
            }
        case .files(let files):
            return try inputs.indices.map { i in
                let (path, index) = files[i][k]
                // Keep one file per input, the one being read: samples stream from disk.
                let key = "\(i)\u{0}\(path)"
                if cache[key] == nil {
                    cache = cache.filter { !$0.key.hasPrefix("\(i)\u{0}") }
                    cache[key] = try NPY.read(path: path)
                }
                let t = cache[key]!
                let shape = inputs[i].type.shape ?? []
                guard let index else { return t.reshaped(shape) }
                let n = shapeProduct(shape), range = (index * n)..<((index + 1) * n)
                return t.elementType.isFloat ? Tensor(t.elementType, shape: shape, floats: Array(t.floats[range]))
                                             : Tensor(t.elementType, shape: shape, ints: Array(t.ints[range]))
            }
        }
    }

    /// `count` seeded uniform samples in [-1, 1): for smoke tests; the scales they give mean nothing.
    public static func random(count: Int, graph g: Graph) throws -> CalibrationSamples {
        let inputs = g.inputs.map { (g.values[$0].name, g.values[$0].type) }
        for i in inputs where i.1.elementType != .f32 {
            throw KilnError("--calibration-random: input '\(i.0)' is \(i.1.elementType); random samples are f32 only")
        }
        return CalibrationSamples(inputs: inputs, source: .random(seed: 20261127), count: count,
                                  description: "\(count) random samples (uniform in [-1, 1): the scales mean nothing)")
    }

    /// The samples at `path`: a directory of `<input name>_<k>.npy` files (k = 0, 1, ...; the input
    /// name as the model spells it, or with every character other than letters, digits, '.', '-'
    /// and '_' written '_'), or, for a model with one input, one `.npy` file. A file holds one
    /// sample (the input's shape, or without its batch axis of 1) or a batch along the first axis
    /// (N samples for an input of batch 1, N / B for batch B). Anything else is an error that says why.
    public static func load(path: String, graph g: Graph) throws -> CalibrationSamples {
        let fm = FileManager.default
        var isDirectory: ObjCBool = false
        guard fm.fileExists(atPath: path, isDirectory: &isDirectory) else { throw KilnError("--calibration \(path): no such file or directory") }
        let inputs = g.inputs.map { (name: g.values[$0].name, type: g.values[$0].type) }
        var files: [[String]] = Array(repeating: [], count: inputs.count)
        if !isDirectory.boolValue {
            guard inputs.count == 1 else {
                throw KilnError("--calibration \(path): the model has \(inputs.count) inputs (\(inputs.map(\.name).joined(separator: ", "))); give a directory of <input name>_<k>.npy files")
            }
            files[0] = [path]
        } else {
            let entries = try fm.contentsOfDirectory(atPath: path).filter { $0.hasSuffix(".npy") }.sorted()
            guard !entries.isEmpty else {
                throw KilnError("--calibration \(path): no .npy files; expected <input name>_<k>.npy (k = 0, 1, ...) for input\(inputs.count == 1 ? "" : "s") \(inputs.map { "'\($0.name)'" }.joined(separator: ", "))")
            }
            var numbered: [[Int: String]] = Array(repeating: [:], count: inputs.count)
            for e in entries {
                let base = String(e.dropLast(4))
                var matches: [(input: Int, k: Int)] = []
                for (i, input) in inputs.enumerated() {
                    for prefix in Set([input.name, sanitizedFileName(input.name)]) where base.hasPrefix(prefix + "_") {
                        let rest = base.dropFirst(prefix.count + 1)
                        if !rest.isEmpty, rest.allSatisfy(\.isASCII), rest.allSatisfy(\.isNumber), let k = Int(rest), String(k) == rest {
                            matches.append((i, k))
                        }
                    }
                }
                guard !matches.isEmpty else {
                    throw KilnError("--calibration \(path): \(e) names no input of the model: expected <input name>_<k>.npy with input\(inputs.count == 1 ? "" : "s") \(inputs.map { "'\($0.name)'" }.joined(separator: ", "))")
                }
                guard Set(matches.map(\.input)).count == 1 else {
                    throw KilnError("--calibration \(path): \(e) is ambiguous: it can name input \(matches.map { "'\(inputs[$0.input].name)' sample \($0.k)" }.joined(separator: " or "))")
                }
                numbered[matches[0].input][matches[0].k] = (path as NSString).appendingPathComponent(e)
            }
            for (i, byK) in numbered.enumerated() {
                guard !byK.isEmpty else {
                    throw KilnError("--calibration \(path): no samples for input '\(inputs[i].name)' (expected \(sanitizedFileName(inputs[i].name))_0.npy, ...)")
                }
                for k in 0..<byK.count where byK[k] == nil {
                    throw KilnError("--calibration \(path): \(sanitizedFileName(inputs[i].name))_\(k).npy is missing (the files for input '\(inputs[i].name)' must be numbered 0 to \(byK.count - 1))")
                }
                files[i] = (0..<byK.count).map { byK[$0]! }
            }
        }
        // Read each file once to learn how many samples it holds; the samples are read again when used.
        var sources: [[(path: String, index: Int?)]] = Array(repeating: [], count: inputs.count)
        for (i, input) in inputs.enumerated() {
            let shape = input.type.shape ?? []
            let n = shapeProduct(shape)
            for f in files[i] {
                let t = try NPY.read(path: f)
                guard t.elementType == input.type.elementType else {
                    throw KilnError("--calibration: \(f) holds \(t.elementType) values; input '\(input.name)' is \(input.type.elementType)")
                }
                if t.count == n, t.shape == shape || t.shape == Array(shape.dropFirst()) {
                    sources[i].append((f, nil))
                } else if let b = shape.first, b > 0, t.rank == shape.count, Array(t.shape.dropFirst()) == Array(shape.dropFirst()),
                          t.shape[0] > 0, t.shape[0] % b == 0 {
                    sources[i] += (0..<(t.shape[0] / b)).map { (f, $0) }
                } else {
                    throw KilnError("--calibration: \(f) has shape \(shapeString(t.shape)); input '\(input.name)' is \(shapeString(shape)) (a file holds one sample of that shape, or a batch along the first axis: N samples of batch 1, N / B of batch B)")
                }
            }
        }
        let counts = Set(sources.map(\.count))
        guard counts.count == 1, let count = counts.first else {
            throw KilnError("--calibration \(path): the inputs have different numbers of samples (\(zip(inputs, sources).map { "'\($0.0.name)': \($0.1.count)" }.joined(separator: ", ")))")
        }
        return CalibrationSamples(inputs: inputs, source: .files(sources), count: count,
                                  description: "\(count) sample\(count == 1 ? "" : "s") from \(path)")
    }
}

/// The calibration of a graph: its samples run through an f32 build of the graph whose outputs
/// also hold every value the plan observes, each group's u8 parameters chosen from what they
/// showed, and each observed tensor's quantization SQNR on them. Keeps the f32 library (in a
/// temporary directory, removed with the object) to measure quantized libraries' outputs
/// against (`compare`), and what each value showed, so that a plan keeping some layers FP32
/// (whose groups are subsets of the observed plan's) gets its parameters without running the
/// samples again (`parameters(for:)`).
public final class Calibration {
    /// Per group of the plan.
    public private(set) var parameters: [Quantization] = []
    /// Per observed value: 10·log10(signal / quantization error) of its own quantization (the
    /// rounding inside the range and the clipping outside it) on the samples, in dB; infinite for
    /// a tensor quantized without error (all zeros).
    public private(set) var sqnr: [ValueID: Double] = [:]
    public let samples: CalibrationSamples
    public let method: CalibrationMethod
    /// Seconds spent building the f32 library and running the samples.
    public private(set) var seconds: Double = 0
    let library: CLibrary
    let instance: CLibrary.Instance
    let directory: String
    let cpu: TargetCPU
    let kilnVersion: String
    /// How many of the library's outputs are the graph's own.
    let graphOutputs: Int
    /// Per observed value: its minimum and maximum (holding 0), the range its histogram spans
    /// (its group's in the observed plan), and the histogram.
    var valueRange: [ValueID: (Float, Float)] = [:]
    var binRange: [ValueID: (Float, Float)] = [:]
    var histograms: [ValueID: [Double]] = [:]
    /// Per observed value of rank 2 or more: its mean along axis 1 and along its last axis (per
    /// index of that axis, over the samples and every other axis), for bias correction.
    var means: [ValueID: [Int: [Double]]] = [:]
    var libraries = 0

    // Runs too when the initializer throws once the library is loaded (every property is set by then).
    deinit { try? FileManager.default.removeItem(atPath: directory) }

    /// Runs `samples` through an f32 build of `fused` (the graph after the f32 fusions) and chooses
    /// each group's parameters: the observed range (minmax), or the histogram's L2-optimal one.
    /// Two passes over the samples (ranges, then histograms over them), one sample in memory at a time.
    public init(_ fused: Graph, plan: QuantizationPlan, samples: CalibrationSamples, method: CalibrationMethod,
                cpu: TargetCPU, kilnVersion: String, progress: ProgressHandler = { _ in },
                log: (String) -> Void = { _ in }) throws {
        let started = Date()
        guard samples.count > 0 else { throw KilnError("calibration: no samples") }
        self.samples = samples
        self.method = method
        self.cpu = cpu
        self.kilnVersion = kilnVersion
        graphOutputs = fused.outputs.count
        var g = fused
        // Each observed value: a graph input (read from the sample) or an output of the observing library.
        enum Where { case input(Int), output(Int) }
        var location: [ValueID: Where] = [:]
        for v in plan.observed {
            if let i = g.inputs.firstIndex(of: v) { location[v] = .input(i); continue }
            if let k = g.outputs.firstIndex(of: v) { location[v] = .output(k); continue }
            location[v] = .output(g.outputs.count)
            g.outputs.append(v)
        }
        progress("calibration: build the observing library (\(g.outputs.count - fused.outputs.count) observed tensors)")
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("kiln-calibration-\(getpid())-\(UInt32.random(in: 0...UInt32.max))").path
        directory = dir
        do {
            library = try Self.build(g, name: "kiln_calibration", directory: dir, cpu: cpu, kilnVersion: kilnVersion, log: log)
            let i = try library.makeInstance(threads: 0)
            instance = i
        } catch {
            try? FileManager.default.removeItem(atPath: dir)
            throw error
        }
        let lib = library
        let outputs = lib.outputs.map { UnsafeMutableRawPointer.allocate(byteCount: max($0.bytes, 1), alignment: 64) }
        defer { outputs.forEach { $0.deallocate() } }

        /// Runs sample k and calls `body` with each observed value's elements.
        var cache: [String: Tensor] = [:]
        func observe(_ k: Int, _ body: (ValueID, UnsafeBufferPointer<Float>) -> Void) throws {
            let tensors = try samples.sample(k, cache: &cache)
            try run(instance, of: lib, tensors, outputs)
            for v in plan.observed {
                switch location[v]! {
                case .input(let i): tensors[i].floats.withUnsafeBufferPointer { body(v, $0) }
                case .output(let o):
                    let n = lib.outputs[o].bytes / 4
                    body(v, UnsafeBufferPointer(start: outputs[o].assumingMemoryBound(to: Float.self), count: n))
                }
            }
        }
        var lo: [ValueID: Float] = [:], hi: [ValueID: Float] = [:]
        var sums: [ValueID: [Int: [Double]]] = [:]
        for v in plan.observed {
            lo[v] = .infinity; hi[v] = -.infinity
            let shape = fused.values[v].type.shape ?? []
            if shape.count >= 2 { for axis in Set(shape.count <= 3 ? [1, shape.count - 1] : [1]) { sums[v, default: [:]][axis] = [Double](repeating: 0, count: shape[axis]) } }
        }
        for k in 0..<samples.count {
            progress(.count("calibration: ranges", done: k, of: samples.count, "sample"))
            try observe(k) { v, x in
                var a = lo[v]!, b = hi[v]!
                for e in x where e.isFinite {
                    a = min(a, e)
                    b = max(b, e)
                }
                lo[v] = a
                hi[v] = b
                guard let axes = sums[v], let shape = fused.values[v].type.shape, shapeProduct(shape) == x.count else { return }
                for (axis, _) in axes {
                    let n = shape[axis], inner = shape[(axis + 1)...].reduce(1, *)
                    sums[v]![axis]!.withUnsafeMutableBufferPointer { sum in
                        var i = 0
                        while i < x.count {
                            let c = (i / inner) % n
                            var t = 0.0
                            for e in x[i..<(i + inner)] where e.isFinite { t += Double(e) }
                            sum[c] += t
                            i += inner
                        }
                    }
                }
            }
        }
        for (v, axes) in sums {
            let count = Double(shapeProduct(fused.values[v].type.shape ?? []) * samples.count)
            for (axis, sum) in axes { means[v, default: [:]][axis] = sum.map { $0 * Double(sum.count) / count } }
        }
        // Every range holds 0 (exact in u8); a value never finite observes [0, 0].
        for v in plan.observed {
            if lo[v]! > hi[v]! { lo[v] = 0; hi[v] = 0 }
            valueRange[v] = (min(lo[v]!, 0), max(hi[v]!, 0))
        }
        // Histograms over each group's range, per observed value: a group's sum chooses its range
        // (histogram method), each value's own gives its SQNR.
        for members in plan.groups {
            let r = (members.map { valueRange[$0]!.0 }.min()!, members.map { valueRange[$0]!.1 }.max()!)
            for v in members { binRange[v] = r }
        }
        let bins = 2048
        for v in plan.observed { histograms[v] = [Double](repeating: 0, count: bins) }
        for k in 0..<samples.count {
            progress(.count("calibration: histograms", done: k, of: samples.count, "sample"))
            try observe(k) { v, x in
                let (a, b) = binRange[v]!
                guard b > a else { return }
                let base = Double(a), scale = Double(bins) / (Double(b) - Double(a))
                guard scale.isFinite else { return }
                histograms[v]!.withUnsafeMutableBufferPointer { h in
                    for e in x where e.isFinite {
                        let i = Int((Double(e) - base) * scale)
                        h[min(max(i, 0), bins - 1)] += 1
                    }
                }
            }
        }
        (parameters, sqnr) = self.parameters(for: plan)
        seconds = Date().timeIntervalSince(started)
    }

    /// The parameters of each group of `plan`, and each quantized value's SQNR: `plan` is the
    /// observed plan or one that keeps some of its layers FP32 (each of its groups within one of
    /// the observed plan's).
    public func parameters(for plan: QuantizationPlan) -> ([Quantization], [ValueID: Double]) {
        var parameters: [Quantization] = [], sqnr: [ValueID: Double] = [:]
        for members in plan.groups {
            let (lo, hi) = binRange[members[0]]!
            precondition(members.allSatisfy { binRange[$0]! == (lo, hi) }, "a group the calibration did not observe")
            var chosen = (members.map { valueRange[$0]!.0 }.min()!, members.map { valueRange[$0]!.1 }.max()!)
            if method == .histogram, hi > lo {
                var sum = [Double](repeating: 0, count: histograms[members[0]]!.count)
                for v in members { for (i, c) in histograms[v]!.enumerated() { sum[i] += c } }
                chosen = l2OptimalRange(counts: sum, lo: lo, hi: hi)
            }
            for v in members {
                let (noise, signal) = quantizationError(counts: histograms[v]!, lo: lo, hi: hi, range: chosen)
                sqnr[v] = noise > 0 ? 10 * log10(signal / noise) : .infinity
            }
            parameters.append(affineU8Parameters(lo: chosen.0, hi: chosen.1))
        }
        return (parameters, sqnr)
    }

    /// The mean of observed value `v` along `axis` (1 or its last) on the samples, if it was observed.
    public func inputMeans(_ v: ValueID, axis: Int) -> [Double]? { means[v]?[axis] }

    /// An f32 or quantized graph (fused, before the lowering) built as a shared library for the
    /// machine that compiles, in the calibration's directory, and loaded.
    public func library(for g: Graph, log: (String) -> Void = { _ in }) throws -> CLibrary {
        libraries += 1
        return try Self.build(g, name: "kiln_trial", directory: (directory as NSString).appendingPathComponent("trial-\(libraries)"),
                              cpu: cpu, kilnVersion: kilnVersion, log: log)
    }

    /// Builds for the machine that compiles (which runs it), in the target's layouts.
    static func build(_ fused: Graph, name: String, directory: String, cpu: TargetCPU, kilnVersion: String, log: (String) -> Void) throws -> CLibrary {
        var g = fused
        try Pipeline.lower(&g)
        assignLayouts(&g, policy: cpu.guaranteesAVX512 ? .auto : .channelsLast)
        let emitted = try emitModel(g, options: CodegenOptions(name: name, kilnVersion: kilnVersion, winograd: .off))
        var build = BuildOptions(outputDirectory: directory, name: name, library: .shared, includeDirectory: runtimeIncludeDirectory())
        build.cpu = .native
        let products = try buildLibrary(header: emitted.header, source: emitted.source, weights: emitted.weights, options: build, log: log)
        guard let so = products.sharedLibrary else { throw KilnError("calibration: the library was not built") }
        return try CLibrary(path: so, name: name)
    }

    /// Runs one sample's tensors through `instance` of `lib` into `outputs`.
    func run(_ instance: CLibrary.Instance, of lib: CLibrary, _ tensors: [Tensor], _ outputs: [UnsafeMutableRawPointer]) throws {
        try withPointers(tensors.map { $0.rawBytes() }) { ins in
            try instance.run(inputs: ins, inputBytes: lib.inputs.map(\.bytes), outputs: outputs.map { Optional($0) }, outputBytes: lib.outputs.map(\.bytes))
        }
    }

    /// Each int8 layer's own error on the samples: the SQNR in dB of its int8 twin's result
    /// against its f32 result (`addInt8Twins`), per layer of `plan`, in the plan's layer order.
    public func layerSQNR(_ fused: Graph, plan: QuantizationPlan, progress: ProgressHandler = { _ in },
                          log: (String) -> Void = { _ in }) throws -> [(layer: Int, sqnr: Double)] {
        var g = fused
        let twins = addInt8Twins(&g, plan, parameters: parameters(for: plan).0, inputMeans: inputMeans)
        progress("accuracy: build the library of \(twins.count) layers and their int8 twins")
        let lib = try library(for: g, log: log)
        let instance = try lib.makeInstance(threads: 0)
        let outputs = lib.outputs.map { UnsafeMutableRawPointer.allocate(byteCount: max($0.bytes, 1), alignment: 64) }
        defer { outputs.forEach { $0.deallocate() } }
        var signal = [Double](repeating: 0, count: twins.count), noise = signal
        var cache: [String: Tensor] = [:]
        for k in 0..<samples.count {
            progress(.count("accuracy: each layer's int8 error", done: k, of: samples.count, "sample"))
            try run(instance, of: lib, try samples.sample(k, cache: &cache), outputs)
            for (t, twin) in twins.enumerated() {
                let n = lib.outputs[twin.real].bytes / 4
                let a = outputs[twin.real].assumingMemoryBound(to: Float.self), b = outputs[twin.twin].assumingMemoryBound(to: Float.self)
                for i in 0..<n {
                    let x = Double(a[i]), e = Double(b[i]) - x
                    signal[t] += x * x
                    noise[t] += e * e
                }
            }
        }
        return twins.indices.map { t in (twins[t].layer, noise[t] > 0 ? 10 * log10(signal[t] / noise[t]) : .infinity) }
    }

    /// A quantized library's graph outputs against the f32 library's on the calibration samples.
    public struct Agreement: Sendable {
        public var output: String
        /// All samples' signal over all samples' error, in dB.
        public var sqnr: Double
        /// The mean over the samples of the cosine similarity.
        public var cosine: Double
        /// The share of rows (along the last axis) whose largest element is at the same index, or
        /// nil for an output of fewer than 2 elements per row.
        public var top1: Double?
    }

    /// The quantized library's graph outputs against the f32 library's on the calibration samples,
    /// per f32 output.
    public func compare(_ quantized: CLibrary, progress: ProgressHandler = { _ in }) throws -> [Agreement] {
        let q = try quantized.makeInstance(threads: 0)
        let fOut = library.outputs.map { UnsafeMutableRawPointer.allocate(byteCount: max($0.bytes, 1), alignment: 64) }
        let qOut = quantized.outputs.map { UnsafeMutableRawPointer.allocate(byteCount: max($0.bytes, 1), alignment: 64) }
        defer { (fOut + qOut).forEach { $0.deallocate() } }
        let outputs = min(graphOutputs, quantized.outputs.count)
        var signal = [Double](repeating: 0, count: outputs), noise = signal, cosine = signal, agree = signal, rows = signal
        var cache: [String: Tensor] = [:]
        for k in 0..<samples.count {
            progress(.count("int8 against FP32", done: k, of: samples.count, "sample"))
            let tensors = try samples.sample(k, cache: &cache)
            try run(instance, of: library, tensors, fOut)
            try run(q, of: quantized, tensors, qOut)
            for o in 0..<outputs where quantized.outputs[o].type == .f32 && library.outputs[o].bytes == quantized.outputs[o].bytes {
                let n = quantized.outputs[o].bytes / 4
                let f = fOut[o].assumingMemoryBound(to: Float.self), y = qOut[o].assumingMemoryBound(to: Float.self)
                var ff = 0.0, yy = 0.0, fy = 0.0, e = 0.0
                for i in 0..<n {
                    let a = Double(f[i]), b = Double(y[i])
                    ff += a * a; yy += b * b; fy += a * b; e += (a - b) * (a - b)
                }
                signal[o] += ff
                noise[o] += e
                cosine[o] += ff > 0 && yy > 0 ? fy / (ff * yy).squareRoot() : (ff == yy ? 1 : 0)
                let width = quantized.outputs[o].shape.last ?? 1
                guard width > 1, n % width == 0 else { continue }
                for r in 0..<(n / width) {
                    var bf = 0, by = 0
                    for j in 1..<width {
                        if f[r * width + j] > f[r * width + bf] { bf = j }
                        if y[r * width + j] > y[r * width + by] { by = j }
                    }
                    rows[o] += 1
                    if bf == by { agree[o] += 1 }
                }
            }
        }
        return (0..<outputs).filter { quantized.outputs[$0].type == .f32 }.map { o in
            Agreement(output: quantized.outputs[o].name, sqnr: noise[o] > 0 ? 10 * log10(signal[o] / noise[o]) : .infinity,
                      cosine: cosine[o] / Double(samples.count), top1: rows[o] > 0 ? agree[o] / rows[o] : nil)
        }
    }
}
