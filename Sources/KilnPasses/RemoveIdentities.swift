import KilnIR

/// Removes Identity nodes and inference-time Dropout: their readers read the input directly.
///
///     before: %y = identity(%x); %z = relu(%y)
///     after:  %z = relu(%x)
///
/// A node whose output is a graph output stays (the output keeps its name). Dropout's mask
/// output, when read, is left to the node. Runs after `inferShapes`.
public func removeIdentities(_ g: inout Graph) {
    let outputs = Set(g.outputs)
    var replace: [ValueID: ValueID] = [:]
    var keep: [Node] = []
    for var n in g.nodes {
        n.inputs = n.inputs.map { $0.map { replace[$0] ?? $0 } }
        var passThrough = false
        switch n.op {
        case .identity: passThrough = true
        case .dropout: passThrough = n.outputs.count == 1
        default: break
        }
        if passThrough, let src = n.inputs.first ?? nil, !outputs.contains(n.outputs[0]) {
            replace[n.outputs[0]] = src
            continue
        }
        keep.append(n)
    }
    g.nodes = keep
}
