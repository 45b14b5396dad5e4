import Foundation
import KilnDriver

/// Shows a command's progress on stderr. On a terminal: one status line, redrawn in place, with
/// the time since the start, the current step, how long it has run once it passes 2 s (g++ on a
/// big model), and for counted steps the unit being worked on and the time left. With --verbose:
/// every update as its own timestamped line (what a log or a pipe wants). In a pipe without
/// --verbose, or with --quiet: nothing.
final class ProgressDisplay: @unchecked Sendable {
    enum Mode { case quiet, lines, terminal }

    let mode: Mode
    private let start = Date()
    private let lock = NSLock()
    private var current: ProgressUpdate?
    private var stepStart = Date()
    /// When the current counted step started, to tell the time left.
    private var countStart: Date?
    private var shown = false
    private var lastDraw = Date.distantPast
    private var timer: DispatchSourceTimer?

    init(verbose: Bool, quiet: Bool = false) {
        if quiet {
            mode = .quiet
        } else if verbose {
            mode = .lines
        } else {
            mode = isatty(2) != 0 && ProcessInfo.processInfo.environment["TERM"] != "dumb" ? .terminal : .quiet
        }
        if mode == .terminal {
            // Redraw twice a second, so that a long step's clock moves.
            let t = DispatchSource.makeTimerSource(queue: DispatchQueue.global(qos: .utility))
            t.schedule(deadline: .now() + 0.5, repeating: 0.5)
            t.setEventHandler { [weak self] in self?.redraw() }
            t.resume()
            timer = t
        }
    }

    deinit { timer?.cancel() }

    func callAsFunction(_ u: ProgressUpdate) {
        lock.lock()
        defer { lock.unlock() }
        let now = Date()
        if current?.step != u.step {
            stepStart = now
            countStart = u.done != nil ? now : nil
        }
        current = u
        switch mode {
        case .quiet: return
        case .lines:
            FileHandle.standardError.write(Data(String(format: "[%6.2fs] %@\n", now.timeIntervalSince(start), u.description).utf8))
        case .terminal:
            // A counted step's units can come by the thousand: redraw at most 20 times a second.
            if stepStart == now || now.timeIntervalSince(lastDraw) >= 0.05 { draw(now) }
        }
    }

    /// Clears the status line: call before printing results or an error.
    func finish() {
        lock.lock()
        defer { lock.unlock() }
        timer?.cancel()
        timer = nil
        if mode == .terminal, shown {
            FileHandle.standardError.write(Data("\r\u{1B}[K".utf8))
            shown = false
        }
        current = nil
    }

    private func redraw() {
        lock.lock()
        defer { lock.unlock() }
        if current != nil { draw(Date()) }
    }

    /// The status line for update `u`: "[ 12.3s] step, sample 4 of 16, 8 s left".
    static func statusLine(_ u: ProgressUpdate, elapsed: Double, inStep: Double, inCount: Double?) -> String {
        var line = String(format: "[%5.1fs] ", elapsed) + u.description
        if let done = u.done, let total = u.total, let inCount, done > 0, done < total, inCount > 1 {
            line += ", " + duration(inCount / Double(done) * Double(total - done)) + " left"
        } else if inStep >= 2 {
            line += " (" + duration(inStep) + ")"
        }
        return line
    }

    static func duration(_ s: Double) -> String {
        s < 90 ? String(format: "%.0f s", s) : s < 5400 ? String(format: "%.0f min", s / 60) : String(format: "%.1f h", s / 3600)
    }

    private func draw(_ now: Date) {
        guard let u = current else { return }
        var line = Self.statusLine(u, elapsed: now.timeIntervalSince(start), inStep: now.timeIntervalSince(stepStart),
                                   inCount: countStart.map { now.timeIntervalSince($0) })
        // One line, never wrapped: a wrapped line cannot be redrawn in place.
        let width = terminalWidth()
        if line.count > width - 1 { line = String(line.prefix(max(width - 2, 10))) + "…" }
        FileHandle.standardError.write(Data(("\r\u{1B}[K" + line).utf8))
        shown = true
        lastDraw = now
    }

    private func terminalWidth() -> Int {
        var w = winsize()
        if ioctl(2, UInt(TIOCGWINSZ), &w) == 0, w.ws_col > 0 { return Int(w.ws_col) }
        return 80
    }
}
