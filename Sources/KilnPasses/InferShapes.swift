import KilnIR
import KilnReference

/// The largest tensor shape inference accepts: 1 TiB (a bigger one is a wrong shape, not a model).
public let maximumTensorBytes = 1 << 40

/// Gives every value its static type and folds whatever is known at compile time into constants:
/// nodes whose operands are all constant (the Shape → Gather → Unsqueeze → Concat chains that
/// exporters write to compute Reshape targets), and Shape of a statically shaped tensor.
///
///     before: %s = shape(%x) : s64[?]; %t = gather(%s, %zero); %r = reshape(%x, %t2) : f32[?]
///     after:  %r = reshape(%x, %t2) : f32[1x512]   with %t2 = constant s64[2] [1, 512]
///
/// DequantizeLinear of u8/s8 constants read only by convs and matrix products (quantized weights)
/// is not folded: `lowerQuantized` folds what it does not take. Runs after `pinInputShapes`. In strict mode the first problem is thrown; otherwise each node
/// whose types cannot be inferred is reported and its outputs stay unknown (for `inspect`).
@discardableResult
public func inferShapes(_ g: inout Graph, strict: Bool = true, foldLimitBytes: Int = 1 << 28) throws -> [String] {
    var problems: [String] = []
    let consumers = g.consumers()
    func readsWeights(_ op: Op) -> Bool {
        switch op {
        case .conv, .gemm, .matMul: return true
        default: return false
        }
    }
    var known = [Bool](repeating: false, count: g.values.count)
    for id in g.inputs { known[id] = g.values[id].type.isStatic }
    for (i, v) in g.values.enumerated() where v.constant != nil { known[i] = true }
    for ni in g.nodes.indices {
        var node = g.nodes[ni]
        if case .unsupported(let reason) = node.op {
            if strict { throw KilnError("\(node.label) is not supported: \(reason)", unsupported: true) }
            continue
        }
        let ready = node.inputs.allSatisfy { $0 == nil || known[$0!] }
        guard ready else { continue }  // an upstream problem was already reported
        // CastLike is Cast once the target's element type is known.
        if case .castLike = node.op, node.inputs.count == 2, let like = node.inputs[1] {
            g.nodes[ni].op = .cast(to: g.values[like].type.elementType)
            g.nodes[ni].inputs = [node.inputs[0]]
            node = g.nodes[ni]
        }
        let types: [TensorType?] = node.inputs.map { $0.map { g.values[$0].type } }
        let consts: [Tensor?] = node.inputs.map { $0.flatMap { g.values[$0].constant } }
        let outTypes: [TensorType]
        do {
            outTypes = try inferOutputTypes(node, inputs: types, constants: consts)
        } catch let e as KilnError {
            if strict { throw e }
            problems.append(e.message)
            continue
        }
        // A shape computed from a file can be absurd (a mistyped dimension, a corrupt file): no
        // tensor of a model Kiln can run holds a terabyte.
        if let (k, t) = outTypes.enumerated().first(where: { $0.element.dims.contains { ($0.value ?? 0) < 0 } }), k < node.outputs.count {
            let message = "\(node.label): its output '\(g.values[node.outputs[k]].name)' would be \(t), with a negative dimension; is a shape or attribute in the model wrong?"
            if strict { throw KilnError(message) }
            problems.append(message)
            continue
        }
        if let (k, t) = outTypes.enumerated().first(where: { ($0.element.byteSize ?? 0) > maximumTensorBytes }), k < node.outputs.count {
            let message = "\(node.label): its output '\(g.values[node.outputs[k]].name)' would be \(t) (\((t.elementCount ?? 0) == Int.max ? "more than 2^63 elements" : "\(t.byteSize!) bytes")), over Kiln's limit of 1 TiB per tensor; is a shape in the model wrong?"
            if strict { throw KilnError(message) }
            problems.append(message)
            continue
        }
        for (k, v) in node.outputs.enumerated() where k < outTypes.count {
            g.values[v].type = outTypes[k]
            known[v] = true
        }
        // Fold: every present operand constant, or Shape of a static tensor.
        let allConstant = node.inputs.allSatisfy { $0 == nil || g.values[$0!].constant != nil }
        // Shape and Size read only the type.
        var readsOnlyType = node.op == .size
        if case .shape = node.op { readsOnlyType = true }
        var foldable = allConstant || (readsOnlyType && g.values[node.inputs[0]!].type.shape != nil)
        if case .dropout = node.op { foldable = allConstant }
        // Quantized weights stay integers until `lowerQuantized` has seen them: a dequantization
        // of u8/s8 constants that only convolutions and matrix products read.
        if case .dequantizeLinear = node.op, [.u8, .s8].contains(types[0]?.elementType),
           !consumers[node.outputs[0]].isEmpty, consumers[node.outputs[0]].allSatisfy({ readsWeights(g.nodes[$0].op) }) {
            foldable = false
        }
        let outBytes = outTypes.reduce(0) { $0 + min($1.byteSize ?? Int.max / 4, Int.max / 4) }
        if foldable && outBytes <= foldLimitBytes {
            let ins: [Tensor?] = node.inputs.map { $0.flatMap { g.values[$0].constant } }
            let shapeOnly: [Tensor?]
            if readsOnlyType {
                // Give it a placeholder of the right shape.
                shapeOnly = [Tensor(zeros: .u8, shape: g.values[node.inputs[0]!].type.shape!)]
            } else {
                shapeOnly = ins
            }
            do {
                let outs = try evaluateNode(node, shapeOnly)
                for (k, v) in node.outputs.enumerated() where k < outs.count { g.values[v].constant = outs[k] }
            } catch let e as KilnError {
                if strict { throw e }
                problems.append(e.message)
            }
        }
    }
    // Nodes whose outputs are all constant are no longer needed.
    g.nodes.removeAll { n in !n.outputs.isEmpty && n.outputs.allSatisfy { g.values[$0].constant != nil } }
    return problems
}
