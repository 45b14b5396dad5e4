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
    let imported = try loadONNXModel(path: path)
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
