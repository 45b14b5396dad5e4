/// The type rules of the Quantized family (`OpFamily.quantized`).
extension TypeRule {
    func quantizedTypes() throws -> [TensorType] {
        switch node.op {
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
        case .dynamicQuantizedMatMul(let q):
            let a = try shape(0), b = try shape(3)
            guard try type(0).elementType == .u8, try type(1) == TensorType(.f32, []), try type(2) == TensorType(.u8, []),
                  try type(3).elementType == .s8 else {
                throw KilnError("\(what): needs a u8 source with its f32 scale and u8 zero point (scalars) and s8 weights")
            }
            guard a.count >= 2, b.count == 2, a.last == b[0] else {
                throw KilnError("\(what): input \(shapeString(a)) and weights \(shapeString(b)) do not multiply")
            }
            guard q.weights.type == .s8, q.weights.isSymmetric, q.weights.scales.allSatisfy({ $0 > 0 && $0.isFinite }),
                  q.weights.isPerTensor || (q.weights.axis == 1 && q.weights.scales.count == b[1]), !q.postOps.contains(.sum) else {
                throw KilnError("\(what): needs s8 weights, symmetric, with positive scales per tensor or per column")
            }
            if has(4) {
                guard try type(4) == TensorType(.f32, [b[1]]) else { throw KilnError("\(what): the bias must be f32[\(b[1])]") }
            }
            return [TensorType(.f32, Array(a.dropLast()) + [b[1]])]
        case .dynamicQuantizeLinear:
            guard try type(0).elementType == .f32 else { throw KilnError("\(what): quantizes f32, not \(try type(0).elementType)", unsupported: true) }
            return [TensorType(.u8, try shape(0)), TensorType(.f32, []), TensorType(.u8, [])]
        case .convInteger(let a):
            let tx = try type(0).elementType, tw = try type(1).elementType
            guard tx == .u8 || tx == .s8, tw == .u8 || tw == .s8, a.postOps.isEmpty else {
                throw KilnError("\(what): convolves u8 or s8 tensors, not \(tx) and \(tw)", unsupported: true)
            }
            let out = try TypeRule(node: node, inputs: Array(inputs.prefix(2)), constants: Array(constants.prefix(2))).convOutputShape(a)
            if has(2) {
                guard try type(2).elementType == tx, shapeProduct(try shape(2)) == 1 else { throw KilnError("\(what): x_zero_point must be one \(tx)") }
            }
            if has(3) {
                let z = try shape(3), m = try shape(1)[0]
                guard try type(3).elementType == tw, shapeProduct(z) == 1 || z == [m] else {
                    throw KilnError("\(what): w_zero_point must be one \(tw) or one per output channel (\(m)), not \(shapeString(z))")
                }
            }
            return [TensorType(.s32, out)]
        case .matMulInteger:
            let ta = try type(0).elementType, tb = try type(1).elementType
            guard ta == .u8 || ta == .s8, tb == .u8 || tb == .s8 else {
                throw KilnError("\(what): multiplies u8 or s8 tensors, not \(ta) and \(tb)", unsupported: true)
            }
            for (i, t, role) in [(2, ta, "A"), (3, tb, "B")] where has(i) {
                guard try type(i).elementType == t else { throw KilnError("\(what): \(role)'s zero point must be \(t) as \(role) is") }
            }
            let a = try shape(0), b = try shape(1)
            let out = try matMulShape(a, b, what)
            // Per tensor, or per row of a 2-D A and per column of a 2-D B.
            for (i, x, dim, role) in [(2, a, 0, "a row of A"), (3, b, 1, "a column of B")] where has(i) {
                let z = try shape(i)
                guard shapeProduct(z) == 1 || (x.count == 2 && z == [x[dim]]) else {
                    throw KilnError("\(what): zero point \(shapeString(z)): Kiln takes one per tensor, or one per \(role) when it is 2-D", unsupported: true)
                }
            }
            return [TensorType(.s32, out)]
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
        default: preconditionFailure("\(node.op.name) is not of the quantized family")
        }
    }
}
