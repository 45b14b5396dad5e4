import KilnIR

/// Recognises layer normalization written out of primitive ops (PyTorch's export below opset
/// 17), so that it runs as one kernel with its statistics in double precision:
///
///     before: %m = reduce_mean(%x, [-1]); %d = sub(%x, %m); %p = pow(%d, 2)   (or mul(%d, %d))
///             %v = reduce_mean(%p, [-1]); %e = add(%v, 1e-5); %s = sqrt(%e); %n = div(%d, %s)
///             %y = mul(%n, %gamma); %z = add(%y, %beta)                        (both optional)
///     after:  %z = layer_norm(%x, %gamma, %beta) {axis=-1 epsilon=1e-5}
///
/// Both means must run over the same trailing axes with keepdims, gamma and beta must not
/// broadcast over the leading axes, and no intermediate value may have another reader. Runs
/// after `inferShapes` (constants folded), before `fuseElementwise`.
public func recognizeLayerNorm(_ g: inout Graph) {
    var changed = true
    while changed {
        changed = false
        let uses = GraphUses(g)
        let consumers = uses.consumers, outputs = uses.outputs
        /// The first normalized axis of a keepdims mean over trailing axes.
        func trailingMean(_ i: Int) -> (x: ValueID, axis: Int)? {
            guard case .reduce(.mean, true, _) = g.nodes[i].op, let x = g.nodes[i].inputs[0],
                  let rank = g.values[x].type.shape?.count, g.nodes[i].inputs.count > 1,
                  let axes = g.nodes[i].inputs[1].flatMap({ g.values[$0].constant })?.int64Values, !axes.isEmpty
            else { return nil }
            let normalized = Set(axes.map { Int($0 < 0 ? $0 + Int64(rank) : $0) })
            guard let first = normalized.min(), normalized == Set(first..<rank) else { return nil }
            return (x, first)
        }
        for (di, div) in g.nodes.enumerated() {
            guard case .binary(.div) = div.op, let d = div.inputs[0], let s = div.inputs[1],
                  g.values[d].type.elementType == .f32, let xs = g.values[d].type.shape,
                  let si = uses.node(s), uses.only(s, readBy: di), case .unary(.sqrt) = g.nodes[si].op,
                  let e = g.nodes[si].inputs[0], let ei = uses.node(e), uses.only(e, readBy: si), case .binary(.add) = g.nodes[ei].op,
                  g.nodes[ei].inputs.count == 2 else { continue }
            // e = v + eps, either order
            let (v, eps): (ValueID?, Float?) = uses.scalar(g.nodes[ei].inputs[1]) != nil
                ? (g.nodes[ei].inputs[0], uses.scalar(g.nodes[ei].inputs[1])) : (g.nodes[ei].inputs[1], uses.scalar(g.nodes[ei].inputs[0]))
            guard let v, let eps, let vi = uses.node(v), uses.only(v, readBy: ei), let (p, axis) = trailingMean(vi),
                  let pi = uses.node(p), uses.only(p, readBy: vi) else { continue }
            // p = d² as pow(d, 2) or mul(d, d)
            switch g.nodes[pi].op {
            case .binary(.pow): guard g.nodes[pi].inputs[0] == d, uses.scalar(g.nodes[pi].inputs[1]) == 2 else { continue }
            case .binary(.mul): guard g.nodes[pi].inputs[0] == d, g.nodes[pi].inputs[1] == d else { continue }
            default: continue
            }
            // d = x − mean(x) over the same axes, read only by the square and the division
            guard let subi = uses.node(d), case .binary(.sub) = g.nodes[subi].op, let x = g.nodes[subi].inputs[0],
                  let m = g.nodes[subi].inputs[1], let mi = uses.node(m), uses.only(m, readBy: subi),
                  let (mx, maxis) = trailingMean(mi), mx == x, maxis == axis,
                  Set(consumers[d]) == [pi, di], !outputs.contains(d), g.values[x].type.shape == xs else { continue }
            let normShape = Array(xs.dropFirst(axis))
            /// A per-element affine operand that broadcasts within the normalized axes only.
            func affine(_ i: Int, _ op: BinaryOp, of value: ValueID) -> (ValueID, Int)? {
                guard uses.only(value, readBy: i), case .binary(op) = g.nodes[i].op, g.nodes[i].inputs.count == 2 else { return nil }
                let other = g.nodes[i].inputs[0] == value ? g.nodes[i].inputs[1] : g.nodes[i].inputs[0]
                guard let other, other != value, g.values[other].type.elementType == .f32,
                      let os = g.values[other].type.shape, os.count <= normShape.count,
                      (try? broadcastShapes([normShape, os], "")) == normShape,
                      g.values[g.nodes[i].outputs[0]].type.shape == xs else { return nil }
                return (other, i)
            }
            var result = div.outputs[0], last = di
            var members = [mi, subi, pi, vi, ei, si, di]
            var scale: ValueID?, bias: ValueID?
            if consumers[result].count == 1, let (gamma, mul) = affine(consumers[result][0], .mul, of: result) {
                scale = gamma
                result = g.nodes[mul].outputs[0]
                last = mul
                members.append(mul)
                if consumers[result].count == 1, let (beta, add) = affine(consumers[result][0], .add, of: result) {
                    bias = beta
                    result = g.nodes[add].outputs[0]
                    last = add
                    members.append(add)
                }
            }
            let gamma = scale ?? g.addConstant("\(div.name)_ones", Tensor(.f32, shape: normShape, floats: [Float](repeating: 1, count: shapeProduct(normShape))))
            let dead = Set(members)
            let ln = Node(name: g.nodes[last].name, op: .layerNormalization(axis: axis, epsilon: eps),
                          inputs: [x, gamma] + (bias.map { [$0] } ?? []), outputs: [result], origin: g.nodes[last].origin)
            var nodes: [Node] = []
            for (k, n) in g.nodes.enumerated() {
                if k == last { nodes.append(ln) } else if !dead.contains(k) { nodes.append(n) }
            }
            g.nodes = nodes
            changed = true
            break
        }
    }
}
