import KilnIR

/// Data movement: copies, strided copies and reads (transpose, slice, depth/space moves,
/// tiling), channel shuffles and resizing.
extension ModelEmitter {
    func channelShuffleGroups(_ indices: [Int64]?, channels c: Int) -> Int? {
        guard let idx = indices, idx.count == c, c > 1 else { return nil }
        for g in 2...min(c, 64) where c % g == 0 {
            let per = c / g
            if idx.indices.allSatisfy({ idx[$0] == Int64(($0 % g) * per + $0 / g) }) { return g }
        }
        return nil
    }

    /// Elu or Selu as a C++ expression of the float `v`.

    mutating func copy(_ x: ValueID, to y: ValueID) {
        if plan.storage[x] == plan.storage[y] { return }
        run.line("std::memcpy(\(v(y)), \(v(x)), \(type(y).byteSize!));")
    }

    /// The axes of a strided copy into a contiguous result, without axes of extent 1 and with
    /// neighbours merged where x steps over them as over one axis (a channels-last split's
    /// height and width: one axis of pixels).
    func mergedCopyAxes(_ shape: [Int], _ strides: [Int]) -> (shape: [Int], strides: [Int]) {
        var sh: [Int] = [], st: [Int] = []
        for d in shape.indices where shape[d] != 1 {
            if let last = sh.last, st[st.count - 1] == strides[d] * shape[d] {
                sh[sh.count - 1] = last * shape[d]
                st[st.count - 1] = strides[d]
            } else {
                sh.append(shape[d])
                st.append(strides[d])
            }
        }
        if sh.isEmpty { return ([1], [1]) }
        return (sh, st)
    }

    mutating func emitStridedCopy(_ x: ValueID, offset: Int, strides: [Int], to y: ValueID, physical: Bool = false) {
        loopCount += 1
        let (out, steps) = mergedCopyAxes(physical ? physicalShape(y) : shape(y), strides)
        run.open()
        run.line("static const int64_t shape[] = \(list(out)), strides[] = \(list(steps));")
        run.line("kiln::strided_copy(\(v(x)), \(offset), strides, \(v(y)), \(out.count), shape);")
        run.close()
    }

    /// One strided read into an output written in its memory order (DepthToSpace, SpaceToDepth,
    /// Tile): `r` is for plain values, or for channels-last ones (DepthToSpace, SpaceToDepth).
    mutating func emitStridedRead(_ x: ValueID, _ r: StridedRead, to y: ValueID, _ label: String) throws {
        // Axes of extent 1 read nothing: drop them (the runtime takes up to 8 axes).
        let (sh, st) = mergedCopyAxes(r.shape, r.strides)
        guard sh.count <= 8 else { throw KilnError("\(label): more than 8 axes to copy through", unsupported: true) }
        guard layout(x) == layout(y), layout(x) != .blocked16 else { throw KilnError("internal error: \(label) needs equal plain or channels-last layouts") }
        loopCount += 1
        run.open()
        run.line("static const int64_t shape[] = \(list(sh)), strides[] = \(list(st));")
        run.line("kiln::strided_copy(\(v(x)), 0, strides, \(v(y)), \(sh.count), shape);")
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
        if resizeSpatialKernelTakes(elem(x), r),
           let (h, w) = resizeSpatialTables(input: shape(x), output: shape(y), scales: scales, roi: roi, attributes: r) {
            let xs = shape(x), ys = shape(y)
            let channelsLast = layout(x) == .channelsLast
            let planes = "\(channelsLast ? xs[0] : xs[0] * xs[1]), \(channelsLast ? xs[1] : 1), \(xs[2]), \(xs[3]), \(ys[2]), \(ys[3])"
            loopCount += 1
            run.open()
            if r.mode == .nearest {
                run.line("static const int64_t ly[] = \(list(h.nearest)), lx[] = \(list(w.nearest));")
                run.line("kiln::resize_hw_nearest(\(v(x)), \(v(y)), \(planes), ly, lx);")
            } else {
                run.line("static const int64_t ly[] = \(list(h.lower)), uy[] = \(list(h.upper)), lx[] = \(list(w.lower)), ux[] = \(list(w.upper));")
                run.line("static const float wy[] = {\(h.weight.map(floatLiteral).joined(separator: ", "))}, wx[] = {\(w.weight.map(floatLiteral).joined(separator: ", "))};")
                run.line("kiln::resize_hw(\(v(x)), \(v(y)), \(planes), ly, uy, wy, lx, ux, wx);")
            }
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
}
