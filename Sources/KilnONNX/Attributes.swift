import KilnIR

/// Typed access to a node's attributes. Every attribute read is marked used; `unused` lists the
/// ones the importer did not understand, which make the node unsupported.
struct Attributes {
    private var map: [String: Onnx_AttributeProto] = [:]
    private(set) var used = Set<String>()
    let label: String
    let baseDirectory: String?

    init(_ node: Onnx_NodeProto, label: String, baseDirectory: String?) {
        for a in node.attribute { map[a.name] = a }
        self.label = label
        self.baseDirectory = baseDirectory
    }

    var unused: [String] { map.keys.filter { !used.contains($0) }.sorted() }

    func has(_ name: String) -> Bool { map[name] != nil }

    private mutating func get(_ name: String) -> Onnx_AttributeProto? {
        guard let a = map[name] else { return nil }
        used.insert(name)
        return a
    }

    /// Marks attributes as understood whatever their value (they do not affect inference).
    mutating func ignore(_ names: String...) {
        for n in names where map[n] != nil { used.insert(n) }
    }

    private func kind(_ a: Onnx_AttributeProto) -> Onnx_AttributeProto.AttributeType {
        if a.hasType && a.type != .undefined { return a.type }
        if a.hasF { return .float }
        if a.hasI { return .int }
        if a.hasS { return .string }
        if a.hasT { return .tensor }
        if !a.floats.isEmpty { return .floats }
        if !a.ints.isEmpty { return .ints }
        if !a.strings.isEmpty { return .strings }
        return .undefined
    }

    private func mismatch(_ name: String, _ want: String) -> KilnError {
        KilnError("\(label): attribute '\(name)' should be \(want)")
    }

    mutating func int(_ name: String) throws -> Int? {
        guard let a = get(name) else { return nil }
        guard kind(a) == .int else { throw mismatch(name, "an int") }
        guard a.i >= Int64(Int32.min), a.i <= Int64(Int32.max) else {
            throw KilnError("\(label): attribute '\(name)' = \(a.i) is out of range")
        }
        return Int(a.i)
    }

    mutating func int64(_ name: String) throws -> Int64? {
        guard let a = get(name) else { return nil }
        guard kind(a) == .int else { throw mismatch(name, "an int") }
        return a.i
    }

    mutating func int(_ name: String, default d: Int) throws -> Int { try int(name) ?? d }

    mutating func bool(_ name: String, default d: Bool) throws -> Bool {
        guard let v = try int(name) else { return d }
        return v != 0
    }

    mutating func ints(_ name: String) throws -> [Int]? {
        guard let a = get(name) else { return nil }
        let k = kind(a)
        guard k == .ints || (k == .undefined) else { throw mismatch(name, "a list of ints") }
        var out: [Int] = []
        for v in a.ints {
            guard v >= Int64(Int32.min) / 2, v <= Int64(Int32.max) else {
                // Slice-1 uses INT64_MAX-like sentinels; clamp to a large value.
                out.append(v > 0 ? Int(Int32.max) : Int(Int32.min))
                continue
            }
            out.append(Int(v))
        }
        return out
    }

    mutating func int64s(_ name: String) throws -> [Int64]? {
        guard let a = get(name) else { return nil }
        let k = kind(a)
        guard k == .ints || k == .undefined else { throw mismatch(name, "a list of ints") }
        return a.ints
    }

    mutating func float(_ name: String) throws -> Float? {
        guard let a = get(name) else { return nil }
        guard kind(a) == .float else { throw mismatch(name, "a float") }
        return a.f
    }

    mutating func float(_ name: String, default d: Float) throws -> Float { try float(name) ?? d }

    mutating func floats(_ name: String) throws -> [Float]? {
        guard let a = get(name) else { return nil }
        let k = kind(a)
        guard k == .floats || k == .undefined else { throw mismatch(name, "a list of floats") }
        return a.floats
    }

    mutating func string(_ name: String) throws -> String? {
        guard let a = get(name) else { return nil }
        guard kind(a) == .string else { throw mismatch(name, "a string") }
        guard let s = String(data: a.s, encoding: .utf8) else { throw mismatch(name, "UTF-8 text") }
        return s
    }

    mutating func string(_ name: String, default d: String) throws -> String { try string(name) ?? d }

    mutating func strings(_ name: String) throws -> [String]? {
        guard let a = get(name) else { return nil }
        let k = kind(a)
        guard k == .strings || k == .undefined else { throw mismatch(name, "a list of strings") }
        return try a.strings.map { d in
            guard let s = String(data: d, encoding: .utf8) else { throw mismatch(name, "UTF-8 text") }
            return s
        }
    }

    mutating func tensor(_ name: String) throws -> Tensor? {
        guard let a = get(name) else { return nil }
        guard kind(a) == .tensor else { throw mismatch(name, "a tensor") }
        return try importTensor(a.t, baseDirectory: baseDirectory, what: "\(label), attribute '\(name)'")
    }
}

import Foundation
