/// Index of a value in `Graph.values`.
public typealias ValueID = Int

/// A value: a graph input, a constant, or a node's output.
public struct Value: Sendable {
    public var name: String
    public var type: TensorType
    /// Set for constants (initializers, Constant nodes, folded sub-graphs).
    public var constant: Tensor?
    /// The order of the elements in memory (constants, inputs and outputs are always plain).
    public var layout: Layout

    public init(name: String, type: TensorType, constant: Tensor? = nil, layout: Layout = .plain) {
        self.name = name
        self.type = type
        self.constant = constant
        self.layout = layout
    }
}

/// Where a node came from, for diagnostics: its ONNX op type, domain and resolved op version.
public struct NodeOrigin: Sendable, Equatable {
    public var opType: String
    public var domain: String
    public var version: Int

    public init(opType: String, domain: String = "", version: Int) {
        self.opType = opType
        self.domain = domain
        self.version = version
    }

    public var description: String {
        domain.isEmpty || domain == "ai.onnx" ? "\(opType)-\(version)" : "\(domain).\(opType)-\(version)"
    }
}

public struct Node: Sendable {
    public var name: String
    public var op: Op
    /// Operands; nil where an optional input is absent.
    public var inputs: [ValueID?]
    public var outputs: [ValueID]
    public var origin: NodeOrigin

    public init(name: String, op: Op, inputs: [ValueID?], outputs: [ValueID], origin: NodeOrigin) {
        self.name = name
        self.op = op
        self.inputs = inputs
        self.outputs = outputs
        self.origin = origin
    }

    /// "node 'conv1' (Conv-11)" — how diagnostics name a node.
    public var label: String { "node '\(name)' (\(origin.description))" }
}

/// A dataflow graph in topological order.
public struct Graph: Sendable {
    public var name: String
    public var values: [Value]
    public var nodes: [Node]
    public var inputs: [ValueID]
    public var outputs: [ValueID]
    /// The model's default-domain opset.
    public var opset: Int

    public init(name: String = "graph", values: [Value] = [], nodes: [Node] = [], inputs: [ValueID] = [],
                outputs: [ValueID] = [], opset: Int = 17) {
        self.name = name
        self.values = values
        self.nodes = nodes
        self.inputs = inputs
        self.outputs = outputs
        self.opset = opset
    }

    @discardableResult
    public mutating func addValue(_ name: String, _ type: TensorType, constant: Tensor? = nil) -> ValueID {
        values.append(Value(name: name, type: type, constant: constant))
        return values.count - 1
    }

    @discardableResult
    public mutating func addConstant(_ name: String, _ tensor: Tensor) -> ValueID {
        addValue(name, tensor.type, constant: tensor)
    }

    /// For each value, the indices of the nodes that read it.
    public func consumers() -> [[Int]] {
        var out = [[Int]](repeating: [], count: values.count)
        for (i, n) in nodes.enumerated() {
            for case let v? in n.inputs where !out[v].contains(i) { out[v].append(i) }
        }
        return out
    }

    /// For each value, the index of the node that writes it (nil for inputs and constants).
    public func producers() -> [Int?] {
        var out = [Int?](repeating: nil, count: values.count)
        for (i, n) in nodes.enumerated() {
            for v in n.outputs { out[v] = i }
        }
        return out
    }

    /// Number of elements held in constants that nodes read (the model's parameters).
    public func parameterCount() -> (elements: Int, bytes: Int) {
        var used = Set<ValueID>()
        for n in nodes { for case let v? in n.inputs { used.insert(v) } }
        var elements = 0, bytes = 0
        for v in used.sorted() {
            if let c = values[v].constant {
                elements += c.count
                bytes += c.byteSize
            }
        }
        return (elements, bytes)
    }
}

/// An error with a message meant for the user: what went wrong, where, and how to fix it.
public struct KilnError: Error, CustomStringConvertible, Sendable {
    public var message: String
    /// The input is valid but uses something Kiln does not handle (as opposed to being broken).
    public var isUnsupported: Bool
    public init(_ message: String, unsupported: Bool = false) {
        self.message = message
        self.isUnsupported = unsupported
    }
    public var description: String { message }
}

/// The multiply-accumulates of one node in one inference: convs, transposed convs, Gemm and
/// MatMul (quantized or not); 0 for every other op, and where a shape is unknown.
public func multiplyAccumulates(_ n: Node, in g: Graph) -> Int {
    func shape(_ i: Int) -> [Int] { i < n.inputs.count ? n.inputs[i].flatMap { g.values[$0].type.shape } ?? [] : [] }
    let out = g.values[n.outputs[0]].type.shape ?? []
    switch n.op {
    case .conv, .quantizedConv, .convInteger:
        let w = shape(1)
        guard w.count >= 2 else { return 0 }
        return shapeProduct(out) * shapeProduct(Array(w.dropFirst(2))) * w[1]
    case .convTranspose:
        let w = shape(1), x = shape(0)
        guard w.count >= 2 else { return 0 }
        return shapeProduct(x) * w[1] * shapeProduct(Array(w.dropFirst(2)))
    case .gemm(let a):
        let s = shape(0)
        guard s.count == 2 else { return 0 }
        return shapeProduct(out) * (a.transA ? s[0] : s[1])
    case .matMul, .quantizedMatMul, .dynamicQuantizedMatMul, .matMulInteger:
        guard let k = shape(0).last else { return 0 }
        return shapeProduct(out) * k
    default:
        return 0
    }
}

/// The bytes one node reads and writes: each distinct operand (constants included) and each
/// result once.
public func bytesMoved(_ n: Node, in g: Graph) -> Int {
    var seen = Set<ValueID>()
    var total = 0
    for case let v? in n.inputs + n.outputs.map({ Optional($0) }) where seen.insert(v).inserted {
        total += g.values[v].type.byteSize ?? 0
    }
    return total
}
