import KilnIR

extension NodeConversion {
    /// Conv and ConvTranspose.
    mutating func convertConv(_ importer: inout Importer) throws -> (Op, [ValueID?])? {
        switch opType {
        case "Conv":
            try need(2)
            return (.conv(try convAttributes()), inputs)
        case "ConvTranspose":
            try need(2)
            let c = try convAttributes()
            return (.convTranspose(ConvTransposeAttributes(conv: c, outputPadding: try a.ints("output_padding"),
                                                           outputShape: try a.ints("output_shape"))), inputs)
        default:
            return nil
        }
    }

    mutating func convAttributes() throws -> ConvAttributes {
        let autoPad = try a.string("auto_pad", default: "NOTSET")
        guard let ap = AutoPad(rawValue: autoPad) else { throw Unsupported(reason: "auto_pad '\(autoPad)' is not supported") }
        return ConvAttributes(kernelShape: try a.ints("kernel_shape"), strides: try a.ints("strides"),
                              pads: try a.ints("pads"), dilations: try a.ints("dilations"),
                              group: try a.int("group", default: 1), autoPad: ap)
    }
}
