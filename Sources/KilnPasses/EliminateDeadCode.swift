import KilnIR

/// Removes nodes none of whose outputs reach a graph output.
///
///     before: %a = relu(%x); %b = exp(%x)   -> (%a)
///     after:  %a = relu(%x)                 -> (%a)
///
/// Runs last in the simplification sequence, after folding has cut the shape sub-graphs loose.
public func eliminateDeadCode(_ g: inout Graph) {
    var live = [Bool](repeating: false, count: g.values.count)
    for v in g.outputs { live[v] = true }
    var keep = [Bool](repeating: false, count: g.nodes.count)
    for i in stride(from: g.nodes.count - 1, through: 0, by: -1) {
        let n = g.nodes[i]
        if n.outputs.contains(where: { live[$0] }) {
            keep[i] = true
            for case let v? in n.inputs { live[v] = true }
        }
    }
    g.nodes = g.nodes.enumerated().filter { keep[$0.offset] }.map(\.element)
}
