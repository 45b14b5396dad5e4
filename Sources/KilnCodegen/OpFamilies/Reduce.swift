import KilnIR

extension ModelEmitter {
    /// The code of the Reduce family's ops (`OpFamily.reduce`).
    mutating func emitReduce(_ n: Node, index _: Int) throws {
        let (x0, y, x) = operands(n)
        switch n.op {
        case .argReduce(let a):
            let s = shape(x0!)
            let ax = try normalizeAxis(a.axis, rank: s.count, n.label)
            loopCount += 1
            run.line("kiln::arg_reduce(\(v(x0!)), \(v(y)), \(shapeProduct(Array(s.prefix(ax)))), \(s[ax]), \(shapeProduct(Array(s.dropFirst(ax + 1)))), \(a.largest), \(a.selectLastIndex));")
        case .topK(let a):
            let s = shape(x0!)
            let ax = try normalizeAxis(a.axis, rank: s.count, n.label)
            let k = shape(y)[ax]
            loopCount += 1
            guard n.outputs.count > 1 else { throw KilnError("\(n.label): internal error: TopK without its indices output") }
            run.line("kiln::top_k(\(v(x0!)), \(v(y)), \(v(n.outputs[1])), \(shapeProduct(Array(s.prefix(ax)))), \(s[ax]), \(shapeProduct(Array(s.dropFirst(ax + 1)))), \(k), \(a.largest));")
        case .reduce(let kind, _, let noop):
            let s = shape(x0!)
            let axes = try resolveReduceAxes(constant(x(1))?.int64Values, rank: s.count, noopWithEmptyAxes: noop, n.label)
            if axes.isEmpty {
                copy(x0!, to: y)
            } else {
                loopCount += 1
                run.open()
                run.line("const \(cType(elem(x0!)))* p0 = \(v(x0!));")
                emitReduceLoop(shape: s, strides: [contiguousStrides(s)], axes: axes, kind: kind, out: y,
                               valueType: elem(x0!), body: ["return kiln::load(p0[o[0]]);"])
                run.close()
            }
        default: preconditionFailure("\(n.op.name) is not of the reduce family")
        }
    }
}
