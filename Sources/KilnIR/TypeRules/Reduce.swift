/// The type rules of the Reduce family (`OpFamily.reduce`).
extension TypeRule {
    func reduceTypes() throws -> [TensorType] {
        switch node.op {
        case .reduce(let kind, let keepDims, let noop):
            let x = try shape(0)
            if kind.needsFloat, !(try type(0).elementType.isFloat) {
                throw KilnError("\(what): \(kind.onnxName) of \(try type(0).elementType) is not supported (floating-point types are)", unsupported: true)
            }
            let axes = try resolveReduceAxes(try const(1, "axes")?.int64Values, rank: x.count, noopWithEmptyAxes: noop, what)
            var out: [Int] = []
            for (i, d) in x.enumerated() {
                if axes.contains(i) { if keepDims { out.append(1) } } else { out.append(d) }
            }
            return [same(try type(0), out)]
        case .argReduce(let a):
            let x = try shape(0)
            let ax = try normalizeAxis(a.axis, rank: x.count, what)
            guard x[ax] > 0 else { throw KilnError("\(what): axis \(a.axis) is empty; there is no index to return") }
            var out = x
            if a.keepDims { out[ax] = 1 } else { out.remove(at: ax) }
            return [TensorType(.s64, out)]
        case .topK(let a):
            let x = try shape(0)
            let ax = try normalizeAxis(a.axis, rank: x.count, what)
            guard let kt = try const(1, "K"), kt.count == 1 else { throw KilnError("\(what): K is required (one element)") }
            let k = kt.int64Values[0]
            guard k >= 0, k <= Int64(x[ax]) else { throw KilnError("\(what): K = \(k) is not within 0...\(x[ax]), the size of axis \(a.axis)") }
            var out = x
            out[ax] = Int(k)
            return Array([same(try type(0), out), TensorType(.s64, out)].prefix(max(1, outCount)))
        default: preconditionFailure("\(node.op.name) is not of the reduce family")
        }
    }
}
