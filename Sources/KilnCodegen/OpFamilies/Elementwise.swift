import KilnIR

extension ModelEmitter {
    /// The code of the Elementwise family's ops (`OpFamily.elementwise`).
    mutating func emitElementwise(_ n: Node, index _: Int) throws {
        let (x0, y, x) = operands(n)
        switch n.op {
        case .unary(let u):
            emitMap(n, unaryExpression(u, elem(x0!)))
        case .leakyRelu, .elu, .selu, .hardSigmoid, .gelu:
            emitMap(n, n.op.scalarFunction!.cpp)
        case .clip:
            emitClip(n)
        case .binary(let b):
            emitBinary(a: x0!, b: x(1)!, y: y, op: b)
        case .variadic(let b):
            let inputs = n.inputs.compactMap { $0 }
            if inputs.count == 1 {
                copy(inputs[0], to: y)
            } else {
                emitBinary(a: inputs[0], b: inputs[1], y: y, op: b)
                for extra in inputs.dropFirst(2) { emitBinary(a: y, b: extra, y: y, op: b) }
            }
        case .alignForBroadcast:
            copy(x(1)!, to: y)
        case .where:
            let out = physicalShape(y)
            loopCount += 1
            run.open()
            run.line("static const int64_t shape[] = \(list(out)), sc[] = \(list(iterationStrides(x0!, over: y))), sa[] = \(list(iterationStrides(x(1)!, over: y))), sb[] = \(list(iterationStrides(x(2)!, over: y)));")
            run.line("kiln::where(\(v(x0!)), sc, \(v(x(1)!)), sa, \(v(x(2)!)), sb, \(v(y)), \(out.count), shape);")
            run.close()
        case .cast, .castLike:
            emitMap(n, "v")
        case .elementwiseGroup(let e):
            emitElementwiseGroup(n, e)
        default: preconditionFailure("\(n.op.name) is not of the elementwise family")
        }
    }
}
