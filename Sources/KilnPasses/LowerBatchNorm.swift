import KilnIR

/// Lowers a BatchNormalization that no convolution absorbed (DenseNet's pre-activation ones) to
/// a per-channel scale and shift with the statistics folded in: s = scale / sqrt(var + eps),
/// shift = bias − mean · s. Its activation then fuses onto it like onto a convolution.
///
///     before: %y = batch_norm(%x, %scale, %bias, %mean, %var); %r = relu(%y)
///     after:  %r = scale_shift(%x, %s, %shift) {post_ops=[relu]}   (after fusePostOps)
///
/// Needs constant f32 statistics. Runs after `foldBatchNorm`, before `fusePostOps`.
public func lowerBatchNorm(_ g: inout Graph) {
    for i in g.nodes.indices {
        guard case .batchNormalization(let eps) = g.nodes[i].op else { continue }
        let n = g.nodes[i]
        guard g.values[n.outputs[0]].type.elementType == .f32 else { continue }
        let params = n.inputs[1...4].map { $0.flatMap { g.values[$0].constant } }
        guard params.allSatisfy({ $0 != nil && $0!.elementType == .f32 }) else { continue }
        let (scale, bias, mean, variance) = (params[0]!, params[1]!, params[2]!, params[3]!)
        var s = [Float](repeating: 0, count: scale.count), shift = s
        for c in 0..<scale.count {
            s[c] = scale.floats[c] / (variance.floats[c] + eps).squareRoot()
            shift[c] = bias.floats[c] - mean.floats[c] * s[c]
        }
        let sID = g.addConstant("\(n.name)_scale", Tensor(.f32, shape: [s.count], floats: s))
        let hID = g.addConstant("\(n.name)_shift", Tensor(.f32, shape: [s.count], floats: shift))
        g.nodes[i].op = .channelScaleShift(postOps: [])
        g.nodes[i].inputs = [n.inputs[0], sID, hID]
    }
}
