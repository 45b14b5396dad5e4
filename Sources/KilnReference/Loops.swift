import Foundation
import KilnIR

/// Spatial geometry padded to three axes (D, H, W) so that 1-D, 2-D and 3-D share one loop nest.
struct Geometry3 {
    var inp: [Int], out: [Int], k: [Int], s: [Int], d: [Int], p: [Int]
    init(_ g: WindowGeometry) {
        let pad = 3 - g.input.count
        func ext(_ a: [Int], _ v: Int) -> [Int] { [Int](repeating: v, count: pad) + a }
        inp = ext(g.input, 1); out = ext(g.output, 1); k = ext(g.kernel, 1)
        s = ext(g.strides, 1); d = ext(g.dilations, 1); p = ext(g.padsBegin, 0)
    }
    var inSize: Int { inp[0] * inp[1] * inp[2] }
    var outSize: Int { out[0] * out[1] * out[2] }
    var kSize: Int { k[0] * k[1] * k[2] }
}

/// Runs `body(i)` for i in 0..<n on all cores.
func parallelFor(_ n: Int, _ body: (Int) -> Void) {
    if n <= 1 { for i in 0..<n { body(i) }; return }
    DispatchQueue.concurrentPerform(iterations: n, execute: body)
}
