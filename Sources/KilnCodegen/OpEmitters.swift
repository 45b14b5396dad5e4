import KilnIR

/// One emitting function per op: each writes the node's run-time code (and, for oneDNN
/// primitives, its create-time code).
extension ModelEmitter {
    mutating func emit(_ n: Node, index: Int) throws {
        let x0 = n.inputs.first ?? nil
        let y = n.outputs[0]
        func x(_ i: Int) -> ValueID? { i < n.inputs.count ? n.inputs[i] : nil }
        switch n.op {
        case .conv(let a):
            if elem(y) == .f32 && shapeProduct(shape(y)) > 0 {
                try emitOneDNNConv(n, index: index, a)
            } else {
                fallbacks.append("\(n.label): generic loop (\(elem(y) == .f32 ? "empty tensor" : "element type \(elem(y))"))")
                try emitGenericConv(n, a)
                emitGenericPostOps(a.postOps, y: y, addend: x(3))
            }
        case .quantizedConv(let q):
            try emitQuantizedConv(n, index: index, q)
        case .quantizedMatMul(let q):
            try emitQuantizedMatMul(n, index: index, q)
        case .quantized(let q):
            try emitQuantizedOp(n, q)
        case .convTranspose(let a):
            if try oneDNNDeconvolutionGeometry(n, a) != nil {
                try emitOneDNNDeconvolution(n, index: index, a)
            } else {
                fallbacks.append("\(n.label): generic loop (\(elem(y) != .f32 ? "element type \(elem(y))" : shapeProduct(shape(y)) == 0 ? "empty tensor" : "more than 3 spatial axes, or an output_shape oneDNN's deconvolution cannot produce"))")
                try emitGenericConvTranspose(n, a)
                emitGenericPostOps(a.conv.postOps, y: y, addend: nil)
            }
        case .channelScaleShift(let postOps):
            let s = shape(x0!)
            let inner = shapeProduct(Array(s.dropFirst(2)))
            let body = postOps.reduce("v") { expr, p in "[](float v) { return \(postOpExpression(p)); }(\(expr))" }
            loopCount += 1
            run.line("kiln::scale_shift(\(v(x0!)), \(v(x(1)!)), \(v(x(2)!)), \(v(y)), \(s[0]), \(s[1]), \(inner), \(layout(x0!) == .channelsLast), [](float v) { return \(body); });")
        case .batchNormalization(let eps) where layout(x0!) == .channelsLast:
            let s = shape(x0!)
            loopCount += 1
            run.line("kiln::batch_norm_nhwc(\(v(x0!)), \(v(x(1)!)), \(v(x(2)!)), \(v(x(3)!)), \(v(x(4)!)), \(floatLiteral(eps)), \(v(y)), \(s[0] * shapeProduct(Array(s.dropFirst(2)))), \(s[1]));")
        case .batchNormalization(let eps):
            let s = shape(x0!)
            loopCount += 1
            run.line("kiln::batch_norm(\(v(x0!)), \(v(x(1)!)), \(v(x(2)!)), \(v(x(3)!)), \(v(x(4)!)), \(floatLiteral(eps)), \(v(y)), \(s[0]), \(s[1]), \(shapeProduct(Array(s.dropFirst(2)))));")
        case .gemm(let a):
            if elem(y) == .f32 && oneDNNGemmApplies(n, a) {
                try emitOneDNNGemm(n, index: index, a)
            } else {
                fallbacks.append("\(n.label): generic loop (\(elem(y) != .f32 ? "element type \(elem(y))" : "alpha ≠ 1, a C operand of rank > 2 with beta ≠ 1, or an empty output"))")
                emitGenericGemm(n, a)
                emitGenericPostOps(a.postOps, y: y, addend: nil)
            }
        case .matMul:
            if elem(y) == .f32 && shapeProduct(shape(y)) > 0 && shapeProduct(shape(x0!)) > 0 {
                try emitOneDNNMatMul(n, index: index)
            } else {
                fallbacks.append("\(n.label): generic loop (\(elem(y) != .f32 ? "element type \(elem(y))" : "empty tensor"))")
                emitGenericMatMul(n)
            }
        case .unary(let u):
            emitMap(n, unaryExpression(u, elem(x0!)))
        case .leakyRelu(let alpha):
            emitMap(n, "v < 0 ? \(floatLiteral(alpha)) * v : v")
        case .elu, .selu:
            emitMap(n, activationExpression(n.op))
        case .hardSigmoid(let a, let b):
            emitMap(n, "std::max(0.0f, std::min(1.0f, \(floatLiteral(a)) * v + \(floatLiteral(b))))")
        case .gelu(let tanhApprox):
            emitMap(n, tanhApprox
                ? "0.5f * v * (1.0f + std::tanh(0.7978845608f * (v + 0.044715f * v * v * v)))"
                : "(float)(0.5 * (double)v * (1.0 + std::erf((double)v * 0.7071067811865476)))")
        case .clip:
            emitClip(n)
        case .binary(let b):
            emitBinary(a: x0!, b: x(1)!, y: y, op: b)
        case .variadic(let b):
            let inputs = n.inputs.compactMap { $0 }
            if inputs.count == 1 {
                copy(inputs[0], to: y)
            } else {
                emitBinary(a: inputs[0], b: inputs[1], y: y, op: b)
                for extra in inputs.dropFirst(2) { emitBinary(a: y, b: extra, y: y, op: b) }
            }
        case .alignForBroadcast:
            copy(x(1)!, to: y)
        case .where:
            let out = physicalShape(y)
            loopCount += 1
            run.open()
            run.line("static const int64_t shape[] = \(list(out)), sc[] = \(list(iterationStrides(x0!, over: y))), sa[] = \(list(iterationStrides(x(1)!, over: y))), sb[] = \(list(iterationStrides(x(2)!, over: y)));")
            run.line("kiln::where(\(v(x0!)), sc, \(v(x(1)!)), sa, \(v(x(2)!)), sb, \(v(y)), \(out.count), shape);")
            run.close()
        case .maxPool(let p), .averagePool(let p):
            var average = false
            if case .averagePool = n.op { average = true }
            let s = shape(x0!)
            let geo = try windowGeometry(input: Array(s.dropFirst(2)), kernel: p.kernelShape, strides: p.strides, pads: p.pads,
                                         dilations: p.dilations, autoPad: p.autoPad, ceilMode: p.ceilMode, n.label)
            guard geo.input.count <= 3 else { throw KilnError("\(n.label): pooling over more than 3 spatial axes is not supported", unsupported: true) }
            if oneDNNPoolingApplies(n, p, average: average, geometry: geo) {
                emitOneDNNPooling(n, index: index, p, average: average, geometry: geo)
                break
            }
            if layout(x0!) == .blocked16 {
                throw KilnError("\(n.label): internal error: blocked-layout pooling that oneDNN does not take")
            }
            loopCount += 1
            run.open()
            run.line("static const kiln::Window g = \(window(geo));")
            if layout(x0!) == .channelsLast {
                run.line("kiln::pool_nhwc(\(v(x0!)), \(v(y)), \(s[0]), \(s[1]), g, \(average), \(p.countIncludePad));")
            } else {
                run.line("kiln::pool(\(v(x0!)), \(v(y)), \(s[0] * s[1]), g, \(average), \(p.countIncludePad));")
            }
            run.close()
        case .globalAveragePool, .globalMaxPool:
            var average = false
            if case .globalAveragePool = n.op { average = true }
            let s = shape(x0!)
            loopCount += 1
            if layout(x0!) == .channelsLast {
                run.line("kiln::global_pool_nhwc(\(v(x0!)), \(v(y)), \(s[0]), \(shapeProduct(Array(s.dropFirst(2)))), \(s[1]), \(average));")
            } else {
                run.line("kiln::global_pool(\(v(x0!)), \(v(y)), \(s[0] * s[1]), \(shapeProduct(Array(s.dropFirst(2)))), \(average));")
            }
        case .concat(let axis):
            let inputs = n.inputs.compactMap { $0 }
            let ax = try normalizeAxis(axis, rank: shape(y).count, n.label)
            // In the output's physical order (all inputs share its layout).
            let order = layout(y).physicalOrder(rank: shape(y).count)
            let pax = order.firstIndex(of: ax)!
            func physical(_ id: ValueID) -> [Int] { order.map { shape(id)[$0] } }
            let t = cType(elem(y))
            loopCount += 1
            run.open()
            run.line("const \(t)* xs[] = {\(inputs.map { v($0) }.joined(separator: ", "))};")
            run.line("static const int64_t chunks[] = \(list(inputs.map { shapeProduct(Array(physical($0).dropFirst(pax))) }));")
            run.line("kiln::concat(\(inputs.count), xs, chunks, \(v(y)), \(shapeProduct(Array(physical(y).prefix(pax)))));")
            run.close()
        case .split(let axis):
            let s = shape(x0!)
            let ax = try normalizeAxis(axis, rank: s.count, n.label)
            var offset = 0
            for out in n.outputs {
                var axes = s.map { SliceAxis(start: 0, step: 1, count: $0) }
                axes[ax] = SliceAxis(start: offset, step: 1, count: shape(out)[ax])
                emitSlice(x0!, axes, to: out)
                offset += shape(out)[ax]
            }
        case .slice:
            let axes = try resolveSlice(shape: shape(x0!), starts: constant(x(1))!.int64Values, ends: constant(x(2))!.int64Values,
                                        axes: constant(x(3))?.int64Values, steps: constant(x(4))?.int64Values, n.label)
            emitSlice(x0!, axes, to: y)
        case .reshape, .flatten, .squeeze, .unsqueeze, .identity:
            copy(x0!, to: y)
        case .dropout:
            copy(x0!, to: y)
            if n.outputs.count > 1 {
                run.line("kiln::fill(\(v(n.outputs[1])), \(shapeProduct(shape(n.outputs[1]))), true);")
            }
        case .transpose(let perm):
            let s = shape(x0!)
            let p = perm ?? Array((0..<s.count).reversed())
            let strides = contiguousStrides(s)
            emitStridedCopy(x0!, offset: 0, strides: p.map { strides[$0] }, to: y)
        case .expand:
            emitStridedCopy(x0!, offset: 0, strides: broadcastStrides(shape(x0!), to: shape(y)), to: y)
        case .depthToSpace(let b, let crd):
            try emitStridedRead(x0!, depthToSpaceRead(input: shape(x0!), blockSize: b, crd: crd), to: y, n.label)
        case .spaceToDepth(let b, let crd):
            try emitStridedRead(x0!, spaceToDepthRead(input: shape(x0!), blockSize: b, crd: crd), to: y, n.label)
        case .tile:
            guard let r = constant(x(1)!)?.int64Values else { throw KilnError("\(n.label): repeats must be a constant") }
            try emitStridedRead(x0!, tileRead(input: shape(x0!), repeats: r.map { Int($0) }), to: y, n.label)
        case .argReduce(let a):
            let s = shape(x0!)
            let ax = try normalizeAxis(a.axis, rank: s.count, n.label)
            loopCount += 1
            run.line("kiln::arg_reduce(\(v(x0!)), \(v(y)), \(shapeProduct(Array(s.prefix(ax)))), \(s[ax]), \(shapeProduct(Array(s.dropFirst(ax + 1)))), \(a.largest), \(a.selectLastIndex));")
        case .gatherElements(let axis):
            let s = shape(x0!)
            let ax = try normalizeAxis(axis, rank: s.count, n.label)
            loopCount += 1
            run.open()
            run.line("static const int64_t xshape[] = \(list(s)), ishape[] = \(list(shape(x(1)!)));")
            run.line("if (kiln::gather_elements(\(v(x0!)), \(v(x(1)!)), \(v(y)), \(s.count), xshape, ishape, \(ax))) return \(index + 1);")
            run.close()
        case .topK(let a):
            let s = shape(x0!)
            let ax = try normalizeAxis(a.axis, rank: s.count, n.label)
            let k = shape(y)[ax]
            loopCount += 1
            guard n.outputs.count > 1 else { throw KilnError("\(n.label): internal error: TopK without its indices output") }
            run.line("kiln::top_k(\(v(x0!)), \(v(y)), \(v(n.outputs[1])), \(shapeProduct(Array(s.prefix(ax)))), \(s[ax]), \(shapeProduct(Array(s.dropFirst(ax + 1)))), \(k), \(a.largest));")
        case .instanceNormalization(let eps):
            let s = shape(x0!)
            loopCount += 1
            run.line("kiln::instance_norm(\(v(x0!)), \(v(x(1)!)), \(v(x(2)!)), \(v(y)), \(shapeProduct(Array(s.prefix(2)))), \(s[1]), \(shapeProduct(Array(s.dropFirst(2)))), \(floatLiteral(eps)));")
        case .gather where layout(x0!) == .channelsLast:
            // Channels innermost: a gather along C picks within each pixel (the pass allows only that).
            let s = shape(x0!)
            loopCount += 1
            if let groups = channelShuffleGroups(constant(x(1))?.int64Values, channels: s[1]), plan.storage[x0!] != plan.storage[y] {
                run.line("kiln::channel_shuffle<\(groups)>(\(v(x0!)), \(v(y)), \(shapeProduct(s) / s[1]), \(s[1]));")
                break
            }
            run.line("if (kiln::gather_channels(\(v(x0!)), \(v(x(1)!)), \(shapeProduct(shape(x(1)!))), \(v(y)), \(shapeProduct(s) / s[1]), \(s[1]))) return \(index + 1);")
        case .gather(let axis):
            let s = shape(x0!)
            let ax = try normalizeAxis(axis, rank: s.count, n.label)
            loopCount += 1
            run.line("if (kiln::gather(\(v(x0!)), \(v(x(1)!)), \(shapeProduct(shape(x(1)!))), \(v(y)), \(shapeProduct(Array(s.prefix(ax)))), \(s[ax]), \(shapeProduct(Array(s.dropFirst(ax + 1)))))) return \(index + 1);")
        case .cast, .castLike:
            emitMap(n, "v")
        case .constantOfShape(let value):
            loopCount += 1
            let lit = value.elementType.isFloat ? "kiln::store<\(cType(value.elementType))>(\(floatLiteral(value.floats[0])))"
                                                : "kiln::store_i<\(cType(value.elementType))>(\(int64Literal(value.ints[0])))"
            run.line("kiln::fill(\(v(y)), \(shapeProduct(shape(y))), \(lit));")
        case .pad(let mode):
            let s = shape(x0!)
            let axes = try padAxes(constant(x(3))?.int64Values, rank: s.count, n.label)
            var begin = [Int](repeating: 0, count: s.count)
            for (k, a) in axes.enumerated() { begin[a] = Int(constant(x(1))!.int64Values[k]) }
            let modeCode: Int
            switch mode {
            case .constant: modeCode = 0
            case .reflect: modeCode = 1
            case .edge: modeCode = 2
            case .wrap: modeCode = 3
            }
            let t = cType(elem(y))
            loopCount += 1
            run.open()
            run.line("static const int64_t in_shape[] = \(list(s)), begin[] = \(list(begin)), out_shape[] = \(list(shape(y)));")
            run.line("const \(t) value = \(x(2).map { "\(v($0))[0]" } ?? "\(t){}");")
            run.line("kiln::pad(\(v(x0!)), in_shape, begin, \(v(y)), out_shape, \(s.count), \(modeCode), value);")
            run.close()
        case .resize(let r):
            try emitResize(n, r)
        case .softmax(let axis, let legacy), .logSoftmax(let axis, let legacy):
            var log = false
            if case .logSoftmax = n.op { log = true }
            let s = shape(x0!)
            let ax = try normalizeAxis(axis, rank: s.count, n.label)
            let outer = shapeProduct(Array(s.prefix(ax)))
            let len = legacy ? shapeProduct(Array(s.dropFirst(ax))) : s[ax]
            let inner = legacy ? 1 : shapeProduct(Array(s.dropFirst(ax + 1)))
            loopCount += 1
            run.line("kiln::softmax(\(v(x0!)), \(v(y)), \(outer), \(len), \(inner), \(log));")
        case .reduce(let kind, _, let noop):
            let s = shape(x0!)
            let axes = try resolveReduceAxes(constant(x(1))?.int64Values, rank: s.count, noopWithEmptyAxes: noop, n.label)
            if axes.isEmpty {
                copy(x0!, to: y)
            } else {
                loopCount += 1
                run.open()
                run.line("const \(cType(elem(x0!)))* p0 = \(v(x0!));")
                emitReduceLoop(shape: s, strides: [contiguousStrides(s)], axes: axes, kind: kind, out: y,
                               valueType: elem(x0!), body: ["return kiln::load(p0[o[0]]);"])
                run.close()
            }
        case .layerNormalization(let axis, let eps):
            let s = shape(x0!)
            let ax = try normalizeAxis(axis, rank: s.count, n.label)
            let normShape = Array(s.dropFirst(ax))
            func indexTable(_ id: ValueID?) -> String {
                guard let id, shape(id) != normShape else { return "nullptr" }
                let strides = broadcastStrides(shape(id), to: normShape)
                var table: [Int] = []
                forEachIndex(normShape) { _, idx in table.append(zip(idx, strides).reduce(0) { $0 + $1.0 * $1.1 }) }
                return "(const int64_t[])\(list(table))"
            }
            loopCount += 1
            run.line("kiln::layer_norm(\(v(x0!)), \(v(x(1)!)), \(indexTable(x(1))), \(x(2).map { v($0) } ?? "(const \(cType(elem(x0!)))*)nullptr"), \(indexTable(x(2))), \(v(y)), \(n.outputs.count > 1 ? v(n.outputs[1]) : "nullptr"), \(n.outputs.count > 2 ? v(n.outputs[2]) : "nullptr"), \(shapeProduct(Array(s.prefix(ax)))), \(shapeProduct(normShape)), \(floatLiteral(eps)));")
        case _ where perTensorParameters(n) != nil:
            let (scale, zero, quantizes) = perTensorParameters(n)!
            loopCount += 1
            let kernel = quantizes ? "quantize_tensor" : "dequantize_tensor"
            run.line("kiln::\(kernel)(\(v(x0!)), \(floatLiteral(scale)), \(zero), \(v(y)), \(shapeProduct(shape(y))));")
        case .quantizeLinear(let axis, _):
            let (inner, dim) = try quantParams(x0!, scale: x(1)!, axis: axis, n.label)
            let r = elem(y).intRange
            loopCount += 1
            run.line("kiln::quantize(\(v(x0!)), \(v(x(1)!)), \(x(2).map { v($0) } ?? "(const \(cType(elem(y)))*)nullptr"), \(v(y)), \(shapeProduct(shape(y))), \(inner), \(dim), \(r.lowerBound), \(r.upperBound));")
        case .dequantizeLinear(let axis):
            let (inner, dim) = try quantParams(x0!, scale: x(1)!, axis: axis, n.label)
            loopCount += 1
            run.line("kiln::dequantize(\(v(x0!)), \(v(x(1)!)), \(x(2).map { v($0) } ?? "(const \(cType(elem(x0!)))*)nullptr"), \(v(y)), \(shapeProduct(shape(y))), \(inner), \(dim));")
        case .layoutConvert:
            if Layout.sameBytes(shape(y), layout(x0!), layout(y)) {
                copy(x0!, to: y)
            } else if [.f32, .u8, .s8].contains(elem(y)), (2...5).contains(shape(y).count) {
                emitOneDNNReorder(n, index: index)
            } else {
                emitStridedCopy(x0!, offset: 0, strides: iterationStrides(x0!, over: y), to: y, physical: true)
            }
        case .elementwiseGroup(let e):
            emitElementwiseGroup(n, e)
        case .shape, .size, .range:
            throw KilnError("\(n.label): should have been folded to a constant", unsupported: true)
        case .unsupported(let reason):
            throw KilnError("\(n.label) is not supported: \(reason)", unsupported: true)
        }
    }

    /// The constant scale and zero point of a per-tensor QuantizeLinear or DequantizeLinear
    /// between f32 and u8/s8, and which of the two it is (nil otherwise).
    func perTensorParameters(_ n: Node) -> (scale: Float, zero: Int32, quantizes: Bool)? {
        let quantizes: Bool
        switch n.op {
        case .quantizeLinear: quantizes = true
        case .dequantizeLinear: quantizes = false
        default: return nil
        }
        guard n.inputs.count >= 2, let s = constant(n.inputs[1]), s.count == 1, s.elementType == .f32 else { return nil }
        let z = n.inputs.count > 2 ? n.inputs[2] : nil
        if z != nil { guard let zt = constant(z), zt.count == 1 else { return nil } }
        let (integer, real) = quantizes ? (elem(n.outputs[0]), elem(n.inputs[0]!)) : (elem(n.inputs[0]!), elem(n.outputs[0]))
        guard integer == .u8 || integer == .s8, real == .f32 else { return nil }
        return (s.floats[0], Int32(constant(z)?.ints[0] ?? 0), quantizes)
    }

    // MARK: elementwise

    /// The group count G when `indices` are a channel shuffle of `channels` (index k takes
    /// channel (k mod G)·(channels/G) + k div G), else nil.
    func channelShuffleGroups(_ indices: [Int64]?, channels c: Int) -> Int? {
        guard let idx = indices, idx.count == c, c > 1 else { return nil }
        for g in 2...min(c, 64) where c % g == 0 {
            let per = c / g
            if idx.indices.allSatisfy({ idx[$0] == Int64(($0 % g) * per + $0 / g) }) { return g }
        }
        return nil
    }

    /// Elu or Selu as a C++ expression of the float `v`.
    func activationExpression(_ op: Op) -> String {
        switch op {
        case .elu(let a): return "v > 0 ? v : (float)(\(Double(a)) * std::expm1((double)v))"
        case .selu(let a, let g): return "(float)(\(Double(g)) * (v > 0 ? (double)v : \(Double(a)) * std::expm1((double)v)))"
        default: preconditionFailure("\(op.name) is not an activation with an expression")
        }
    }

    /// A post-op as a C++ expression of the float `v`.
    func postOpExpression(_ p: PostOp) -> String {
        switch p {
        case .sum: return "v"
        case .relu: return "v > 0 ? v : 0.0f"
        case .leakyRelu(let a): return "v < 0 ? \(floatLiteral(a)) * v : v"
        case .clip(let lo, let hi): return "std::isnan(v) ? v : std::min(std::max(v, \(floatLiteral(lo))), \(floatLiteral(hi)))"
        case .sigmoid: return unaryExpression(.sigmoid, .f32)
        case .tanh: return "std::tanh(v)"
        case .hardSwish: return unaryExpression(.hardSwish, .f32)
        case .hardSigmoid(let a, let b): return "std::max(0.0f, std::min(1.0f, \(floatLiteral(a)) * v + \(floatLiteral(b))))"
        case .silu: return "(float)((double)v / (1.0 + std::exp(-(double)v)))"
        case .gelu(let t): return t ? "0.5f * v * (1.0f + std::tanh(0.7978845608f * (v + 0.044715f * v * v * v)))"
                                    : "(float)(0.5 * (double)v * (1.0 + std::erf((double)v * 0.7071067811865476)))"
        }
    }

    /// Post-ops of a node that did not go through oneDNN, as loops over its output.
    mutating func emitGenericPostOps(_ ops: [PostOp], y: ValueID, addend: ValueID?) {
        for p in ops {
            if p == .sum {
                if let addend { emitBinary(a: y, b: addend, y: y, op: .add) }
                continue
            }
            let expr = postOpExpression(p)
            loopCount += 1
            run.line("kiln::map(\(v(y)), \(v(y)), \(shapeProduct(shape(y))), [](auto v) { return \(expr); });")
        }
    }

    func unaryExpression(_ u: UnaryOp, _ t: ElementType) -> String {
        let isFloat = t.isFloat
        switch u {
        case .relu: return isFloat ? "v > 0 ? v : 0.0f" : "v > 0 ? v : (int64_t)0"
        case .sigmoid: return "(float)(1.0 / (1.0 + std::exp(-(double)v)))"
        case .tanh: return "std::tanh(v)"
        case .erf: return "(float)std::erf((double)v)"
        case .exp: return "std::exp(v)"
        case .log: return "std::log(v)"
        case .sqrt: return "std::sqrt(v)"
        case .neg: return isFloat ? "-v" : "kiln::wsub(0, v)"
        case .abs: return isFloat ? "std::fabs(v)" : "(v < 0 ? kiln::wsub(0, v) : v)"
        case .reciprocal: return "1.0f / v"
        case .floor: return "std::floor(v)"
        case .hardSwish: return "v * std::max(0.0f, std::min(1.0f, v / 6.0f + 0.5f))"
        case .softplus: return "(float)std::log1p(std::exp((double)v))"
        case .not: return "(int64_t)(v == 0)"
        }
    }

    /// Whether an elementwise step calls exp, tanh, erf or log (worth a table on 8-bit inputs).
    static func isTranscendental(_ op: Op) -> Bool {
        switch op {
        case .unary(let u): return [.sigmoid, .tanh, .erf, .exp, .log, .softplus].contains(u)
        case .gelu, .elu, .selu: return true
        default: return false
        }
    }

    mutating func emitMap(_ n: Node, _ expression: String) {
        let x = n.inputs[0]!, y = n.outputs[0]
        loopCount += 1
        run.line("kiln::map(\(v(x)), \(v(y)), \(shapeProduct(shape(y))), [](auto v) { return \(expression); });")
    }

    mutating func emitClip(_ n: Node) {
        let x = n.inputs[0]!, y = n.outputs[0]
        let lo = n.inputs.count > 1 ? n.inputs[1] : nil, hi = n.inputs.count > 2 ? n.inputs[2] : nil
        let isFloat = elem(x).isFloat
        let c = isFloat ? "float" : "int64_t"
        let low = lo.map { "kiln::load(\(v($0))[0])" } ?? (isFloat ? "-INFINITY" : "INT64_MIN")
        let high = hi.map { "kiln::load(\(v($0))[0])" } ?? (isFloat ? "INFINITY" : "INT64_MAX")
        loopCount += 1
        run.open()
        run.line("const \(c) lo = \(low), hi = \(high);")
        let body = isFloat ? "std::isnan(v) ? v : std::min(std::max(v, lo), hi)" : "std::min(std::max(v, lo), hi)"
        run.line("kiln::map(\(v(x)), \(v(y)), \(shapeProduct(shape(y))), [lo, hi](auto v) { return \(body); });")
        run.close()
    }

    /// One loop for a group of elementwise ops: each step a local variable, the inputs read
    /// through their own strides (any layout, broadcast); with a reduction, reduced in the loop.
    mutating func emitElementwiseGroup(_ n: Node, _ e: ElementwiseGroup) {
        let y = n.outputs[0]
        // One-element constants (scales, zero points, scalar operands) are literals in the loop's
        // body; the other inputs are read through pointers, so that fewer streams leave the loop
        // vectorizable (for_each_strided's fast path takes up to 3).
        var literal: [Int: String] = [:]
        for (k, x) in n.inputs.enumerated() {
            guard let c = constant(x), c.count == 1 else { continue }
            literal[k] = c.elementType.isFloat ? floatLiteral(c.floats[0]) : "\(c.ints[0]).0f"
        }
        if literal.count == n.inputs.count { literal[0] = nil }
        let streamed = n.inputs.indices.filter { literal[$0] == nil }
        let inputs = streamed.map { n.inputs[$0]! }
        let slot = Dictionary(uniqueKeysWithValues: streamed.enumerated().map { ($1, $0) })
        // 8- and 32-bit types convert to float directly (through int32, which vectorizes; kiln::load's int64 does not).
        // Without broadcasting (every input in the output's shape and layout) the loop is flat.
        let outShape = physicalShape(y)
        let dense = contiguousStrides(outShape)
        let flat = e.reduction == nil && inputs.allSatisfy { x in
            zip(iterationStrides(x, over: y), dense).enumerated().allSatisfy { d, s in outShape[d] == 1 || s.0 == s.1 }
        }
        var body: [String] = inputs.enumerated().map { j, x in
            let at = flat ? "k" : "o[\(j)]"
            return [.f32, .u8, .s8, .s32].contains(elem(x)) ? "const float i\(j) = (float)p\(j)[\(at)];" : "const float i\(j) = kiln::load(p\(j)[\(at)]);"
        }
        func operand(_ o: ElementwiseGroup.Operand) -> String {
            switch o {
            case .input(let i): return literal[i] ?? "i\(slot[i]!)"
            case .step(let j): return "s\(j)"
            case .absent: return ""
            }
        }
        for (k, step) in e.steps.enumerated() {
            let args = step.operands.map(operand)
            let expr: String
            switch step.op {
            case .unary(let u): expr = unaryExpression(u, .f32)
            case .leakyRelu(let a): expr = postOpExpression(.leakyRelu(alpha: a))
            case .elu, .selu: expr = activationExpression(step.op)
            case .hardSigmoid(let a, let b): expr = postOpExpression(.hardSigmoid(alpha: a, beta: b))
            case .gelu(let t): expr = postOpExpression(.gelu(tanhApproximation: t))
            case .clip:
                let lo = args.count > 1 && step.operands[1] != .absent ? args[1] : "-INFINITY"
                let hi = args.count > 2 && step.operands[2] != .absent ? args[2] : "INFINITY"
                expr = "std::isnan(v) ? v : std::min(std::max(v, \(lo)), \(hi))"
            case .binary(let b):
                body.append("float s\(k); { const float a = \(args[0]), b = \(args[1]); s\(k) = \(binaryExpression(b, isFloat: true)); }")
                continue
            case .dequantizeLinear:
                // Per tensor (the type rule sees to it): (x − z) · s, exact for the integers held in floats.
                let z = args.count > 2 && step.operands[2] != .absent ? args[2] : "0.0f"
                body.append("const float s\(k) = (\(args[0]) - \(z)) * \(args[1]);")
                continue
            case .quantizeLinear(_, let t):
                let z = args.count > 2 && step.operands[2] != .absent ? args[2] : "0.0f"
                let r = t.intRange
                body.append("float s\(k); { const float q = std::nearbyint(\(args[0]) / \(args[1])) + \(z); s\(k) = q != q ? 0.0f : std::min(std::max(q, \(r.lowerBound).0f), \(r.upperBound).0f); }")
                continue
            default:
                preconditionFailure("\(step.op.name) is not an elementwise step")
            }
            body.append("float s\(k); { const float v = \(args[0]); s\(k) = \(expr); }")
        }
        let last = "s\(e.steps.count - 1)"
        loopCount += 1
        run.open()
        let store = elem(y) == .f32 ? "out[k] = \(last);" : "out[k] = (\(cType(elem(y))))\(last);"
        if flat, inputs.count == 1, [.u8, .s8].contains(elem(inputs[0])), e.steps.contains(where: { Self.isTranscendental($0.op) }) {
            // A function of one 8-bit input with exp/tanh/erf in it: a 256-entry table, computed
            // once by the same code, then one lookup per element.
            let t = cType(elem(y))
            run.line("static const std::array<\(t), 256> table = [] {")
            run.line("    std::array<\(t), 256> out{};")
            run.line("    for (int k = 0; k < 256; k++) {")
            run.line("        const float i0 = (float)(\(cType(elem(inputs[0]))))k;")
            for l in body.dropFirst() { run.line("        " + l) }
            run.line("        " + store)
            run.line("    }")
            run.line("    return out;")
            run.line("}();")
            run.line("const uint8_t* __restrict p0 = (const uint8_t*)\(v(inputs[0]));")
            run.line("\(t)* __restrict out = \(v(y));")
            let count = shapeProduct(outShape)
            run.line("#pragma omp parallel for if (\(count) >= kiln::kParallelThreshold)")
            run.line("for (int64_t k = 0; k < \(count); k++) out[k] = table[p0[k]];")
            run.close()
            return
        }
        if flat {
            // Restrict-qualified locals: a u8 store may otherwise alias the pointers and stop vectorization.
            for (i, x) in inputs.enumerated() { run.line("const \(cType(elem(x)))* __restrict p\(i) = \(v(x));") }
            run.line("\(cType(elem(y)))* __restrict out = \(v(y));")
            let count = shapeProduct(outShape)
            // (Not `omp simd`: with it g++ 12 leaves conversions and rounding scalar; without, it vectorizes.)
            run.line("#pragma omp parallel for if (\(count) >= kiln::kParallelThreshold)")
            run.open("for (int64_t k = 0; k < \(count); k++)")
            for l in body { run.line(l) }
            run.line(store)
            run.close()
            run.close()
            return
        }
        for (i, x) in inputs.enumerated() { run.line("const \(cType(elem(x)))* p\(i) = \(v(x));") }
        if let r = e.reduction {
            // Inputs and output are plain (the layout pass sees to it).
            let full = n.inputs.map { shape($0!) }.reduce([Int]()) { (try? broadcastShapes([$0, $1], "")) ?? $0 }
            emitReduceLoop(shape: full, strides: inputs.map { broadcastStrides(shape($0), to: full) }, axes: r.axes,
                           kind: r.kind, out: y, valueType: .f32, body: body + ["return \(last);"])
        } else {
            let out = physicalShape(y)
            run.line("\(cType(elem(y)))* out = \(v(y));")
            for (i, x) in inputs.enumerated() { run.line("static const int64_t s\(i)[] = \(list(iterationStrides(x, over: y)));") }
            run.line("static const int64_t shape[] = \(list(out));")
            run.line("static const int64_t* const strides[] = {\(inputs.indices.map { "s\($0)" }.joined(separator: ", "))};")
            run.line("kiln::for_each_strided<\(inputs.count)>(\(out.count), shape, strides, [&](int64_t k, const int64_t* o) {")
            for l in body { run.line("    " + l) }
            run.line("    " + store)
            run.line("});")
        }
        run.close()
    }

    /// kiln::reduce_strided over `shape`, input k (pointer `pk`) read through `strides[k]`;
    /// `body` computes the value at the point whose input offsets are `o`.
    mutating func emitReduceLoop(shape full: [Int], strides: [[Int]], axes: [Int], kind: ReduceOp, out: ValueID,
                                 valueType: ElementType, body: [String]) {
        for (i, st) in strides.enumerated() { run.line("static const int64_t s\(i)[] = \(list(st));") }
        run.line("static const int64_t shape[] = \(list(full));")
        run.line("static const int64_t* const strides[] = {\(strides.indices.map { "s\($0)" }.joined(separator: ", "))};")
        run.line("static const bool reduced[] = \(list(full.indices.map { axes.contains($0) ? 1 : 0 }));")
        let range = valueType.isFloat ? 0...0 : valueType.intRange
        let kernel = "kiln::Reduce::\(kind.rawValue)"
        run.line("kiln::reduce_strided<\(strides.count), \(kernel)>(\(full.count), shape, strides, reduced, \(v(out)), \(int64Literal(range.lowerBound)), \(int64Literal(range.upperBound)), [&](const int64_t* o) {")
        for l in body { run.line("    " + l) }
        run.line("});")
    }

    func binaryExpression(_ op: BinaryOp, isFloat: Bool) -> String {
        switch op {
        case .add: return isFloat ? "a + b" : "kiln::wadd(a, b)"
        case .sub: return isFloat ? "a - b" : "kiln::wsub(a, b)"
        case .mul: return isFloat ? "a * b" : "kiln::wmul(a, b)"
        case .div: return isFloat ? "a / b" : "kiln::wdiv(a, b)"
        case .pow: return isFloat ? "std::pow(a, (float)b)" : "kiln::wpow(a, (int64_t)b)"
        case .max: return isFloat ? "kiln::fmax_nan(a, b)" : "std::max(a, b)"
        case .min: return isFloat ? "kiln::fmin_nan(a, b)" : "std::min(a, b)"
        case .equal: return "(int64_t)(a == b)"
        case .less: return "(int64_t)(a < b)"
        case .greater: return "(int64_t)(a > b)"
        case .lessOrEqual: return "(int64_t)(a <= b)"
        case .greaterOrEqual: return "(int64_t)(a >= b)"
        case .and: return "(int64_t)(a && b)"
        case .or: return "(int64_t)(a || b)"
        case .xor: return "(int64_t)((a != 0) != (b != 0))"
        case .mod: return isFloat ? "kiln::fmod_floor(a, b)" : "kiln::wmod(a, b)"
        case .fmod: return isFloat ? "std::fmod(a, b)" : "kiln::wfmod(a, b)"
        case .prelu: return isFloat ? "a < 0 ? b * a : a" : "a < 0 ? kiln::wmul(b, a) : a"
        }
    }

    mutating func emitBinary(a: ValueID, b: ValueID, y: ValueID, op: BinaryOp) {
        let out = physicalShape(y)
        let isFloat = elem(a).isFloat
        let expr = binaryExpression(op, isFloat: isFloat)
        loopCount += 1
        run.open()
        run.line("static const int64_t shape[] = \(list(out)), sa[] = \(list(iterationStrides(a, over: y))), sb[] = \(list(iterationStrides(b, over: y)));")
        run.line("kiln::binary(\(v(a)), sa, \(v(b)), sb, \(v(y)), \(out.count), shape, [](auto a, auto b) { return \(expr); });")
        run.close()
    }

    // MARK: data movement

    mutating func copy(_ x: ValueID, to y: ValueID) {
        if plan.storage[x] == plan.storage[y] { return }
        run.line("std::memcpy(\(v(y)), \(v(x)), \(type(y).byteSize!));")
    }

    mutating func emitStridedCopy(_ x: ValueID, offset: Int, strides: [Int], to y: ValueID, physical: Bool = false) {
        loopCount += 1
        let out = physical ? physicalShape(y) : shape(y)
        run.open()
        run.line("static const int64_t shape[] = \(list(out)), strides[] = \(list(strides));")
        run.line("kiln::strided_copy(\(v(x)), \(offset), strides, \(v(y)), \(out.count), shape);")
        run.close()
    }

    /// One strided read into a plain output (DepthToSpace, SpaceToDepth, Tile).
    mutating func emitStridedRead(_ x: ValueID, _ r: StridedRead, to y: ValueID, _ label: String) throws {
        // Axes of extent 1 read nothing: drop them (the runtime takes up to 8 axes).
        let keep = r.shape.indices.filter { r.shape[$0] != 1 }
        guard keep.count <= 8 else { throw KilnError("\(label): more than 8 axes to copy through", unsupported: true) }
        guard layout(x) == .plain, layout(y) == .plain else { throw KilnError("internal error: \(label) needs plain layouts") }
        loopCount += 1
        run.open()
        run.line("static const int64_t shape[] = \(list(keep.map { r.shape[$0] })), strides[] = \(list(keep.map { r.strides[$0] }));")
        run.line("kiln::strided_copy(\(v(x)), 0, strides, \(v(y)), \(keep.count), shape);")
        run.close()
    }

    /// A slice in any layout: `x` read through its own strides, `y` written in its memory order.
    mutating func emitSlice(_ x: ValueID, _ axes: [SliceAxis], to y: ValueID) {
        let strides = layout(x).strides(shape(x))
        let offset = zip(axes, strides).reduce(0) { $0 + $1.0.start * $1.1 }
        let logical = zip(axes, strides).map { $0.step * $1 }
        let order = layout(y).physicalOrder(rank: shape(y).count)
        emitStridedCopy(x, offset: offset, strides: order.map { logical[$0] }, to: y, physical: true)
    }

    mutating func emitResize(_ n: Node, _ r: ResizeAttributes) throws {
        let x = n.inputs[0]!, y = n.outputs[0]
        func input(_ i: Int) -> Tensor? { i < n.inputs.count ? constant(n.inputs[i]) : nil }
        let (_, scales) = try resolveResize(input: shape(x), scales: input(2)?.floatValues, sizes: input(3)?.int64Values,
                                           attributes: r, n.label)
        let roi = input(1)?.floatValues
        if elem(x) == .f32, let (h, w) = resizeSpatialTables(input: shape(x), output: shape(y), scales: scales, roi: roi, attributes: r) {
            let xs = shape(x), ys = shape(y)
            let channelsLast = layout(x) == .channelsLast
            let linear = r.mode == .linear
            loopCount += 1
            run.open()
            run.line("static const int64_t ly[] = \(list(linear ? h.lower : h.nearest)), uy[] = \(list(h.upper)), lx[] = \(list(linear ? w.lower : w.nearest)), ux[] = \(list(w.upper));")
            run.line("static const float wy[] = {\(h.weight.map(floatLiteral).joined(separator: ", "))}, wx[] = {\(w.weight.map(floatLiteral).joined(separator: ", "))};")
            run.line("kiln::resize_hw(\(v(x)), \(v(y)), \(channelsLast ? xs[0] : xs[0] * xs[1]), \(channelsLast ? xs[1] : 1), \(xs[2]), \(xs[3]), \(ys[2]), \(ys[3]), ly, uy, wy, lx, ux, wx, \(linear));")
            run.close()
            return
        }
        let tables = resizeTables(input: shape(x), output: shape(y), scales: scales, roi: roi, attributes: r)
        let rank = shape(x).count
        loopCount += 1
        run.open()
        for (d, t) in tables.enumerated() {
            run.line("static const int64_t n\(d)[] = \(list(t.nearest)), l\(d)[] = \(list(t.lower)), u\(d)[] = \(list(t.upper));")
            run.line("static const float w\(d)[] = {\(t.weight.map(floatLiteral).joined(separator: ", "))};")
            run.line("static const unsigned char o\(d)[] = \(list(t.outside.map { $0 ? 1 : 0 }));")
        }
        func arr(_ p: String) -> String { "{" + (0..<rank).map { "\(p)\($0)" }.joined(separator: ", ") + "}" }
        run.line("static const int64_t* const nearest[] = \(arr("n")), * const lower[] = \(arr("l")), * const upper[] = \(arr("u"));")
        run.line("static const float* const weight[] = \(arr("w"));")
        run.line("static const unsigned char* const outside[] = \(arr("o"));")
        run.line("static const int64_t in_shape[] = \(list(shape(x))), out_shape[] = \(list(shape(y)));")
        run.line("kiln::resize(\(v(x)), \(v(y)), \(rank), in_shape, out_shape, nearest, lower, upper, weight, outside, \(r.mode == .linear), \(floatLiteral(r.extrapolationValue)));")
        run.close()
    }

    func quantParams(_ x: ValueID, scale: ValueID, axis: Int, _ what: String) throws -> (inner: Int, dim: Int) {
        let s = shape(scale)
        if shapeProduct(s) == 1 && s.count <= 1 { return (1, 1) }
        let xs = shape(x)
        let ax = try normalizeAxis(axis, rank: xs.count, what)
        return (shapeProduct(Array(xs.dropFirst(ax + 1))), xs[ax])
    }

    func window(_ geo: WindowGeometry) -> String {
        let pad = 3 - geo.input.count
        func ext(_ a: [Int], _ fill: Int) -> String { list([Int](repeating: fill, count: pad) + a) }
        return "{\(ext(geo.input, 1)), \(ext(geo.output, 1)), \(ext(geo.kernel, 1)), \(ext(geo.strides, 1)), \(ext(geo.dilations, 1)), \(ext(geo.padsBegin, 0)), \(ext(geo.padsEnd, 0))}"
    }

    // MARK: generic fallbacks for convolution and matrix products

    mutating func emitGenericConv(_ n: Node, _ a: ConvAttributes) throws {
        let x = n.inputs[0]!, w = n.inputs[1]!, y = n.outputs[0]
        let b = n.inputs.count > 2 ? n.inputs[2] : nil
        let xs = shape(x), ws = shape(w)
        let geo = try windowGeometry(input: Array(xs.dropFirst(2)), kernel: Array(ws.dropFirst(2)), strides: a.strides,
                                     pads: a.pads, dilations: a.dilations, autoPad: a.autoPad, n.label)
        guard geo.input.count <= 3 else { throw KilnError("\(n.label): more than 3 spatial axes are not supported", unsupported: true) }
        loopCount += 1
        run.open()
        run.line("static const kiln::Window g = \(window(geo));")
        run.line("kiln::conv(\(v(x)), \(v(w)), \(b.map { v($0) } ?? "(const \(cType(elem(x)))*)nullptr"), \(v(y)), \(xs[0]), \(xs[1]), \(ws[0]), \(a.group), g);")
        run.close()
    }

    mutating func emitGenericConvTranspose(_ n: Node, _ a: ConvTransposeAttributes) throws {
        let x = n.inputs[0]!, w = n.inputs[1]!, y = n.outputs[0]
        let b = n.inputs.count > 2 ? n.inputs[2] : nil
        let xs = shape(x), ws = shape(w)
        let geo = try convTransposeGeometry(input: Array(xs.dropFirst(2)), kernel: Array(ws.dropFirst(2)), attributes: a, n.label)
        guard geo.input.count <= 3 else { throw KilnError("\(n.label): more than 3 spatial axes are not supported", unsupported: true) }
        loopCount += 1
        run.open()
        run.line("static const kiln::Window g = \(window(geo));")
        run.line("kiln::conv_transpose(\(v(x)), \(v(w)), \(b.map { v($0) } ?? "(const \(cType(elem(x)))*)nullptr"), \(v(y)), \(xs[0]), \(xs[1]), \(shape(y)[1]), \(a.conv.group), g);")
        run.close()
    }

    mutating func emitGenericGemm(_ n: Node, _ a: GemmAttributes) {
        let A = n.inputs[0]!, B = n.inputs[1]!, y = n.outputs[0]
        let C = n.inputs.count > 2 ? n.inputs[2] : nil
        let out = shape(y)
        let k = a.transA ? shape(A)[0] : shape(A)[1]
        let isFloat = elem(y).isFloat
        loopCount += 1
        run.line("kiln::matmul(\(v(A)), \(v(B)), \(v(y)), \(out[0]), \(out[1]), \(k), \(a.transA), \(a.transB));")
        if a.alpha != 1 {
            run.line("kiln::map(\(v(y)), \(v(y)), \(shapeProduct(out)), [](auto v) { return \(isFloat ? "v * \(floatLiteral(a.alpha))" : "kiln::wmul(v, (int64_t)\(Int(a.alpha)))"); });")
        }
        if let C, a.beta != 0 {
            let expr = isFloat ? "a + \(floatLiteral(a.beta)) * b" : "kiln::wadd(a, kiln::wmul((int64_t)\(Int(a.beta)), b))"
            run.open()
            run.line("static const int64_t shape[] = \(list(out)), sa[] = \(list(contiguousStrides(out))), sb[] = \(list(broadcastStrides(shape(C), to: out)));")
            run.line("kiln::binary(\(v(y)), sa, \(v(C)), sb, \(v(y)), 2, shape, [](auto a, auto b) { return \(expr); });")
            run.close()
        }
    }

    mutating func emitGenericMatMul(_ n: Node) {
        let A = n.inputs[0]!, B = n.inputs[1]!, y = n.outputs[0]
        let (a2, b2, batch) = matMulOperands(shape(A), shape(B))
        let m = a2[a2.count - 2], k = a2[a2.count - 1], nn = b2[b2.count - 1]
        let aStrides = broadcastStrides(Array(a2.dropLast(2)), to: batch), bStrides = broadcastStrides(Array(b2.dropLast(2)), to: batch)
        var aOff: [Int] = [], bOff: [Int] = []
        forEachIndex(batch) { _, idx in
            aOff.append(zip(idx, aStrides).reduce(0) { $0 + $1.0 * $1.1 } * m * k)
            bOff.append(zip(idx, bStrides).reduce(0) { $0 + $1.0 * $1.1 } * k * nn)
        }
        loopCount += 1
        run.open()
        run.line("static const int64_t aoff[] = \(list(aOff)), boff[] = \(list(bOff));")
        run.line("for (int64_t i = 0; i < \(aOff.count); i++) kiln::matmul(\(v(A)) + aoff[i], \(v(B)) + boff[i], \(v(y)) + i * \(m * nn), \(m), \(nn), \(k), false, false);")
        run.close()
    }
}

extension ModelEmitter {
    func layout(_ id: ValueID) -> Layout { g.values[id].layout }

    /// The shape in memory order.
    func physicalShape(_ id: ValueID) -> [Int] {
        let s = shape(id)
        return layout(id).physicalOrder(rank: s.count).map { s[$0] }
    }

    /// Strides that read `a` (in its own layout, broadcast numpy-style) while walking `y`'s
    /// elements in `y`'s memory order.
    func iterationStrides(_ a: ValueID, over y: ValueID) -> [Int] {
        let out = shape(y), sa = shape(a)
        let la = layout(a).strides(sa)
        var s = [Int](repeating: 0, count: out.count)
        for k in 0..<sa.count {
            let d = out.count - sa.count + k
            s[d] = sa[k] == 1 ? 0 : la[k]
        }
        return layout(y).physicalOrder(rank: out.count).map { s[$0] }
    }
}

/// Strides that read a tensor of `shape` broadcast to `out` (0 on broadcast axes).
func broadcastStrides(_ shape: [Int], to out: [Int]) -> [Int] {
    let padded = [Int](repeating: 1, count: out.count - shape.count) + shape
    let strides = contiguousStrides(padded)
    return (0..<out.count).map { padded[$0] == 1 && out[$0] != 1 ? 0 : (padded[$0] == 1 ? 0 : strides[$0]) }
}

/// Matmul operands promoted to rank ≥ 2 and equal rank, and the broadcast batch shape.
func matMulOperands(_ a: [Int], _ b: [Int]) -> (a: [Int], b: [Int], batch: [Int]) {
    var a2 = a.count == 1 ? [1, a[0]] : a
    var b2 = b.count == 1 ? [b[0], 1] : b
    let rank = max(a2.count, b2.count)
    a2 = [Int](repeating: 1, count: rank - a2.count) + a2
    b2 = [Int](repeating: 1, count: rank - b2.count) + b2
    let batch = zip(a2.dropLast(2), b2.dropLast(2)).map { max($0, $1) }
    return (a2, b2, batch)
}
