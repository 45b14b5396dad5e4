import KilnIR

extension ModelEmitter {
    /// The code of the MatMul family's ops (`OpFamily.matMul`).
    mutating func emitMatMul(_ n: Node, index: Int) throws {
        let (x0, y, x) = operands(n)
        switch n.op {
        case .gemm(let a):
            if elem(y) == .f32 && oneDNNGemmApplies(n, a) {
                try emitOneDNNGemm(n, index: index, a)
            } else {
                fallbacks.append("\(n.label): generic loop (\(elem(y) != .f32 ? "element type \(elem(y))" : "alpha ≠ 1, a C operand of rank > 2 with beta ≠ 1, or an empty output"))")
                emitGenericGemm(n, a)
                emitGenericPostOps(a.postOps, y: y, addend: nil)
            }
        case .matMul(let a):
            if elem(y) == .f32 && shapeProduct(shape(y)) > 0 && shapeProduct(shape(x0!)) > 0 {
                try emitOneDNNMatMul(n, index: index, postOps: a.postOps)
            } else {
                fallbacks.append("\(n.label): generic loop (\(elem(y) != .f32 ? "element type \(elem(y))" : "empty tensor"))")
                emitGenericMatMul(n)
                if let bias = x(2) { emitBinary(a: y, b: bias, y: y, op: .add) }
                emitGenericPostOps(a.postOps, y: y, addend: nil)
            }
        default: preconditionFailure("\(n.op.name) is not of the matMul family")
        }
    }
}
