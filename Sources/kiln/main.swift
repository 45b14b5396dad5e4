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
              kiln doctor
            """,
        subcommands: [Inspect.self, Eval.self, Compile.self, Run.self, Bench.self, ConformanceCommand.self, Doctor.self])

    @Flag(name: .customLong("version"), help: "Print Kiln's version, the C ABI version it writes, the g++ and oneDNN it builds with and the CPU features it sees.")
    var version = false

    func run() throws {
        guard version else { throw CleanExit.helpRequest(self) }
        print("kiln \(kilnVersion)")
        print("C ABI version written: \(writtenABIVersion)")
        for c in diagnose(kilnVersion: kilnVersion).checks where c.what != "kiln" && c.what != "free disk" {
            print("\(c.what): \(c.found)")
        }
    }
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
