import KilnIR

extension NodeConversion {
    /// The unary and binary functions, the activations with attributes, Clip, the variadic ops,
    /// Where and the casts.
    mutating func convertElementwise(_ importer: inout Importer) throws -> (Op, [ValueID?])? {
        switch opType {
        case "Relu": return try unary(.relu)
        case "Sigmoid": return try unary(.sigmoid)
        case "Tanh": return try unary(.tanh)
        case "Erf": return try unary(.erf)
        case "Exp": return try unary(.exp)
        case "Log": return try unary(.log)
        case "Sqrt": return try unary(.sqrt)
        case "Neg": return try unary(.neg)
        case "Abs": return try unary(.abs)
        case "Reciprocal": return try unary(.reciprocal)
        case "Floor": return try unary(.floor)
        case "HardSwish": return try unary(.hardSwish)
        case "Not": return try unary(.not)
        case "Softplus": return try unary(.softplus)
        case "Mish": return try unary(.mish)
        case "LeakyRelu":
            try need(1)
            a.ignore("consumed_inputs")
            return (.leakyRelu(alpha: try a.float("alpha", default: 0.01)), inputs)
        case "Elu":
            try need(1)
            a.ignore("consumed_inputs")
            return (.elu(alpha: try a.float("alpha", default: 1)), inputs)
        case "Selu":
            try need(1)
            a.ignore("consumed_inputs")
            return (.selu(alpha: try a.float("alpha", default: 1.67326319217681884765625),
                          gamma: try a.float("gamma", default: 1.05070102214813232421875)), inputs)
        case "HardSigmoid":
            try need(1)
            a.ignore("consumed_inputs")
            return (.hardSigmoid(alpha: try a.float("alpha", default: 0.2), beta: try a.float("beta", default: 0.5)), inputs)
        case "Gelu":
            try need(1)
            let approx = try a.string("approximate", default: "none")
            guard approx == "none" || approx == "tanh" else { throw Unsupported(reason: "approximate='\(approx)' is not supported") }
            return (.gelu(tanhApproximation: approx == "tanh"), inputs)
        case "Clip":
            try need(1)
            if version < 11 {
                a.ignore("consumed_inputs")
                let lo = try a.float("min"), hi = try a.float("max")
                inputs = [inputs[0],
                          lo.map { importer.constant("\(name)_min", .scalar($0)) },
                          hi.map { importer.constant("\(name)_max", .scalar($0)) }]
            }
            return (.clip, inputs)
        case "Add": return try binary(.add, &importer)
        case "Sub": return try binary(.sub, &importer)
        case "Mul": return try binary(.mul, &importer)
        case "Div": return try binary(.div, &importer)
        case "Pow": return try binary(.pow, &importer)
        case "Equal": return try binary(.equal, &importer)
        case "Less": return try binary(.less, &importer)
        case "Greater": return try binary(.greater, &importer)
        case "LessOrEqual": return try binary(.lessOrEqual, &importer)
        case "GreaterOrEqual": return try binary(.greaterOrEqual, &importer)
        case "And": return try binary(.and, &importer)
        case "Or": return try binary(.or, &importer)
        case "Xor": return try binary(.xor, &importer)
        case "Mod": return try binary(try a.int("fmod", default: 0) != 0 ? .fmod : .mod, &importer)
        case "PRelu":
            try need(2)
            a.ignore("consumed_inputs")
            // Before opset 7 a 1-D slope runs along the channel axis (axis 1).
            if version < 7, importer.graph.values[inputs[1]!].type.rank == 1 {
                let slope = aligned(inputs[0], inputs[1], axis: 1, valueName: "\(name)_aligned_slope", &importer)
                return (.binary(.prelu), [inputs[0], slope])
            }
            return (.binary(.prelu), Array(inputs.prefix(2)))
        case "Max", "Min", "Sum":
            try need(1)
            a.ignore("consumed_inputs")
            let kind: BinaryOp = opType == "Max" ? .max : opType == "Min" ? .min : .add
            return (.variadic(kind), inputs)
        case "Where":
            try need(3)
            return (.where, inputs)
        case "Cast":
            try need(1)
            a.ignore("saturate", "round_mode")
            guard let to = try a.int("to") else { throw Unsupported(reason: "attribute 'to' is required") }
            guard let t = elementType(onnx: to) else {
                throw Unsupported(reason: "cast to \(onnxTypeName(to)) is not supported")
            }
            return (.cast(to: t), inputs)
        case "CastLike":
            try need(2)
            a.ignore("saturate", "round_mode")
            return (.castLike, Array(inputs.prefix(2)))
        default:
            return nil
        }
    }

    private mutating func unary(_ u: UnaryOp) throws -> (Op, [ValueID?]) {
        a.ignore("consumed_inputs")
        try need(1)
        return (.unary(u), inputs)
    }

    private mutating func binary(_ b: BinaryOp, _ importer: inout Importer) throws -> (Op, [ValueID?]) {
        try need(2)
        a.ignore("consumed_inputs")
        if version < 7 {
            let broadcast = try a.int("broadcast", default: 0)
            if let axis = try a.int("axis"), broadcast != 0 {
                let operand = aligned(inputs[0], inputs[1], axis: axis, valueName: "\(name)_aligned_b", &importer)
                return (.binary(b), [inputs[0], operand])
            }
        }
        return (.binary(b), Array(inputs.prefix(2)))
    }
}
