import KilnIR

/// Fuses a residual Add into the convolution that produces one of its operands, as oneDNN's
/// `sum` post-op: the convolution accumulates onto the other operand (the addend), in its
/// buffer when the addend dies there (the memory planner decides).
///
///     before: %c = conv(%x, %w, %b); %y = add(%c, %skip)
///     after:  %y = conv(%x, %w, %b, %skip) {post_ops=[sum]}
///
/// The addend must have the output's exact type (no broadcasting) and be computed before the
/// convolution; the convolution's output must have no other reader. Runs after `fusePostOps`
/// and before its second run (activations after the add follow the sum).
///
/// The sum must be the conv's first post-op: oneDNN 2.6's f32 kernels for CPUs without the
/// AVX-512 core instructions (jit:avx2, jit:sse41, the depthwise uni kernels) take a sum only
/// there, and otherwise the conv falls to the reference kernel, a hundred times slower. A conv
/// that already has an activation keeps its add as a separate step.
public func fuseSum(_ g: inout Graph) {
    let producers = g.producers()
    let consumers = g.consumers()
    let outputs = Set(g.outputs)
    var removed = Set<Int>()
    for (ai, add) in g.nodes.enumerated() {
        guard case .binary(.add) = add.op, add.inputs.count == 2, let p = add.inputs[0], let q = add.inputs[1], p != q else { continue }
        let t = g.values[add.outputs[0]].type
        guard t.elementType == .f32, g.values[p].type == t, g.values[q].type == t else { continue }
        // Candidates: the operand made by a conv; when both are, the later conv (its addend is ready).
        var best: (conv: Int, addend: ValueID)?
        for (c, other) in [(p, q), (q, p)] {
            guard let ci = producers[c], !removed.contains(ci), case .conv(let a) = g.nodes[ci].op, a.postOps.isEmpty,
                  consumers[c] == [ai], !outputs.contains(c) else { continue }
            if let op = producers[other], op > ci { continue }
            if best == nil || ci > best!.conv { best = (ci, other) }
        }
        guard let (ci, addend) = best, case .conv(var a) = g.nodes[ci].op else { continue }
        a.postOps.append(.sum)
        var inputs = g.nodes[ci].inputs
        while inputs.count < 3 { inputs.append(nil) }
        inputs.append(addend)
        g.nodes[ci].inputs = inputs
        g.nodes[ci].op = .conv(a)
        g.nodes[ci].outputs = add.outputs
        removed.insert(ai)
    }
    g.nodes = g.nodes.enumerated().filter { !removed.contains($0.offset) }.map(\.element)
}
