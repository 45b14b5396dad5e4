import KilnIR

/// Fuses elementwise activations into the convolution, transposed convolution, Gemm or MatMul
/// (or dynamically quantized matmul) that feeds them, as oneDNN post-ops: Relu, LeakyRelu, Clip (ReLU6) with constant bounds,
/// Sigmoid, Tanh, HardSwish, HardSigmoid, GELU, and SiLU written as x · sigmoid(x). A MatMul
/// first takes the bias added right after it (a constant varying only along the last axis).
///
///     before: %c = conv(%x, %w, %b); %r = relu(%c)
///     after:  %r = conv(%x, %w, %b) {post_ops=[relu]}
///
///     before: %c = conv(...); %s = sigmoid(%c); %y = mul(%c, %s)
///     after:  %y = conv(...) {post_ops=[silu]}
///
///     before: %m = matmul(%x, %w); %b = add(%m, [1, 1, N] constant); %y = gelu(%b)
///     after:  %y = matmul(%x, %w, %bias [N]) {post_ops=[gelu]}
///
/// The fused value must have no other reader and not be a graph output, and the resulting list
/// must be one oneDNN 2.6 computes correctly (`PostOp.oneDNNLowering`). Runs after
/// `foldBatchNorm` and again after `fuseSum` (to take the Relu that follows a residual add).
public func fusePostOps(_ g: inout Graph) {
    var changed = true
    while changed {
        changed = false
        let consumers = g.consumers()
        let outputs = Set(g.outputs)
        var removed = Set<Int>()
        for (i, n) in g.nodes.enumerated() where !removed.contains(i) {
            guard var postOps = fusablePostOps(n), g.values[n.outputs[0]].type.elementType == .f32 else { continue }
            let y = n.outputs[0]
            guard !outputs.contains(y) else { continue }
            let readers = consumers[y].filter { !removed.contains($0) }
            var newOutputs: [ValueID]?
            var gone: [Int] = []
            // A MatMul's bias: Add of a constant that varies only along the last axis.
            if postOps.isEmpty, n.inputs.count == biasPosition(n.op), readers.count == 1,
               let bias = matMulBias(&g, add: g.nodes[readers[0]], product: y) {
                g.nodes[i].inputs.append(bias)
                g.nodes[i].outputs = g.nodes[readers[0]].outputs
                removed.insert(readers[0])
                changed = true
                continue
            }
            if let (p, nodes) = activation(reading: y, readers: readers, in: g, consumers: consumers, outputs: outputs),
               expressible(n, postOps + [p]) {
                postOps.append(p)
                newOutputs = g.nodes[nodes.last!].outputs
                gone = nodes
            }
            guard let outs = newOutputs else { continue }
            g.nodes[i].op = withPostOps(n.op, postOps)
            g.nodes[i].outputs = outs
            removed.formUnion(gone)
            changed = true
        }
        g.nodes = g.nodes.enumerated().filter { !removed.contains($0.offset) }.map(\.element)
    }
}

/// The activation that alone reads `y` (`readers`, its readers): one node with constant operands
/// that is a post-op (ReLU, Clip, LeakyRelu, ...), or SiLU written as mul(y, sigmoid(y)) with the
/// sigmoid read by the mul alone; with the nodes it replaces, the last writing its result.
func activation(reading y: ValueID, readers: [Int], in g: Graph, consumers: [[Int]],
                outputs: Set<ValueID>) -> (postOp: PostOp, nodes: [Int])? {
    if readers.count == 1 {
        let c = g.nodes[readers[0]]
        let consts = c.inputs.map { $0.flatMap { g.values[$0].constant } }
        guard c.inputs.first == y, c.inputs.dropFirst().allSatisfy({ $0 == nil || g.values[$0!].constant != nil }),
              let p = PostOp.from(c.op, constants: consts) else { return nil }
        return (p, [readers[0]])
    }
    guard readers.count == 2 else { return nil }
    for (si, mi) in [(readers[0], readers[1]), (readers[1], readers[0])] {
        let (s, m) = (g.nodes[si], g.nodes[mi])
        guard case .unary(.sigmoid) = s.op, case .binary(.mul) = m.op, s.inputs.first == y else { continue }
        let sig = s.outputs[0]
        guard consumers[sig] == [mi], !outputs.contains(sig), Set(m.inputs.compactMap { $0 }) == Set([y, sig]) else { continue }
        return (.silu, [si, mi])
    }
    return nil
}

/// Whether `postOps` can be the post-ops of `n`: oneDNN runs those of convolutions, Gemm and MatMul,
/// and some lists it computes wrongly (`PostOp.oneDNNLowering`); those stay separate nodes.
func expressible(_ n: Node, _ postOps: [PostOp]) -> Bool {
    switch n.op {
    case .conv, .convTranspose, .gemm, .matMul, .dynamicQuantizedMatMul: return PostOp.oneDNNLowering(postOps) != nil
    default: return true
    }
}

/// The post-ops of a node that can take more (nil for other ops).
func fusablePostOps(_ n: Node) -> [PostOp]? {
    switch n.op {
    case .conv(let a): return a.postOps
    case .convTranspose(let a): return a.conv.postOps
    case .gemm(let a): return a.postOps
    case .matMul(let a): return a.postOps
    case .dynamicQuantizedMatMul(let q): return q.postOps
    case .channelScaleShift(let p): return p
    default: return nil
    }
}

func withPostOps(_ op: Op, _ postOps: [PostOp]) -> Op {
    switch op {
    case .conv(var a):
        a.postOps = postOps
        return .conv(a)
    case .convTranspose(var a):
        a.conv.postOps = postOps
        return .convTranspose(a)
    case .gemm(var a):
        a.postOps = postOps
        return .gemm(a)
    case .matMul(var a):
        a.postOps = postOps
        return .matMul(a)
    case .dynamicQuantizedMatMul(var q):
        q.postOps = postOps
        return .dynamicQuantizedMatMul(q)
    case .channelScaleShift: return .channelScaleShift(postOps: postOps)
    default: return op
    }
}

/// Where a matrix product's bias operand goes (its operand count without one), nil for other ops.
private func biasPosition(_ op: Op) -> Int? {
    switch op {
    case .matMul: return 2
    case .dynamicQuantizedMatMul: return 4
    default: return nil
    }
}

/// The bias operand (f32 [N]) a MatMul can take for `add`, which adds a constant to the product
/// `product` ([..., N]) that varies only along the last axis and leaves the shape as it is;
/// nil otherwise. A constant of shape [1, ..., 1, N] is replaced by its [N] form.
func matMulBias(_ g: inout Graph, add: Node, product: ValueID) -> ValueID? {
    guard case .binary(.add) = add.op, add.inputs.count == 2, let other = add.inputs.first(where: { $0 != product }),
          add.inputs.contains(product), let other, let c = g.values[other].constant, c.elementType == .f32,
          let ps = g.values[product].type.shape, let n = ps.last, g.values[add.outputs[0]].type == g.values[product].type,
          c.shape.last == n, c.shape.dropLast().allSatisfy({ $0 == 1 }), c.rank <= ps.count else { return nil }
    return c.rank == 1 ? other : g.addConstant("\(g.values[other].name)_bias", c.reshaped([n]))
}
