import Foundation
import KilnIR

/// Reading and writing NumPy `.npy` files: little-endian f32, f16, s8, u8, s32, s64 and bool in
/// C order. Anything else (Fortran order, big-endian, pickled objects, other types) is a clear error.
public enum NPY {
    private static let magic: [UInt8] = [0x93, 0x4E, 0x55, 0x4D, 0x50, 0x59]  // \x93NUMPY

    public static func read(path: String) throws -> Tensor {
        // An empty file is refused before it is read (Foundation's reader also leaks its buffer
        // for one: found by fuzz-calibration under LeakSanitizer).
        if let size = (try? FileManager.default.attributesOfItem(atPath: path))?[.size] as? NSNumber, size.intValue == 0 {
            throw KilnError("\(path): an empty file, not a NumPy .npy file")
        }
        guard let data = FileManager.default.contents(atPath: path) else {
            throw KilnError("\(path): cannot read file")
        }
        return try decode(data, name: path)
    }

    public static func decode(_ data: Data, name: String) throws -> Tensor {
        let bytes = [UInt8](data)
        guard bytes.count >= 10, Array(bytes[0..<6]) == magic else {
            throw KilnError("\(name): not a NumPy .npy file (bad magic)")
        }
        let major = bytes[6]
        var headerLen: Int
        var offset: Int
        switch major {
        case 1:
            headerLen = Int(bytes[8]) | Int(bytes[9]) << 8
            offset = 10
        case 2, 3:
            guard bytes.count >= 12 else { throw KilnError("\(name): truncated .npy header") }
            headerLen = Int(bytes[8]) | Int(bytes[9]) << 8 | Int(bytes[10]) << 16 | Int(bytes[11]) << 24
            offset = 12
        default:
            throw KilnError("\(name): .npy format version \(major) is not supported")
        }
        guard offset + headerLen <= bytes.count else { throw KilnError("\(name): truncated .npy header") }
        guard let header = String(bytes: bytes[offset..<(offset + headerLen)], encoding: major == 3 ? .utf8 : .isoLatin1) else {
            throw KilnError("\(name): unreadable .npy header")
        }
        offset += headerLen
        guard let descr = field(header, "descr"), let fortran = field(header, "fortran_order"), let shapeText = field(header, "shape") else {
            throw KilnError("\(name): .npy header lacks descr, fortran_order or shape: \(header)")
        }
        guard fortran == "False" else {
            throw KilnError("\(name): Fortran-order arrays are not supported; save with np.ascontiguousarray")
        }
        let d = descr.trimmingCharacters(in: CharacterSet(charactersIn: "'\""))
        let type: ElementType
        switch d {
        case "<f4": type = .f32
        case "<f2": type = .f16
        case "|i1", "<i1", "i1": type = .s8
        case "|u1", "<u1", "u1": type = .u8
        case "<i4": type = .s32
        case "<i8": type = .s64
        case "|b1", "<b1", "b1", "?": type = .bool
        default:
            if d.hasPrefix("|O") || d.hasPrefix("O") {
                throw KilnError("\(name): pickled object arrays are not supported")
            }
            if d.hasPrefix(">") { throw KilnError("\(name): big-endian arrays ('\(d)') are not supported; use astype('<...')") }
            throw KilnError("\(name): dtype '\(d)' is not supported (float32, float16, int8, uint8, int32, int64 and bool are)")
        }
        var shape: [Int] = []
        let inner = shapeText.trimmingCharacters(in: CharacterSet(charactersIn: "() "))
        for part in inner.split(separator: ",") {
            let s = part.trimmingCharacters(in: .whitespaces)
            if s.isEmpty { continue }
            guard let v = Int(s), v >= 0, v < Int(Int32.max) else { throw KilnError("\(name): bad shape \(shapeText)") }
            shape.append(v)
        }
        let expected = satMul(shapeProduct(shape), type.byteSize)  // saturates: a header may claim any shape
        guard bytes.count - offset == expected else {
            throw KilnError("\(name): holds \(bytes.count - offset) bytes of data but \(d)[\(shapeString(shape))] needs \(expected)")
        }
        let body = bytes[offset...]
        let t = body.withUnsafeBytes { Tensor(type, shape: shape, rawBytes: $0) }
        guard let tensor = t else { throw KilnError("\(name): data does not match its header") }
        return tensor
    }

    /// The value of `key` in the header's Python dict literal.
    private static func field(_ header: String, _ key: String) -> String? {
        for quote in ["'", "\""] {
            guard let r = header.range(of: "\(quote)\(key)\(quote)") else { continue }
            var rest = header[r.upperBound...].drop { $0 == " " || $0 == ":" }
            if rest.first == "(" {
                guard let close = rest.firstIndex(of: ")") else { return nil }
                return String(rest[...close])
            }
            rest = rest.prefix { $0 != "," && $0 != "}" }
            return rest.trimmingCharacters(in: .whitespaces)
        }
        return nil
    }

    public static func encode(_ t: Tensor) throws -> Data {
        let descr: String
        switch t.elementType {
        case .f32: descr = "<f4"
        case .f16: descr = "<f2"
        case .s8: descr = "|i1"
        case .u8: descr = "|u1"
        case .s32: descr = "<i4"
        case .s64: descr = "<i8"
        case .bool: descr = "|b1"
        case .bf16: throw KilnError("bf16 tensors cannot be written as .npy (NumPy has no bfloat16)")
        }
        let shapeText = t.shape.isEmpty ? "()" : t.shape.count == 1 ? "(\(t.shape[0]),)" : "(" + t.shape.map(String.init).joined(separator: ", ") + ")"
        var header = "{'descr': '\(descr)', 'fortran_order': False, 'shape': \(shapeText), }"
        let total = 10 + header.utf8.count + 1
        header += String(repeating: " ", count: (64 - total % 64) % 64) + "\n"
        var out = Data(magic)
        out.append(contentsOf: [1, 0, UInt8(header.utf8.count & 0xFF), UInt8(header.utf8.count >> 8)])
        out.append(contentsOf: Array(header.utf8))
        out.append(contentsOf: t.rawBytes())
        return out
    }

    public static func write(_ t: Tensor, path: String) throws {
        let data = try encode(t)
        guard FileManager.default.createFile(atPath: path, contents: data) else {
            throw KilnError("\(path): cannot write file")
        }
    }
}

/// Reads `--input NAME=FILE.npy` (or `FILE.npy` for a single input) against a list of input names.
public func readInputs(_ specs: [String], names: [String]) throws -> [String: Tensor] {
    var tensors: [String: Tensor] = [:]
    for spec in specs {
        var name: String, file: String
        if let eq = spec.firstIndex(of: "="), !FileManager.default.fileExists(atPath: spec) {
            name = String(spec[..<eq])
            file = String(spec[spec.index(after: eq)...])
        } else {
            guard names.count == 1 else { throw KilnError("--input \(spec): the model has \(names.count) inputs; name it as NAME=FILE.npy") }
            name = names[0]
            file = spec
        }
        guard names.contains(name) else {
            throw KilnError("--input \(spec): the model has no input '\(name)' (inputs: \(names.joined(separator: ", ")))")
        }
        tensors[name] = try NPY.read(path: file)
    }
    return tensors
}
