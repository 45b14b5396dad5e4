import KilnIR

extension ModelEmitter {
    /// The code of the Unsupported family's ops (`OpFamily.unsupported`).
    mutating func emitUnsupported(_ n: Node, index _: Int) throws {
        switch n.op {
        case .unsupported(let reason):
            throw KilnError("\(n.label) is not supported: \(reason)", unsupported: true)
        default: preconditionFailure("\(n.op.name) is not of the unsupported family")
        }
    }
}
