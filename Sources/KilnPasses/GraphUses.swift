import KilnIR

/// Who writes and who reads each value: what the pattern-recognizing passes ask while matching
/// a chain of nodes (taken once per match attempt; stale after the graph changes).
struct GraphUses {
    let graph: Graph
    let producers: [Int?]
    let consumers: [[Int]]
    let outputs: Set<ValueID>

    init(_ g: Graph) {
        graph = g
        producers = g.producers()
        consumers = g.consumers()
        outputs = Set(g.outputs)
    }

    /// The index of the node that writes `v` (nil for inputs, constants and nil).
    func node(_ v: ValueID?) -> Int? { v.flatMap { producers[$0] } }

    /// Whether node `i` is the only reader of `v` and `v` is no graph output: the value may go
    /// when its chain is replaced.
    func only(_ v: ValueID, readBy i: Int) -> Bool { consumers[v] == [i] && !outputs.contains(v) }

    /// The value of a one-element FP32 constant.
    func scalar(_ v: ValueID?) -> Float? {
        guard let v, let c = graph.values[v].constant, c.count == 1, c.elementType == .f32 else { return nil }
        return c.floats[0]
    }
}
