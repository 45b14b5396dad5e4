import Foundation

/// What a long step reports as it goes: a step's name ("compile with g++"), and for a step made
/// of counted units, how many are done ("calibration: ranges", 3 of 16 samples). The driver
/// prints nothing: `kiln` shows the updates on a terminal (one status line, time left for
/// counted steps), and `compileModel` records each step's duration for the HTML report.
public struct ProgressUpdate: Sendable, Equatable, ExpressibleByStringInterpolation, CustomStringConvertible {
    public var step: String
    /// Units finished so far of `total`, for a counted step; nil for a plain step.
    public var done: Int?
    public var total: Int?
    /// What is counted, singular ("sample").
    public var unit: String?

    public init(_ step: String) { self.step = step }
    public init(stringLiteral value: String) { step = value }
    public init(stringInterpolation: DefaultStringInterpolation) { step = String(stringInterpolation: stringInterpolation) }

    /// `done` of `total` units of `step` finished.
    public static func count(_ step: String, done: Int, of total: Int, _ unit: String) -> ProgressUpdate {
        var u = ProgressUpdate(step)
        (u.done, u.total, u.unit) = (done, total, unit)
        return u
    }

    /// "calibration: ranges, sample 4 of 16" (the unit being worked on), or the step.
    public var description: String {
        guard let done, let total else { return step }
        return "\(step), \(unit ?? "item") \(min(done + 1, total)) of \(total)"
    }
}

public typealias ProgressHandler = (ProgressUpdate) -> Void

/// The steps of a compile and how long each took, in order: what `ProgressUpdate`s said, a
/// counted step once.
public struct StepTimes: Sendable {
    public var steps: [(name: String, seconds: Double)] = []
    private var current: (name: String, start: Date)?

    public init() {}

    /// Notes an update at `now`: a new step name ends the current step.
    public mutating func note(_ u: ProgressUpdate, now: Date = Date()) {
        if let c = current, c.name == u.step { return }
        finish(now: now)
        current = (u.step, now)
    }

    /// Ends the current step.
    public mutating func finish(now: Date = Date()) {
        if let c = current { steps.append((c.name, now.timeIntervalSince(c.start))) }
        current = nil
    }
}
