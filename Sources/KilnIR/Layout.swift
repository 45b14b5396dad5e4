/// How a value's elements are ordered in memory. Shapes in the IR are always logical
/// (N, C, spatial...); the layout says in which order the bytes are laid out.
public enum Layout: Sendable, Equatable, CustomStringConvertible {
    /// C order of the logical shape (NCHW).
    case plain
    /// Channels innermost: N, spatial..., C (NHWC), the layout oneDNN's convolutions prefer.
    case channelsLast
    /// oneDNN's blocked layout for 4-D tensors (nChw16c): N, ⌈C/16⌉, H, W, 16 channels, the
    /// last block padded with zeros. Its Winograd convolutions take only this layout. Values in
    /// it are read and written by oneDNN only (convolutions, pooling, reorders): not a
    /// permutation of the logical axes, so `physicalOrder` and `strides` do not describe it.
    case blocked16

    public var description: String {
        switch self {
        case .plain: return "plain"
        case .channelsLast: return "nhwc"
        case .blocked16: return "nchw16c"
        }
    }

    /// Bytes a tensor of `type` takes in this layout (the blocked layout pads C to 16).
    public func storageBytes(_ type: TensorType) -> Int? {
        guard self == .blocked16, let s = type.shape, s.count >= 2, let b = type.byteSize else { return type.byteSize }
        guard s[1] > 0 else { return b }
        return b / s[1] * ((s[1] + 15) / 16 * 16)
    }

    /// The logical axis at each physical position, for a tensor of `rank`.
    public func physicalOrder(rank: Int) -> [Int] {
        guard self == .channelsLast, rank >= 3 else { return Array(0..<rank) }
        return [0] + Array(2..<rank) + [1]
    }

    /// Strides (in elements) of each logical axis for a tensor of `shape` in this layout.
    public func strides(_ shape: [Int]) -> [Int] {
        let order = physicalOrder(rank: shape.count)
        let physical = contiguousStrides(order.map { shape[$0] })
        var out = [Int](repeating: 0, count: shape.count)
        for (p, axis) in order.enumerated() { out[axis] = physical[p] }
        return out
    }

    /// Whether a tensor of `shape` has the same bytes in layouts `a` and `b`, so that converting
    /// is a copy (plain and channels-last for N x C x 1 x 1, say). Never with the blocked layout,
    /// whose last block is padded.
    /// Whether transposing a value of `shape` stored in `from` by `perm` gives, stored in `to`,
    /// the same bytes: then the transpose is a plain copy, or nothing (ConvNeXt's permutes to and
    /// from channels-last around each block's LayerNorm and MLP). Size-1 axes are ignored.
    public static func transposeKeepsBytes(_ shape: [Int], perm: [Int], from: Layout, to: Layout) -> Bool {
        guard from != .blocked16, to != .blocked16, perm.count == shape.count, Set(perm) == Set(0..<shape.count) else { return false }
        let inOrder = from.physicalOrder(rank: shape.count).filter { shape[$0] != 1 }
        let outOrder = to.physicalOrder(rank: shape.count).map { perm[$0] }.filter { shape[$0] != 1 }
        return inOrder == outOrder
    }

    public static func sameBytes(_ shape: [Int], _ a: Layout, _ b: Layout) -> Bool {
        if a == b { return true }
        guard a != .blocked16 && b != .blocked16 else { return false }
        guard shape.count >= 3 else { return true }
        return shapeProduct(Array(shape.dropFirst(2))) == 1 || shape[1] == 1
    }
}
