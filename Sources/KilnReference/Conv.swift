import Foundation
import KilnIR

extension NodeEvaluation {
    /// The reference of the Conv family's ops (`OpFamily.conv`).
    func evaluateConv() throws -> [Tensor] {
        switch node.op {
        case .conv(let a):
            return [applyPostOps(a.postOps, try conv(x(0), x(1), opt(2), a, out: shape, what), addend: opt(3))]
        case .convTranspose(let a):
            return [applyPostOps(a.conv.postOps, try convTranspose(x(0), x(1), opt(2), a, out: shape, what), addend: nil)]
        default: preconditionFailure("\(node.op.name) is not of the conv family")
        }
    }
}
