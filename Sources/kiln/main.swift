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
            """,
        version: kilnVersion,
        subcommands: [Inspect.self, Eval.self, ConformanceCommand.self])
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

    @Option(name: .customLong("output-dir"), help: "Where to write the outputs (created if missing).")
    var outputDir: String?

    @Option(help: ArgumentHelp("Integer class labels (.npy): print the top-1 accuracy of the first output.", valueName: "FILE"))
    var labels: String?

    @Flag(name: .customLong("print-ir"), help: "Print the simplified IR before running.")
    var printIR = false

    func run() throws {
        guard outputDir != nil || labels != nil else {
            throw ValidationError("give --output-dir DIR (and/or --labels FILE.npy)")
        }
        var shapes = try options.shapes()
        let imported = try inspectInputs(options.model)
        var tensors: [String: Tensor] = [:]
        for spec in inputs {
            var name: String, file: String
            if let eq = spec.firstIndex(of: "="), !spec.hasSuffix(".npy") || spec[..<eq].count > 0 && !FileManager.default.fileExists(atPath: spec) {
                name = String(spec[..<eq])
                file = String(spec[spec.index(after: eq)...])
            } else {
                guard imported.count == 1 else {
                    throw KilnError("--input \(spec): the model has \(imported.count) inputs; name it as NAME=FILE.npy")
                }
                name = imported[0].name
                file = spec
            }
            guard imported.contains(where: { $0.name == name }) else {
                throw KilnError("--input \(spec): the model has no input '\(name)' (inputs: \(imported.map(\.name).joined(separator: ", ")))")
            }
            let t = try NPY.read(path: file)
            tensors[name] = t
            if shapes[name] == nil, let decl = imported.first(where: { $0.name == name }), decl.dynamic {
                guard t.shape.count == decl.rank else {
                    throw KilnError("\(file): input '\(name)' has rank \(decl.rank), the file holds shape \(shapeString(t.shape))")
                }
                shapes[name] = t.shape
            }
        }
        let g = try loadModel(path: options.model, inputShapes: shapes)
        if printIR { print(KilnIR.printIR(g), terminator: "") }
        let outs = try evaluateReference(g, inputs: tensors)
        if let dir = outputDir {
            try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
            for id in g.outputs {
                let name = g.values[id].name
                let path = (dir as NSString).appendingPathComponent(sanitizedFileName(name) + ".npy")
                try NPY.write(outs[name]!, path: path)
                print("wrote \(path) (\(outs[name]!.type))")
            }
        }
        if let labels {
            let l = try NPY.read(path: labels)
            let first = g.values[g.outputs[0]].name
            let (ok, total) = try top1Accuracy(logits: outs[first]!, labels: l)
            print(String(format: "accuracy: %d/%d = %.2f%%", ok, total, 100 * Double(ok) / Double(max(total, 1))))
        }
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
        for root in roots {
            for dir in Conformance.findCases(root: root) {
                let name = (dir as NSString).lastPathComponent
                if let f = filter, !dir.contains(f) { continue }
                let key = "\((root as NSString).lastPathComponent)/\(name)"
                switch Conformance.run(caseDir: dir) {
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
