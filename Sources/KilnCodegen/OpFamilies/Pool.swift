import KilnIR

extension ModelEmitter {
    /// The code of the Pool family's ops (`OpFamily.pool`).
    mutating func emitPool(_ n: Node, index: Int) throws {
        let (x0, y, _) = operands(n)
        switch n.op {
        case .maxPool(let p), .averagePool(let p):
            var average = false
            if case .averagePool = n.op { average = true }
            let s = shape(x0!)
            let geo = try windowGeometry(input: Array(s.dropFirst(2)), kernel: p.kernelShape, strides: p.strides, pads: p.pads,
                                         dilations: p.dilations, autoPad: p.autoPad, ceilMode: p.ceilMode, n.label)
            guard geo.input.count <= 3 else { throw KilnError("\(n.label): pooling over more than 3 spatial axes is not supported", unsupported: true) }
            if !average && layout(x0!) == .channelsLast && geo.input.count == 2 && geo.dilations == [1, 1]
                && [.f32, .u8, .s8].contains(elem(y)) && shapeProduct(shape(y)) > 0 {
                loopCount += 1
                run.open()
                run.line("static const kiln::Window g = \(window(geo));")
                run.line("kiln::max_pool_nhwc_2d(\(v(x0!)), \(v(y)), \(s[0]), \(s[1]), g);")
                run.close()
                break
            }
            if oneDNNPoolingApplies(n, p, average: average, geometry: geo) {
                emitOneDNNPooling(n, index: index, p, average: average, geometry: geo)
                break
            }
            if layout(x0!) == .blocked16 {
                throw KilnError("\(n.label): internal error: blocked-layout pooling that oneDNN does not take")
            }
            loopCount += 1
            run.open()
            run.line("static const kiln::Window g = \(window(geo));")
            if layout(x0!) == .channelsLast {
                run.line("kiln::pool_nhwc(\(v(x0!)), \(v(y)), \(s[0]), \(s[1]), g, \(average), \(p.countIncludePad));")
            } else {
                run.line("kiln::pool(\(v(x0!)), \(v(y)), \(s[0] * s[1]), g, \(average), \(p.countIncludePad));")
            }
            run.close()
        case .globalAveragePool, .globalMaxPool:
            var average = false
            if case .globalAveragePool = n.op { average = true }
            let s = shape(x0!)
            loopCount += 1
            if layout(x0!) == .channelsLast {
                run.line("kiln::global_pool_nhwc(\(v(x0!)), \(v(y)), \(s[0]), \(shapeProduct(Array(s.dropFirst(2)))), \(s[1]), \(average));")
            } else {
                run.line("kiln::global_pool(\(v(x0!)), \(v(y)), \(s[0] * s[1]), \(shapeProduct(Array(s.dropFirst(2)))), \(average));")
            }
        default: preconditionFailure("\(n.op.name) is not of the pool family")
        }
    }
}
