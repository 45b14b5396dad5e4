import KilnIR

extension ModelEmitter {
    /// The code of the Recurrent family's ops (`OpFamily.recurrent`): Kiln's loop
    /// (`kiln::recurrent_direction`), once per direction.
    mutating func emitRecurrent(_ n: Node, index: Int) throws {
        guard case .recurrent(let a) = n.op else { preconditionFailure("\(n.op.name) is not of the recurrent family") }
        let x = n.inputs[0]!, xs = shape(x)
        func operand(_ i: Int) -> String { i < n.inputs.count ? opt(n.inputs[i]) : "nullptr" }
        func output(_ i: Int) -> String { i < n.outputs.count ? v(n.outputs[i]) : "nullptr" }
        let (seq, batch, input) = a.batchMajor ? (xs[1], xs[0], xs[2]) : (xs[0], xs[1], xs[2])
        let fs = a.kind.functions
        loopCount += 1
        run.open()
        run.line("static const kiln::RecurrentShape s{\(seq), \(batch), \(input), \(a.hiddenSize), \(a.direction.count), \(a.batchMajor)};")
        for dir in 0..<a.direction.count {
            let acts = a.activations[(dir * fs)..<((dir + 1) * fs)].map { "[](float v) { return \(postOpExpression($0)); }" }
            let (f, g, h) = (acts[0], fs > 1 ? acts[1] : acts[0], fs > 2 ? acts[2] : acts[0])
            let reverse = a.direction == .reverse || dir == 1
            run.line("kiln::recurrent_direction<kiln::RecurrentKind::\(a.kind.rawValue)>(s, \(dir), \(reverse), \(v(x)), \(operand(1)), \(operand(2)), "
                     + "\(operand(3)), \(operand(4)), \(operand(5)), \(operand(6)), \(operand(7)), \(output(0)), \(output(1)), \(output(2)), "
                     + "\(floatLiteral(a.clip ?? 0)), \(a.linearBeforeReset), \(a.inputForget), \(f), \(g), \(h));")
        }
        run.close()
    }
}
