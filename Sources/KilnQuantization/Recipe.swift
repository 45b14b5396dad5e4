import KilnIR

/// Kiln's own quantization of an f32 graph (`kiln compile --quantize int8`), by the X86 recipe,
/// in two steps around a calibration: `planQuantization` decides which nodes run int8 and
/// which values carry quantized data (the values to observe); `insertQuantization` writes the
/// QuantizeLinear/DequantizeLinear pairs the calibration's parameters give, in the form a QDQ
/// graph arrives in, so that `Pipeline.lower` turns them into quantized ops as it does for
/// ONNX Runtime's and PyTorch's graphs.
///
/// Runs on the graph after the f32 fusions (`Pipeline.fuseFloat`): a conv carries its folded
/// BatchNorm, its activation and its residual sum, so the recipe's patterns are single nodes.
///
///     before: %c = conv(%x, %w, %b) {post_ops=[relu]}; %p = max_pool(%c); %y = conv(%p, %w2, %b2)
///     after:  %xq = quantize_linear(%x, sx, zx); %xd = dequantize_linear(%xq, sx, zx)
///             %wd = dequantize_linear(%wq : s8, %sw[64], axis=0)
///             %c = conv(%xd, %wd, %b) {post_ops=[relu]}; %cq = quantize_linear(%c, sc, zc); %cd = dequantize_linear(%cq, sc, zc)
///             %p = max_pool(%cd); %pq = quantize_linear(%p, sc, zc); ...   (max pooling shares its input's parameters)
///
/// The recipe: activations u8, per tensor, affine; weights of convs and matrix products s8,
/// symmetric, per output channel (scale max|w| / 127: no weight clips); bias f32. Quantized:
/// convs (with their post-ops and residual sum), matrix products with constant weights, adds
/// of two activations whose result an int8 op reads (not a transformer's residual add before
/// its LayerNorm), average and global average pooling, and — sharing their input's
/// parameters — max pooling, concatenation and the ops that only move values (reshape, flatten,
/// squeeze, unsqueeze, transpose, slice, gather, channel shuffles, depth-to-space and back, tile,
/// expand, nearest resize) between them. Everything else stays f32. A value one elementwise loop
/// computes and consumes (an add's operand `x·s`, or `a + b` before `+ c`) is not quantized: it
/// never reaches memory.
public struct QuantizationPlan: Sendable {
    /// Sets of values that share one scale and zero point (a max pooling's input and output, a
    /// concatenation's inputs and output, ...), each in graph order.
    public var groups: [[ValueID]]
    /// Each value's group.
    public var groupOf: [ValueID: Int]
    /// Indices of the nodes that run on quantized values.
    public var quantizedNodes: Set<Int>
    /// Each conv and matrix product, and each other node the recipe quantizes: "node: int8" or
    /// "node: FP32 (why)", in graph order.
    public var decisions: [String]
    /// The nodes that compute in int8 (convs, matrix products, adds, average poolings), in graph
    /// order: the layers a precision plan may keep FP32.
    public var layers: [Int]
    /// Every node's precision and why, by name: "int8", "int8 (...)" or "FP32: why".
    public var precisionOf: [String: String] = [:]

    /// The values whose ranges the calibration must observe.
    public var observed: [ValueID] { groups.flatMap { $0 } }
}

/// Which nodes of the fused f32 graph `g` run int8 and which values are quantized. Nodes named in
/// `keepFloat` stay FP32 whatever the recipe says, the reason given being the one recorded.
public func planQuantization(_ g: Graph, keepFloat: [String: String] = [:]) -> QuantizationPlan {
    var parent = Array(g.values.indices)
    func find(_ v: ValueID) -> ValueID {
        var v = v
        while parent[v] != v { parent[v] = parent[parent[v]]; v = parent[v] }
        return v
    }
    func union(_ a: ValueID, _ b: ValueID) { parent[find(a)] = find(b) }
    func isActivation(_ v: ValueID?) -> Bool {
        guard let v else { return false }
        return g.values[v].constant == nil && g.values[v].type.elementType == .f32 && (g.values[v].type.shape.map { shapeProduct($0) > 0 } ?? false)
    }
    let producers = g.producers(), consumers = g.consumers(), graphOutputs = Set(g.outputs)
    func isStep(_ n: Node) -> Bool {
        n.op.traits.elementwiseStep && n.outputs.count == 1 && (n.inputs + n.outputs).allSatisfy { $0.map { g.values[$0].type.elementType == .f32 } ?? true }
    }
    /// Whether `v` stays in registers: an elementwise op's result that one elementwise op of its
    /// shape alone reads, so that both are one loop (`fuseElementwise`). Quantizing it would only
    /// round it.
    func staysInLoop(_ v: ValueID?) -> Bool {
        guard let v, !graphOutputs.contains(v), consumers[v].count == 1, let p = producers[v] else { return false }
        let reader = g.nodes[consumers[v][0]]
        return isStep(g.nodes[p]) && isStep(reader) && g.values[v].type == g.values[reader.outputs[0]].type
    }
    /// Whether an int8 op would read `v` quantized: a conv, matrix product, add or pooling taking
    /// it as a data operand, directly or through ops that move values. An add whose result no
    /// such op reads (a transformer's residual add before its LayerNorm, an output) stays f32:
    /// quantizing it would only round it.
    func readInt8(_ v: ValueID, depth: Int = 0) -> Bool {
        guard depth < 64 else { return true }
        return consumers[v].contains { c in
            let n = g.nodes[c]
            // An add reading it counts as int8 (whether that add's own result is read in int8 is its own question).
            switch KilnQuantization.recipe(n, g, isActivation, staysInLoop, { _ in true }) {
            case .compute(let data, _): return data.contains { n.inputs[$0] == v }
            case .passThrough(let data):
                return data.contains { n.inputs[$0] == v } && n.outputs.contains { readInt8($0, depth: depth + 1) }
            case .float, .notQuantized: return false
            }
        }
    }
    func recipe(_ n: Node) -> RecipeVerdict { KilnQuantization.recipe(n, g, isActivation, staysInLoop, { readInt8($0) }) }
    var quantized = Set<ValueID>(), quantizedNodes = Set<Int>(), decisions: [String] = [], layers: [Int] = []
    // The computing ops, in graph order.
    for (i, n) in g.nodes.enumerated() {
        var verdict = recipe(n)
        if case .compute = verdict, let why = keepFloat[n.name] { verdict = .float(why) }
        switch verdict {
        case .compute(let data, let outputQuantized):
            quantizedNodes.insert(i)
            layers.append(i)
            for k in data { quantized.insert(n.inputs[k]!) }
            if outputQuantized { quantized.insert(n.outputs[0]) }
            if n.op.isConvOrMatrixProduct { decisions.append("\(n.label): int8") }
        case .float(let why):
            decisions.append("\(n.label): FP32 (\(why))")
        case .passThrough, .notQuantized:
            break
        }
    }
    // Ops that share their input's parameters run quantized where their result is quantized:
    // then their inputs are, with the same parameters (last to first, so chains propagate).
    var precisionOf: [String: String] = [:]
    for (i, n) in g.nodes.enumerated() {
        switch recipe(n) {
        case .compute: precisionOf[n.name] = quantizedNodes.contains(i) ? "int8" : "FP32: \(keepFloat[n.name] ?? "")"
        case .float(let why): precisionOf[n.name] = "FP32: \(why)"
        case .passThrough: precisionOf[n.name] = "FP32: moves f32 values (it shares its input's u8 parameters only where an int8 op reads its result)"
        case .notQuantized: precisionOf[n.name] = "FP32: no int8 form in the X86 recipe"
        }
    }
    for (i, n) in g.nodes.enumerated().reversed() {
        guard case .passThrough(let data) = recipe(n), n.outputs.contains(where: quantized.contains) else { continue }
        precisionOf[n.name] = "int8 (moves u8 values, its input's parameters)"
        quantizedNodes.insert(i)
        // Every output (a Split's) shares the parameters: the op moves u8 values into each.
        for y in n.outputs { quantized.insert(y) }
        for k in data {
            quantized.insert(n.inputs[k]!)
            for y in n.outputs { union(n.inputs[k]!, y) }
        }
    }
    var groups: [[ValueID]] = [], groupOf: [ValueID: Int] = [:], rootGroup: [ValueID: Int] = [:]
    for v in quantized.sorted() {
        let r = find(v)
        if let k = rootGroup[r] { groups[k].append(v); groupOf[v] = k; continue }
        rootGroup[r] = groups.count
        groupOf[v] = groups.count
        groups.append([v])
    }
    return QuantizationPlan(groups: groups, groupOf: groupOf, quantizedNodes: quantizedNodes, decisions: decisions, layers: layers, precisionOf: precisionOf)
}

/// The operand of `n` that holds weights quantized s8 per output channel when `n` runs int8, and
/// the axis of its scales: a conv's (axis 0), a Gemm's (0 with transB, else 1), a MatMul's (1).
public func quantizedWeightsOperand(_ n: Node) -> (index: Int, axis: Int)? {
    switch n.op {
    case .conv: return (1, 0)
    case .gemm(let a): return (1, a.transB ? 0 : 1)
    case .matMul: return (1, 1)
    default: return nil
    }
}

private extension Op {
    var isConvOrMatrixProduct: Bool {
        switch self {
        case .conv, .gemm, .matMul: return true
        default: return false
        }
    }
}

private enum RecipeVerdict {
    /// Runs int8, reading its `data` operands quantized; its result is quantized when `output`
    /// (adds and poolings), or when a quantized op reads it (convs and matrix products).
    case compute(data: [Int], output: Bool)
    /// Shares its input's parameters (operands `data`) where its result is quantized.
    case passThrough(data: [Int])
    /// A conv or matrix product the recipe would quantize but cannot, and why.
    case float(String)
    case notQuantized
}

private func recipe(_ n: Node, _ g: Graph, _ isActivation: (ValueID?) -> Bool, _ staysInLoop: (ValueID?) -> Bool,
                    _ readInt8: (ValueID) -> Bool) -> RecipeVerdict {
    func constant(_ k: Int) -> Tensor? { k < n.inputs.count ? n.inputs[k].flatMap { g.values[$0].constant } : nil }
    func rank(_ k: Int) -> Int { n.inputs[k].map { g.values[$0].type.rank } ?? 0 }
    guard n.outputs.count == 1 || n.op.traits.movement != nil, !n.inputs.isEmpty else { return .notQuantized }
    switch n.op {
    case .conv(let a):
        guard isActivation(n.inputs[0]), (3...5).contains(rank(0)) else { return .float("its input is not an f32 activation") }
        guard let w = constant(1), w.elementType == .f32, w.rank >= 3 else { return .float("its weights are not constant") }
        guard w.floats.allSatisfy(\.isFinite) else { return .float("its weights are not all finite") }
        if n.inputs.count > 2, n.inputs[2] != nil, constant(2) == nil { return .float("its bias is not constant") }
        // Feasible with an f32 result at least (a quantized one can fall back to f32, as the lowering does).
        guard a.postOps.filter({ $0 == .sum }).count <= 1,
              QuantizedConvAttributes(conv: a, input: .perTensor(.u8, scale: 1, zeroPoint: 0), weights: .perTensor(.s8, scale: 1, zeroPoint: 0),
                                      output: nil).oneDNNInt8PostOps != nil
        else { return .float("oneDNN cannot apply its post-ops in int8") }
        if a.postOps.contains(.sum) {
            guard n.inputs.count > 3, isActivation(n.inputs[3]) else { return .float("its residual addend is not an f32 activation") }
            return .compute(data: [0, 3], output: false)
        }
        return .compute(data: [0], output: false)
    case .gemm(let a):
        guard isActivation(n.inputs[0]), rank(0) == 2 else { return .float("its input is not a 2-D f32 activation") }
        guard a.alpha == 1, !a.transA else { return .float("Gemm with alpha other than 1 or a transposed A") }
        guard let w = constant(1), w.elementType == .f32, w.rank == 2 else { return .float("its weights are not constant") }
        guard w.floats.allSatisfy(\.isFinite) else { return .float("its weights are not all finite") }
        if n.inputs.count > 2, n.inputs[2] != nil {
            let columns = a.transB ? w.shape[0] : w.shape[1]
            guard a.beta == 1, let c = constant(2), c.elementType == .f32, c.shape == [columns] || c.shape == [1, columns] else {
                return .float("its C is not a constant bias over the columns with beta 1")
            }
        }
        guard QuantizedMatMulAttributes(input: .perTensor(.u8, scale: 1, zeroPoint: 0), weights: .perTensor(.s8, scale: 1, zeroPoint: 0),
                                        output: nil, postOps: a.postOps).oneDNNInt8PostOps != nil
        else { return .float("oneDNN cannot apply its post-ops in int8") }
        return .compute(data: [0], output: false)
    case .matMul(let a):
        guard isActivation(n.inputs[0]), rank(0) >= 2 else { return .float("its input is not an f32 activation") }
        guard let w = constant(1), w.elementType == .f32, w.rank == 2 else { return .float("its weights are not a constant matrix") }
        guard w.floats.allSatisfy(\.isFinite) else { return .float("its weights are not all finite") }
        if n.inputs.count > 2, n.inputs[2] != nil {
            guard let c = constant(2), c.elementType == .f32, c.shape == [w.shape[1]] || c.shape == [1, w.shape[1]] else {
                return .float("its bias is not a constant over the columns")
            }
        }
        guard QuantizedMatMulAttributes(input: .perTensor(.u8, scale: 1, zeroPoint: 0), weights: .perTensor(.s8, scale: 1, zeroPoint: 0),
                                        output: nil, postOps: a.postOps).oneDNNInt8PostOps != nil
        else { return .float("oneDNN cannot apply its post-ops in int8") }
        return .compute(data: [0], output: false)
    case .binary(.add):
        guard n.inputs.count == 2, isActivation(n.inputs[0]), isActivation(n.inputs[1]),
              g.values[n.inputs[0]!].type == g.values[n.outputs[0]].type,
              g.values[n.inputs[1]!].type == g.values[n.outputs[0]].type else { return .notQuantized }
        // An operand or result that never leaves the add's loop stays f32 (x + x·s, a + b + c).
        let data = [0, 1].filter { !staysInLoop(n.inputs[$0]) }, output = !staysInLoop(n.outputs[0])
        // A result that leaves the loop but that no int8 op reads: the add stays f32.
        if output, !readInt8(n.outputs[0]) { return .notQuantized }
        return data.isEmpty && !output ? .notQuantized : .compute(data: data, output: output)
    case .averagePool, .globalAveragePool:
        guard isActivation(n.inputs[0]), rank(0) == 4 else { return .notQuantized }
        return .compute(data: [0], output: true)
    default:
        // Ops that move values (or pick the largest): the dequantization sinks below them.
        guard let data = n.op.traits.movedOperands(of: n.inputs.count) else { return .notQuantized }
        guard data.allSatisfy({ isActivation(n.inputs[$0]) }) else { return .notQuantized }
        return .passThrough(data: data)
    }
}

/// u8 parameters for real values in `[lo, hi]`: the range widened to hold 0, which is exact.
public func affineU8Parameters(lo: Float, hi: Float) -> Quantization {
    let a = min(lo, 0), b = max(hi, 0)
    guard b - a > 0, (b - a).isFinite else { return .perTensor(.u8, scale: 1, zeroPoint: 0) }
    let scale = max((b - a) / 255, Float.leastNormalMagnitude)
    let zero = min(max((-a / scale).rounded(.toNearestOrEven), 0), 255)
    return .perTensor(.u8, scale: scale, zeroPoint: Int32(zero))
}

/// Symmetric s8 weights along `axis`, one scale per index of that axis: max|w| / 127 (no weight
/// clips; an all-zero slice gets scale 1).
public func quantizeWeightsSymmetric(_ w: Tensor, axis: Int) -> (Tensor, Quantization) {
    precondition(w.elementType == .f32 && axis < w.rank)
    let channels = w.shape[axis]
    let inner = w.shape[(axis + 1)...].reduce(1, *)
    var amax = [Float](repeating: 0, count: channels)
    let f = w.floats
    for (k, x) in f.enumerated() {
        let c = (k / inner) % channels
        amax[c] = max(amax[c], abs(x))
    }
    let scales = amax.map { $0 > 0 && $0.isFinite ? $0 / 127 : 1 }
    let q = f.enumerated().map { k, x -> Int64 in
        Int64(min(max((x / scales[(k / inner) % channels]).rounded(.toNearestOrEven), -127), 127))
    }
    return (Tensor(.s8, shape: w.shape, ints: q), Quantization(.s8, scales: scales, zeroPoints: [Int32](repeating: 0, count: channels), axis: axis))
}

/// Writes the QuantizeLinear/DequantizeLinear nodes of a plan into a graph being rebuilt.
private struct QDQWriter {
    let plan: QuantizationPlan
    let parameters: [Quantization]
    var nodes: [Node] = []
    let origin = { (op: String) in NodeOrigin(opType: op, domain: "kiln", version: 1) }

    /// `v` quantized with its group's parameters and dequantized: the value the int8 ops read.
    mutating func quantizePair(_ g: inout Graph, _ v: ValueID, suffix: String = "") -> ValueID {
        let p = parameters[plan.groupOf[v]!]
        let name = g.values[v].name + suffix
        let s = g.addConstant("\(name)_scale", Tensor(.f32, shape: [], floats: [p.scales[0]]))
        let z = g.addConstant("\(name)_zero_point", Tensor(p.type, shape: [], ints: [Int64(p.zeroPoints[0])]))
        var t = g.values[v].type
        t.elementType = p.type
        let q = g.addValue("\(name)_quantized", t)
        let d = g.addValue("\(name)_dequantized", g.values[v].type)
        nodes.append(Node(name: "\(name)_QuantizeLinear", op: .quantizeLinear(axis: 1, outputType: p.type), inputs: [v, s, z], outputs: [q], origin: origin("QuantizeLinear")))
        nodes.append(Node(name: "\(name)_DequantizeLinear", op: .dequantizeLinear(axis: 1), inputs: [q, s, z], outputs: [d], origin: origin("DequantizeLinear")))
        return d
    }

    /// `n` reading its weights as s8 constants per output channel behind DequantizeLinear, and, given
    /// the mean of its input along its channel axis (`inputMeans`), its bias corrected for them.
    mutating func quantizeWeights(_ g: inout Graph, _ n: inout Node, inputMeans: [Double]?, suffix: String = "") {
        guard let (k, axis) = quantizedWeightsOperand(n) else { return }
        let w = n.inputs[k]!
        let (wq, p) = quantizeWeightsSymmetric(g.values[w].constant!, axis: axis)
        let name = g.values[w].name + suffix
        let q = g.addConstant("\(name)_s8", wq)
        let s = g.addConstant("\(name)_scales", Tensor(.f32, shape: [p.scales.count], floats: p.scales))
        let d = g.addValue("\(name)_dequantized", g.values[w].type)
        nodes.append(Node(name: "\(name)_DequantizeLinear", op: .dequantizeLinear(axis: axis), inputs: [q, s], outputs: [d], origin: origin("DequantizeLinear")))
        let real = g.values[w].constant!
        n.inputs[k] = d
        guard let inputMeans, let shift = weightQuantizationShift(n, g, real: real, quantized: wq, scales: p.scales, inputMeans: inputMeans),
              shift.contains(where: { $0 != 0 }) else { return }
        // The bias operand: a constant of one value per output channel, or none yet.
        let existing = n.inputs.count > 2 ? n.inputs[2].flatMap { g.values[$0].constant } : nil
        if n.inputs.count > 2, n.inputs[2] != nil, existing == nil { return }
        if case .gemm(let a) = n.op, a.beta != 1, existing == nil { return }
        let bias = existing?.floats ?? [Float](repeating: 0, count: shift.count)
        guard bias.count == shift.count else { return }
        let corrected = g.addConstant("\(name)_corrected_bias", Tensor(.f32, shape: existing?.shape ?? [shift.count], floats: zip(bias, shift).map { $0 - $1 }))
        while n.inputs.count < 3 { n.inputs.append(nil) }
        n.inputs[2] = corrected
    }
}

/// How much int8 shifts each output channel of `n` (a conv, Gemm or MatMul) on average by
/// computing with its quantized weights ŵ = q·s instead of w: Σ over its inputs i (and taps) of
/// (ŵ − w)·mean(x_i), `inputMeans` being the input's means along its channel axis (a conv's axis 1,
/// a product's last). Subtracted from the bias, this is the weight half of bias correction (as in
/// NNCF's): rounding errors of the weights that do not average out over a channel's inputs.
public func weightQuantizationShift(_ n: Node, _ g: Graph, real w: Tensor, quantized q: Tensor, scales: [Float], inputMeans: [Double]) -> [Float]? {
    let wf = w.floats, qi = q.ints
    switch n.op {
    case .conv(let a):
        let outC = w.shape[0], perGroup = w.shape[1], taps = w.shape[2...].reduce(1, *)
        guard a.group > 0, outC % a.group == 0, inputMeans.count == perGroup * a.group else { return nil }
        let outPerGroup = outC / a.group
        return (0..<outC).map { o in
            let base = (o / outPerGroup) * perGroup
            var sum = 0.0
            for i in 0..<perGroup {
                var d = 0.0
                for t in 0..<taps {
                    let k = (o * perGroup + i) * taps + t
                    d += Double(Float(qi[k]) * scales[o]) - Double(wf[k])
                }
                sum += d * inputMeans[base + i]
            }
            return Float(sum)
        }
    case .gemm(let a):
        guard w.rank == 2 else { return nil }
        let (rows, cols) = (w.shape[0], w.shape[1])
        let (inner, outer) = a.transB ? (cols, rows) : (rows, cols)
        guard inputMeans.count == inner else { return nil }
        return (0..<outer).map { o in
            var sum = 0.0
            for i in 0..<inner {
                let k = a.transB ? o * cols + i : i * cols + o
                sum += (Double(Float(qi[k]) * scales[o]) - Double(wf[k])) * inputMeans[i]
            }
            return Float(sum)
        }
    case .matMul:
        guard w.rank == 2, inputMeans.count == w.shape[0] else { return nil }
        let (inner, outer) = (w.shape[0], w.shape[1])
        return (0..<outer).map { o in
            var sum = 0.0
            for i in 0..<inner { sum += (Double(Float(qi[i * outer + o]) * scales[o]) - Double(wf[i * outer + o])) * inputMeans[i] }
            return Float(sum)
        }
    default: return nil
    }
}

/// The axis along which a conv, Gemm or MatMul reads its input's channels: 1 for a conv, the last otherwise.
public func inputChannelAxis(_ n: Node, _ g: Graph) -> Int? {
    guard let x = n.inputs.first ?? nil else { return nil }
    switch n.op {
    case .conv: return 1
    case .gemm, .matMul: return g.values[x].type.rank - 1
    default: return nil
    }
}

/// Writes the plan's quantization into `g` (the graph `planQuantization` read), with
/// `parameters[k]` for group k: each quantized value is followed by QuantizeLinear and
/// DequantizeLinear, which the quantized ops that read it read; a value that a quantized op
/// writes is read through them everywhere (its consumers see what the int8 op gives), any other
/// (a graph input, an f32 op's result) stays as it is for its f32 readers. Weights of quantized
/// convs and matrix products become s8 constants behind DequantizeLinear; with `inputMeans` (a
/// value's means along an axis, from the calibration), their biases are corrected for the
/// weights' rounding (`weightQuantizationShift`).
public func insertQuantization(_ g: inout Graph, _ plan: QuantizationPlan, parameters: [Quantization],
                               inputMeans: (ValueID, Int) -> [Double]? = { _, _ in nil }) {
    precondition(parameters.count == plan.groups.count)
    let producers = g.producers()
    let old = g.nodes
    var dequantized: [ValueID: ValueID] = [:]
    var w = QDQWriter(plan: plan, parameters: parameters)
    for v in g.inputs where plan.groupOf[v] != nil { dequantized[v] = w.quantizePair(&g, v) }
    for (i, var n) in old.enumerated() {
        let quantizedNode = plan.quantizedNodes.contains(i)
        for (k, v) in n.inputs.enumerated() {
            guard let v, let d = dequantized[v] else { continue }
            let writtenQuantized = producers[v].map { plan.quantizedNodes.contains($0) } ?? false
            if writtenQuantized || quantizedNode { n.inputs[k] = d }
        }
        if quantizedNode, let x = old[i].inputs.first ?? nil, let axis = inputChannelAxis(n, g) {
            w.quantizeWeights(&g, &n, inputMeans: inputMeans(x, axis))
        }
        w.nodes.append(n)
        for v in n.outputs where plan.groupOf[v] != nil { dequantized[v] = w.quantizePair(&g, v) }
    }
    g.nodes = w.nodes
}

/// Each int8 layer's own error, to measure: `g` (the graph `planQuantization` read, f32) gets,
/// beside each layer of `plan`, an int8 twin that reads the layer's f32 operands quantized with
/// `parameters` (and its weights s8) and, where the plan quantizes the layer's result, quantizes
/// its own. The layer's f32 result and its twin's (dequantized) become extra graph outputs: their
/// difference on the calibration samples is the error that layer alone adds. Returns, per layer
/// (node index), the indices of the two outputs.
public func addInt8Twins(_ g: inout Graph, _ plan: QuantizationPlan, parameters: [Quantization],
                         inputMeans: (ValueID, Int) -> [Double]? = { _, _ in nil }) -> [(layer: Int, real: Int, twin: Int)] {
    precondition(parameters.count == plan.groups.count)
    let old = g.nodes
    let layers = Set(plan.layers)
    var w = QDQWriter(plan: plan, parameters: parameters)
    var dequantized: [ValueID: ValueID] = [:]
    var twins: [(layer: Int, real: Int, twin: Int)] = []
    func output(_ v: ValueID) -> Int {
        if let k = g.outputs.firstIndex(of: v) { return k }
        g.outputs.append(v)
        return g.outputs.count - 1
    }
    for (i, n) in old.enumerated() {
        w.nodes.append(n)
        guard layers.contains(i) else { continue }
        var t = n
        t.name = "\(n.name)_int8_twin"
        for (k, v) in n.inputs.enumerated() {
            guard let v, plan.groupOf[v] != nil else { continue }
            if dequantized[v] == nil { dequantized[v] = w.quantizePair(&g, v, suffix: "_twin") }
            t.inputs[k] = dequantized[v]
        }
        if let x = n.inputs.first ?? nil, let axis = inputChannelAxis(n, g) { w.quantizeWeights(&g, &t, inputMeans: inputMeans(x, axis), suffix: "_\(i)_twin") }
        let y = n.outputs[0]
        let ty = g.addValue("\(g.values[y].name)_int8_twin", g.values[y].type)
        t.outputs = [ty]
        w.nodes.append(t)
        var result = ty
        if plan.groupOf[y] != nil {
            var pass = plan
            pass.groupOf[ty] = plan.groupOf[y]
            var tw = QDQWriter(plan: pass, parameters: parameters, nodes: w.nodes)
            result = tw.quantizePair(&g, ty)
            w.nodes = tw.nodes
        }
        twins.append((i, output(y), output(result)))
    }
    g.nodes = w.nodes
    return twins
}
