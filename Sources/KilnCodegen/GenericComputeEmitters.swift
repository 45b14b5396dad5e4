import KilnIR

/// Kiln's own loops for what oneDNN does not take: pooling windows, and convolutions,
/// transposed convolutions and matrix products of other element types or shapes.
extension ModelEmitter {
    func window(_ geo: WindowGeometry) -> String {
        let pad = 3 - geo.input.count
        func ext(_ a: [Int], _ fill: Int) -> String { list([Int](repeating: fill, count: pad) + a) }
        return "{\(ext(geo.input, 1)), \(ext(geo.output, 1)), \(ext(geo.kernel, 1)), \(ext(geo.strides, 1)), \(ext(geo.dilations, 1)), \(ext(geo.padsBegin, 0)), \(ext(geo.padsEnd, 0))}"
    }

    /// Opens the block of a direct conv loop over input `xs` by weights `ws`: its window `g`.
    mutating func openConvLoop(_ n: Node, _ a: ConvAttributes, input xs: [Int], weights ws: [Int]) throws {
        let geo = try windowGeometry(input: Array(xs.dropFirst(2)), kernel: Array(ws.dropFirst(2)), strides: a.strides,
                                     pads: a.pads, dilations: a.dilations, autoPad: a.autoPad, n.label)
        guard geo.input.count <= 3 else { throw KilnError("\(n.label): more than 3 spatial axes are not supported", unsupported: true) }
        loopCount += 1
        run.open()
        run.line("static const kiln::Window g = \(window(geo));")
    }

    mutating func emitGenericConv(_ n: Node, _ a: ConvAttributes) throws {
        let x = n.inputs[0]!, w = n.inputs[1]!, y = n.outputs[0]
        let b = n.inputs.count > 2 ? n.inputs[2] : nil
        let xs = shape(x), ws = shape(w)
        try openConvLoop(n, a, input: xs, weights: ws)
        run.line("kiln::conv(\(v(x)), \(v(w)), \(b.map { v($0) } ?? "(const \(cType(elem(x)))*)nullptr"), \(v(y)), \(xs[0]), \(xs[1]), \(ws[0]), \(a.group), g);")
        run.close()
    }

    /// ONNX ConvInteger, exactly in 32 bits: Kiln's loop.
    mutating func emitConvInteger(_ n: Node, _ a: ConvAttributes) throws {
        let x = n.inputs[0]!, w = n.inputs[1]!, y = n.outputs[0]
        let xz = n.inputs.count > 2 ? n.inputs[2] : nil, wz = n.inputs.count > 3 ? n.inputs[3] : nil
        let xs = shape(x), ws = shape(w)
        try openConvLoop(n, a, input: xs, weights: ws)
        run.line("kiln::conv_integer(\(v(x)), \(v(w)), \(xz.map { v($0) } ?? "(const \(cType(elem(x)))*)nullptr"), "
                 + "\(wz.map { v($0) } ?? "(const \(cType(elem(w)))*)nullptr"), \(wz.map { shapeProduct(shape($0)) > 1 } ?? false), "
                 + "\(v(y)), \(xs[0]), \(xs[1]), \(ws[0]), \(a.group), g);")
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
