import KilnIR

/// The golden reference: runs a graph node by node with plain, obviously-correct loops.
/// Correct before fast; every later test compares against it.
public struct ReferenceInterpreter {
    public let graph: Graph

    public init(_ graph: Graph) {
        self.graph = graph
    }

    /// Runs the graph on named inputs (every graph input must be given, with its static shape
    /// and element type) and returns the named outputs.
    public func run(_ inputs: [String: Tensor]) throws -> [String: Tensor] {
        var env = [Tensor?](repeating: nil, count: graph.values.count)
        for (i, v) in graph.values.enumerated() where v.constant != nil { env[i] = v.constant }
        for id in graph.inputs {
            let v = graph.values[id]
            guard let t = inputs[v.name] else { throw KilnError("input '\(v.name)' was not given") }
            guard t.elementType == v.type.elementType else {
                throw KilnError("input '\(v.name)' should be \(v.type.elementType), got \(t.elementType)")
            }
            if let s = v.type.shape, s != t.shape {
                throw KilnError("input '\(v.name)' should have shape \(shapeString(s)), got \(shapeString(t.shape))")
            }
            env[id] = t
        }
        let names = Set(graph.inputs.map { graph.values[$0].name })
        for k in inputs.keys where !names.contains(k) {
            throw KilnError("the model has no input named '\(k)' (inputs: \(names.sorted().joined(separator: ", ")))")
        }
        // Free each value after its last use.
        var lastUse = [Int](repeating: -1, count: graph.values.count)
        for (i, n) in graph.nodes.enumerated() { for case let v? in n.inputs { lastUse[v] = i } }
        for v in graph.outputs { lastUse[v] = Int.max }
        for (i, node) in graph.nodes.enumerated() {
            let ins: [Tensor?] = node.inputs.map { $0.flatMap { env[$0] } }
            let outs = try evaluateNode(node, ins)
            for (k, v) in node.outputs.enumerated() where k < outs.count { env[v] = outs[k] }
            for case let v? in node.inputs where lastUse[v] == i && graph.values[v].constant == nil { env[v] = nil }
        }
        var result: [String: Tensor] = [:]
        for v in graph.outputs {
            guard let t = env[v] else { throw KilnError("output '\(graph.values[v].name)' was not computed") }
            result[graph.values[v].name] = t
        }
        return result
    }
}

/// Evaluates one node on concrete inputs (nil where an optional input is absent).
public func evaluateNode(_ node: Node, _ inputs: [Tensor?]) throws -> [Tensor] {
    let types = try inferOutputTypes(node, inputs: inputs.map { $0?.type }, constants: inputs)
    let what = node.label
    func x(_ i: Int) -> Tensor { inputs[i]! }
    func opt(_ i: Int) -> Tensor? { i < inputs.count ? inputs[i] : nil }
    let out = types[0]
    let shape = out.shape!

    switch node.op {
    case .conv(let a):
        return [applyPostOps(a.postOps, try conv(x(0), x(1), opt(2), a, out: shape, what), addend: opt(3))]
    case .quantizedConv(let q):
        // By definition: dequantize, convolve in f32, quantize.
        let y = try conv(dequantize(x(0), q.input), dequantize(x(1), q.weights), opt(2), q.conv, out: shape, what)
        let addend = opt(3).map { a in q.addend.map { dequantize(a, $0) } ?? a }
        let real = applyPostOps(q.conv.postOps, y, addend: addend)
        return [q.output.map { quantize(real, $0) } ?? real]
    case .quantizedMatMul(let q):
        var y = matMul(dequantize(x(0), q.input), dequantize(x(1), q.weights), out: TensorType(.f32, shape))
        if let bias = opt(2) { y = try binary(.add, y, bias, out: y.type) }
        let real = applyPostOps(q.postOps, y, addend: nil)
        return [q.output.map { quantize(real, $0) } ?? real]
    case .convTranspose(let a):
        return [applyPostOps(a.conv.postOps, try convTranspose(x(0), x(1), opt(2), a, out: shape, what), addend: nil)]
    case .batchNormalization(let eps):
        return [batchNorm(x(0), x(1), x(2), x(3), x(4), eps)]
    case .channelScaleShift(let postOps):
        let c = x(0).shape[1], inner = shapeProduct(Array(x(0).shape.dropFirst(2)))
        var r = x(0)
        for i in 0..<r.floats.count {
            let ch = (i / inner) % c
            r.floats[i] = r.elementType.roundFloat(r.floats[i] * x(1).floats[ch] + x(2).floats[ch])
        }
        return [applyPostOps(postOps, r, addend: nil)]
    case .gemm(let a):
        return [applyPostOps(a.postOps, gemm(x(0), x(1), opt(2), a, out: shape), addend: nil)]
    case .matMul(let a):
        var y = matMul(x(0), x(1), out: out)
        if let bias = opt(2) { y = try binary(.add, y, bias, out: out) }
        return [applyPostOps(a.postOps, y, addend: nil)]
    case .unary(let u):
        return [unary(u, x(0))]
    case .leakyRelu, .elu, .selu, .hardSigmoid, .gelu:
        return [mapFloat(x(0), node.op.scalarFunction!.apply)]
    case .clip:
        return [clip(x(0), opt(1), opt(2))]
    case .binary(let b):
        return [try binary(b, x(0), x(1), out: out)]
    case .variadic(let b):
        var acc = x(0)
        for i in 1..<inputs.count {
            let t = try broadcastShapes([acc.shape, x(i).shape], what)
            acc = try binary(b, acc, x(i), out: TensorType(out.elementType, t))
        }
        if acc.shape != shape { acc = expand(acc, to: shape) }
        return [acc]
    case .alignForBroadcast:
        return [x(1).reshaped(shape)]
    case .maxPool(let p):
        return [try pool(x(0), p, average: false, out: shape, what)]
    case .averagePool(let p):
        return [try pool(x(0), p, average: true, out: shape, what)]
    case .globalAveragePool:
        return [globalPool(x(0), average: true)]
    case .globalMaxPool:
        return [globalPool(x(0), average: false)]
    case .concat(let axis):
        return [concat(inputs.compactMap { $0 }, axis: try normalizeAxis(axis, rank: shape.count, what), out: shape)]
    case .split(let axis):
        let ax = try normalizeAxis(axis, rank: x(0).rank, what)
        var outs: [Tensor] = []
        var offset = 0
        for t in types {
            let s = t.shape!
            var sl = x(0).shape.map { SliceAxis(start: 0, step: 1, count: $0) }
            sl[ax] = SliceAxis(start: offset, step: 1, count: s[ax])
            outs.append(slice(x(0), sl))
            offset += s[ax]
        }
        return outs
    case .slice:
        let sl = try resolveSlice(shape: x(0).shape, starts: x(1).int64Values, ends: x(2).int64Values,
                                  axes: opt(3)?.int64Values, steps: opt(4)?.int64Values, what)
        return [slice(x(0), sl)]
    case .reshape, .flatten, .squeeze, .unsqueeze, .identity, .layoutConvert:
        return [x(0).reshaped(shape)]
    case .dropout:
        let y = x(0)
        return node.outputs.count > 1 ? [y, Tensor(.bool, shape: shape, ints: [Int64](repeating: 1, count: y.count))] : [y]
    case .transpose(let perm):
        return [transpose(x(0), perm: perm ?? Array((0..<x(0).rank).reversed()))]
    case .gather(let axis):
        return [try gather(x(0), x(1), axis: try normalizeAxis(axis, rank: x(0).rank, what), out: shape, what)]
    case .shape(let start, let end):
        let (s, e) = shapeRange(rank: x(0).rank, start: start, end: end)
        return [Tensor.vector(ints: x(0).shape[s..<max(s, e)].map { Int64($0) })]
    case .cast(let to):
        return [cast(x(0), to: to)]
    case .size:
        return [Tensor(.s64, shape: [], ints: [Int64(x(0).count)])]
    case .castLike:
        return [cast(x(0), to: x(1).elementType)]
    case .constantOfShape(let v):
        let n = shapeProduct(shape)
        if v.elementType.isFloat { return [Tensor(v.elementType, shape: shape, floats: [Float](repeating: v.floats[0], count: n))] }
        return [Tensor(v.elementType, shape: shape, ints: [Int64](repeating: v.ints[0], count: n))]
    case .pad(let mode):
        let axes = try padAxes(opt(3)?.int64Values, rank: x(0).rank, what)
        return [pad(x(0), pads: x(1).int64Values, axes: axes, mode: mode, value: opt(2), out: shape)]
    case .resize(let r):
        let (_, scales) = try resolveResize(input: x(0).shape, scales: opt(2)?.floatValues, sizes: opt(3)?.int64Values,
                                           attributes: r, what)
        return [resize(x(0), r, scales: scales, roi: opt(1)?.floatValues, out: shape)]
    case .softmax(let axis, let legacy):
        return [softmax(x(0), axis: try normalizeAxis(axis, rank: shape.count, what), legacy: legacy, log: false)]
    case .logSoftmax(let axis, let legacy):
        return [softmax(x(0), axis: try normalizeAxis(axis, rank: shape.count, what), legacy: legacy, log: true)]
    case .reduce(let r, _, let noop):
        let axes = try resolveReduceAxes(opt(1)?.int64Values, rank: x(0).rank, noopWithEmptyAxes: noop, what)
        return [reduce(r, x(0), axes: axes, out: shape)]
    case .expand:
        return [expand(x(0), to: shape)]
    case .range:
        return [range(x(0), x(2), out: out)]
    case .where:
        return [whereOp(x(0), x(1), x(2), out: out)]
    case .instanceNormalization(let eps):
        return [instanceNorm(x(0), x(1), x(2), eps: eps)]
    case .depthToSpace(let b, let crd):
        // y[n, c, h·b + i, w·b + j] = x[n, DCR: (i·b + j)·C' + c, CRD: c·b² + i·b + j, h, w]
        let s = x(0).shape, c2 = s[1] / (b * b)
        return [gatherElements(x(0), shape: shape) { o in
            let (n, c, i, j) = (o[0], o[1], o[2] % b, o[3] % b)
            let ch = crd ? c * b * b + i * b + j : (i * b + j) * c2 + c
            return ((n * s[1] + ch) * s[2] + o[2] / b) * s[3] + o[3] / b
        }]
    case .spaceToDepth(let b, let crd):
        // y[n, DCR: (i·b + j)·C + c, CRD: c·b² + i·b + j, h, w] = x[n, c, h·b + i, w·b + j]
        let s = x(0).shape
        return [gatherElements(x(0), shape: shape) { o in
            let (n, ch) = (o[0], o[1])
            let (i, j, c) = crd ? ((ch % (b * b)) / b, ch % b, ch / (b * b)) : (ch / (b * s[1]), (ch / s[1]) % b, ch % s[1])
            return ((n * s[1] + c) * s[2] + o[2] * b + i) * s[3] + o[3] * b + j
        }]
    case .tile:
        let s = x(0).shape, st = contiguousStrides(s)
        return [gatherElements(x(0), shape: shape) { o in
            var off = 0
            for d in 0..<o.count { off += (o[d] % s[d]) * st[d] }
            return off
        }]
    case .argReduce(let a):
        return [argReduce(x(0), a, axis: try normalizeAxis(a.axis, rank: x(0).rank, what), out: shape)]
    case .gatherElements(let axis):
        return [try gatherAlongAxis(x(0), x(1), axis: try normalizeAxis(axis, rank: x(0).rank, what), what)]
    case .topK(let a):
        let r = topK(x(0), k: Int(x(1).int64Values[0]), axis: try normalizeAxis(a.axis, rank: x(0).rank, what), largest: a.largest)
        return [r.values, r.indices]
    case .layerNormalization(let axis, let eps):
        let r = layerNorm(x(0), x(1), opt(2), axis: try normalizeAxis(axis, rank: shape.count, what), eps: eps)
        return Array([r.y, r.mean, r.invStdDev].prefix(node.outputs.count))
    case .quantizeLinear(let axis, _):
        return [try quantize(x(0), x(1), opt(2), axis: axis, to: out.elementType, what)]
    case .dequantizeLinear(let axis):
        return [try dequantize(x(0), x(1), opt(2), axis: axis, to: out.elementType, what)]
    case .elementwiseGroup(let e):
        // Each step as the op it stands for, then the reduction as a reduce node.
        var results: [Tensor] = []
        for (k, step) in e.steps.enumerated() {
            let operands: [Tensor?] = step.operands.map { o in
                switch o {
                case .input(let i): return inputs[i]
                case .step(let j): return results[j]
                case .absent: return nil
                }
            }
            let stepNode = Node(name: "\(node.name)/s\(k)", op: step.op, inputs: operands.indices.map { ValueID($0) },
                                outputs: [ValueID(0)], origin: node.origin)
            results.append(try evaluateNode(stepNode, operands)[0])
        }
        let result = results.last!
        guard let r = e.reduction else { return [expand(result, to: shape)] }
        let full = try broadcastShapes(inputs.map { $0!.shape }, what)
        return [reduce(r.kind, expand(result, to: full), axes: r.axes, out: shape)]
    case .quantized(let q):
        // By definition: dequantize the quantized inputs, apply the op, quantize.
        var inner = node
        inner.op = q.op
        let real = zip(inputs, q.inputs + Array(repeating: nil, count: max(0, inputs.count - q.inputs.count))).map { x, p in
            p.flatMap { p in x.map { dequantize($0, p) } } ?? x
        }
        return [quantize(try evaluateNode(inner, real)[0], q.output)]
    case .unsupported(let reason):
        throw KilnError("\(what) is not supported: \(reason)", unsupported: true)
    }
}

import Foundation

/// Applies fused post-ops to a result, in order.
func applyPostOps(_ ops: [PostOp], _ y: Tensor, addend: Tensor?) -> Tensor {
    guard !ops.isEmpty else { return y }
    var r = y
    let t = y.elementType
    for op in ops {
        if op == .sum, let a = addend {
            for i in 0..<r.floats.count { r.floats[i] = t.roundFloat(r.floats[i] + a.floats[i]) }
        } else {
            for i in 0..<r.floats.count { r.floats[i] = t.roundFloat(op.apply(r.floats[i])) }
        }
    }
    return r
}
