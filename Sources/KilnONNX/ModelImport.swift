import Foundation
import SwiftProtobuf
import KilnIR

/// Reads an ONNX model file into Kiln's IR.
///
/// Nodes Kiln cannot handle become `.unsupported` nodes naming the reason, so that `inspect` can
/// list all of them; the verifier rejects such a graph before anything runs it. Problems with the
/// file itself (not ONNX, truncated, missing external data, dangling names) are thrown.
/// `inputShapes`: shapes for graph inputs the model declares without any shape (some tf2onnx and
/// Keras exports), as `--input-shape` gives them.
public func loadONNXModel(path: String, inputShapes: [String: [Int]] = [:]) throws -> Graph {
    // Memory: the file's bytes are freed once parsed, and each initializer's bytes in the parsed
    // model once converted, so that a model's weights are held about twice at most, not three times.
    var model = try parseModelFile(path)
    return try importONNXModel(consuming: &model, baseDirectory: (path as NSString).deletingLastPathComponent, file: path, inputShapes: inputShapes)
}

/// Reads and parses an ONNX file; its bytes are released on return.
private func parseModelFile(_ path: String) throws -> Onnx_ModelProto {
    guard FileManager.default.fileExists(atPath: path) else { throw KilnError("\(path): no such file") }
    guard let data = FileManager.default.contents(atPath: path) else { throw KilnError("\(path): cannot read file") }
    do {
        var options = BinaryDecodingOptions()
        options.messageDepthLimit = 200
        return try Onnx_ModelProto(serializedBytes: data, options: options)
    } catch {
        throw KilnError("\(path): not a valid ONNX model (the protobuf does not parse: \(error)); is the file truncated?")
    }
}

/// Converts a parsed ONNX model. `baseDirectory` is where external data files are looked up.
public func importONNXModel(_ model: Onnx_ModelProto, baseDirectory: String?, file: String = "model") throws -> Graph {
    var m = model
    return try importONNXModel(consuming: &m, baseDirectory: baseDirectory, file: file)
}

/// Converts a parsed ONNX model, emptying each initializer of `model` as it goes (which frees
/// its bytes when `model` is their only owner).
func importONNXModel(consuming model: inout Onnx_ModelProto, baseDirectory: String?, file: String = "model",
                     inputShapes: [String: [Int]] = [:]) throws -> Graph {
    guard model.hasGraph else { throw KilnError("\(file): not an ONNX model (it has no graph); is the file truncated or of another format?") }
    var opset: Int?
    for o in model.opsetImport where o.domain == "" || o.domain == "ai.onnx" {
        opset = Int(clamping: o.version)
    }
    if model.opsetImport.isEmpty { opset = 1 }  // IR version 2 models without opset_import
    guard let opset else {
        throw KilnError("\(file): the model imports no version of the default ONNX domain (only \(model.opsetImport.map { $0.domain }.joined(separator: ", ")))", unsupported: true)
    }
    guard opset >= 6 else {
        throw KilnError("\(file): opset \(opset) is older than Kiln supports (6 to \(maxKnownOpset)); re-export the model with a newer opset", unsupported: true)
    }
    guard opset <= maxKnownOpset else {
        throw KilnError("\(file): opset \(opset) is newer than Kiln knows (up to \(maxKnownOpset))", unsupported: true)
    }
    var importer = Importer(file: file, opset: opset, baseDirectory: baseDirectory)
    importer.inputShapes = inputShapes
    try importer.run(&model.graph)
    return importer.graph
}

/// Resolves an op type to the version in force at `opset`: the highest since_version not above it.
public func resolveOpVersion(_ opType: String, opset: Int) -> Int? {
    guard let versions = opSinceVersions[opType] else { return nil }
    return versions.last(where: { $0 <= opset })
}

/// Whether Kiln imports this op type at all.
public func isKnownOpType(_ opType: String) -> Bool { opSinceVersions[opType] != nil }

struct Unsupported: Error { let reason: String }

struct Importer {
    let file: String
    let opset: Int
    let baseDirectory: String?
    var graph: Graph
    var byName: [String: ValueID] = [:]
    var declaredTypes: [String: TensorType] = [:]
    /// Shapes given for inputs declared without one.
    var inputShapes: [String: [Int]] = [:]

    init(file: String, opset: Int, baseDirectory: String?) {
        self.file = file
        self.opset = opset
        self.baseDirectory = baseDirectory
        self.graph = Graph(opset: opset)
    }

    mutating func run(_ g: inout Onnx_GraphProto) throws {
        graph.name = g.name.isEmpty ? "model" : g.name
        // Initializers first: old exporters also list them among the inputs. Each is emptied
        // once converted (only its name is read again).
        for i in g.initializer.indices {
            let t = g.initializer[i]
            let name = t.name.isEmpty ? "initializer_\(i)" : t.name
            guard byName[name] == nil else { throw KilnError("\(file): initializer '\(name)' is defined twice") }
            let tensor = try importTensor(t, baseDirectory: baseDirectory, what: "\(file): initializer '\(name)'")
            byName[name] = graph.addConstant(name, tensor)
            g.initializer[i] = Onnx_TensorProto()
            g.initializer[i].name = t.name
        }
        if !g.sparseInitializer.isEmpty {
            throw KilnError("\(file): sparse initializers are not supported", unsupported: true)
        }
        for vi in g.valueInfo {
            if let t = try? tensorType(vi) { declaredTypes[vi.name] = t }
        }
        for vi in g.input {
            if byName[vi.name] != nil { continue }  // an initializer listed as an input: a constant
            guard !vi.name.isEmpty else { throw KilnError("\(file): a graph input has no name") }
            let t: TensorType
            if case .tensorType(let tt)? = vi.type.value, !tt.hasShape, let pinned = inputShapes[vi.name],
               let et = elementType(onnx: Int(tt.elemType)) {
                // Declared without a shape (not even a rank): the pinned shape is all there is.
                t = TensorType(et, pinned)
            } else {
                t = try tensorType(vi)
            }
            let id = graph.addValue(vi.name, t)
            byName[vi.name] = id
            graph.inputs.append(id)
        }
        for vi in g.output {
            if let t = try? tensorType(vi) { declaredTypes[vi.name] = t }
        }
        for (i, node) in try topologicalOrder(g).enumerated() {
            try importNode(node, index: i)
        }
        for vi in g.output {
            guard let id = byName[vi.name] else {
                throw KilnError("\(file): graph output '\(vi.name)' is not produced by any node, input or initializer")
            }
            graph.outputs.append(id)
        }
        guard !graph.outputs.isEmpty else { throw KilnError("\(file): the graph has no outputs") }
    }

    func tensorType(_ vi: Onnx_ValueInfoProto) throws -> TensorType {
        guard vi.hasType, case .tensorType(let tt)? = vi.type.value else {
            throw KilnError("\(file): '\(vi.name)' is not a tensor (sequences, maps and optionals are not supported)", unsupported: true)
        }
        guard let et = elementType(onnx: Int(tt.elemType)) else {
            throw KilnError("\(file): '\(vi.name)' has element type \(onnxTypeName(Int(tt.elemType))), which Kiln does not support", unsupported: true)
        }
        var dims: [Dim] = []
        if tt.hasShape {
            for (k, d) in tt.shape.dim.enumerated() {
                switch d.value {
                case .dimValue(let v)? where v <= 0:
                    // Exporters (PaddlePaddle, tf2onnx) write -1 or 0 for "dynamic", and ONNX
                    // Runtime reads it so: a dimension to pin, like a dim_param.
                    dims.append(.symbolic("\(vi.name)_d\(k)"))
                case .dimValue(let v)?:
                    guard v >= 0, v < Int64(Int32.max) else { throw KilnError("\(file): '\(vi.name)' has invalid dimension \(v)") }
                    dims.append(.fixed(Int(v)))
                case .dimParam(let p)?: dims.append(.symbolic(p.isEmpty ? "\(vi.name)_d\(k)" : p))
                case nil: dims.append(.symbolic("\(vi.name)_d\(k)"))
                }
            }
        } else {
            throw KilnError("\(file): '\(vi.name)' has no shape; pin it with --input-shape")
        }
        return TensorType(et, dims: dims)
    }

    /// ONNX requires topological order, but not every exporter obeys; sort by data dependence.
    func topologicalOrder(_ g: Onnx_GraphProto) throws -> [Onnx_NodeProto] {
        var producer: [String: Int] = [:]
        for (i, n) in g.node.enumerated() {
            for o in n.output where !o.isEmpty {
                if producer[o] != nil || byName[o] != nil {
                    throw KilnError("\(file): '\(o)' is defined twice (again by node '\(n.name)' (\(n.opType)))")
                }
                producer[o] = i
            }
        }
        var state = [UInt8](repeating: 0, count: g.node.count)  // 0 new, 1 visiting, 2 done
        var order: [Int] = []
        for start in 0..<g.node.count where state[start] == 0 {
            var stack: [(Int, Int)] = [(start, 0)]
            state[start] = 1
            while !stack.isEmpty {
                let (n, k) = stack[stack.count - 1]
                let ins = g.node[n].input
                if k < ins.count {
                    stack[stack.count - 1].1 += 1
                    let name = ins[k]
                    if name.isEmpty || byName[name] != nil { continue }
                    guard let p = producer[name] else {
                        throw KilnError("\(file): node '\(g.node[n].name)' (\(g.node[n].opType)) reads '\(name)', which no node, input or initializer defines")
                    }
                    if state[p] == 1 { throw KilnError("\(file): the graph has a cycle through '\(name)'") }
                    if state[p] == 0 {
                        state[p] = 1
                        stack.append((p, 0))
                    }
                } else {
                    state[n] = 2
                    order.append(n)
                    stack.removeLast()
                }
            }
        }
        return order.map { g.node[$0] }
    }

    mutating func importNode(_ node: Onnx_NodeProto, index: Int) throws {
        let name = node.name.isEmpty ? "\(node.opType)_\(index)" : node.name
        let domain = node.domain
        let known = (domain == "" || domain == "ai.onnx") ? resolveOpVersion(node.opType, opset: opset) : nil
        let origin = NodeOrigin(opType: node.opType, domain: domain == "ai.onnx" ? "" : domain, version: known ?? opset)
        let label = "node '\(name)' (\(origin.description))"
        var inputs: [ValueID?] = []
        for i in node.input {
            inputs.append(i.isEmpty ? nil : byName[i])
        }
        var op: Op
        var attrs = Attributes(node, label: label, baseDirectory: baseDirectory)
        if domain != "" && domain != "ai.onnx" {
            op = .unsupported(reason: "domain '\(domain)' is not supported (model opset \(opset))")
        } else if let version = known {
            do {
                if node.opType == "Constant" {
                    try importConstant(node, version: version, attrs: &attrs)
                    return
                }
                (op, inputs) = try convert(node.opType, version: version, inputs: inputs, outputs: node.output.count, attrs: &attrs, name: name)
                let leftover = attrs.unused
                if !leftover.isEmpty {
                    op = .unsupported(reason: "attribute\(leftover.count > 1 ? "s" : "") \(leftover.map { "'\($0)'" }.joined(separator: ", ")) not supported")
                }
            } catch let u as Unsupported {
                op = .unsupported(reason: u.reason)
            } catch let e as KilnError {
                op = .unsupported(reason: e.message)
            }
        } else {
            op = .unsupported(reason: "op \(node.opType) is not supported (model opset \(opset))")
        }
        var outputs: [ValueID] = []
        for (k, o) in node.output.enumerated() {
            let vname = o.isEmpty ? "\(name)_unused_output_\(k)" : o
            let t = declaredTypes[o] ?? TensorType(.f32, dims: [.symbolic("?")])
            let id = graph.addValue(vname, t)
            if !o.isEmpty { byName[o] = id }
            outputs.append(id)
        }
        graph.nodes.append(Node(name: name, op: op, inputs: inputs, outputs: outputs, origin: origin))
    }

    mutating func importConstant(_ node: Onnx_NodeProto, version: Int, attrs: inout Attributes) throws {
        guard node.output.count == 1, !node.output[0].isEmpty else { throw Unsupported(reason: "Constant must have one output") }
        var t: Tensor?
        if let v = try attrs.tensor("value") { t = v }
        else if let f = try attrs.float("value_float") { t = .scalar(f) }
        else if let fs = try attrs.floats("value_floats") { t = Tensor(.f32, shape: [fs.count], floats: fs) }
        else if let i = try attrs.int64s("value_ints") { t = .vector(ints: i) }
        else if attrs.has("value_int") {
            t = .scalar(int: try attrs.int64("value_int") ?? 0)
        }
        guard let tensor = t, attrs.unused.isEmpty else {
            throw KilnError("node '\(node.name)' (Constant-\(version)): only tensor, float(s) and int(s) values are supported (\(attrs.unused.joined(separator: ", ")))")
        }
        byName[node.output[0]] = graph.addConstant(node.output[0], tensor)
    }

    /// Adds a constant and returns its id, for attribute forms that become inputs.
    mutating func constant(_ name: String, _ t: Tensor) -> ValueID {
        graph.addConstant(name, t)
    }
}

