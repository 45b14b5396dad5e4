import KilnIR

extension ModelEmitter {
    /// The code of the Shape family's ops (`OpFamily.shape`).
    mutating func emitShape(_ n: Node, index _: Int) throws {
        let (_, y, _) = operands(n)
        switch n.op {
        case .constantOfShape(let value):
            loopCount += 1
            let lit = value.elementType.isFloat ? "kiln::store<\(cType(value.elementType))>(\(floatLiteral(value.floats[0])))"
                                                : "kiln::store_i<\(cType(value.elementType))>(\(int64Literal(value.ints[0])))"
            run.line("kiln::fill(\(v(y)), \(shapeProduct(shape(y))), \(lit));")
        case .shape, .size, .range:
            throw KilnError("\(n.label): should have been folded to a constant", unsupported: true)
        default: preconditionFailure("\(n.op.name) is not of the shape family")
        }
    }
}
