import Foundation

/// How a quantized tensor's range is chosen from what the calibration observed.
public enum CalibrationMethod: String, CaseIterable, Sendable {
    /// The range that minimises the expected squared quantization error over a 2048-bin
    /// histogram of the observed values (rounding inside the range, clipping outside it).
    case histogram
    /// The observed minimum and maximum.
    case minmax
}

/// A small deterministic generator (SplitMix64): the random calibration samples, and the tests'
/// random data.
public struct SplitMix64: Sendable {
    public var state: UInt64
    public init(seed: UInt64) { state = seed }
    public mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
    /// Uniform in [0, 1).
    public mutating func nextDouble() -> Double { Double(next() >> 11) / Double(1 << 53) }
}

/// The range in `[lo, hi]` (which holds 0) that minimises the expected squared error of u8
/// quantization over the histogram `counts` of equal bins spanning `[lo, hi]`: values inside
/// the range err by a uniform rounding error (step² / 12), values outside it by their distance to
/// it. Candidates are bin edges with 0 inside.
public func l2OptimalRange(counts: [Double], lo: Float, hi: Float) -> (Float, Float) {
    let n = counts.count
    guard n > 0, hi > lo else { return (lo, hi) }
    let width = (Double(hi) - Double(lo)) / Double(n)
    // Prefix sums of c, c·x, c·x² with x each bin's centre.
    var s0 = [Double](repeating: 0, count: n + 1), s1 = s0, s2 = s0
    for i in 0..<n {
        let x = Double(lo) + (Double(i) + 0.5) * width
        s0[i + 1] = s0[i] + counts[i]
        s1[i + 1] = s1[i] + counts[i] * x
        s2[i + 1] = s2[i] + counts[i] * x * x
    }
    func edge(_ i: Int) -> Double { Double(lo) + Double(i) * width }
    // The last bin edge at or below 0, and the first at or above it.
    let zeroBin = min(max(Int((-Double(lo) / width).rounded(.down)), 0), n)
    let zeroEdge = min(max(Int((-Double(lo) / width).rounded(.up)), 0), n)
    var best = (error: Double.infinity, a: 0, b: n)
    for ia in 0...zeroBin {
        let a = edge(ia)
        // Left clipping error: sum over bins below a of c·(a − x)².
        let left = a * a * s0[ia] - 2 * a * s1[ia] + s2[ia]
        if left >= best.error { continue }
        for ib in stride(from: n, through: max(zeroEdge, ia + 1), by: -1) {
            let b = edge(ib)
            let right = (s2[n] - s2[ib]) - 2 * b * (s1[n] - s1[ib]) + b * b * (s0[n] - s0[ib])
            let step = (b - a) / 255
            let inside = (s0[ib] - s0[ia]) * step * step / 12
            let e = left + right + inside
            if e < best.error { best = (e, ia, ib) }
        }
    }
    return (Float(edge(best.a)), Float(edge(best.b)))
}

/// Squared quantization error, summed over the histogram `counts` of equal bins spanning
/// `[lo, hi]`, of u8 quantization over the range `[a, b]` with a step of (b − a) / 255: values
/// inside err by the uniform rounding error (step² / 12), values outside by their distance to it.
/// Also the signal, the sum of the values' squares (bin centres).
public func quantizationError(counts: [Double], lo: Float, hi: Float, range: (Float, Float)) -> (noise: Double, signal: Double) {
    let n = counts.count
    guard n > 0 else { return (0, 0) }
    let width = (Double(hi) - Double(lo)) / Double(n)
    let a = Double(range.0), b = Double(range.1), step = (b - a) / 255
    var noise = 0.0, signal = 0.0
    for (i, c) in counts.enumerated() where c > 0 {
        let x = Double(lo) + (Double(i) + 0.5) * width
        signal += c * x * x
        noise += c * (x < a ? (a - x) * (a - x) : x > b ? (x - b) * (x - b) : step * step / 12)
    }
    return (noise, signal)
}
