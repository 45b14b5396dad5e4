import Foundation
import Testing
import KilnTarget

// Files in the repository that Kiln's Swift writes: each committed copy must be what the code
// writes today.

/// include/kiln/limits.hpp is what KilnTarget's `limitsHeader` writes: the C++ kernels read the
/// thresholds of the kernel-choice rules from it, never a copy by hand.
@Test func limitsHeaderIsGenerated() throws {
    let path = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
        .deletingLastPathComponent().appendingPathComponent("include/kiln/limits.hpp").path
    let text = limitsHeader()
    if ProcessInfo.processInfo.environment["KILN_UPDATE_SNAPSHOTS"] != nil {
        try text.write(toFile: path, atomically: true, encoding: .utf8)
    }
    let committed = try String(contentsOfFile: path, encoding: .utf8)
    #expect(committed == text, "include/kiln/limits.hpp: regenerate with KILN_UPDATE_SNAPSHOTS=1 swift test --filter limitsHeader")
}

/// The texts generated from KilnTarget's ABI (the status codes, element types and ABI version,
/// defined once): include/kiln/abi.hpp, the block of samples/python/kiln_runtime.py between its
/// markers, and the table of docs/c-api.md between its markers. KILN_UPDATE_SNAPSHOTS=1 rewrites them.
@Test func abiTexts() throws {
    let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
    let update = ProcessInfo.processInfo.environment["KILN_UPDATE_SNAPSHOTS"] != nil
    /// Checks (or rewrites) the part of `file` between the line starting with `begin` and the line starting with `end`.
    func check(_ file: String, _ text: String, between begin: String? = nil, and end: String? = nil) throws {
        let path = root.appendingPathComponent(file).path
        var lines = try String(contentsOfFile: path, encoding: .utf8).components(separatedBy: "\n")
        var range = lines.indices
        if let begin, let end {
            let b = try #require(lines.firstIndex { $0.hasPrefix(begin) }, "\(file): no line starting \(begin)")
            let e = try #require(lines[b...].firstIndex { $0.hasPrefix(end) }, "\(file): no line starting \(end)")
            range = (b + 1)..<e
        }
        let committed = lines[range].joined(separator: "\n")
        let want = begin == nil ? text : String(text.dropLast())
        if update, committed != want {
            lines.replaceSubrange(range, with: want.components(separatedBy: "\n"))
            try lines.joined(separator: "\n").write(toFile: path, atomically: true, encoding: .utf8)
        }
        #expect(update || committed == want, "\(file): regenerate with KILN_UPDATE_SNAPSHOTS=1 swift test --filter abiTexts")
    }
    try check("include/kiln/abi.hpp", ABI.cppHeader())
    try check("samples/python/kiln_runtime.py", ABI.pythonBlock(), between: "# BEGIN ABI", and: "# END ABI")
    try check("docs/c-api.md", ABI.docsStatusTable(), between: "<!-- BEGIN status codes", and: "<!-- END status codes")
}
