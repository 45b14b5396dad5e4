import KilnIR

extension NodeConversion {
    /// MaxPool, AveragePool and the global pools.
    mutating func convertPool(_ importer: inout Importer) throws -> (Op, [ValueID?])? {
        switch opType {
        case "MaxPool":
            try need(1)
            if outputs > 1 { throw Unsupported(reason: "the Indices output is not supported") }
            return (.maxPool(try poolAttributes(average: false)), inputs)
        case "AveragePool":
            try need(1)
            return (.averagePool(try poolAttributes(average: true)), inputs)
        case "GlobalAveragePool":
            try need(1)
            return (.globalAveragePool, inputs)
        case "GlobalMaxPool":
            try need(1)
            return (.globalMaxPool, inputs)
        default:
            return nil
        }
    }

    private mutating func poolAttributes(average: Bool) throws -> PoolAttributes {
        let autoPad = try a.string("auto_pad", default: "NOTSET")
        guard let ap = AutoPad(rawValue: autoPad) else { throw Unsupported(reason: "auto_pad '\(autoPad)' is not supported") }
        guard let k = try a.ints("kernel_shape") else { throw Unsupported(reason: "kernel_shape is required") }
        let p = PoolAttributes(kernelShape: k, strides: try a.ints("strides"), pads: try a.ints("pads"),
                               dilations: try a.ints("dilations"), autoPad: ap,
                               ceilMode: try a.bool("ceil_mode", default: false),
                               countIncludePad: average ? try a.bool("count_include_pad", default: false) : false)
        if !average {
            let order = try a.int("storage_order", default: 0)
            if order != 0 && outputs > 1 { throw Unsupported(reason: "storage_order=1 is not supported") }
        }
        return p
    }
}
