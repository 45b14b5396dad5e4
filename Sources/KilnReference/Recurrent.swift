import Foundation
import KilnIR

extension NodeEvaluation {
    /// The reference of the Recurrent family's ops (`OpFamily.recurrent`).
    func evaluateRecurrent() throws -> [Tensor] {
        guard case .recurrent(let a) = node.op else { preconditionFailure("\(node.op.name) is not of the recurrent family") }
        let r = recurrent(a, x: x(0), w: x(1), r: x(2), b: opt(3), lens: opt(4), h0: opt(5), c0: opt(6), p: opt(7))
        return Array([r.y, r.yh, r.yc].prefix(node.outputs.count))
    }
}

/// ONNX RNN, GRU and LSTM by their definitions (see `RecurrentAttributes`), each direction over
/// each batch entry's steps (its sequence_lens, or the whole sequence), sums in double precision;
/// the activations' inputs clipped to [−clip, clip].
func recurrent(_ a: RecurrentAttributes, x: Tensor, w: Tensor, r: Tensor, b: Tensor?, lens: Tensor?, h0: Tensor?, c0: Tensor?,
               p: Tensor?) -> (y: Tensor, yh: Tensor, yc: Tensor) {
    let (s, n, inputSize) = a.batchMajor ? (x.shape[1], x.shape[0], x.shape[2]) : (x.shape[0], x.shape[1], x.shape[2])
    let d = a.direction.count, g = a.kind.gates, h = a.hiddenSize, fs = a.kind.functions
    let xs = x.floats, ws = w.floats, rs = r.floats, bs = b?.floats, ps = p?.floats
    var y = [Float](repeating: 0, count: s * d * n * h)
    var yh = [Float](repeating: 0, count: d * n * h), yc = yh
    func xAt(_ t: Int, _ bi: Int) -> Int { (a.batchMajor ? bi * s + t : t * n + bi) * inputSize }
    func yAt(_ t: Int, _ dir: Int, _ bi: Int) -> Int { a.batchMajor ? ((bi * s + t) * d + dir) * h : ((t * d + dir) * n + bi) * h }
    func stateAt(_ dir: Int, _ bi: Int) -> Int { (a.batchMajor ? bi * d + dir : dir * n + bi) * h }
    func clipped(_ v: Double) -> Float { Float(a.clip.map { min(max(v, -Double($0)), Double($0)) } ?? v) }
    for dir in 0..<d {
        let reverse = a.direction == .reverse || dir == 1
        let acts = Array(a.activations[(dir * fs)..<((dir + 1) * fs)])
        let f = acts[0], gAct = fs > 1 ? acts[1] : acts[0], hAct = fs > 2 ? acts[2] : acts[0]
        let wd = dir * g * h * inputSize, rd = dir * g * h * h, bd = dir * 2 * g * h
        /// Row `row` of W·x + R·hPrev (+ the biases when `bias`), in double precision.
        func product(_ row: Int, _ xo: Int, _ hPrev: [Float], bias: Bool = true, recurrent: Bool = true, input: Bool = true) -> Double {
            var acc = 0.0
            if input { for i in 0..<inputSize { acc += Double(xs[xo + i]) * Double(ws[wd + row * inputSize + i]) } }
            if recurrent { for k in 0..<h { acc += Double(hPrev[k]) * Double(rs[rd + row * h + k]) } }
            if bias, let bs { acc += Double(bs[bd + row]) + Double(bs[bd + g * h + row]) }
            return acc
        }
        for bi in 0..<n {
            let len = lens.map { max(0, min(s, Int($0.ints[bi]))) } ?? s
            let so = stateAt(dir, bi)
            var hPrev = (0..<h).map { h0?.floats[so + $0] ?? 0 }
            var cPrev = (0..<h).map { c0?.floats[so + $0] ?? 0 }
            for step in 0..<len {
                let t = reverse ? len - 1 - step : step
                let xo = xAt(t, bi)
                var hNew = [Float](repeating: 0, count: h)
                switch a.kind {
                case .rnn:
                    for j in 0..<h { hNew[j] = f.apply(clipped(product(j, xo, hPrev))) }
                case .gru:
                    let z = (0..<h).map { f.apply(clipped(product($0, xo, hPrev))) }
                    let rg = (0..<h).map { f.apply(clipped(product(h + $0, xo, hPrev))) }
                    let reset = (0..<h).map { rg[$0] * hPrev[$0] }
                    for j in 0..<h {
                        let row = 2 * h + j
                        var pre = product(row, xo, hPrev, bias: false, recurrent: false) + Double(bs?[bd + row] ?? 0)
                        if a.linearBeforeReset {
                            pre += Double(rg[j]) * (product(row, xo, hPrev, bias: false, input: false) + Double(bs?[bd + g * h + row] ?? 0))
                        } else {
                            pre += product(row, xo, reset, bias: false, input: false) + Double(bs?[bd + g * h + row] ?? 0)
                        }
                        hNew[j] = (1 - z[j]) * gAct.apply(clipped(pre)) + z[j] * hPrev[j]
                    }
                case .lstm:
                    var cNew = [Float](repeating: 0, count: h)
                    for j in 0..<h {
                        let peep = { (k: Int) -> Double in Double(ps?[dir * 3 * h + k * h + j] ?? 0) }
                        let i = f.apply(clipped(product(j, xo, hPrev) + peep(0) * Double(cPrev[j])))
                        let fg = a.inputForget ? 1 - i : f.apply(clipped(product(2 * h + j, xo, hPrev) + peep(2) * Double(cPrev[j])))
                        let c = gAct.apply(clipped(product(3 * h + j, xo, hPrev)))
                        cNew[j] = fg * cPrev[j] + i * c
                        let o = f.apply(clipped(product(h + j, xo, hPrev) + peep(1) * Double(cNew[j])))
                        hNew[j] = o * hAct.apply(cNew[j])
                    }
                    cPrev = cNew
                }
                hPrev = hNew
                let yo = yAt(t, dir, bi)
                for j in 0..<h { y[yo + j] = hNew[j] }
            }
            // An entry of no steps has zero states (as ONNX Runtime gives), not its initial ones.
            for j in 0..<h where len > 0 {
                yh[so + j] = hPrev[j]
                yc[so + j] = cPrev[j]
            }
        }
    }
    let state = a.batchMajor ? [n, d, h] : [d, n, h]
    return (Tensor(.f32, shape: a.batchMajor ? [n, s, d, h] : [s, d, n, h], floats: y),
            Tensor(.f32, shape: state, floats: yh), Tensor(.f32, shape: state, floats: yc))
}
