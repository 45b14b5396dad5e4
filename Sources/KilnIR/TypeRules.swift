/// The output types of a node, from its input types and whichever inputs are constant.
/// Inputs must have static shapes; operands that decide a shape (Reshape's target, Slice's
/// bounds, Resize's sizes, ...) must be constant. Errors name the node.
public func inferOutputTypes(_ node: Node, inputs: [TensorType?], constants: [Tensor?]) throws -> [TensorType] {
    let what = node.label
    func type(_ i: Int) throws -> TensorType {
        guard i < inputs.count, let t = inputs[i] else { throw KilnError("\(what): input \(i) is missing") }
        return t
    }
    func shape(_ i: Int) throws -> [Int] {
        let t = try type(i)
        guard let s = t.shape else {
            throw KilnError("\(what): input \(i) has a dynamic shape \(t); pin the model's inputs with --input-shape")
        }
        return s
    }
    func has(_ i: Int) -> Bool { i < inputs.count && inputs[i] != nil }
    func const(_ i: Int, _ role: String) throws -> Tensor? {
        guard has(i) else { return nil }
        guard i < constants.count, let c = constants[i] else {
            throw KilnError("\(what): \(role) must be a constant (it is computed at run time, which Kiln does not support)", unsupported: true)
        }
        return c
    }
    func same(_ t: TensorType, _ s: [Int]) -> TensorType { TensorType(t.elementType, s) }
    func sameTypes(_ idx: [Int]) throws -> ElementType {
        let t0 = try type(idx[0]).elementType
        for i in idx.dropFirst() where has(i) {
            let t = try type(i).elementType
            guard t == t0 else { throw KilnError("\(what): input \(i) is \(t) but input \(idx[0]) is \(t0)") }
        }
        return t0
    }
    func requireFloat(_ i: Int) throws {
        let t = try type(i).elementType
        guard t.isFloat else { throw KilnError("\(what): input \(i) must be floating point, is \(t)") }
    }
    /// Checks a convolution's source, weights and bias; its output shape.
    func convOutputShape(_ a: ConvAttributes) throws -> [Int] {
        let x = try shape(0), w = try shape(1)
        guard x.count >= 3, w.count == x.count else {
            throw KilnError("\(what): input \(shapeString(x)) and weight \(shapeString(w)) must have the same rank, at least 3")
        }
        guard a.group > 0, x[1] == satMul(w[1], a.group), w[0] % a.group == 0 else {
            throw KilnError("\(what): \(x[1]) input channels do not match weight \(shapeString(w)) with group \(a.group)")
        }
        if has(2) {
            let b = try shape(2)
            guard b == [w[0]] else { throw KilnError("\(what): bias \(shapeString(b)) should be \(w[0])") }
        }
        let k = Array(w.dropFirst(2))
        if let ks = a.kernelShape, ks != k { throw KilnError("\(what): kernel_shape \(ks) does not match weight \(shapeString(w))") }
        let g = try windowGeometry(input: Array(x.dropFirst(2)), kernel: k, strides: a.strides, pads: a.pads,
                                   dilations: a.dilations, autoPad: a.autoPad, what)
        return [x[0], w[0]] + g.output
    }
    let outCount = node.outputs.count

    switch node.op {
    case .conv(let a):
        try requireFloat(0)
        let out = same(try type(0), try convOutputShape(a))
        if a.postOps.contains(.sum) {
            guard try type(3) == out else { throw KilnError("\(what): the sum post-op's addend must be \(out)") }
        }
        return [out]
    case .quantizedConv(let q):
        for (i, p, role) in [(0, q.input, "input"), (1, q.weights, "weight")] {
            let t = try type(i).elementType
            guard t == p.type, t == .u8 || t == .s8 else { throw KilnError("\(what): the \(role) is \(t), its quantization says \(p.type)") }
        }
        let outChannels = try shape(1).first ?? 0
        guard q.input.isPerTensor, q.weights.isSymmetric, q.weights.type == .s8,
              q.weights.isPerTensor || (q.weights.axis == 0 && q.weights.scales.count == outChannels) else {
            throw KilnError("\(what): needs a per-tensor input and s8 weights, symmetric, per tensor or per output channel")
        }
        if has(2) { guard try type(2).elementType == .f32 else { throw KilnError("\(what): the bias must be f32") } }
        let out = TensorType(q.output?.type ?? .f32, try convOutputShape(q.conv))
        if q.conv.postOps.contains(.sum) {
            let addend = TensorType(q.addend?.type ?? .f32, out.shape!)
            guard try type(3) == addend else { throw KilnError("\(what): the sum post-op's addend must be \(addend)") }
        }
        return [out]
    case .quantizedMatMul(let q):
        let a = try shape(0), b = try shape(1)
        for (i, p, role) in [(0, q.input, "input"), (1, q.weights, "weight")] {
            let t = try type(i).elementType
            guard t == p.type, t == .u8 || t == .s8 else { throw KilnError("\(what): the \(role) is \(t), its quantization says \(p.type)") }
        }
        guard a.count >= 2, b.count == 2, a.last == b[0] else {
            throw KilnError("\(what): input \(shapeString(a)) and weights \(shapeString(b)) do not multiply")
        }
        guard q.input.isPerTensor, q.weights.type == .s8, q.weights.isSymmetric,
              q.weights.isPerTensor || (q.weights.axis == 1 && q.weights.scales.count == b[1]), !q.postOps.contains(.sum) else {
            throw KilnError("\(what): needs a per-tensor input and s8 weights, symmetric, per tensor or per column")
        }
        if has(2) {
            guard try type(2) == TensorType(.f32, [b[1]]) else { throw KilnError("\(what): the bias must be f32[\(b[1])]") }
        }
        return [TensorType(q.output?.type ?? .f32, Array(a.dropLast()) + [b[1]])]
    case .convTranspose(let a):
        try requireFloat(0)
        let x = try shape(0), w = try shape(1)
        guard x.count >= 3, w.count == x.count, x[1] == w[0], a.conv.group > 0 else {
            throw KilnError("\(what): input \(shapeString(x)) does not match weight \(shapeString(w))")
        }
        let g = try convTransposeGeometry(input: Array(x.dropFirst(2)), kernel: Array(w.dropFirst(2)), attributes: a, what)
        return [same(try type(0), [x[0], satMul(w[1], a.conv.group)] + g.output)]
    case .batchNormalization:
        try requireFloat(0)
        let x = try shape(0)
        guard x.count >= 2 else { throw KilnError("\(what): input must have rank 2 or more") }
        for i in 1...4 {
            guard try shape(i) == [x[1]] else { throw KilnError("\(what): parameter \(i) should have \(x[1]) elements") }
        }
        return [try type(0)]
    case .channelScaleShift:
        try requireFloat(0)
        let x = try shape(0)
        guard x.count >= 2, try shape(1) == [x[1]], try shape(2) == [x[1]] else {
            throw KilnError("\(what): scale and shift must have \(x.count >= 2 ? x[1] : 0) elements")
        }
        return [try type(0)]
    case .gemm(let a):
        let t = try sameTypes([0, 1])
        let sa = try shape(0), sb = try shape(1)
        guard sa.count == 2, sb.count == 2 else { throw KilnError("\(what): Gemm needs 2-D inputs, got \(shapeString(sa)) and \(shapeString(sb))") }
        let (m, k1) = a.transA ? (sa[1], sa[0]) : (sa[0], sa[1])
        let (k2, n) = a.transB ? (sb[1], sb[0]) : (sb[0], sb[1])
        guard k1 == k2 else { throw KilnError("\(what): inner dimensions \(k1) and \(k2) differ") }
        if has(2) { _ = try broadcastShapes([try shape(2), [m, n]], what) }
        return [TensorType(t, [m, n])]
    case .matMul:
        let t = try sameTypes([0, 1])
        let out = try matMulShape(try shape(0), try shape(1), what)
        if has(2) {
            guard try type(2).elementType == t, try shape(2) == [out.last ?? 1] else {
                throw KilnError("\(what): the bias must be \(t)[\(out.last ?? 1)], got \(try type(2))")
            }
        }
        return [TensorType(t, out)]
    case .unary(let u):
        let t = try type(0)
        switch u {
        case .neg, .abs, .relu:
            guard t.elementType != .bool && t.elementType != .u8 || u == .relu || u == .abs else {
                throw KilnError("\(what): \(u.rawValue) of \(t.elementType)")
            }
        case .not:
            guard t.elementType == .bool else { throw KilnError("\(what): not of \(t.elementType)") }
        default: try requireFloat(0)
        }
        return [same(t, try shape(0))]
    case .leakyRelu, .elu, .selu, .hardSigmoid, .gelu:
        try requireFloat(0)
        return [same(try type(0), try shape(0))]
    case .clip:
        _ = try sameTypes([0, 1, 2])
        return [same(try type(0), try shape(0))]
    case .binary(let b):
        // Pow's exponent may have another type than its base.
        let t = b == .pow ? try type(0).elementType : try sameTypes([0, 1])
        if b.isLogical, t != .bool { throw KilnError("\(what): \(b.rawValue) needs bool operands, got \(t)") }
        if b == .prelu || (b == .mod && t.isFloat) { try requireFloat(0) }
        let s = try broadcastShapes([try shape(0), try shape(1)], what)
        if b == .prelu, s != (try shape(0)) {
            throw KilnError("\(what): the slope \(shapeString(try shape(1))) must broadcast to the input \(shapeString(try shape(0)))")
        }
        return [TensorType(b.producesBool ? .bool : t, s)]
    case .elementwiseGroup(let e):
        let idx = Array(0..<inputs.count)
        guard !e.steps.isEmpty else { throw KilnError("\(what): an elementwise group needs a step") }
        // Float operands, except what per-tensor quantization steps read: u8/s8 values and zero points.
        var integerAllowed = Set<Int>()
        for (k, step) in e.steps.enumerated() {
            guard ElementwiseGroup.isStep(step.op) else { throw KilnError("\(what): \(step.op.name) cannot be an elementwise step") }
            for o in step.operands {
                switch o {
                case .input(let i): guard i >= 0 && i < inputs.count else { throw KilnError("\(what): step \(k) reads a missing input \(i)") }
                case .step(let j): guard j >= 0 && j < k else { throw KilnError("\(what): step \(k) reads step \(j), not an earlier one") }
                case .absent:
                    switch step.op {
                    case .clip, .quantizeLinear, .dequantizeLinear: break
                    default: throw KilnError("\(what): step \(k) lacks an operand")
                    }
                }
            }
            switch step.op {
            case .quantizeLinear, .dequantizeLinear:
                for (j, o) in step.operands.enumerated() where j > 0 && o != .absent {
                    guard case .input(let i) = o, shapeProduct(try shape(i)) == 1 else {
                        throw KilnError("\(what): step \(k) must quantize per tensor, with one scale and zero point")
                    }
                }
                if case .dequantizeLinear = step.op, case .input(let i) = step.operands[0] { integerAllowed.insert(i) }
                if step.operands.count > 2, case .input(let i) = step.operands[2] { integerAllowed.insert(i) }
            default: break
            }
        }
        for i in idx where !integerAllowed.contains(i) { try requireFloat(i) }
        let full = try broadcastShapes(try idx.map { try shape($0) }, what)
        var t = try idx.first { try type($0).elementType.isFloat }.map { try type($0).elementType } ?? .f32
        if case .quantizeLinear(_, let q) = e.steps.last!.op { t = q }
        guard let r = e.reduction else { return [TensorType(t, full)] }
        guard t.isFloat else { throw KilnError("\(what): a reduction of quantized values is not supported") }
        guard r.axes.allSatisfy({ $0 >= 0 && $0 < full.count }) else { throw KilnError("\(what): reduction axes \(r.axes) out of range") }
        var out: [Int] = []
        for (i, d) in full.enumerated() {
            if r.axes.contains(i) { if r.keepDims { out.append(1) } } else { out.append(d) }
        }
        return [TensorType(t, out)]
    case .variadic:
        let idx = Array(0..<inputs.count)
        let t = try sameTypes(idx)
        return [TensorType(t, try broadcastShapes(try idx.map { try shape($0) }, what))]
    case .alignForBroadcast(let axis):
        let a = try shape(0), b = try shape(1)
        let ax = try normalizeAxis(axis, rank: a.count, what)
        let trailing = a.count - ax - b.count
        guard trailing >= 0 else { throw KilnError("\(what): cannot align \(shapeString(b)) to \(shapeString(a)) at axis \(axis)") }
        return [same(try type(1), b + [Int](repeating: 1, count: trailing))]
    case .maxPool(let p), .averagePool(let p):
        let x = try shape(0)
        guard x.count >= 3 else { throw KilnError("\(what): input must be N x C x spatial") }
        if case .averagePool = node.op { try requireFloat(0) }
        let g = try windowGeometry(input: Array(x.dropFirst(2)), kernel: p.kernelShape, strides: p.strides, pads: p.pads,
                                   dilations: p.dilations, autoPad: p.autoPad, ceilMode: p.ceilMode, what)
        return [same(try type(0), Array(x.prefix(2)) + g.output)]
    case .globalAveragePool, .globalMaxPool:
        let x = try shape(0)
        guard x.count >= 3 else { throw KilnError("\(what): input must be N x C x spatial") }
        return [same(try type(0), Array(x.prefix(2)) + [Int](repeating: 1, count: x.count - 2))]
    case .concat(let axis):
        let idx = (0..<inputs.count).filter(has)
        guard !idx.isEmpty else { throw KilnError("\(what): no inputs") }
        let t = try sameTypes(idx)
        let shapes = try idx.map { try shape($0) }
        let ax = try normalizeAxis(axis, rank: shapes[0].count, what)
        var out = shapes[0]
        out[ax] = 0
        for s in shapes {
            guard s.count == out.count, s.enumerated().allSatisfy({ $0.offset == ax || $0.element == out[$0.offset] }) else {
                throw KilnError("\(what): shapes \(shapes.map(shapeString).joined(separator: ", ")) do not concatenate on axis \(axis)")
            }
            out[ax] = satAdd(out[ax], s[ax])
        }
        return [TensorType(t, out)]
    case .split(let axis):
        let x = try shape(0)
        let ax = try normalizeAxis(axis, rank: x.count, what)
        let sizes = try resolveSplit(dim: x[ax], split: try const(1, "split")?.int64Values, outputs: outCount, what)
        return sizes.map { var s = x; s[ax] = $0; return same(try! type(0), s) }
    case .slice:
        let x = try shape(0)
        guard let starts = try const(1, "starts"), let ends = try const(2, "ends") else { throw KilnError("\(what): starts and ends are required") }
        let r = try resolveSlice(shape: x, starts: starts.int64Values, ends: ends.int64Values,
                                 axes: try const(3, "axes")?.int64Values, steps: try const(4, "steps")?.int64Values, what)
        return [same(try type(0), r.map(\.count))]
    case .reshape(let allowZero):
        guard let target = try const(1, "the target shape") else { throw KilnError("\(what): shape is required") }
        return [same(try type(0), try resolveReshape(input: try shape(0), target: target.int64Values, allowZero: allowZero, what))]
    case .flatten(let axis):
        let x = try shape(0)
        let ax = try normalizeAxis(axis, rank: x.count, inclusive: true, what)
        return [same(try type(0), [shapeProduct(Array(x.prefix(ax))), shapeProduct(Array(x.dropFirst(ax)))])]
    case .transpose(let perm):
        let x = try shape(0)
        let p = perm ?? Array((0..<x.count).reversed())
        guard p.count == x.count, Set(p) == Set(0..<x.count) else { throw KilnError("\(what): perm \(p) is not a permutation of \(x.count) axes") }
        return [same(try type(0), p.map { x[$0] })]
    case .squeeze:
        let x = try shape(0)
        if let axes = try const(1, "axes")?.int64Values {
            let ax = Set(try axes.map { try normalizeAxis(Int(clamping: $0), rank: x.count, what) })
            for a in ax where x[a] != 1 { throw KilnError("\(what): cannot squeeze axis \(a) of size \(x[a])") }
            return [same(try type(0), x.enumerated().filter { !ax.contains($0.offset) }.map(\.element))]
        }
        return [same(try type(0), x.filter { $0 != 1 })]
    case .unsqueeze:
        let x = try shape(0)
        guard let axes = try const(1, "axes")?.int64Values else { throw KilnError("\(what): axes are required") }
        let rank = x.count + axes.count
        let ax = Set(try axes.map { try normalizeAxis(Int(clamping: $0), rank: rank, what) })
        guard ax.count == axes.count else { throw KilnError("\(what): repeated axes") }
        var out: [Int] = []
        var k = 0
        for i in 0..<rank {
            if ax.contains(i) { out.append(1) } else { out.append(x[k]); k += 1 }
        }
        return [same(try type(0), out)]
    case .gather(let axis):
        let x = try shape(0), idx = try shape(1)
        guard try type(1).elementType.isInteger else { throw KilnError("\(what): indices must be integers") }
        let ax = try normalizeAxis(axis, rank: x.count, what)
        return [same(try type(0), Array(x.prefix(ax)) + idx + Array(x.dropFirst(ax + 1)))]
    case .shape(let start, let end):
        let r = try type(0).rank
        let (s, e) = shapeRange(rank: r, start: start, end: end)
        return [TensorType(.s64, [max(0, e - s)])]
    case .cast(let to):
        return [TensorType(to, try shape(0))]
    case .size:
        _ = try shape(0)
        return [TensorType(.s64, [])]
    case .castLike:
        return [TensorType(try type(1).elementType, try shape(0))]
    case .constantOfShape(let v):
        guard let s = try const(0, "shape") else { throw KilnError("\(what): shape is required") }
        let dims = s.int64Values
        guard dims.allSatisfy({ $0 >= 0 && $0 < Int64(Int32.max) }) else { throw KilnError("\(what): invalid shape \(dims)") }
        return [TensorType(v.elementType, dims.map { Int($0) })]
    case .identity, .layoutConvert:
        return [same(try type(0), try shape(0))]
    case .dropout:
        let s = try shape(0)
        if has(2), let mode = try const(2, "training_mode"), mode.int(at: 0) != 0 {
            throw KilnError("\(what): training mode is not supported (inference only)", unsupported: true)
        }
        return [same(try type(0), s)] + (outCount > 1 ? [TensorType(.bool, s)] : [])
    case .pad:
        let x = try shape(0)
        guard let pads = try const(1, "pads")?.int64Values else { throw KilnError("\(what): pads are required") }
        let axes = try padAxes(try const(3, "axes")?.int64Values, rank: x.count, what)
        guard pads.count == 2 * axes.count else { throw KilnError("\(what): pads has \(pads.count) entries for \(axes.count) axes") }
        var out = x
        for (k, a) in axes.enumerated() {
            let d = satAdd(satAdd(x[a], Int(clamping: pads[k])), Int(clamping: pads[k + axes.count]))
            guard d >= 0 else { throw KilnError("\(what): padding makes axis \(a) negative") }
            out[a] = d
        }
        return [same(try type(0), out)]
    case .resize(let r):
        let x = try shape(0)
        if r.coordinateTransformation == .tfCropAndResize { _ = try const(1, "roi") }
        let scales = try const(2, "scales")?.floatValues
        let sizes = try const(3, "sizes")?.int64Values
        return [same(try type(0), try resolveResize(input: x, scales: scales, sizes: sizes, attributes: r, what).output)]
    case .softmax(let axis, _), .logSoftmax(let axis, _):
        try requireFloat(0)
        let x = try shape(0)
        _ = try normalizeAxis(axis, rank: x.count, what)
        return [same(try type(0), x)]
    case .reduce(let kind, let keepDims, let noop):
        let x = try shape(0)
        if kind.needsFloat, !(try type(0).elementType.isFloat) {
            throw KilnError("\(what): \(kind.onnxName) of \(try type(0).elementType) is not supported (floating-point types are)", unsupported: true)
        }
        let axes = try resolveReduceAxes(try const(1, "axes")?.int64Values, rank: x.count, noopWithEmptyAxes: noop, what)
        var out: [Int] = []
        for (i, d) in x.enumerated() {
            if axes.contains(i) { if keepDims { out.append(1) } } else { out.append(d) }
        }
        return [same(try type(0), out)]
    case .expand:
        guard let target = try const(1, "the target shape")?.int64Values else { throw KilnError("\(what): shape is required") }
        guard target.allSatisfy({ $0 >= 0 && $0 < Int64(Int32.max) }) else { throw KilnError("\(what): invalid shape \(target)") }
        return [same(try type(0), try broadcastShapes([try shape(0), target.map { Int($0) }], what))]
    case .range:
        let t = try sameTypes([0, 1, 2])
        guard let s = try const(0, "start"), let l = try const(1, "limit"), let d = try const(2, "delta") else {
            throw KilnError("\(what): start, limit and delta are required")
        }
        guard s.count == 1, l.count == 1, d.count == 1 else { throw KilnError("\(what): start, limit and delta must be scalars") }
        return [TensorType(t, [try rangeCount(start: s.double(at: 0), limit: l.double(at: 0), delta: d.double(at: 0), what)])]
    case .where:
        guard try type(0).elementType == .bool else { throw KilnError("\(what): condition must be bool") }
        let t = try sameTypes([1, 2])
        return [TensorType(t, try broadcastShapes([try shape(0), try shape(1), try shape(2)], what))]
    case .instanceNormalization:
        try requireFloat(0)
        let x = try shape(0)
        guard x.count >= 3 else { throw KilnError("\(what): input must be N x C x spatial, got \(shapeString(x))") }
        for i in [1, 2] where (try shape(i)) != [x[1]] {
            throw KilnError("\(what): \(i == 1 ? "scale" : "B") must have shape [\(x[1])], got \(shapeString(try shape(i)))")
        }
        return [same(try type(0), x)]
    case .depthToSpace(let b, _):
        let x = try shape(0)
        guard x.count == 4, b > 0, b < 1 << 31, x[1] % (b * b) == 0 else {
            throw KilnError("\(what): needs a 4-D input whose channels (\(x.count == 4 ? x[1] : 0)) divide by blocksize² (\(b * b))")
        }
        return [same(try type(0), [x[0], x[1] / (b * b), satMul(x[2], b), satMul(x[3], b)])]
    case .spaceToDepth(let b, _):
        let x = try shape(0)
        guard x.count == 4, b > 0, b < 1 << 31, x[2] % b == 0, x[3] % b == 0 else {
            throw KilnError("\(what): needs a 4-D input whose height and width divide by blocksize (\(b))")
        }
        return [same(try type(0), [x[0], satMul(x[1], b * b), x[2] / b, x[3] / b])]
    case .tile:
        let x = try shape(0)
        guard let r = try const(1, "repeats")?.int64Values else { throw KilnError("\(what): repeats is required") }
        guard r.count == x.count, r.allSatisfy({ $0 >= 0 }) else {
            throw KilnError("\(what): repeats \(r) must have one non-negative entry per axis of \(shapeString(x))")
        }
        return [same(try type(0), zip(x, r).map { satMul($0, Int(clamping: $1)) })]
    case .argReduce(let a):
        let x = try shape(0)
        let ax = try normalizeAxis(a.axis, rank: x.count, what)
        guard x[ax] > 0 else { throw KilnError("\(what): axis \(a.axis) is empty; there is no index to return") }
        var out = x
        if a.keepDims { out[ax] = 1 } else { out.remove(at: ax) }
        return [TensorType(.s64, out)]
    case .gatherElements(let axis):
        let x = try shape(0), idx = try shape(1)
        guard try type(1).elementType.isInteger else { throw KilnError("\(what): indices must be integers") }
        guard x.count == idx.count else {
            throw KilnError("\(what): indices \(shapeString(idx)) must have the rank of data \(shapeString(x))")
        }
        _ = try normalizeAxis(axis, rank: x.count, what)
        return [same(try type(0), idx)]
    case .topK(let a):
        let x = try shape(0)
        let ax = try normalizeAxis(a.axis, rank: x.count, what)
        guard let kt = try const(1, "K"), kt.count == 1 else { throw KilnError("\(what): K is required (one element)") }
        let k = kt.int64Values[0]
        guard k >= 0, k <= Int64(x[ax]) else { throw KilnError("\(what): K = \(k) is not within 0...\(x[ax]), the size of axis \(a.axis)") }
        var out = x
        out[ax] = Int(k)
        return Array([same(try type(0), out), TensorType(.s64, out)].prefix(max(1, outCount)))
    case .layerNormalization(let axis, _):
        try requireFloat(0)
        let x = try shape(0)
        let ax = try normalizeAxis(axis, rank: x.count, what)
        let stats = TensorType(.f32, Array(x.prefix(ax)) + [Int](repeating: 1, count: x.count - ax))
        return Array([same(try type(0), x), stats, stats].prefix(max(1, outCount)))
    case .quantizeLinear(_, let outputType):
        let t = has(2) ? try type(2).elementType : outputType
        guard t == .u8 || t == .s8 else { throw KilnError("\(what): quantizing to \(t) is not supported (u8 and s8 are)", unsupported: true) }
        return [TensorType(t, try shape(0))]
    case .dequantizeLinear:
        let xt = try type(0).elementType
        guard xt == .u8 || xt == .s8 || xt == .s32 else { throw KilnError("\(what): dequantizing \(xt) is not supported", unsupported: true) }
        let st = try type(1).elementType
        guard st.isFloat else { throw KilnError("\(what): scale must be floating point") }
        return [TensorType(st, try shape(0))]
    case .quantized(let q):
        guard q.inputs.count == node.inputs.count, q.output.isPerTensor else {
            throw KilnError("\(what): needs one (or no) quantization per input and a per-tensor output")
        }
        // The inner op sees the real values: f32 where an input is quantized.
        var real = inputs
        for (i, p) in q.inputs.enumerated() {
            guard let p else { continue }
            let t = try type(i)
            guard t.elementType == p.type, p.isPerTensor else {
                throw KilnError("\(what): input \(i) is \(t.elementType), its quantization says \(p.type) (per tensor)")
            }
            real[i] = TensorType(.f32, dims: t.dims)
        }
        var inner = node
        inner.op = q.op
        let out = try inferOutputTypes(inner, inputs: real, constants: constants)
        guard out.count == 1, out[0].elementType == .f32 else { throw KilnError("\(what): the quantized op must have one f32 result") }
        return [TensorType(q.output.type, dims: out[0].dims)]
    case .unsupported(let reason):
        throw KilnError("\(what) is not supported: \(reason)", unsupported: true)
    }
}

/// Start and end (clamped) of a Shape op's slice of the dimensions.
public func shapeRange(rank: Int, start: Int, end: Int?) -> (Int, Int) {
    func clampAxis(_ a: Int) -> Int { min(max(a < 0 ? a + rank : a, 0), rank) }
    return (clampAxis(start), clampAxis(end ?? rank))
}

/// Axes a Pad op pads (all when absent).
public func padAxes(_ axes: [Int64]?, rank: Int, _ what: String) throws -> [Int] {
    guard let ax = axes else { return Array(0..<rank) }
    return try ax.map { try normalizeAxis(Int(clamping: $0), rank: rank, what) }
}

/// Number of elements a Range produces.
public func rangeCount(start: Double, limit: Double, delta: Double, _ what: String) throws -> Int {
    guard delta != 0, start.isFinite, limit.isFinite, delta.isFinite else { throw KilnError("\(what): invalid range") }
    let n = max(0, (limit - start) / delta).rounded(.up)
    guard n < 1e9 else { throw KilnError("\(what): range of \(n) elements is too large") }
    return Int(n)
}
