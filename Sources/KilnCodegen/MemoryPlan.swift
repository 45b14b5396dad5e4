import KilnIR

/// Where a value lives while the model runs.
public enum Storage: Equatable, Sendable {
    /// The caller's i-th input buffer.
    case input(Int)
    /// The caller's j-th output buffer.
    case output(Int)
    /// `offset` bytes into the model instance's arena.
    case arena(offset: Int)
    /// `offset` bytes into the weights blob linked into the library.
    case constant(offset: Int)
}

/// The memory plan of a graph: a storage for every value the nodes touch, the arena size and
/// the weights blob's layout.
public struct MemoryPlan: Sendable {
    public var storage: [ValueID: Storage] = [:]
    public var arenaBytes = 0
    /// Constants in blob order, each at its offset.
    public var constants: [(value: ValueID, offset: Int)] = []
    public var weightsBytes = 0
    /// The arena's buffers, each with the values that share it and the nodes (indices into the
    /// planned graph) from the first that writes it to the last that reads it: the arena over
    /// time, as NAME.report.html draws it.
    public var buffers: [ArenaBuffer] = []

    public static let alignment = 64
}

/// One buffer of the arena: `size` bytes at `offset`, live from node `first` to node `last`.
public struct ArenaBuffer: Sendable, Equatable {
    public var values: [ValueID]
    public var offset: Int
    public var size: Int
    public var first: Int
    public var last: Int
}

@inline(__always)
func alignUp(_ n: Int, _ a: Int = MemoryPlan.alignment) -> Int { (n + a - 1) / a * a }

/// Assigns storage: graph inputs and outputs live in the caller's buffers, constants in the
/// weights blob, and every other value in one arena at offsets from a liveness-based first-fit
/// planner, so values whose lifetimes do not overlap share bytes.
public func planMemory(_ g: Graph) -> MemoryPlan {
    var plan = MemoryPlan()
    for (i, v) in g.inputs.enumerated() { plan.storage[v] = .input(i) }
    for (j, v) in g.outputs.enumerated() where plan.storage[v] == nil && g.values[v].constant == nil {
        plan.storage[v] = .output(j)
    }
    // Constants read by nodes or returned as outputs go into the blob.
    var used = Set<ValueID>()
    for n in g.nodes { for case let v? in n.inputs { used.insert(v) } }
    for v in g.outputs { used.insert(v) }
    var offset = 0
    for v in used.sorted() where g.values[v].constant != nil {
        plan.storage[v] = .constant(offset: offset)
        plan.constants.append((v, offset))
        offset = alignUp(offset + max(g.values[v].type.byteSize ?? 0, 1))
    }
    plan.weightsBytes = offset

    // Live intervals of the intermediates: [defining node, last reading node].
    var first: [ValueID: Int] = [:], last: [ValueID: Int] = [:]
    for (i, n) in g.nodes.enumerated() {
        for v in n.outputs where plan.storage[v] == nil { first[v] = i; last[v] = i }
        for case let v? in n.inputs where first[v] != nil { last[v] = i }
    }
    // Buffers shared by several values (union-find): a reshape's output is its input's bytes;
    // a convolution with a sum post-op writes into its addend's buffer when the addend dies there
    // and is not also one of the convolution's other operands.
    var parent: [ValueID: ValueID] = [:]
    func root(_ v: ValueID) -> ValueID {
        var r = v
        while let p = parent[r] { r = p }
        return r
    }
    func merge(_ v: ValueID, into r: ValueID) {
        let rv = root(v), rr = root(r)
        guard rv != rr else { return }
        parent[rv] = rr
        first[rr] = min(first[rr]!, first[rv]!)
        last[rr] = max(last[rr]!, last[rv]!)
    }
    for (i, n) in g.nodes.enumerated() {
        let y = n.outputs.first
        switch n.op {
        case _ where n.op.traits.movement == .reshapes || n.op == .layoutConvert:
            guard n.outputs.count == 1, let x = n.inputs[0], let y, first[x] != nil, first[y] != nil else { continue }
            if case .layoutConvert = n.op, !Layout.sameBytes(g.values[y].type.shape ?? [], g.values[x].layout, g.values[y].layout) { continue }
            merge(y, into: x)
        case .transpose(let perm):
            guard let p = perm, let x = n.inputs[0], let y, first[x] != nil, first[y] != nil, let xs = g.values[x].type.shape,
                  Layout.transposeKeepsBytes(xs, perm: p, from: g.values[x].layout, to: g.values[y].layout) else { continue }
            merge(y, into: x)
        case _ where n.op.sumsIntoAddend:
            guard n.inputs.count > 3, let addend = n.inputs[3], let y, first[addend] != nil, first[y] != nil,
                  last[root(addend)] == i, g.values[addend].layout.storageBytes(g.values[addend].type) == g.values[y].layout.storageBytes(g.values[y].type),
                  // The convolution still reads its other operands while it writes: none may share the addend's bytes.
                  !n.inputs.prefix(3).contains(where: { $0.map { first[$0] != nil && root($0) == root(addend) } ?? false }) else { continue }
            merge(y, into: addend)
        default: continue
        }
    }
    struct Block { var offset: Int; var size: Int; var start: Int; var end: Int }
    var placed: [Block] = []
    var bufferSize: [ValueID: Int] = [:]
    for v in first.keys {
        let r = root(v)
        bufferSize[r] = max(bufferSize[r] ?? 0, alignUp(max(g.values[v].layout.storageBytes(g.values[v].type) ?? 0, 1)))
    }
    let order = bufferSize.keys.sorted {
        let a = bufferSize[$0]!, b = bufferSize[$1]!
        return a != b ? a > b : $0 < $1
    }
    var members: [ValueID: [ValueID]] = [:]
    for v in first.keys.sorted() { members[root(v), default: []].append(v) }
    var offsets: [ValueID: Int] = [:]
    for r in order {
        let size = bufferSize[r]!
        let (s, e) = (first[r]!, last[r]!)
        let overlapping = placed.filter { !($0.end < s || e < $0.start) }.sorted { $0.offset < $1.offset }
        var candidate = 0
        for b in overlapping {
            if candidate + size <= b.offset { break }
            candidate = max(candidate, b.offset + b.size)
        }
        placed.append(Block(offset: candidate, size: size, start: s, end: e))
        offsets[r] = candidate
        plan.buffers.append(ArenaBuffer(values: members[r] ?? [r], offset: candidate, size: size, first: s, last: e))
        plan.arenaBytes = max(plan.arenaBytes, candidate + size)
    }
    for v in first.keys { plan.storage[v] = .arena(offset: offsets[root(v)]!) }
    return plan
}
