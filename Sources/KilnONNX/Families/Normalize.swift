import KilnIR

extension NodeConversion {
    /// The normalizations and softmax.
    mutating func convertNormalize(_ importer: inout Importer) throws -> (Op, [ValueID?])? {
        switch opType {
        case "BatchNormalization":
            try need(5)
            a.ignore("momentum", "consumed_inputs", "is_test")
            if version < 9, try a.int("spatial", default: 1) != 1 { throw Unsupported(reason: "spatial=0 is not supported") }
            if try a.int("training_mode", default: 0) != 0 { throw Unsupported(reason: "training_mode=1 is not supported (inference only)") }
            try onlyFirstOutputUsed("running statistics are for training")
            return (.batchNormalization(epsilon: try a.float("epsilon", default: 1e-5)), inputs)
        case "InstanceNormalization":
            try need(3)
            a.ignore("consumed_inputs")
            return (.instanceNormalization(epsilon: try a.float("epsilon", default: 1e-5)), Array(inputs.prefix(3)))
        case "LayerNormalization":
            try need(2)
            if try a.int("stash_type", default: 1) != 1 { throw Unsupported(reason: "stash_type other than float is not supported") }
            return (.layerNormalization(axis: try a.int("axis", default: -1), epsilon: try a.float("epsilon", default: 1e-5)), inputs)
        case "Softmax", "LogSoftmax":
            try need(1)
            let legacy = version < 13
            let axis = try a.int("axis", default: legacy ? 1 : -1)
            return (opType == "Softmax" ? .softmax(axis: axis, legacy: legacy) : .logSoftmax(axis: axis, legacy: legacy), inputs)
        default:
            return nil
        }
    }
}
