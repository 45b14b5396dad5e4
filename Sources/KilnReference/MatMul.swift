import Foundation
import KilnIR

extension NodeEvaluation {
    /// The reference of the MatMul family's ops (`OpFamily.matMul`).
    func evaluateMatMul() throws -> [Tensor] {
        switch node.op {
        case .gemm(let a):
            return [applyPostOps(a.postOps, gemm(x(0), x(1), opt(2), a, out: shape), addend: nil)]
        case .matMul(let a):
            var y = matMul(x(0), x(1), out: out)
            if let bias = opt(2) { y = try binary(.add, y, bias, out: out) }
            return [applyPostOps(a.postOps, y, addend: nil)]
        default: preconditionFailure("\(node.op.name) is not of the matMul family")
        }
    }
}

/// C[m][n] += sum_k A[m][k] * B[k][n] for row-major A (M×K, or K×M when transA) and B.
private func matmulKernel(_ a: UnsafePointer<Float>, _ b: UnsafePointer<Float>, _ c: UnsafeMutablePointer<Float>,
                          m: Int, n: Int, k: Int, transA: Bool, transB: Bool) {
    for i in 0..<m {
        let crow = c + i * n
        for kk in 0..<k {
            let av = transA ? a[kk * m + i] : a[i * k + kk]
            if av == 0 { continue }
            if transB {
                for j in 0..<n { crow[j] += av * b[j * k + kk] }
            } else {
                let brow = b + kk * n
                for j in 0..<n { crow[j] += av * brow[j] }
            }
        }
    }
}

func gemm(_ a: Tensor, _ b: Tensor, _ c: Tensor?, _ attrs: GemmAttributes, out shape: [Int]) -> Tensor {
    let m = shape[0], n = shape[1]
    let k = attrs.transA ? a.shape[0] : a.shape[1]
    let t = a.elementType
    if !t.isFloat {
        var r = [Int64](repeating: 0, count: m * n)
        for i in 0..<m { for j in 0..<n {
            var acc: Int64 = 0
            for kk in 0..<k {
                let av = attrs.transA ? a.ints[kk * m + i] : a.ints[i * k + kk]
                let bv = attrs.transB ? b.ints[j * k + kk] : b.ints[kk * n + j]
                acc = acc &+ av &* bv
            }
            r[i * n + j] = acc
        } }
        if let c { let ci = broadcastIndex(c.shape, to: shape); for i in 0..<r.count { r[i] = r[i] &+ c.ints[ci?[i] ?? i] } }
        return Tensor(t, shape: shape, ints: r.map(t.wrap))
    }
    var r = [Float](repeating: 0, count: m * n)
    a.floats.withUnsafeBufferPointer { pa in
        b.floats.withUnsafeBufferPointer { pb in
            r.withUnsafeMutableBufferPointer { pr in
                let base = pr.baseAddress!
                let rows = max(1, min(m, 64))
                let chunk = (m + rows - 1) / rows
                parallelFor(rows) { part in
                    let lo = part * chunk, hi = min(m, lo + chunk)
                    if lo >= hi { return }
                    let aStart = attrs.transA ? pa.baseAddress! + lo : pa.baseAddress! + lo * k
                    if attrs.transA {
                        // Column slice of a K×M matrix: handle element-wise.
                        for i in lo..<hi { for kk in 0..<k {
                            let av = pa[kk * m + i]
                            for j in 0..<n { base[i * n + j] += av * (attrs.transB ? pb[j * k + kk] : pb[kk * n + j]) }
                        } }
                    } else {
                        matmulKernel(aStart, pb.baseAddress!, base + lo * n, m: hi - lo, n: n, k: k, transA: false, transB: attrs.transB)
                    }
                }
            }
        }
    }
    for i in 0..<r.count { r[i] *= attrs.alpha }
    if let c, attrs.beta != 0 {
        let ci = broadcastIndex(c.shape, to: shape)
        for i in 0..<r.count { r[i] += attrs.beta * c.floats[ci?[i] ?? i] }
    }
    return Tensor(t, shape: shape, floats: r.map(t.roundFloat))
}

func matMul(_ a: Tensor, _ b: Tensor, out: TensorType) -> Tensor {
    let a2 = a.rank == 1 ? [1, a.shape[0]] : a.shape
    let b2 = b.rank == 1 ? [b.shape[0], 1] : b.shape
    let m = a2[a2.count - 2], k = a2[a2.count - 1], n = b2[b2.count - 1]
    let batch = try! broadcastShapes([Array(a2.dropLast(2)), Array(b2.dropLast(2))], "matmul")
    let nb = shapeProduct(batch)
    let ia = broadcastIndex(Array(a2.dropLast(2)), to: batch), ib = broadcastIndex(Array(b2.dropLast(2)), to: batch)
    let t = out.elementType
    let shape = out.shape!
    if !t.isFloat {
        var r = [Int64](repeating: 0, count: nb * m * n)
        for bi in 0..<nb {
            let ao = (ia?[bi] ?? bi) * m * k, bo = (ib?[bi] ?? bi) * k * n
            for i in 0..<m { for j in 0..<n {
                var acc: Int64 = 0
                for kk in 0..<k { acc = acc &+ a.ints[ao + i * k + kk] &* b.ints[bo + kk * n + j] }
                r[(bi * m + i) * n + j] = t.wrap(acc)
            } }
        }
        return Tensor(t, shape: shape, ints: r)
    }
    var r = [Float](repeating: 0, count: nb * m * n)
    a.floats.withUnsafeBufferPointer { pa in
        b.floats.withUnsafeBufferPointer { pb in
            r.withUnsafeMutableBufferPointer { pr in
                let base = pr.baseAddress!
                parallelFor(nb) { bi in
                    let ao = (ia?[bi] ?? bi) * m * k, bo = (ib?[bi] ?? bi) * k * n
                    matmulKernel(pa.baseAddress! + ao, pb.baseAddress! + bo, base + bi * m * n, m: m, n: n, k: k,
                                 transA: false, transB: false)
                }
            }
        }
    }
    return Tensor(t, shape: shape, floats: t == .f32 ? r : r.map(t.roundFloat))
}
