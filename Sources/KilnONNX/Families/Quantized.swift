import KilnIR

extension NodeConversion {
    /// QuantizeLinear, DequantizeLinear, DynamicQuantizeLinear, MatMulInteger and ConvInteger.
    mutating func convertQuantized(_ importer: inout Importer) throws -> (Op, [ValueID?])? {
        switch opType {
        case "QuantizeLinear":
            try need(2)
            if try a.int("block_size", default: 0) != 0 { throw Unsupported(reason: "blocked quantization is not supported") }
            a.ignore("saturate", "precision")
            var out: ElementType = .u8
            if let code = try a.int("output_dtype"), code != 0 {
                guard let t = elementType(onnx: code), t == .u8 || t == .s8 else {
                    throw Unsupported(reason: "output_dtype \(onnxTypeName(code)) is not supported (u8 and s8 are)")
                }
                out = t
            }
            return (.quantizeLinear(axis: try a.int("axis", default: 1), outputType: out), inputs)
        case "DequantizeLinear":
            try need(2)
            if try a.int("block_size", default: 0) != 0 { throw Unsupported(reason: "blocked quantization is not supported") }
            if let code = try a.int("output_dtype"), code != 0, code != 1 {
                throw Unsupported(reason: "output_dtype \(onnxTypeName(code)) is not supported (f32 is)")
            }
            return (.dequantizeLinear(axis: try a.int("axis", default: 1)), inputs)
        case "DynamicQuantizeLinear":
            try need(1)
            return (.dynamicQuantizeLinear, Array(inputs.prefix(1)))
        case "ConvInteger":
            try need(2)
            return (.convInteger(try convAttributes()), Array(inputs.prefix(4)))
        case "MatMulInteger":
            try need(2)
            return (.matMulInteger, Array(inputs.prefix(4)))
        default:
            return nil
        }
    }
}
