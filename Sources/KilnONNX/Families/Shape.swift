import KilnIR

extension NodeConversion {
    /// Shape, Size, ConstantOfShape and Range.
    mutating func convertShape(_ importer: inout Importer) throws -> (Op, [ValueID?])? {
        switch opType {
        case "Shape":
            try need(1)
            return (.shape(start: try a.int("start", default: 0), end: try a.int("end")), inputs)
        case "Size":
            try need(1)
            return (.size, inputs)
        case "ConstantOfShape":
            try need(1)
            let value = try a.tensor("value") ?? .scalar(0)
            guard value.count == 1 else { throw Unsupported(reason: "value must hold one element") }
            return (.constantOfShape(value: value.reshaped([])), inputs)
        case "Range":
            try need(3)
            return (.range, inputs)
        default:
            return nil
        }
    }
}
