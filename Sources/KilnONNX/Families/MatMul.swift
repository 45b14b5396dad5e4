import KilnIR

extension NodeConversion {
    /// Gemm and MatMul.
    mutating func convertMatMul(_ importer: inout Importer) throws -> (Op, [ValueID?])? {
        switch opType {
        case "Gemm":
            try need(2)
            a.ignore("broadcast")
            return (.gemm(GemmAttributes(alpha: try a.float("alpha", default: 1), beta: try a.float("beta", default: 1),
                                         transA: try a.bool("transA", default: false),
                                         transB: try a.bool("transB", default: false))), inputs)
        case "MatMul":
            try need(2)
            return (.matMul(MatMulAttributes()), Array(inputs.prefix(2)))
        default:
            return nil
        }
    }
}
