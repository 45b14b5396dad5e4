import KilnIR

extension ModelEmitter {
    /// The code of the Conv family's ops (`OpFamily.conv`).
    mutating func emitConv(_ n: Node, index: Int) throws {
        let (_, y, x) = operands(n)
        switch n.op {
        case .conv(let a):
            if elem(y) == .f32 && shapeProduct(shape(y)) > 0 {
                try emitOneDNNConv(n, index: index, a)
            } else {
                fallbacks.append("\(n.label): generic loop (\(elem(y) == .f32 ? "empty tensor" : "element type \(elem(y))"))")
                try emitGenericConv(n, a)
                emitGenericPostOps(a.postOps, y: y, addend: x(3))
            }
        case .convTranspose(let a):
            if try oneDNNDeconvolutionGeometry(n, a) != nil {
                try emitOneDNNDeconvolution(n, index: index, a)
            } else {
                fallbacks.append("\(n.label): generic loop (\(elem(y) != .f32 ? "element type \(elem(y))" : shapeProduct(shape(y)) == 0 ? "empty tensor" : "more than 3 spatial axes, or an output_shape oneDNN's deconvolution cannot produce"))")
                try emitGenericConvTranspose(n, a)
                emitGenericPostOps(a.conv.postOps, y: y, addend: nil)
            }
        default: preconditionFailure("\(n.op.name) is not of the conv family")
        }
    }
}
