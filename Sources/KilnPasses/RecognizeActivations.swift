import KilnIR

/// Recognises activations that exporters write out of primitive ops, so that they fuse and run
/// as one op: GELU written with Erf, and HardSwish written with Clip.
///
///     before: %d = div(%x, 1.4142135); %e = erf(%d); %a = add(%e, 1); %m = mul(%x, %a); %y = mul(%m, 0.5)
///     after:  %y = gelu(%x)
///
///     before: %a = add(%x, 3); %c = clip(%a, 0, 6); %m = mul(%x, %c); %y = div(%m, 6)
///     after:  %y = hard_swish(%x)
///
/// Intermediate values must have no other reader. Runs after `inferShapes` (constants folded).
public func recognizeActivations(_ g: inout Graph) {
    var changed = true
    while changed {
        changed = false
        let uses = GraphUses(g)
        /// For a binary node with one scalar constant operand: (the other operand, the constant).
        func withConstant(_ n: Node) -> (ValueID, Float)? {
            guard n.inputs.count == 2, let a = n.inputs[0], let b = n.inputs[1] else { return nil }
            if let c = uses.scalar(b) { return (a, c) }
            if let c = uses.scalar(a) { return (b, c) }
            return nil
        }
        func close(_ a: Float, _ b: Float) -> Bool { abs(a - b) <= 1e-4 * max(1, abs(b)) }
        var replaced: (index: Int, op: Op, input: ValueID, dead: [Int])?
        for (i, n) in g.nodes.enumerated() where replaced == nil {
            guard case .binary(let outer) = n.op, outer == .mul || outer == .div,
                  g.values[n.outputs[0]].type.elementType.isFloat else { continue }
            // GELU: mul(mul(x, add(erf(x / √2), 1)), 0.5)
            if outer == .mul, let (m, half) = withConstant(n), close(half, 0.5), let mi = uses.node(m), uses.only(m, readBy: i),
               case .binary(.mul) = g.nodes[mi].op, g.nodes[mi].inputs.count == 2 {
                let ins = g.nodes[mi].inputs.compactMap { $0 }
                for (x, a) in [(ins[0], ins[1]), (ins[1], ins[0])] {
                    guard let ai = uses.node(a), uses.only(a, readBy: mi), case .binary(.add) = g.nodes[ai].op,
                          let (e, one) = withConstant(g.nodes[ai]), close(one, 1), let ei = uses.node(e), uses.only(e, readBy: ai),
                          case .unary(.erf) = g.nodes[ei].op, let d = g.nodes[ei].inputs[0], let di = uses.node(d), uses.only(d, readBy: ei),
                          let (dx, k) = withConstant(g.nodes[di]), dx == x else { continue }
                    let isDiv: Bool
                    if case .binary(.div) = g.nodes[di].op, g.nodes[di].inputs[0] == x { isDiv = true }
                    else if case .binary(.mul) = g.nodes[di].op { isDiv = false } else { continue }
                    guard isDiv ? close(k, 1.4142135) : close(k, 0.70710677) else { continue }
                    replaced = (i, .gelu(tanhApproximation: false), x, [mi, ai, ei, di])
                    break
                }
            }
            // HardSwish: div(mul(x, clip(add(x, 3), 0, 6)), 6)
            if replaced == nil, outer == .div, let six = uses.scalar(n.inputs[1]), close(six, 6), let m = n.inputs[0],
               let mi = uses.node(m), uses.only(m, readBy: i), case .binary(.mul) = g.nodes[mi].op, g.nodes[mi].inputs.count == 2 {
                let ins = g.nodes[mi].inputs.compactMap { $0 }
                for (x, c) in [(ins[0], ins[1]), (ins[1], ins[0])] {
                    guard let ci = uses.node(c), uses.only(c, readBy: mi), case .clip = g.nodes[ci].op,
                          g.nodes[ci].inputs.count == 3, close(uses.scalar(g.nodes[ci].inputs[1]) ?? -1, 0),
                          close(uses.scalar(g.nodes[ci].inputs[2]) ?? -1, 6), let a = g.nodes[ci].inputs[0],
                          let ai = uses.node(a), uses.only(a, readBy: ci), case .binary(.add) = g.nodes[ai].op,
                          let (ax, three) = withConstant(g.nodes[ai]), ax == x, close(three, 3) else { continue }
                    replaced = (i, .unary(.hardSwish), x, [mi, ci, ai])
                    break
                }
            }
        }
        if let r = replaced {
            g.nodes[r.index].op = r.op
            g.nodes[r.index].inputs = [r.input]
            let dead = Set(r.dead)
            g.nodes = g.nodes.enumerated().filter { !dead.contains($0.offset) }.map(\.element)
            changed = true
        }
    }
}
