import KilnIR

/// Fuses the residual add of a quantized graph into the quantized conv that produces one of its
/// operands, as oneDNN's `sum` post-op, where a QuantizeLinear/DequantizeLinear pair stands
/// between the conv and the add (ONNX Runtime's `quantize_static` writes one after every conv):
/// the pair becomes a `fakeQuantize` post-op (the conv's result rounded to that grid, as the
/// graph defines it), the add a `sum` of the other operand's integers, and the activations after
/// the add and their QuantizeLinear the conv's post-ops and output.
///
///     before: %c = quantized_conv(%x, %w, %b) {output=u8(s=0.05, z=3)}; %d = dequantize_linear(%c, 0.05, 3)
///             %e = dequantize_linear(%skip, 0.04, 0); %a = add(%d, %e); %r = relu(%a)
///             %y = quantize_linear(%r, 0.06, 0)
///     after:  %y = quantized_conv(%x, %w, %b, %skip) {post_ops=[fake_quantize(u8(s=0.05, z=3)), sum, relu]
///                  addend=u8(s=0.04, z=0) output=u8(s=0.06, z=0)}
///
/// The skip must have the output's integer type (oneDNN reads the addend from the destination)
/// and be computed before the conv; each value of the matched chain must have no other reader.
/// When both operands qualify, the later conv takes the add. Runs after `lowerQuantized`.
public func fuseQuantizedSums(_ g: inout Graph) {
    var changed = true
    while changed {
        changed = false
        let uses = GraphUses(g)
        for (ai, add) in g.nodes.enumerated() {
            guard let (ci, rewritten, gone) = fusion(of: ai, add, uses) else { continue }
            g.nodes[ci] = rewritten
            g.nodes = g.nodes.enumerated().filter { !gone.contains($0.offset) }.map(\.element)
            changed = true
            break
        }
    }
    eliminateDeadCode(&g)
}

/// The conv index, its rewritten node and the nodes it absorbs, for the add at `ai`.
private func fusion(of ai: Int, _ add: Node, _ uses: GraphUses) -> (Int, Node, Set<Int>)? {
    let g = uses.graph
    guard case .binary(.add) = add.op, add.inputs.count == 2, let p = add.inputs[0], let q = add.inputs[1], p != q else { return nil }
    let t = g.values[add.outputs[0]].type
    guard t.elementType == .f32, g.values[p].type == t, g.values[q].type == t else { return nil }
    // The activations after the add, then the QuantizeLinear that gives the conv its output.
    var chain: [PostOp] = [], absorbed: Set<Int> = [ai], y = add.outputs[0]
    while let c = uses.consumers[y].first, uses.only(y, readBy: c) {
        let n = g.nodes[c]
        let operandsConstant = n.inputs.dropFirst().allSatisfy { $0 == nil || g.values[$0!].constant != nil }
        guard n.inputs.first == y, operandsConstant,
              let op = PostOp.from(n.op, constants: n.inputs.map { $0.flatMap { g.values[$0].constant } }) else { break }
        chain.append(op)
        absorbed.insert(c)
        y = n.outputs[0]
    }
    guard let (output, result, qi) = quantizeReading(y, uses, absorbed) else { return nil }
    absorbed.insert(qi)
    var best: (conv: Int, node: Node, dequantize: Int)?
    for (d, other) in [(p, q), (q, p)] {
        guard let di = uses.node(d), uses.only(d, readBy: ai), case .dequantizeLinear = g.nodes[di].op,
              let c = g.nodes[di].inputs[0], let ci = uses.node(c), uses.only(c, readBy: di),
              case .quantizedConv(var a) = g.nodes[ci].op, let convOutput = a.output, a.addend == nil, !a.conv.postOps.contains(.sum),
              perTensorQuantization(g.nodes[di], g, integer: c) == convOutput,
              let (skip, skipQuantization) = dequantizedActivation(other, uses), skipQuantization.type == output.type,
              g.values[skip].type.shape == t.shape else { continue }
        if let si = uses.node(skip), si > ci { continue }
        a.conv.postOps += [.fakeQuantize(convOutput), .sum] + chain
        a.output = output
        a.addend = skipQuantization
        guard a.oneDNNInt8PostOps != nil else { continue }
        var n = g.nodes[ci]
        n.op = .quantizedConv(a)
        var inputs = n.inputs
        while inputs.count < 3 { inputs.append(nil) }
        n.inputs = inputs + [skip]
        n.outputs = [result]
        if best == nil || ci > best!.conv { best = (ci, n, di) }
    }
    guard let best else { return nil }
    return (best.conv, best.node, absorbed.union([best.dequantize]))
}
