import Foundation
import KilnCodegen
import KilnIR
import KilnPasses
import KilnToolchain
import KilnTarget

/// Runs conformance cases through the compiled path: many cases merged into one graph, one
/// library built per batch (one g++ run), each output compared with ONNX's expected output.
public enum CompiledConformance {
    public struct Case {
        public var key: String
        public var graph: Graph
        public var inputs: [String: Tensor]
        public var expected: [String: Tensor]
    }

    /// The options a compiled run uses: `kiln compile --layout L --winograd W`.
    public struct Setting: Sendable, Hashable, CustomStringConvertible {
        public var layout: LayoutPolicy
        public var winograd: WinogradPolicy
        public init(layout: LayoutPolicy = .auto, winograd: WinogradPolicy = .auto) {
            self.layout = layout
            self.winograd = winograd
        }
        /// Parses `LAYOUT:WINOGRAD`, e.g. `nhwc:off` or `blocked:always`.
        public init(parsing text: String) throws {
            let parts = text.split(separator: ":").map(String.init)
            guard parts.count == 2, let l = LayoutPolicy(rawValue: parts[0]), let w = WinogradPolicy(rawValue: parts[1]) else {
                throw KilnError("setting '\(text)' should be LAYOUT:WINOGRAD, LAYOUT one of \(LayoutPolicy.allCases.map(\.rawValue).joined(separator: "|")), WINOGRAD one of \(WinogradPolicy.allCases.map(\.rawValue).joined(separator: "|"))")
            }
            self.init(layout: l, winograd: w)
        }
        public var description: String { "\(layout.rawValue):\(winograd.rawValue)" }
    }

    /// Compiles and runs `cases` in batches; returns each case key's outcome.
    /// `optimization` is g++'s level for the libraries (-O1 by default: code like a release
    /// build's at a third of -O3's compile time; -O0 builds three times faster again).
    public static func run(_ cases: [Case], workDirectory: String, batchSize: Int = 120, setting: Setting = Setting(),
                           optimization: String = "-O1",
                           progress: ProgressHandler = { _ in }) -> [String: Conformance.Outcome] {
        var outcomes: [String: Conformance.Outcome] = [:]
        // Cases that code generation rejects by themselves are decided without g++.
        var ready: [Case] = []
        for var c in cases {
            do {
                // The same passes as `kiln compile`.
                try Pipeline.optimize(&c.graph, layout: setting.layout)
                _ = try emitModel(c.graph, options: CodegenOptions(name: "probe", kilnVersion: "test", winograd: setting.winograd))
                ready.append(c)
            } catch let e as KilnError {
                outcomes[c.key] = e.isUnsupported ? .unsupported("codegen: \(e.message)") : .failed("codegen: \(e.message)")
            } catch {
                outcomes[c.key] = .failed("codegen: \(error)")
            }
        }
        // Batches build (g++) and run side by side, one per core.
        // At most `batchSize` cases a batch, and a multiple of the core count of batches.
        let cores = max(1, ProcessInfo.processInfo.activeProcessorCount)
        var count = (ready.count + batchSize - 1) / batchSize
        count = min(ready.count, (count + cores - 1) / cores * cores)
        let size = count == 0 ? 1 : (ready.count + count - 1) / count
        let batches = stride(from: 0, to: ready.count, by: size).map { Array(ready[$0..<min(ready.count, $0 + size)]) }
        let lock = NSLock()
        var finished = 0
        progress(.count("compiled conformance (\(ready.count) cases)", done: 0, of: batches.count, "batch"))
        DispatchQueue.concurrentPerform(iterations: batches.count) { b in
            let results = runBatch(batches[b], dir: (workDirectory as NSString).appendingPathComponent("batch\(b)"),
                                   winograd: setting.winograd, optimization: optimization)
            lock.withLock {
                for (k, o) in results { outcomes[k] = o }
                finished += 1
                progress(.count("compiled conformance (\(ready.count) cases)", done: finished, of: batches.count, "batch"))
            }
        }
        return outcomes
    }

    static func runBatch(_ cases: [Case], dir: String, winograd: WinogradPolicy, optimization: String) -> [String: Conformance.Outcome] {
        var outcomes: [String: Conformance.Outcome] = [:]
        let merged = mergeGraphs(cases.enumerated().map { ("c\($0.offset)", $0.element.graph) }, name: "conformance")
        let lib: CLibrary
        do {
            let emitted = try emitModel(merged, options: CodegenOptions(name: "conformance", kilnVersion: "test", winograd: winograd))
            var o = BuildOptions(outputDirectory: dir, name: "conformance", library: .shared, includeDirectory: runtimeIncludeDirectory())
            o.optimization = optimization
            let products = try buildLibrary(header: emitted.header, source: emitted.source, weights: emitted.weights, options: o)
            lib = try CLibrary(path: products.sharedLibrary!, name: "conformance")
        } catch {
            // One case breaks the build: split the batch to find it.
            if cases.count == 1 {
                outcomes[cases[0].key] = .failed("build: \(error)")
                return outcomes
            }
            let half = cases.count / 2
            for (k, v) in runBatch(Array(cases[..<half]), dir: dir + "a", winograd: winograd, optimization: optimization) { outcomes[k] = v }
            for (k, v) in runBatch(Array(cases[half...]), dir: dir + "b", winograd: winograd, optimization: optimization) { outcomes[k] = v }
            return outcomes
        }
        var inputs: [String: Tensor] = [:]
        for (i, c) in cases.enumerated() {
            for (name, t) in c.inputs { inputs["c\(i)/\(name)"] = t }
        }
        let results: [String: Tensor]
        do {
            results = try lib.makeInstance().run(inputs)
        } catch {
            for c in cases { outcomes[c.key] = .failed("run: \(error)") }
            return outcomes
        }
        for (i, c) in cases.enumerated() {
            var outcome = Conformance.Outcome.passed
            for (name, expected) in c.expected.sorted(by: { $0.key < $1.key }) {
                guard let got = results["c\(i)/\(name)"] else {
                    outcome = .failed("output '\(name)' missing")
                    break
                }
                if let problem = Conformance.compare(got, expected) {
                    outcome = .failed("output '\(name)': \(problem)")
                    break
                }
            }
            outcomes[c.key] = outcome
        }
        return outcomes
    }
}
