import Foundation
import KilnIR
import KilnONNX
import KilnPasses
import SwiftProtobuf

/// Entry points for the fuzz targets (Fuzz/, `scripts/fuzz`) and for the tests that replay their
/// corpora: each takes arbitrary bytes and must return (a thrown KilnError is a clean rejection)
/// without trapping, crashing or hanging. They run what a user's file goes through.
public enum FuzzEntry {
    /// An ONNX file: parse, import, pin nothing, infer shapes and fold, verify — `kiln inspect`'s
    /// and `kiln compile`'s front end. No external data is read (no base directory).
    /// Returns whether the model got through (false: rejected with a KilnError, as it should be
    /// for most mutated inputs).
    @discardableResult
    public static func onnx(_ data: Data) -> Bool {
        var options = BinaryDecodingOptions()
        options.messageDepthLimit = 200
        guard let model = try? Onnx_ModelProto(serializedBytes: data, options: options),
              var g = try? importONNXModel(model, baseDirectory: nil, file: "fuzz.onnx") else { return false }
        return (try? Pipeline.simplify(&g, inputShapes: [:])) != nil
    }

    /// A .npy file: `kiln eval --input`, `kiln run`, calibration samples.
    @discardableResult
    public static func npy(_ data: Data) -> Bool {
        (try? NPY.decode(data, name: "fuzz.npy")) != nil
    }

    /// A calibration directory holding one sample file with these bytes, for a model with one
    /// f32 input of shape [1, 3, 4, 4]: the sample reader's checks of the file's type and shape.
    /// Returns how many samples were read.
    @discardableResult
    public static func calibrationSample(_ data: Data) -> Int {
        let dir = (NSTemporaryDirectory() as NSString).appendingPathComponent("kiln-fuzz-calibration-\(getpid())")
        try? FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        let file = (dir as NSString).appendingPathComponent("x_0.npy")
        defer { try? FileManager.default.removeItem(atPath: dir) }
        guard FileManager.default.createFile(atPath: file, contents: data) else { return 0 }
        var g = Graph()
        g.inputs = [g.addValue("x", TensorType(.f32, [1, 3, 4, 4]))]
        guard let samples = try? CalibrationSamples.load(path: dir, graph: g) else { return 0 }
        var cache: [String: Tensor] = [:]
        return (0..<min(samples.count, 4)).filter { (try? samples.sample($0, cache: &cache)) != nil }.count
    }
}
