import KilnIR

extension Importer {
    /// Converts one ONNX node (op type at its resolved `version`) to a Kiln op and its operands.
    /// Attribute forms of older opsets become constant operands here, so each Kiln op has one form.
    mutating func convert(_ opType: String, version v: Int, inputs: [ValueID?], outputs: Int,
                          attrs a: inout Attributes, name: String) throws -> (Op, [ValueID?]) {
        var inputs = inputs
        func need(_ n: Int) throws {
            guard inputs.count >= n, !inputs.prefix(n).contains(where: { $0 == nil }) else {
                throw Unsupported(reason: "expects at least \(n) input\(n == 1 ? "" : "s")")
            }
        }
        func onlyFirstOutputUsed(_ what: String) throws {
            if outputs > 1 { throw Unsupported(reason: "only the first output is supported (\(what))") }
        }
        func unary(_ u: UnaryOp) throws -> (Op, [ValueID?]) {
            a.ignore("consumed_inputs")
            try need(1)
            return (.unary(u), inputs)
        }
        func binary(_ b: BinaryOp) throws -> (Op, [ValueID?]) {
            try need(2)
            a.ignore("consumed_inputs")
            if v < 7 {
                let broadcast = try a.int("broadcast", default: 0)
                if let axis = try a.int("axis"), broadcast != 0 {
                    let aligned = graph.addValue("\(name)_aligned_b", TensorType(.f32, dims: [.symbolic("?")]))
                    graph.nodes.append(Node(name: "\(name)_align", op: .alignForBroadcast(axis: axis),
                                            inputs: [inputs[0], inputs[1]], outputs: [aligned],
                                            origin: NodeOrigin(opType: opType, version: v)))
                    return (.binary(b), [inputs[0], aligned])
                }
            }
            return (.binary(b), Array(inputs.prefix(2)))
        }
        func convAttributes() throws -> ConvAttributes {
            let autoPad = try a.string("auto_pad", default: "NOTSET")
            guard let ap = AutoPad(rawValue: autoPad) else { throw Unsupported(reason: "auto_pad '\(autoPad)' is not supported") }
            return ConvAttributes(kernelShape: try a.ints("kernel_shape"), strides: try a.ints("strides"),
                                  pads: try a.ints("pads"), dilations: try a.ints("dilations"),
                                  group: try a.int("group", default: 1), autoPad: ap)
        }
        func poolAttributes(average: Bool) throws -> PoolAttributes {
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
        /// Turns an ints attribute of an older opset into a constant s64 operand at `position`.
        func attributeAsInput(_ attr: String, at position: Int) throws {
            guard let vals = try a.int64s(attr) else { return }
            let id = constant("\(name)_\(attr)", .vector(ints: vals))
            while inputs.count < position { inputs.append(nil) }
            if inputs.count == position { inputs.append(id) } else { inputs[position] = id }
        }

        switch opType {
        case "Conv":
            try need(2)
            return (.conv(try convAttributes()), inputs)
        case "ConvTranspose":
            try need(2)
            let c = try convAttributes()
            return (.convTranspose(ConvTransposeAttributes(conv: c, outputPadding: try a.ints("output_padding"),
                                                           outputShape: try a.ints("output_shape"))), inputs)
        case "BatchNormalization":
            try need(5)
            a.ignore("momentum", "consumed_inputs", "is_test")
            if v < 9, try a.int("spatial", default: 1) != 1 { throw Unsupported(reason: "spatial=0 is not supported") }
            if try a.int("training_mode", default: 0) != 0 { throw Unsupported(reason: "training_mode=1 is not supported (inference only)") }
            try onlyFirstOutputUsed("running statistics are for training")
            return (.batchNormalization(epsilon: try a.float("epsilon", default: 1e-5)), inputs)
        case "Gemm":
            try need(2)
            a.ignore("broadcast")
            return (.gemm(GemmAttributes(alpha: try a.float("alpha", default: 1), beta: try a.float("beta", default: 1),
                                         transA: try a.bool("transA", default: false),
                                         transB: try a.bool("transB", default: false))), inputs)
        case "MatMul":
            try need(2)
            return (.matMul(MatMulAttributes()), Array(inputs.prefix(2)))
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
            if v < 11 {
                a.ignore("consumed_inputs")
                let lo = try a.float("min"), hi = try a.float("max")
                inputs = [inputs[0],
                          lo.map { constant("\(name)_min", .scalar($0)) },
                          hi.map { constant("\(name)_max", .scalar($0)) }]
            }
            return (.clip, inputs)
        case "Add": return try binary(.add)
        case "Sub": return try binary(.sub)
        case "Mul": return try binary(.mul)
        case "Div": return try binary(.div)
        case "Pow": return try binary(.pow)
        case "Equal": return try binary(.equal)
        case "Less": return try binary(.less)
        case "Greater": return try binary(.greater)
        case "LessOrEqual": return try binary(.lessOrEqual)
        case "GreaterOrEqual": return try binary(.greaterOrEqual)
        case "And": return try binary(.and)
        case "Or": return try binary(.or)
        case "Xor": return try binary(.xor)
        case "Not": return try unary(.not)
        case "Softplus": return try unary(.softplus)
        case "Mish": return try unary(.mish)
        case "Mod": return try binary(try a.int("fmod", default: 0) != 0 ? .fmod : .mod)
        case "PRelu":
            try need(2)
            a.ignore("consumed_inputs")
            // Before opset 7 a 1-D slope runs along the channel axis (axis 1).
            if v < 7, graph.values[inputs[1]!].type.rank == 1 {
                let aligned = graph.addValue("\(name)_aligned_slope", TensorType(.f32, dims: [.symbolic("?")]))
                graph.nodes.append(Node(name: "\(name)_align", op: .alignForBroadcast(axis: 1), inputs: [inputs[0], inputs[1]],
                                        outputs: [aligned], origin: NodeOrigin(opType: opType, version: v)))
                return (.binary(.prelu), [inputs[0], aligned])
            }
            return (.binary(.prelu), Array(inputs.prefix(2)))
        case "Max", "Min", "Sum":
            try need(1)
            a.ignore("consumed_inputs")
            let kind: BinaryOp = opType == "Max" ? .max : opType == "Min" ? .min : .add
            return (.variadic(kind), inputs)
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
        case "Concat":
            try need(1)
            guard let axis = try a.int("axis") ?? (v < 4 ? 1 : nil) else { throw Unsupported(reason: "axis is required") }
            return (.concat(axis: axis), inputs)
        case "Split":
            try need(1)
            if v < 13 { try attributeAsInput("split", at: 1) }
            if v >= 18, let n = try a.int("num_outputs"), n != outputs {
                throw Unsupported(reason: "num_outputs=\(n) but the node has \(outputs) outputs")
            }
            return (.split(axis: try a.int("axis", default: 0)), inputs)
        case "Slice":
            try need(1)
            if v < 10 {
                try attributeAsInput("starts", at: 1)
                try attributeAsInput("ends", at: 2)
                try attributeAsInput("axes", at: 3)
            }
            try need(3)
            return (.slice, inputs)
        case "Reshape":
            try need(1)
            a.ignore("consumed_inputs")
            if v < 5 { try attributeAsInput("shape", at: 1) }
            try need(2)
            return (.reshape(allowZero: try a.bool("allowzero", default: false)), inputs)
        case "Flatten":
            try need(1)
            return (.flatten(axis: try a.int("axis", default: 1)), inputs)
        case "Transpose":
            try need(1)
            return (.transpose(perm: try a.ints("perm")), inputs)
        case "Squeeze":
            try need(1)
            if v < 13 { try attributeAsInput("axes", at: 1) }
            return (.squeeze, inputs)
        case "Unsqueeze":
            try need(1)
            if v < 13 { try attributeAsInput("axes", at: 1) }
            try need(2)
            return (.unsqueeze, inputs)
        case "Gather":
            try need(2)
            return (.gather(axis: try a.int("axis", default: 0)), inputs)
        case "Shape":
            try need(1)
            return (.shape(start: try a.int("start", default: 0), end: try a.int("end")), inputs)
        case "DepthToSpace", "SpaceToDepth":
            try need(1)
            guard let b = try a.int("blocksize") else { throw Unsupported(reason: "attribute 'blocksize' is required") }
            let mode = try a.string("mode", default: "DCR")
            guard mode == "DCR" || mode == "CRD" else { throw Unsupported(reason: "mode '\(mode)' is not supported") }
            return (opType == "DepthToSpace" ? .depthToSpace(blockSize: b, crd: mode == "CRD") : .spaceToDepth(blockSize: b, crd: mode == "CRD"), inputs)
        case "Tile":
            guard v >= 6 else { throw Unsupported(reason: "Tile-1 (tiles and axis inputs) is not supported") }
            try need(2)
            return (.tile, Array(inputs.prefix(2)))
        case "InstanceNormalization":
            try need(3)
            a.ignore("consumed_inputs")
            return (.instanceNormalization(epsilon: try a.float("epsilon", default: 1e-5)), Array(inputs.prefix(3)))
        case "ArgMax", "ArgMin":
            try need(1)
            return (.argReduce(ArgReduceAttributes(largest: opType == "ArgMax", axis: try a.int("axis", default: 0),
                                                   keepDims: try a.bool("keepdims", default: true),
                                                   selectLastIndex: try a.bool("select_last_index", default: false))), Array(inputs.prefix(1)))
        case "GatherElements":
            try need(2)
            return (.gatherElements(axis: try a.int("axis", default: 0)), Array(inputs.prefix(2)))
        case "TopK":
            try need(1)
            if v < 10 {
                guard let k = try a.int("k") else { throw Unsupported(reason: "attribute 'k' is required") }
                inputs = [inputs[0], constant("\(name)_k", .vector(ints: [Int64(k)]))]
            }
            try need(2)
            a.ignore("sorted")
            return (.topK(TopKAttributes(axis: try a.int("axis", default: -1), largest: try a.bool("largest", default: true))), Array(inputs.prefix(2)))
        case "Size":
            try need(1)
            return (.size, inputs)
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
        case "ConstantOfShape":
            try need(1)
            let value = try a.tensor("value") ?? .scalar(0)
            guard value.count == 1 else { throw Unsupported(reason: "value must hold one element") }
            return (.constantOfShape(value: value.reshaped([])), inputs)
        case "Identity":
            try need(1)
            return (.identity, inputs)
        case "Dropout":
            try need(1)
            a.ignore("is_test", "seed", "ratio", "consumed_inputs")
            return (.dropout, inputs)
        case "Pad":
            try need(1)
            let modeName = try a.string("mode", default: "constant")
            guard let mode = PadMode(rawValue: modeName) else { throw Unsupported(reason: "mode '\(modeName)' is not supported") }
            if v < 11 {
                guard let pads = try a.int64s("pads") ?? a.int64s("paddings") else { throw Unsupported(reason: "pads is required") }
                let value = try a.float("value", default: 0)
                inputs = [inputs[0], constant("\(name)_pads", .vector(ints: pads)), constant("\(name)_value", .scalar(value))]
            }
            try need(2)
            return (.pad(mode: mode), inputs)
        case "Resize":
            try need(1)
            var r = ResizeAttributes()
            let mode = try a.string("mode", default: "nearest")
            guard let m = ResizeAttributes.Mode(rawValue: mode) else { throw Unsupported(reason: "mode '\(mode)' is not supported (nearest and linear are)") }
            r.mode = m
            if v < 11 {
                // Resize-10: X, scales; asymmetric coordinates, nearest rounds down.
                r.coordinateTransformation = .asymmetric
                r.nearestMode = .floor
                inputs = [inputs[0], nil, inputs.count > 1 ? inputs[1] : nil]
            } else {
                let ct = try a.string("coordinate_transformation_mode", default: "half_pixel")
                guard let c = ResizeAttributes.CoordinateTransformation(rawValue: ct) else {
                    throw Unsupported(reason: "coordinate_transformation_mode '\(ct)' is not supported")
                }
                r.coordinateTransformation = c
                let nm = try a.string("nearest_mode", default: "round_prefer_floor")
                guard let n = ResizeAttributes.NearestMode(rawValue: nm) else { throw Unsupported(reason: "nearest_mode '\(nm)' is not supported") }
                r.nearestMode = n
                a.ignore("cubic_coeff_a")
                r.excludeOutside = try a.bool("exclude_outside", default: false)
                r.extrapolationValue = try a.float("extrapolation_value", default: 0)
                if try a.int("antialias", default: 0) != 0 { throw Unsupported(reason: "antialias=1 is not supported") }
                r.axes = try a.ints("axes")
                let kp = try a.string("keep_aspect_ratio_policy", default: "stretch")
                guard let p = ResizeAttributes.AspectRatioPolicy(rawValue: kp) else { throw Unsupported(reason: "keep_aspect_ratio_policy '\(kp)' is not supported") }
                r.keepAspectRatioPolicy = p
            }
            return (.resize(r), inputs)
        case "Softmax", "LogSoftmax":
            try need(1)
            let legacy = v < 13
            let axis = try a.int("axis", default: legacy ? 1 : -1)
            return (opType == "Softmax" ? .softmax(axis: axis, legacy: legacy) : .logSoftmax(axis: axis, legacy: legacy), inputs)
        case _ where opType.hasPrefix("Reduce"):
            guard let kind = ReduceOp.allCases.first(where: { $0.onnxName == opType }) else { throw Unsupported(reason: "op \(opType) is not supported") }
            try need(1)
            let axesAreInput = opType == "ReduceSum" ? v >= 13 : v >= 18
            if !axesAreInput { try attributeAsInput("axes", at: 1) }
            return (.reduce(kind, keepDims: try a.bool("keepdims", default: true),
                            noopWithEmptyAxes: try a.bool("noop_with_empty_axes", default: false)), inputs)
        case "Expand":
            try need(2)
            return (.expand, inputs)
        case "Range":
            try need(3)
            return (.range, inputs)
        case "Where":
            try need(3)
            return (.where, inputs)
        case "LayerNormalization":
            try need(2)
            if try a.int("stash_type", default: 1) != 1 { throw Unsupported(reason: "stash_type other than float is not supported") }
            return (.layerNormalization(axis: try a.int("axis", default: -1), epsilon: try a.float("epsilon", default: 1e-5)), inputs)
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
        default:
            throw Unsupported(reason: "op \(opType) is not supported")
        }
    }
}
