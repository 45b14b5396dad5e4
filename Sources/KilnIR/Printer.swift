/// The IR's text form, used by `--print-ir` and by tests:
///
///     graph digits(%image: f32[1x1x8x8]) -> (%logits)
///       %w1 = constant f32[16x1x3x3]
///       %y = conv(%image, %w1, %b1) {group=1 strides=[1, 1]} : f32[1x16x8x8]  # Conv_0 Conv-11
///
/// `parseIR` reads it back. Constants of more than 8 elements are printed without their values;
/// every other part of a graph is printed in full, except: the opset, the parameters of a
/// per-axis quantization (printed as their count and range), and the shape of
/// `constant_of_shape`'s value. Names that would not read back (with spaces, brackets, quotes,
/// `#`, `=`, a trailing `:`, or empty) are printed in double quotes, as are symbolic dimensions
/// that are not plain identifiers without a lowercase `x` (the dimension separator).
public func printIR(_ g: Graph) -> String {
    func ref(_ v: ValueID?) -> String { v.map { "%" + irName(g.values[$0].name) } ?? "_" }
    var s = "graph \(irName(g.name, allowEmpty: true))("
    s += g.inputs.map { "\(ref($0)): \(irType(g.values[$0].type))" }.joined(separator: ", ")
    s += ") -> (" + g.outputs.map { ref($0) }.joined(separator: ", ") + ")\n"
    var used = Set<ValueID>()
    for n in g.nodes { for case let v? in n.inputs { used.insert(v) } }
    for v in g.outputs { used.insert(v) }
    for (i, v) in g.values.enumerated() where v.constant != nil && used.contains(i) {
        var line = "  \(ref(i)) = constant \(irType(v.type))"
        if let c = v.constant, c.count <= 8 {
            line += c.elementType.isFloat ? " \(c.floats)" : " \(c.ints)"
        }
        s += line + "\n"
    }
    for n in g.nodes {
        let outs = n.outputs.map { ref($0) }.joined(separator: ", ")
        let ins = n.inputs.map(ref).joined(separator: ", ")
        let types = n.outputs.map { irType(g.values[$0].type) + (g.values[$0].layout == .plain ? "" : " \(g.values[$0].layout)") }.joined(separator: ", ")
        let attrs = attributeText(n.op)
        let name = n.name.contains(where: { $0.isNewline || $0 == "\t" }) || n.name.hasPrefix("\"") ? irQuoted(n.name) : n.name
        s += "  \(outs) = \(n.op.name)(\(ins))\(attrs.isEmpty ? "" : " {\(attrs)}") : \(types)  # \(name) \(n.origin.description)\n"
    }
    return s
}

/// `s` in double quotes, with `\\`, `\"` and control characters escaped (`\n`, `\t`, `\r`, `\u{..}`).
func irQuoted(_ s: String) -> String {
    var out = "\""
    for u in s.unicodeScalars {
        switch u {
        case "\\": out += "\\\\"
        case "\"": out += "\\\""
        case "\n": out += "\\n"
        case "\t": out += "\\t"
        case "\r": out += "\\r"
        default:
            if u.value < 0x20 || u.value == 0x7F { out += "\\u{\(String(u.value, radix: 16))}" } else { out.unicodeScalars.append(u) }
        }
    }
    return out + "\""
}

/// A value (or graph) name as the text form writes it: as it is, or quoted when it would not
/// read back.
func irName(_ s: String, allowEmpty: Bool = false) -> String {
    if s.isEmpty { return allowEmpty ? s : "\"\"" }
    let special: Set<Character> = [",", "(", ")", "[", "]", "{", "}", "\"", "#", "=", "%"]
    if s.hasSuffix(":") || s.contains(where: { $0.isWhitespace || special.contains($0) || $0.unicodeScalars.contains { $0.value < 0x20 || $0.value == 0x7F } }) {
        return irQuoted(s)
    }
    return s
}

/// A type as the text form writes it: `TensorType.description`, with symbolic dimensions that
/// are not identifiers free of a lowercase `x` quoted (`f32["max_x"x3]`).
func irType(_ t: TensorType) -> String {
    func dim(_ d: Dim) -> String {
        guard case .symbolic(let s) = d, !s.isEmpty, s != "?" else { return d.description }
        let plain = s.first.map { $0 == "_" || ($0.isASCII && $0.isLetter) } == true
            && s.allSatisfy { $0 != "x" && ($0 == "_" || ($0.isASCII && ($0.isLetter || $0.isNumber))) }
        return plain ? s : irQuoted(s)
    }
    return "\(t.elementType)[\(t.dims.map(dim).joined(separator: "x"))]"
}

/// An op's attributes as the text form writes them ("" when it has none).
func attributeText(_ op: Op) -> String {
    func conv(_ a: ConvAttributes) -> String {
        var parts = ["group=\(a.group)"]
        if let k = a.kernelShape { parts.append("kernel=\(k)") }
        if let s = a.strides { parts.append("strides=\(s)") }
        if let p = a.pads { parts.append("pads=\(p)") }
        if let d = a.dilations { parts.append("dilations=\(d)") }
        if a.autoPad != .notSet { parts.append("auto_pad=\(a.autoPad.rawValue)") }
        if !a.postOps.isEmpty { parts.append("post_ops=[\(a.postOps.map(\.description).joined(separator: ", "))]") }
        return parts.joined(separator: " ")
    }
    func pool(_ a: PoolAttributes) -> String {
        var parts = ["kernel=\(a.kernelShape)"]
        if let s = a.strides { parts.append("strides=\(s)") }
        if let p = a.pads { parts.append("pads=\(p)") }
        if let d = a.dilations { parts.append("dilations=\(d)") }
        if a.ceilMode { parts.append("ceil_mode") }
        if a.countIncludePad { parts.append("count_include_pad") }
        if a.autoPad != .notSet { parts.append("auto_pad=\(a.autoPad.rawValue)") }
        return parts.joined(separator: " ")
    }
    switch op {
    case .conv(let a), .convInteger(let a): return conv(a)
    case .quantizedMatMul(let q):
        return "input=\(q.input) weights=\(q.weights) output=\(q.output?.description ?? "f32")"
            + (q.postOps.isEmpty ? "" : " post_ops=[\(q.postOps.map(\.description).joined(separator: ", "))]")
    case .recurrent(let a):
        var parts = ["direction=\(a.direction.rawValue)", "hidden_size=\(a.hiddenSize)"]
        if a.activations != RecurrentAttributes(kind: a.kind, direction: a.direction, hiddenSize: a.hiddenSize).activations {
            parts.append("activations=[\(a.activations.map(\.description).joined(separator: ", "))]")
        }
        if let c = a.clip { parts.append("clip=\(c)") }
        if a.batchMajor { parts.append("batch_major") }
        if a.linearBeforeReset { parts.append("linear_before_reset") }
        if a.inputForget { parts.append("input_forget") }
        return parts.joined(separator: " ")
    case .dynamicQuantizedMatMul(let q):
        return "weights=\(q.weights)" + (q.postOps.isEmpty ? "" : " post_ops=[\(q.postOps.map(\.description).joined(separator: ", "))]")
    case .quantizedConv(let q):
        return [conv(q.conv), "input=\(q.input)", "weights=\(q.weights)", "output=\(q.output?.description ?? "f32")"]
            .filter { !$0.isEmpty }.joined(separator: " ") + (q.addend.map { " addend=\($0)" } ?? "")
    case .convTranspose(let a):
        var s = conv(a.conv)
        if let p = a.outputPadding { s += " output_padding=\(p)" }
        if let o = a.outputShape { s += " output_shape=\(o)" }
        return s
    case .batchNormalization(let e): return "epsilon=\(e)"
    case .channelScaleShift(let p): return p.isEmpty ? "" : "post_ops=[\(p.map(\.description).joined(separator: ", "))]"
    case .gemm(let a):
        return "alpha=\(a.alpha) beta=\(a.beta) trans_a=\(a.transA) trans_b=\(a.transB)"
            + (a.postOps.isEmpty ? "" : " post_ops=[\(a.postOps.map(\.description).joined(separator: ", "))]")
    case .leakyRelu(let a): return "alpha=\(a)"
    case .elu(let a): return "alpha=\(a)"
    case .selu(let a, let g): return "alpha=\(a) gamma=\(g)"
    case .hardSigmoid(let a, let b): return "alpha=\(a) beta=\(b)"
    case .gelu(let t): return t ? "approximate=tanh" : ""
    case .alignForBroadcast(let a): return "axis=\(a)"
    case .maxPool(let a), .averagePool(let a): return pool(a)
    case .concat(let a), .split(let a), .gather(let a), .flatten(let a): return "axis=\(a)"
    case .reshape(let z): return z ? "allowzero" : ""
    case .transpose(let p): return p.map { "perm=\($0)" } ?? ""
    case .shape(let s, let e): return "start=\(s)" + (e.map { " end=\($0)" } ?? "")
    case .cast(let t): return "to=\(t)"
    case .castLike, .size: return ""
    case .constantOfShape(let v): return "value=\(v.elementType):\(v.elementType.isFloat ? "\(v.floats)" : "\(v.ints)")"
    case .pad(let m): return "mode=\(m.rawValue)"
    case .resize(let a):
        // The last four only when not ONNX's defaults.
        return "mode=\(a.mode.rawValue) coordinates=\(a.coordinateTransformation.rawValue) nearest=\(a.nearestMode.rawValue)"
            + (a.excludeOutside ? " exclude_outside" : "") + (a.extrapolationValue != 0 ? " extrapolation=\(a.extrapolationValue)" : "")
            + (a.axes.map { " axes=\($0)" } ?? "")
            + (a.keepAspectRatioPolicy != .stretch ? " keep_aspect_ratio=\(a.keepAspectRatioPolicy.rawValue)" : "")
    case .softmax(let a, let l), .logSoftmax(let a, let l): return "axis=\(a)" + (l ? " legacy" : "")
    case .reduce(_, let k, let n): return "keepdims=\(k)" + (n ? " noop_with_empty_axes" : "")
    case .layerNormalization(let a, let e): return "axis=\(a) epsilon=\(e)"
    case .instanceNormalization(let e): return "epsilon=\(e)"
    case .depthToSpace(let b, let crd): return "blocksize=\(b) mode=\(crd ? "CRD" : "DCR")"
    case .spaceToDepth(let b, let crd): return "blocksize=\(b) mode=\(crd ? "CRD" : "DCR")"
    case .tile: return ""
    case .argReduce(let a): return "axis=\(a.axis) keepdims=\(a.keepDims)" + (a.selectLastIndex ? " select_last_index" : "")
    case .gatherElements(let a): return "axis=\(a)"
    case .topK(let a): return "axis=\(a.axis)" + (a.largest ? "" : " smallest")
    case .quantizeLinear(let a, let t): return "axis=\(a) to=\(t)"
    case .dequantizeLinear(let a): return "axis=\(a)"
    case .quantized(let q):
        let inner = attributeText(q.op)
        return (inner.isEmpty ? "" : inner + " ") + "inputs=[\(q.inputs.map { $0?.description ?? "f32" }.joined(separator: ", "))] output=\(q.output)"
    case .unsupported(let r): return "reason=\(irQuoted(r))"
    case .elementwiseGroup(let e): return "steps=\(e)"
    case .matMul(let a): return a.postOps.isEmpty ? "" : "post_ops=[\(a.postOps.map(\.description).joined(separator: ", "))]"
    case .unary, .clip, .binary, .variadic, .globalAveragePool, .globalMaxPool, .slice, .squeeze,
         .unsqueeze, .identity, .dropout, .expand, .range, .where, .layoutConvert, .dynamicQuantizeLinear, .matMulInteger:
        return ""
    }
}
