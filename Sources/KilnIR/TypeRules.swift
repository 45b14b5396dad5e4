/// The output types of a node, from its input types and whichever inputs are constant.
/// Inputs must have static shapes; operands that decide a shape (Reshape's target, Slice's
/// bounds, Resize's sizes, ...) must be constant. Errors name the node.
public func inferOutputTypes(_ node: Node, inputs: [TensorType?], constants: [Tensor?]) throws -> [TensorType] {
    let r = TypeRule(node: node, inputs: inputs, constants: constants)
    switch node.op.family {
    case .conv: return try r.convTypes()
    case .pool: return try r.poolTypes()
    case .elementwise: return try r.elementwiseTypes()
    case .normalize: return try r.normalizeTypes()
    case .reduce: return try r.reduceTypes()
    case .dataMovement: return try r.dataMovementTypes()
    case .matMul: return try r.matMulTypes()
    case .quantized: return try r.quantizedTypes()
    case .shape: return try r.shapeTypes()
    case .recurrent: return try r.recurrentTypes()
    case .unsupported:
        guard case .unsupported(let reason) = node.op else { preconditionFailure() }
        throw KilnError("\(node.label) is not supported: \(reason)", unsupported: true)
    }
}

/// What a type rule reads, the node with its input types and constant inputs, and the checks
/// the rules share; errors name the node. The rules themselves are in TypeRules/, a file per
/// op family.
struct TypeRule {
    let node: Node
    let inputs: [TensorType?]
    let constants: [Tensor?]
    var what: String { node.label }
    var outCount: Int { node.outputs.count }
    func type(_ i: Int) throws -> TensorType {
        guard i < inputs.count, let t = inputs[i] else { throw KilnError("\(what): input \(i) is missing") }
        return t
    }
    func shape(_ i: Int) throws -> [Int] {
        let t = try type(i)
        guard let s = t.shape else {
            throw KilnError("\(what): input \(i) has a dynamic shape \(t); pin the model's inputs with --input-shape")
        }
        return s
    }
    func has(_ i: Int) -> Bool { i < inputs.count && inputs[i] != nil }
    func const(_ i: Int, _ role: String) throws -> Tensor? {
        guard has(i) else { return nil }
        guard i < constants.count, let c = constants[i] else {
            throw KilnError("\(what): \(role) must be a constant (it is computed at run time, which Kiln does not support)", unsupported: true)
        }
        return c
    }
    func same(_ t: TensorType, _ s: [Int]) -> TensorType { TensorType(t.elementType, s) }
    func sameTypes(_ idx: [Int]) throws -> ElementType {
        let t0 = try type(idx[0]).elementType
        for i in idx.dropFirst() where has(i) {
            let t = try type(i).elementType
            guard t == t0 else { throw KilnError("\(what): input \(i) is \(t) but input \(idx[0]) is \(t0)") }
        }
        return t0
    }
    func requireFloat(_ i: Int) throws {
        let t = try type(i).elementType
        guard t.isFloat else { throw KilnError("\(what): input \(i) must be floating point, is \(t)") }
    }
    /// Checks a convolution's source, weights and bias; its output shape.
    func convOutputShape(_ a: ConvAttributes) throws -> [Int] {
        let x = try shape(0), w = try shape(1)
        guard x.count >= 3, w.count == x.count else {
            throw KilnError("\(what): input \(shapeString(x)) and weight \(shapeString(w)) must have the same rank, at least 3")
        }
        guard a.group > 0, x[1] == satMul(w[1], a.group), w[0] % a.group == 0 else {
            throw KilnError("\(what): \(x[1]) input channels do not match weight \(shapeString(w)) with group \(a.group)")
        }
        if has(2) {
            let b = try shape(2)
            guard b == [w[0]] else { throw KilnError("\(what): bias \(shapeString(b)) should be \(w[0])") }
        }
        let k = Array(w.dropFirst(2))
        if let ks = a.kernelShape, ks != k { throw KilnError("\(what): kernel_shape \(ks) does not match weight \(shapeString(w))") }
        let g = try windowGeometry(input: Array(x.dropFirst(2)), kernel: k, strides: a.strides, pads: a.pads,
                                   dilations: a.dilations, autoPad: a.autoPad, what)
        return [x[0], w[0]] + g.output
    }

}

/// Start and end (clamped) of a Shape op's slice of the dimensions.
public func shapeRange(rank: Int, start: Int, end: Int?) -> (Int, Int) {
    func clampAxis(_ a: Int) -> Int { min(max(a < 0 ? a + rank : a, 0), rank) }
    return (clampAxis(start), clampAxis(end ?? rank))
}

/// Axes a Pad op pads (all when absent).
public func padAxes(_ axes: [Int64]?, rank: Int, _ what: String) throws -> [Int] {
    guard let ax = axes else { return Array(0..<rank) }
    return try ax.map { try normalizeAxis(Int(clamping: $0), rank: rank, what) }
}

/// Number of elements a Range produces.
public func rangeCount(start: Double, limit: Double, delta: Double, _ what: String) throws -> Int {
    guard delta != 0, start.isFinite, limit.isFinite, delta.isFinite else { throw KilnError("\(what): invalid range") }
    let n = max(0, (limit - start) / delta).rounded(.up)
    guard n < 1e9 else { throw KilnError("\(what): range of \(n) elements is too large") }
    return Int(n)
}
