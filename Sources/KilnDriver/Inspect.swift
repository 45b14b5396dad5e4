import Foundation
import KilnIR
import KilnONNX
import KilnPasses

/// What `kiln inspect` reports about a model.
public struct Inspection: Codable, Sendable {
    public struct TensorInfo: Codable, Sendable {
        public var name: String
        public var type: String
        public var shape: [String]
    }
    public struct UnsupportedNode: Codable, Sendable {
        public var name: String
        public var opType: String
        public var opset: Int
        public var reason: String
    }
    public struct Unpinned: Codable, Sendable {
        public var input: String
        public var dimension: Int
        public var symbol: String
        public var feeds: [String]
    }
    public var model: String
    public var opset: Int
    public var inputs: [TensorInfo]
    public var outputs: [TensorInfo]
    /// ONNX op type → node count, as imported (before folding).
    public var ops: [String: Int]
    public var nodeCount: Int
    public var parameters: Int
    public var parameterBytes: Int
    /// Multiply-accumulates of one inference; nil while input dimensions are unpinned.
    public var macs: Int?
    public var unsupported: [UnsupportedNode]
    public var unpinned: [Unpinned]
    /// Shape problems found with all inputs pinned (these make the model unusable as it is).
    public var shapeErrors: [String]

    /// True when every node is supported and shapes check out.
    public var isSupported: Bool { unsupported.isEmpty && shapeErrors.isEmpty }
}

public func inspectModel(path: String, inputShapes: [String: [Int]] = [:]) throws -> Inspection {
    let imported = try loadONNXModel(path: path, inputShapes: inputShapes)
    var g = imported
    try pinInputShapes(&g, inputShapes)
    let unpinned = unpinnedDimensions(g)
    let problems = try inferShapes(&g, strict: false)
    var ops: [String: Int] = [:]
    var unsupported: [Inspection.UnsupportedNode] = []
    for n in imported.nodes {
        ops[n.origin.opType, default: 0] += 1
        if case .unsupported(let reason) = n.op {
            unsupported.append(.init(name: n.name, opType: n.origin.opType, opset: imported.opset, reason: reason))
        }
    }
    func info(_ id: ValueID, _ graph: Graph) -> Inspection.TensorInfo {
        let t = graph.values[id].type
        return .init(name: graph.values[id].name, type: t.elementType.description, shape: t.dims.map(\.description))
    }
    let params = imported.parameterCount()
    let complete = unpinned.isEmpty && problems.isEmpty && unsupported.isEmpty
    return Inspection(
        model: path, opset: imported.opset,
        inputs: g.inputs.map { info($0, g) },
        outputs: g.outputs.map { info($0, complete ? g : imported) },
        ops: ops, nodeCount: imported.nodes.count,
        parameters: params.elements, parameterBytes: params.bytes,
        macs: complete ? macCount(g) : nil,
        unsupported: unsupported,
        unpinned: unpinned.map { .init(input: $0.input, dimension: $0.dim, symbol: $0.symbol, feeds: $0.feeds) },
        shapeErrors: unpinned.isEmpty ? problems : [])
}

/// Multiply-accumulates of one inference (conv, conv-transpose, gemm, matmul).
public func macCount(_ g: Graph) -> Int {
    g.nodes.reduce(0) { $0 + multiplyAccumulates($1, in: g) }
}

/// A count with thousands separators (1,234,567).
public func formatCount(_ n: Int) -> String {
    let f = NumberFormatter()
    f.numberStyle = .decimal
    f.groupingSeparator = ","
    return f.string(from: NSNumber(value: n)) ?? String(n)
}

/// A count in K, M or G with two decimals.
public func formatScaled(_ n: Int) -> String {
    let d = Double(n)
    if d >= 1e9 { return String(format: "%.2f G", d / 1e9) }
    if d >= 1e6 { return String(format: "%.2f M", d / 1e6) }
    if d >= 1e3 { return String(format: "%.2f K", d / 1e3) }
    return String(n)
}

/// `kiln inspect`'s report as text.
public func formatInspection(_ r: Inspection) -> String {
    var s = "model: \(r.model) (opset \(r.opset), \(r.nodeCount) nodes)\n"
    func tensor(_ t: Inspection.TensorInfo) -> String { "  \(t.name): \(t.type)[\(t.shape.joined(separator: "x"))]\n" }
    s += "inputs:\n" + r.inputs.map(tensor).joined()
    s += "outputs:\n" + r.outputs.map(tensor).joined()
    s += "ops:\n"
    for (op, n) in r.ops.sorted(by: { $0.value != $1.value ? $0.value > $1.value : $0.key < $1.key }) {
        s += "  \(op.padding(toLength: max(op.count, 22), withPad: " ", startingAt: 0)) \(n)\n"
    }
    s += "parameters: \(formatCount(r.parameters)) (\(formatScaled(r.parameterBytes))B)\n"
    s += "multiply-accumulates: " + (r.macs.map { "\(formatScaled($0)) (\(formatCount($0)))" } ?? "unknown until every input dimension is pinned") + "\n"
    for u in r.unpinned {
        s += "unpinned: dimension \(u.dimension) ('\(u.symbol)') of input '\(u.input)' feeds \(u.feeds.prefix(3).joined(separator: ", "))\(u.feeds.count > 3 ? ", ..." : "") — pin it with --input-shape \(u.input)=...\n"
    }
    if r.unsupported.isEmpty && r.shapeErrors.isEmpty {
        s += "unsupported: none"
    } else {
        s += "unsupported: \(r.unsupported.count) node\(r.unsupported.count == 1 ? "" : "s")\n"
        for u in r.unsupported {
            s += "  node '\(u.name)' (\(u.opType), opset \(u.opset)): \(u.reason)\n"
        }
        for e in r.shapeErrors { s += "  \(e)\n" }
        s.removeLast()
    }
    return s
}

/// The model's inputs: names, ranks and whether any dimension is symbolic.
public func inspectInputs(_ path: String) throws -> [(name: String, rank: Int, dynamic: Bool)] {
    let r = try inspectModel(path: path)
    return r.inputs.map { ($0.name, $0.shape.count, $0.shape.contains { Int($0) == nil }) }
}
