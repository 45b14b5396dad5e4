import Foundation
import KilnIR

/// Maps an ONNX `TensorProto.DataType` number to Kiln's element type (nil when Kiln lacks it).
public func elementType(onnx code: Int) -> ElementType? {
    switch code {
    case 1: return .f32
    case 2: return .u8
    case 3: return .s8
    case 6: return .s32
    case 7: return .s64
    case 9: return .bool
    case 10: return .f16
    case 16: return .bf16
    default: return nil
    }
}

/// Kiln's element type as an ONNX `TensorProto.DataType` number.
public func onnxCode(_ t: ElementType) -> Int {
    switch t {
    case .f32: return 1
    case .u8: return 2
    case .s8: return 3
    case .s32: return 6
    case .s64: return 7
    case .bool: return 9
    case .f16: return 10
    case .bf16: return 16
    }
}

/// The ONNX name of a data type number, for messages.
public func onnxTypeName(_ code: Int) -> String {
    let names = [0: "UNDEFINED", 1: "FLOAT", 2: "UINT8", 3: "INT8", 4: "UINT16", 5: "INT16", 6: "INT32",
                 7: "INT64", 8: "STRING", 9: "BOOL", 10: "FLOAT16", 11: "DOUBLE", 12: "UINT32", 13: "UINT64",
                 14: "COMPLEX64", 15: "COMPLEX128", 16: "BFLOAT16", 17: "FLOAT8E4M3FN", 18: "FLOAT8E4M3FNUZ",
                 19: "FLOAT8E5M2", 20: "FLOAT8E5M2FNUZ", 21: "UINT4", 22: "INT4", 23: "FLOAT4E2M1"]
    return names[code] ?? "type \(code)"
}

/// Converts an ONNX tensor (raw_data, any typed data field, or external data stored next to the
/// model in `baseDirectory`) to a Kiln tensor. `what` names the tensor in error messages.
public func importTensor(_ p: Onnx_TensorProto, baseDirectory: String?, what: String) throws -> Tensor {
    guard let t = elementType(onnx: Int(p.dataType)) else {
        throw KilnError("\(what): element type \(onnxTypeName(Int(p.dataType))) is not supported (Kiln handles f32, f16, bf16, s8, u8, s32, s64, bool)", unsupported: true)
    }
    var shape: [Int] = []
    for d in p.dims {
        guard d >= 0, d < Int64(Int32.max) else { throw KilnError("\(what): invalid dimension \(d)") }
        shape.append(Int(d))
    }
    let n = shapeProduct(shape)
    guard n != Int.max, n < (1 << 34) else { throw KilnError("\(what): shape \(shapeString(shape)) is too large") }
    func wrongCount(_ field: String, _ got: Int) -> KilnError {
        KilnError("\(what): \(field) holds \(got) values but shape \(shapeString(shape)) needs \(n)")
    }

    if p.hasDataLocation && p.dataLocation == .external {
        var info: [String: String] = [:]
        for e in p.externalData { info[e.key] = e.value }
        guard let location = info["location"] else { throw KilnError("\(what): external data has no 'location'") }
        guard !location.hasPrefix("/"), !location.split(separator: "/").contains("..") else {
            throw KilnError("\(what): external data location '\(location)' must be a relative path inside the model's folder")
        }
        let dir = baseDirectory ?? "."
        let path = (dir as NSString).appendingPathComponent(location)
        guard let fh = FileHandle(forReadingAtPath: path) else {
            throw KilnError("\(what): external data file '\(path)' is missing or unreadable")
        }
        defer { try? fh.close() }
        let offset = UInt64(info["offset"] ?? "0") ?? 0
        let expected = n * t.byteSize
        if let l = info["length"], let len = Int(l), len != expected {
            throw KilnError("\(what): external data length \(len) does not match shape \(shapeString(shape)) (\(expected) bytes)")
        }
        do {
            try fh.seek(toOffset: offset)
        } catch {
            throw KilnError("\(what): cannot seek to offset \(offset) in '\(path)'")
        }
        let data = fh.readData(ofLength: expected)
        guard data.count == expected else {
            throw KilnError("\(what): external data file '\(path)' holds \(data.count) bytes from offset \(offset), \(expected) needed")
        }
        return try fromRaw(data, t, shape, what)
    }
    if p.hasRawData {
        return try fromRaw(p.rawData, t, shape, what)
    }
    switch t {
    case .f32:
        guard p.floatData.count == n else { throw wrongCount("float_data", p.floatData.count) }
        return Tensor(t, shape: shape, floats: p.floatData)
    case .f16, .bf16:
        guard p.int32Data.count == n else { throw wrongCount("int32_data", p.int32Data.count) }
        let f: [Float] = p.int32Data.map { bits in
            let b = UInt16(truncatingIfNeeded: bits)
            return t == .f16 ? Float(Float16(bitPattern: b)) : Float(bitPattern: UInt32(b) << 16)
        }
        return Tensor(t, shape: shape, floats: f)
    case .s8, .u8, .s32, .bool:
        guard p.int32Data.count == n else { throw wrongCount("int32_data", p.int32Data.count) }
        return Tensor(t, shape: shape, ints: p.int32Data.map { t.wrap(Int64($0)) })
    case .s64:
        guard p.int64Data.count == n else { throw wrongCount("int64_data", p.int64Data.count) }
        return Tensor(t, shape: shape, ints: p.int64Data)
    }
}

private func fromRaw(_ data: Data, _ t: ElementType, _ shape: [Int], _ what: String) throws -> Tensor {
    let result = data.withUnsafeBytes { Tensor(t, shape: shape, rawBytes: $0) }
    guard let r = result else {
        throw KilnError("\(what): raw data holds \(data.count) bytes but \(t)[\(shapeString(shape))] needs \(shapeProduct(shape) * t.byteSize)")
    }
    return r
}

/// Converts a Kiln tensor to an ONNX TensorProto with raw data (used by tests and tools).
public func exportTensor(_ t: Tensor, name: String = "") -> Onnx_TensorProto {
    var p = Onnx_TensorProto()
    p.name = name
    p.dataType = Int32(onnxCode(t.elementType))
    p.dims = t.shape.map { Int64($0) }
    p.rawData = Data(t.rawBytes())
    return p
}

/// Reads a serialized TensorProto file (the `input_0.pb` files of ONNX test cases).
public func loadTensorFile(_ path: String) throws -> (name: String, tensor: Tensor) {
    guard let data = FileManager.default.contents(atPath: path) else { throw KilnError("\(path): cannot read file") }
    let p: Onnx_TensorProto
    do {
        p = try Onnx_TensorProto(serializedBytes: data)
    } catch {
        throw KilnError("\(path): not a serialized ONNX TensorProto (\(error))")
    }
    return (p.name, try importTensor(p, baseDirectory: (path as NSString).deletingLastPathComponent, what: path))
}
