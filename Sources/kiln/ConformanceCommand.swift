import ArgumentParser
import Foundation
import KilnDriver
import KilnIR

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

    @Flag(help: "Also compile every case that passes on the reference path, run the libraries and compare.")
    var compiled = false

    @Option(help: "Where the compiled path builds its libraries (default: a temporary folder).")
    var workDir: String?

    @Option(name: .customLong("setting"), help: "With --compiled: compile with these options, LAYOUT:WINOGRAD (e.g. nhwc:off, blocked:always); repeat for several (default auto:auto).")
    var settings: [String] = []

    @Option(help: "With --compiled: g++'s optimization level for the libraries.")
    var optimization = "-O1"

    func run() throws {
        let expected = try expectedFailures.map { try Conformance.readExpectedFailures(path: $0) } ?? [:]
        var passed = 0, failed = 0, unsupported = 0, unexpected = 0
        var reasons: [String: Int] = [:]
        var compiledCases: [CompiledConformance.Case] = []
        for root in roots {
            for dir in Conformance.findCases(root: root) {
                let name = (dir as NSString).lastPathComponent
                if let f = filter, !dir.contains(f) { continue }
                let key = "\((root as NSString).lastPathComponent)/\(name)"
                let (outcome, cases) = Conformance.runCollecting(caseDir: dir, key: key)
                compiledCases += cases
                switch outcome {
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
        if compiled {
            let parsed = try settings.map { try CompiledConformance.Setting(parsing: $0) }
            for setting in parsed.isEmpty ? [CompiledConformance.Setting()] : parsed {
                let label = parsed.isEmpty ? "compiled" : "compiled \(setting)"
                // One folder per setting: a library path loaded once is not loaded again.
                let base = workDir ?? (NSTemporaryDirectory() as NSString).appendingPathComponent("kiln-conformance-\(getpid())")
                let work = (base as NSString).appendingPathComponent("\(setting.layout.rawValue)-\(setting.winograd.rawValue)")
                let progress = ProgressDisplay(verbose: verbose)
                let outcomes = CompiledConformance.run(compiledCases, workDirectory: work, setting: setting, optimization: optimization, progress: { progress($0) })
                progress.finish()
                // A case passes when every one of its test data sets does.
                var byCase: [String: Conformance.Outcome] = [:]
                for (k, o) in outcomes.sorted(by: { $0.key < $1.key }) {
                    let caseKey = String(k.split(separator: "#").first ?? "")
                    switch (byCase[caseKey], o) {
                    case (nil, _), (.passed?, _): byCase[caseKey] = o
                    default: break
                    }
                }
                var cPassed = 0, cFailed = 0, cUnsupported = 0
                for (k, o) in byCase.sorted(by: { $0.key < $1.key }) {
                    switch o {
                    case .passed: cPassed += 1
                    case .failed(let why):
                        cFailed += 1
                        let name = String(k.split(separator: "/").last ?? "")
                        if expected["compiled:" + k] == nil && expected["compiled:" + name] == nil {
                            unexpected += 1
                            print("FAIL (\(label)) \(k): \(why)")
                        }
                    case .unsupported(let why):
                        cUnsupported += 1
                        if verbose { print("unsupported (\(label)) \(k): \(why)") }
                    }
                }
                if workDir == nil { try? FileManager.default.removeItem(atPath: base) }
                print("conformance (\(label)): \(cPassed) passed, \(cFailed) failed, \(cUnsupported + unsupported + failed) unsupported")
            }
        }
        if unexpected > 0 { throw ExitCode(1) }
    }
}
