import KilnIR

/// Removes Identity nodes, inference-time Dropout, and the ops that copy their input unchanged
/// at the graph's static shapes: a Slice with positive steps whose output has the input's shape
/// (GhostNet's `cat([x1, x2])[:, :oup]` where oup is every channel: a slow strided copy each), an
/// Expand or Tile to the input's own shape, a Cast to the input's own type. Their readers read
/// the input directly.
///
///     before: %y = identity(%x); %z = relu(%y)
///     after:  %z = relu(%x)
///
/// When the output is a graph output, the producer of the input takes over the output's name,
/// and other readers of the output read that value (an identity of a graph input or constant, or of a value that is itself a graph output, stays).
/// Dropout's mask output, when present, keeps the node. Runs after `inferShapes`.
public func removeIdentities(_ g: inout Graph) {
    let producers = g.producers()
    var outputs = Set(g.outputs)
    var readers = [Int](repeating: 0, count: g.values.count)
    for n in g.nodes { for case let v? in n.inputs { readers[v] += 1 } }
    var replace: [ValueID: ValueID] = [:]
    var keep: [Node] = []
    for var n in g.nodes {
        n.inputs = n.inputs.map { $0.map { replace[$0] ?? $0 } }
        var passThrough = false
        switch n.op {
        case .identity: passThrough = true
        case .dropout: passThrough = n.outputs.count == 1
        case .slice, .expand, .tile, .cast: passThrough = copiesUnchanged(n, g)
        default: break
        }
        guard passThrough, let src = n.inputs.first ?? nil else {
            keep.append(n)
            continue
        }
        let out = n.outputs[0]
        if !outputs.contains(out) {
            replace[out] = src
            continue
        }
        // A graph output: hand its name to the producer of `src` when that is safe.
        if producers[src] != nil, !outputs.contains(src), readers[src] == 1 {
            g.values[src].name = g.values[out].name
            g.outputs = g.outputs.map { $0 == out ? src : $0 }
            outputs.insert(src)
            replace[out] = src  // later readers of the output read the renamed value
            continue
        }
        keep.append(n)
    }
    g.nodes = keep
}

/// Whether `n` (Slice, Expand, Tile or Cast) gives its first input back unchanged: the same
/// element type and static shape, and for a Slice constant positive steps (a negative step with
/// the same shape reverses).
func copiesUnchanged(_ n: Node, _ g: Graph) -> Bool {
    guard n.outputs.count == 1, let x = n.inputs.first ?? nil else { return false }
    let tx = g.values[x].type, ty = g.values[n.outputs[0]].type
    guard tx.elementType == ty.elementType, let sx = tx.shape, let sy = ty.shape, sx == sy else { return false }
    if case .slice = n.op, n.inputs.count > 4, let steps = n.inputs[4] {
        guard let t = g.values[steps].constant else { return false }
        return t.ints.allSatisfy { $0 > 0 }
    }
    return true
}
