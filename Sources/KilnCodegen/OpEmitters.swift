import KilnIR

/// The dispatch: for each node, its run-time code (and, for oneDNN primitives, its create-time
/// code), by op family: OpFamilies/ has a file per family (`OpFamily`), which writes the small
/// cases itself and calls the kernel emitters (OneDNNEmitters, QuantizedEmitters,
/// ElementwiseEmitters, DataMovementEmitters, GenericComputeEmitters) otherwise.
extension ModelEmitter {
    mutating func emit(_ n: Node, index: Int) throws {
        switch n.op.family {
        case .conv: try emitConv(n, index: index)
        case .pool: try emitPool(n, index: index)
        case .elementwise: try emitElementwise(n, index: index)
        case .normalize: try emitNormalize(n, index: index)
        case .reduce: try emitReduce(n, index: index)
        case .dataMovement: try emitDataMovement(n, index: index)
        case .matMul: try emitMatMul(n, index: index)
        case .quantized: try emitQuantized(n, index: index)
        case .shape: try emitShape(n, index: index)
        case .recurrent: try emitRecurrent(n, index: index)
        case .unsupported: try emitUnsupported(n, index: index)
        }
    }

    /// A node's first operand, its first output, and its operand `i` (nil when absent).
    func operands(_ n: Node) -> (x0: ValueID?, y: ValueID, x: (Int) -> ValueID?) {
        (n.inputs.first ?? nil, n.outputs[0], { i in i < n.inputs.count ? n.inputs[i] : nil })
    }

    /// The constant scale and zero point of a per-tensor QuantizeLinear or DequantizeLinear
    /// between f32 and u8/s8, and which of the two it is (nil otherwise).
    func perTensorParameters(_ n: Node) -> (scale: Float, zero: Int32, quantizes: Bool)? {
        let quantizes: Bool
        switch n.op {
        case .quantizeLinear: quantizes = true
        case .dequantizeLinear: quantizes = false
        default: return nil
        }
        guard n.inputs.count >= 2, let s = constant(n.inputs[1]), s.count == 1, s.elementType == .f32 else { return nil }
        let z = n.inputs.count > 2 ? n.inputs[2] : nil
        if z != nil { guard let zt = constant(z), zt.count == 1 else { return nil } }
        let (integer, real) = quantizes ? (elem(n.outputs[0]), elem(n.inputs[0]!)) : (elem(n.inputs[0]!), elem(n.outputs[0]))
        guard integer == .u8 || integer == .s8, real == .f32 else { return nil }
        return (s.floats[0], Int32(constant(z)?.ints[0] ?? 0), quantizes)
    }

    func quantParams(_ x: ValueID, scale: ValueID, axis: Int, _ what: String) throws -> (inner: Int, dim: Int) {
        let s = shape(scale)
        if shapeProduct(s) == 1 && s.count <= 1 { return (1, 1) }
        let xs = shape(x)
        let ax = try normalizeAxis(axis, rank: xs.count, what)
        return (shapeProduct(Array(xs.dropFirst(ax + 1))), xs[ax])
    }
}

extension ModelEmitter {
    func layout(_ id: ValueID) -> Layout { g.values[id].layout }

    /// The shape in memory order.
    func physicalShape(_ id: ValueID) -> [Int] {
        let s = shape(id)
        return layout(id).physicalOrder(rank: s.count).map { s[$0] }
    }

    /// A concatenation or split along `axis` of `whole` into `parts` (all in `whole`'s layout), as
    /// rows in memory order: each part's chunk of a row (elements from the axis on) and the rows.
    func rowChunks(along axis: Int, of whole: ValueID, parts: [ValueID], _ label: String) throws -> (chunks: [Int], rows: Int) {
        let rank = shape(whole).count
        let ax = try normalizeAxis(axis, rank: rank, label)
        let order = layout(whole).physicalOrder(rank: rank)
        let pax = order.firstIndex(of: ax)!
        func physical(_ id: ValueID) -> [Int] { order.map { shape(id)[$0] } }
        return (parts.map { shapeProduct(Array(physical($0).dropFirst(pax))) }, shapeProduct(Array(physical(whole).prefix(pax))))
    }

    /// Strides that read `a` (in its own layout, broadcast numpy-style) while walking `y`'s
    /// elements in `y`'s memory order.
    func iterationStrides(_ a: ValueID, over y: ValueID) -> [Int] {
        let out = shape(y), sa = shape(a)
        let la = layout(a).strides(sa)
        var s = [Int](repeating: 0, count: out.count)
        for k in 0..<sa.count {
            let d = out.count - sa.count + k
            s[d] = sa[k] == 1 ? 0 : la[k]
        }
        return layout(y).physicalOrder(rank: out.count).map { s[$0] }
    }
}

/// Strides that read a tensor of `shape` broadcast to `out` (0 on broadcast axes).
func broadcastStrides(_ shape: [Int], to out: [Int]) -> [Int] {
    let padded = [Int](repeating: 1, count: out.count - shape.count) + shape
    let strides = contiguousStrides(padded)
    return (0..<out.count).map { padded[$0] == 1 && out[$0] != 1 ? 0 : (padded[$0] == 1 ? 0 : strides[$0]) }
}

/// Matmul operands promoted to rank ≥ 2 and equal rank, and the broadcast batch shape.
func matMulOperands(_ a: [Int], _ b: [Int]) -> (a: [Int], b: [Int], batch: [Int]) {
    var a2 = a.count == 1 ? [1, a[0]] : a
    var b2 = b.count == 1 ? [b[0], 1] : b
    let rank = max(a2.count, b2.count)
    a2 = [Int](repeating: 1, count: rank - a2.count) + a2
    b2 = [Int](repeating: 1, count: rank - b2.count) + b2
    let batch = zip(a2.dropLast(2), b2.dropLast(2)).map { max($0, $1) }
    return (a2, b2, batch)
}
