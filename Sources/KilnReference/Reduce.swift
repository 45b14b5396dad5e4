import Foundation
import KilnIR

extension NodeEvaluation {
    /// The reference of the Reduce family's ops (`OpFamily.reduce`).
    func evaluateReduce() throws -> [Tensor] {
        switch node.op {
        case .reduce(let r, _, let noop):
            let axes = try resolveReduceAxes(opt(1)?.int64Values, rank: x(0).rank, noopWithEmptyAxes: noop, what)
            return [reduce(r, x(0), axes: axes, out: shape)]
        case .argReduce(let a):
            return [argReduce(x(0), a, axis: try normalizeAxis(a.axis, rank: x(0).rank, what), out: shape)]
        case .topK(let a):
            let r = topK(x(0), k: Int(x(1).int64Values[0]), axis: try normalizeAxis(a.axis, rank: x(0).rank, what), largest: a.largest)
            return [r.values, r.indices]
        default: preconditionFailure("\(node.op.name) is not of the reduce family")
        }
    }
}
