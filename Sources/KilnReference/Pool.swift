import Foundation
import KilnIR

extension NodeEvaluation {
    /// The reference of the Pool family's ops (`OpFamily.pool`).
    func evaluatePool() throws -> [Tensor] {
        switch node.op {
        case .maxPool(let p):
            return [try pool(x(0), p, average: false, out: shape, what)]
        case .averagePool(let p):
            return [try pool(x(0), p, average: true, out: shape, what)]
        case .globalAveragePool:
            return [globalPool(x(0), average: true)]
        case .globalMaxPool:
            return [globalPool(x(0), average: false)]
        default: preconditionFailure("\(node.op.name) is not of the pool family")
        }
    }
}
