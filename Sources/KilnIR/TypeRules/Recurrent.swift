/// The type rules of the Recurrent family (`OpFamily.recurrent`).
extension TypeRule {
    func recurrentTypes() throws -> [TensorType] {
        guard case .recurrent(let a) = node.op else { preconditionFailure("\(node.op.name) is not of the recurrent family") }
        let x = try shape(0), w = try shape(1), r = try shape(2)
        for i in [0, 1, 2, 3, 5, 6, 7] where has(i) {
            guard try type(i).elementType == .f32 else {
                throw KilnError("\(what): operand \(i) is \(try type(i).elementType); Kiln's \(a.kind.rawValue.uppercased()) takes f32", unsupported: true)
            }
        }
        let d = a.direction.count, g = a.kind.gates, h = a.hiddenSize
        guard x.count == 3 else { throw KilnError("\(what): X must be 3-D, not \(shapeString(x))") }
        let (seq, batch, input) = a.batchMajor ? (x[1], x[0], x[2]) : (x[0], x[1], x[2])
        guard h > 0, w == [d, g * h, input], r == [d, g * h, h] else {
            throw KilnError("\(what): with \(d) direction\(d == 1 ? "" : "s"), hidden size \(h) and input size \(input), W must be \(shapeString([d, g * h, input])) and R \(shapeString([d, g * h, h])), not \(shapeString(w)) and \(shapeString(r))")
        }
        guard a.activations.count == a.kind.functions * d else {
            throw KilnError("\(what): \(a.activations.count) activations, \(a.kind.rawValue.uppercased()) takes \(a.kind.functions) per direction")
        }
        let state = a.batchMajor ? [batch, d, h] : [d, batch, h]
        var expected: [(Int, [Int], String)] = [(3, [d, 2 * g * h], "B"), (5, state, "initial_h")]
        if a.kind == .lstm { expected += [(6, state, "initial_c"), (7, [d, 3 * h], "P")] }
        for (i, s, role) in expected where has(i) {
            guard try shape(i) == s else { throw KilnError("\(what): \(role) must be \(shapeString(s)), not \(shapeString(try shape(i)))") }
        }
        if has(4) {
            guard try type(4) == TensorType(.s32, [batch]) else { throw KilnError("\(what): sequence_lens must be s32[\(batch)], not \(try type(4))") }
        }
        if a.kind != .lstm, node.inputs.count > 6, node.inputs[6...].contains(where: { $0 != nil }) {
            throw KilnError("\(what): \(a.kind.rawValue.uppercased()) has no initial_c or P")
        }
        guard (1...(a.kind == .lstm ? 3 : 2)).contains(outCount) else {
            throw KilnError("\(what): \(outCount) outputs; \(a.kind.rawValue.uppercased()) has \(a.kind == .lstm ? 3 : 2)")
        }
        let y = TensorType(.f32, a.batchMajor ? [batch, seq, d, h] : [seq, d, batch, h])
        return Array([y, TensorType(.f32, state), TensorType(.f32, state)].prefix(outCount))
    }
}
