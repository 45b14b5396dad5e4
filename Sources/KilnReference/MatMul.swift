import Foundation
import KilnIR

extension NodeEvaluation {
    /// The reference of the MatMul family's ops (`OpFamily.matMul`).
    func evaluateMatMul() throws -> [Tensor] {
        switch node.op {
        case .gemm(let a):
            return [applyPostOps(a.postOps, gemm(x(0), x(1), opt(2), a, out: shape), addend: nil)]
        case .matMul(let a):
            var y = matMul(x(0), x(1), out: out)
            if let bias = opt(2) { y = try binary(.add, y, bias, out: out) }
            return [applyPostOps(a.postOps, y, addend: nil)]
        default: preconditionFailure("\(node.op.name) is not of the matMul family")
        }
    }
}
