import Foundation
import Testing
import KilnDriver
import KilnIR

/// Replays the fuzz targets' committed inputs through the same entry points `scripts/fuzz`
/// drives: the seeds (Tests/fuzz/corpus/<target>/, valid files that must get through) and every
/// input a fuzzing run found to crash, trap or hang (Tests/fuzz/regressions/<target>/, which must
/// now be rejected cleanly); each must return: within 30 s of wall time, a hang detector that
/// allows for the other tests running beside it (scripts/fuzz holds each input to 10 s on an idle core).
@Suite struct FuzzCorpusTests {
    static let fuzz = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
        .appendingPathComponent("fuzz")

    static func files(_ kind: String, _ target: String) -> [String] {
        let dir = fuzz.appendingPathComponent(kind).appendingPathComponent(target)
        return ((try? FileManager.default.contentsOfDirectory(atPath: dir.path)) ?? []).sorted().map { dir.appendingPathComponent($0).path }
    }

    /// Runs every file of the target's corpus; returns how many got through (the rest must have
    /// been rejected cleanly: returning at all is the test).
    /// A file's bytes. (Not Data(contentsOf:): Foundation leaks its buffer on an empty file, which
    /// LeakSanitizer reports when the suite runs under ASan.)
    static func read(_ path: String) throws -> Data {
        guard let h = FileHandle(forReadingAtPath: path) else { throw KilnError("cannot read \(path)") }
        defer { try? h.close() }
        return h.readDataToEndOfFile()
    }

    func replay(_ target: String, _ entry: (Data) -> Bool) throws -> (passed: Int, files: Int) {
        let files = Self.files("corpus", target)
        #expect(files.count >= 4, "the \(target) corpus is missing")
        for f in Self.files("regressions", target) {
            let start = Date()
            _ = entry(try Self.read(f))
            #expect(Date().timeIntervalSince(start) < 30, "\(f) took \(Date().timeIntervalSince(start)) s")
        }
        var passed = 0
        for f in files {
            let data = try Self.read(f)
            let start = Date()
            if entry(data) { passed += 1 }
            #expect(Date().timeIntervalSince(start) < 30, "\(f) took \(Date().timeIntervalSince(start)) s")
        }
        return (passed, files.count)
    }

    // The seeds are valid: every one must get through, or the harness would test nothing.
    @Test func onnx() throws {
        let (passed, files) = try replay("onnx", FuzzEntry.onnx)
        #expect(passed == files, "\(passed) of \(files) ONNX seeds imported")
    }
    @Test func npy() throws {
        let (passed, _) = try replay("npy", FuzzEntry.npy)
        #expect(passed >= 6)
    }
    @Test func calibration() throws {
        let (passed, _) = try replay("calibration") { FuzzEntry.calibrationSample($0) > 0 }
        #expect(passed == 3, "one sample, a batch of 3 and a sample without its batch axis are read; an s32 file is not")
    }
}
