import KilnIR

/// Gives 4-D activations the channels-last layout (NHWC) that oneDNN's convolutions run fastest
/// in, and inserts layout conversions only where a consumer needs the plain layout: at the
/// graph's edges and before ops that reinterpret the shape (Reshape, Transpose, Softmax, ...).
/// Consecutive convolutions, pooling, elementwise ops and concatenations stay channels-last.
///
///     before: %c = conv(%x, ...); %p = max_pool(%c); %f = flatten(%p)
///     after:  %x' = layout_convert(%x) : nhwc; %c = conv(%x', ...) : nhwc; %p = max_pool(%c) : nhwc
///             %p' = layout_convert(%p) : plain; %f = flatten(%p')
///
/// Runs last, after fusion. The reference interpreter ignores layouts (conversions are identities).
public func assignLayouts(_ g: inout Graph) {
    var nodes: [Node] = []
    var converted: [ValueID: ValueID] = [:]
    func rank(_ v: ValueID) -> Int { g.values[v].type.rank }
    func ensure(_ v: ValueID, _ want: Layout) -> ValueID {
        if g.values[v].layout == want { return v }
        if let c = converted[v], g.values[c].layout == want { return c }
        var value = g.values[v]
        value.name += want == .channelsLast ? "_nhwc" : "_plain"
        value.layout = want
        value.constant = nil
        g.values.append(value)
        let c = g.values.count - 1
        nodes.append(Node(name: "\(g.values[v].name)_to_\(want)", op: .layoutConvert, inputs: [v], outputs: [c],
                          origin: NodeOrigin(opType: "LayoutConvert", domain: "kiln", version: 1)))
        converted[v] = c
        return c
    }
    for var n in g.nodes {
        let out = n.outputs.first
        var outLayout = Layout.plain
        switch n.op {
        case .conv(let a):
            if let y = out, rank(y) == 4, g.values[y].type.elementType == .f32, (g.values[y].type.elementCount ?? 0) > 0 {
                // (A plain source with a channels-last destination sends oneDNN 2.6 to its reference
                // kernel, a thousand times slower: convert the input once instead.)
                n.inputs[0] = ensure(n.inputs[0]!, .channelsLast)
                if a.postOps.contains(.sum), n.inputs.count > 3, let addend = n.inputs[3] {
                    n.inputs[3] = ensure(addend, .channelsLast)
                }
                outLayout = .channelsLast
            } else {
                n.inputs = n.inputs.map { $0.map { ensure($0, .plain) } }
            }
        case .maxPool, .averagePool, .globalAveragePool, .globalMaxPool, .batchNormalization, .channelScaleShift, .unary, .leakyRelu,
             .hardSigmoid, .gelu, .clip, .cast, .identity:
            // Follow the (main) input's layout; everything else must be plain.
            let x = n.inputs[0]!
            let main = rank(x) == 4 && out.map { rank($0) == 4 } == true ? g.values[x].layout : .plain
            for k in n.inputs.indices {
                if let v = n.inputs[k] { n.inputs[k] = ensure(v, k == 0 ? main : .plain) }
            }
            outLayout = main
        case .elementwiseGroup(let e) where e.reduction != nil:
            n.inputs = n.inputs.map { $0.map { ensure($0, .plain) } }
        case .binary, .variadic, .where, .elementwiseGroup:
            // Elementwise with broadcasting: operands are read through strides, whatever their layout.
            if let y = out, rank(y) == 4, n.inputs.contains(where: { $0.map { rank($0) == 4 && g.values[$0].layout == .channelsLast } ?? false }) {
                outLayout = .channelsLast
            }
        case .slice, .split:
            // Follow the input's layout (4-D to 4-D); the bounds are plain.
            let x = n.inputs[0]!
            let main = rank(x) == 4 ? g.values[x].layout : .plain
            for k in n.inputs.indices.dropFirst() { if let v = n.inputs[k] { n.inputs[k] = ensure(v, .plain) } }
            for y in n.outputs { g.values[y].layout = main }
            nodes.append(n)
            continue
        case .gather(let axis):
            // A gather of channels (1-D indices) keeps channels-last: ShuffleNet's channel shuffle.
            let x = n.inputs[0]!
            let idx = n.inputs[1]!
            if rank(x) == 4, g.values[x].layout == .channelsLast, axis == 1 || axis == -3, rank(idx) == 1 {
                n.inputs[1] = ensure(idx, .plain)
                outLayout = .channelsLast
            } else {
                n.inputs = n.inputs.map { $0.map { ensure($0, .plain) } }
            }
        case .concat:
            if let y = out, rank(y) == 4, n.inputs.contains(where: { $0.map { g.values[$0].layout == .channelsLast } ?? false }) {
                n.inputs = n.inputs.map { $0.map { ensure($0, .channelsLast) } }
                outLayout = .channelsLast
            }
        default:
            n.inputs = n.inputs.map { $0.map { ensure($0, .plain) } }
        }
        for y in n.outputs { g.values[y].layout = n.outputs.count == 1 ? outLayout : .plain }
        nodes.append(n)
    }
    // Graph outputs are plain: convert at the end, the output keeping its name.
    for (j, o) in g.outputs.enumerated() where g.values[o].layout != .plain {
        var inner = g.values[o]
        inner.name += "_nhwc"
        g.values.append(inner)
        let inside = g.values.count - 1
        for i in nodes.indices {
            nodes[i].inputs = nodes[i].inputs.map { $0 == o ? inside : $0 }
            nodes[i].outputs = nodes[i].outputs.map { $0 == o ? inside : $0 }
        }
        g.values[o].layout = .plain
        nodes.append(Node(name: "\(g.values[o].name)_to_plain", op: .layoutConvert, inputs: [inside], outputs: [o],
                          origin: NodeOrigin(opType: "LayoutConvert", domain: "kiln", version: 1)))
        g.outputs[j] = o
    }
    g.nodes = nodes
}
