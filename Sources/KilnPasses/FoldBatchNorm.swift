import KilnIR

/// Folds an inference BatchNormalization into the convolution (or transposed convolution)
/// that feeds it: W' = W · s, B' = (B − mean) · s + bias with s = scale / sqrt(var + eps).
///
///     before: %c = conv(%x, %w, %b); %y = batch_norm(%c, %scale, %bias, %mean, %var)
///     after:  %y = conv(%x, %w', %b')
///
/// Needs constant weights and statistics, and the convolution's output read by the
/// BatchNormalization alone. Runs after `inferShapes`.
public func foldBatchNorm(_ g: inout Graph) {
    let producers = g.producers()
    var consumers = g.consumers()
    let outputs = Set(g.outputs)
    var removed = Set<Int>()
    for (bi, bn) in g.nodes.enumerated() {
        guard case .batchNormalization(let eps) = bn.op, let c = bn.inputs[0], let pi = producers[c],
              consumers[c] == [bi], !outputs.contains(c) else { continue }
        let params = bn.inputs[1...4].map { $0.flatMap { g.values[$0].constant } }
        guard params.allSatisfy({ $0 != nil && $0!.elementType == .f32 }) else { continue }
        let (scale, bias, mean, variance) = (params[0]!, params[1]!, params[2]!, params[3]!)
        let conv = g.nodes[pi]
        let channelAxis: Int
        let group: Int
        switch conv.op {
        case .conv(let a) where a.postOps.isEmpty: channelAxis = 0; group = a.group
        case .convTranspose(let a): channelAxis = 1; group = a.conv.group
        default: continue
        }
        let channels = scale.count
        let s = (0..<channels).map { scale.floats[$0] / (variance.floats[$0] + eps).squareRoot() }
        guard foldChannelAffine(&g, conv: pi, channelAxis: channelAxis, group: group, scale: s, name: bn.name,
                                bias: { b0, c in (b0 - mean.floats[c]) * s[c] + bias.floats[c] }) else { continue }
        consumers.append(contentsOf: [[], []])
        g.nodes[pi].outputs = bn.outputs
        removed.insert(bi)
    }
    g.nodes = g.nodes.enumerated().filter { !removed.contains($0.offset) }.map(\.element)
}

/// Folds a per-output-channel affine map after conv node `pi` into its constant weights and
/// bias: W' = W · s, and B'[c] = bias(B[c], c) (B 0 where the conv has none). False, and nothing
/// changed, where the weights or the bias are not constant f32 tensors.
func foldChannelAffine(_ g: inout Graph, conv pi: Int, channelAxis: Int, group: Int, scale s: [Float], name: String,
                       bias: (Float, Int) -> Float) -> Bool {
    let conv = g.nodes[pi]
    guard let w = conv.inputs[1], let wt = g.values[w].constant, wt.elementType == .f32 else { return false }
    let b = conv.inputs.count > 2 ? conv.inputs[2] : nil
    let bt = b.flatMap { g.values[$0].constant }
    if b != nil && (bt == nil || bt!.elementType != .f32) { return false }
    var wf = wt.floats
    let shape = wt.shape
    if channelAxis == 0 {
        let inner = wf.count / shape[0]
        for oc in 0..<shape[0] { for i in 0..<inner { wf[oc * inner + i] *= s[oc] } }
    } else {
        // ConvTranspose weights [C, M/g, k...]: output channel = group · (M/g) + j.
        let mg = shape[1], inner = shapeProduct(Array(shape.dropFirst(2)))
        let cg = shape[0] / group
        for ic in 0..<shape[0] {
            let grp = ic / cg
            for j in 0..<mg { for i in 0..<inner { wf[(ic * mg + j) * inner + i] *= s[grp * mg + j] } }
        }
    }
    let newB = s.indices.map { bias(bt?.floats[$0] ?? 0, $0) }
    let wID = g.addConstant("\(g.values[w].name)_bn", Tensor(.f32, shape: shape, floats: wf))
    let bID = g.addConstant("\(name)_bias", Tensor(.f32, shape: [s.count], floats: newB))
    var inputs = conv.inputs
    while inputs.count < 3 { inputs.append(nil) }
    inputs[1] = wID
    inputs[2] = bID
    g.nodes[pi].inputs = inputs
    return true
}
