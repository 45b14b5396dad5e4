// The Swift host of a Kiln library: the C functions through the CDigits module map, a Model
// class that owns a handle (deinit destroys it) and throws KilnError with the status code and the
// handle's last error; input and output sizes from the library's introspection.
import CDigits
import Foundation

struct KilnError: Error, CustomStringConvertible {
    let status: Int32
    let description: String
}

final class Model {
    private let handle: OpaquePointer

    init() throws {
        var m: OpaquePointer?
        let s = digits_create(&m)
        guard s == DIGITS_OK, let m else { throw KilnError(status: Int32(s.rawValue), description: "digits_create: \(String(cString: digits_status_string(s)))") }
        handle = m
    }
    deinit { digits_destroy(handle) }

    private func check(_ call: String, _ s: digits_status) throws {
        guard s != DIGITS_OK else { return }
        throw KilnError(status: Int32(s.rawValue), description: "digits_\(call): \(String(cString: digits_status_string(s))): \(String(cString: digits_last_error(handle)))")
    }

    func setThreads(_ n: Int32) throws { try check("set_num_threads", digits_set_num_threads(handle, n)) }

    /// One inference on one f32 input into one f32 output (sizes checked by digits_run).
    func run(_ input: UnsafeBufferPointer<Float>, _ output: UnsafeMutableBufferPointer<Float>) throws {
        var inputs: [UnsafeRawPointer?] = [UnsafeRawPointer(input.baseAddress)]
        var inputBytes = [input.count * 4]
        var outputs: [UnsafeMutableRawPointer?] = [UnsafeMutableRawPointer(output.baseAddress)]
        var outputBytes = [output.count * 4]
        try check("run", digits_run(handle, 1, &inputs, &inputBytes, 1, &outputs, &outputBytes))
    }
}

/// A .npy array (format 1.0-3.0, little-endian, C order) of dtype `descr`: its shape and bytes.
func readNpy(_ path: String, _ descr: String) throws -> (shape: [Int], data: Data) {
    guard let b = FileManager.default.contents(atPath: path) else { throw KilnError(status: 0, description: "cannot read \(path)") }
    guard b.count >= 10, b.prefix(6) == Data([0x93] + Array("NUMPY".utf8)) else { throw KilnError(status: 0, description: "\(path): not a .npy file") }
    let bytes = [UInt8](b)
    let (length, start) = bytes[6] == 1 ? (Int(bytes[8]) | Int(bytes[9]) << 8, 10)
        : (Int(bytes[8]) | Int(bytes[9]) << 8 | Int(bytes[10]) << 16 | Int(bytes[11]) << 24, 12)
    guard start + length <= bytes.count, let header = String(bytes: bytes[start..<(start + length)], encoding: .ascii),
          header.contains("'descr': '\(descr)'"), header.contains("'fortran_order': False"),
          let open = header.range(of: "'shape': ("), let close = header[open.upperBound...].firstIndex(of: ")") else {
        throw KilnError(status: 0, description: "\(path): expected a C-order array of dtype \(descr)")
    }
    let shape = header[open.upperBound..<close].split(separator: ",").compactMap { Int($0.trimmingCharacters(in: .whitespaces)) }
    return (shape, Data(bytes[(start + length)...]))
}

func classify(_ imagesPath: String, _ labelsPath: String) throws {
    guard digits_num_inputs() == 1, digits_num_outputs() == 1, digits_input_type(0) == DIGITS_F32, digits_output_type(0) == DIGITS_F32 else {
        throw KilnError(status: 0, description: "the model should take one f32 tensor and return one f32 tensor")
    }
    let pixels = digits_input_bytes(0) / 4, classes = digits_output_bytes(0) / 4
    let (shape, raw) = try readNpy(imagesPath, "<f4")
    guard let n = shape.first, raw.count == n * pixels * 4 else { throw KilnError(status: 0, description: "\(imagesPath): not N images of \(pixels) pixels") }
    let images = raw.withUnsafeBytes { Array($0.bindMemory(to: Float.self)) }
    let (labelShape, labelData) = try readNpy(labelsPath, "<i8")
    guard labelShape == [n], labelData.count == 8 * n else { throw KilnError(status: 0, description: "\(labelsPath): expected \(n) labels") }
    let labels = labelData.withUnsafeBytes { Array($0.bindMemory(to: Int64.self)) }

    let model = try Model()
    try model.setThreads(1)
    var logits = [Float](repeating: 0, count: classes)
    var micros: [Double] = []
    var correct = 0
    try images.withUnsafeBufferPointer { all in
        for i in 0..<n {
            let start = DispatchTime.now().uptimeNanoseconds
            try logits.withUnsafeMutableBufferPointer { try model.run(UnsafeBufferPointer(rebasing: all[(i * pixels)..<((i + 1) * pixels)]), $0) }
            micros.append(Double(DispatchTime.now().uptimeNanoseconds - start) / 1e3)
            if Int64(logits.indices.max { logits[$0] < logits[$1] }!) == labels[i] { correct += 1 }
        }
        micros.sort()
        print("accuracy: \(correct)/\(n) = \(String(format: "%.2f", 100 * Double(correct) / Double(n)))%")
        print("median latency: \(String(format: "%.1f", micros[n / 2])) us/image (\(n) runs, Kiln \(String(cString: digits_version())), from Swift)")
        // A wrong-size buffer comes back as a KilnError carrying the status code.
        do {
            try logits.withUnsafeMutableBufferPointer { try model.run(UnsafeBufferPointer(rebasing: all[0..<(pixels - 1)]), $0) }
            throw KilnError(status: 0, description: "a buffer of the wrong size was accepted")
        } catch let e as KilnError where e.status == Int32(DIGITS_ERROR_SIZE_MISMATCH.rawValue) {
            print("wrong size refused: \(e.description)")
        }
    }
}

let args = CommandLine.arguments
guard args.count == 3 else {
    FileHandle.standardError.write(Data("usage: \(args[0]) IMAGES.npy LABELS.npy\n".utf8))
    exit(2)
}
do {
    try classify(args[1], args[2])
} catch {
    FileHandle.standardError.write(Data("error: \(error)\n".utf8))
    exit(1)
}
