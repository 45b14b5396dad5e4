/// The type rules of the MatMul family (`OpFamily.matMul`).
extension TypeRule {
    func matMulTypes() throws -> [TensorType] {
        switch node.op {
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
        default: preconditionFailure("\(node.op.name) is not of the matMul family")
        }
    }
}
