import Foundation
import Testing
import KilnCodegen
import KilnDriver
import KilnIR
import KilnPasses
import KilnToolchain

/// The profiling API of a library (`NAME_profile_*`) and what `kiln bench --profile --json`
/// builds from it.
@Suite struct ProfileTests {
    @Test func stepsReportTheirTimeBytesAndOperations() throws {
        var b = RegressionTests.Builder()
        let x = b.input("x", [1, 8, 16, 16])
        let w = b.constant("w", [16, 8, 3, 3])
        let c = b.node(.conv(ConvAttributes(pads: [1, 1, 1, 1])), [x, w], "conv")
        let y = b.node(.softmax(axis: 1, legacy: false), [c], "y")
        b.g.outputs = [y]
        var g = b.g
        try inferShapes(&g)
        let emitted = try emitModel(g, options: CodegenOptions(name: "prof", kilnVersion: "test"))
        let products = try buildLibrary(header: emitted.header, source: emitted.source, weights: emitted.weights,
                                        options: BuildOptions(outputDirectory: temporaryDirectory(), name: "prof", library: .shared,
                                                              includeDirectory: runtimeIncludeDirectory()))
        #expect(emitted.header.contains("double prof_profile_bytes(size_t step);"))
        let lib = try CLibrary(path: try #require(products.sharedLibrary), name: "prof")
        let instance = try lib.makeInstance()
        try instance.setProfiling(true)
        for _ in 0..<3 { _ = try instance.run(b.inputs) }
        let steps = instance.profile()
        try #require(steps.count == 2)
        #expect(steps[0].name == "conv (conv)" && steps[1].name == "y (softmax)")
        #expect(steps.allSatisfy { $0.ms >= 0 } && steps.reduce(0) { $0 + $1.ms } > 0)
        // Conv: x, w and the result once each; 2 operations per multiply-accumulate.
        #expect(steps[0].bytes == Double((8 * 256 + 16 * 8 * 9 + 16 * 256) * 4))
        #expect(steps[0].ops == Double(2 * (16 * 256) * (8 * 9)))
        #expect(steps[1].bytes == Double(2 * 16 * 256 * 4) && steps[1].ops == 0)

        var report = BenchReport(library: "prof", threads: 1, runs: 3, latencyMs: .init(median: 1, p10: 0.5, p90: 2))
        report.steps = steps.map { StepProfile(name: $0.name, ms: $0.ms / 3, bytes: $0.bytes, ops: $0.ops) }
        report.copyBandwidth = measureCopyBandwidth(threads: 1, bytes: 8 << 20, passes: 2)
        #expect(report.copyBandwidth! > 1e8)
        let text = report.profileText()
        #expect(text.contains("copy bandwidth:") && text.contains("y (softmax)"))
        let decoder = JSONDecoder()
        decoder.keyDecodingStrategy = .convertFromSnakeCase
        let back = try decoder.decode(BenchReport.self, from: Data(try report.json().utf8))
        #expect(back.steps == report.steps && back.latencyMs.median == 1)
        #expect(try report.json().contains("\"copy_bandwidth\""))
    }
}
