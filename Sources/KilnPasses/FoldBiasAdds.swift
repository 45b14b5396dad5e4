import KilnIR

/// Folds the add of a per-output-channel constant after a convolution or transposed convolution
/// into its bias: exporters that write the bias as a node of its own (paddle2onnx's, for one)
/// leave a conv → add → batch norm chain that `foldBatchNorm` cannot fold, and an add after it.
///
///     before: %c = conv_transpose(%x, %w) {strides=[2, 2]}; %y = add(%c, %b[1x8x1x1])
///     after:  %y = conv_transpose(%x, %w, %y_bias[8]) {strides=[2, 2]}
///
/// Needs a conv with no post-ops yet and a constant f32 bias or none, its output read by the add
/// alone and not a graph output, and an f32 constant that varies along the channels only (shape
/// [1, C, 1, 1], [C, 1, 1], or one element: a rank-1 [C] broadcasts along the width, not the
/// channels). Runs before `foldBatchNorm`.
public func foldBiasAdds(_ g: inout Graph) {
    let uses = GraphUses(g)
    var removed = Set<Int>()
    for (ai, add) in g.nodes.enumerated() {
        guard case .binary(.add) = add.op, add.inputs.count == 2, let a = add.inputs[0], let b = add.inputs[1] else { continue }
        for (c, k) in [(a, b), (b, a)] {
            guard let pi = uses.node(c), !removed.contains(pi), uses.only(c, readBy: ai),
                  let bias = channelConstant(g, k, output: c), g.values[add.outputs[0]].type == g.values[c].type,
                  foldBias(&g, conv: pi, adding: bias, name: add.name) else { continue }
            g.nodes[pi].outputs = add.outputs
            removed.insert(ai)
            break
        }
    }
    g.nodes = g.nodes.enumerated().filter { !removed.contains($0.offset) }.map(\.element)
}

/// The per-channel values of `k`, an f32 constant that broadcasts against `output` (f32 [N, C, ...])
/// along its channel axis only: C values, or nil.
private func channelConstant(_ g: Graph, _ k: ValueID, output: ValueID) -> [Float]? {
    guard let t = g.values[k].constant, t.elementType == .f32, let ys = g.values[output].type.shape, ys.count >= 2,
          g.values[output].type.elementType == .f32, t.rank <= ys.count else { return nil }
    let shape = Array(repeating: 1, count: ys.count - t.rank) + t.shape
    let channels = ys[1]
    guard shape.enumerated().allSatisfy({ $0.offset == 1 || $0.element == 1 }), shape[1] == 1 || shape[1] == channels else { return nil }
    return shape[1] == 1 ? Array(repeating: t.floats[0], count: channels) : t.floats
}

/// Adds `bias` to the bias of node `pi`, a conv or transposed conv with no post-ops whose bias is
/// a constant f32 tensor or absent; false, and nothing changed, for any other node.
private func foldBias(_ g: inout Graph, conv pi: Int, adding bias: [Float], name: String) -> Bool {
    let n = g.nodes[pi]
    switch n.op {
    case .conv(let a) where a.postOps.isEmpty: break
    case .convTranspose(let a) where a.conv.postOps.isEmpty: break
    default: return false
    }
    let old = n.inputs.count > 2 ? n.inputs[2] : nil
    let ot = old.flatMap { g.values[$0].constant }
    if old != nil && (ot == nil || ot!.elementType != .f32 || ot!.count != bias.count) { return false }
    let sum = bias.indices.map { (ot?.floats[$0] ?? 0) + bias[$0] }
    let id = g.addConstant("\(name)_bias", Tensor(.f32, shape: [bias.count], floats: sum))
    var inputs = n.inputs
    while inputs.count < 3 { inputs.append(nil) }
    inputs[2] = id
    g.nodes[pi].inputs = inputs
    return true
}
