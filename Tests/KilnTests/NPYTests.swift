import Foundation
import Testing
import KilnIR
import KilnDriver

@Suite struct NPYTests {
    @Test(arguments: [ElementType.f32, .f16, .s8, .u8, .s32, .s64, .bool])
    func roundTrips(type: ElementType) throws {
        let shape = [2, 3, 5]
        let t: Tensor = type.isFloat
            ? Tensor(type, shape: shape, floats: (0..<30).map { type.roundFloat(Float($0) * 0.37 - 4) })
            : Tensor(type, shape: shape, ints: (0..<30).map { type.wrap(Int64($0 * 13 - 100)) })
        let back = try NPY.decode(try NPY.encode(t), name: "t.npy")
        #expect(back == t)
    }

    @Test func scalarAndEmptyShapes() throws {
        for t in [Tensor.scalar(3.5), Tensor(zeros: .f32, shape: [0, 4])] {
            #expect(try NPY.decode(try NPY.encode(t), name: "t.npy") == t)
        }
    }

    func file(_ header: String, body: [UInt8]) -> Data {
        var h = header
        while (10 + h.utf8.count + 1) % 64 != 0 { h += " " }
        h += "\n"
        var d = Data([0x93, 0x4E, 0x55, 0x4D, 0x50, 0x59, 1, 0, UInt8(h.utf8.count), 0])
        d.append(contentsOf: Array(h.utf8))
        d.append(contentsOf: body)
        return d
    }

    @Test func readsWhatNumPyWrites() throws {
        // numpy.save(np.arange(3, dtype='<i8')): the header NumPy writes.
        let body = Tensor(.s64, shape: [3], ints: [0, 1, 2]).rawBytes()
        let t = try NPY.decode(file("{'descr': '<i8', 'fortran_order': False, 'shape': (3,), }", body: body), name: "a.npy")
        #expect(t.ints == [0, 1, 2])
    }

    @Test(arguments: [
        ("{'descr': '<f4', 'fortran_order': True, 'shape': (2, 2), }", "Fortran"),
        ("{'descr': '|O', 'fortran_order': False, 'shape': (2, 2), }", "pickled"),
        ("{'descr': '>f4', 'fortran_order': False, 'shape': (2, 2), }", "big-endian"),
        ("{'descr': '<f8', 'fortran_order': False, 'shape': (2, 2), }", "not supported"),
        ("{'descr': '<f4', 'fortran_order': False, 'shape': (2, 3), }", "bytes"),
    ])
    func rejectsWithAClearMessage(header: String, expected: String) throws {
        let data = file(header, body: [UInt8](repeating: 0, count: 16))
        do {
            _ = try NPY.decode(data, name: "bad.npy")
            Issue.record("expected an error")
        } catch let e as KilnError {
            #expect(e.message.contains(expected), "\(e.message)")
            #expect(e.message.contains("bad.npy"))
        }
    }

    @Test func truncatedFilesAreErrors() throws {
        let full = try NPY.encode(Tensor(.f32, shape: [4], floats: [1, 2, 3, 4]))
        for n in [0, 3, 9, 20, full.count - 1] {
            #expect(throws: KilnError.self) { try NPY.decode(full.prefix(n), name: "t.npy") }
        }
    }

    /// `--input` specs as the CLI reads them (KilnDriver.readInputs): NAME=FILE, a bare FILE for a
    /// single-input model, and clear errors for an unknown name or an unnamed file among several.
    @Test func inputSpecs() throws {
        let dir = temporaryDirectory()
        let path = (dir as NSString).appendingPathComponent("x.npy")
        let t = Tensor(.f32, shape: [2], floats: [1, 2])
        try NPY.write(t, path: path)
        #expect(try readInputs(["image=\(path)"], names: ["image"]) == ["image": t])
        #expect(try readInputs([path], names: ["image"]) == ["image": t])
        #expect(throws: KilnError.self) { try readInputs(["other=\(path)"], names: ["image"]) }
        #expect(throws: KilnError.self) { try readInputs([path], names: ["a", "b"]) }
        try? FileManager.default.removeItem(atPath: dir)
    }

    /// The conformance runner's expected-failures file: names, '#' reasons, blank lines.
    @Test func expectedFailuresFile() throws {
        let dir = temporaryDirectory()
        let path = (dir as NSString).appendingPathComponent("expected.txt")
        try "test_a  # too slow\n\ntest_b\ncompiled:node/test_c # reason: x\n".write(toFile: path, atomically: true, encoding: .utf8)
        #expect(try Conformance.readExpectedFailures(path: path) == ["test_a": "too slow", "test_b": "", "compiled:node/test_c": "reason: x"])
        #expect(throws: KilnError.self) { try Conformance.readExpectedFailures(path: path + ".missing") }
        try? FileManager.default.removeItem(atPath: dir)
    }
}
