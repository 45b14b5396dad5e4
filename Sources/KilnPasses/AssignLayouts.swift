import KilnIR
import KilnTarget

/// Gives 4-D activations the channels-last layout (NHWC) that oneDNN's convolutions run fastest
/// in, and inserts layout conversions only where a consumer needs the plain layout: at the
/// graph's edges and before ops that reinterpret the shape (Reshape, Transpose, Softmax, ...).
/// Consecutive convolutions, pooling, elementwise ops and concatenations stay channels-last.
///
///     before: %c = conv(%x, ...); %p = max_pool(%c); %f = flatten(%p)
///     after:  %x' = layout_convert(%x) : nhwc; %c = conv(%x', ...) : nhwc; %p = max_pool(%c) : nhwc
///             %p' = layout_convert(%p) : plain; %f = flatten(%p')
///
/// Graphs whose convolutions are mostly 3×3 stride-1 ones that Winograd can take (VGG, ResNet-18)
/// get oneDNN's blocked layout (nChw16c) instead: oneDNN's Winograd kernels take only that
/// layout, and in it consecutive convs, pooling and residual sums need no reorder between them.
/// A graph with grouped convs (oneDNN 2.6 has no fast blocked kernel for them) or with ops that
/// would read the activations in Kiln's own kernels (concatenations, elementwise ops) stays
/// channels-last. In the blocked layout, a conv with fewer than 16 input channels (the stem)
/// reads its plain input directly; ops without a blocked kernel get channels-last copies.
///
/// Runs last, after fusion. The reference interpreter ignores layouts (conversions are identities).
public func assignLayouts(_ g: inout Graph, policy: LayoutPolicy = .auto) {
    let blocked = policy == .blocked || (policy == .auto && prefersBlockedLayout(g))
    var nodes: [Node] = []
    var converted: [ValueID: ValueID] = [:]
    let consumers = g.consumers()
    let outputs = Set(g.outputs)
    func rank(_ v: ValueID) -> Int { g.values[v].type.rank }
    func ensure(_ v: ValueID, _ want: Layout) -> ValueID {
        if g.values[v].layout == want { return v }
        if let c = converted[v], g.values[c].layout == want { return c }
        var value = g.values[v]
        value.name += want == .channelsLast ? "_nhwc" : want == .blocked16 ? "_blocked" : "_plain"
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
        if blocked, let y = out, rank(y) == 4, g.values[y].type.elementType == .f32, (g.values[y].type.elementCount ?? 0) > 0 {
            if case .conv(let a) = n.op, a.group == 1 {
                let channels = g.values[n.inputs[0]!].type.shape?[1] ?? 0
                n.inputs[0] = ensure(n.inputs[0]!, channels < 16 ? .plain : .blocked16)
                if a.postOps.contains(.sum), n.inputs.count > 3, let addend = n.inputs[3] {
                    n.inputs[3] = ensure(addend, .blocked16)
                }
                g.values[y].layout = .blocked16
                nodes.append(n)
                continue
            }
            if oneDNNPoolingTakesBlocked(n, g), let x = n.inputs[0], g.values[x].layout == .blocked16 {
                g.values[y].layout = .blocked16
                nodes.append(n)
                continue
            }
        }
        // Kiln's own kernels read channels-last copies of blocked values.
        n.inputs = n.inputs.map { $0.map { g.values[$0].layout == .blocked16 ? ensure($0, .channelsLast) : $0 } }
        switch n.op.traits.layout {
        case .plain:
            n.inputs = n.inputs.map { $0.map { ensure($0, .plain) } }
        case .followsFirst:
            // Follow the (main) input's layout; everything else must be plain.
            let x = n.inputs[0]!
            let main = rank(x) == 4 && out.map { rank($0) == 4 } == true ? g.values[x].layout : .plain
            for k in n.inputs.indices {
                if let v = n.inputs[k] { n.inputs[k] = ensure(v, k == 0 ? main : .plain) }
            }
            outLayout = main
        case .strided:
            // Elementwise with broadcasting: operands are read through strides, whatever their layout.
            if let y = out, rank(y) == 4, n.inputs.contains(where: { $0.map { rank($0) == 4 && g.values[$0].layout == .channelsLast } ?? false }) {
                outLayout = .channelsLast
            }
        case .own:
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
            case .quantizedConv:
                // oneDNN's int8 convolutions run channels-last (the source, the addend and the result).
                if let y = out, rank(y) == 4 {
                    n.inputs[0] = ensure(n.inputs[0]!, .channelsLast)
                    if n.op.sumsIntoAddend, n.inputs.count > 3, let addend = n.inputs[3] { n.inputs[3] = ensure(addend, .channelsLast) }
                    outLayout = .channelsLast
                } else {
                    n.inputs = n.inputs.map { $0.map { ensure($0, .plain) } }
                }
            case .quantizeLinear, .dequantizeLinear:
                // Per tensor they are elementwise, in the input's layout; per axis, plain.
                let x = n.inputs[0]!
                let perTensor = n.inputs.count > 1 && n.inputs[1].map({ g.values[$0].type.elementCount == 1 }) == true
                let main = perTensor && rank(x) == 4 ? g.values[x].layout : .plain
                for k in n.inputs.indices { if let v = n.inputs[k] { n.inputs[k] = ensure(v, k == 0 ? main : .plain) } }
                outLayout = main
                // An image quantized for int8 convs (a plain input of at most 4 channels) is written
                // channels-last as it is quantized: one pass instead of two (kiln::quantize_to_channels_last).
                if case .quantizeLinear = n.op, perTensor, main == .plain, let y = out, rank(y) == 4, !outputs.contains(y),
                   let c = g.values[y].type.shape?[1], c <= 4, !consumers[y].isEmpty,
                   consumers[y].allSatisfy({ if case .quantizedConv = g.nodes[$0].op { return true } else { return false } }) {
                    outLayout = .channelsLast
                }
            case .convTranspose(let a):
                // oneDNN's deconvolution runs channels-last; Kiln's generic loop needs plain values.
                if let y = out, rank(y) == 4, g.values[y].type.elementType == .f32, (g.values[y].type.elementCount ?? 0) > 0,
                   (g.values[n.inputs[0]!].type.elementCount ?? 0) > 0,
                   let xs = g.values[n.inputs[0]!].type.shape, let ws = g.values[n.inputs[1]!].type.shape,
                   let geo = try? convTransposeGeometry(input: Array(xs.dropFirst(2)), kernel: Array(ws.dropFirst(2)), attributes: a, n.name),
                   oneDNNDeconvolutionApplies(geo) {
                    n.inputs[0] = ensure(n.inputs[0]!, .channelsLast)
                    for k in n.inputs.indices.dropFirst() { if let v = n.inputs[k] { n.inputs[k] = ensure(v, .plain) } }
                    outLayout = .channelsLast
                } else {
                    n.inputs = n.inputs.map { $0.map { ensure($0, .plain) } }
                }
            case .slice, .split:
                // Follow the input's layout (4-D to 4-D); the bounds are plain.
                let x = n.inputs[0]!
                let main = rank(x) == 4 ? g.values[x].layout : .plain
                for k in n.inputs.indices.dropFirst() { if let v = n.inputs[k] { n.inputs[k] = ensure(v, .plain) } }
                for y in n.outputs { g.values[y].layout = main }
                nodes.append(n)
                continue
            case .depthToSpace, .spaceToDepth:
                // Strided copies in either layout: follow a channels-last input.
                let x = n.inputs[0]!
                outLayout = rank(x) == 4 && g.values[x].layout == .channelsLast ? .channelsLast : .plain
            case .pad:
                // Padding commutes with the permutation of a channels-last value: it stays so.
                let x = n.inputs[0]!
                let main: Layout = rank(x) == 4 && g.values[x].layout == .channelsLast ? .channelsLast : .plain
                n.inputs = n.inputs.enumerated().map { k, v in v.map { ensure($0, k == 0 ? main : .plain) } }
                outLayout = main
            case .transpose(let perm):
                // A permute between NCHW and NHWC keeps channels-last bytes as they are: from a
                // channels-last input to a plain result, or from a plain input to a channels-last result.
                let x = n.inputs[0]!
                if let xs = g.values[x].type.shape, xs.count == 4, let p = perm {
                    if g.values[x].layout == .channelsLast, Layout.transposeKeepsBytes(xs, perm: p, from: .channelsLast, to: .plain) {
                        outLayout = .plain
                    } else if let y = out, !g.outputs.contains(y), Layout.transposeKeepsBytes(xs, perm: p, from: .plain, to: .channelsLast) {
                        n.inputs[0] = ensure(x, .plain)
                        outLayout = .channelsLast
                    } else {
                        n.inputs[0] = ensure(x, .plain)
                    }
                } else {
                    n.inputs = n.inputs.map { $0.map { ensure($0, .plain) } }
                }
            case .resize(let r):
                // A resize of height and width (kiln::resize_hw) follows a channels-last input,
                // unless its result is a graph output (then the smaller input is converted).
                let x = n.inputs[0]!
                func constant(_ i: Int) -> Tensor? { i < n.inputs.count ? n.inputs[i].flatMap { g.values[$0].constant } : nil }
                var main = Layout.plain
                if let y = out, let xs = g.values[x].type.shape, let ys = g.values[y].type.shape, g.values[x].layout == .channelsLast,
                   !g.outputs.contains(y), resizeSpatialKernelTakes(g.values[x].type.elementType, r),
                   let (_, scales) = try? resolveResize(input: xs, scales: constant(2)?.floatValues, sizes: constant(3)?.int64Values, attributes: r, ""),
                   resizeSpatialTables(input: xs, output: ys, scales: scales, roi: constant(1)?.floatValues, attributes: r) != nil {
                    main = .channelsLast
                }
                n.inputs = n.inputs.enumerated().map { k, v in v.map { ensure($0, k == 0 ? main : .plain) } }
                outLayout = main
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
            case .quantized(let q):
                // Kiln's kernels: pooling and scale-shift follow a channels-last input (plain
                // otherwise), a concatenation goes channels-last when any input is.
                let channelsLast: Bool
                if case .concat = q.op {
                    channelsLast = n.inputs.contains { $0.map { rank($0) == 4 && g.values[$0].layout == .channelsLast } ?? false }
                } else {
                    channelsLast = rank(n.inputs[0]!) == 4 && g.values[n.inputs[0]!].layout == .channelsLast
                }
                let main: Layout = channelsLast && out.map({ rank($0) == 4 }) == true ? .channelsLast : .plain
                n.inputs = n.inputs.map { $0.map { ensure($0, rank($0) == 4 ? main : .plain) } }
                outLayout = main
            case .concat:
                if let y = out, rank(y) == 4, n.inputs.contains(where: { $0.map { g.values[$0].layout == .channelsLast } ?? false }) {
                    n.inputs = n.inputs.map { $0.map { ensure($0, .channelsLast) } }
                    outLayout = .channelsLast
                }
            case .layoutConvert:
                // A conversion already in the graph keeps the layout it converts to.
                outLayout = out.map { g.values[$0].layout } ?? .plain
            default:
                preconditionFailure("\(n.op.name) has its own layout rule (OpTraits) but assignLayouts has none")
            }
        }
        for y in n.outputs { g.values[y].layout = n.outputs.count == 1 ? outLayout : .plain }
        nodes.append(n)
    }
    // Graph outputs are plain: convert at the end, the output keeping its name.
    for (j, o) in g.outputs.enumerated() where g.values[o].layout != .plain {
        var inner = g.values[o]
        inner.name += inner.layout == .blocked16 ? "_blocked" : "_nhwc"
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

/// Which layout the activations around convolutions get.
public enum LayoutPolicy: String, Sendable, CaseIterable {
    /// Blocked when the graph's conv work is mostly (70%) Winograd-able 3×3 convs, else channels-last.
    case auto
    case channelsLast = "nhwc"
    case blocked
}

/// Max or average pooling that the code generator gives to oneDNN, which runs it in the blocked
/// layout (the same test as the emitter's: `oneDNNPoolingRightPadding`).
func oneDNNPoolingTakesBlocked(_ n: Node, _ g: Graph) -> Bool {
    var average = false
    let p: PoolAttributes
    switch n.op {
    case .maxPool(let a): p = a
    case .averagePool(let a): p = a; average = true
    default: return false
    }
    guard let x = n.inputs[0], let xs = g.values[x].type.shape, xs.count == 4,
          let geo = try? windowGeometry(input: Array(xs.dropFirst(2)), kernel: p.kernelShape, strides: p.strides, pads: p.pads,
                                        dilations: p.dilations, autoPad: p.autoPad, ceilMode: p.ceilMode, n.label)
    else { return false }
    return oneDNNPoolingRightPadding(geo, average: average, countIncludePad: p.countIncludePad) != nil
}

/// The blocked layout pays when every conv is ungrouped, nothing but convs and pooling reads
/// the 4-D activations (no concatenation or elementwise op would need a converted copy), and
/// 3×3 stride-1 convs with channel counts in multiples of 16 (Winograd's) do at least 70% of
/// the convs' multiply-accumulates: below, the other convs run slower blocked than the Winograd
/// ones gain (docs/optimizations.md has the models measured).
func prefersBlockedLayout(_ g: Graph) -> Bool {
    var total = 0, winograd = 0
    for n in g.nodes {
        guard case .conv(let a) = n.op, let y = n.outputs.first, let ys = g.values[y].type.shape, ys.count == 4,
              g.values[y].type.elementType == .f32, let w = n.inputs[1], let ws = g.values[w].type.shape else { continue }
        if a.group != 1 { return false }
        let macs = shapeProduct(ys) * shapeProduct(Array(ws.dropFirst()))
        total += macs
        let strides = a.strides ?? [1, 1], dilations = a.dilations ?? [1, 1]
        if ws.count == 4, ws[2] == 3, ws[3] == 3, strides == [1, 1], dilations == [1, 1], ws[0] % 16 == 0, ws[1] % 16 == 0 {
            winograd += macs
        }
    }
    guard total > 0, winograd * 10 >= total * 7 else { return false }
    // Readers of 4-D activations (anything computed, not the graph's inputs): convs, pooling,
    // and shape-changing ends (global pooling, flatten).
    for n in g.nodes {
        for case let x? in n.inputs where g.values[x].type.rank == 4 && g.values[x].constant == nil {
            switch n.op {
            case .conv, .maxPool, .averagePool, .globalAveragePool, .globalMaxPool, .flatten, .reshape: continue
            default: if !g.inputs.contains(x) { return false }
            }
        }
    }
    return true
}
