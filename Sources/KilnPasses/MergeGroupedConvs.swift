import KilnIR

/// Merges a grouped conv written out as its groups back into one grouped conv: a channel Split
/// into equal parts, one conv per part with the same geometry and equal output channels, and a
/// channel Concat of their outputs in order become one conv with `group` = parts × each conv's
/// group, its weights and biases the parts' concatenated along the output channels (a missing
/// bias is zeros). The same arithmetic, one conv instead of a split, several convs and a
/// concatenation: the split and the concatenation copied every element (MixNet-S's grouped
/// pointwise convs, timm's `create_conv2d` with `num_groups`).
///
///     before: %a, %b = split(%x) {axis=1}; %c = conv(%a, %w0, %b0); %d = conv(%b, %w1, %b1)
///             %y = concat(%c, %d) {axis=1}
///     after:  %y = conv(%x, concat(%w0, %w1), concat(%b0, %b1)) {group=2}
///
/// Each split output must be read by its conv alone, each conv's output by the concatenation
/// alone (once, in the split's order), none a graph output; the convs f32 with constant f32
/// weights and biases, no post-ops yet, equal attributes and weight shapes; the Concat's inputs
/// exactly those convs. Runs first among the f32 fusions, so that a BatchNormalization and an
/// activation after the concatenation fold into the merged conv as after any conv.
public func mergeGroupedConvs(_ g: inout Graph) {
    var changed = true
    while changed {
        changed = false
        let uses = GraphUses(g)
        for (ci, concat) in g.nodes.enumerated() {
            guard case .concat(let axis) = concat.op, let y = concat.outputs.first, concat.inputs.count >= 2 else { continue }
            let rank = g.values[y].type.rank
            guard rank >= 3, axis == 1 || axis == 1 - rank else { continue }
            // The convs, in order, each read by the concatenation alone.
            var convs: [Int] = []
            for v in concat.inputs {
                guard let v, let p = uses.node(v), uses.only(v, readBy: ci), !convs.contains(p) else { break }
                convs.append(p)
            }
            guard convs.count == concat.inputs.count,
                  let si = uses.node(g.nodes[convs[0]].inputs[0]), case .split(let splitAxis) = g.nodes[si].op,
                  splitAxis == 1 || splitAxis == 1 - rank, g.nodes[si].outputs.count == convs.count,
                  let merged = mergedConv(g, convs, splitOutputs: g.nodes[si].outputs, uses: uses) else { continue }
            // The first conv becomes the merged one (its name and origin name it in diagnostics).
            let (a, w, b) = merged
            let first = convs[0], name = g.nodes[first].name
            g.nodes[first].op = .conv(a)
            g.nodes[first].inputs = [g.nodes[si].inputs[0], g.addConstant("\(name)_grouped_weight", w), g.addConstant("\(name)_grouped_bias", b)]
            g.nodes[first].outputs = concat.outputs
            for i in (Array(convs.dropFirst()) + [si, ci]).sorted(by: >) { g.nodes.remove(at: i) }
            changed = true
            break
        }
    }
}

/// The merged conv's attributes, weights and bias, or nil unless conv k reads split output k alone and
/// every conv has the same attributes, weight shape and element type (f32 constants).
private func mergedConv(_ g: Graph, _ convs: [Int], splitOutputs: [ValueID], uses: GraphUses) -> (ConvAttributes, Tensor, Tensor)? {
    guard case .conv(let a0) = g.nodes[convs[0]].op, a0.postOps.isEmpty else { return nil }
    var weights: [Tensor] = []
    var biases: [Tensor?] = []
    for (k, p) in convs.enumerated() {
        let n = g.nodes[p]
        guard case .conv(let a) = n.op, a == a0, n.inputs.count >= 2, n.inputs[0] == splitOutputs[k],
              uses.only(splitOutputs[k], readBy: p), g.values[n.outputs[0]].type.elementType == .f32,
              let wid = n.inputs[1], let w = g.values[wid].constant, w.elementType == .f32 else { return nil }
        guard weights.isEmpty || w.shape == weights[0].shape else { return nil }
        weights.append(w)
        if n.inputs.count > 2, let bid = n.inputs[2] {
            guard let b = g.values[bid].constant, b.elementType == .f32, b.shape == [w.shape[0]] else { return nil }
            biases.append(b)
        } else {
            biases.append(nil)
        }
    }
    // Equal input parts: each conv's input channels are one part of the split.
    guard let xs = g.values[splitOutputs[0]].type.shape,
          splitOutputs.allSatisfy({ g.values[$0].type.shape == xs }), xs[1] == weights[0].shape[1] * a0.group else { return nil }
    var shape = weights[0].shape
    shape[0] *= convs.count
    let w = Tensor(.f32, shape: shape, floats: weights.flatMap(\.floats))
    let b = Tensor(.f32, shape: [shape[0]], floats: zip(weights, biases).flatMap { w, b in b?.floats ?? [Float](repeating: 0, count: w.shape[0]) })
    var a = a0
    a.group = a0.group * convs.count
    return (a, w, b)
}
