/// The type rules of the DataMovement family (`OpFamily.dataMovement`).
extension TypeRule {
    func dataMovementTypes() throws -> [TensorType] {
        switch node.op {
        case .concat(let axis):
            let idx = (0..<inputs.count).filter(has)
            guard !idx.isEmpty else { throw KilnError("\(what): no inputs") }
            let t = try sameTypes(idx)
            let shapes = try idx.map { try shape($0) }
            let ax = try normalizeAxis(axis, rank: shapes[0].count, what)
            var out = shapes[0]
            out[ax] = 0
            for s in shapes {
                guard s.count == out.count, s.enumerated().allSatisfy({ $0.offset == ax || $0.element == out[$0.offset] }) else {
                    throw KilnError("\(what): shapes \(shapes.map(shapeString).joined(separator: ", ")) do not concatenate on axis \(axis)")
                }
                out[ax] = satAdd(out[ax], s[ax])
            }
            return [TensorType(t, out)]
        case .split(let axis):
            let x = try shape(0)
            let ax = try normalizeAxis(axis, rank: x.count, what)
            let sizes = try resolveSplit(dim: x[ax], split: try const(1, "split")?.int64Values, outputs: outCount, what)
            return sizes.map { var s = x; s[ax] = $0; return same(try! type(0), s) }
        case .slice:
            let x = try shape(0)
            guard let starts = try const(1, "starts"), let ends = try const(2, "ends") else { throw KilnError("\(what): starts and ends are required") }
            let r = try resolveSlice(shape: x, starts: starts.int64Values, ends: ends.int64Values,
                                     axes: try const(3, "axes")?.int64Values, steps: try const(4, "steps")?.int64Values, what)
            return [same(try type(0), r.map(\.count))]
        case .reshape(let allowZero):
            guard let target = try const(1, "the target shape") else { throw KilnError("\(what): shape is required") }
            return [same(try type(0), try resolveReshape(input: try shape(0), target: target.int64Values, allowZero: allowZero, what))]
        case .flatten(let axis):
            let x = try shape(0)
            let ax = try normalizeAxis(axis, rank: x.count, inclusive: true, what)
            return [same(try type(0), [shapeProduct(Array(x.prefix(ax))), shapeProduct(Array(x.dropFirst(ax)))])]
        case .transpose(let perm):
            let x = try shape(0)
            let p = perm ?? Array((0..<x.count).reversed())
            guard p.count == x.count, Set(p) == Set(0..<x.count) else { throw KilnError("\(what): perm \(p) is not a permutation of \(x.count) axes") }
            return [same(try type(0), p.map { x[$0] })]
        case .squeeze:
            let x = try shape(0)
            if let axes = try const(1, "axes")?.int64Values {
                let ax = Set(try axes.map { try normalizeAxis(Int(clamping: $0), rank: x.count, what) })
                for a in ax where x[a] != 1 { throw KilnError("\(what): cannot squeeze axis \(a) of size \(x[a])") }
                return [same(try type(0), x.enumerated().filter { !ax.contains($0.offset) }.map(\.element))]
            }
            return [same(try type(0), x.filter { $0 != 1 })]
        case .unsqueeze:
            let x = try shape(0)
            guard let axes = try const(1, "axes")?.int64Values else { throw KilnError("\(what): axes are required") }
            let rank = x.count + axes.count
            let ax = Set(try axes.map { try normalizeAxis(Int(clamping: $0), rank: rank, what) })
            guard ax.count == axes.count else { throw KilnError("\(what): repeated axes") }
            var out: [Int] = []
            var k = 0
            for i in 0..<rank {
                if ax.contains(i) { out.append(1) } else { out.append(x[k]); k += 1 }
            }
            return [same(try type(0), out)]
        case .gather(let axis):
            let x = try shape(0), idx = try shape(1)
            guard try type(1).elementType.isInteger else { throw KilnError("\(what): indices must be integers") }
            let ax = try normalizeAxis(axis, rank: x.count, what)
            return [same(try type(0), Array(x.prefix(ax)) + idx + Array(x.dropFirst(ax + 1)))]
        case .identity, .layoutConvert:
            return [same(try type(0), try shape(0))]
        case .dropout:
            let s = try shape(0)
            if has(2), let mode = try const(2, "training_mode"), mode.int(at: 0) != 0 {
                throw KilnError("\(what): training mode is not supported (inference only)", unsupported: true)
            }
            return [same(try type(0), s)] + (outCount > 1 ? [TensorType(.bool, s)] : [])
        case .pad:
            let x = try shape(0)
            guard let pads = try const(1, "pads")?.int64Values else { throw KilnError("\(what): pads are required") }
            let axes = try padAxes(try const(3, "axes")?.int64Values, rank: x.count, what)
            guard pads.count == 2 * axes.count else { throw KilnError("\(what): pads has \(pads.count) entries for \(axes.count) axes") }
            var out = x
            for (k, a) in axes.enumerated() {
                let d = satAdd(satAdd(x[a], Int(clamping: pads[k])), Int(clamping: pads[k + axes.count]))
                guard d >= 0 else { throw KilnError("\(what): padding makes axis \(a) negative") }
                out[a] = d
            }
            return [same(try type(0), out)]
        case .resize(let r):
            let x = try shape(0)
            if r.coordinateTransformation == .tfCropAndResize { _ = try const(1, "roi") }
            let scales = try const(2, "scales")?.floatValues
            let sizes = try const(3, "sizes")?.int64Values
            return [same(try type(0), try resolveResize(input: x, scales: scales, sizes: sizes, attributes: r, what).output)]
        case .expand:
            guard let target = try const(1, "the target shape")?.int64Values else { throw KilnError("\(what): shape is required") }
            guard target.allSatisfy({ $0 >= 0 && $0 < Int64(Int32.max) }) else { throw KilnError("\(what): invalid shape \(target)") }
            return [same(try type(0), try broadcastShapes([try shape(0), target.map { Int($0) }], what))]
        case .depthToSpace(let b, _):
            let x = try shape(0)
            guard x.count == 4, b > 0, b < 1 << 31, x[1] % (b * b) == 0 else {
                throw KilnError("\(what): needs a 4-D input whose channels (\(x.count == 4 ? x[1] : 0)) divide by blocksize² (\(b * b))")
            }
            return [same(try type(0), [x[0], x[1] / (b * b), satMul(x[2], b), satMul(x[3], b)])]
        case .spaceToDepth(let b, _):
            let x = try shape(0)
            guard x.count == 4, b > 0, b < 1 << 31, x[2] % b == 0, x[3] % b == 0 else {
                throw KilnError("\(what): needs a 4-D input whose height and width divide by blocksize (\(b))")
            }
            return [same(try type(0), [x[0], satMul(x[1], b * b), x[2] / b, x[3] / b])]
        case .tile:
            let x = try shape(0)
            guard let r = try const(1, "repeats")?.int64Values else { throw KilnError("\(what): repeats is required") }
            guard r.count == x.count, r.allSatisfy({ $0 >= 0 }) else {
                throw KilnError("\(what): repeats \(r) must have one non-negative entry per axis of \(shapeString(x))")
            }
            return [same(try type(0), zip(x, r).map { satMul($0, Int(clamping: $1)) })]
        case .gatherElements(let axis):
            let x = try shape(0), idx = try shape(1)
            guard try type(1).elementType.isInteger else { throw KilnError("\(what): indices must be integers") }
            guard x.count == idx.count else {
                throw KilnError("\(what): indices \(shapeString(idx)) must have the rank of data \(shapeString(x))")
            }
            _ = try normalizeAxis(axis, rank: x.count, what)
            return [same(try type(0), idx)]
        default: preconditionFailure("\(node.op.name) is not of the dataMovement family")
        }
    }
}
