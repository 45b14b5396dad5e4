import KilnIR

extension NodeConversion {
    /// Reduce*, ArgMax/ArgMin and TopK.
    mutating func convertReduce(_ importer: inout Importer) throws -> (Op, [ValueID?])? {
        switch opType {
        case "ArgMax", "ArgMin":
            try need(1)
            return (.argReduce(ArgReduceAttributes(largest: opType == "ArgMax", axis: try a.int("axis", default: 0),
                                                   keepDims: try a.bool("keepdims", default: true),
                                                   selectLastIndex: try a.bool("select_last_index", default: false))), Array(inputs.prefix(1)))
        case "TopK":
            try need(1)
            if version < 10 {
                guard let k = try a.int("k") else { throw Unsupported(reason: "attribute 'k' is required") }
                inputs = [inputs[0], importer.constant("\(name)_k", .vector(ints: [Int64(k)]))]
            }
            try need(2)
            a.ignore("sorted")
            return (.topK(TopKAttributes(axis: try a.int("axis", default: -1), largest: try a.bool("largest", default: true))), Array(inputs.prefix(2)))
        case _ where opType.hasPrefix("Reduce"):
            guard let kind = ReduceOp.allCases.first(where: { $0.onnxName == opType }) else { throw Unsupported(reason: "op \(opType) is not supported") }
            try need(1)
            let axesAreInput = opType == "ReduceSum" ? version >= 13 : version >= 18
            if !axesAreInput { try attributeAsInput("axes", at: 1, &importer) }
            return (.reduce(kind, keepDims: try a.bool("keepdims", default: true),
                            noopWithEmptyAxes: try a.bool("noop_with_empty_axes", default: false)), inputs)
        default:
            return nil
        }
    }
}
