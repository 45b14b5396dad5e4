import KilnIR

/// Quantized ops through oneDNN's int8 primitives.
///
/// Without VNNI, oneDNN 2.6's int8 convolutions add pairs of u8·s8 products in 16 bits with
/// saturation (`vpmaddubsw`: far from the exact result on large products), and
/// halve the weights of s8 sources. So a quantized conv runs oneDNN's int8 kernel where that is
/// exact: on a CPU with VNNI (`kiln::int8_exact`, decided at create time), or on any CPU when the
/// source is u8 and every weight is within ±64 (255 · (64 + 64) fits in 16 bits: weights
/// quantized to 7 bits, as ONNX Runtime's `reduce_range` writes them). Elsewhere it runs as the
/// f32 conv of the dequantized source and weights, then quantizes: the definition itself, at
/// f32 speed. Either way every CPU computes the same function, within rounding.
extension ModelEmitter {
    func dataType(_ t: ElementType) -> String {
        switch t {
        case .u8: return "dt::u8"
        case .s8: return "dt::s8"
        default: return "dt::f32"
        }
    }

    /// Whether oneDNN's int8 kernel computes node `n` (source, weights, ...) exactly on every CPU (see above).
    func int8ExactEverywhere(_ n: Node) -> Bool {
        guard elem(n.inputs[0]!) == .u8, let w = constant(n.inputs[1]) else { return false }
        return w.ints.allSatisfy { abs($0) <= 64 }
    }

    /// What differs between the quantized primitives: the oneDNN primitive, its descriptor, and
    /// the shapes its memories take.
    struct QuantizedPrimitive {
        /// `convolution_forward` or `matmul`.
        var type: String
        /// The descriptor's expression from the source, weights, optional bias and destination descs.
        var descriptor: (_ src: String, _ weights: String, _ bias: String?, _ dst: String) -> String
        var srcDims: [Int], srcTag: String
        var dstDims: [Int], dstTag: String
        var weightDims: [Int], weightTag: String
        var biasDims: [Int]
        /// The weight scale of flat weight index `k`, as C++.
        var weightScaleIndex: String
        /// The output-scale mask of per-channel weights.
        var perChannelMask: Int
        var input: Quantization, weights: Quantization, output: Quantization?, addend: Quantization?
        var postOps: [PostOp]
        var int8: (factor: Float, postOps: [OneDNNPostOp])
    }

    mutating func emitQuantizedConv(_ n: Node, index: Int, _ q: QuantizedConvAttributes) throws {
        let x = n.inputs[0]!, w = n.inputs[1]!, y = n.outputs[0]
        guard let int8 = q.oneDNNInt8PostOps else { throw KilnError("internal error: \(n.label): not a quantized conv oneDNN can run") }
        let xs = shape(x), ws = shape(w)
        let a = q.conv
        let geo = try windowGeometry(input: Array(xs.dropFirst(2)), kernel: Array(ws.dropFirst(2)), strides: a.strides,
                                     pads: a.pads, dilations: a.dilations, autoPad: a.autoPad, n.label)
        let window = "\(dims(geo.strides)), \(dims(geo.dilations.map { $0 - 1 })), \(dims(geo.padsBegin)), \(dims(geo.padsEnd))"
        let wdims = a.group > 1 ? [a.group, ws[0] / a.group] + Array(ws.dropFirst()) : ws
        let p = QuantizedPrimitive(
            type: "convolution_forward",
            descriptor: { src, wei, bias, dst in
                "convolution_forward::desc(prop_kind::forward_inference, algorithm::convolution_direct, \(src), \(wei), \(bias.map { "\($0), " } ?? "")\(dst), \(window))"
            },
            srcDims: xs, srcTag: tag(x), dstDims: shape(y), dstTag: tag(y), weightDims: wdims, weightTag: plainTag(wdims.count),
            biasDims: [shape(y)[1]], weightScaleIndex: "k / \(shapeProduct(Array(ws.dropFirst())))", perChannelMask: 2,
            input: q.input, weights: q.weights, output: q.output, addend: q.addend, postOps: a.postOps, int8: int8)
        try emitQuantizedPrimitive(n, index: index, p)
    }

    mutating func emitQuantizedMatMul(_ n: Node, index: Int, _ q: QuantizedMatMulAttributes) throws {
        let x = n.inputs[0]!, w = n.inputs[1]!
        guard let int8 = q.oneDNNInt8PostOps else { throw KilnError("internal error: \(n.label): not a quantized matmul oneDNN can run") }
        let ws = shape(w)
        let rows = shapeProduct(shape(x).dropLast())
        let p = QuantizedPrimitive(
            type: "matmul",
            descriptor: { src, wei, bias, dst in "matmul::desc(\(src), \(wei), \(bias.map { "\($0), " } ?? "")\(dst))" },
            srcDims: [rows, ws[0]], srcTag: "tag::ab", dstDims: [rows, ws[1]], dstTag: "tag::ab",
            weightDims: ws, weightTag: "tag::ab", biasDims: [1, ws[1]], weightScaleIndex: "k % \(ws[1])", perChannelMask: 2,
            input: q.input, weights: q.weights, output: q.output, addend: nil, postOps: q.postOps, int8: int8)
        try emitQuantizedPrimitive(n, index: index, p)
    }

    /// Sets `M_int8`, whether primitive M runs oneDNN's int8 kernel: always with --int8 fast or
    /// where that is exact on every CPU (`exactEverywhere`), else on CPUs with VNNI.
    mutating func emitInt8Choice(_ m: String, exactEverywhere: Bool) {
        if options.int8 == .fast {
            create.line("\(m)_int8 = true;  // --int8 fast: oneDNN's int8 kernels on every CPU")
        } else if exactEverywhere {
            create.line("\(m)_int8 = true;  // u8 source, weights within ±64")
        } else {
            create.line("\(m)_int8 = kiln::int8_exact();")
        }
    }

    /// Reorders the weights, a memory made `from` these constructor arguments, into `M_wei` in the
    /// layout primitive M's `pd` chose.
    mutating func emitWeightsReorder(_ m: String, from arguments: String) {
        create.line("memory plain(\(arguments));")
        create.line("\(m)_wei = memory(pd.weights_desc(), m->eng);")
        create.line("reorder(plain, \(m)_wei).execute(m->strm, plain, \(m)_wei);")
        create.line("m->strm.wait();")
    }

    /// A quantized conv or matmul: the int8 primitive where it is exact, else the f32 form.
    mutating func emitQuantizedPrimitive(_ n: Node, index: Int, _ p: QuantizedPrimitive) throws {
        let x = n.inputs[0]!, w = n.inputs[1]!, y = n.outputs[0]
        let b = n.inputs.count > 2 ? n.inputs[2] : nil
        let addend = p.postOps.contains(.sum) && n.inputs.count > 3 ? n.inputs[3] : nil
        // In the f32 form a fake quantization and what follows it (the residual sum, activations)
        // run in Kiln's loop over the f32 result: oneDNN's AVX2 f32 kernels take a sum only as
        // their first post-op.
        let fakeQuantized = p.postOps.firstIndex(where: \.isFakeQuantize)
        let primitivePostOps = fakeQuantized.map { Array(p.postOps[..<$0]) } ?? p.postOps
        guard let f32PostOps = PostOp.oneDNNLowering(primitivePostOps), case .constant(let weightsOffset) = plan.storage[w]! else {
            throw KilnError("internal error: \(n.label): not a quantized op oneDNN can run")
        }
        let prim = "p\(index)", m = "m->\(prim)"
        let perChannel = !p.weights.isPerTensor
        let sx = floatLiteral(p.input.scales[0])
        for member in ["dnnl::\(p.type) \(prim);", "bool \(prim)_int8 = false;",
                       "std::vector<float> \(prim)_xf, \(prim)_yf, \(prim)_b;", "dnnl::memory \(prim)_srcf, \(prim)_dstf, \(prim)_qbias, \(prim)_wei;",
                       "dnnl_exec_arg_t \(prim)_args[4];"] {
            members.append(member)
        }
        create.line("{  // \(n.name)")
        create.line("memory::desc src_md(\(dims(p.srcDims)), \(dataType(elem(x))), \(p.srcTag));")
        create.line("memory::desc dst_md(\(dims(p.dstDims)), \(dataType(elem(y))), \(p.dstTag));")
        create.line("memory::desc wei_plain(\(dims(p.weightDims)), dt::s8, \(p.weightTag));")
        if b != nil { create.line("memory::desc bias_md(\(dims(p.biasDims)), dt::f32, \(plainTag(p.biasDims.count)));") }
        create.line("static const float wscale[] = {\(p.weights.scales.map(floatLiteral).joined(separator: ", "))};")
        let src = boundMemory(prim, "src", desc: "src_md", value: x)
        let dst = boundMemory(prim, "dst", desc: "dst_md", value: y)
        emitInt8Choice(m, exactEverywhere: int8ExactEverywhere(n))
        var args: [(String, String)] = []

        // The int8 primitive.
        create.open("if (\(m)_int8)")
        create.line("auto d = \(p.descriptor("src_md", "memory::desc(wei_plain.dims(), dt::s8, tag::any)", b != nil ? "bias_md" : nil, "dst_md"));")
        create.line("primitive_attr attr;")
        create.line("std::vector<float> scales(\(p.weights.scales.count));")
        create.line("for (size_t k = 0; k < scales.size(); k++) scales[k] = \(sx) * wscale[k] * \(floatLiteral(p.int8.factor));")
        create.line("attr.set_output_scales(\(perChannel ? p.perChannelMask : 0), scales);")
        if p.input.zeroPoints[0] != 0 { create.line("attr.set_zero_points(DNNL_ARG_SRC, 0, {\(p.input.zeroPoints[0])});") }
        if let o = p.output, o.zeroPoints[0] != 0 { create.line("attr.set_zero_points(DNNL_ARG_DST, 0, {\(o.zeroPoints[0])});") }
        emitPostOpList(p.int8.postOps)
        create.line("auto pd = \(p.type)::primitive_desc(d, attr, m->eng);")
        create.line("\(m) = \(p.type)(pd);")
        emitWeightsReorder(m, from: "wei_plain, m->eng, (void*)(W + \(weightsOffset))")
        args = [("DNNL_ARG_SRC", src), ("DNNL_ARG_WEIGHTS", "\(prim)_wei")]
        if let b, case .constant(let biasOffset) = plan.storage[b]! {
            // oneDNN adds the bias to the accumulator, before the output scales.
            create.line("\(m)_b.resize(\(shapeProduct(p.biasDims)));")
            create.line("for (size_t k = 0; k < \(m)_b.size(); k++) \(m)_b[k] = ((const float*)(W + \(biasOffset)))[k] / (\(sx) * wscale[\(perChannel ? "k" : "0")]);")
            create.line("\(m)_qbias = memory(bias_md, m->eng, \(m)_b.data());")
            args.append(("DNNL_ARG_BIAS", "\(prim)_qbias"))
        }
        args.append(("DNNL_ARG_DST", dst))
        for (k, arg) in args.enumerated() { create.line("\(m)_args[\(k)] = {\(arg.0), m->\(arg.1).get()};") }

        // The f32 form: the definition.
        create.reopen("} else {")
        create.line("memory::desc srcf_md(src_md.dims(), dt::f32, \(p.srcTag));")
        create.line("memory::desc dstf_md(dst_md.dims(), dt::f32, \(p.dstTag));")
        create.line("auto d = \(p.descriptor("srcf_md", "memory::desc(wei_plain.dims(), dt::f32, tag::any)", b != nil ? "bias_md" : nil, "dstf_md"));")
        create.line("primitive_attr attr;")
        emitPostOpList(f32PostOps)
        create.line("auto pd = \(p.type)::primitive_desc(d, attr, m->eng);")
        create.line("\(m) = \(p.type)(pd);")
        create.line("std::vector<float> wf(\(shapeProduct(p.weightDims)));")
        create.line("for (size_t k = 0; k < wf.size(); k++) wf[k] = ((const int8_t*)(W + \(weightsOffset)))[k] * wscale[\(perChannel ? p.weightScaleIndex : "0")];")
        emitWeightsReorder(m, from: "memory::desc(wei_plain.dims(), dt::f32, \(p.weightTag)), m->eng, wf.data()")
        create.line("\(m)_xf.resize(\(shapeProduct(p.srcDims)));")
        create.line("\(m)_srcf = memory(srcf_md, m->eng, \(m)_xf.data());")
        args = [("DNNL_ARG_SRC", "\(prim)_srcf"), ("DNNL_ARG_WEIGHTS", "\(prim)_wei")]
        if let b {
            args.append(("DNNL_ARG_BIAS", boundMemory(prim, "bias", desc: "bias_md", value: b)))
        }
        if p.output != nil || fakeQuantized != nil {
            create.line("\(m)_yf.resize(\(shapeProduct(p.dstDims)));")
            create.line("\(m)_dstf = memory(dstf_md, m->eng, \(m)_yf.data());")
            args.append(("DNNL_ARG_DST", "\(prim)_dstf"))
        } else {
            args.append(("DNNL_ARG_DST", dst))
        }
        for (k, arg) in args.enumerated() { create.line("\(m)_args[\(k)] = {\(arg.0), m->\(arg.1).get()};") }
        create.close()
        create.line("}")

        // Run.
        let count = args.count
        let ny = shapeProduct(p.dstDims)
        run.open("if (\(m)_int8)")
        prepareSum(p.postOps, addend: addend, output: y)
        executeLine(prim, count: count, index: index)
        run.reopen("} else {")
        run.line("kiln::dequantize_tensor(\(v(x)), \(sx), \(p.input.zeroPoints[0]), \(m)_xf.data(), \(shapeProduct(p.srcDims)));")
        if let i = fakeQuantized {
            executeLine(prim, count: count, index: index)
            emitFakeQuantizedTail(Array(p.postOps[i...]), p, result: "\(m)_yf.data()", addend: addend, y: y, count: ny)
            run.close()
            oneDNNCount += 1
            return
        }
        if let addend {
            if let q = p.addend {
                run.line("kiln::dequantize_tensor(\(v(addend)), \(floatLiteral(q.scales[0])), \(q.zeroPoints[0]), \(m)_yf.data(), \(ny));")
            } else {
                prepareSum(p.postOps, addend: addend, output: y)
            }
        }
        executeLine(prim, count: count, index: index)
        if let o = p.output {
            run.line("kiln::quantize_tensor(\(m)_yf.data(), \(floatLiteral(o.scales[0])), \(o.zeroPoints[0]), \(v(y)), \(ny));")
        }
        run.close()
        oneDNNCount += 1
    }
}

/// Matrix products over sources quantized when the model runs: ONNX's MatMulInteger, and the
/// dynamically quantized matmul (`DynamicQuantizedMatMulAttributes`).
extension ModelEmitter {
    /// A u8 source quantized at run time (scale and zero point in the arena), s8 weights per column:
    /// oneDNN's int8 matmul with the weight scales as its output scales, the source's zero point a
    /// run-time zero point (the weights carry its compensation), and post-ops multiplying by the
    /// source's scale (a run-time scalar), adding the bias, then the node's own. oneDNN 2.6 runs
    /// run-time output scales on its slower gemm kernel and a per-row multiplier on its reference
    /// one; a run-time scalar operand keeps its brgemm kernel. Without VNNI: the f32 form.
    mutating func emitDynamicQuantizedMatMul(_ n: Node, index: Int, _ q: DynamicQuantizedMatMulAttributes) throws {
        let x = n.inputs[0]!, scale = n.inputs[1]!, zero = n.inputs[2]!, w = n.inputs[3]!, y = n.outputs[0]
        let b = n.inputs.count > 4 ? n.inputs[4] : nil
        guard let lowered = PostOp.oneDNNLowering(q.postOps), case .constant(let weightsOffset) = plan.storage[w]! else {
            throw KilnError("internal error: \(n.label): not a dynamically quantized matmul oneDNN can run")
        }
        let ws = shape(w), (k, cols) = (ws[0], ws[1])
        let rows = shapeProduct(shape(x).dropLast())
        let prim = "p\(index)", m = "m->\(prim)"
        let perChannel = !q.weights.isPerTensor
        for member in ["dnnl::matmul \(prim);", "bool \(prim)_int8 = false;", "int32_t \(prim)_zp = 0;", "std::vector<float> \(prim)_xf;",
                       "dnnl::memory \(prim)_wei, \(prim)_zpm, \(prim)_srcf;"] {
            members.append(member)
        }
        create.line("{  // \(n.name)")
        create.line("memory::desc dst_md(\(dims([rows, cols])), dt::f32, tag::ab);")
        create.line("memory::desc wei_plain(\(dims(ws)), dt::s8, tag::ab);")
        create.line("memory::desc scalar_md(\(dims([1, 1])), dt::f32, tag::ab);")
        if b != nil { create.line("memory::desc bias_md(\(dims([1, cols])), dt::f32, tag::ab);") }
        create.line("static const float wscale[] = {\(q.weights.scales.map(floatLiteral).joined(separator: ", "))};")
        emitInt8Choice(m, exactEverywhere: false)
        let dst = boundMemory(prim, "dst", desc: "dst_md", value: y)
        let sx = boundMemory(prim, "scale", desc: "scalar_md", value: scale)
        let bias = b.map { boundMemory(prim, "bias", desc: "bias_md", value: $0) }
        create.line("memory::desc src_md(\(dims([rows, k])), dt::u8, tag::ab);")
        let src = boundMemory(prim, "src", desc: "src_md", value: x)
        create.open("if (\(m)_int8)")
        create.line("auto d = matmul::desc(src_md, memory::desc(wei_plain.dims(), dt::s8, tag::any), dst_md);")
        create.line("primitive_attr attr;")
        create.line(perChannel ? "attr.set_output_scales(2, std::vector<float>(wscale, wscale + \(cols)));" : "attr.set_output_scales(0, {wscale[0]});")
        create.line("attr.set_zero_points(DNNL_ARG_SRC, 0, {DNNL_RUNTIME_S32_VAL});")
        emitPostOpList(lowered, leading: ["po.append_binary(algorithm::binary_mul, scalar_md);"]
                       + (b != nil ? ["po.append_binary(algorithm::binary_add, bias_md);"] : []))
        create.line("auto pd = matmul::primitive_desc(d, attr, m->eng);")
        create.line("\(m) = matmul(pd);")
        emitWeightsReorder(m, from: "wei_plain, m->eng, (void*)(W + \(weightsOffset))")
        create.line("\(m)_zpm = memory(memory::desc(\(dims([1])), dt::s32, tag::a), m->eng, &\(m)_zp);")
        var args = [("DNNL_ARG_SRC", src), ("DNNL_ARG_WEIGHTS", "\(prim)_wei"), ("DNNL_ARG_DST", dst),
                    ("DNNL_ARG_ATTR_ZERO_POINTS | DNNL_ARG_SRC", "\(prim)_zpm"),
                    ("DNNL_ARG_ATTR_MULTIPLE_POST_OP(0) | DNNL_ARG_SRC_1", sx)]
        if let bias { args.append(("DNNL_ARG_ATTR_MULTIPLE_POST_OP(1) | DNNL_ARG_SRC_1", bias)) }
        let int8Count = args.count
        members.append("dnnl_exec_arg_t \(prim)_args[\(int8Count)];")
        for (i, arg) in args.enumerated() { create.line("\(m)_args[\(i)] = {\(arg.0), m->\(arg.1).get()};") }
        // The f32 form: the definition, on the dequantized source.
        create.reopen("} else {")
        create.line("memory::desc srcf_md(\(dims([rows, k])), dt::f32, tag::ab);")
        create.line("auto d = \(b != nil ? "matmul::desc(srcf_md, memory::desc(wei_plain.dims(), dt::f32, tag::any), bias_md, dst_md)" : "matmul::desc(srcf_md, memory::desc(wei_plain.dims(), dt::f32, tag::any), dst_md)");")
        create.line("primitive_attr attr;")
        emitPostOpList(lowered)
        create.line("auto pd = matmul::primitive_desc(d, attr, m->eng);")
        create.line("\(m) = matmul(pd);")
        create.line("std::vector<float> wf(\(k * cols));")
        create.line("for (size_t i = 0; i < wf.size(); i++) wf[i] = ((const int8_t*)(W + \(weightsOffset)))[i] * wscale[\(perChannel ? "i % \(cols)" : "0")];")
        emitWeightsReorder(m, from: "memory::desc(wei_plain.dims(), dt::f32, tag::ab), m->eng, wf.data()")
        create.line("\(m)_xf.resize(\(rows * k));")
        create.line("\(m)_srcf = memory(srcf_md, m->eng, \(m)_xf.data());")
        args = [("DNNL_ARG_SRC", "\(prim)_srcf"), ("DNNL_ARG_WEIGHTS", "\(prim)_wei")] + (bias.map { [("DNNL_ARG_BIAS", $0)] } ?? [])
            + [("DNNL_ARG_DST", dst)]
        for (i, arg) in args.enumerated() { create.line("\(m)_args[\(i)] = {\(arg.0), m->\(arg.1).get()};") }
        create.close()
        create.line("}")

        run.open("if (\(m)_int8)")
        run.line("\(m)_zp = *\(v(zero));")
        executeLine(prim, count: int8Count, index: index)
        run.reopen("} else {")
        run.line("kiln::dequantize_tensor(\(v(x)), *\(v(scale)), (int32_t)*\(v(zero)), \(m)_xf.data(), \(rows * k));")
        executeLine(prim, count: args.count, index: index)
        run.close()
        oneDNNCount += 1
    }

    /// ONNX MatMulInteger, exactly in 32 bits: Kiln's loop (the form ONNX Runtime's graphs take
    /// through the dynamically quantized matmul instead, where the pattern allows).
    mutating func emitMatMulInteger(_ n: Node) throws {
        let a = n.inputs[0]!, b = n.inputs[1]!, y = n.outputs[0]
        let az = n.inputs.count > 2 ? n.inputs[2] : nil, bz = n.inputs.count > 3 ? n.inputs[3] : nil
        let sa = shape(a).count == 1 ? [1] + shape(a) : shape(a), sb = shape(b).count == 1 ? shape(b) + [1] : shape(b)
        let (rows, k, cols) = (sa[sa.count - 2], sa[sa.count - 1], sb[sb.count - 1])
        let batchA = shapeProduct(sa.dropLast(2)), batchB = shapeProduct(sb.dropLast(2))
        guard batchB == 1 || Array(sa.dropLast(2)) == Array(sb.dropLast(2)) else {
            throw KilnError("\(n.label): MatMulInteger broadcasting batch \(shapeString(Array(sa.dropLast(2)))) against \(shapeString(Array(sb.dropLast(2)))) is not supported (equal batches, or 2-D B)", unsupported: true)
        }
        let batch = max(batchA, batchB)
        func zeroPoint(_ z: ValueID?, _ t: ElementType) -> String { z.map { v($0) } ?? "(const \(cType(t))*)nullptr" }
        loopCount += 1
        run.line("kiln::matmul_integer(\(v(a)), \(v(b)), \(zeroPoint(az, elem(a))), \(az.map { shapeProduct(shape($0)) > 1 } ?? false), "
                 + "\(zeroPoint(bz, elem(b))), \(bz.map { shapeProduct(shape($0)) > 1 } ?? false), \(v(y)), \(batch), \(batchA == 1 ? 0 : rows * k), "
                 + "\(batchB == 1 ? 0 : k * cols), \(rows), \(k), \(cols));")
    }
}

extension ModelEmitter {
    /// The f32 form's post-ops from a fake quantization on, as one loop over the f32 result: the
    /// sum adds the dequantized addend, and a quantized output is quantized.
    mutating func emitFakeQuantizedTail(_ ops: [PostOp], _ p: QuantizedPrimitive, result: String, addend: ValueID?, y: ValueID, count: Int) {
        var body: [String] = []
        for op in ops {
            if op == .sum {
                guard let addend else { continue }
                let a = "(float)\(v(addend))[k]"
                body.append(p.addend.map { "v = v + (\(a) - \($0.zeroPoints[0]).0f) * \(floatLiteral($0.scales[0]));" } ?? "v = v + \(a);")
            } else {
                body.append("v = \(postOpExpression(op));")
            }
        }
        let store = p.output.map { "kiln::quantize_value<\(cType($0.type))>(v, \(floatLiteral($0.scales[0])), \($0.zeroPoints[0]))" } ?? "v"
        run.line("#pragma omp parallel for if (\(count) >= kiln::kParallelThreshold)")
        run.open("for (int64_t k = 0; k < \(count); k++)")
        run.line("float v = \(result)[k];")
        for l in body { run.line(l) }
        run.line("\(v(y))[k] = \(store);")
        run.close()
    }
}

/// Quantized ops beyond convs and matrix products: Kiln's own kernels, reading and writing integers.
extension ModelEmitter {
    mutating func emitQuantizedOp(_ n: Node, _ q: QuantizedOpAttributes) throws {
        let y = n.outputs[0], x0 = n.inputs[0]!
        let out = q.output
        let outType = cType(out.type)
        /// The window's real mean, requantized: what average pooling writes.
        func requantizedMean(_ p: Quantization) -> String {
            "kiln::requantized_mean<\(outType)>{\(floatLiteral(p.scales[0])), \(p.zeroPoints[0]), \(floatLiteral(out.scales[0])), \(out.zeroPoints[0])}"
        }
        loopCount += 1
        switch q.op {
        case .averagePool(let p):
            let s = shape(x0)
            let geo = try windowGeometry(input: Array(s.dropFirst(2)), kernel: p.kernelShape, strides: p.strides, pads: p.pads,
                                         dilations: p.dilations, autoPad: p.autoPad, ceilMode: p.ceilMode, n.label)
            guard geo.input.count <= 3, let input = q.inputs[0] else {
                throw KilnError("\(n.label): quantized pooling over more than 3 spatial axes is not supported", unsupported: true)
            }
            run.open()
            run.line("static const kiln::Window g = \(window(geo));")
            if layout(x0) == .channelsLast {
                run.line("kiln::pool_nhwc(\(v(x0)), \(v(y)), \(s[0]), \(s[1]), g, true, \(p.countIncludePad), \(requantizedMean(input)));")
            } else {
                run.line("kiln::pool(\(v(x0)), \(v(y)), \(s[0] * s[1]), g, true, \(p.countIncludePad), \(requantizedMean(input)));")
            }
            run.close()
        case .globalAveragePool:
            let s = shape(x0)
            guard let input = q.inputs[0] else { throw KilnError("\(n.label): internal error: unquantized input") }
            let inner = shapeProduct(Array(s.dropFirst(2)))
            if layout(x0) == .channelsLast {
                run.line("kiln::global_pool_nhwc(\(v(x0)), \(v(y)), \(s[0]), \(inner), \(s[1]), true, \(requantizedMean(input)));")
            } else {
                run.line("kiln::global_pool(\(v(x0)), \(v(y)), \(s[0] * s[1]), \(inner), true, \(requantizedMean(input)));")
            }
        case .concat(let axis):
            let inputs = n.inputs.compactMap { $0 }
            let params = q.inputs.compactMap { $0 }
            guard params.count == inputs.count, params.allSatisfy({ $0.type == out.type }) else {
                throw KilnError("\(n.label): internal error: a quantized concatenation needs every input quantized as its output")
            }
            let (chunks, rows) = try rowChunks(along: axis, of: y, parts: inputs, n.label)
            run.open()
            run.line("const \(outType)* xs[] = {\(inputs.map { v($0) }.joined(separator: ", "))};")
            run.line("static const int64_t chunks[] = \(list(chunks));")
            run.line("static const float scales[] = {\(params.map { floatLiteral($0.scales[0]) }.joined(separator: ", "))};")
            run.line("static const int32_t zeros[] = {\(params.map { String($0.zeroPoints[0]) }.joined(separator: ", "))};")
            run.line("kiln::concat_requantize(\(inputs.count), xs, chunks, scales, zeros, \(v(y)), \(rows), \(floatLiteral(out.scales[0])), \(out.zeroPoints[0]));")
            run.close()
        case .channelScaleShift(let postOps):
            guard let input = q.inputs[0] else { throw KilnError("\(n.label): internal error: unquantized input") }
            let s = shape(x0)
            let inner = shapeProduct(Array(s.dropFirst(2)))
            let body = postOps.reduce("v") { expr, p in "[](float v) { return \(postOpExpression(p)); }(\(expr))" }
            // The identity and ReLU commute with the division by a positive output scale.
            let homogeneous = postOps.allSatisfy { $0 == .relu } && out.scales[0] > 0
            run.line("kiln::scale_shift_quantized<\(homogeneous)>(\(v(x0)), \(v(n.inputs[1]!)), \(v(n.inputs[2]!)), \(v(y)), \(s[0]), \(s[1]), \(inner), "
                     + "\(layout(x0) == .channelsLast), [](float v) { return \(body); }, \(floatLiteral(input.scales[0])), \(input.zeroPoints[0]), "
                     + "\(floatLiteral(out.scales[0])), \(out.zeroPoints[0]));")
        default:
            throw KilnError("\(n.label): internal error: no kernel for quantized \(q.op.name)")
        }
    }
}
