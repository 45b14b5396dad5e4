/// The type rules of the Conv family (`OpFamily.conv`).
extension TypeRule {
    func convTypes() throws -> [TensorType] {
        switch node.op {
        case .conv(let a):
            try requireFloat(0)
            let out = same(try type(0), try convOutputShape(a))
            if a.postOps.contains(.sum) {
                guard try type(3) == out else { throw KilnError("\(what): the sum post-op's addend must be \(out)") }
            }
            return [out]
        case .convTranspose(let a):
            try requireFloat(0)
            let x = try shape(0), w = try shape(1)
            guard x.count >= 3, w.count == x.count, x[1] == w[0], a.conv.group > 0 else {
                throw KilnError("\(what): input \(shapeString(x)) does not match weight \(shapeString(w))")
            }
            let g = try convTransposeGeometry(input: Array(x.dropFirst(2)), kernel: Array(w.dropFirst(2)), attributes: a, what)
            return [same(try type(0), [x[0], satMul(w[1], a.conv.group)] + g.output)]
        default: preconditionFailure("\(node.op.name) is not of the conv family")
        }
    }
}
