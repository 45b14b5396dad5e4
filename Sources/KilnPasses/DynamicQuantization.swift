import KilnIR

/// Recognises the matrix products ONNX Runtime's `quantize_dynamic` writes, a DynamicQuantizeLinear
/// whose results a MatMulInteger reads, its s32 result cast to f32 and multiplied by the product of
/// the source's scale and the weights' constant scales, as one dynamically quantized matmul over
/// the DynamicQuantizeLinear's results, which then takes its bias and activation as post-ops.
///
///     before: %q, %s, %z = dynamic_quantize_linear(%x); %i = matmul_integer(%q, %w, %z, %wz)
///             %f = cast(%i) {to=f32}; %k = mul(%s, %ws); %y = mul(%f, %k)
///     after:  %q, %s, %z = dynamic_quantize_linear(%x)
///             %y = dynamic_quantized_matmul(%q, %s, %z, %w) {weights=s8(scales %ws)}
///
/// Needs constant s8 weights [K, N] with zero points all 0 (or none) and positive scales, one
/// or one per column; the MatMulInteger's and the cast's results read by the next step alone.
/// ConvInteger in the same chain (constant s8 weights, a scale per tensor or per output channel)
/// becomes DequantizeLinear of the source and an f32 conv by the dequantized weights: the same
/// function within f32 rounding, and then a conv like any other (bias, activations, oneDNN).
/// Other forms stay as they are (MatMulInteger and ConvInteger run as Kiln's exact loops). Runs
/// before `fusePostOps`; removes what the matches leave unread.
public func recognizeDynamicQuantization(_ g: inout Graph) {
    let uses = GraphUses(g)
    var matched = false
    defer { if matched { eliminateDeadCode(&g) } }
    for (mi, mul) in g.nodes.enumerated() {
        guard case .binary(.mul) = mul.op, mul.inputs.count == 2 else { continue }
        for (f, k) in [(mul.inputs[0], mul.inputs[1]), (mul.inputs[1], mul.inputs[0])] {
            guard let f, let k, let ci = uses.node(f), uses.only(f, readBy: mi), case .cast(to: .f32) = g.nodes[ci].op,
                  let i = g.nodes[ci].inputs[0], let ii = uses.node(i), uses.only(i, readBy: ci) else { continue }
            let mm = g.nodes[ii]
            guard mm.inputs.count >= 3, let q = mm.inputs[0], let z = mm.inputs[2], let di = uses.node(q),
                  case .dynamicQuantizeLinear = g.nodes[di].op, g.nodes[di].outputs[0] == q, g.nodes[di].outputs[2] == z,
                  let w = mm.inputs[1], let wt = g.values[w].constant, wt.elementType == .s8,
                  let ki = uses.node(k), case .binary(.mul) = g.nodes[ki].op else { continue }
            let wz = mm.inputs.count > 3 ? mm.inputs[3].flatMap { g.values[$0].constant } : nil
            if mm.inputs.count > 3, mm.inputs[3] != nil, wz == nil { continue }
            // The scale product: the source's scale times the weights' constant scales.
            let s = g.nodes[di].outputs[1], sk = g.nodes[ki].inputs
            guard sk.count == 2, sk.contains(s), let other = sk.first(where: { $0 != s }), let other,
                  let scales = g.values[other].constant, scales.elementType == .f32,
                  scales.floats.allSatisfy({ $0 > 0 && $0.isFinite }) else { continue }
            switch mm.op {
            case .matMulInteger:
                guard wt.rank == 2, scales.count == 1 || (scales.rank == 1 && scales.count == wt.shape[1]),
                      wz?.ints.allSatisfy({ $0 == 0 }) ?? true else { continue }
                let weights = Quantization(.s8, scales: scales.floats, zeroPoints: [Int32](repeating: 0, count: scales.count), axis: 1)
                g.nodes[mi] = Node(name: mm.name, op: .dynamicQuantizedMatMul(DynamicQuantizedMatMulAttributes(weights: weights)),
                                   inputs: [q, s, z, w], outputs: mul.outputs, origin: mm.origin)
            case .convInteger(let a):
                // The f32 conv of the dequantized source by the dequantized weights: the same
                // function within f32 rounding, on oneDNN's f32 conv.
                let m = wt.shape[0], per = shapeProduct(Array(wt.shape.dropFirst()))
                let channelScales = scales.count == 1 || (scales.count == m && scales.shape.dropFirst().allSatisfy { $0 == 1 }
                                                          && scales.rank == wt.rank - 1)
                guard channelScales, wz.map({ $0.count == 1 || $0.count == m }) ?? true else { continue }
                let real = Tensor(.f32, shape: wt.shape, floats: wt.ints.indices.map { i in
                    let oc = i / per
                    let zero = wz.map { $0.count == 1 ? $0.ints[0] : $0.ints[oc] } ?? 0
                    return Float(wt.ints[i] - zero) * (scales.count == 1 ? scales.floats[0] : scales.floats[oc])
                })
                let wf = g.addConstant("\(g.values[w].name)_dequantized", real)
                let x = g.addValue("\(g.values[q].name)_dequantized", TensorType(.f32, dims: g.values[q].type.dims))
                g.nodes[ci] = Node(name: "\(mm.name)_dequantize", op: .dequantizeLinear(axis: 1), inputs: [q, s, z], outputs: [x], origin: mm.origin)
                g.nodes[mi] = Node(name: mm.name, op: .conv(a), inputs: [x, wf], outputs: mul.outputs, origin: mm.origin)
            default:
                continue
            }
            matched = true
            break
        }
    }
}

/// `--quantize dynamic`: every MatMul or Gemm with constant 2-D f32 weights becomes a dynamically
/// quantized matmul: the weights s8, symmetric, per column (scale max|w| / 127), quantized here;
/// the source quantized when the model runs by a DynamicQuantizeLinear (u8, per tensor), one for
/// every matmul that reads the same source; the bias and post-ops kept. Gemm needs alpha 1, A not
/// transposed and its C (if any) a bias over the columns with beta 1. Everything else stays f32.
/// Runs after the f32 fusions (the matmuls have their bias and activations). Returns the names
/// of the matmuls it quantized.
@discardableResult
public func quantizeDynamically(_ g: inout Graph) -> [String] {
    var quantizedSource: [ValueID: (q: ValueID, scale: ValueID, zero: ValueID)] = [:]
    var nodes: [Node] = []
    var names: [String] = []
    for n in g.nodes {
        guard let (weights, bias, postOps) = dynamicMatMulOperands(&g, n), let x = n.inputs[0],
              g.values[x].type.elementType == .f32, let xs = g.values[x].type.shape, xs.count >= 2 else {
            nodes.append(n)
            continue
        }
        let source: (q: ValueID, scale: ValueID, zero: ValueID)
        if let s = quantizedSource[x] {
            source = s
        } else {
            let name = g.values[x].name
            source = (g.addValue("\(name)_quantized", TensorType(.u8, xs)), g.addValue("\(name)_scale", TensorType(.f32, [])),
                      g.addValue("\(name)_zero_point", TensorType(.u8, [])))
            quantizedSource[x] = source
            nodes.append(Node(name: "\(name)_dynamic_quantize", op: .dynamicQuantizeLinear, inputs: [x],
                              outputs: [source.q, source.scale, source.zero], origin: n.origin))
        }
        let (wq, p) = quantizedColumns(weights)
        let w = g.addConstant("\(g.values[n.outputs[0]].name)_weights", wq)
        nodes.append(Node(name: n.name, op: .dynamicQuantizedMatMul(DynamicQuantizedMatMulAttributes(weights: p, postOps: postOps)),
                          inputs: [source.q, source.scale, source.zero, w] + (bias.map { [$0] } ?? []), outputs: n.outputs, origin: n.origin))
        names.append(n.name)
    }
    g.nodes = nodes
    return names
}

/// The f32 weights [K, N], bias (f32 [N]) and post-ops of a MatMul or Gemm that
/// `quantizeDynamically` can take; nil for any other node.
private func dynamicMatMulOperands(_ g: inout Graph, _ n: Node) -> (weights: Tensor, bias: ValueID?, postOps: [PostOp])? {
    guard n.inputs.count >= 2, let wv = n.inputs[1], var w = g.values[wv].constant, w.elementType == .f32, w.rank == 2,
          let ys = g.values[n.outputs[0]].type.shape, let columns = ys.last else { return nil }
    var bias = n.inputs.count > 2 ? n.inputs[2] : nil
    let postOps: [PostOp]
    switch n.op {
    case .matMul(let a):
        postOps = a.postOps
    case .gemm(let a):
        guard a.alpha == 1, !a.transA else { return nil }
        if a.transB {
            let (r, c) = (w.shape[0], w.shape[1])
            w = Tensor(.f32, shape: [c, r], floats: (0..<(r * c)).map { k in w.floats[(k % r) * c + k / r] })
        }
        if let b = bias {
            guard a.beta == 1, let bt = g.values[b].constant, bt.elementType == .f32, bt.shape == [columns] || bt.shape == [1, columns] else { return nil }
            if bt.rank == 2 { bias = g.addConstant("\(g.values[b].name)_n", bt.reshaped([columns])) }
        }
        postOps = a.postOps
    default:
        return nil
    }
    guard w.shape[1] == columns, !postOps.contains(.sum), PostOp.oneDNNLowering(postOps) != nil else { return nil }
    return (w, bias, postOps)
}

/// Weights [K, N] quantized to s8 per column, symmetric: scale max|w| / 127 (1 for a column of zeros).
func quantizedColumns(_ w: Tensor) -> (Tensor, Quantization) {
    let (k, n) = (w.shape[0], w.shape[1])
    let f = w.floats
    var scales = [Float](repeating: 0, count: n)
    for r in 0..<k { for c in 0..<n { scales[c] = max(scales[c], abs(f[r * n + c])) } }
    scales = scales.map { $0 > 0 && $0.isFinite ? $0 / 127 : 1 }
    let q = Quantization(.s8, scales: scales, zeroPoints: [Int32](repeating: 0, count: n), axis: 1)
    return (Tensor(.s8, shape: [k, n], ints: f.indices.map { q.quantize(f[$0], $0 % n) }), q)
}
