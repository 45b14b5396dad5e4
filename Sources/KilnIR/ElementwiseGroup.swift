/// Elementwise ops fused into one loop (the FuseElementwise pass): each step applies an
/// elementwise `op` (unary, binary, clip, an activation) to operands that are the group node's
/// inputs or earlier steps' results, and the last step is the group's result, broadcast like the
/// ops it replaces. With a `reduction`, that result is reduced over `axes` in the same loop
/// instead of being stored (ReduceSum(x·x), a variance's ReduceMean((x − m)²), ...).
public struct ElementwiseGroup: Sendable, Equatable, CustomStringConvertible {
    public enum Operand: Sendable, Equatable, CustomStringConvertible {
        /// The group node's input k.
        case input(Int)
        /// The result of step k.
        case step(Int)
        /// An optional operand left out (Clip without a lower bound).
        case absent

        public var description: String {
            switch self {
            case .input(let k): return "in\(k)"
            case .step(let k): return "s\(k)"
            case .absent: return "_"
            }
        }
    }

    public struct Step: Sendable, Equatable {
        public var op: Op
        public var operands: [Operand]

        public init(op: Op, operands: [Operand]) {
            self.op = op
            self.operands = operands
        }
    }

    public struct Reduction: Sendable, Equatable {
        public var kind: ReduceOp
        /// Non-negative, sorted.
        public var axes: [Int]
        public var keepDims: Bool

        public init(kind: ReduceOp, axes: [Int], keepDims: Bool) {
            self.kind = kind
            self.axes = axes
            self.keepDims = keepDims
        }
    }

    public var steps: [Step]
    public var reduction: Reduction?

    public init(steps: [Step], reduction: Reduction? = nil) {
        self.steps = steps
        self.reduction = reduction
    }

    /// The steps as the IR's text form writes them, each step's attributes (when it has any) after it.
    public var description: String {
        let body = steps.enumerated().map { k, s in
            let a = attributeText(s.op)
            return "s\(k)=\(s.op.name)(\(s.operands.map(\.description).joined(separator: ", ")))" + (a.isEmpty ? "" : "{\(a)}")
        }.joined(separator: "; ")
        guard let r = reduction else { return "[\(body)]" }
        return "[\(body)] reduce_\(r.kind.rawValue) axes=\(r.axes) keepdims=\(r.keepDims)"
    }
}
