import KilnIR

/// Drops the kernel taps of a convolution that only ever read padding: along each spatial axis,
/// the leading and trailing taps that no output position brings inside the input. Exact (those
/// taps multiply zeros); the conv gets a smaller kernel and smaller pads, and the same output.
/// DeepLabV3's atrous branch of dilation 36 over a 32×32 map becomes a 1×1 conv.
///
///     before: %y = conv(%x, %w) {dilations=[36, 36] pads=[36, 36, 36, 36]} : f32[1x256x32x32]  (%w 3×3)
///     after:  %y = conv(%x, %w) {dilations=[36, 36] pads=[0, 0, 0, 0]} : f32[1x256x32x32]    (%w its centre, 1×1)
///
/// Only convs with constant f32 weights; a weight read elsewhere is copied, not changed.
public func trimConvTaps(_ g: inout Graph) {
    let consumers = g.consumers()
    for i in g.nodes.indices {
        guard case .conv(var a) = g.nodes[i].op, let x = g.nodes[i].inputs[0], g.nodes[i].inputs.count > 1,
              let wid = g.nodes[i].inputs[1], let w = g.values[wid].constant, w.elementType == .f32, w.rank >= 3,
              let xs = g.values[x].type.shape, xs.count == w.rank,
              let geo = try? windowGeometry(input: Array(xs.dropFirst(2)), kernel: Array(w.shape.dropFirst(2)), strides: a.strides,
                                            pads: a.pads, dilations: a.dilations, autoPad: a.autoPad, g.nodes[i].label),
              geo.output.allSatisfy({ $0 > 0 }) else { continue }
        let n = geo.kernel.count
        var first = [Int](repeating: 0, count: n), last = geo.kernel.map { $0 - 1 }
        for d in 0..<n {
            let s = geo.strides[d], input = geo.input[d], count = geo.output[d]
            // Tap k reads positions k·dilation − padBegin + o·stride for o in 0..<count.
            func used(_ k: Int) -> Bool {
                let lo = k * geo.dilations[d] - geo.padsBegin[d]
                let o = lo >= 0 ? 0 : (-lo + s - 1) / s
                return o < count && lo + o * s < input
            }
            while first[d] < last[d] && !used(first[d]) { first[d] += 1 }
            while last[d] > first[d] && !used(last[d]) { last[d] -= 1 }
            if !used(first[d]) { first[d] = 0; last[d] = geo.kernel[d] - 1 }  // no tap reads the input: leave it
        }
        guard first.contains(where: { $0 > 0 }) || zip(last, geo.kernel).contains(where: { $0 < $1 - 1 }) else { continue }
        var pb = geo.padsBegin, pe = geo.padsEnd
        for d in 0..<n {
            pb[d] -= first[d] * geo.dilations[d]
            pe[d] -= (geo.kernel[d] - 1 - last[d]) * geo.dilations[d]
        }
        guard pb.allSatisfy({ $0 >= 0 }), pe.allSatisfy({ $0 >= 0 }) else { continue }
        // The kept taps, [O, I/g, first...last per axis].
        let kept = (0..<n).map { last[$0] - first[$0] + 1 }
        let shape = Array(w.shape.prefix(2)) + kept
        var src = [Int](repeating: 1, count: w.rank)
        for d in stride(from: w.rank - 2, through: 0, by: -1) { src[d] = src[d + 1] * w.shape[d + 1] }
        var values: [Float] = []
        values.reserveCapacity(shapeProduct(shape))
        forEachIndex(shape) { _, idx in
            var off = idx[0] * src[0] + idx[1] * src[1]
            for d in 0..<n { off += (idx[2 + d] + first[d]) * src[2 + d] }
            values.append(w.floats[off])
        }
        let trimmed = Tensor(.f32, shape: shape, floats: values)
        if consumers[wid].count == 1 {
            g.values[wid].constant = trimmed
            g.values[wid].type = trimmed.type
        } else {
            g.nodes[i].inputs[1] = g.addConstant("\(g.values[wid].name)_trimmed", trimmed)
        }
        a.kernelShape = kept
        a.pads = pb + pe
        a.autoPad = .notSet
        g.nodes[i].op = .conv(a)
    }
}
