import KilnIR

extension NodeConversion {
    /// RNN, GRU and LSTM.
    mutating func convertRecurrent(_ importer: inout Importer) throws -> (Op, [ValueID?])? {
        let kind: RecurrentAttributes.Kind
        switch opType {
        case "RNN": kind = .rnn
        case "GRU": kind = .gru
        case "LSTM": kind = .lstm
        default: return nil
        }
        try need(3)
        let directionName = try a.string("direction", default: "forward")
        guard let direction = RecurrentAttributes.Direction(rawValue: directionName) else {
            throw Unsupported(reason: "direction '\(directionName)' (forward, reverse or bidirectional)")
        }
        var hidden = try a.int("hidden_size")
        if hidden == nil, let r = inputs[2], let dims = importer.graph.values[r].type.shape, dims.count == 3 { hidden = dims[2] }
        guard let hidden, hidden > 0 else { throw Unsupported(reason: "hidden_size is missing and R's shape is not known") }
        // activation_alpha and activation_beta go, in order, to the functions that take them (as
        // ONNX Runtime reads them); a function without values takes its ONNX op's defaults.
        var alphas = try a.floats("activation_alpha") ?? [], betas = try a.floats("activation_beta") ?? []
        func next(_ list: inout [Float], _ d: Float) -> Float { list.isEmpty ? d : list.removeFirst() }
        var activations: [PostOp]?
        if let names = try a.strings("activations") {
            activations = try names.map { name -> PostOp in
                switch name.lowercased() {
                case "sigmoid": return .sigmoid
                case "tanh": return .tanh
                case "relu": return .relu
                case "leakyrelu": return .leakyRelu(alpha: next(&alphas, 0.01))
                case "hardsigmoid":
                    let alpha = next(&alphas, 0.2)
                    return .hardSigmoid(alpha: alpha, beta: next(&betas, 0.5))
                default: throw Unsupported(reason: "activation \(name) is not supported (Sigmoid, Tanh, Relu, LeakyRelu and HardSigmoid are)")
                }
            }
            // One list for every direction when the node gives one direction's worth.
            if let acts = activations, acts.count == kind.functions, direction == .bidirectional { activations = acts + acts }
        }
        let clip = try a.float("clip")
        if let clip, !(clip > 0) { throw Unsupported(reason: "clip must be positive, not \(clip)") }
        a.ignore("output_sequence")
        let attrs = RecurrentAttributes(kind: kind, direction: direction, hiddenSize: hidden, activations: activations, clip: clip,
                                        batchMajor: try a.int("layout", default: 0) == 1,
                                        linearBeforeReset: kind == .gru ? try a.bool("linear_before_reset", default: false) : false,
                                        inputForget: kind == .lstm ? try a.bool("input_forget", default: false) : false)
        return (.recurrent(attrs), Array(inputs.prefix(kind == .lstm ? 8 : 6)))
    }
}
