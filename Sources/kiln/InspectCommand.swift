import ArgumentParser
import Foundation
import KilnDriver
import KilnIR

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
