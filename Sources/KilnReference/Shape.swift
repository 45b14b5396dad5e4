import Foundation
import KilnIR

extension NodeEvaluation {
    /// The reference of the Shape family's ops (`OpFamily.shape`).
    func evaluateShape() throws -> [Tensor] {
        switch node.op {
        case .shape(let start, let end):
            let (s, e) = shapeRange(rank: x(0).rank, start: start, end: end)
            return [Tensor.vector(ints: x(0).shape[s..<max(s, e)].map { Int64($0) })]
        case .size:
            return [Tensor(.s64, shape: [], ints: [Int64(x(0).count)])]
        case .constantOfShape(let v):
            let n = shapeProduct(shape)
            if v.elementType.isFloat { return [Tensor(v.elementType, shape: shape, floats: [Float](repeating: v.floats[0], count: n))] }
            return [Tensor(v.elementType, shape: shape, ints: [Int64](repeating: v.ints[0], count: n))]
        case .range:
            return [range(x(0), x(2), out: out)]
        default: preconditionFailure("\(node.op.name) is not of the shape family")
        }
    }
}
