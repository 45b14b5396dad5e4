import KilnIR

/// Turns a mean or max over both spatial axes of a 4-D tensor (MnasNet's `x.mean([2, 3])`) into
/// global pooling, which runs in the channels-last layout, plus a Reshape when the reduced axes
/// are dropped.
///
///     before: %y = reduce_mean(%x, [2, 3]) {keepdims=false}   with %x : f32[N x C x H x W]
///     after:  %p = global_average_pool(%x) : f32[N x C x 1 x 1]; %y = reshape(%p, [N, C])
///
/// Runs after `inferShapes`, before `assignLayouts`.
public func recognizeGlobalPooling(_ g: inout Graph) {
    var nodes: [Node] = []
    for n in g.nodes {
        guard case .reduce(let kind, let keepDims, _) = n.op, kind == .mean || kind == .max,
              let x = n.inputs[0], let xs = g.values[x].type.shape, xs.count == 4,
              g.values[x].type.elementType.isFloat, n.inputs.count > 1,
              let axes = n.inputs[1].flatMap({ g.values[$0].constant })?.int64Values,
              Set(axes.map { $0 < 0 ? $0 + 4 : $0 }) == [2, 3] else {
            nodes.append(n)
            continue
        }
        let op: Op = kind == .mean ? .globalAveragePool : .globalMaxPool
        let pooledType = TensorType(g.values[x].type.elementType, [xs[0], xs[1], 1, 1])
        if keepDims {
            nodes.append(Node(name: n.name, op: op, inputs: [x], outputs: n.outputs, origin: n.origin))
        } else {
            let pooled = g.addValue("\(g.values[n.outputs[0]].name)_pooled", pooledType)
            let target = g.addConstant("\(n.name)_shape", .vector(ints: [Int64(xs[0]), Int64(xs[1])]))
            nodes.append(Node(name: n.name, op: op, inputs: [x], outputs: [pooled], origin: n.origin))
            nodes.append(Node(name: "\(n.name)_reshape", op: .reshape(allowZero: false), inputs: [pooled, target],
                              outputs: n.outputs, origin: n.origin))
        }
    }
    g.nodes = nodes
}
