import Foundation
import KilnIR

extension NodeEvaluation {
    /// The reference of the Normalize family's ops (`OpFamily.normalize`).
    func evaluateNormalize() throws -> [Tensor] {
        switch node.op {
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
        case .softmax(let axis, let legacy):
            return [softmax(x(0), axis: try normalizeAxis(axis, rank: shape.count, what), legacy: legacy, log: false)]
        case .logSoftmax(let axis, let legacy):
            return [softmax(x(0), axis: try normalizeAxis(axis, rank: shape.count, what), legacy: legacy, log: true)]
        case .instanceNormalization(let eps):
            return [instanceNorm(x(0), x(1), x(2), eps: eps)]
        case .layerNormalization(let axis, let eps):
            let r = layerNorm(x(0), x(1), opt(2), axis: try normalizeAxis(axis, rank: shape.count, what), eps: eps)
            return Array([r.y, r.mean, r.invStdDev].prefix(node.outputs.count))
        default: preconditionFailure("\(node.op.name) is not of the normalize family")
        }
    }
}
