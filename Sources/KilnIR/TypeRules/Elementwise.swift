/// The type rules of the Elementwise family (`OpFamily.elementwise`).
extension TypeRule {
    func elementwiseTypes() throws -> [TensorType] {
        switch node.op {
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
                guard step.op.traits.elementwiseStep else { throw KilnError("\(what): \(step.op.name) cannot be an elementwise step") }
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
        case .cast(let to):
            return [TensorType(to, try shape(0))]
        case .castLike:
            return [TensorType(try type(1).elementType, try shape(0))]
        case .where:
            guard try type(0).elementType == .bool else { throw KilnError("\(what): condition must be bool") }
            let t = try sameTypes([1, 2])
            return [TensorType(t, try broadcastShapes([try shape(0), try shape(1), try shape(2)], what))]
        default: preconditionFailure("\(node.op.name) is not of the elementwise family")
        }
    }
}
