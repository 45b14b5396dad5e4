import ArgumentParser
import Foundation
import KilnDriver

struct Doctor: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Check that this machine can compile models: Kiln's runtime headers, g++, OpenMP, oneDNN, the CPU, free disk.",
        discussion: """
            One line per check, found the way `kiln compile` finds it (the same compiler, search paths \
            and headers). Exits with status 1, printing the command that fixes it, when something a compile \
            needs is missing. The compiler is $KILN_CXX when set (a g++), else g++ from PATH; the runtime \
            headers are $KILN_INCLUDE_DIR when set, else those installed beside kiln.
            """)

    @Option(name: .shortAndLong, help: "The folder whose free disk space to report (where the outputs will go).")
    var output: String = "."

    func run() throws {
        let d = diagnose(kilnVersion: kilnVersion, outputDirectory: output)
        print(d.text)
        if !d.healthy {
            print("kiln doctor: something a compile needs is missing (see the fix lines above)")
            throw ExitCode(1)
        }
        print("kiln doctor: ready to compile")
    }
}
