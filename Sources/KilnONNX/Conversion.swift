import KilnIR

/// One ONNX node being converted to a Kiln op: its op type at the resolved opset `version`, its
/// operands and its attributes. The converters of each op family (`Families/<Family>.swift`) read
/// and consume it; attribute forms of older opsets become constant operands there, so each Kiln op
/// has one form.
struct NodeConversion {
    let opType: String
    let version: Int
    let name: String
    /// How many outputs the node declares.
    let outputs: Int
    var inputs: [ValueID?]
    var a: Attributes

    func need(_ n: Int) throws {
        guard inputs.count >= n, !inputs.prefix(n).contains(where: { $0 == nil }) else {
            throw Unsupported(reason: "expects at least \(n) input\(n == 1 ? "" : "s")")
        }
    }

    func onlyFirstOutputUsed(_ what: String) throws {
        if outputs > 1 { throw Unsupported(reason: "only the first output is supported (\(what))") }
    }

    /// Turns an ints attribute of an older opset into a constant s64 operand at `position`.
    mutating func attributeAsInput(_ attr: String, at position: Int, _ importer: inout Importer) throws {
        guard let vals = try a.int64s(attr) else { return }
        let id = importer.constant("\(name)_\(attr)", .vector(ints: vals))
        while inputs.count < position { inputs.append(nil) }
        if inputs.count == position { inputs.append(id) } else { inputs[position] = id }
    }

    /// The operand `input` aligned to `x` from `axis` on, as the broadcasts of opsets before 7
    /// meant it: an `alignForBroadcast` node placed before this one.
    func aligned(_ x: ValueID?, _ input: ValueID?, axis: Int, valueName: String, _ importer: inout Importer) -> ValueID {
        let aligned = importer.graph.addValue(valueName, TensorType(.f32, dims: [.symbolic("?")]))
        importer.graph.nodes.append(Node(name: "\(name)_align", op: .alignForBroadcast(axis: axis), inputs: [x, input],
                                         outputs: [aligned], origin: NodeOrigin(opType: opType, version: version)))
        return aligned
    }
}

extension Importer {
    /// Converts one ONNX node (op type at its resolved `version`) to a Kiln op and its operands,
    /// through its family's converter.
    mutating func convert(_ opType: String, version: Int, inputs: [ValueID?], outputs: Int,
                          attrs: inout Attributes, name: String) throws -> (Op, [ValueID?]) {
        var c = NodeConversion(opType: opType, version: version, name: name, outputs: outputs, inputs: inputs, a: attrs)
        defer { attrs = c.a }
        let families: [(inout NodeConversion, inout Importer) throws -> (Op, [ValueID?])?] = [
            { try $0.convertConv(&$1) }, { try $0.convertPool(&$1) }, { try $0.convertElementwise(&$1) },
            { try $0.convertNormalize(&$1) }, { try $0.convertReduce(&$1) }, { try $0.convertDataMovement(&$1) },
            { try $0.convertMatMul(&$1) }, { try $0.convertQuantized(&$1) }, { try $0.convertShape(&$1) },
            { try $0.convertRecurrent(&$1) },
        ]
        for convert in families {
            if let converted = try convert(&c, &self) { return converted }
        }
        throw Unsupported(reason: "op \(opType) is not supported")
    }
}
