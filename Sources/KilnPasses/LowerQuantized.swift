import KilnIR
import KilnReference

/// Lowers the quantize/dequantize (QDQ) form of a quantized graph to quantized ops, keeping every
/// scale and zero point as the graph gives it: a convolution whose source and weights come
/// through DequantizeLinear becomes a `quantizedConv` that reads the u8/s8 source and the s8
/// weights directly, and writes the QuantizeLinear that follows it (u8/s8), or f32 when none does.
///
///     before: %x = dequantize_linear(%xq, 0.02, 128); %w = dequantize_linear(%wq : s8, %sw[64], axis=0)
///             %c = conv(%x, %w, %b) {post_ops=[relu]}; %y = quantize_linear(%c, 0.05, 0)
///     after:  %y = quantized_conv(%xq, %wq, %b) {post_ops=[relu] input=u8(s=0.02, z=128)
///                  weights=s8(axis 0: 64 scales ...) output=u8(s=0.05, z=0)}
///
/// A residual sum fused into the conv keeps its addend quantized when the addend comes through
/// DequantizeLinear with the output's type. Then the DequantizeLinear nodes of constants that no
/// conv took fold into f32 constants (`inferShapes` keeps them unfolded so that this pass sees
/// the weights' integers). Runs after post-op and sum fusion: the post-ops that fusion put on
/// the f32 conv apply to the real values the quantized conv computes.
///
/// Returns, for a graph with quantization in it, each conv and matrix product that stays f32
/// and why ("node: why"), for the compile report.
///
/// Average pooling, concatenation and per-channel scale-shift between dequantization and
/// quantization become `quantized` ops the same way (`quantize(avg_pool(dequantize(x)))` reads
/// and writes integers).
@discardableResult
public func lowerQuantized(_ g: inout Graph) -> [String] {
    let uses = GraphUses(g)
    let quantizedGraph = g.nodes.contains { if case .dequantizeLinear = $0.op { return true } else { return false } }
    var removed = Set<Int>()
    var keptFloat: [String] = []
    for i in g.nodes.indices {
        let lowered: (node: Node, absorbed: [Int])?
        switch g.nodes[i].op {
        case .conv(let a): lowered = lowerConv(g.nodes[i], a, uses, removed)
        case .matMul, .gemm: lowered = lowerMatMul(&g, i, uses, removed)
        case .averagePool, .globalAveragePool, .concat, .channelScaleShift:
            lowered = lowerRequantizing(g.nodes[i], uses, removed)
            guard lowered != nil else { continue }
        case .convTranspose:
            if quantizedGraph { keptFloat.append("\(g.nodes[i].label): FP32 (quantized transposed convolutions are not supported yet)") }
            continue
        default: continue
        }
        guard let lowered else {
            if quantizedGraph { keptFloat.append("\(g.nodes[i].label): FP32 (\(whyFloat(g.nodes[i], uses)))") }
            continue
        }
        g.nodes[i] = lowered.node
        removed.formUnion(lowered.absorbed)
    }
    g.nodes = g.nodes.enumerated().filter { !removed.contains($0.offset) }.map(\.element)
    eliminateDeadCode(&g)
    foldDequantizedConstants(&g)
    return keptFloat
}

/// Why a conv or matrix product of a quantized graph was not lowered.
private func whyFloat(_ n: Node, _ uses: GraphUses) -> String {
    let g = uses.graph
    guard dequantizedActivation(n.inputs[0], uses) != nil else {
        return "its input is not a u8/s8 tensor dequantized per tensor"
    }
    guard let dw = uses.node(n.inputs[1]), case .dequantizeLinear = g.nodes[dw].op, let wq = g.nodes[dw].inputs[0],
          g.values[wq].constant?.elementType == .s8 else {
        return "its weights are not constant s8 values behind DequantizeLinear"
    }
    if case .gemm(let a) = n.op, a.alpha != 1 || a.transA || a.beta != 1 {
        return "Gemm with alpha or beta other than 1, or a transposed A"
    }
    return "its weights are not symmetric per tensor or per output channel, its bias is not a constant, or oneDNN cannot apply its post-ops in int8"
}

/// A DequantizeLinear node writing `v`, per tensor, of a non-constant u8/s8 value: that value and its parameters.
func dequantizedActivation(_ v: ValueID?, _ uses: GraphUses) -> (ValueID, Quantization)? {
    let g = uses.graph
    guard let ni = uses.node(v), case .dequantizeLinear = g.nodes[ni].op, let q = g.nodes[ni].inputs[0] else { return nil }
    let t = g.values[q].type.elementType
    guard t == .u8 || t == .s8, let p = perTensorQuantization(g.nodes[ni], g, integer: q) else { return nil }
    return (q, p)
}

/// A DequantizeLinear node writing `v` from constant s8 weights, symmetric, per tensor or per
/// output channel (axis 0): the weights and their parameters.
private func dequantizedWeights(_ v: ValueID?, _ uses: GraphUses) -> (ValueID, Quantization)? {
    let g = uses.graph
    guard let ni = uses.node(v), case .dequantizeLinear(let axis) = g.nodes[ni].op, let wq = g.nodes[ni].inputs[0],
          let w = g.values[wq].constant, w.elementType == .s8, w.rank >= 3,
          let s = g.nodes[ni].inputs[1], let scale = g.values[s].constant, scale.elementType == .f32,
          scale.floats.allSatisfy({ $0 > 0 && $0.isFinite }) else { return nil }
    if scale.count > 1 {
        guard scale.rank == 1, scale.count == w.shape[0], axis == 0 || axis == -w.rank else { return nil }
    }
    if g.nodes[ni].inputs.count > 2, let z = g.nodes[ni].inputs[2] {
        guard let zt = g.values[z].constant, zt.ints.allSatisfy({ $0 == 0 }) else { return nil }
    }
    return (wq, Quantization(.s8, scales: scale.floats, zeroPoints: [Int32](repeating: 0, count: scale.count), axis: 0))
}

/// Conv node `n` as a quantized conv when its source and weights are dequantized, with the
/// QuantizeLinear node it absorbs (nil when its output stays f32).
private func lowerConv(_ n: Node, _ a: ConvAttributes, _ uses: GraphUses, _ removed: Set<Int>) -> (node: Node, absorbed: [Int])? {
    let g = uses.graph
    guard let (xq, input) = dequantizedActivation(n.inputs[0], uses),
          let (wq, weights) = dequantizedWeights(n.inputs[1], uses),
          shapeProduct(g.values[n.outputs[0]].type.shape ?? [0]) > 0, shapeProduct(g.values[xq].type.shape ?? [0]) > 0 else { return nil }
    let bias = n.inputs.count > 2 ? n.inputs[2] : nil
    if let b = bias, g.values[b].constant == nil { return nil }
    let y = n.outputs[0]
    var output = quantizeReading(y, uses, removed)
    var inputs: [ValueID?] = [xq, wq, bias]
    var addendQuantization: Quantization?
    if a.postOps.contains(.sum), n.inputs.count > 3, let addend = n.inputs[3] {
        if let o = output, let (aq, p) = dequantizedActivation(addend, uses), p.type == o.0.type {
            inputs.append(aq)
            addendQuantization = p
        } else {
            inputs.append(addend)
        }
    }
    var q = QuantizedConvAttributes(conv: a, input: input, weights: weights, output: output?.0, addend: addendQuantization)
    // oneDNN reads the addend from the destination's buffer, in the destination's type: a
    // quantized output takes only a quantized addend.
    let f32Addend = inputs.count > 3 && addendQuantization == nil
    if output != nil, f32Addend || q.oneDNNInt8PostOps == nil {
        // Keep the result in f32, and the QuantizeLinear.
        q.output = nil
        q.addend = nil
        output = nil
        if inputs.count > 3 { inputs[3] = n.inputs[3] }
    }
    guard q.oneDNNInt8PostOps != nil else { return nil }
    var lowered = n
    lowered.op = .quantizedConv(q)
    lowered.inputs = inputs
    if let o = output { lowered.outputs = [o.1] }
    return (lowered, output.map { [$0.2] } ?? [])
}

/// Average pooling, concatenation or per-channel scale-shift (a BatchNormalization that no conv
/// absorbed) node `n` as a `quantized` op when its data inputs are dequantized per tensor and a
/// QuantizeLinear alone reads the result: the kernel reads the integers and
/// writes the output's (requantizing), instead of dequantizing to f32 and quantizing back.
/// A concatenation's inputs and output share one integer type; one whose inputs all have the
/// output's parameters is left to `sinkDequantize` (a plain copy).
private func lowerRequantizing(_ n: Node, _ uses: GraphUses, _ removed: Set<Int>) -> (node: Node, absorbed: [Int])? {
    let g = uses.graph
    guard !n.inputs.isEmpty, n.outputs.count == 1, let (output, y, c) = quantizeReading(n.outputs[0], uses, removed) else { return nil }
    // The inputs that carry quantized data; a scale-shift's per-channel factors stay f32.
    var data = n.inputs.indices
    if case .channelScaleShift = n.op { data = 0..<1 }
    var sources = n.inputs, params = [Quantization?](repeating: nil, count: n.inputs.count)
    for k in data {
        guard let (q, p) = dequantizedActivation(n.inputs[k], uses) else { return nil }
        sources[k] = q
        params[k] = p
    }
    if case .concat = n.op {
        guard params.allSatisfy({ $0?.type == output.type }), !params.allSatisfy({ $0 == output }) else { return nil }
    } else {
        guard let s = g.values[sources[0]!].type.shape, (3...5).contains(s.count), shapeProduct(s) > 0 else { return nil }
    }
    var lowered = n
    lowered.op = .quantized(QuantizedOpAttributes(op: n.op, inputs: params, output: output))
    lowered.inputs = sources
    lowered.outputs = [y]
    return (lowered, [c])
}

/// The QuantizeLinear (per tensor, constant parameters) that alone reads `y`: its parameters,
/// its output and its index.
func quantizeReading(_ y: ValueID, _ uses: GraphUses, _ removed: Set<Int>) -> (Quantization, ValueID, Int)? {
    let g = uses.graph
    guard let c = uses.consumers[y].first, uses.only(y, readBy: c), !removed.contains(c),
          case .quantizeLinear = g.nodes[c].op, g.nodes[c].inputs.first == y,
          let p = perTensorQuantization(g.nodes[c], g, integer: g.nodes[c].outputs[0]) else { return nil }
    return (p, g.nodes[c].outputs[0], c)
}

/// MatMul or Gemm node `i` as a quantized matmul when its source is dequantized and its weights
/// are dequantized constants: Gemm with alpha 1, A not transposed, and C (if any) a constant
/// bias over the columns with beta 1; MatMul with 2-D weights, taking a following Add of a
/// constant bias. The weights are stored [K, N] (a transposed Gemm's are transposed here).
private func lowerMatMul(_ g: inout Graph, _ i: Int, _ uses: GraphUses, _ removed: Set<Int>) -> (node: Node, absorbed: [Int])? {
    let n = g.nodes[i]
    var transB = false, postOps: [PostOp] = []
    var bias: ValueID?
    var absorbed: [Int] = []
    var y = n.outputs[0]
    let ys = g.values[y].type.shape ?? [0]
    guard let columns = ys.last, shapeProduct(ys) > 0 else { return nil }
    func isBias(_ v: ValueID?) -> Bool {
        guard let v, let c = g.values[v].constant, c.elementType == .f32 else { return false }
        return c.shape == [columns] || c.shape == [1, columns]
    }
    switch n.op {
    case .gemm(let a):
        guard a.alpha == 1, !a.transA else { return nil }
        transB = a.transB
        postOps = a.postOps
        if n.inputs.count > 2, let c = n.inputs[2] {
            guard a.beta == 1, isBias(c) else { return nil }
            bias = c
        }
    case .matMul(let a):
        postOps = a.postOps
        if n.inputs.count > 2, let c = n.inputs[2] {
            // A bias fused by fusePostOps.
            guard isBias(c) else { return nil }
            bias = c
        } else if a.postOps.isEmpty, let c = uses.consumers[y].first, uses.only(y, readBy: c), !removed.contains(c), case .binary(.add) = g.nodes[c].op,
           let other = g.nodes[c].inputs.first(where: { $0 != y }), isBias(other),
           g.values[g.nodes[c].outputs[0]].type == g.values[y].type {
            bias = other
            absorbed.append(c)
            y = g.nodes[c].outputs[0]
        }
    default: return nil
    }
    guard let (aq, input) = dequantizedActivation(n.inputs[0], uses), g.values[aq].type.rank >= 2,
          let dw = uses.node(n.inputs[1]), case .dequantizeLinear(let axis) = g.nodes[dw].op, let wq = g.nodes[dw].inputs[0],
          var w = g.values[wq].constant, w.elementType == .s8, w.rank == 2,
          let s = g.nodes[dw].inputs[1], let scale = g.values[s].constant, scale.elementType == .f32,
          scale.floats.allSatisfy({ $0 > 0 && $0.isFinite }) else { return nil }
    if g.nodes[dw].inputs.count > 2, let z = g.nodes[dw].inputs[2] {
        guard let zt = g.values[z].constant, zt.ints.allSatisfy({ $0 == 0 }) else { return nil }
    }
    // Per column: axis 1 of [K, N], or axis 0 of a transposed Gemm's [N, K].
    let columnAxis = transB ? 0 : 1
    if scale.count > 1 {
        guard scale.rank == 1, scale.count == columns, axis == columnAxis || axis == columnAxis - 2 else { return nil }
    }
    let weights = Quantization(.s8, scales: scale.floats, zeroPoints: [Int32](repeating: 0, count: scale.count), axis: 1)
    var weightValue = wq
    if transB {
        let (r, c) = (w.shape[0], w.shape[1])
        w = Tensor(.s8, shape: [c, r], ints: (0..<(r * c)).map { k in w.ints[(k % r) * c + k / r] })
        weightValue = g.addConstant("\(g.values[wq].name)_kn", w)
    }
    var biasValue = bias
    if let b = bias, let bt = g.values[b].constant, bt.rank == 2 {
        biasValue = g.addConstant("\(g.values[b].name)_n", bt.reshaped([columns]))
    }
    var q = QuantizedMatMulAttributes(input: input, weights: weights, output: nil, postOps: postOps)
    var outputs = [y]
    if let (p, out, c) = quantizeReading(y, uses, removed) {
        q.output = p
        if q.oneDNNInt8PostOps != nil {
            outputs = [out]
            absorbed.append(c)
        } else {
            q.output = nil
        }
    }
    guard q.oneDNNInt8PostOps != nil else { return nil }
    return (Node(name: n.name, op: .quantizedMatMul(q), inputs: [aq, weightValue, biasValue], outputs: outputs, origin: n.origin), absorbed)
}

/// Folds DequantizeLinear nodes whose operands are all constant.
private func foldDequantizedConstants(_ g: inout Graph) {
    var folded = Set<Int>()
    for (i, n) in g.nodes.enumerated() {
        guard case .dequantizeLinear = n.op else { continue }
        let ins = n.inputs.map { $0.flatMap { g.values[$0].constant } }
        guard zip(n.inputs, ins).allSatisfy({ $0.0 == nil || $0.1 != nil }),
              let out = try? evaluateNode(n, ins).first else { continue }
        g.values[n.outputs[0]].constant = out
        folded.insert(i)
    }
    g.nodes = g.nodes.enumerated().filter { !folded.contains($0.offset) }.map(\.element)
}
