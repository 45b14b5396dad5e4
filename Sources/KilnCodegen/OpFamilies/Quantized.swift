import KilnIR

extension ModelEmitter {
    /// The code of the Quantized family's ops (`OpFamily.quantized`).
    mutating func emitQuantized(_ n: Node, index: Int) throws {
        let (x0, y, x) = operands(n)
        switch n.op {
        case .quantizedConv(let q):
            try emitQuantizedConv(n, index: index, q)
        case .quantizedMatMul(let q):
            try emitQuantizedMatMul(n, index: index, q)
        case .quantized(let q):
            try emitQuantizedOp(n, q)
        case .dynamicQuantizedMatMul(let q):
            try emitDynamicQuantizedMatMul(n, index: index, q)
        case .dynamicQuantizeLinear:
            loopCount += 1
            run.line("{ const auto p = kiln::dynamic_quantize(\(v(x0!)), \(shapeProduct(shape(x0!))), \(v(y))); *\(v(n.outputs[1])) = p.scale; *\(v(n.outputs[2])) = (uint8_t)p.zero_point; }")
        case .matMulInteger:
            try emitMatMulInteger(n)
        case .convInteger(let a):
            try emitConvInteger(n, a)
        case _ where perTensorParameters(n) != nil:
            let (scale, zero, quantizes) = perTensorParameters(n)!
            loopCount += 1
            if layout(x0!) != layout(y) {
                // A plain image into channels-last (assignLayouts: at most 4 channels).
                let s = shape(y)
                guard quantizes, layout(x0!) == .plain, layout(y) == .channelsLast, s.count == 4, (1...4).contains(s[1]) else {
                    throw KilnError("\(n.label): no kernel converts \(layout(x0!)) to \(layout(y)) here")
                }
                run.line("kiln::quantize_to_channels_last<\(s[1])>(\(v(x0!)), \(floatLiteral(scale)), \(zero), \(v(y)), \(s[0]), \(s[2] * s[3]));")
            } else {
                let kernel = quantizes ? "quantize_tensor" : "dequantize_tensor"
                run.line("kiln::\(kernel)(\(v(x0!)), \(floatLiteral(scale)), \(zero), \(v(y)), \(shapeProduct(shape(y))));")
            }
        case .quantizeLinear(let axis, _):
            let (inner, dim) = try quantParams(x0!, scale: x(1)!, axis: axis, n.label)
            let r = elem(y).intRange
            loopCount += 1
            run.line("kiln::quantize(\(v(x0!)), \(v(x(1)!)), \(x(2).map { v($0) } ?? "(const \(cType(elem(y)))*)nullptr"), \(v(y)), \(shapeProduct(shape(y))), \(inner), \(dim), \(r.lowerBound), \(r.upperBound));")
        case .dequantizeLinear(let axis):
            let (inner, dim) = try quantParams(x0!, scale: x(1)!, axis: axis, n.label)
            loopCount += 1
            run.line("kiln::dequantize(\(v(x0!)), \(v(x(1)!)), \(x(2).map { v($0) } ?? "(const \(cType(elem(x0!)))*)nullptr"), \(v(y)), \(shapeProduct(shape(y))), \(inner), \(dim));")
        default: preconditionFailure("\(n.op.name) is not of the quantized family")
        }
    }
}
