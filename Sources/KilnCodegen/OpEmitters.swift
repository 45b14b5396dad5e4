import KilnIR

/// The dispatch: for each node, its run-time code (and, for oneDNN primitives, its create-time
/// code), written here for the small cases and by the kernel families' emitters otherwise
/// (OneDNNEmitters, QuantizedEmitters, ElementwiseEmitters, DataMovementEmitters,
/// GenericComputeEmitters).
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
            let body = postOpChain(postOps)
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
        case .matMul(let a):
            if elem(y) == .f32 && shapeProduct(shape(y)) > 0 && shapeProduct(shape(x0!)) > 0 {
                try emitOneDNNMatMul(n, index: index, postOps: a.postOps)
            } else {
                fallbacks.append("\(n.label): generic loop (\(elem(y) != .f32 ? "element type \(elem(y))" : "empty tensor"))")
                emitGenericMatMul(n)
                if let bias = x(2) { emitBinary(a: y, b: bias, y: y, op: .add) }
                emitGenericPostOps(a.postOps, y: y, addend: nil)
            }
        case .unary(let u):
            emitMap(n, unaryExpression(u, elem(x0!)))
        case .leakyRelu, .elu, .selu, .hardSigmoid, .gelu:
            emitMap(n, n.op.scalarFunction!.cpp)
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
            if !average && layout(x0!) == .channelsLast && geo.input.count == 2 && geo.dilations == [1, 1]
                && [.f32, .u8, .s8].contains(elem(y)) && shapeProduct(shape(y)) > 0 {
                loopCount += 1
                run.open()
                run.line("static const kiln::Window g = \(window(geo));")
                run.line("kiln::max_pool_nhwc_2d(\(v(x0!)), \(v(y)), \(s[0]), \(s[1]), g);")
                run.close()
                break
            }
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
            if layout(x0!) != .blocked16, n.outputs.allSatisfy({ layout($0) == layout(x0!) }), n.outputs.count > 1 {
                // Chunks of rows in x's physical order: one pass (kiln::split).
                let order = layout(x0!).physicalOrder(rank: s.count)
                let pax = order.firstIndex(of: ax)!
                func physical(_ id: ValueID) -> [Int] { order.map { shape(id)[$0] } }
                loopCount += 1
                run.open()
                run.line("\(cType(elem(x0!)))* ys[] = {\(n.outputs.map { v($0) }.joined(separator: ", "))};")
                run.line("static const int64_t chunks[] = \(list(n.outputs.map { shapeProduct(Array(physical($0).dropFirst(pax))) }));")
                run.line("kiln::split(\(v(x0!)), \(n.outputs.count), ys, chunks, \(shapeProduct(Array(physical(x0!).prefix(pax)))));")
                run.close()
                break
            }
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
            if Layout.transposeKeepsBytes(s, perm: p, from: layout(x0!), to: layout(y)) {
                copy(x0!, to: y)
                break
            }
            let strides = contiguousStrides(s)
            emitStridedCopy(x0!, offset: 0, strides: p.map { strides[$0] }, to: y)
        case .expand:
            emitStridedCopy(x0!, offset: 0, strides: broadcastStrides(shape(x0!), to: shape(y)), to: y)
        case .depthToSpace(let b, let crd):
            let last = layout(x0!) == .channelsLast
            try emitStridedRead(x0!, (last ? depthToSpaceReadChannelsLast : depthToSpaceRead)(shape(x0!), b, crd), to: y, n.label)
        case .spaceToDepth(let b, let crd):
            let last = layout(x0!) == .channelsLast
            try emitStridedRead(x0!, (last ? spaceToDepthReadChannelsLast : spaceToDepthRead)(shape(x0!), b, crd), to: y, n.label)
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
            let padMode: String
            switch mode {
            case .constant: padMode = "kiln::PadMode::constant"
            case .reflect: padMode = "kiln::PadMode::reflect"
            case .edge: padMode = "kiln::PadMode::edge"
            case .wrap: padMode = "kiln::PadMode::wrap"
            }
            let t = cType(elem(y))
            // In memory order (padding commutes with the permutation of a channels-last value).
            let order = layout(x0!).physicalOrder(rank: s.count)
            loopCount += 1
            run.open()
            run.line("static const int64_t in_shape[] = \(list(order.map { s[$0] })), begin[] = \(list(order.map { begin[$0] })), out_shape[] = \(list(order.map { shape(y)[$0] }));")
            run.line("const \(t) value = \(x(2).map { "\(v($0))[0]" } ?? "\(t){}");")
            run.line("kiln::pad(\(v(x0!)), in_shape, begin, \(v(y)), out_shape, \(s.count), \(padMode), value);")
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
        case .layoutConvert:
            if Layout.sameBytes(shape(y), layout(x0!), layout(y)) {
                copy(x0!, to: y)
            } else if layout(x0!) == .plain, layout(y) == .channelsLast, shape(y).count >= 3, shape(y)[1] <= 4 {
                // An image's few channels into channels-last: Kiln's interleaving copy (kiln::strided_copy),
                // 2.4x oneDNN 2.6's reorder on 3 × 224 × 224.
                emitStridedCopy(x0!, offset: 0, strides: iterationStrides(x0!, over: y), to: y, physical: true)
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

    func quantParams(_ x: ValueID, scale: ValueID, axis: Int, _ what: String) throws -> (inner: Int, dim: Int) {
        let s = shape(scale)
        if shapeProduct(s) == 1 && s.count <= 1 { return (1, 1) }
        let xs = shape(x)
        let ax = try normalizeAxis(axis, rank: xs.count, what)
        return (shapeProduct(Array(xs.dropFirst(ax + 1))), xs[ax])
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
