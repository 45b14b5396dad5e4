import KilnIR
import KilnTarget

/// Convolutions and matrix products through oneDNN: the primitive is created and its constant
/// weights reordered into the layout it prefers once, at create time; the run function only
/// re-points the memories bound to the caller's buffers and executes.
extension ModelEmitter {
    /// oneDNN's plain (row-major) format tag for a rank.
    func plainTag(_ rank: Int) -> String {
        ["tag::a", "tag::a", "tag::ab", "tag::abc", "tag::abcd", "tag::abcde", "tag::abcdef"][min(max(rank, 0), 6)]
    }

    /// The oneDNN format tag of a value's layout.
    func tag(_ id: ValueID) -> String {
        let r = shape(id).count
        if layout(id) == .blocked16 { return "tag::aBcd16b" }
        if layout(id) == .channelsLast {
            return ["tag::abc": "tag::acb", "tag::abcd": "tag::acdb", "tag::abcde": "tag::acdeb"][plainTag(r)] ?? plainTag(r)
        }
        return plainTag(r)
    }

    func dims(_ d: [Int]) -> String { "memory::dims{" + d.map { "\($0)" }.joined(separator: ", ") + "}" }

    /// Declares a memory member bound to `value` (the blob or arena at create time, or the
    /// caller's buffer re-pointed at each run) and returns its member name.
    mutating func boundMemory(_ prim: String, _ slot: String, desc: String, value: ValueID) -> String {
        let member = "\(prim)_\(slot)"
        members.append("dnnl::memory \(member);")
        if let p = createTimePointer(value) {
            create.line("m->\(member) = memory(\(desc), m->eng, \(p));")
        } else {
            create.line("m->\(member) = memory(\(desc), m->eng, DNNL_MEMORY_NONE);")
            rebinds.append((member, value))
            referenced.insert(value)
        }
        return member
    }

    /// Weights: constant ones are reordered from their plain layout (at `plainDesc`) into the
    /// primitive's chosen layout; run-time ones are used as they are.
    mutating func weightsMemory(_ prim: String, value: ValueID, plainDesc: String, chosen: String) -> String {
        if case .constant(let off) = plan.storage[value]! {
            let member = "\(prim)_wei"
            members.append("dnnl::memory \(member);")
            create.line("{")
            create.line("    memory plain(\(plainDesc), m->eng, (void*)(W + \(off)));")
            create.line("    m->\(member) = memory(\(chosen), m->eng);")
            create.line("    reorder(plain, m->\(member)).execute(m->strm, plain, m->\(member));")
            create.line("    m->strm.wait();")
            create.line("}")
            return member
        }
        return boundMemory(prim, "wei", desc: plainDesc, value: value)
    }

    /// Opens the create-time block of a (transposed) convolution `n` and declares its memory
    /// descriptors: src_md and dst_md in the values' layouts, wei_plain (the weights' bytes as
    /// `weightTag` reads them), wei_md (oneDNN's choice for constant weights) and bias_md.
    mutating func declareWindowedDescs(_ n: Node, weightDims: [Int], weightTag: String, biased: Bool) {
        let x = n.inputs[0]!, w = n.inputs[1]!, y = n.outputs[0]
        create.line("{  // \(n.name)")
        create.line("memory::desc src_md(\(dims(shape(x))), dt::f32, \(tag(x)));")
        create.line("memory::desc dst_md(\(dims(shape(y))), dt::f32, \(tag(y)));")
        create.line("memory::desc wei_plain(\(dims(weightDims)), dt::f32, \(weightTag));")
        create.line("memory::desc wei_md = \(constant(w) != nil ? "memory::desc(\(dims(weightDims)), dt::f32, tag::any)" : "wei_plain");")
        if biased { create.line("memory::desc bias_md(\(dims([shape(y)[1]])), dt::f32, tag::a);") }
    }

    /// The arguments of a primitive with a source, weights (prepacked into `pd.weights_desc()`
    /// when constant), an optional bias and a destination, in that order.
    mutating func weightedArguments(_ prim: String, src: ValueID, srcDesc: String = "src_md", weights: ValueID,
                                    weightsDesc: String = "wei_plain", bias: ValueID?, dst: ValueID) -> [(String, String)] {
        var args = [("DNNL_ARG_SRC", boundMemory(prim, "src", desc: srcDesc, value: src)),
                    ("DNNL_ARG_WEIGHTS", weightsMemory(prim, value: weights, plainDesc: weightsDesc, chosen: "pd.weights_desc()"))]
        if let bias { args.append(("DNNL_ARG_BIAS", boundMemory(prim, "bias", desc: "bias_md", value: bias))) }
        args.append(("DNNL_ARG_DST", boundMemory(prim, "dst", desc: "dst_md", value: dst)))
        return args
    }

    mutating func finishPrimitive(_ prim: String, index: Int, args: [(String, String)]) {
        declareArguments(prim, args: args)
        executeLine(prim, count: args.count, index: index)
        oneDNNCount += 1
    }

    /// The member array of a primitive's arguments, filled at create time.
    mutating func declareArguments(_ prim: String, args: [(String, String)]) {
        members.append("dnnl_exec_arg_t \(prim)_args[\(args.count)];")
        for (k, a) in args.enumerated() {
            create.line("m->\(prim)_args[\(k)] = {\(a.0), m->\(a.1).get()};")
        }
    }

    /// The run function's call of a primitive (through the C API: no allocation).
    mutating func executeLine(_ prim: String, count: Int, index: Int) {
        run.line("if (dnnl_primitive_execute(m->\(prim).get(), m->strm.get(), \(count), m->\(prim)_args) != dnnl_success) return \(index + 1);")
    }

    /// Writes `primitive_attr attr` with the post-ops (oneDNN applies them in order).
    mutating func emitAttributes(_ postOps: [PostOp], _ n: Node) throws {
        guard let lowered = PostOp.oneDNNLowering(postOps) else {
            throw KilnError("internal error: \(n.label): oneDNN 2.6 cannot apply the post-ops \(postOps) correctly")
        }
        create.line("primitive_attr attr;")
        emitPostOpList(lowered)
    }

    /// Writes `primitive_attr attr` for a primitive whose post-ops end in `tail`
    /// (slowActivationTail): on CPUs without AVX-512 (m->prim_tail) without the tail, which
    /// emitActivationTail then applies; elsewhere the whole list.
    mutating func emitAttributes(_ postOps: [PostOp], _ n: Node, splitting tail: [PostOp]?, prim: String) throws {
        guard let tail else { return try emitAttributes(postOps, n) }
        guard let full = PostOp.oneDNNLowering(postOps), let head = PostOp.oneDNNLowering(Array(postOps.dropLast(tail.count))) else {
            throw KilnError("internal error: \(n.label): oneDNN 2.6 cannot apply the post-ops \(postOps) correctly")
        }
        members.append("bool \(prim)_tail = false;")
        create.line("m->\(prim)_tail = kiln::DirectConv::preferred_here();")
        create.line("primitive_attr attr;")
        create.open("if (m->\(prim)_tail)")
        emitPostOpList(head)
        create.reopen("} else {")
        emitPostOpList(full)
        create.close()
    }

    /// After the primitive: the activation tail over its output, where it was split off.
    mutating func emitActivationTail(_ tail: [PostOp]?, prim: String, y: ValueID) {
        guard let tail else { return }
        loopCount += 1
        run.line("if (m->\(prim)_tail) kiln::map(\(v(y)), \(v(y)), \(shapeProduct(shape(y))), [](float v) { return \(postOpChain(tail)); });")
    }

    /// Sets a oneDNN post-op list on `attr`.
    /// `leading`: lines appending post-ops of the caller's own before these.
    mutating func emitPostOpList(_ lowered: [OneDNNPostOp], leading: [String] = []) {
        guard !lowered.isEmpty || !leading.isEmpty else { return }
        func bound(_ x: Float) -> String { x.isInfinite ? (x < 0 ? "-FLT_MAX" : "FLT_MAX") : floatLiteral(x) }
        create.line("post_ops po;")
        for l in leading { create.line(l) }
        for p in lowered {
            switch p {
            case .sum(let scale, let zero):
                let sc = scale == 1 ? "1.f" : floatLiteral(scale)
                create.line(zero == 0 ? "po.append_sum(\(sc));" : "po.append_sum(\(sc), \(zero));")
            case .eltwise(let alg, let a, let b):
                create.line("po.append_eltwise(1.f, algorithm::eltwise_\(alg.rawValue), \(bound(a)), \(bound(b)));")
            }
        }
        create.line("attr.set_post_ops(po);")
    }

    /// Before a primitive with a sum post-op runs, its destination must hold the addend.
    mutating func prepareSum(_ postOps: [PostOp], addend: ValueID?, output: ValueID) {
        guard postOps.contains(.sum), let addend, plan.storage[addend] != plan.storage[output] else { return }
        run.line("std::memcpy(\(v(output)), \(v(addend)), \(layout(output).storageBytes(type(output))!));")
    }

    mutating func emitOneDNNConv(_ n: Node, index: Int, _ a: ConvAttributes) throws {
        let x = n.inputs[0]!, w = n.inputs[1]!, y = n.outputs[0]
        let b = n.inputs.count > 2 ? n.inputs[2] : nil
        let xs = shape(x), ws = shape(w)
        let geo = try windowGeometry(input: Array(xs.dropFirst(2)), kernel: Array(ws.dropFirst(2)), strides: a.strides,
                                     pads: a.pads, dilations: a.dilations, autoPad: a.autoPad, n.label)
        let prim = "p\(index)"
        members.append("dnnl::convolution_forward \(prim);")
        // Grouped weights: [g, M/g, C/g, k...].
        let wdims = a.group > 1 ? [a.group, ws[0] / a.group] + Array(ws.dropFirst()) : ws
        declareWindowedDescs(n, weightDims: wdims, weightTag: plainTag(wdims.count), biased: b != nil)
        create.line("auto d = convolution_forward::desc(prop_kind::forward_inference, algorithm::convolution_direct, src_md, wei_md, \(b != nil ? "bias_md, " : "")dst_md, \(dims(geo.strides)), \(dims(geo.dilations.map { $0 - 1 })), \(dims(geo.padsBegin)), \(dims(geo.padsEnd)));")
        let winograd = winogradCandidate(n, a, geo)
        let kernel = kilnConvKernelCandidate(n, a, geo)
        let direct = kernel == .direct, grouped = kernel == .grouped
        // (Not in the blocked layout: its padded channels must stay zero.)
        let tail = winograd || direct || grouped || layout(y) == .blocked16 ? nil : slowActivationTail(a.postOps)
        try emitAttributes(a.postOps, n, splitting: tail, prim: prim)
        create.line("auto pd = convolution_forward::primitive_desc(d, attr, m->eng);")
        prepareSum(a.postOps, addend: n.inputs.count > 3 ? n.inputs[3] : nil, output: y)
        create.line("m->\(prim) = convolution_forward(pd);")
        let args = weightedArguments(prim, src: x, weights: w, bias: b, dst: y)
        let (src, dst) = (args[0].1, args[args.count - 1].1)
        guard winograd || direct || grouped else {
            finishPrimitive(prim, index: index, args: args)
            emitActivationTail(tail, prim: prim, y: y)
            create.line("}")
            return
        }
        declareArguments(prim, args: args)
        // Kiln's Winograd on every CPU with AVX2, AVX-512 ones included (kilnWinogradOnAVX512).
        let ys = shape(y)
        let kilnWinograd = direct && kilnWinogradApplies(n, geo)
            && kilnWinogradOnAVX512(inputChannels: xs[1], outputChannels: ys[1], outputHeight: ys[2], outputWidth: ys[3],
                                 oneDNNWinograd: winograd)
        if winograd {
            emitWinogradForm(n, prim: prim, direct: args, src: src, dst: dst, geo: geo,
                             unless: kilnWinograd ? "kiln::DirectConv::compiled_in()" : nil)
        }
        if direct {
            let preferred = kilnDirectConvPreferred(inputChannels: xs[1], group: a.group, postOps: a.postOps)
            let when = options.directConv == .always || kilnWinograd ? "kiln::DirectConv::compiled_in()"
                : preferred ? kilnKernelWanted : kilnKernelWanted + " && kiln::onednn_im2col(pd)"
            emitDirectConvForm(n, a, prim: prim, weightsMember: args[1].1, winograd: winograd, geo: geo, when: when)
        }
        if grouped { emitGroupedConvForm(n, a, prim: prim, weightsMember: args[1].1, geo: geo) }
        var first = true
        if direct {
            run.open("if (m->\(prim)d.active)")
            run.line("m->\(prim)d.run(\(v(x)), \(v(y)), m->direct_scratch.data(), \(a.postOps.contains(.sum)), \(directConvPost(a)));")
            first = false
        }
        if grouped {
            run.open("if (m->\(prim)g.active)")
            run.line("m->\(prim)g.run(\(v(x)), \(v(y)), \(a.postOps.contains(.sum)), \(directConvPost(a)));")
            first = false
        }
        if winograd {
            if first { run.open("if (m->\(prim)w.active)") } else { run.reopen("} else if (m->\(prim)w.active) {") }
            run.line("if (!m->\(prim)w.run(m->strm)) return \(index + 1);")
        }
        run.reopen("} else {")
        executeLine(prim, count: args.count, index: index)
        run.close()
        oneDNNCount += 1
        create.line("}")
    }

    /// The end of a post-op chain, from its first activation whose oneDNN 2.6 AVX2 injector is
    /// slower than Kiln's vectorized loop (swish, logistic, tanh, tanh-GELU), when no sum follows;
    /// nil when there is none. On CPUs without AVX-512 (where those injectors were measured) the
    /// conv runs without it and Kiln's loop applies it to the output. Erf-GELU stays in oneDNN
    /// (even with kiln::gelu_erf_f). Measurements: docs/optimizations.md.
    func slowActivationTail(_ ops: [PostOp]) -> [PostOp]? {
        guard let i = ops.firstIndex(where: { p in
            switch p {
            case .silu, .sigmoid, .tanh, .gelu(tanhApproximation: true): return true
            default: return false
            }
        }), !ops[i...].contains(.sum), !ops[i...].contains(.gelu(tanhApproximation: false)) else { return nil }
        return Array(ops[i...])
    }

    /// Which of Kiln's conv kernels (include/kiln/direct_conv.hpp) may take a conv: FP32,
    /// channels-last in and out, constant weights and bias, and the shapes of kilnConvKernel
    /// (KilnIR): the direct kernel for one group with a window larger than 1×1 or groups of a
    /// multiple of 8 output channels, kiln::GroupedConv for groups of 2 or 4 channels. On CPUs
    /// without AVX-512 oneDNN 2.6 runs small groups as an im2col and a product per group, and
    /// larger ones slower than the direct kernel (docs/optimizations.md).
    func kilnConvKernelCandidate(_ n: Node, _ a: ConvAttributes, _ geo: WindowGeometry) -> KilnConvKernel? {
        let x = n.inputs[0]!, y = n.outputs[0]
        guard options.directConv != .off, elem(y) == .f32, layout(x) == .channelsLast, layout(y) == .channelsLast,
              constant(n.inputs[1]) != nil, n.inputs.count < 3 || n.inputs[2] == nil || constant(n.inputs[2]) != nil
        else { return nil }
        return kilnConvKernel(inputChannels: shape(x)[1], outputChannels: shape(n.inputs[1]!)[0], group: a.group, kernel: geo.kernel)
    }

    /// Creates Kiln's grouped form of conv `prim` where the policy wants it on this CPU: packs the
    /// weights and releases oneDNN's primitive and its weights.
    mutating func emitGroupedConvForm(_ n: Node, _ a: ConvAttributes, prim: String, weightsMember: String, geo: WindowGeometry) {
        let x = n.inputs[0]!, w = n.inputs[1]!, y = n.outputs[0]
        guard let (weights, bias) = kilnConvConstants(n) else { return }
        let d = "m->\(prim)g"
        members.append("kiln::GroupedConv \(prim)g;")
        let xs = shape(x), ys = shape(y), ws = shape(w)
        create.open("if (\(kilnKernelWanted))")
        create.line("\(d).n = \(xs[0]); \(d).c = \(xs[1]); \(d).h = \(xs[2]); \(d).w = \(xs[3]); \(d).gw = \(xs[1] / a.group); \(d).kh = \(ws[2]); \(d).kw = \(ws[3]);")
        create.line("\(d).sh = \(geo.strides[0]); \(d).sw = \(geo.strides[1]); \(d).dh = \(geo.dilations[0]); \(d).dw = \(geo.dilations[1]);")
        create.line("\(d).pt = \(geo.padsBegin[0]); \(d).pl = \(geo.padsBegin[1]); \(d).oh = \(ys[2]); \(d).ow = \(ys[3]);")
        create.line("\(d).pack(\(weights), \(bias));")
        create.line("\(d).active = true;")
        create.line("m->\(prim) = {}; m->\(weightsMember) = {};")
        create.close()
    }

    /// The weights and bias of a conv Kiln's kernels take, as C++ pointers into the weights blob
    /// (the bias "nullptr" when there is none); nil when the weights are not in the blob.
    func kilnConvConstants(_ n: Node) -> (weights: String, bias: String)? {
        guard case .constant(let weightsOffset) = plan.storage[n.inputs[1]!]! else { return nil }
        var bias = "nullptr"
        if n.inputs.count > 2, let b = n.inputs[2], case .constant(let off) = plan.storage[b]! { bias = "(const float*)(W + \(off))" }
        return ("(const float*)(W + \(weightsOffset))", bias)
    }

    /// The C++ condition under which Kiln's conv kernels replace oneDNN's at create time. A direct
    /// candidate that kilnDirectConvPreferred does not prefer (`auto`: fewer than 8 input channels
    /// per group, no tanh) replaces it only where oneDNN chose its im2col GEMM (kiln::onednn_im2col;
    /// oneDNN's direct kernels are faster on such convs otherwise). A rule of the CPU and oneDNN's
    /// build, not a timing.
    var kilnKernelWanted: String {
        options.directConv == .always ? "kiln::DirectConv::compiled_in()" : "kiln::DirectConv::preferred_here()"
    }

    /// Creates Kiln's direct form of conv `prim` next to oneDNN's where the policy wants it on
    /// this CPU (`auto`: oneDNN without AVX-512 kernels): packs the weights and releases oneDNN's
    /// primitive, its weights and any Winograd form.
    mutating func emitDirectConvForm(_ n: Node, _ a: ConvAttributes, prim: String, weightsMember: String, winograd: Bool,
                                     geo: WindowGeometry, when condition: String) {
        let x = n.inputs[0]!, w = n.inputs[1]!, y = n.outputs[0]
        guard let (weights, bias) = kilnConvConstants(n) else { return }
        let d = "m->\(prim)d"
        members.append("kiln::DirectConv \(prim)d;")
        if !members.contains("std::vector<float> direct_scratch;") { members.append("std::vector<float> direct_scratch;") }
        let xs = shape(x), ys = shape(y), ws = shape(w)
        create.open("if (\(condition))")
        create.line("\(d).n = \(xs[0]); \(d).c = \(xs[1]); \(d).h = \(xs[2]); \(d).w = \(xs[3]); \(d).k = \(ws[0]); \(d).kh = \(ws[2]); \(d).kw = \(ws[3]);\(a.group > 1 ? " \(d).group = \(a.group);" : "")")
        create.line("\(d).sh = \(geo.strides[0]); \(d).sw = \(geo.strides[1]); \(d).dh = \(geo.dilations[0]); \(d).dw = \(geo.dilations[1]);")
        create.line("\(d).pt = \(geo.padsBegin[0]); \(d).pl = \(geo.padsBegin[1]); \(d).pb = \(geo.padsEnd[0]); \(d).pr = \(geo.padsEnd[1]); \(d).oh = \(ys[2]); \(d).ow = \(ys[3]);")
        if kilnWinogradApplies(n, geo) { create.line("\(d).winograd = true;") }
        create.line("\(d).pack(\(weights), \(bias));")
        create.line("if (m->direct_scratch.size() < \(d).scratch_floats()) m->direct_scratch.resize(\(d).scratch_floats());")
        create.line("\(d).active = true;")
        create.line("m->\(prim) = {}; m->\(weightsMember) = {};")
        if winograd { create.line("m->\(prim)w.release();") }
        create.close()
    }

    /// Where Kiln's direct form runs as Winograd F(4×4, 3×3): `kilnWinogradApplies` of KilnTarget.
    func kilnWinogradApplies(_ n: Node, _ geo: WindowGeometry) -> Bool {
        guard case .conv(let a) = n.op else { return false }
        return KilnTarget.kilnWinogradApplies(policy: options.winograd, group: a.group, geometry: geo,
                                              inputChannels: shape(n.inputs[0]!)[1], output: shape(n.outputs[0]))
    }

    /// The post-ops after the sum of a conv run by Kiln's direct kernel, as a functor object.
    mutating func directConvPost(_ a: ConvAttributes) -> String {
        functor(postOpChain(a.postOps)) + "()"
    }

    /// The name of the functor computing `body` (an expression of the float `v`), declared once.
    mutating func functor(_ body: String) -> String {
        if let f = functors.first(where: { $0.body == body }) { return f.name }
        let name = "Post\(functors.count)"
        functors.append((name, body))
        return name
    }

    /// A conv that may run as a oneDNN Winograd conv: FP32 3×3, stride 1, no dilation, one group,
    /// channel counts that fill oneDNN's 16-wide blocks, constant weights and bias, and post-ops
    /// its Winograd kernels implement (2.6: ReLU and sum only; SiLU, clip, tanh, ... are refused).
    /// Outside the blocked layout, a conv with a sum post-op stays direct: its addend would have
    /// to move into the Winograd layout too, which costs more than it saves.
    func winogradCandidate(_ n: Node, _ a: ConvAttributes, _ geo: WindowGeometry) -> Bool {
        let blocked = layout(n.outputs[0]) == .blocked16
        guard options.winograd != .off, blocked || !a.postOps.contains(.sum),
              elem(n.outputs[0]) == .f32, geo.kernel == [3, 3],
              geo.strides == [1, 1], geo.dilations == [1, 1], a.group == 1,
              constant(n.inputs[1]) != nil, n.inputs.count < 3 || n.inputs[2] == nil || constant(n.inputs[2]) != nil
        else { return false }
        let ws = shape(n.inputs[1]!)
        return oneDNNWinogradTakes(outputChannels: ws[0], inputChannels: ws[1], postOps: a.postOps)
    }

    /// Creates the Winograd form of conv `prim` next to its direct form (kiln::WinogradConv:
    /// reorder into Winograd's blocked layout, convolve, reorder back). `auto` times both forms on
    /// this CPU, once per process, and keeps the faster; the loser's primitives and weights are
    /// released.
    /// `unless`: a C++ condition under which Kiln's own Winograd takes the conv instead (the form
    /// is then neither created nor timed).
    mutating func emitWinogradForm(_ n: Node, prim: String, direct: [(String, String)], src: String, dst: String,
                                   geo: WindowGeometry, unless: String? = nil) {
        let w = "m->\(prim)w"
        members.append("kiln::WinogradConv \(prim)w;")
        let bias = direct.first { $0.0 == "DNNL_ARG_BIAS" }.map { "m->\($0.1)" } ?? "memory()"
        guard case .constant(let weightsOffset) = plan.storage[n.inputs[1]!]! else { return }
        if let unless { create.open("if (!(\(unless)))") }
        create.open("try")
        // In the blocked layout the Winograd conv reads and writes the graph's own buffers.
        let srcDesc = layout(n.inputs[0]!) == .blocked16 ? "src_md" : "memory::desc(src_md.dims(), dt::f32, tag::any)"
        let dstDesc = layout(n.outputs[0]) == .blocked16 ? "dst_md" : "memory::desc(dst_md.dims(), dt::f32, tag::any)"
        create.line("auto dw = convolution_forward::desc(prop_kind::forward_inference, algorithm::convolution_winograd, \(srcDesc), memory::desc(wei_plain.dims(), dt::f32, tag::any), \(bias == "memory()" ? "" : "bias_md, ")\(dstDesc), \(dims(geo.strides)), \(dims(geo.dilations.map { $0 - 1 })), \(dims(geo.padsBegin)), \(dims(geo.padsEnd)));")
        create.line("\(w).create(m->eng, m->strm, dw, attr, wei_plain, W + \(weightsOffset), m->\(src), m->\(dst), \(bias));")
        if options.winograd == .always {
            create.line("\(w).active = true;")
        } else {
            // Timed by the process's first handle only: every handle then computes the same bits.
            create.line("\(w).active = kiln::decide_once(\(prim.dropFirst()), [&] { return \(w).faster_than(m->\(prim), m->\(direct[1].1), \(bias), m->eng, m->strm, src_md, dst_md); });")
        }
        create.reopen("} catch (const dnnl::error&) {")
        create.line("\(w).active = false;  // no Winograd kernel for this conv on this CPU")
        create.close()
        create.line("if (\(w).active) { m->\(prim) = {}; m->\(direct[1].1) = {}; } else { \(w).release(); }")
        if unless != nil { create.close() }
    }

    /// Pooling through oneDNN (f32, or max pooling of u8/s8; not empty; a window oneDNN can express).
    func oneDNNPoolingApplies(_ n: Node, _ p: PoolAttributes, average: Bool, geometry geo: WindowGeometry) -> Bool {
        let t = elem(n.outputs[0])
        return (t == .f32 || !average && (t == .u8 || t == .s8)) && shapeProduct(shape(n.outputs[0])) > 0
            && oneDNNPoolingRightPadding(geo, average: average, countIncludePad: p.countIncludePad) != nil
    }

    mutating func emitOneDNNPooling(_ n: Node, index: Int, _ p: PoolAttributes, average: Bool, geometry geo: WindowGeometry) {
        let x = n.inputs[0]!, y = n.outputs[0]
        let prim = "p\(index)"
        members.append("dnnl::pooling_forward \(prim);")
        let right = oneDNNPoolingRightPadding(geo, average: average, countIncludePad: p.countIncludePad)!
        let algorithm = !average ? "pooling_max" : p.countIncludePad ? "pooling_avg_include_padding" : "pooling_avg_exclude_padding"
        create.line("{  // \(n.name)")
        create.line("memory::desc src_md(\(dims(shape(x))), \(dataType(elem(x))), \(tag(x)));")
        create.line("memory::desc dst_md(\(dims(shape(y))), \(dataType(elem(y))), \(tag(y)));")
        create.line("auto d = pooling_forward::desc(prop_kind::forward_inference, algorithm::\(algorithm), src_md, dst_md, \(dims(geo.strides)), \(dims(geo.kernel)), \(dims(geo.padsBegin)), \(dims(right)));")
        create.line("auto pd = pooling_forward::primitive_desc(d, m->eng);")
        create.line("m->\(prim) = pooling_forward(pd);")
        let src = boundMemory(prim, "src", desc: "src_md", value: x)
        let dst = boundMemory(prim, "dst", desc: "dst_md", value: y)
        finishPrimitive(prim, index: index, args: [("DNNL_ARG_SRC", src), ("DNNL_ARG_DST", dst)])
        create.line("}")
    }

    /// A layout conversion as a oneDNN reorder (jit, parallel).
    mutating func emitOneDNNReorder(_ n: Node, index: Int) {
        let x = n.inputs[0]!, y = n.outputs[0]
        let prim = "p\(index)"
        members.append("dnnl::reorder \(prim);")
        let t = elem(x) == .f32 ? "dt::f32" : elem(x) == .u8 ? "dt::u8" : "dt::s8"
        create.line("{  // \(n.name)")
        create.line("memory::desc src_md(\(dims(shape(x))), \(t), \(tag(x)));")
        create.line("memory::desc dst_md(\(dims(shape(y))), \(t), \(tag(y)));")
        create.line("m->\(prim) = reorder(reorder::primitive_desc(m->eng, src_md, m->eng, dst_md));")
        let src = boundMemory(prim, "src", desc: "src_md", value: x)
        let dst = boundMemory(prim, "dst", desc: "dst_md", value: y)
        finishPrimitive(prim, index: index, args: [("DNNL_ARG_FROM", src), ("DNNL_ARG_TO", dst)])
        create.line("}")
    }

    mutating func emitOneDNNMatMul(_ n: Node, index: Int, postOps: [PostOp]) throws {
        let A = n.inputs[0]!, B = n.inputs[1]!, y = n.outputs[0]
        var (a2, b2, batch) = matMulOperands(shape(A), shape(B))
        if shape(B).count <= 2 && a2.count > 2 {
            // One matrix for every batch of A: the batches are rows of one product (the same
            // bytes), which oneDNN runs as one large GEMM instead of many small ones.
            a2 = [shapeProduct(Array(a2.dropLast())), a2[a2.count - 1]]
            b2 = Array(b2.suffix(2))
            batch = []
        }
        let ydims = batch + [a2[a2.count - 2], b2[b2.count - 1]]
        let bias = n.inputs.count > 2 ? n.inputs[2] : nil
        if batch.isEmpty, a2.count == 2, b2.count == 2,
           productAsConvApplies(rows: a2[0], columns: b2[1], weights: B, bias: bias) {
            return try emitProductAsConv(n, index: index, rows: a2[0], depth: a2[1], columns: b2[1], transposedWeights: false,
                                         bias: bias, postOps: postOps)
        }
        let prim = "p\(index)"
        members.append("dnnl::matmul \(prim);")
        create.line("{  // \(n.name)")
        create.line("memory::desc a_md(\(dims(a2)), dt::f32, \(plainTag(a2.count)));")
        create.line("memory::desc b_plain(\(dims(b2)), dt::f32, \(plainTag(b2.count)));")
        create.line("memory::desc b_md = \(constant(B) != nil ? "memory::desc(\(dims(b2)), dt::f32, tag::any)" : "b_plain");")
        create.line("memory::desc dst_md(\(dims(ydims)), dt::f32, \(plainTag(ydims.count)));")
        if bias != nil {
            let bdims = [Int](repeating: 1, count: ydims.count - 1) + [ydims[ydims.count - 1]]
            create.line("memory::desc bias_md(\(dims(bdims)), dt::f32, \(plainTag(bdims.count)));")
            create.line("auto d = matmul::desc(a_md, b_md, bias_md, dst_md);")
        } else {
            create.line("auto d = matmul::desc(a_md, b_md, dst_md);")
        }
        try emitAttributes(postOps, n)
        create.line("auto pd = matmul::primitive_desc(d, attr, m->eng);")
        create.line("m->\(prim) = matmul(pd);")
        finishPrimitive(prim, index: index, args: weightedArguments(prim, src: A, srcDesc: "a_md", weights: B, weightsDesc: "b_plain", bias: bias, dst: y))
        create.line("}")
    }

    /// Whether a product of `rows` × depth activations (row-major) by constant weights of depth ×
    /// `columns` runs as a 1×1 convolution over `rows` pixels, channels-last: at least 8 rows, and
    /// a bias (if any) of one value per column: oneDNN 2.6's 1×1 conv kernel (the weights
    /// reordered once, the post-ops inside its loop) beats its GEMM from 8 rows on; below (a
    /// classifier's single row) the GEMM is faster. Measurements: docs/optimizations.md.
    func productAsConvApplies(rows: Int, columns: Int, weights: ValueID, bias: ValueID?) -> Bool {
        guard rows >= 8, constant(weights) != nil, shape(weights).count == 2 else { return false }
        guard let bias else { return true }
        let bs = shape(bias)
        return bs.last == columns && shapeProduct(bs) == columns
    }

    /// A product by constant weights as oneDNN's 1×1 conv (productAsConvApplies): the activations
    /// [rows, depth] are an image of 1 × rows pixels of `depth` channels (NHWC: the same bytes),
    /// the weights [depth, columns] (or [columns, depth] when `transposedWeights`) OIHW weights
    /// of 1 × 1 in the layout hwio (oihw), the bias one value per column.
    mutating func emitProductAsConv(_ n: Node, index: Int, rows: Int, depth: Int, columns: Int, transposedWeights: Bool,
                                    bias: ValueID?, postOps: [PostOp]) throws {
        let A = n.inputs[0]!, B = n.inputs[1]!, y = n.outputs[0]
        let prim = "p\(index)"
        members.append("dnnl::convolution_forward \(prim);")
        create.line("{  // \(n.name) (a 1×1 conv over \(rows) rows)")
        create.line("memory::desc a_md(\(dims([1, depth, 1, rows])), dt::f32, tag::nhwc);")
        create.line("memory::desc b_plain(\(dims([columns, depth, 1, 1])), dt::f32, \(transposedWeights ? "tag::oihw" : "tag::hwio"));")
        create.line("memory::desc b_md(\(dims([columns, depth, 1, 1])), dt::f32, tag::any);")
        create.line("memory::desc dst_md(\(dims([1, columns, 1, rows])), dt::f32, tag::nhwc);")
        if bias != nil { create.line("memory::desc bias_md(\(dims([columns])), dt::f32, tag::a);") }
        create.line("auto d = convolution_forward::desc(prop_kind::forward_inference, algorithm::convolution_direct, a_md, b_md, \(bias != nil ? "bias_md, " : "")dst_md, {1, 1}, {0, 0}, {0, 0});")
        let tail = slowActivationTail(postOps)
        try emitAttributes(postOps, n, splitting: tail, prim: prim)
        create.line("auto pd = convolution_forward::primitive_desc(d, attr, m->eng);")
        create.line("m->\(prim) = convolution_forward(pd);")
        finishPrimitive(prim, index: index, args: weightedArguments(prim, src: A, srcDesc: "a_md", weights: B, weightsDesc: "b_plain", bias: bias, dst: y))
        emitActivationTail(tail, prim: prim, y: y)
        create.line("}")
    }

    /// Gemm maps onto oneDNN's matmul when alpha and beta are 1 (lowering folds them into
    /// constant operands) and C broadcasts as a 2-D bias.
    func oneDNNGemmApplies(_ n: Node, _ a: GemmAttributes) -> Bool {
        guard a.alpha == 1, shapeProduct(shape(n.outputs[0])) > 0 else { return false }
        if n.inputs.count > 2, let c = n.inputs[2] {
            return a.beta == 1 && shape(c).count <= 2
        }
        return true
    }

    mutating func emitOneDNNGemm(_ n: Node, index: Int, _ a: GemmAttributes) throws {
        let A = n.inputs[0]!, B = n.inputs[1]!, y = n.outputs[0]
        let C = n.inputs.count > 2 ? n.inputs[2] : nil
        let out = shape(y)
        let (mm, nn) = (out[0], out[1])
        let k = a.transA ? shape(A)[0] : shape(A)[1]
        if !a.transA, productAsConvApplies(rows: mm, columns: nn, weights: B, bias: C) {
            return try emitProductAsConv(n, index: index, rows: mm, depth: k, columns: nn, transposedWeights: a.transB,
                                         bias: C, postOps: a.postOps)
        }
        let prim = "p\(index)"
        members.append("dnnl::matmul \(prim);")
        create.line("{  // \(n.name)")
        create.line("memory::desc a_md(\(dims([mm, k])), dt::f32, \(dims(a.transA ? [1, mm] : [k, 1])));")
        create.line("memory::desc b_plain(\(dims([k, nn])), dt::f32, \(dims(a.transB ? [1, k] : [nn, 1])));")
        create.line("memory::desc b_md = \(constant(B) != nil ? "memory::desc(\(dims([k, nn])), dt::f32, tag::any)" : "b_plain");")
        create.line("memory::desc dst_md(\(dims(out)), dt::f32, tag::ab);")
        if let C {
            let cs = shape(C)
            let c2 = [Int](repeating: 1, count: 2 - cs.count) + cs
            create.line("memory::desc bias_md(\(dims(c2)), dt::f32, tag::ab);")
            create.line("auto d = matmul::desc(a_md, b_md, bias_md, dst_md);")
        } else {
            create.line("auto d = matmul::desc(a_md, b_md, dst_md);")
        }
        try emitAttributes(a.postOps, n)
        create.line("auto pd = matmul::primitive_desc(d, attr, m->eng);")
        create.line("m->\(prim) = matmul(pd);")
        finishPrimitive(prim, index: index, args: weightedArguments(prim, src: A, srcDesc: "a_md", weights: B, weightsDesc: "b_plain", bias: C, dst: y))
        create.line("}")
    }
}

extension ModelEmitter {
    /// The geometry of a transposed convolution that oneDNN's deconvolution runs (f32, not
    /// empty, `oneDNNDeconvolutionApplies`), else nil: it then runs as Kiln's generic loop.
    func oneDNNDeconvolutionGeometry(_ n: Node, _ a: ConvTransposeAttributes) throws -> WindowGeometry? {
        let x = n.inputs[0]!, w = n.inputs[1]!, y = n.outputs[0]
        guard elem(y) == .f32, shapeProduct(shape(y)) > 0, shapeProduct(shape(x)) > 0 else { return nil }
        let geo = try convTransposeGeometry(input: Array(shape(x).dropFirst(2)), kernel: Array(shape(w).dropFirst(2)),
                                            attributes: a, n.label)
        return oneDNNDeconvolutionApplies(geo) ? geo : nil
    }

    mutating func emitOneDNNDeconvolution(_ n: Node, index: Int, _ a: ConvTransposeAttributes) throws {
        let x = n.inputs[0]!, w = n.inputs[1]!, y = n.outputs[0]
        let b = n.inputs.count > 2 ? n.inputs[2] : nil
        guard let geo = try oneDNNDeconvolutionGeometry(n, a) else {
            throw KilnError("internal error: \(n.label) is not a oneDNN deconvolution")
        }
        let ws = shape(w)
        let group = a.conv.group
        let prim = "p\(index)"
        members.append("dnnl::deconvolution_forward \(prim);")
        // ONNX's weights are [C_in, C_out/g, k...]; oneDNN's dims are [(g,) C_out/g, C_in/g, k...]
        // and the tag that reads ONNX's bytes swaps the two channel axes.
        let spatial = Array(ws.dropFirst(2))
        let wdims = group > 1 ? [group, ws[1], ws[0] / group] + spatial : [ws[1], ws[0]] + spatial
        let letters = Array("abcdef".prefix(wdims.count))
        let swapped = group > 1 ? [letters[0], letters[2], letters[1]] + letters.dropFirst(3) : [letters[1], letters[0]] + letters.dropFirst(2)
        declareWindowedDescs(n, weightDims: wdims, weightTag: "tag::\(String(swapped))", biased: b != nil)
        create.line("auto d = deconvolution_forward::desc(prop_kind::forward_inference, algorithm::deconvolution_direct, src_md, wei_md, \(b != nil ? "bias_md, " : "")dst_md, \(dims(geo.strides)), \(dims(geo.dilations.map { $0 - 1 })), \(dims(geo.padsBegin)), \(dims(geo.padsEnd)));")
        try emitAttributes(a.conv.postOps, n)
        create.line("auto pd = deconvolution_forward::primitive_desc(d, attr, m->eng);")
        create.line("m->\(prim) = deconvolution_forward(pd);")
        finishPrimitive(prim, index: index, args: weightedArguments(prim, src: x, weights: w, bias: b, dst: y))
        create.line("}")
    }
}

/// Rewrites what code generation would otherwise special-case: Gemm's alpha and beta fold into
/// constant operands (B' = alpha·B, C' = beta·C), and a beta of 0 drops C.
func prepareForCodegen(_ g: inout Graph) {
    for i in g.nodes.indices {
        guard case .gemm(var a) = g.nodes[i].op, g.values[g.nodes[i].outputs[0]].type.elementType == .f32 else { continue }
        let n = g.nodes[i]
        if a.alpha != 1, let b = n.inputs[1], let bt = g.values[b].constant {
            let scaled = Tensor(.f32, shape: bt.shape, floats: bt.floats.map { $0 * a.alpha })
            g.nodes[i].inputs[1] = g.addConstant("\(g.values[b].name)_alpha", scaled)
            a.alpha = 1
        }
        if n.inputs.count > 2, let c = n.inputs[2] {
            if a.beta == 0 {
                g.nodes[i].inputs.removeLast()
                a.beta = 1
            } else if a.beta != 1, let ct = g.values[c].constant {
                let scaled = Tensor(.f32, shape: ct.shape, floats: ct.floats.map { $0 * a.beta })
                g.nodes[i].inputs[2] = g.addConstant("\(g.values[c].name)_beta", scaled)
                a.beta = 1
            }
        }
        g.nodes[i].op = .gemm(a)
    }
}
