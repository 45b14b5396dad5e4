import Foundation

/// The copy bandwidth of this machine: bytes read plus bytes written per second by memcpy of a
/// buffer far larger than the caches, split over `threads` threads (0: every CPU), the best
/// of `passes`. `kiln bench --profile` reads each step's bandwidth against it.
public func measureCopyBandwidth(threads: Int, bytes: Int = 128 << 20, passes: Int = 5) -> Double {
    let parts = threads > 0 ? threads : ProcessInfo.processInfo.activeProcessorCount
    let src = UnsafeMutableRawPointer.allocate(byteCount: bytes, alignment: 4096)
    let dst = UnsafeMutableRawPointer.allocate(byteCount: bytes, alignment: 4096)
    defer {
        src.deallocate()
        dst.deallocate()
    }
    memset(src, 1, bytes)
    memset(dst, 2, bytes)  // touch every page before timing
    let chunk = (bytes / parts + 4095) / 4096 * 4096
    var best = Double.infinity
    for _ in 0..<passes {
        let t0 = DispatchTime.now().uptimeNanoseconds
        DispatchQueue.concurrentPerform(iterations: parts) { i in
            let start = i * chunk
            if start < bytes { memcpy(dst + start, src + start, min(chunk, bytes - start)) }
        }
        best = min(best, Double(DispatchTime.now().uptimeNanoseconds - t0) * 1e-9)
    }
    return 2 * Double(bytes) / best
}

/// One step of a profile, per run.
public struct StepProfile: Codable, Equatable {
    public var name: String
    public var ms: Double
    /// Bytes read and written, operations computed (0 when the step does no conv or matrix product).
    public var bytes: Double
    public var ops: Double
    public init(name: String, ms: Double, bytes: Double, ops: Double) {
        self.name = name
        self.ms = ms
        self.bytes = bytes
        self.ops = ops
    }
    /// Bytes per second (0 for a step that took no measurable time).
    public var bandwidth: Double { ms > 0 ? bytes / (ms * 1e-3) : 0 }
    public var opsPerSecond: Double { ms > 0 ? ops / (ms * 1e-3) : 0 }
}

/// What `kiln bench` measured, as `--json` prints it.
public struct BenchReport: Codable {
    public struct Latency: Codable {
        public var median: Double, p10: Double, p90: Double
        public init(median: Double, p10: Double, p90: Double) {
            self.median = median
            self.p10 = p10
            self.p90 = p90
        }
    }
    public var library: String
    public var threads: Int
    public var runs: Int
    public var latencyMs: Latency
    /// With --profile: the copy bandwidth (bytes/s), the wall time per profiled run, the steps in
    /// run order.
    public var copyBandwidth: Double?
    public var profiledRuns: Int?
    public var profiledWallMs: Double?
    public var steps: [StepProfile]?

    public init(library: String, threads: Int, runs: Int, latencyMs: Latency) {
        self.library = library
        self.threads = threads
        self.runs = runs
        self.latencyMs = latencyMs
    }

    public func json() throws -> String {
        let e = JSONEncoder()
        e.outputFormatting = [.prettyPrinted, .sortedKeys]
        e.keyEncodingStrategy = .convertToSnakeCase
        return String(decoding: try e.encode(self), as: UTF8.self)
    }

    /// The profile as a table, slowest step first: time, share, cumulative share, achieved
    /// bandwidth and its fraction of the copy bandwidth, and GFLOP/s (or GOP/s) where the step
    /// computes a conv or matrix product.
    public func profileText() -> String {
        guard let steps, let copy = copyBandwidth else { return "" }
        let total = steps.reduce(0) { $0 + $1.ms }
        var lines = [String(format: "copy bandwidth: %.1f GB/s (memcpy, %@ threads, bytes read + written)", copy / 1e9,
                            threads == 0 ? "all" : String(threads))]
        lines.append(String(format: "profile: %d steps, %d runs; per run %.4f ms in steps, %.4f ms wall:",
                            steps.count, profiledRuns ?? 0, total, profiledWallMs ?? 0))
        lines.append("      ms      %   cum%     GB/s  %copy   GOP/s  step")
        var cumulative = 0.0
        for s in steps.sorted(by: { $0.ms > $1.ms }) {
            cumulative += s.ms
            let bw = s.bandwidth
            // A step under a microsecond (a reshape that moves nothing) has no meaningful rate.
            let timed = s.ms >= 0.001
            let gbs = s.bytes > 0 && timed ? String(format: "%8.2f  %5.1f", bw / 1e9, 100 * bw / copy) : String(repeating: " ", count: 15)
            let gops = s.ops > 0 && timed ? String(format: "%7.1f", s.opsPerSecond / 1e9) : String(repeating: " ", count: 7)
            lines.append(String(format: "%8.4f  %5.1f  %5.1f  ", s.ms, 100 * s.ms / max(total, 1e-12), 100 * cumulative / max(total, 1e-12))
                         + gbs + "  " + gops + "  " + s.name)
        }
        return lines.joined(separator: "\n")
    }
}
