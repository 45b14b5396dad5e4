/// How a value's elements are ordered in memory. Shapes in the IR are always logical
/// (N, C, spatial...); the layout says in which order the bytes are laid out.
public enum Layout: Sendable, Equatable, CustomStringConvertible {
    /// C order of the logical shape (NCHW).
    case plain
    /// Channels innermost: N, spatial..., C (NHWC), the layout oneDNN's convolutions prefer.
    case channelsLast

    public var description: String { self == .plain ? "plain" : "nhwc" }

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

    /// Whether a tensor of `shape` has the same bytes in both layouts (e.g. N x C x 1 x 1).
    public static func isLayoutNeutral(_ shape: [Int]) -> Bool {
        guard shape.count >= 3 else { return true }
        return shapeProduct(Array(shape.dropFirst(2))) == 1 || shape[1] == 1
    }
}
