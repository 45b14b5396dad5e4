/// Reads the text form that `printIR` writes back into a graph, so that tests (and people) can
/// write a graph as a few lines of IR:
///
///     graph block(%x: f32[1x2x4x4]) -> (%y)
///       %w = constant f32[2x2x1x1] [1.0, 0.0, 0.0, 1.0]
///       %c = conv(%x, %w, _) {pads=[0, 0, 0, 0]} : f32[1x2x4x4]  # conv1 Conv-11
///       %y = relu(%c) : f32[1x2x4x4]
///
/// - The first line is the header: the graph's name, its inputs with their types, its outputs.
/// - `%name = constant TYPE [values]`: a constant. Its values may be given for any constant:
///   one per element, or one for all of them. Without values (`printIR` leaves them out above 8
///   elements), element i is filled deterministically from k = (7·i + 3) mod 16: (k + 1) / 16 for
///   floating-point types (values in (0, 1], so that variances, scales and square roots stay
///   defined), k for integer types (wrapped to the type), k mod 2 for bool.
/// - `%a, %b = op(%x, _, %y) {attributes} : TYPE [layout], TYPE  # node-name Origin-13`: a node.
///   `_` is an absent optional operand; the layout (`nhwc`, `nchw16c`) is left out when plain.
///   The `# node-name origin` trailer is optional: without it the node is named after its first
///   output and its origin is the op's name at opset 17 (a lone word after `#` is the node's
///   name). Attributes that have a default (ONNX's, or the struct's) may be left out: `conv`'s
///   group 1, `batch_norm`'s epsilon 1e-5, `gemm`'s alpha and beta 1, `leaky_relu`'s alpha 0.01, ...
/// - Values are defined before they are read, each once; graph outputs may be defined anywhere.
/// - Blank lines and lines starting with `#` or `//` are ignored.
///
/// Every op parses, quantized ops and elementwise groups included. What the text does not hold
/// is filled in: the graph's opset is 17; a per-axis quantization printed as its count and range
/// (`s8(axis 0: 16 scales in [0.001, 0.01], z=0)`) gets scales spread evenly from the smallest to
/// the largest (write `s8(axis 0: s=[0.1, 0.2], z=[0, 0])` for exact ones); a per-tensor
/// quantization's axis is 0; `constant_of_shape`'s value is a scalar (one value) or a vector.
/// Whatever is filled in prints back as it was read, so `printIR(parseIR(printIR(g)))` is
/// `printIR(g)`.
///
/// Errors are `KilnError`s naming the line and column and what was expected there.
public func parseIR(_ text: String) throws -> Graph {
    var p = IRParser()
    return try p.parse(text)
}

// MARK: - Scanning one line

/// A cursor over one line of the text form.
struct IRLine {
    let chars: [Character]
    let number: Int
    var i = 0

    init(_ text: Substring, number: Int) {
        chars = Array(text)
        self.number = number
    }

    var atEnd: Bool { i >= chars.count }
    var peek: Character? { i < chars.count ? chars[i] : nil }

    mutating func skipSpaces() {
        while i < chars.count, chars[i] == " " || chars[i] == "\t" { i += 1 }
    }

    /// Skips spaces; then consumes `c` if it is next.
    mutating func eat(_ c: Character) -> Bool {
        skipSpaces()
        guard peek == c else { return false }
        i += 1
        return true
    }

    mutating func expect(_ c: Character, _ context: String) throws {
        guard eat(c) else { throw error("expected '\(c)' \(context)") }
    }

    /// "line 3, column 17: expected ..., found '{'".
    func error(_ message: String, at column: Int? = nil) -> KilnError {
        let col = column ?? i
        let found: String
        if col >= chars.count {
            found = "the end of the line"
        } else {
            let rest = String(chars[col...].prefix(24))
            found = "'\(rest)\(chars.count - col > 24 ? "…" : "")'"
        }
        return KilnError("IR text line \(number), column \(col + 1): \(message), found \(found)")
    }

    static let delimiters: Set<Character> = [" ", "\t", ",", ";", "[", "]", "(", ")", "{", "}", "=", ":", "\"", "#", "%"]

    /// A run of characters up to the next delimiter (spaces skipped before); may be empty.
    mutating func word() -> String {
        skipSpaces()
        let start = i
        while i < chars.count, !IRLine.delimiters.contains(chars[i]) { i += 1 }
        return String(chars[start..<i])
    }

    mutating func word(_ what: String) throws -> String {
        let w = word()
        guard !w.isEmpty else { throw error("expected \(what)") }
        return w
    }

    /// Consumes `keyword` (a whole word) if it is next.
    mutating func eatWord(_ keyword: String) -> Bool {
        let save = i
        if word() == keyword { return true }
        i = save
        return false
    }

    mutating func expectWord(_ keyword: String, _ context: String) throws {
        let save = i
        guard eatWord(keyword) else {
            skipSpaces()
            let e = error("expected '\(keyword)' \(context)")
            i = save
            throw e
        }
    }

    /// A double-quoted string with `\\`, `\"`, `\n`, `\t`, `\r` and `\u{..}` escapes; the
    /// opening quote is next.
    mutating func quoted() throws -> String {
        skipSpaces()
        let start = i
        guard peek == "\"" else { throw error("expected '\"'") }
        i += 1
        var out = ""
        while true {
            guard let c = peek else { throw error("unterminated string", at: start) }
            i += 1
            if c == "\"" { return out }
            guard c == "\\" else {
                out.append(c)
                continue
            }
            guard let e = peek else { throw error("unterminated string", at: start) }
            i += 1
            switch e {
            case "n": out.append("\n")
            case "t": out.append("\t")
            case "r": out.append("\r")
            case "\\", "\"": out.append(e)
            case "u":
                guard peek == "{" else { throw error("expected '{' after \\u") }
                i += 1
                var hex = ""
                while let h = peek, h != "}" { hex.append(h); i += 1 }
                guard peek == "}", let v = UInt32(hex, radix: 16), let u = Unicode.Scalar(v) else {
                    throw error("expected a \\u{hex} escape")
                }
                i += 1
                out.unicodeScalars.append(u)
            default: throw error("unknown escape '\\\(e)'", at: i - 2)
            }
        }
    }

    /// A value name after its `%`: quoted, or a run up to a delimiter (a `:` belongs to the name
    /// unless a space or the end follows it).
    mutating func valueName() throws -> String {
        if peek == "\"" { return try quoted() }
        let start = i
        let stops: Set<Character> = [" ", "\t", ",", "(", ")", "[", "]", "{", "}", "=", "\"", "#", "%"]
        while let c = peek, !stops.contains(c) {
            if c == ":", i + 1 >= chars.count || chars[i + 1] == " " || chars[i + 1] == "\t" { break }
            i += 1
        }
        guard i > start else { throw error("expected a value name after '%'") }
        return String(chars[start..<i])
    }

    /// `%name`.
    mutating func reference(_ context: String) throws -> String {
        skipSpaces()
        guard peek == "%" else { throw error("expected a value (%name) \(context)") }
        i += 1
        return try valueName()
    }

    /// A number of type `T`; `kind` says what the error expected ("an integer").
    mutating func number<T: LosslessStringConvertible>(_ what: String, _ kind: String) throws -> T {
        skipSpaces()
        let start = i
        guard let v = T(word()) else { throw error("expected \(what) (\(kind))", at: start) }
        return v
    }

    mutating func int(_ what: String) throws -> Int { try number(what, "an integer") }
    mutating func int64(_ what: String) throws -> Int64 { try number(what, "an integer") }
    mutating func float(_ what: String) throws -> Float { try number(what, "a number") }

    mutating func bool(_ what: String) throws -> Bool {
        skipSpaces()
        let start = i
        switch word() {
        case "true", "1": return true
        case "false", "0": return false
        default: throw error("expected \(what) (true or false)", at: start)
        }
    }

    /// `[e, e, ...]`.
    mutating func list<T>(_ what: String, _ element: (inout IRLine) throws -> T) throws -> [T] {
        try expect("[", "to open \(what)")
        var out: [T] = []
        if eat("]") { return out }
        while true {
            out.append(try element(&self))
            if eat("]") { return out }
            if eat(",") { continue }
            throw error("expected ',' or ']' in \(what)")
        }
    }

    mutating func ints(_ what: String) throws -> [Int] { try list(what) { try $0.int("an element of \(what)") } }

    mutating func elementType(_ what: String) throws -> ElementType {
        skipSpaces()
        let start = i
        let w = word()
        guard let t = ElementType.allCases.first(where: { $0.description == w }) else {
            throw error("expected \(what) (f32, f16, bf16, s8, u8, s32, s64 or bool)", at: start)
        }
        return t
    }

    /// `f32[1x3x224x224]`, `f32[]`, `f32[Nx3]`, `f32[?x3]`, `f32["max_x"x3]`.
    mutating func type(_ context: String) throws -> TensorType {
        let t = try elementType("an element type \(context)")
        guard peek == "[" else { throw error("expected '[' after the element type") }
        i += 1
        var dims: [Dim] = []
        if peek == "]" {
            i += 1
            return TensorType(t, dims: [])
        }
        while true {
            let start = i
            if peek == "\"" {
                dims.append(.symbolic(try quoted()))
            } else if peek == "?" {
                i += 1
                dims.append(.symbolic("?"))
            } else if let c = peek, c.isNumber || c == "-" {
                i += 1
                while let d = peek, d.isNumber { i += 1 }
                guard let v = Int(String(chars[start..<i])) else { throw error("expected a dimension", at: start) }
                dims.append(.fixed(v))
            } else if let c = peek, c == "_" || (c.isASCII && c.isLetter && c != "x") {
                while let d = peek, d != "x", d == "_" || (d.isASCII && (d.isLetter || d.isNumber)) { i += 1 }
                dims.append(.symbolic(String(chars[start..<i])))
            } else {
                throw error("expected a dimension (a size, a name, ? or a quoted name)")
            }
            if peek == "x" {
                i += 1
                continue
            }
            guard peek == "]" else { throw error("expected 'x' or ']' in the shape") }
            i += 1
            return TensorType(t, dims: dims)
        }
    }

    /// `u8(s=0.1, z=3)`; per axis `s8(axis 0: 16 scales in [0.001, 0.01], z=0)` (as printed:
    /// the scales spread evenly over the range) or `s8(axis 0: s=[0.1, 0.2], z=[0, 0])`.
    mutating func quantization(_ what: String) throws -> Quantization {
        skipSpaces()
        let start = i
        let t = try elementType("the quantized type of \(what)")
        try expect("(", "after the quantized type of \(what)")
        let q: Quantization
        if eatWord("axis") {
            let axis = try int("the quantization axis")
            try expect(":", "after the quantization axis")
            var scales: [Float]
            if eatWord("s") {
                try expect("=", "after 's'")
                scales = try list("the scales") { try $0.float("a scale") }
                guard !scales.isEmpty else { throw error("expected at least one scale") }
            } else {
                let n = try int("the number of scales")
                guard n >= 1 else { throw error("expected at least one scale") }
                try expectWord("scales", "after the number of scales")
                try expectWord("in", "after 'scales'")
                let range = try list("the range of the scales") { try $0.float("a scale") }
                guard range.count == 2, range[0] <= range[1] else { throw error("expected the range [smallest, largest]") }
                scales = (0..<n).map { k in
                    guard n > 1, k < n - 1 else { return k == 0 ? range[0] : range[1] }
                    return min(max(range[0] + (range[1] - range[0]) * Float(k) / Float(n - 1), range[0]), range[1])
                }
            }
            try expect(",", "after the scales")
            try expectWord("z", "(the zero points)")
            try expect("=", "after 'z'")
            var zeros: [Int32]
            skipSpaces()
            if peek == "[" {
                zeros = try list("the zero points") { l in
                    let v = try l.int("a zero point")
                    guard let z = Int32(exactly: v) else { throw l.error("the zero point \(v) does not fit in 32 bits") }
                    return z
                }
                guard zeros.count == scales.count else {
                    throw error("expected \(scales.count) zero points (one per scale), not \(zeros.count)")
                }
            } else {
                let v = try int("a zero point")
                guard let z = Int32(exactly: v) else { throw error("the zero point \(v) does not fit in 32 bits") }
                zeros = [Int32](repeating: z, count: scales.count)
            }
            q = Quantization(t, scales: scales, zeroPoints: zeros, axis: axis)
        } else {
            try expectWord("s", "(the scale) in \(what)")
            try expect("=", "after 's'")
            let s = try float("the scale")
            try expect(",", "after the scale")
            try expectWord("z", "(the zero point)")
            try expect("=", "after 'z'")
            let v = try int("the zero point")
            guard let z = Int32(exactly: v) else { throw error("the zero point \(v) does not fit in 32 bits") }
            q = .perTensor(t, scale: s, zeroPoint: z)
        }
        try expect(")", "to close the quantization parameters")
        guard !t.isFloat else {
            throw error("expected an integer quantized type for \(what), not \(t)", at: start)
        }
        return q
    }

    /// A quantization, or `f32` for none.
    mutating func optionalQuantization(_ what: String) throws -> Quantization? {
        let save = i
        if eatWord("f32") {
            skipSpaces()
            if peek != "(" { return nil }
            i = save
        }
        return try quantization(what)
    }

    /// `[relu, clip(0.0, 6.0), sum, fake_quantize(u8(s=0.1, z=3)), ...]`.
    mutating func postOps() throws -> [PostOp] {
        try list("the post-ops") { l in
            l.skipSpaces()
            let start = l.i
            let name = try l.word("a post-op")
            func args<T>(_ body: (inout IRLine) throws -> T) throws -> T {
                try l.expect("(", "after \(name)")
                let v = try body(&l)
                try l.expect(")", "to close the arguments of \(name)")
                return v
            }
            func two() throws -> (Float, Float) {
                try args { l in
                    let a = try l.float("the first argument of \(name)")
                    try l.expect(",", "between the arguments of \(name)")
                    return (a, try l.float("the second argument of \(name)"))
                }
            }
            switch name {
            case "sum": return .sum
            case "relu": return .relu
            case "sigmoid": return .sigmoid
            case "tanh": return .tanh
            case "hard_swish": return .hardSwish
            case "silu": return .silu
            case "gelu": return .gelu(tanhApproximation: false)
            case "gelu_tanh": return .gelu(tanhApproximation: true)
            case "leaky_relu": return .leakyRelu(alpha: try args { try $0.float("leaky_relu's alpha") })
            case "clip":
                let (lo, hi) = try two()
                return .clip(min: lo, max: hi)
            case "hard_sigmoid":
                let (a, b) = try two()
                return .hardSigmoid(alpha: a, beta: b)
            case "fake_quantize": return .fakeQuantize(try args { try $0.quantization("fake_quantize") })
            default:
                throw l.error("expected a post-op (sum, relu, leaky_relu(a), clip(lo, hi), sigmoid, tanh, hard_swish, hard_sigmoid(a, b), silu, gelu, gelu_tanh, fake_quantize(q))", at: start)
            }
        }
    }
}

// MARK: - Attributes

/// The attributes of one node (`{key=value flag ...}`), each value read by the reader its key
/// calls for; the op then takes those it knows, and any left over is an error.
struct IRAttributes {
    enum Value {
        case flag
        case int(Int), ints([Int]), float(Float), bool(Bool), word(String), string(String)
        case postOps([PostOp]), quantization(Quantization?), quantizations([Quantization?])
        case tensor(Tensor), steps([ElementwiseGroup.Step])
    }

    var values: [String: (value: Value, column: Int)] = [:]
    var order: [String] = []
    var used: Set<String> = []
    /// The line, for errors (its cursor at the `{`).
    var line: IRLine

    /// Reads `key=value key flag ...` up to the closing `}` (consumed).
    init(_ l: inout IRLine) throws {
        line = l
        while true {
            l.skipSpaces()
            if l.eat("}") { break }
            let column = l.i
            let key = try l.word("an attribute name or '}'")
            var value = Value.flag
            if l.eat("=") {
                switch key {
                case "group", "axis", "start", "end", "blocksize", "hidden_size":
                    value = .int(try l.int(key))
                case "kernel", "strides", "pads", "dilations", "output_padding", "output_shape", "perm", "axes":
                    value = .ints(try l.ints(key))
                case "epsilon", "alpha", "beta", "gamma", "extrapolation", "clip":
                    value = .float(try l.float(key))
                case "trans_a", "trans_b", "keepdims":
                    value = .bool(try l.bool(key))
                case "auto_pad", "approximate", "mode", "coordinates", "nearest", "keep_aspect_ratio", "to", "direction":
                    value = .word(try l.word(key))
                case "post_ops", "activations":
                    value = .postOps(try l.postOps())
                case "input", "weights", "output", "addend":
                    value = .quantization(try l.optionalQuantization(key))
                case "inputs":
                    value = .quantizations(try l.list("the inputs' quantizations") { try $0.optionalQuantization("an input") })
                case "reason":
                    value = .string(try l.quoted())
                case "value":
                    let t = try l.elementType("the value's element type")
                    try l.expect(":", "after the value's element type")
                    let v = try l.list("the value") { try $0.word("an element") }
                    value = .tensor(try IRParser.tensor(t, shape: v.count == 1 ? [] : [v.count], values: v, line: l, column: column))
                case "steps":
                    try l.expect("[", "to open the steps")
                    var steps: [ElementwiseGroup.Step] = []
                    if !l.eat("]") {
                        while true {
                            steps.append(try IRAttributes.step(&l, index: steps.count))
                            if l.eat("]") { break }
                            try l.expect(";", "or ']' between the steps")
                        }
                    }
                    value = .steps(steps)
                default:
                    throw l.error("unknown attribute '\(key)'", at: column)
                }
            }
            guard values[key] == nil else { throw l.error("attribute '\(key)' given twice", at: column) }
            values[key] = (value, column)
            order.append(key)
        }
    }

    init(empty l: IRLine) {
        line = l
    }

    /// One step of an elementwise group: `s2=leaky_relu(s1){alpha=0.1}`.
    static func step(_ l: inout IRLine, index: Int) throws -> ElementwiseGroup.Step {
        l.skipSpaces()
        let start = l.i
        let label = l.word()
        guard label == "s\(index)" else { throw l.error("expected step s\(index)", at: start) }
        try l.expect("=", "after the step's label")
        l.skipSpaces()
        let opColumn = l.i
        let name = try l.word("the step's op")
        try l.expect("(", "after the step's op")
        var operands: [ElementwiseGroup.Operand] = []
        if !l.eat(")") {
            while true {
                l.skipSpaces()
                let c = l.i
                let w = l.word()
                if w == "_" {
                    operands.append(.absent)
                } else if w.hasPrefix("in"), let k = Int(w.dropFirst(2)), k >= 0 {
                    operands.append(.input(k))
                } else if w.hasPrefix("s"), let k = Int(w.dropFirst()), k >= 0, k < index {
                    operands.append(.step(k))
                } else {
                    throw l.error("expected a step operand (inK, an earlier sK, or _)", at: c)
                }
                if l.eat(")") { break }
                try l.expect(",", "between the step's operands")
            }
        }
        var attrs = IRAttributes(empty: l)
        if l.peek == "{" {
            l.i += 1
            attrs = try IRAttributes(&l)
        }
        let op = try IRParser.op(name, &attrs, line: l, column: opColumn)
        guard op.traits.elementwiseStep else { throw l.error("\(name) cannot be a step of an elementwise group", at: opColumn) }
        return ElementwiseGroup.Step(op: op, operands: operands)
    }

    /// The value of `key`, marked as used.
    mutating func take(_ key: String) -> (value: Value, column: Int)? {
        guard let v = values[key] else { return nil }
        used.insert(key)
        return v
    }

    func wrong(_ key: String, _ column: Int, _ what: String) -> KilnError {
        line.error("attribute '\(key)' should be \(what)", at: column)
    }

    mutating func flag(_ key: String) throws -> Bool {
        guard let (v, c) = take(key) else { return false }
        guard case .flag = v else { throw wrong(key, c, "a flag, without a value") }
        return true
    }

    mutating func int(_ key: String) throws -> Int? {
        guard let (v, c) = take(key) else { return nil }
        guard case .int(let x) = v else { throw wrong(key, c, "an integer") }
        return x
    }

    mutating func int(_ key: String, default d: Int) throws -> Int { try int(key) ?? d }

    mutating func requiredInt(_ key: String, _ op: String) throws -> Int {
        guard let x = try int(key) else { throw line.error("\(op) needs the attribute \(key)=...") }
        return x
    }

    mutating func ints(_ key: String) throws -> [Int]? {
        guard let (v, c) = take(key) else { return nil }
        guard case .ints(let x) = v else { throw wrong(key, c, "a list of integers") }
        return x
    }

    mutating func float(_ key: String, default d: Float) throws -> Float {
        guard let (v, c) = take(key) else { return d }
        guard case .float(let x) = v else { throw wrong(key, c, "a number") }
        return x
    }

    mutating func bool(_ key: String, default d: Bool) throws -> Bool {
        guard let (v, c) = take(key) else { return d }
        guard case .bool(let x) = v else { throw wrong(key, c, "true or false") }
        return x
    }

    mutating func word(_ key: String) throws -> (String, Int)? {
        guard let (v, c) = take(key) else { return nil }
        guard case .word(let x) = v else { throw wrong(key, c, "a word") }
        return (x, c)
    }

    /// A word attribute that is one of `T`'s raw values.
    mutating func choice<T: RawRepresentable>(_ key: String, default d: T) throws -> T where T.RawValue == String {
        guard let (w, c) = try word(key) else { return d }
        guard let x = T(rawValue: w) else { throw line.error("attribute \(key): unknown value '\(w)'", at: c) }
        return x
    }

    mutating func elementType(_ key: String) throws -> ElementType? {
        guard let (w, c) = try word(key) else { return nil }
        guard let t = ElementType.allCases.first(where: { $0.description == w }) else {
            throw line.error("attribute \(key): expected an element type, not '\(w)'", at: c)
        }
        return t
    }

    mutating func postOps(_ key: String = "post_ops") throws -> [PostOp] {
        guard let (v, c) = take(key) else { return [] }
        guard case .postOps(let x) = v else { throw wrong(key, c, "a list of post-ops") }
        return x
    }

    /// A quantization attribute: nil when absent, .some(nil) for `f32`.
    mutating func quantization(_ key: String) throws -> Quantization?? {
        guard let (v, c) = take(key) else { return nil }
        guard case .quantization(let q) = v else { throw wrong(key, c, "a quantization") }
        return .some(q)
    }

    mutating func requiredQuantization(_ key: String, _ op: String) throws -> Quantization {
        guard let q = try quantization(key) else { throw line.error("\(op) needs the attribute \(key)=...") }
        guard let x = q else { throw line.error("\(op): \(key) must be a quantization, not f32") }
        return x
    }

    /// Checks that every attribute was taken by the op.
    func finish(_ op: String) throws {
        for key in order where !used.contains(key) {
            throw line.error("\(op) has no attribute '\(key)'", at: values[key]!.column)
        }
    }
}

// MARK: - The graph

struct IRParser {
    var g = Graph()
    /// Value names → ids, and the line each was defined on.
    var names: [String: (id: ValueID, line: Int)] = [:]

    mutating func parse(_ text: String) throws -> Graph {
        var outputs: [(name: String, column: Int)] = []
        var headerLine: IRLine?
        for (k, raw) in text.split(separator: "\n", omittingEmptySubsequences: false).enumerated() {
            var content = raw
            while let last = content.last, last == "\r" || last == " " || last == "\t" { content = content.dropLast() }
            var line = IRLine(content, number: k + 1)
            line.skipSpaces()
            if line.atEnd || line.peek == "#" || (line.peek == "/" && line.chars.count > line.i + 1 && line.chars[line.i + 1] == "/") {
                continue
            }
            if headerLine == nil {
                outputs = try parseHeader(&line)
                headerLine = line
                continue
            }
            if line.peek == "%" || line.peek == "=" {
                try parseDefinition(&line)
            } else {
                throw line.error("expected a constant or a node (a line starting with %)")
            }
        }
        guard let h = headerLine else { throw KilnError("IR text: no graph (expected a line 'graph name(%input: type, ...) -> (%output, ...)')") }
        for (name, column) in outputs {
            guard let v = names[name] else { throw h.error("the graph output %\(name) is never defined", at: column) }
            g.outputs.append(v.id)
        }
        return g
    }

    /// `graph name(%x: f32[1x3], ...) -> (%y, ...)`; returns the outputs' names.
    mutating func parseHeader(_ l: inout IRLine) throws -> [(name: String, column: Int)] {
        try l.expectWord("graph", "at the start of the text (the header: graph name(%input: type, ...) -> (%output, ...))")
        l.skipSpaces()
        if l.peek == "\"" {
            g.name = try l.quoted()
        } else {
            let start = l.i
            while let c = l.peek, c != "(" { l.i += 1 }
            g.name = String(l.chars[start..<l.i]).trimmingTrailingSpaces()
        }
        try l.expect("(", "after the graph's name")
        if !l.eat(")") {
            while true {
                let column = l.i
                let name = try l.reference("(a graph input)")
                try l.expect(":", "after the input's name")
                let t = try l.type("for the input")
                try define(name, Value(name: name, type: t), line: l, column: column)
                g.inputs.append(g.values.count - 1)
                if l.eat(")") { break }
                try l.expect(",", "between the inputs")
            }
        }
        try l.expect("-", "after the inputs ('-> (%output, ...)')")
        guard l.peek == ">" else { throw l.error("expected '->' after the inputs") }
        l.i += 1
        try l.expect("(", "before the outputs")
        var outputs: [(String, Int)] = []
        if !l.eat(")") {
            while true {
                l.skipSpaces()
                let column = l.i
                outputs.append((try l.reference("(a graph output)"), column))
                if l.eat(")") { break }
                try l.expect(",", "between the outputs")
            }
        }
        l.skipSpaces()
        guard l.atEnd else { throw l.error("expected the end of the header line") }
        return outputs
    }

    mutating func define(_ name: String, _ value: Value, line: IRLine, column: Int) throws {
        if let previous = names[name] {
            throw line.error("%\(name) is defined twice (first on line \(previous.line))", at: column)
        }
        g.values.append(value)
        names[name] = (g.values.count - 1, line.number)
    }

    func lookup(_ name: String, line: IRLine, column: Int) throws -> ValueID {
        guard let v = names[name] else { throw line.error("%\(name) is not defined (values are defined before they are read)", at: column) }
        return v.id
    }

    /// A constant (`%w = constant f32[2] [1.0, 2.0]`) or a node.
    mutating func parseDefinition(_ l: inout IRLine) throws {
        var outs: [(String, Int)] = []
        if !l.eat("=") {
            while true {
                l.skipSpaces()
                let column = l.i
                outs.append((try l.reference("(a result)"), column))
                if l.eat("=") { break }
                try l.expect(",", "or '=' after a result")
            }
        }
        l.skipSpaces()
        let opColumn = l.i
        let opName = try l.word("an op name or 'constant'")
        l.skipSpaces()
        if opName == "constant" && l.peek != "(" {
            guard outs.count == 1 else { throw l.error("a constant defines one value", at: opColumn) }
            try parseConstant(&l, name: outs[0].0, column: outs[0].1)
            return
        }
        try l.expect("(", "after the op name")
        var inputs: [ValueID?] = []
        if !l.eat(")") {
            while true {
                l.skipSpaces()
                let column = l.i
                if l.peek == "_" && (l.i + 1 >= l.chars.count || [",", ")", " "].contains(l.chars[l.i + 1])) {
                    l.i += 1
                    inputs.append(nil)
                } else {
                    inputs.append(try lookup(try l.reference("(an operand, or _ for none)"), line: l, column: column))
                }
                if l.eat(")") { break }
                try l.expect(",", "or ')' after an operand")
            }
        }
        var attrs = IRAttributes(empty: l)
        if l.eat("{") { attrs = try IRAttributes(&l) }
        let op = try IRParser.op(opName, &attrs, line: l, column: opColumn)
        try l.expect(":", "before the results' types")
        var types: [(TensorType, Layout)] = []
        l.skipSpaces()
        while !(outs.isEmpty && (l.atEnd || l.peek == "#")) {
            let t = try l.type("for a result")
            var layout = Layout.plain
            l.skipSpaces()
            let column = l.i
            if let c = l.peek, c.isLetter {
                switch l.word() {
                case "plain": layout = .plain
                case "nhwc": layout = .channelsLast
                case "nchw16c": layout = .blocked16
                default: throw l.error("expected a layout (nhwc or nchw16c), ',', or '#'", at: column)
                }
            }
            types.append((t, layout))
            if !l.eat(",") { break }
        }
        guard types.count == outs.count else {
            throw l.error("expected \(outs.count) type\(outs.count == 1 ? "" : "s") (one per result), got \(types.count)")
        }
        l.skipSpaces()
        var nodeName = outs.first?.0 ?? "node\(g.nodes.count)"
        var origin = NodeOrigin(opType: opName, version: 17)
        if l.peek == "#" {
            l.i += 1
            if l.peek == " " { l.i += 1 }
            (nodeName, origin) = try IRParser.trailer(&l, defaultName: nodeName, defaultOrigin: origin)
        } else if !l.atEnd {
            throw l.error("expected ',', '#' or the end of the line after the types")
        }
        var outputs: [ValueID] = []
        for ((name, column), (t, layout)) in zip(outs, types) {
            try define(name, Value(name: name, type: t, layout: layout), line: l, column: column)
            outputs.append(g.values.count - 1)
        }
        g.nodes.append(Node(name: nodeName, op: op, inputs: inputs, outputs: outputs, origin: origin))
    }

    /// `node-name Origin-13` (the origin `domain.OpType-version`); a name alone when the last
    /// word is not an origin.
    static func trailer(_ l: inout IRLine, defaultName: String, defaultOrigin: NodeOrigin) throws -> (String, NodeOrigin) {
        let rest = String(l.chars[l.i...])
        l.i = l.chars.count
        if rest.isEmpty { return (defaultName, defaultOrigin) }
        var name = rest, origin = defaultOrigin
        if let space = rest.lastIndex(of: " ") {
            let last = rest[rest.index(after: space)...]
            if let dash = last.lastIndex(of: "-"), let version = Int(last[last.index(after: dash)...]) {
                let qualified = last[..<dash]
                if !qualified.isEmpty {
                    if let dot = qualified.lastIndex(of: ".") {
                        origin = NodeOrigin(opType: String(qualified[qualified.index(after: dot)...]),
                                            domain: String(qualified[..<dot]), version: version)
                    } else {
                        origin = NodeOrigin(opType: String(qualified), version: version)
                    }
                    name = String(rest[..<space])
                }
            }
        }
        if name.hasPrefix("\"") {
            var q = IRLine(Substring(name), number: l.number)
            name = try q.quoted()
        }
        return (name, origin)
    }

    /// `constant f32[2x2] [1.0, 2.0, 3.0, 4.0]`, values optional (after the `constant`).
    mutating func parseConstant(_ l: inout IRLine, name: String, column: Int) throws {
        let t = try l.type("for the constant")
        guard let shape = t.shape else { throw l.error("a constant's shape must be static", at: column) }
        l.skipSpaces()
        let tensor: Tensor
        if l.peek == "[" {
            let valuesColumn = l.i
            let words = try l.list("the constant's values") { try $0.word("a value") }
            tensor = try IRParser.tensor(t.elementType, shape: shape, values: words, line: l, column: valuesColumn)
        } else {
            tensor = IRParser.filled(t.elementType, shape: shape)
        }
        l.skipSpaces()
        guard l.atEnd || l.peek == "#" else { throw l.error("expected the values ([...]) or the end of the line") }
        // A graph input that is also a constant (an initializer the caller may override).
        if let existing = names[name], g.inputs.contains(existing.id), g.values[existing.id].constant == nil,
           g.values[existing.id].type == t {
            g.values[existing.id].constant = tensor
            return
        }
        try define(name, Value(name: name, type: t, constant: tensor), line: l, column: column)
    }

    /// The deterministic values of a constant given without them (see `parseIR`).
    static func filled(_ t: ElementType, shape: [Int]) -> Tensor {
        let n = shapeProduct(shape)
        func k(_ i: Int) -> Int { (7 * i + 3) % 16 }
        if t.isFloat { return Tensor(t, shape: shape, floats: (0..<n).map { t.roundFloat(Float(k($0) + 1) / 16) }) }
        if t == .bool { return Tensor(t, shape: shape, ints: (0..<n).map { Int64(k($0) % 2) }) }
        return Tensor(t, shape: shape, ints: (0..<n).map { t.wrap(Int64(k($0))) })
    }

    /// A tensor from its values as written: one per element, or one for all.
    static func tensor(_ t: ElementType, shape: [Int], values: [String], line: IRLine, column: Int) throws -> Tensor {
        let n = shapeProduct(shape)
        guard values.count == n || values.count == 1 else {
            throw line.error("expected \(n) value\(n == 1 ? "" : "s") for shape [\(shapeString(shape))] (or one for all), got \(values.count)", at: column)
        }
        if t.isFloat {
            let f = try values.map { w -> Float in
                guard let v = Float(w) else { throw line.error("expected numbers for a \(t) constant, not '\(w)'", at: column) }
                return t.roundFloat(v)
            }
            return Tensor(t, shape: shape, floats: f.count == n ? f : [Float](repeating: f[0], count: n))
        }
        let v = try values.map { w -> Int64 in
            if t == .bool, w == "true" || w == "false" { return w == "true" ? 1 : 0 }
            guard let v = Int64(w) else { throw line.error("expected integers for a \(t) constant, not '\(w)'", at: column) }
            return t.wrap(v)
        }
        return Tensor(t, shape: shape, ints: v.count == n ? v : [Int64](repeating: v[0], count: n))
    }

    // MARK: Ops

    static let unaryOps = Dictionary(uniqueKeysWithValues: UnaryOp.allCases.map { ($0.rawValue, $0) })
    static let binaryOps = Dictionary(uniqueKeysWithValues: BinaryOp.allCases.map { ($0.rawValue, $0) })
    static let reduceOps = Dictionary(uniqueKeysWithValues: ReduceOp.allCases.map { ($0.rawValue, $0) })

    /// The op named `name` (as `Op.name` gives it) with its attributes; every attribute must be used.
    static func op(_ name: String, _ a: inout IRAttributes, line: IRLine, column: Int) throws -> Op {
        let op = try opWithoutCheck(name, &a, line: line, column: column)
        try a.finish(name)
        return op
    }

    static func conv(_ a: inout IRAttributes) throws -> ConvAttributes {
        ConvAttributes(kernelShape: try a.ints("kernel"), strides: try a.ints("strides"), pads: try a.ints("pads"),
                       dilations: try a.ints("dilations"), group: try a.int("group", default: 1),
                       autoPad: try a.choice("auto_pad", default: AutoPad.notSet), postOps: try a.postOps())
    }

    static func pool(_ a: inout IRAttributes, _ name: String) throws -> PoolAttributes {
        guard let kernel = try a.ints("kernel") else { throw a.line.error("\(name) needs the attribute kernel=[...]") }
        return PoolAttributes(kernelShape: kernel, strides: try a.ints("strides"), pads: try a.ints("pads"),
                              dilations: try a.ints("dilations"), autoPad: try a.choice("auto_pad", default: AutoPad.notSet),
                              ceilMode: try a.flag("ceil_mode"), countIncludePad: try a.flag("count_include_pad"))
    }

    static func crd(_ a: inout IRAttributes) throws -> Bool {
        guard let (w, c) = try a.word("mode") else { return false }
        guard w == "CRD" || w == "DCR" else { throw a.line.error("attribute mode: expected CRD or DCR, not '\(w)'", at: c) }
        return w == "CRD"
    }

    static func opWithoutCheck(_ name: String, _ a: inout IRAttributes, line: IRLine, column: Int) throws -> Op {
        if let u = unaryOps[name] { return .unary(u) }
        if let b = binaryOps[name] { return .binary(b) }
        if name.hasPrefix("variadic_"), let b = binaryOps[String(name.dropFirst("variadic_".count))] { return .variadic(b) }
        if name.hasPrefix("reduce_"), let r = reduceOps[String(name.dropFirst("reduce_".count))] {
            return .reduce(r, keepDims: try a.bool("keepdims", default: true), noopWithEmptyAxes: try a.flag("noop_with_empty_axes"))
        }
        switch name {
        case "conv": return .conv(try conv(&a))
        case "conv_integer": return .convInteger(try conv(&a))
        case "conv_transpose":
            return .convTranspose(ConvTransposeAttributes(conv: try conv(&a), outputPadding: try a.ints("output_padding"),
                                                          outputShape: try a.ints("output_shape")))
        case "quantized_conv":
            let c = try conv(&a)
            return .quantizedConv(QuantizedConvAttributes(
                conv: c, input: try a.requiredQuantization("input", name), weights: try a.requiredQuantization("weights", name),
                output: try a.quantization("output") ?? nil, addend: try a.quantization("addend") ?? nil))
        case "quantized_matmul":
            return .quantizedMatMul(QuantizedMatMulAttributes(
                input: try a.requiredQuantization("input", name), weights: try a.requiredQuantization("weights", name),
                output: try a.quantization("output") ?? nil, postOps: try a.postOps()))
        case "dynamic_quantized_matmul":
            return .dynamicQuantizedMatMul(DynamicQuantizedMatMulAttributes(weights: try a.requiredQuantization("weights", name), postOps: try a.postOps()))
        case "dynamic_quantize_linear": return .dynamicQuantizeLinear
        case "rnn", "gru", "lstm":
            let kind = RecurrentAttributes.Kind(rawValue: name)!
            let d = try a.choice("direction", default: RecurrentAttributes.Direction.forward)
            guard let hidden = try a.int("hidden_size") else { throw line.error("\(name) needs hidden_size=...") }
            let acts = try a.postOps("activations")
            let clip = try a.float("clip", default: .nan)
            return .recurrent(RecurrentAttributes(kind: kind, direction: d, hiddenSize: hidden, activations: acts.isEmpty ? nil : acts,
                                                  clip: clip.isNaN ? nil : clip, batchMajor: try a.flag("batch_major"),
                                                  linearBeforeReset: try a.flag("linear_before_reset"), inputForget: try a.flag("input_forget")))
        case "matmul_integer": return .matMulInteger
        case "batch_norm": return .batchNormalization(epsilon: try a.float("epsilon", default: 1e-5))
        case "scale_shift": return .channelScaleShift(postOps: try a.postOps())
        case "gemm":
            return .gemm(GemmAttributes(alpha: try a.float("alpha", default: 1), beta: try a.float("beta", default: 1),
                                        transA: try a.bool("trans_a", default: false), transB: try a.bool("trans_b", default: false),
                                        postOps: try a.postOps()))
        case "matmul": return .matMul(MatMulAttributes(postOps: try a.postOps()))
        case "leaky_relu": return .leakyRelu(alpha: try a.float("alpha", default: 0.01))
        case "elu": return .elu(alpha: try a.float("alpha", default: 1))
        case "selu": return .selu(alpha: try a.float("alpha", default: 1.6732632), gamma: try a.float("gamma", default: 1.050701))
        case "hard_sigmoid": return .hardSigmoid(alpha: try a.float("alpha", default: 0.2), beta: try a.float("beta", default: 0.5))
        case "clip": return .clip
        case "gelu":
            guard let (w, c) = try a.word("approximate") else { return .gelu(tanhApproximation: false) }
            guard w == "tanh" || w == "none" else { throw a.line.error("attribute approximate: expected tanh or none, not '\(w)'", at: c) }
            return .gelu(tanhApproximation: w == "tanh")
        case "align_for_broadcast": return .alignForBroadcast(axis: try a.requiredInt("axis", name))
        case "max_pool": return .maxPool(try pool(&a, name))
        case "average_pool": return .averagePool(try pool(&a, name))
        case "global_average_pool": return .globalAveragePool
        case "global_max_pool": return .globalMaxPool
        case "concat": return .concat(axis: try a.requiredInt("axis", name))
        case "split": return .split(axis: try a.int("axis", default: 0))
        case "slice": return .slice
        case "reshape": return .reshape(allowZero: try a.flag("allowzero"))
        case "flatten": return .flatten(axis: try a.int("axis", default: 1))
        case "transpose": return .transpose(perm: try a.ints("perm"))
        case "squeeze": return .squeeze
        case "unsqueeze": return .unsqueeze
        case "gather": return .gather(axis: try a.int("axis", default: 0))
        case "shape": return .shape(start: try a.int("start", default: 0), end: try a.int("end"))
        case "size": return .size
        case "cast":
            guard let t = try a.elementType("to") else { throw a.line.error("cast needs the attribute to=TYPE") }
            return .cast(to: t)
        case "cast_like": return .castLike
        case "constant_of_shape":
            guard let (v, c) = a.take("value") else { return .constantOfShape(value: .scalar(0)) }
            guard case .tensor(let t) = v else { throw a.wrong("value", c, "a tensor (f32:[0.0])") }
            return .constantOfShape(value: t)
        case "identity": return .identity
        case "dropout": return .dropout
        case "pad": return .pad(mode: try a.choice("mode", default: PadMode.constant))
        case "resize":
            var axes: [Int]?
            if let x = try a.ints("axes") { axes = x }
            return .resize(ResizeAttributes(
                mode: try a.choice("mode", default: ResizeAttributes.Mode.nearest),
                coordinateTransformation: try a.choice("coordinates", default: ResizeAttributes.CoordinateTransformation.halfPixel),
                nearestMode: try a.choice("nearest", default: ResizeAttributes.NearestMode.roundPreferFloor),
                excludeOutside: try a.flag("exclude_outside"), extrapolationValue: try a.float("extrapolation", default: 0),
                axes: axes, keepAspectRatioPolicy: try a.choice("keep_aspect_ratio", default: ResizeAttributes.AspectRatioPolicy.stretch)))
        case "softmax": return .softmax(axis: try a.int("axis", default: -1), legacy: try a.flag("legacy"))
        case "log_softmax": return .logSoftmax(axis: try a.int("axis", default: -1), legacy: try a.flag("legacy"))
        case "expand": return .expand
        case "range": return .range
        case "where": return .where
        case "layer_norm": return .layerNormalization(axis: try a.int("axis", default: -1), epsilon: try a.float("epsilon", default: 1e-5))
        case "instance_norm": return .instanceNormalization(epsilon: try a.float("epsilon", default: 1e-5))
        case "depth_to_space": return .depthToSpace(blockSize: try a.requiredInt("blocksize", name), crd: try crd(&a))
        case "space_to_depth": return .spaceToDepth(blockSize: try a.requiredInt("blocksize", name), crd: try crd(&a))
        case "tile": return .tile
        case "arg_max", "arg_min":
            return .argReduce(ArgReduceAttributes(largest: name == "arg_max", axis: try a.int("axis", default: 0),
                                                  keepDims: try a.bool("keepdims", default: true), selectLastIndex: try a.flag("select_last_index")))
        case "gather_elements": return .gatherElements(axis: try a.int("axis", default: 0))
        case "top_k": return .topK(TopKAttributes(axis: try a.int("axis", default: -1), largest: !(try a.flag("smallest"))))
        case "quantize_linear":
            return .quantizeLinear(axis: try a.int("axis", default: 1), outputType: try a.elementType("to") ?? .u8)
        case "dequantize_linear": return .dequantizeLinear(axis: try a.int("axis", default: 1))
        case "layout_convert": return .layoutConvert
        case "unsupported":
            guard let (v, c) = a.take("reason") else { return .unsupported(reason: "") }
            guard case .string(let r) = v else { throw a.wrong("reason", c, "a quoted string") }
            return .unsupported(reason: r)
        default: break
        }
        if name == "elementwise" || name.hasPrefix("elementwise_reduce_") {
            guard let (v, c) = a.take("steps") else { throw a.line.error("\(name) needs the attribute steps=[...]") }
            guard case .steps(let steps) = v, !steps.isEmpty else { throw a.wrong("steps", c, "a non-empty list of steps") }
            let kinds = reduceOps.keys.filter { (try? a.flag("reduce_\($0)")) == true }
            var reduction: ElementwiseGroup.Reduction?
            if name == "elementwise" {
                guard kinds.isEmpty else { throw a.line.error("elementwise has no reduction (elementwise_reduce_KIND has)") }
            } else {
                let kind = String(name.dropFirst("elementwise_reduce_".count))
                guard let r = reduceOps[kind] else { throw line.error("unknown reduction '\(kind)'", at: column) }
                guard kinds.allSatisfy({ $0 == kind }) else { throw a.line.error("\(name): the reduction flag is not reduce_\(kind)") }
                guard let axes = try a.ints("axes") else { throw a.line.error("\(name) needs the attribute axes=[...]") }
                reduction = ElementwiseGroup.Reduction(kind: r, axes: axes, keepDims: try a.bool("keepdims", default: true))
            }
            return .elementwiseGroup(ElementwiseGroup(steps: steps, reduction: reduction))
        }
        if name.hasPrefix("quantized_") {
            // The inner op's attributes, then the quantizations of its inputs and of the result.
            let innerName = String(name.dropFirst("quantized_".count))
            var innerAttributes = a
            innerAttributes.values["inputs"] = nil
            innerAttributes.values["output"] = nil
            innerAttributes.order.removeAll { $0 == "inputs" || $0 == "output" }
            let inner = try op(innerName, &innerAttributes, line: line, column: column)
            a.used.formUnion(innerAttributes.used)
            guard let (v, c) = a.take("inputs") else { throw a.line.error("\(name) needs the attribute inputs=[...]") }
            guard case .quantizations(let inputs) = v else { throw a.wrong("inputs", c, "a list of quantizations (f32 for none)") }
            return .quantized(QuantizedOpAttributes(op: inner, inputs: inputs, output: try a.requiredQuantization("output", name)))
        }
        throw line.error("unknown op '\(name)'", at: column)
    }
}

private extension String {
    func trimmingTrailingSpaces() -> String {
        var s = Substring(self)
        while let c = s.last, c == " " || c == "\t" { s = s.dropLast() }
        return String(s)
    }
}
