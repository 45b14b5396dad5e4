/// The type rules of the Normalize family (`OpFamily.normalize`).
extension TypeRule {
    func normalizeTypes() throws -> [TensorType] {
        switch node.op {
        case .batchNormalization:
            try requireFloat(0)
            let x = try shape(0)
            guard x.count >= 2 else { throw KilnError("\(what): input must have rank 2 or more") }
            for i in 1...4 {
                guard try shape(i) == [x[1]] else { throw KilnError("\(what): parameter \(i) should have \(x[1]) elements") }
            }
            return [try type(0)]
        case .channelScaleShift:
            try requireFloat(0)
            let x = try shape(0)
            guard x.count >= 2, try shape(1) == [x[1]], try shape(2) == [x[1]] else {
                throw KilnError("\(what): scale and shift must have \(x.count >= 2 ? x[1] : 0) elements")
            }
            return [try type(0)]
        case .softmax(let axis, _), .logSoftmax(let axis, _):
            try requireFloat(0)
            let x = try shape(0)
            _ = try normalizeAxis(axis, rank: x.count, what)
            return [same(try type(0), x)]
        case .instanceNormalization:
            try requireFloat(0)
            let x = try shape(0)
            guard x.count >= 3 else { throw KilnError("\(what): input must be N x C x spatial, got \(shapeString(x))") }
            for i in [1, 2] where (try shape(i)) != [x[1]] {
                throw KilnError("\(what): \(i == 1 ? "scale" : "B") must have shape [\(x[1])], got \(shapeString(try shape(i)))")
            }
            return [same(try type(0), x)]
        case .layerNormalization(let axis, _):
            try requireFloat(0)
            let x = try shape(0)
            let ax = try normalizeAxis(axis, rank: x.count, what)
            let stats = TensorType(.f32, Array(x.prefix(ax)) + [Int](repeating: 1, count: x.count - ax))
            return Array([same(try type(0), x), stats, stats].prefix(max(1, outCount)))
        default: preconditionFailure("\(node.op.name) is not of the normalize family")
        }
    }
}
