/// Puts several graphs side by side in one: their inputs, outputs, values and nodes, each name
/// prefixed with `prefix/`. Tests use it to compile many small cases into one library.
public func mergeGraphs(_ parts: [(prefix: String, graph: Graph)], name: String = "merged") -> Graph {
    var out = Graph(name: name, opset: parts.map(\.graph.opset).max() ?? 17)
    for (prefix, g) in parts {
        let base = out.values.count
        for v in g.values {
            out.values.append(Value(name: "\(prefix)/\(v.name)", type: v.type, constant: v.constant, layout: v.layout))
        }
        for n in g.nodes {
            out.nodes.append(Node(name: "\(prefix)/\(n.name)", op: n.op, inputs: n.inputs.map { $0.map { $0 + base } },
                                  outputs: n.outputs.map { $0 + base }, origin: n.origin))
        }
        out.inputs += g.inputs.map { $0 + base }
        out.outputs += g.outputs.map { $0 + base }
    }
    return out
}
