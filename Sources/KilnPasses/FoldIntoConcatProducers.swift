import KilnIR

/// Moves a BatchNormalization, and then the activations, that follow a channel concatenation of
/// convolutions into the convolutions: each folds its slice of the statistics into its weights
/// and bias (as `foldBatchNorm` does) and takes the activations as post-ops, and the
/// concatenation is left to copy. MixNet's mixed convs (a Split, one conv per kernel size, a
/// Concat) are followed by BatchNormalization and ReLU or SiLU; without this they cost a
/// scale-and-shift pass over the concatenated tensor.
///
///     before: %a = conv(%x0, %w0, %b0); %b = conv(%x1, %w1, %b1); %c = concat(%a, %b) {axis=1}
///             %y = batch_norm(%c, %scale, %bias, %mean, %var); %r = relu(%y)
///     after:  %a = conv(%x0, %w0', %b0') {post_ops=[relu]}; %b = conv(%x1, %w1', %b1') {post_ops=[relu]}
///             %r = concat(%a, %b) {axis=1}
///
/// Every input of the concatenation must be the output of a conv read by it alone (once) and not
/// a graph output; the concatenation's output must be read by the BatchNormalization or the
/// activation alone and not be a graph output; statistics constant f32; the BatchNormalization
/// needs convs without post-ops, an activation must make a post-op list oneDNN computes
/// correctly for every conv. Runs after `foldBatchNorm` and before `lowerBatchNorm` and
/// `fusePostOps`.
public func foldIntoConcatProducers(_ g: inout Graph) {
    var changed = true
    while changed {
        changed = false
        let producers = g.producers()
        let consumers = g.consumers()
        let outputs = Set(g.outputs)
        for (ci, concat) in g.nodes.enumerated() {
            guard case .concat(let axis) = concat.op, let y = concat.outputs.first, !outputs.contains(y) else { continue }
            let rank = g.values[y].type.dims.count
            guard rank >= 3, axis == 1 || axis == 1 - rank, g.values[y].type.elementType == .f32 else { continue }
            // The convs, each read by the concatenation alone.
            var convs: [Int] = []
            for v in concat.inputs {
                guard let v, let p = producers[v], case .conv = g.nodes[p].op, consumers[v] == [ci], !outputs.contains(v),
                      !convs.contains(p) else { break }
                convs.append(p)
            }
            guard convs.count == concat.inputs.count else { continue }
            let readers = consumers[y]
            if readers.count == 1, case .batchNormalization(let eps) = g.nodes[readers[0]].op {
                if foldBatchNorm(&g, readers[0], eps: eps, into: convs) {
                    g.nodes[ci].outputs = g.nodes[readers[0]].outputs
                    g.nodes.remove(at: readers[0])
                    changed = true
                    break
                }
                continue
            }
            // An activation: one reader (relu, clip, ...) or SiLU's sigmoid and mul.
            guard let (postOp, gone) = activation(reading: y, readers: readers, in: g, consumers: consumers, outputs: outputs),
                  convs.allSatisfy({ expressible(g.nodes[$0], fusablePostOps(g.nodes[$0])! + [postOp]) }) else { continue }
            for p in convs { g.nodes[p].op = withPostOps(g.nodes[p].op, fusablePostOps(g.nodes[p])! + [postOp]) }
            g.nodes[ci].outputs = g.nodes[gone.last!].outputs
            for i in gone.sorted(by: >) { g.nodes.remove(at: i) }
            changed = true
            break
        }
    }
}

/// Folds BatchNormalization node `bi` (reading the concatenation of the convs' outputs, in order)
/// into the convs, each its slice of channels. False, and nothing changed, unless every conv is
/// one without post-ops whose weights and bias fold and the statistics are constant f32.
private func foldBatchNorm(_ g: inout Graph, _ bi: Int, eps: Float, into convs: [Int]) -> Bool {
    let bn = g.nodes[bi]
    let params = bn.inputs[1...4].map { $0.flatMap { g.values[$0].constant } }
    guard params.allSatisfy({ $0 != nil && $0!.elementType == .f32 }) else { return false }
    let (scale, bias, mean, variance) = (params[0]!, params[1]!, params[2]!, params[3]!)
    var slices: [Range<Int>] = []
    var offset = 0
    for p in convs {
        guard case .conv(let a) = g.nodes[p].op, a.postOps.isEmpty, let w = g.nodes[p].inputs[1],
              let wt = g.values[w].constant, wt.elementType == .f32,
              g.nodes[p].inputs.count < 3 || g.nodes[p].inputs[2] == nil || g.values[g.nodes[p].inputs[2]!].constant?.elementType == .f32
        else { return false }
        slices.append(offset..<(offset + wt.shape[0]))
        offset += wt.shape[0]
    }
    guard offset == scale.count else { return false }
    for (p, range) in zip(convs, slices) {
        guard case .conv(let a) = g.nodes[p].op else { return false }
        let s = range.map { scale.floats[$0] / (variance.floats[$0] + eps).squareRoot() }
        let folded = foldChannelAffine(&g, conv: p, channelAxis: 0, group: a.group, scale: s, name: "\(bn.name)_\(range.lowerBound)",
                                       bias: { b0, c in (b0 - mean.floats[range.lowerBound + c]) * s[c] + bias.floats[range.lowerBound + c] })
        guard folded else { return false }  // checked above: every conv's constants fold
    }
    return true
}
