import KilnIR

/// Fuses chains (and trees) of elementwise ops into one loop, and an elementwise group feeding
/// a reduction into the loop of that reduction: one pass over memory instead of one per op.
///
///     before: %d = sub(%x, %m); %q = mul(%d, %d); %v = reduce_mean(%q, %axes) {keepdims=true}
///     after:  %v = elementwise_reduce_mean(%x, %m)
///                  {steps=[s0=sub(in0, in1); s1=mul(s0, s0)] reduce_mean axes=[1] keepdims=true}
///
/// A producer joins its consumer's loop when its result has the consumer's shape (nothing is
/// recomputed per broadcast element), is read by that consumer alone and is not a graph output.
/// A lone dequantization joins every loop that reads it (two operations an element, recomputed
/// for each: the loops read 8-bit values instead of f32 ones), and goes when all of them do.
/// Steps compute in f32; per-tensor QuantizeLinear and DequantizeLinear join as steps, so that a
/// quantized add (`Q(DQ(a) + DQ(b))`) or any activation between quantized tensors is one loop
/// over u8/s8 values. Runs after the post-op fusions (an activation after a conv is better as a
/// post-op) and before `assignLayouts`.
public func fuseElementwise(_ g: inout Graph) {
    let consumers = g.consumers()
    let outputs = Set(g.outputs)
    func isF32(_ v: ValueID) -> Bool { g.values[v].type.elementType == .f32 }

    /// What computes a value as a loop: its inputs, steps, and the nodes it stands for.
    struct Pending {
        var inputs: [ValueID] = []
        var steps: [ElementwiseGroup.Step] = []
        var members: [Int] = []
    }
    var pending: [ValueID: Pending] = [:]
    var absorbed = Set<Int>()
    /// The lone dequantizations inlined into more than one loop, and the nodes whose loops took them.
    var sharedBy: [ValueID: Set<Int>] = [:]
    func isLoneDequantization(_ q: Pending) -> Bool {
        guard q.steps.count == 1, case .dequantizeLinear = q.steps[0].op else { return false }
        return true
    }
    var replaced: [Int: Node] = [:]

    /// Starts a group that inlines the groups computing the given operands where it may.
    func build(_ operands: [ValueID?], into out: ValueID, for consumer: Int) -> (Pending, [ElementwiseGroup.Operand]) {
        var p = Pending()
        var inlined: [ValueID: ElementwiseGroup.Operand] = [:]
        func addInput(_ v: ValueID) -> ElementwiseGroup.Operand {
            if let k = p.inputs.firstIndex(of: v) { return .input(k) }
            p.inputs.append(v)
            return .input(p.inputs.count - 1)
        }
        var result: [ElementwiseGroup.Operand] = []
        for x in operands {
            guard let x else { result.append(.absent); continue }
            if let known = inlined[x] { result.append(known); continue }
            guard let q = pending[x], consumers[x].count == 1 || isLoneDequantization(q), !outputs.contains(x),
                  g.values[x].type.shape == g.values[out].type.shape else {
                result.append(addInput(x))
                continue
            }
            let offset = p.steps.count
            for s in q.steps {
                let ops = s.operands.map { o -> ElementwiseGroup.Operand in
                    switch o {
                    case .input(let k): return addInput(q.inputs[k])
                    case .step(let j): return .step(offset + j)
                    case .absent: return .absent
                    }
                }
                p.steps.append(ElementwiseGroup.Step(op: s.op, operands: ops))
            }
            p.members += q.members
            if consumers[x].count == 1 {
                absorbed.insert(q.members.last!)
            } else {
                sharedBy[x, default: []].insert(consumer)
            }
            inlined[x] = .step(p.steps.count - 1)
            result.append(.step(p.steps.count - 1))
        }
        return (p, result)
    }

    /// The step node `n` is in a group (nil when it cannot be one): an elementwise op on f32, or
    /// per-tensor quantization (f32 → u8/s8) or dequantization (u8/s8 → f32) with constant parameters.
    func step(_ n: Node) -> Op? {
        let x0 = n.inputs[0]!, y = n.outputs[0]
        let quantized: Set<ElementType> = [.u8, .s8]
        switch n.op {
        case .quantizeLinear(let axis, _), .dequantizeLinear(let axis):
            guard n.inputs.count >= 2, n.inputs.dropFirst().allSatisfy({ $0 == nil || g.values[$0!].constant?.count == 1 }) else { return nil }
            if case .dequantizeLinear = n.op {
                return quantized.contains(g.values[x0].type.elementType) && isF32(y) ? n.op : nil
            }
            return isF32(x0) && quantized.contains(g.values[y].type.elementType)
                ? .quantizeLinear(axis: axis, outputType: g.values[y].type.elementType) : nil
        default:
            return n.op.traits.elementwiseStep && isF32(y) && n.inputs.allSatisfy({ $0.map(isF32) ?? true }) ? n.op : nil
        }
    }

    for (i, n) in g.nodes.enumerated() {
        guard n.outputs.count == 1, let x0 = n.inputs.first ?? nil else { continue }
        let y = n.outputs[0]
        if let op = step(n) {
            var (p, operands) = build(n.inputs, into: y, for: i)
            p.steps.append(ElementwiseGroup.Step(op: op, operands: operands))
            p.members.append(i)
            pending[y] = p
            if p.steps.count > 1 {
                replaced[i] = Node(name: n.name, op: .elementwiseGroup(ElementwiseGroup(steps: p.steps)),
                                   inputs: p.inputs, outputs: [y], origin: n.origin)
            }
        } else if case .reduce(let kind, let keepDims, let noop) = n.op, isF32(x0), isF32(y), pending[x0] != nil,
                  let rank = g.values[x0].type.shape?.count {
            // The axes operand, when there is one, must be a constant.
            let axesInput: ValueID? = n.inputs.count > 1 ? n.inputs[1] : nil
            let axesTensor = axesInput.flatMap { g.values[$0].constant }
            guard axesInput == nil || axesTensor != nil,
                  let axes = try? resolveReduceAxes(axesTensor?.int64Values, rank: rank, noopWithEmptyAxes: noop, n.label),
                  !axes.isEmpty else { continue }
            var (p, operands) = build([x0], into: x0, for: i)
            guard case .step = operands[0] else { continue }
            p.members.append(i)
            let reduction = ElementwiseGroup.Reduction(kind: kind, axes: axes.sorted(), keepDims: keepDims)
            replaced[i] = Node(name: n.name, op: .elementwiseGroup(ElementwiseGroup(steps: p.steps, reduction: reduction)),
                               inputs: p.inputs, outputs: [y], origin: n.origin)
        }
    }
    for (x, readers) in sharedBy where Set(consumers[x]).isSubset(of: readers) {
        absorbed.insert(pending[x]!.members.last!)
    }
    var nodes: [Node] = []
    for (i, n) in g.nodes.enumerated() where !absorbed.contains(i) {
        nodes.append(replaced[i] ?? n)
    }
    g.nodes = nodes
}
