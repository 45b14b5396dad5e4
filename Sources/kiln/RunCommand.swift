import ArgumentParser
import Foundation
import KilnDriver
import KilnIR

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
        discussion: "Each output is written as DIR/<output name>.npy (characters unsafe in file names become '_'). Inputs whose first axis holds k times the library's batch (the rest of the shape the library's) run as k batches, the outputs concatenated: a library compiled for one image runs over a file of many.")

    @OptionGroup var options: LibraryOptions

    @OptionGroup var results: ResultOptions

    func run() throws {
        let (lib, instance, tensors) = try options.open()
        let outs = try instance.runBatches(tensors)
        try results.write(outs, names: lib.outputs.map(\.name))
    }
}
