import KilnIR

extension ModelEmitter {
    /// The code of the DataMovement family's ops (`OpFamily.dataMovement`).
    mutating func emitDataMovement(_ n: Node, index: Int) throws {
        let (x0, y, x) = operands(n)
        switch n.op {
        case .concat(let axis):
            let inputs = n.inputs.compactMap { $0 }
            // In the output's physical order (all inputs share its layout).
            let (chunks, rows) = try rowChunks(along: axis, of: y, parts: inputs, n.label)
            let t = cType(elem(y))
            loopCount += 1
            run.open()
            run.line("const \(t)* xs[] = {\(inputs.map { v($0) }.joined(separator: ", "))};")
            run.line("static const int64_t chunks[] = \(list(chunks));")
            run.line("kiln::concat(\(inputs.count), xs, chunks, \(v(y)), \(rows));")
            run.close()
        case .split(let axis):
            let s = shape(x0!)
            let ax = try normalizeAxis(axis, rank: s.count, n.label)
            if layout(x0!) != .blocked16, n.outputs.allSatisfy({ layout($0) == layout(x0!) }), n.outputs.count > 1 {
                // Chunks of rows in x's physical order: one pass (kiln::split).
                let (chunks, rows) = try rowChunks(along: axis, of: x0!, parts: n.outputs, n.label)
                loopCount += 1
                run.open()
                run.line("\(cType(elem(x0!)))* ys[] = {\(n.outputs.map { v($0) }.joined(separator: ", "))};")
                run.line("static const int64_t chunks[] = \(list(chunks));")
                run.line("kiln::split(\(v(x0!)), \(n.outputs.count), ys, chunks, \(rows));")
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
        case .gatherElements(let axis):
            let s = shape(x0!)
            let ax = try normalizeAxis(axis, rank: s.count, n.label)
            loopCount += 1
            run.open()
            run.line("static const int64_t xshape[] = \(list(s)), ishape[] = \(list(shape(x(1)!)));")
            run.line("if (kiln::gather_elements(\(v(x0!)), \(v(x(1)!)), \(v(y)), \(s.count), xshape, ishape, \(ax))) return \(index + 1);")
            run.close()
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
        default: preconditionFailure("\(n.op.name) is not of the dataMovement family")
        }
    }
}
