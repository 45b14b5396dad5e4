import ArgumentParser
import Foundation
import KilnDriver
import KilnIR

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
