/// The type rules of the Shape family (`OpFamily.shape`).
extension TypeRule {
    func shapeTypes() throws -> [TensorType] {
        switch node.op {
        case .shape(let start, let end):
            let r = try type(0).rank
            let (s, e) = shapeRange(rank: r, start: start, end: end)
            return [TensorType(.s64, [max(0, e - s)])]
        case .size:
            _ = try shape(0)
            return [TensorType(.s64, [])]
        case .constantOfShape(let v):
            guard let s = try const(0, "shape") else { throw KilnError("\(what): shape is required") }
            let dims = s.int64Values
            guard dims.allSatisfy({ $0 >= 0 && $0 < Int64(Int32.max) }) else { throw KilnError("\(what): invalid shape \(dims)") }
            return [TensorType(v.elementType, dims.map { Int($0) })]
        case .range:
            let t = try sameTypes([0, 1, 2])
            guard let s = try const(0, "start"), let l = try const(1, "limit"), let d = try const(2, "delta") else {
                throw KilnError("\(what): start, limit and delta are required")
            }
            guard s.count == 1, l.count == 1, d.count == 1 else { throw KilnError("\(what): start, limit and delta must be scalars") }
            return [TensorType(t, [try rangeCount(start: s.double(at: 0), limit: l.double(at: 0), delta: d.double(at: 0), what)])]
        default: preconditionFailure("\(node.op.name) is not of the shape family")
        }
    }
}
