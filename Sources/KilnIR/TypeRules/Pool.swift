/// The type rules of the Pool family (`OpFamily.pool`).
extension TypeRule {
    func poolTypes() throws -> [TensorType] {
        switch node.op {
        case .maxPool(let p), .averagePool(let p):
            let x = try shape(0)
            guard x.count >= 3 else { throw KilnError("\(what): input must be N x C x spatial") }
            if case .averagePool = node.op { try requireFloat(0) }
            let g = try windowGeometry(input: Array(x.dropFirst(2)), kernel: p.kernelShape, strides: p.strides, pads: p.pads,
                                       dilations: p.dilations, autoPad: p.autoPad, ceilMode: p.ceilMode, what)
            return [same(try type(0), Array(x.prefix(2)) + g.output)]
        case .globalAveragePool, .globalMaxPool:
            let x = try shape(0)
            guard x.count >= 3 else { throw KilnError("\(what): input must be N x C x spatial") }
            return [same(try type(0), Array(x.prefix(2)) + [Int](repeating: 1, count: x.count - 2))]
        default: preconditionFailure("\(node.op.name) is not of the pool family")
        }
    }
}
