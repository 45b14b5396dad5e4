import KilnIR

/// The golden reference: runs a graph node by node with plain, obviously-correct loops.
/// Correct before fast; every later test compares against it.
public struct ReferenceInterpreter {
    public let graph: Graph

    public init(_ graph: Graph) {
        self.graph = graph
    }

    /// Runs the graph on named inputs (every graph input must be given, with its static shape
    /// and element type) and returns the named outputs.
    public func run(_ inputs: [String: Tensor]) throws -> [String: Tensor] {
        var env = [Tensor?](repeating: nil, count: graph.values.count)
        for (i, v) in graph.values.enumerated() where v.constant != nil { env[i] = v.constant }
        for id in graph.inputs {
            let v = graph.values[id]
            guard let t = inputs[v.name] else { throw KilnError("input '\(v.name)' was not given") }
            guard t.elementType == v.type.elementType else {
                throw KilnError("input '\(v.name)' should be \(v.type.elementType), got \(t.elementType)")
            }
            if let s = v.type.shape, s != t.shape {
                throw KilnError("input '\(v.name)' should have shape \(shapeString(s)), got \(shapeString(t.shape))")
            }
            env[id] = t
        }
        let names = Set(graph.inputs.map { graph.values[$0].name })
        for k in inputs.keys where !names.contains(k) {
            throw KilnError("the model has no input named '\(k)' (inputs: \(names.sorted().joined(separator: ", ")))")
        }
        // Free each value after its last use.
        var lastUse = [Int](repeating: -1, count: graph.values.count)
        for (i, n) in graph.nodes.enumerated() { for case let v? in n.inputs { lastUse[v] = i } }
        for v in graph.outputs { lastUse[v] = Int.max }
        for (i, node) in graph.nodes.enumerated() {
            let ins: [Tensor?] = node.inputs.map { $0.flatMap { env[$0] } }
            let outs = try evaluateNode(node, ins)
            for (k, v) in node.outputs.enumerated() where k < outs.count { env[v] = outs[k] }
            for case let v? in node.inputs where lastUse[v] == i && graph.values[v].constant == nil { env[v] = nil }
        }
        var result: [String: Tensor] = [:]
        for v in graph.outputs {
            guard let t = env[v] else { throw KilnError("output '\(graph.values[v].name)' was not computed") }
            result[graph.values[v].name] = t
        }
        return result
    }
}

/// Evaluates one node on concrete inputs (nil where an optional input is absent).
public func evaluateNode(_ node: Node, _ inputs: [Tensor?]) throws -> [Tensor] {
    let types = try inferOutputTypes(node, inputs: inputs.map { $0?.type }, constants: inputs)
    let e = NodeEvaluation(node: node, inputs: inputs, types: types)
    switch node.op.family {
    case .conv: return try e.evaluateConv()
    case .pool: return try e.evaluatePool()
    case .elementwise: return try e.evaluateElementwise()
    case .normalize: return try e.evaluateNormalize()
    case .reduce: return try e.evaluateReduce()
    case .dataMovement: return try e.evaluateDataMovement()
    case .matMul: return try e.evaluateMatMul()
    case .quantized: return try e.evaluateQuantized()
    case .shape: return try e.evaluateShape()
    case .recurrent: return try e.evaluateRecurrent()
    case .unsupported:
        guard case .unsupported(let reason) = node.op else { preconditionFailure() }
        throw KilnError("\(node.label) is not supported: \(reason)", unsupported: true)
    }
}

/// One node being evaluated: its inputs and output type, and the accessors the references share.
/// The references themselves are in a file per op family (Conv.swift, Elementwise.swift, ...).
struct NodeEvaluation {
    let node: Node
    let inputs: [Tensor?]
    /// The outputs' types, the first one's, and its shape.
    let types: [TensorType]
    var out: TensorType { types[0] }
    var shape: [Int] { out.shape! }
    var what: String { node.label }
    func x(_ i: Int) -> Tensor { inputs[i]! }
    func opt(_ i: Int) -> Tensor? { i < inputs.count ? inputs[i] : nil }
}

import Foundation

/// Applies fused post-ops to a result, in order.
func applyPostOps(_ ops: [PostOp], _ y: Tensor, addend: Tensor?) -> Tensor {
    guard !ops.isEmpty else { return y }
    var r = y
    let t = y.elementType
    for op in ops {
        if op == .sum, let a = addend {
            for i in 0..<r.floats.count { r.floats[i] = t.roundFloat(r.floats[i] + a.floats[i]) }
        } else {
            for i in 0..<r.floats.count { r.floats[i] = t.roundFloat(op.apply(r.floats[i])) }
        }
    }
    return r
}
