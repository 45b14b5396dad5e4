import KilnIR

/// Moves per-tensor dequantization below the ops that only move or select values, and drops a
/// quantization that undoes a dequantization with the same parameters, so that quantized values
/// flow between quantized ops without a round trip through f32:
///
///     before: %a = dequantize_linear(%aq, 0.1, 3); %p = max_pool(%a); %pq = quantize_linear(%p, 0.1, 3)
///             %d = dequantize_linear(%pq, 0.1, 3); %c = conv(%d, ...)
///     after:  %p' = max_pool(%aq) : u8; %d = dequantize_linear(%p', 0.1, 3); %c = conv(%d, ...)
///
/// Exact: these ops commute with the (increasing, elementwise) dequantization, and
/// `quantize(dequantize(q)) = q` under equal parameters. The ops: those whose `OpTraits.movement`
/// says they move values (reshapes, transposes, slices, splits, gathers, max pooling, nearest
/// resizing, depth/space moves, tiling, expansion, and concatenation of inputs with equal
/// parameters). Runs before `lowerQuantized`, which then sees the dequantization right before
/// the convolutions.
///
/// First, a per-tensor quantization moves above the reshapes and transposes that feed it, so
/// that what they move is integers and the op before them meets its quantization (MnasNet's
/// `x.mean([2, 3])`, a global pooling then a Reshape, becomes a quantized pooling):
///
///     before: %p = global_average_pool(%x); %r = reshape(%p, [1, 1280]); %q = quantize_linear(%r, 0.1, 0)
///     after:  %p = global_average_pool(%x); %pq = quantize_linear(%p, 0.1, 0); %q = reshape(%pq, [1, 1280])
public func sinkDequantize(_ g: inout Graph) {
    hoistQuantization(&g)
    struct Dequantized { var source: ValueID; var operands: [ValueID?]; var quantization: Quantization }
    var dequantized: [ValueID: Dequantized] = [:]
    var rename: [ValueID: ValueID] = [:]
    let outputs = Set(g.outputs)
    var nodes: [Node] = []
    for var n in g.nodes {
        n.inputs = n.inputs.map { $0.map { rename[$0] ?? $0 } }
        switch n.op {
        case .dequantizeLinear:
            if let q = perTensorQuantization(n, g, integer: n.inputs[0]) {
                dequantized[n.outputs[0]] = Dequantized(source: n.inputs[0]!, operands: Array(n.inputs.dropFirst()), quantization: q)
            }
        case .quantizeLinear:
            if let x = n.inputs[0], let d = dequantized[x], !outputs.contains(n.outputs[0]),
               perTensorQuantization(n, g, integer: n.outputs[0]) == d.quantization {
                rename[n.outputs[0]] = d.source
                continue
            }
        default:
            if let data = n.op.traits.movedOperands(of: n.inputs.count), !data.isEmpty,
               let first = n.inputs[data[0]].flatMap({ dequantized[$0] }),
               data.allSatisfy({ k in n.inputs[k].flatMap { dequantized[$0] }?.quantization == first.quantization }) {
                // Each output (a Split has several) is the integers moved, dequantized after.
                for k in data { n.inputs[k] = dequantized[n.inputs[k]!]!.source }
                let ys = n.outputs
                n.outputs = ys.map { y in
                    var inner = g.values[y]
                    inner.name += "_quantized"
                    inner.type.elementType = first.quantization.type
                    g.values.append(inner)
                    return g.values.count - 1
                }
                nodes.append(n)
                for (j, (y, u)) in zip(ys, n.outputs).enumerated() {
                    nodes.append(Node(name: "\(n.name)_dequantize\(ys.count > 1 ? "_\(j)" : "")", op: .dequantizeLinear(axis: 1),
                                      inputs: [u] + first.operands, outputs: [y], origin: n.origin))
                    dequantized[y] = Dequantized(source: u, operands: first.operands, quantization: first.quantization)
                }
                continue
            }
        }
        nodes.append(n)
    }
    g.nodes = nodes
    eliminateDeadCode(&g)
}

/// `quantize(move(v))` → `move(quantize(v))` for the moves that only rearrange a tensor's
/// elements, while `v` has no other reader: exact for an elementwise quantization.
private func hoistQuantization(_ g: inout Graph) {
    var changed = true
    while changed {
        changed = false
        let uses = GraphUses(g)
        for (i, n) in g.nodes.enumerated() {
            guard case .quantizeLinear = n.op, let q = perTensorQuantization(n, g, integer: n.outputs[0]),
                  let x = n.inputs[0], uses.only(x, readBy: i), let mi = uses.node(x), g.nodes[mi].outputs.count == 1,
                  let src = g.nodes[mi].inputs.first ?? nil, g.values[src].type.elementType == .f32 else { continue }
            guard let movement = g.nodes[mi].op.traits.movement, movement == .reshapes || movement == .permutes else { continue }
            var integers = g.values[src]
            integers.name += "_quantized"
            integers.type.elementType = q.type
            integers.constant = nil
            g.values.append(integers)
            let u = g.values.count - 1
            var quantize = n, move = g.nodes[mi]
            quantize.inputs[0] = src
            quantize.outputs = [u]
            move.inputs[0] = u
            move.outputs = n.outputs
            // The quantization's scale and zero point are constants: it may run where the move did.
            g.nodes[mi] = quantize
            g.nodes[i] = move
            changed = true
            break
        }
    }
    eliminateDeadCode(&g)
}

/// The per-tensor quantization of a QuantizeLinear or DequantizeLinear node with constant
/// parameters, whose integer side is `integer` (u8 or s8); nil otherwise.
public func perTensorQuantization(_ n: Node, _ g: Graph, integer: ValueID?) -> Quantization? {
    guard let integer, n.inputs.count >= 2, let s = n.inputs[1], let scale = g.values[s].constant, scale.count == 1,
          scale.elementType == .f32, scale.floats[0] > 0, scale.floats[0].isFinite else { return nil }
    let t = g.values[integer].type.elementType
    guard t == .u8 || t == .s8 else { return nil }
    var zero: Int32 = 0
    if n.inputs.count > 2, let z = n.inputs[2] {
        guard let zt = g.values[z].constant, zt.count == 1, zt.elementType == t else { return nil }
        zero = Int32(zt.ints[0])
    }
    return .perTensor(t, scale: scale.floats[0], zeroPoint: zero)
}
