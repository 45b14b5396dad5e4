import KilnIR

/// Elementwise code: the scalar formula of each unary, binary and activation op, maps,
/// broadcasting binary loops, fused elementwise groups and reductions.
extension ModelEmitter {
    /// A post-op as a C++ expression of the float `v`.
    func postOpExpression(_ p: PostOp) -> String {
        switch p {
        case .sum: return "v"
        case .fakeQuantize(let q):
            return "kiln::fake_quantize<\(cType(q.type))>(v, \(floatLiteral(q.scales[0])), \(q.zeroPoints[0]))"
        default: return p.function!.cpp
        }
    }

    /// A chain of post-ops (sums left out) as one C++ expression of the float `v`.
    func postOpChain(_ ops: [PostOp]) -> String {
        ops.filter { $0 != .sum }.reduce("v") { expr, p in "[](float v) { return \(postOpExpression(p)); }(\(expr))" }
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

    /// A unary op as a C++ expression of `v`: its scalar function on floats, wrapping integer
    /// arithmetic on integers.
    func unaryExpression(_ u: UnaryOp, _ t: ElementType) -> String {
        if t.isFloat, let f = ScalarFunction(u) { return f.cpp }
        switch u {
        case .relu: return "v > 0 ? v : (int64_t)0"
        case .neg: return "kiln::wsub(0, v)"
        case .abs: return "(v < 0 ? kiln::wsub(0, v) : v)"
        case .not: return "(int64_t)(v == 0)"
        default: return ScalarFunction(u)!.cpp
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
        // Otherwise, when every input steps by 0 or 1 along the innermost axes (merged while they
        // stay so: a per-channel operand in channels-last, a [N, C, 1, 1] one in NCHW, rows), the loop
        // runs over rows, each a flat inner loop that g++ vectorizes like the flat one.
        let rows = flat || e.reduction != nil ? nil : rowForm(inputs.map { iterationStrides($0, over: y) }, outShape)
        var body: [String] = inputs.enumerated().map { j, x in
            let at = flat ? "k" : rows.map { $0.unit[j] ? "k" : "0" } ?? "o[\(j)]"
            let p = rows == nil ? "p\(j)" : "q\(j)"
            return [.f32, .u8, .s8, .s32].contains(elem(x)) ? "const float i\(j) = (float)\(p)[\(at)];" : "const float i\(j) = kiln::load(\(p)[\(at)]);"
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
            case .leakyRelu, .elu, .selu, .hardSigmoid, .gelu: expr = step.op.scalarFunction!.cpp
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
                // Clamped by compare-and-select (vmaxps/vminps), then NaN to 0: the form g++ vectorizes
                // without masks (std::min/max with a NaN test ahead ran 3× slower).
                body.append("float s\(k); { const float q = std::nearbyint(\(args[0]) / \(args[1])) + \(z); const float c = q > \(r.lowerBound).0f ? q : \(r.lowerBound).0f; s\(k) = q == q ? (c < \(r.upperBound).0f ? c : \(r.upperBound).0f) : 0.0f; }")
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
        if flat, inputs.count == 1, [.u8, .s8].contains(elem(inputs[0])),
           [.u8, .s8].contains(elem(y)) || e.steps.contains(where: { $0.op.scalarFunction?.isTranscendental == true }) {
            // A function of one 8-bit input (dequantize, activation, quantize) with an 8-bit result
            // or exp/tanh/erf in it: a 256-entry table, computed once by the same code (so exactly
            // the loop's values), then one lookup per element.
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
            run.line("kiln::lookup8((const uint8_t*)\(v(inputs[0])), \(v(y)), \(shapeProduct(outShape)), table.data());")
            run.close()
            return
        }
        if flat || rows != nil {
            // A function of the pointers, compiled twice (KILN_AVX512 and the library's target) and
            // chosen by the CPU at run time; the parameters are restrict-qualified (a u8 store
            // may otherwise alias the pointers and stop vectorization).
            var loop = CodeWriter()
            let count = shapeProduct(outShape)
            if let rows {
                let outer = Array(outShape.prefix(outShape.count - rows.merged))
                // An input whose rows follow one another as the output's reads row r at r · inner;
                // one that repeats a row reads it at 0; any other walks its strides (kiln::row_offset).
                let denseRows = contiguousStrides(outer).map { $0 * rows.inner }
                enum RowStart { case same, contiguous, strided }
                let starts: [RowStart] = rows.outerStrides.map { st in
                    if !st.contains(where: { $0 != 0 }) { return .same }
                    return zip(zip(st, denseRows), outer).allSatisfy { $0.0 == $0.1 || $1 == 1 } ? .contiguous : .strided
                }
                if starts.contains(.strided) { loop.line("static const int64_t shape[] = \(list(outer));") }
                for (i, st) in rows.outerStrides.enumerated() where starts[i] == .strided {
                    loop.line("static const int64_t st\(i)[] = \(list(st));")
                }
                // Short rows (a per-channel operand over 24 channels) vectorize badly: without strided
                // inputs, `batch` rows go as one of a multiple of 32 elements, each repeated row
                // copied `batch` times into a local array first (3× faster at 24 channels).
                let rowCount = count / rows.inner
                let batch = starts.contains(.strided) || rows.inner % 32 == 0 ? 1
                    : (2...8).first { rows.inner * $0 % 32 == 0 && rowCount % $0 == 0 } ?? 1
                let inner = rows.inner * batch
                for (i, x) in inputs.enumerated() where batch > 1 && starts[i] == .same {
                    loop.line("alignas(64) \(cType(elem(x))) e\(i)[\(inner)];")
                    loop.line("for (int64_t k = 0; k < \(inner); k++) e\(i)[k] = p\(i)[k % \(rows.inner)];")
                }
                loop.line("#pragma omp parallel for if (\(count) >= kiln::kParallelThreshold)")
                loop.open("for (int64_t r = 0; r < \(rowCount / batch); r++)")
                for (i, x) in inputs.enumerated() {
                    let start: String
                    switch starts[i] {
                    case .same: start = batch > 1 ? "e\(i)" : "p\(i)"
                    case .contiguous: start = "p\(i) + r * \(inner)"
                    case .strided: start = "p\(i) + kiln::row_offset(r, \(outer.count), shape, st\(i))"
                    }
                    loop.line("const \(cType(elem(x)))* __restrict q\(i) = \(start);")
                }
                loop.line("\(cType(elem(y)))* __restrict o = out + r * \(inner);")
                loop.open("for (int64_t k = 0; k < \(inner); k++)")
                for l in body { loop.line(l) }
                loop.line(store.replacingOccurrences(of: "out[k]", with: "o[k]"))
                loop.close()
                loop.close()
            } else {
                // (Not `omp simd`: with it g++ 12 leaves conversions and rounding scalar; without, it vectorizes.)
                loop.line("#pragma omp parallel for if (\(count) >= kiln::kParallelThreshold)")
                loop.open("for (int64_t k = 0; k < \(count); k++)")
                for l in body { loop.line(l) }
                loop.line(store)
                loop.close()
            }
            let function = "loop\(loopCount)"
            let parameters = (inputs.enumerated().map { i, x in "const \(cType(elem(x)))* __restrict p\(i)" }
                              + ["\(cType(elem(y)))* __restrict out"]).joined(separator: ", ")
            for (prefix, suffix) in [("KILN_AVX512 ", "_avx512"), ("", "")] {
                kernels.open("\(prefix)static void \(function)\(suffix)(\(parameters))")
                for l in loop.text.split(separator: "\n", omittingEmptySubsequences: false).dropLast() { kernels.line(String(l)) }
                kernels.close()
            }
            kernels.line()
            let arguments = (inputs.map { v($0) } + [v(y)]).joined(separator: ", ")
            run.line("(kiln::has_avx512() ? \(function)_avx512 : \(function))(\(arguments));")
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

    /// The row form of a broadcasting loop over `shape` (physical, dense output) whose inputs step
    /// by `strides`: the innermost axes merged while every input steps along them either
    /// contiguously (`unit`) or not at all, their element count `inner` (at least 8), and each
    /// input's strides over the other axes. Nil when the innermost axis has another step.
    func rowForm(_ strides: [[Int]], _ shape: [Int]) -> (merged: Int, inner: Int, unit: [Bool], outerStrides: [[Int]])? {
        guard let last = shape.indices.last, strides.allSatisfy({ $0[last] == 0 || $0[last] == 1 }) else { return nil }
        let unit = strides.map { $0[last] == 1 }
        var merged = 1, inner = shape[last]
        while merged < shape.count {
            let d = shape.count - 1 - merged
            guard zip(strides, unit).allSatisfy({ st, u in u ? st[d] == inner : st[d] == 0 }) else { break }
            inner *= shape[d]
            merged += 1
        }
        guard inner >= 8 else { return nil }
        return (merged, inner, unit, strides.map { Array($0.prefix(shape.count - merged)) })
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
}
