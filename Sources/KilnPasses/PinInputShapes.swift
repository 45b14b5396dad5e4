import KilnIR

/// Pins the graph inputs' dimensions to the shapes the user gives (`--input-shape NAME=1x3x224x224`).
///
///     before: %image: f32[batch x 1 x 8 x 8]
///     after:  %image: f32[360 x 1 x 8 x 8]
///
/// Fixed dimensions must agree with the given shape; unknown input names are an error.
/// Runs first, before shape inference.
public func pinInputShapes(_ g: inout Graph, _ shapes: [String: [Int]]) throws {
    let names = g.inputs.map { g.values[$0].name }
    for name in shapes.keys where !names.contains(name) {
        throw KilnError("--input-shape names '\(name)', but the model's inputs are: \(names.joined(separator: ", "))")
    }
    for id in g.inputs {
        let v = g.values[id]
        guard let s = shapes[v.name] else { continue }
        guard s.count == v.type.rank else {
            throw KilnError("--input-shape \(v.name)=\(shapeString(s)) has rank \(s.count), but the input is \(v.type) (rank \(v.type.rank))")
        }
        for (k, d) in v.type.dims.enumerated() {
            if let fixed = d.value, fixed != s[k] {
                throw KilnError("--input-shape \(v.name)=\(shapeString(s)): dimension \(k) is fixed to \(fixed) in the model")
            }
        }
        g.values[id].type = TensorType(v.type.elementType, s)
    }
}

/// Dimensions still symbolic after pinning: for each, the input and the nodes it feeds.
public func unpinnedDimensions(_ g: Graph) -> [(input: String, dim: Int, symbol: String, feeds: [String])] {
    let consumers = g.consumers()
    var out: [(String, Int, String, [String])] = []
    for id in g.inputs {
        for (k, d) in g.values[id].type.dims.enumerated() {
            if case .symbolic(let s) = d {
                out.append((g.values[id].name, k, s, consumers[id].map { g.nodes[$0].label }))
            }
        }
    }
    return out
}
