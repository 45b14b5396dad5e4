import Foundation
import KilnIR

/// A compiled model library loaded with dlopen and driven through its public C ABI only —
/// what `kiln run` and `kiln bench` use, so they test the ABI as any foreign binding would.
public final class CLibrary {
    public struct TensorSpec: Sendable {
        public var name: String
        public var type: ElementType
        public var shape: [Int]
        public var bytes: Int
    }

    typealias CreateFn = @convention(c) (UnsafeMutablePointer<OpaquePointer?>?) -> Int32
    typealias DestroyFn = @convention(c) (OpaquePointer?) -> Void
    typealias LastErrorFn = @convention(c) (OpaquePointer?) -> UnsafePointer<CChar>?
    typealias StatusStringFn = @convention(c) (Int32) -> UnsafePointer<CChar>?
    typealias ThreadsFn = @convention(c) (OpaquePointer?, Int32) -> Int32
    typealias RunFn = @convention(c) (OpaquePointer?, Int, UnsafePointer<UnsafeRawPointer?>?, UnsafePointer<Int>?,
                                      Int, UnsafePointer<UnsafeMutableRawPointer?>?, UnsafePointer<Int>?) -> Int32
    typealias CountFn = @convention(c) () -> Int
    typealias NameFn = @convention(c) (Int) -> UnsafePointer<CChar>?
    typealias IntFn = @convention(c) (Int) -> Int32
    typealias SizeFn = @convention(c) (Int) -> Int
    typealias ShapeFn = @convention(c) (Int) -> UnsafePointer<Int64>?

    public let path: String
    public let name: String
    public let inputs: [TensorSpec]
    public let outputs: [TensorSpec]
    let handle: UnsafeMutableRawPointer
    let destroyFn: DestroyFn
    let lastErrorFn: LastErrorFn
    let statusStringFn: StatusStringFn
    let threadsFn: ThreadsFn
    let runFn: RunFn
    let createFn: CreateFn
    public let version: String
    let setProfilingFn: (@convention(c) (OpaquePointer?, Int32) -> Int32)?
    let profileCountFn: CountFn?
    let profileNameFn: NameFn?
    let profileMsFn: (@convention(c) (OpaquePointer?, Int) -> Double)?
    let profileBytesFn: (@convention(c) (Int) -> Double)?
    let profileOpsFn: (@convention(c) (Int) -> Double)?

    /// Opens `path`; the model's name is taken from `libNAME.so` unless given.
    public init(path: String, name: String? = nil) throws {
        guard FileManager.default.fileExists(atPath: path) else { throw KilnError("\(path): no such file") }
        let base = ((path as NSString).lastPathComponent as NSString).deletingPathExtension
        let n = name ?? (base.hasPrefix("lib") ? String(base.dropFirst(3)) : base)
        // RTLD_LOCAL so that several models (and their identical kernels) never interpose.
        let full = path.contains("/") ? path : "./" + path
        guard let h = dlopen(full, RTLD_NOW | RTLD_LOCAL) else {
            throw KilnError("\(path): cannot load the library: \(String(cString: dlerror()))")
        }
        func sym<T>(_ s: String, _ t: T.Type) throws -> T {
            guard let p = dlsym(h, "\(n)_\(s)") else {
                throw KilnError("\(path): symbol \(n)_\(s) not found; is this a Kiln library named '\(n)'? (use --name)")
            }
            return unsafeBitCast(p, to: t)
        }
        self.handle = h
        self.path = path
        self.name = n
        createFn = try sym("create", CreateFn.self)
        destroyFn = try sym("destroy", DestroyFn.self)
        lastErrorFn = try sym("last_error", LastErrorFn.self)
        statusStringFn = try sym("status_string", StatusStringFn.self)
        threadsFn = try sym("set_num_threads", ThreadsFn.self)
        runFn = try sym("run", RunFn.self)
        let versionFn = try sym("version", (@convention(c) () -> UnsafePointer<CChar>?).self)
        version = versionFn().map { String(cString: $0) } ?? "?"
        func specs(_ kind: String) throws -> [TensorSpec] {
            let count = try sym("num_\(kind)s", CountFn.self)()
            let nameF = try sym("\(kind)_name", NameFn.self), typeF = try sym("\(kind)_type", IntFn.self)
            let rankF = try sym("\(kind)_rank", SizeFn.self), shapeF = try sym("\(kind)_shape", ShapeFn.self)
            let bytesF = try sym("\(kind)_bytes", SizeFn.self)
            return try (0..<count).map { i in
                guard let t = ElementType(rawValue: Int(typeF(i))) else { throw KilnError("\(path): \(kind) \(i) has an unknown element type") }
                let rank = rankF(i)
                let shp = shapeF(i).map { p in (0..<rank).map { Int(p[$0]) } } ?? []
                return TensorSpec(name: nameF(i).map { String(cString: $0) } ?? "?", type: t, shape: shp, bytes: bytesF(i))
            }
        }
        inputs = try specs("input")
        outputs = try specs("output")
        func optional<T>(_ s: String, _ t: T.Type) -> T? { dlsym(h, "\(n)_\(s)").map { unsafeBitCast($0, to: t) } }
        setProfilingFn = optional("set_profiling", (@convention(c) (OpaquePointer?, Int32) -> Int32).self)
        profileCountFn = optional("profile_count", CountFn.self)
        profileNameFn = optional("profile_name", NameFn.self)
        profileMsFn = optional("profile_ms", (@convention(c) (OpaquePointer?, Int) -> Double).self)
        profileBytesFn = optional("profile_bytes", (@convention(c) (Int) -> Double).self)
        profileOpsFn = optional("profile_ops", (@convention(c) (Int) -> Double).self)
    }

    deinit { dlclose(handle) }

    /// One instance of the model.
    public final class Instance {
        let lib: CLibrary
        let model: OpaquePointer
        init(_ lib: CLibrary, _ model: OpaquePointer) {
            self.lib = lib
            self.model = model
        }
        deinit { lib.destroyFn(model) }

        /// Turns per-step timing on (throws when the library predates profiling).
        public func setProfiling(_ on: Bool) throws {
            guard let f = lib.setProfilingFn else { throw KilnError("\(lib.path): this library has no profiling API") }
            let s = f(model, on ? 1 : 0)
            if s != 0 { throw lib.error(s, model) }
        }

        /// Each step in run order: its name, accumulated milliseconds, and the bytes it moves and
        /// operations it computes per run (0 from libraries that predate those figures).
        public func profile() -> [(name: String, ms: Double, bytes: Double, ops: Double)] {
            guard let count = lib.profileCountFn, let name = lib.profileNameFn, let ms = lib.profileMsFn else { return [] }
            return (0..<count()).map {
                (name($0).map { String(cString: $0) } ?? "?", ms(model, $0), lib.profileBytesFn?($0) ?? 0, lib.profileOpsFn?($0) ?? 0)
            }
        }

        /// Runs `run` 3 times to warm up, then with profiling on at least `minRuns` times and for
        /// `seconds` (at most `maxRuns` times); returns each step's profile per run, and the runs.
        public func profiledRuns(minRuns: Int, seconds: Double, maxRuns: Int = .max,
                                 _ run: () throws -> Void) throws -> (steps: [(name: String, ms: Double, bytes: Double, ops: Double)], runs: Int) {
            for _ in 0..<3 { try run() }
            try setProfiling(true)
            let start = Date()
            var runs = 0
            while runs < minRuns || (Date().timeIntervalSince(start) < seconds && runs < maxRuns) {
                try run()
                runs += 1
            }
            return (profile().map { ($0.name, $0.ms / Double(runs), $0.bytes, $0.ops) }, runs)
        }

        public func setThreads(_ n: Int) throws {
            let s = lib.threadsFn(model, Int32(n))
            if s != 0 { throw lib.error(s, model) }
        }

        /// Runs on raw buffers (already checked by the caller).
        public func run(inputs: [UnsafeRawPointer?], inputBytes: [Int], outputs: [UnsafeMutableRawPointer?], outputBytes: [Int]) throws {
            let s = inputs.withUnsafeBufferPointer { ip in
                inputBytes.withUnsafeBufferPointer { ib in
                    outputs.withUnsafeBufferPointer { op in
                        outputBytes.withUnsafeBufferPointer { ob in
                            lib.runFn(model, ip.count, ip.baseAddress, ib.baseAddress, op.count, op.baseAddress, ob.baseAddress)
                        }
                    }
                }
            }
            if s != 0 { throw lib.error(s, model) }
        }

        /// Runs on tensors whose first axis holds k times the library's batch (the same k for
        /// every input, the rest of each shape the library's): k runs, the outputs concatenated
        /// along their first axis. k = 1 is a plain `run`. A batch-1 library over a file of
        /// 360 images is 360 runs.
        public func runBatches(_ tensors: [String: Tensor]) throws -> [String: Tensor] {
            var k = 1
            for spec in lib.inputs {
                guard let t = tensors[spec.name], let b = spec.shape.first, b > 0, t.rank == spec.shape.count,
                      t.elementType == spec.type, Array(t.shape.dropFirst()) == Array(spec.shape.dropFirst()),
                      t.shape[0] > b, t.shape[0] % b == 0 else { return try run(tensors) }
                if spec.name == lib.inputs[0].name { k = t.shape[0] / b } else if t.shape[0] / b != k { return try run(tensors) }
            }
            guard lib.outputs.allSatisfy({ ($0.shape.first ?? 0) > 0 }) else { return try run(tensors) }
            var parts: [String: [[UInt8]]] = [:]
            let inputBytes = lib.inputs.map { tensors[$0.name]!.rawBytes() }
            for i in 0..<k {
                var chunk: [String: Tensor] = [:]
                for (j, spec) in lib.inputs.enumerated() {
                    let bytes = inputBytes[j], n = spec.bytes
                    chunk[spec.name] = bytes[(i * n)..<((i + 1) * n)].withUnsafeBytes { Tensor(spec.type, shape: spec.shape, rawBytes: $0) }
                }
                for (name, t) in try run(chunk) { parts[name, default: []].append(t.rawBytes()) }
            }
            var result: [String: Tensor] = [:]
            for spec in lib.outputs {
                let bytes = parts[spec.name]!.flatMap { $0 }
                result[spec.name] = bytes.withUnsafeBytes { Tensor(spec.type, shape: [spec.shape[0] * k] + spec.shape.dropFirst(), rawBytes: $0) }
            }
            return result
        }

        /// Runs on tensors, checking their types and shapes against the library's.
        public func run(_ tensors: [String: Tensor]) throws -> [String: Tensor] {
            var inputData: [[UInt8]] = []
            for spec in lib.inputs {
                guard let t = tensors[spec.name] else { throw KilnError("no value given for input '\(spec.name)'") }
                guard t.elementType == spec.type, t.shape == spec.shape else {
                    throw KilnError("input '\(spec.name)' must be \(spec.type)[\(shapeString(spec.shape))], got \(t.elementType)[\(shapeString(t.shape))]")
                }
                inputData.append(t.rawBytes())
            }
            var outputData = lib.outputs.map { [UInt8](repeating: 0, count: max($0.bytes, 1)) }
            try withPointers(inputData) { ins in
                try withMutablePointers(&outputData) { outs in
                    try run(inputs: ins, inputBytes: lib.inputs.map(\.bytes), outputs: outs, outputBytes: lib.outputs.map(\.bytes))
                }
            }
            var result: [String: Tensor] = [:]
            for (k, spec) in lib.outputs.enumerated() {
                let t = outputData[k].withUnsafeBytes { Tensor(spec.type, shape: spec.shape, rawBytes: UnsafeRawBufferPointer(rebasing: $0[0..<spec.bytes])) }
                result[spec.name] = t
            }
            return result
        }
    }

    /// A new instance; with `threads`, set to that many OpenMP threads (0: every processor).
    public func makeInstance(threads: Int? = nil) throws -> Instance {
        var m: OpaquePointer?
        let s = createFn(&m)
        guard s == 0, let model = m else { throw error(s, nil) }
        let instance = Instance(self, model)
        if let threads { try instance.setThreads(threads > 0 ? threads : ProcessInfo.processInfo.activeProcessorCount) }
        return instance
    }

    func error(_ status: Int32, _ model: OpaquePointer?) -> KilnError {
        let what = statusStringFn(status).map { String(cString: $0) } ?? "status \(status)"
        let detail = model.flatMap { lastErrorFn($0) }.map { String(cString: $0) } ?? ""
        return KilnError("\(name): \(what) (status \(status))\(detail.isEmpty ? "" : ": \(detail)")")
    }
}

public func withPointers<R>(_ arrays: [[UInt8]], _ body: ([UnsafeRawPointer?]) throws -> R) rethrows -> R {
    var pointers: [UnsafeRawPointer?] = []
    func step(_ i: Int) throws -> R {
        if i == arrays.count { return try body(pointers) }
        return try arrays[i].withUnsafeBytes { p in
            pointers.append(p.baseAddress)
            return try step(i + 1)
        }
    }
    return try step(0)
}

public func withMutablePointers<R>(_ arrays: inout [[UInt8]], _ body: ([UnsafeMutableRawPointer?]) throws -> R) rethrows -> R {
    let count = arrays.count
    let buffers = arrays.map { a -> UnsafeMutableRawPointer in
        let p = UnsafeMutableRawPointer.allocate(byteCount: max(a.count, 1), alignment: 64)
        return p
    }
    defer { buffers.forEach { $0.deallocate() } }
    let r = try body(buffers.map { Optional($0) })
    for i in 0..<count {
        let n = arrays[i].count
        arrays[i].withUnsafeMutableBytes { $0.baseAddress!.copyMemory(from: buffers[i], byteCount: n) }
    }
    return r
}
