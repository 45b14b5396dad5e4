import Foundation
import Testing
import KilnDriver
import KilnIR

/// `NAME.report.html`: written by every compile, self-contained, with the model's names escaped,
/// each step's share of a run when the library ran on this machine, the arena over time and the
/// compile steps. (Tests/consumer/run.sh loads it in headless Chromium.)
@Suite struct HTMLReportTests {
    /// A conv, a ReLU and a residual add, its nodes and tensors named with HTML's special characters.
    func model() throws -> String {
        var b = ModelBuilder()
        let evil = "<script>alert('x')</script>&\"q\""
        b.input(evil, .f32, [.fixed(1), .fixed(8), .fixed(8), .fixed(8)])
        b.output("y", .f32, [.fixed(1), .fixed(8), .fixed(8), .fixed(8)])
        b.initializer("w", floats([8, 8, 3, 3]) { Float(($0 * 37) % 11) / 20 - 0.25 })
        b.node("Conv", [evil, "w"], ["c"], name: "</td><b>conv</b>", attributes: [ModelBuilder.ints("pads", [1, 1, 1, 1])])
        b.node("Relu", ["c"], ["r"], name: "relu")
        b.node("Add", ["r", evil], ["y"], name: "add")
        return try b.write()
    }

    @Test func selfContainedEscapedAndMeasured() throws {
        let dir = temporaryDirectory()
        var o = CompileOptions(modelPath: try model(), outputDirectory: dir, name: "page", kilnVersion: "test")
        o.library = .shared
        o.timeSteps = true
        var updates: [ProgressUpdate] = []
        let r = try compileModel(o, progress: { updates.append($0) })
        let path = (dir as NSString).appendingPathComponent("page.report.html")
        #expect(r.reportFiles.contains(path))
        let html = try String(contentsOfFile: path, encoding: .utf8)
        // Nothing from outside the file, and only the report's own two scripts.
        for outside in ["http://", "https://", "<link", "<img", "<iframe", "src="] { #expect(!html.contains(outside), "\(outside)") }
        #expect(html.components(separatedBy: "<script>").count == 3)
        // The model's names are text, never markup.
        #expect(!html.contains("<script>alert") && !html.contains("<b>conv</b>"))
        #expect(html.contains("&lt;/td&gt;&lt;b&gt;conv&lt;/b&gt;"))
        for section in ["ops", "arena", "steps", "layers"] { #expect(html.contains("<section id=\"\(section)\">"), "\(section)") }
        #expect(!html.contains("<section id=\"int8\">"))
        // Every node is a row; the steps ran here, so each row has its time.
        #expect(html.contains(">add</td>"))  // (the ReLU is the conv's post-op)
        #expect(html.contains("Measured when it was compiled:"))
        #expect(html.contains(" ms · ") && html.contains("<svg class=\"arena\""))
        // The compile's steps, from its progress updates, with their durations.
        #expect(updates.contains { $0.step == "compile with g++" } && updates.contains { $0.step == "time each step on this machine" })
        #expect(html.contains("compile with g++</th>"))
        // The Markdown and JSON reports hold no timings: the same model and options give the same
        // files; without step times, the HTML report too (and the libraries).
        var o2 = o
        o2.timeSteps = false
        o2.library = .both
        let (first, again) = (temporaryDirectory(), temporaryDirectory())
        o2.outputDirectory = first
        _ = try compileModel(o2)
        o2.outputDirectory = again
        _ = try compileModel(o2)
        let files = try FileManager.default.contentsOfDirectory(atPath: first).sorted()
        #expect(try FileManager.default.contentsOfDirectory(atPath: again).sorted() == files)
        #expect(files.contains("page.report.html") && files.contains("libpage.a") && files.contains("libpage.so"))
        let html2 = try String(contentsOfFile: (first as NSString).appendingPathComponent("page.report.html"), encoding: .utf8)
        #expect(html2.contains("Not recorded: compiled with --no-time-steps"))
        for f in files {
            let a = try Data(contentsOf: URL(fileURLWithPath: (first as NSString).appendingPathComponent(f)))
            let b = try Data(contentsOf: URL(fileURLWithPath: (again as NSString).appendingPathComponent(f)))
            #expect(a == b, "\(f) differs between two compiles")
        }
    }

    /// Without a run on this machine the page says why, and shows the rest.
    @Test func staticLibraryIsNotTimed() throws {
        let dir = temporaryDirectory()
        var o = CompileOptions(modelPath: try model(), outputDirectory: dir, name: "page_static", kilnVersion: "test")
        o.library = .static
        o.timeSteps = true
        _ = try compileModel(o)
        let html = try String(contentsOfFile: (dir as NSString).appendingPathComponent("page_static.report.html"), encoding: .utf8)
        #expect(html.contains("Time share not measured: no shared library built (--library static)"))
        #expect(html.contains("<svg class=\"arena\"") && html.contains("compile with g++</th>"))
    }

    /// `kiln compile`'s progress: one status line redrawn in place on a terminal (a pseudo-terminal
    /// from script(1)), nothing in a pipe, nothing at all with --quiet, every step with --verbose.
    @Test func progressOnATerminalOnlyAndQuietWhenAsked() throws {
        let cli = BadInputTests()
        let model = cli.digitsModel()
        func compile(_ extra: [String]) throws -> (status: Int32, out: String, err: String) {
            try cli.kiln(["compile", model, "--input-shape", "image=1x1x8x8", "-o", temporaryDirectory(), "--library", "static"] + extra)
        }
        let piped = try compile([])
        #expect(piped.status == 0 && piped.err.isEmpty, "\(piped.err)")
        #expect(piped.out.contains("wrote ") && piped.out.contains(".report.html"))
        let quiet = try compile(["--quiet"])
        #expect(quiet.status == 0 && quiet.out.isEmpty && quiet.err.isEmpty, "\(quiet)")
        let verbose = try compile(["--verbose"])
        #expect(verbose.err.contains("] compile with g++\n") && verbose.err.contains("] import "), "\(verbose.err)")
        // On a terminal: carriage return, erase the line, the step; the line cleared before the summary.
        guard FileManager.default.isExecutableFile(atPath: "/usr/bin/script") else { return }
        let bin = try #require(ProcessInfo.processInfo.environment["KILN_BIN"] ?? cli.locateKiln())
        let command = ([bin, "compile", model, "--input-shape", "image=1x1x8x8", "-o", temporaryDirectory(), "--library", "static"])
            .map { "'" + $0.replacingOccurrences(of: "'", with: "'\\''") + "'" }.joined(separator: " ")
        let p = Process()
        p.executableURL = URL(fileURLWithPath: "/usr/bin/script")
        p.arguments = ["-qec", command, "/dev/null"]
        var env = ProcessInfo.processInfo.environment
        env["TERM"] = "xterm"
        p.environment = env
        let out = Pipe()
        p.standardOutput = out
        p.standardInput = FileHandle.nullDevice
        try p.run()
        let text = String(decoding: out.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        p.waitUntilExit()
        #expect(p.terminationStatus == 0, "\(text)")
        #expect(text.contains("\r\u{1B}[K[") && text.contains("] compile with g++"), "\(text.debugDescription)")
        #expect(text.contains("\r\u{1B}[Kcompiled "), "the status line is cleared before the summary: \(text.debugDescription)")
    }

    /// A counted step says which unit it is on; the status line adds the time left.
    @Test func progressUpdates() {
        let u = ProgressUpdate.count("calibration: ranges", done: 3, of: 16, "sample")
        #expect(u.description == "calibration: ranges, sample 4 of 16")
        let plain: ProgressUpdate = "compile with g++"
        #expect(plain.description == "compile with g++" && plain.done == nil)
        var times = StepTimes()
        let t0 = Date(timeIntervalSince1970: 0)
        times.note("a", now: t0)
        times.note(.count("b", done: 0, of: 2, "x"), now: t0.addingTimeInterval(1))
        times.note(.count("b", done: 1, of: 2, "x"), now: t0.addingTimeInterval(2))
        times.note("c", now: t0.addingTimeInterval(4))
        times.finish(now: t0.addingTimeInterval(4.5))
        #expect(times.steps.map(\.name) == ["a", "b", "c"] && times.steps.map(\.seconds) == [1, 3, 0.5])
    }
}
