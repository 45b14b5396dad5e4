import KilnIR

extension ModelEmitter {
    /// The code of the Normalize family's ops (`OpFamily.normalize`).
    mutating func emitNormalize(_ n: Node, index: Int) throws {
        let (x0, y, x) = operands(n)
        switch n.op {
        case .channelScaleShift(let postOps):
            let s = shape(x0!)
            let inner = shapeProduct(Array(s.dropFirst(2)))
            let body = postOpChain(postOps)
            loopCount += 1
            run.line("kiln::scale_shift(\(v(x0!)), \(v(x(1)!)), \(v(x(2)!)), \(v(y)), \(s[0]), \(s[1]), \(inner), \(layout(x0!) == .channelsLast), [](float v) { return \(body); });")
        case .batchNormalization(let eps) where layout(x0!) == .channelsLast:
            let s = shape(x0!)
            loopCount += 1
            run.line("kiln::batch_norm_nhwc(\(v(x0!)), \(v(x(1)!)), \(v(x(2)!)), \(v(x(3)!)), \(v(x(4)!)), \(floatLiteral(eps)), \(v(y)), \(s[0] * shapeProduct(Array(s.dropFirst(2)))), \(s[1]));")
        case .batchNormalization(let eps):
            let s = shape(x0!)
            loopCount += 1
            run.line("kiln::batch_norm(\(v(x0!)), \(v(x(1)!)), \(v(x(2)!)), \(v(x(3)!)), \(v(x(4)!)), \(floatLiteral(eps)), \(v(y)), \(s[0]), \(s[1]), \(shapeProduct(Array(s.dropFirst(2)))));")
        case .instanceNormalization(let eps):
            let s = shape(x0!)
            loopCount += 1
            run.line("kiln::instance_norm(\(v(x0!)), \(v(x(1)!)), \(v(x(2)!)), \(v(y)), \(shapeProduct(Array(s.prefix(2)))), \(s[1]), \(shapeProduct(Array(s.dropFirst(2)))), \(floatLiteral(eps)));")
        case .softmax(let axis, let legacy), .logSoftmax(let axis, let legacy):
            var log = false
            if case .logSoftmax = n.op { log = true }
            let s = shape(x0!)
            let ax = try normalizeAxis(axis, rank: s.count, n.label)
            let outer = shapeProduct(Array(s.prefix(ax)))
            let len = legacy ? shapeProduct(Array(s.dropFirst(ax))) : s[ax]
            let inner = legacy ? 1 : shapeProduct(Array(s.dropFirst(ax + 1)))
            loopCount += 1
            run.line("kiln::softmax(\(v(x0!)), \(v(y)), \(outer), \(len), \(inner), \(log));")
        case .layerNormalization(let axis, let eps):
            let s = shape(x0!)
            let ax = try normalizeAxis(axis, rank: s.count, n.label)
            let normShape = Array(s.dropFirst(ax))
            func indexTable(_ id: ValueID?) -> String {
                guard let id, shape(id) != normShape else { return "nullptr" }
                let strides = broadcastStrides(shape(id), to: normShape)
                var table: [Int] = []
                forEachIndex(normShape) { _, idx in table.append(zip(idx, strides).reduce(0) { $0 + $1.0 * $1.1 }) }
                return "(const int64_t[])\(list(table))"
            }
            loopCount += 1
            run.line("kiln::layer_norm(\(v(x0!)), \(v(x(1)!)), \(indexTable(x(1))), \(x(2).map { v($0) } ?? "(const \(cType(elem(x0!)))*)nullptr"), \(indexTable(x(2))), \(v(y)), \(n.outputs.count > 1 ? v(n.outputs[1]) : "nullptr"), \(n.outputs.count > 2 ? v(n.outputs[2]) : "nullptr"), \(shapeProduct(Array(s.prefix(ax)))), \(shapeProduct(normShape)), \(floatLiteral(eps)));")
        default: preconditionFailure("\(n.op.name) is not of the normalize family")
        }
    }
}
