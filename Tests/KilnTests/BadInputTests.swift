import Foundation
import Testing
import KilnIR
import KilnONNX
import KilnDriver
import KilnPasses
import KilnQuantization

/// Broken files of every kind give a KilnError (never a trap), and the CLI exits with status 1.
@Suite struct BadInputTests {
    func digitsModel() -> String {
        URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
            .deletingLastPathComponent().appendingPathComponent("samples/models/digits.onnx").path
    }

    @Test(arguments: [1, 7, 100, 1000, 20000, 60000, 96000])
    func truncatedModelsAreDiagnosed(length: Int) throws {
        let data = try Data(contentsOf: URL(fileURLWithPath: digitsModel()))
        let path = (temporaryDirectory() as NSString).appendingPathComponent("truncated.onnx")
        try data.prefix(length).write(to: URL(fileURLWithPath: path))
        // Either a clean error or (for cuts that happen to parse) a graph; never a trap.
        do {
            var g = try loadONNXModel(path: path)
            try inferShapes(&g, strict: false)
        } catch let e as KilnError {
            #expect(e.message.contains(path))
        }
    }

    @Test(arguments: 0..<40)
    func randomBytesAreDiagnosed(seed: Int) throws {
        var rng = SplitMix(seed: UInt64(seed))
        let n = Int(rng.next() % 4096) + 1
        let bytes = (0..<n).map { _ in UInt8(truncatingIfNeeded: rng.next()) }
        let path = (temporaryDirectory() as NSString).appendingPathComponent("random.onnx")
        try Data(bytes).write(to: URL(fileURLWithPath: path))
        do {
            _ = try inspectModel(path: path)
        } catch is KilnError {
        }
    }

    @Test(arguments: 0..<60)
    func corruptedModelsNeverTrap(seed: Int) throws {
        // Flip bytes inside a real model: exercises the importer past the protobuf parser.
        var data = [UInt8](try Data(contentsOf: URL(fileURLWithPath: digitsModel())))
        var rng = SplitMix(seed: UInt64(seed) &+ 1000)
        for _ in 0..<(1 + seed % 5) {
            let i = Int(rng.next() % UInt64(min(data.count, 4000)))
            data[i] = UInt8(truncatingIfNeeded: rng.next())
        }
        let path = (temporaryDirectory() as NSString).appendingPathComponent("corrupt.onnx")
        try Data(data).write(to: URL(fileURLWithPath: path))
        do {
            let g = try loadModel(path: path, inputShapes: ["image": [2, 1, 8, 8]])
            _ = try? evaluateReference(g, inputs: ["image": floats([2, 1, 8, 8]) { Float($0 % 5) }])
        } catch is KilnError {
        }
    }

    @Test func absurdShapesAreAnErrorNotATrap() throws {
        // Tile by 2^62 (found by fuzz-onnx: the shape's product, then its byte size, overflowed
        // Int and trapped in shape inference), and by 2^39 (2 TiB of f32).
        for repeats: Int64 in [1 << 62, 1 << 39] {
            var b = ModelBuilder()
            b.input("x", .f32, [.fixed(2)])
            b.initializer("repeats", Tensor(.s64, shape: [1], ints: [repeats]))
            b.node("Tile", ["x", "repeats"], ["y"], name: "huge")
            b.output("y")
            do {
                _ = try loadModel(path: try b.write())
                Issue.record("expected an error for repeats \(repeats)")
            } catch let e as KilnError {
                #expect(e.message.contains("huge") && e.message.contains("1 TiB"), "\(e.message)")
            }
        }
    }

    @Test func wrongInputShapeIsAnError() throws {
        let g = try loadModel(path: digitsModel(), inputShapes: ["image": [1, 1, 8, 8]])
        #expect(throws: KilnError.self) {
            try evaluateReference(g, inputs: ["image": floats([1, 1, 8, 7]) { _ in 0 }])
        }
        #expect(throws: KilnError.self) {
            try evaluateReference(g, inputs: ["image": Tensor(zeros: .s64, shape: [1, 1, 8, 8])])
        }
        #expect(throws: KilnError.self) { try loadModel(path: digitsModel(), inputShapes: ["image": [1, 8, 8]]) }
        #expect(throws: KilnError.self) { try loadModel(path: digitsModel(), inputShapes: ["nope": [1, 1, 8, 8]]) }
    }

    @Test func shapeMismatchInsideTheGraphNamesTheNode() throws {
        var b = ModelBuilder()
        b.input("x", .f32, [.fixed(2), .fixed(3)])
        b.initializer("w", floats([4, 5]) { _ in 1 })
        b.node("MatMul", ["x", "w"], ["y"], name: "proj")
        b.output("y")
        do {
            _ = try loadModel(path: try b.write())
            Issue.record("expected an error")
        } catch let e as KilnError {
            #expect(e.message.contains("proj"))
            #expect(e.message.contains("MatMul"))
        }
    }

    // MARK: the CLI

    func kiln(_ args: [String], environment: [String: String] = [:]) throws -> (status: Int32, out: String, err: String) {
        guard let bin = ProcessInfo.processInfo.environment["KILN_BIN"] ?? locateKiln() else {
            throw KilnError("build the kiln binary first (swift build -c release) or set KILN_BIN")
        }
        let p = Process()
        p.executableURL = URL(fileURLWithPath: bin)
        p.arguments = args
        if !environment.isEmpty { p.environment = ProcessInfo.processInfo.environment.merging(environment) { $1 } }
        let out = Pipe(), err = Pipe()
        p.standardOutput = out
        p.standardError = err
        try p.run()
        let o = out.fileHandleForReading.readDataToEndOfFile()
        let e = err.fileHandleForReading.readDataToEndOfFile()
        p.waitUntilExit()
        return (p.terminationStatus, String(decoding: o, as: UTF8.self), String(decoding: e, as: UTF8.self))
    }

    func locateKiln() -> String? {
        let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
        for c in [".build/release/kiln", ".build/debug/kiln"] {
            let p = root.appendingPathComponent(c).path
            if FileManager.default.isExecutableFile(atPath: p) { return p }
        }
        return nil
    }

    @Test func cliReportsBadInputWithStatus1() throws {
        let dir = temporaryDirectory()
        let random = (dir as NSString).appendingPathComponent("random.onnx")
        try Data((0..<512).map { UInt8(truncatingIfNeeded: $0 &* 37 &+ 11) }).write(to: URL(fileURLWithPath: random))
        let r1 = try kiln(["inspect", random])
        #expect(r1.status == 1)
        #expect(r1.err.contains("random.onnx"))
        #expect(!r1.err.contains("Fatal error"))

        let missing = try kiln(["inspect", (dir as NSString).appendingPathComponent("nope.onnx")])
        #expect(missing.status == 1)
        #expect(missing.err.contains("no such file"))

        // A .npy whose shape does not match a fixed input.
        let npy = (dir as NSString).appendingPathComponent("bad.npy")
        try NPY.write(floats([1, 1, 8, 7]) { _ in 0 }, path: npy)
        let r2 = try kiln(["eval", digitsModel(), "--input-shape", "image=1x1x8x8", "--input", "image=\(npy)", "--output-dir", dir])
        #expect(r2.status == 1)
        #expect(r2.err.contains("image"))

        // A .npy of the wrong type.
        let npy2 = (dir as NSString).appendingPathComponent("int.npy")
        try NPY.write(Tensor(zeros: .s32, shape: [1, 1, 8, 8]), path: npy2)
        let r3 = try kiln(["eval", digitsModel(), "--input", "image=\(npy2)", "--output-dir", dir])
        #expect(r3.status == 1)
        #expect(r3.err.contains("f32"))

        // Unknown op: inspect names it and exits 1.
        var b = ModelBuilder()
        b.input("x", .f32, [.fixed(2)])
        b.node("FancyOp", ["x"], ["y"], name: "my_fancy")
        b.output("y")
        let r4 = try kiln(["inspect", try b.write(in: dir)])
        #expect(r4.status == 1)
        #expect(r4.out.contains("my_fancy"))
        #expect(r4.out.contains("FancyOp"))
    }

    @Test func cliEvalWritesOutputsAndAccuracy() throws {
        let dir = temporaryDirectory()
        let root = URL(fileURLWithPath: digitsModel()).deletingLastPathComponent().path
        let r = try kiln(["eval", digitsModel(), "--input", "\(root)/digits_test_images.npy",
                          "--labels", "\(root)/digits_test_labels.npy", "--output-dir", dir])
        #expect(r.status == 0, "\(r.err)")
        #expect(r.out.contains("accuracy: "))
        let logits = try NPY.read(path: (dir as NSString).appendingPathComponent("logits.npy"))
        #expect(logits.shape == [360, 10])
    }
}

/// A small deterministic random generator for the fuzz-style tests.
typealias SplitMix = SplitMix64
