import Foundation
import KilnIR
import KilnONNX
import KilnPasses

/// Runs ONNX test cases (a folder holding `model.onnx` and `test_data_set_N/{input,output}_K.pb`)
/// through the reference interpreter and compares with the expected outputs.
public enum Conformance {
    public enum Outcome: Sendable {
        case passed
        case failed(String)
        case unsupported(String)
    }

    /// Tolerance: per output, max|got − expected| ≤ rtol · max|expected| + atol.
    public static let rtol = 1e-3
    public static let atol = 1e-5

    /// An expected-failures file: one case name a line, '#' starts its reason. Name → reason.
    public static func readExpectedFailures(path: String) throws -> [String: String] {
        guard let text = try? String(contentsOfFile: path, encoding: .utf8) else { throw KilnError("\(path): cannot read") }
        var expected: [String: String] = [:]
        for line in text.split(separator: "\n") {
            let parts = line.split(separator: "#", maxSplits: 1)
            let name = parts.first.map { $0.trimmingCharacters(in: .whitespaces) } ?? ""
            if !name.isEmpty { expected[name] = parts.count > 1 ? parts[1].trimmingCharacters(in: .whitespaces) : "" }
        }
        return expected
    }

    /// All case folders under `root` (any folder holding a model.onnx), sorted.
    public static func findCases(root: String) -> [String] {
        var out: [String] = []
        guard let e = FileManager.default.enumerator(atPath: root) else { return [] }
        while let p = e.nextObject() as? String {
            if (p as NSString).lastPathComponent == "model.onnx" {
                out.append((root as NSString).appendingPathComponent((p as NSString).deletingLastPathComponent))
            }
        }
        return out.sorted()
    }

    /// Runs a case; when an operand that decides a shape arrives as a run-time input (Resize's
    /// scales, Range's start), runs it again with every input bound as a constant.
    public static func run(caseDir: String) -> Outcome { runCollecting(caseDir: caseDir, key: "").outcome }

    /// Runs a case and, when it passes, also returns it ready for the compiled path (one entry
    /// per test data set: the simplified graph, its inputs and the expected outputs).
    public static func runCollecting(caseDir: String, key: String) -> (outcome: Outcome, cases: [CompiledConformance.Case]) {
        var cases: [CompiledConformance.Case] = []
        var first = run(caseDir: caseDir, freezeAll: false, key: key, collect: &cases)
        if case .unsupported(let why) = first, why.contains("must be a constant") {
            cases = []
            first = run(caseDir: caseDir, freezeAll: true, key: key, collect: &cases)
        }
        if case .passed = first { return (first, cases) }
        return (first, [])
    }

    static func run(caseDir: String, freezeAll: Bool, key: String, collect: inout [CompiledConformance.Case]) -> Outcome {
        let modelPath = (caseDir as NSString).appendingPathComponent("model.onnx")
        let imported: Graph
        do {
            imported = try loadONNXModel(path: modelPath)
        } catch let e as KilnError {
            return e.isUnsupported ? .unsupported(e.message) : .failed("import: \(e.message)")
        } catch {
            return .failed("import: \(error)")
        }
        for n in imported.nodes {
            if case .unsupported(let reason) = n.op {
                return .unsupported("\(n.origin.opType): \(reason)")
            }
        }
        let fm = FileManager.default
        let sets = ((try? fm.contentsOfDirectory(atPath: caseDir)) ?? []).filter { $0.hasPrefix("test_data_set_") }.sorted()
        if sets.isEmpty { return .unsupported("no test data") }
        for set in sets {
            let dir = (caseDir as NSString).appendingPathComponent(set)
            do {
                var inputs: [String: Tensor] = [:]
                var shapes: [String: [Int]] = [:]
                for (k, id) in imported.inputs.enumerated() {
                    let path = (dir as NSString).appendingPathComponent("input_\(k).pb")
                    guard fm.fileExists(atPath: path) else { continue }
                    let t = try loadTensorFile(path).tensor
                    let name = imported.values[id].name
                    inputs[name] = t
                    shapes[name] = t.shape
                }
                var g = imported
                // Kiln compiles for static shapes: s64 inputs (shape operands such as Reshape's
                // target, Resize's sizes, reduction axes) are bound as constants, as a user of an
                // ahead-of-time compiler would freeze them.
                for id in g.inputs {
                    let name = g.values[id].name
                    if let t = inputs[name], t.elementType == .s64 || freezeAll {
                        g.values[id].constant = t
                        g.values[id].type = t.type
                        inputs[name] = nil
                        shapes[name] = nil
                    }
                }
                g.inputs.removeAll { g.values[$0].constant != nil }
                try Pipeline.simplify(&g, inputShapes: shapes)
                // Inputs without data (optional) must not be read.
                let outs = try evaluateReference(g, inputs: inputs)
                var expectedOutputs: [String: Tensor] = [:]
                for (k, id) in g.outputs.enumerated() {
                    let path = (dir as NSString).appendingPathComponent("output_\(k).pb")
                    guard fm.fileExists(atPath: path) else { continue }
                    let expected = try loadTensorFile(path).tensor
                    let name = g.values[id].name
                    guard let got = outs[name] else { return .failed("\(set): output \(name) missing") }
                    if let problem = compare(got, expected) { return .failed("\(set): output '\(name)': \(problem)") }
                    expectedOutputs[name] = expected
                }
                collect.append(.init(key: "\(key)#\(set)", graph: g, inputs: inputs, expected: expectedOutputs))
            } catch let e as KilnError {
                return e.isUnsupported ? .unsupported(e.message) : .failed("\(set): \(e.message)")
            } catch {
                return .failed("\(set): \(error)")
            }
        }
        return .passed
    }

    /// nil when `got` agrees with `expected` within tolerance, else what differs.
    public static func compare(_ got: Tensor, _ expected: Tensor, rtol: Double = rtol, atol: Double = atol) -> String? {
        guard got.elementType == expected.elementType else { return "type \(got.elementType), expected \(expected.elementType)" }
        guard got.shape == expected.shape else { return "shape \(shapeString(got.shape)), expected \(shapeString(expected.shape))" }
        var maxRef = 0.0, maxDiff = 0.0, worst = 0
        for i in 0..<got.count {
            let a = got.double(at: i), b = expected.double(at: i)
            if a.isNaN || b.isNaN {
                if a.isNaN != b.isNaN { return "element \(i) is \(a), expected \(b)" }
                continue
            }
            if a.isInfinite || b.isInfinite {
                if a != b { return "element \(i) is \(a), expected \(b)" }
                continue
            }
            maxRef = max(maxRef, abs(b))
            let d = abs(a - b)
            if d > maxDiff { maxDiff = d; worst = i }
        }
        if maxDiff > rtol * maxRef + atol {
            return String(format: "max |diff| %.3g at element %d (got %.6g, expected %.6g), allowed %.3g",
                          maxDiff, worst, got.double(at: worst), expected.double(at: worst), rtol * maxRef + atol)
        }
        return nil
    }
}
