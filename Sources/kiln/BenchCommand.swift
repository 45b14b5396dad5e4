import ArgumentParser
import Foundation
import KilnDriver
import KilnIR

struct Bench: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Time a compiled shared library: median, p10 and p90 latency and throughput after warm-up.",
        discussion: "Inputs are random unless given with --input. Uses only the library's C API.")

    @OptionGroup var options: LibraryOptions

    @Option(help: "Timed runs (default: as many as fit in --seconds).")
    var iterations: Int?

    @Option(help: "Seconds to spend timing when --iterations is not given.")
    var seconds: Double = 3

    @Option(help: "Untimed warm-up runs.")
    var warmup: Int = 10

    @Flag(help: "Also print every step's time (node or fused group, slowest first), its bandwidth (bytes per second, and as a share of this machine's memcpy bandwidth) and, for convs and matrix products, its GOP/s.")
    var profile = false

    @Flag(help: "Print the figures as one JSON object instead (latency_ms; with --profile also copy_bandwidth in bytes/s and steps in run order: name, ms, bytes, ops per run).")
    var json = false

    func run() throws {
        let (lib, instance, given) = try options.open()
        var inputData: [[UInt8]] = []
        for spec in lib.inputs {
            if let t = given[spec.name] {
                guard t.elementType == spec.type, t.shape == spec.shape else {
                    throw KilnError("input '\(spec.name)' must be \(spec.type)[\(shapeString(spec.shape))]")
                }
                inputData.append(t.rawBytes())
            } else {
                var rng = UInt64(0x9E3779B97F4A7C15)
                inputData.append((0..<spec.bytes).map { _ in
                    rng = rng &* 6364136223846793005 &+ 1442695040888963407
                    // Small values for float types (bits of exponent kept moderate), any byte otherwise.
                    return spec.type.isFloat ? UInt8(truncatingIfNeeded: (rng >> 33) & 0x3F) : UInt8(truncatingIfNeeded: rng >> 56)
                })
            }
        }
        var outputs = lib.outputs.map { [UInt8](repeating: 0, count: max($0.bytes, 1)) }
        var times: [Double] = []
        try withPointers(inputData) { ins in
            try withMutablePointers(&outputs) { outs in
                let ib = lib.inputs.map(\.bytes), ob = lib.outputs.map(\.bytes)
                for _ in 0..<warmup { try instance.run(inputs: ins, inputBytes: ib, outputs: outs, outputBytes: ob) }
                let deadline = Date().addingTimeInterval(seconds)
                var k = 0
                while iterations.map({ k < $0 }) ?? (Date() < deadline || k < 5) {
                    var t0 = timespec(), t1 = timespec()
                    clock_gettime(CLOCK_MONOTONIC, &t0)
                    try instance.run(inputs: ins, inputBytes: ib, outputs: outs, outputBytes: ob)
                    clock_gettime(CLOCK_MONOTONIC, &t1)
                    times.append(Double(t1.tv_sec - t0.tv_sec) * 1e3 + Double(t1.tv_nsec - t0.tv_nsec) / 1e6)
                    k += 1
                }
            }
        }
        times.sort()
        func pct(_ p: Double) -> Double { times[min(times.count - 1, Int(p * Double(times.count - 1)))] }
        let median = pct(0.5)
        var report = BenchReport(library: lib.name, threads: options.threads, runs: times.count,
                                 latencyMs: .init(median: median, p10: pct(0.1), p90: pct(0.9)))
        if !json {
            print("\(lib.name): \(times.count) runs, \(options.threads == 0 ? "default" : String(options.threads)) threads")
            if median < 0.1 {
                print(String(format: "latency us: median %.3f  p10 %.3f  p90 %.3f", median * 1000, pct(0.1) * 1000, pct(0.9) * 1000))
            } else {
                print(String(format: "latency ms: median %.4f  p10 %.4f  p90 %.4f", median, pct(0.1), pct(0.9)))
            }
            print(String(format: "throughput: %.1f inferences/s", 1000 / median))
        }
        if profile {
            // Separate runs with timing on, so that the figures above are not disturbed by it.
            try instance.setProfiling(true)
            let runs = max(10, min(times.count, 200))
            let profiledStart = Date()
            try withPointers(inputData) { ins in
                try withMutablePointers(&outputs) { outs in
                    for _ in 0..<runs {
                        try instance.run(inputs: ins, inputBytes: lib.inputs.map(\.bytes), outputs: outs, outputBytes: lib.outputs.map(\.bytes))
                    }
                }
            }
            report.profiledWallMs = Date().timeIntervalSince(profiledStart) * 1000 / Double(runs)
            report.profiledRuns = runs
            report.steps = instance.profile().map { StepProfile(name: $0.name, ms: $0.ms / Double(runs), bytes: $0.bytes, ops: $0.ops) }
            report.copyBandwidth = measureCopyBandwidth(threads: options.threads)
            if !json { print(report.profileText()) }
        }
        if json { print(try report.json()) }
    }
}
