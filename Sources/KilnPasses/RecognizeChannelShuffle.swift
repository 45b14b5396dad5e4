import KilnIR

/// Recognises the channel shuffle that ShuffleNet writes as Reshape → Transpose → Reshape and
/// turns it into a Gather of channels, which runs in the channels-last layout without
/// converting back and forth.
///
///     before: %r = reshape(%x, [N, g, C/g, H, W]); %t = transpose(%r) {perm=[0, 2, 1, 3, 4]}
///             %y = reshape(%t, [N, C, H, W])
///     after:  %y = gather(%x, [0, C/g, 2·C/g, ..., 1, C/g + 1, ...]) {axis=1}
///
/// Runs after `inferShapes` (it reads static shapes), before `assignLayouts`.
public func recognizeChannelShuffle(_ g: inout Graph) {
    let producers = g.producers()
    let consumers = g.consumers()
    let outputs = Set(g.outputs)
    var removed = Set<Int>()
    for (i, n) in g.nodes.enumerated() {
        guard case .reshape = n.op, let t = n.inputs[0], let ti = producers[t],
              case .transpose(let perm) = g.nodes[ti].op, perm == [0, 2, 1, 3, 4],
              let r = g.nodes[ti].inputs[0], let ri = producers[r], case .reshape = g.nodes[ri].op,
              let x = g.nodes[ri].inputs[0],
              consumers[t] == [i], consumers[r] == [ti], !outputs.contains(t), !outputs.contains(r),
              let xs = g.values[x].type.shape, xs.count == 4,
              let rs = g.values[r].type.shape, rs.count == 5,
              let ys = g.values[n.outputs[0]].type.shape, ys == xs,
              rs[0] == xs[0], rs[1] * rs[2] == xs[1], rs[3] == xs[2], rs[4] == xs[3] else { continue }
        let groups = rs[1], perGroup = rs[2]
        var indices: [Int64] = []
        for a in 0..<perGroup { for b in 0..<groups { indices.append(Int64(b * perGroup + a)) } }
        let idx = g.addConstant("\(n.name)_channels", .vector(ints: indices))
        g.nodes[i] = Node(name: n.name, op: .gather(axis: 1), inputs: [x, idx], outputs: n.outputs,
                          origin: n.origin)
        removed.formUnion([ti, ri])
    }
    g.nodes = g.nodes.enumerated().filter { !removed.contains($0.offset) }.map(\.element)
}
