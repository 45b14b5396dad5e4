/// Shape arithmetic shared by shape inference, the reference interpreter and the code
/// generators: one definition of each op's geometry.

/// Normalizes a possibly negative axis against `rank` (`rank` itself allowed when `inclusive`).
public func normalizeAxis(_ axis: Int, rank: Int, inclusive: Bool = false, _ what: String) throws -> Int {
    let limit = inclusive ? rank + 1 : rank
    let a = axis < 0 ? axis + rank : axis
    guard a >= 0 && a < limit else {
        throw KilnError("\(what): axis \(axis) is out of range for rank \(rank)")
    }
    return a
}

/// Numpy broadcasting of several shapes.
public func broadcastShapes(_ shapes: [[Int]], _ what: String) throws -> [Int] {
    let rank = shapes.map(\.count).max() ?? 0
    var out = [Int](repeating: 1, count: rank)
    for s in shapes {
        let off = rank - s.count
        for (i, d) in s.enumerated() {
            let o = out[off + i]
            if o == d || d == 1 { continue }
            if o == 1 { out[off + i] = d; continue }
            throw KilnError("\(what): shapes \(shapes.map(shapeString).joined(separator: ", ")) do not broadcast")
        }
    }
    return out
}

/// Calls `body(k, index)` for every element of `shape` in C order.
public func forEachIndex(_ shape: [Int], _ body: (Int, [Int]) -> Void) {
    let n = shapeProduct(shape)
    guard n > 0 else { return }
    var idx = [Int](repeating: 0, count: shape.count)
    for k in 0..<n {
        body(k, idx)
        var d = shape.count - 1
        while d >= 0 {
            idx[d] += 1
            if idx[d] < shape[d] { break }
            idx[d] = 0
            d -= 1
        }
    }
}

/// Strides of a C-order shape.
public func contiguousStrides(_ shape: [Int]) -> [Int] {
    var s = [Int](repeating: 1, count: shape.count)
    var acc = 1
    for i in stride(from: shape.count - 1, through: 0, by: -1) {
        s[i] = acc
        acc *= shape[i]
    }
    return s
}

/// Resolved geometry of a convolution or pooling window over the spatial axes.
public struct WindowGeometry: Sendable, Equatable {
    public var kernel: [Int]
    public var strides: [Int]
    public var dilations: [Int]
    public var padsBegin: [Int]
    public var padsEnd: [Int]
    public var input: [Int]
    public var output: [Int]
}

/// Geometry of a convolution or pooling window. `ceilMode` applies to pooling only.
public func windowGeometry(input: [Int], kernel: [Int], strides: [Int]?, pads: [Int]?, dilations: [Int]?,
                           autoPad: AutoPad, ceilMode: Bool = false, _ what: String) throws -> WindowGeometry {
    let n = input.count
    guard kernel.count == n else { throw KilnError("\(what): kernel has \(kernel.count) spatial axes, input has \(n)") }
    let s = strides ?? [Int](repeating: 1, count: n)
    let d = dilations ?? [Int](repeating: 1, count: n)
    guard s.count == n, d.count == n else { throw KilnError("\(what): strides/dilations must have \(n) entries") }
    guard s.allSatisfy({ $0 > 0 }), d.allSatisfy({ $0 > 0 }), kernel.allSatisfy({ $0 > 0 }) else {
        throw KilnError("\(what): kernel, strides and dilations must be positive")
    }
    guard (kernel + s + d + (pads ?? []) + input).allSatisfy({ $0 <= 1 << 31 }) else {
        throw KilnError("\(what): a kernel size, stride, dilation, pad or input size over 2^31")
    }
    var pb = [Int](repeating: 0, count: n), pe = [Int](repeating: 0, count: n)
    var out = [Int](repeating: 0, count: n)
    for i in 0..<n {
        let ext = (kernel[i] - 1) * d[i] + 1
        switch autoPad {
        case .sameUpper, .sameLower:
            out[i] = (input[i] + s[i] - 1) / s[i]
            let total = max(0, (out[i] - 1) * s[i] + ext - input[i])
            let small = total / 2, big = total - small
            pb[i] = autoPad == .sameUpper ? small : big
            pe[i] = autoPad == .sameUpper ? big : small
        case .valid:
            out[i] = input[i] >= ext ? (input[i] - ext) / s[i] + 1 : 0
        case .notSet:
            if let p = pads {
                guard p.count == 2 * n else { throw KilnError("\(what): pads must have \(2 * n) entries, has \(p.count)") }
                guard p.allSatisfy({ $0 >= 0 }) else { throw KilnError("\(what): negative pads are not supported") }
                pb[i] = p[i]
                pe[i] = p[n + i]
            }
            let span = input[i] + pb[i] + pe[i] - ext
            guard span >= 0 else {
                throw KilnError("\(what): the window (\(ext)) is larger than the padded input (\(input[i] + pb[i] + pe[i]))")
            }
            if ceilMode {
                var o = (span + s[i] - 1) / s[i] + 1
                // The last window must start inside the input or its begin padding.
                if (o - 1) * s[i] >= input[i] + pb[i] { o -= 1 }
                out[i] = o
            } else {
                out[i] = span / s[i] + 1
            }
        }
    }
    return WindowGeometry(kernel: kernel, strides: s, dilations: d, padsBegin: pb, padsEnd: pe, input: input, output: out)
}

/// Geometry of a transposed convolution: `output` is the spatial output size.
public func convTransposeGeometry(input: [Int], kernel: [Int], attributes a: ConvTransposeAttributes,
                                  _ what: String) throws -> WindowGeometry {
    let n = input.count
    let c = a.conv
    let s = c.strides ?? [Int](repeating: 1, count: n)
    let d = c.dilations ?? [Int](repeating: 1, count: n)
    let op = a.outputPadding ?? [Int](repeating: 0, count: n)
    guard kernel.count == n, s.count == n, d.count == n, op.count == n else {
        throw KilnError("\(what): kernel, strides, dilations and output_padding must have \(n) entries")
    }
    guard (kernel + s + d + op + (c.pads ?? []) + input).allSatisfy({ $0 >= 0 && $0 <= 1 << 31 }) else {
        throw KilnError("\(what): a kernel size, stride, dilation, pad, output padding or input size negative or over 2^31")
    }
    var pb = [Int](repeating: 0, count: n), pe = [Int](repeating: 0, count: n), out = [Int](repeating: 0, count: n)
    var target: [Int]? = a.outputShape.map { $0.count > n ? Array($0.suffix(n)) : $0 }
    if target == nil, c.autoPad == .sameUpper || c.autoPad == .sameLower {
        target = (0..<n).map { satMul(input[$0], s[$0]) }
    }
    for i in 0..<n {
        let full = satAdd(satMul(s[i], input[i] - 1), op[i] + (kernel[i] - 1) * d[i] + 1)
        if let t = target {
            guard t.count == n else { throw KilnError("\(what): output_shape must have \(n) entries") }
            let total = max(0, satSub(full, t[i]))
            if c.autoPad == .sameUpper {
                pb[i] = total / 2; pe[i] = total - total / 2
            } else {
                pb[i] = total - total / 2; pe[i] = total / 2
            }
            out[i] = t[i]
        } else {
            if let p = c.pads, c.autoPad == .notSet {
                guard p.count == 2 * n else { throw KilnError("\(what): pads must have \(2 * n) entries") }
                pb[i] = p[i]; pe[i] = p[n + i]
            }
            out[i] = satSub(satSub(full, pb[i]), pe[i])
        }
        guard out[i] > 0 else { throw KilnError("\(what): output size \(out[i]) is not positive") }
    }
    return WindowGeometry(kernel: kernel, strides: s, dilations: d, padsBegin: pb, padsEnd: pe, input: input, output: out)
}

/// Per-axis begin, step and count of a Slice.
public struct SliceAxis: Sendable {
    public var start: Int
    public var step: Int
    public var count: Int

    public init(start: Int, step: Int, count: Int) {
        self.start = start
        self.step = step
        self.count = count
    }
}

/// Resolves Slice's operands against `shape` (ONNX clamping rules).
public func resolveSlice(shape: [Int], starts: [Int64], ends: [Int64], axes: [Int64]?, steps: [Int64]?,
                         _ what: String) throws -> [SliceAxis] {
    var result = shape.map { SliceAxis(start: 0, step: 1, count: $0) }
    guard starts.count == ends.count else { throw KilnError("\(what): starts and ends differ in length") }
    let ax = axes ?? (0..<Int64(starts.count)).map { $0 }
    guard ax.count == starts.count else { throw KilnError("\(what): axes and starts differ in length") }
    if let st = steps, st.count != starts.count { throw KilnError("\(what): steps and starts differ in length") }
    var seen = Set<Int>()
    for k in 0..<starts.count {
        let axis = try normalizeAxis(Int(clamping: ax[k]), rank: shape.count, what)
        guard seen.insert(axis).inserted else { throw KilnError("\(what): axis \(axis) repeats") }
        let dim = Int64(shape[axis])
        let step = steps?[k] ?? 1
        guard step != 0 else { throw KilnError("\(what): step 0") }
        var s = starts[k], e = ends[k]
        if s < 0 { s = s &+ dim }
        if e < 0 { e = e &+ dim }
        if step > 0 {
            s = min(max(s, 0), dim)
            e = min(max(e, 0), dim)
        } else {
            s = min(max(s, 0), dim - 1)
            e = min(max(e, -1), dim - 1)
        }
        // ceil(span / |step|) without overflow for any step (a file may hold Int64.min).
        let count: Int64
        if step > 0 { count = e > s ? (e - s - 1) / step + 1 : 0 }
        else { count = s > e ? (s - e - 1) / (step == .min ? .max : -step) + 1 : 0 }
        result[axis] = SliceAxis(start: Int(s), step: Int(step), count: Int(count))
    }
    return result
}

/// Resolves a Reshape target (0 copies the input dimension unless `allowZero`; one -1 is inferred).
public func resolveReshape(input: [Int], target: [Int64], allowZero: Bool, _ what: String) throws -> [Int] {
    var out: [Int] = []
    var inferAt: Int?
    for (i, t) in target.enumerated() {
        if t == -1 {
            guard inferAt == nil else { throw KilnError("\(what): more than one -1 in the target shape") }
            inferAt = i
            out.append(1)
        } else if t == 0 && !allowZero {
            guard i < input.count else { throw KilnError("\(what): 0 at position \(i) has no input dimension to copy") }
            out.append(input[i])
        } else {
            guard t >= 0, t < Int64(Int32.max) else { throw KilnError("\(what): invalid target dimension \(t)") }
            out.append(Int(t))
        }
    }
    let total = shapeProduct(input)
    if let k = inferAt {
        let rest = shapeProduct(out)
        guard rest > 0, total % rest == 0 else {
            throw KilnError("\(what): cannot reshape \(shapeString(input)) to \(target)")
        }
        out[k] = total / rest
    }
    guard shapeProduct(out) == total else {
        throw KilnError("\(what): cannot reshape \(shapeString(input)) (\(total) elements) to \(shapeString(out))")
    }
    return out
}

/// Sizes of each Split output.
public func resolveSplit(dim: Int, split: [Int64]?, outputs: Int, _ what: String) throws -> [Int] {
    if let s = split {
        guard s.count == outputs else { throw KilnError("\(what): split has \(s.count) entries for \(outputs) outputs") }
        guard s.allSatisfy({ $0 >= 0 }), s.reduce(0, &+) == Int64(dim) else {
            throw KilnError("\(what): split \(s) does not add up to \(dim)")
        }
        return s.map { Int($0) }
    }
    guard outputs > 0 else { throw KilnError("\(what): no outputs") }
    let chunk = (dim + outputs - 1) / outputs
    var sizes: [Int] = []
    var left = dim
    for _ in 0..<outputs {
        let c = min(chunk, left)
        sizes.append(c)
        left -= c
    }
    return sizes
}

/// Output shape of numpy-style matmul.
public func matMulShape(_ a: [Int], _ b: [Int], _ what: String) throws -> [Int] {
    guard !a.isEmpty, !b.isEmpty else { throw KilnError("\(what): matmul of a scalar") }
    let a2 = a.count == 1 ? [1, a[0]] : a
    let b2 = b.count == 1 ? [b[0], 1] : b
    guard a2[a2.count - 1] == b2[b2.count - 2] else {
        throw KilnError("\(what): cannot multiply \(shapeString(a)) by \(shapeString(b))")
    }
    let batch = try broadcastShapes([Array(a2.dropLast(2)), Array(b2.dropLast(2))], what)
    var out = batch + [a2[a2.count - 2], b2[b2.count - 1]]
    if b.count == 1 { out.removeLast() }
    if a.count == 1 { out.remove(at: out.count - (b.count == 1 ? 1 : 2)) }
    return out
}

/// Axes a Reduce op reduces (sorted, unique); empty means "none" only when noopWithEmptyAxes.
public func resolveReduceAxes(_ axes: [Int64]?, rank: Int, noopWithEmptyAxes: Bool, _ what: String) throws -> [Int] {
    guard let ax = axes, !ax.isEmpty else {
        return noopWithEmptyAxes ? [] : Array(0..<rank)
    }
    return Array(Set(try ax.map { try normalizeAxis(Int(clamping: $0), rank: rank, what) })).sorted()
}

/// Output size of Resize along every axis, and the per-axis scale used for coordinates.
public func resolveResize(input: [Int], scales: [Float]?, sizes: [Int64]?, attributes r: ResizeAttributes,
                          _ what: String) throws -> (output: [Int], scales: [Float]) {
    let rank = input.count
    let axes = try (r.axes ?? (0..<rank).map { $0 }).map { try normalizeAxis($0, rank: rank, what) }
    var outShape = input
    var scaleOut = [Float](repeating: 1, count: rank)
    if let sz = sizes, !sz.isEmpty {
        guard sz.count == axes.count else { throw KilnError("\(what): sizes has \(sz.count) entries for \(axes.count) axes") }
        if r.keepAspectRatioPolicy == .stretch {
            for (k, a) in axes.enumerated() {
                guard sz[k] > 0 else { throw KilnError("\(what): sizes must be positive") }
                outShape[a] = Int(sz[k])
                scaleOut[a] = Float(sz[k]) / Float(input[a])
            }
        } else {
            var scale: Float = r.keepAspectRatioPolicy == .notLarger ? .infinity : 0
            for (k, a) in axes.enumerated() {
                let s = Float(sz[k]) / Float(input[a])
                scale = r.keepAspectRatioPolicy == .notLarger ? min(scale, s) : max(scale, s)
            }
            for a in axes {
                scaleOut[a] = scale
                outShape[a] = saturatingInt((scale * Float(input[a])).rounded(.toNearestOrEven))
            }
        }
    } else if let sc = scales, !sc.isEmpty {
        guard sc.count == axes.count else { throw KilnError("\(what): scales has \(sc.count) entries for \(axes.count) axes") }
        for (k, a) in axes.enumerated() {
            guard sc[k] > 0, sc[k].isFinite else { throw KilnError("\(what): scales must be positive") }
            scaleOut[a] = sc[k]
            outShape[a] = saturatingInt((Float(input[a]) * sc[k]).rounded(.down))
        }
    } else {
        throw KilnError("\(what): needs scales or sizes")
    }
    return (outShape, scaleOut)
}

/// Source coordinate of output coordinate `x` along one axis, per Resize's transformation mode.
public func resizeSourceCoordinate(_ x: Int, scale: Float, inLen: Int, outLen: Int, mode: ResizeAttributes.CoordinateTransformation,
                            roiStart: Float, roiEnd: Float) -> Float {
    let xf = Float(x)
    // ONNX measures the resized length as scale × input length (not rounded) in these formulas.
    let outF = scale * Float(inLen)
    switch mode {
    case .halfPixel: return (xf + 0.5) / scale - 0.5
    case .halfPixelSymmetric:
        let adjustment = Float(outLen) / (scale * Float(inLen))
        let center = Float(inLen) / 2
        let offset = center * (1 - adjustment)
        return offset + (xf + 0.5) / scale - 0.5
    case .pytorchHalfPixel: return outF > 1 ? (xf + 0.5) / scale - 0.5 : 0
    case .alignCorners: return outF == 1 ? 0 : xf * Float(inLen - 1) / (outF - 1)
    case .asymmetric: return xf / scale
    case .tfCropAndResize:
        if outLen > 1 {
            return roiStart * Float(inLen - 1) + xf * (roiEnd - roiStart) * Float(inLen - 1) / (outF - 1)
        }
        return 0.5 * (roiStart + roiEnd) * Float(inLen - 1)
    }
}


/// Per output coordinate along one axis of a Resize: the nearest source index, the two linear
/// neighbours with the upper one's weight, and whether the coordinate falls outside the input
/// (tf_crop_and_resize extrapolates there).
public struct ResizeAxisTable: Sendable {
    public var nearest: [Int] = []
    public var lower: [Int] = []
    public var upper: [Int] = []
    public var weight: [Float] = []
    public var outside: [Bool] = []
}

extension ResizeAxisTable {
    /// Whether the axis is left as it is: each output reads its own index, with weight 0,
    /// nothing outside.
    public var isIdentity: Bool {
        nearest.indices.allSatisfy { nearest[$0] == $0 && lower[$0] == $0 && weight[$0] == 0 && !outside[$0] }
    }
}

/// The tables of a 4-D resize that changes only the two spatial axes (batch and channels stay,
/// no extrapolated coordinate), which Kiln runs with `kiln::resize_hw` in either layout; nil
/// for any other resize.
public func resizeSpatialTables(input: [Int], output: [Int], scales: [Float], roi: [Float]?,
                                attributes r: ResizeAttributes) -> (height: ResizeAxisTable, width: ResizeAxisTable)? {
    guard input.count == 4, output.count == 4, input[0] == output[0], input[1] == output[1] else { return nil }
    let t = resizeTables(input: input, output: output, scales: scales, roi: roi, attributes: r)
    guard t[0].isIdentity, t[1].isIdentity, !t[2].outside.contains(true), !t[3].outside.contains(true) else { return nil }
    return (t[2], t[3])
}

/// Whether Kiln's kernel of the two spatial axes (`kiln::resize_hw`, where `resizeSpatialTables`
/// gives tables) takes a tensor of element type `t`: f32, or 8-bit integers when nearest (a copy).
public func resizeSpatialKernelTakes(_ t: ElementType, _ r: ResizeAttributes) -> Bool {
    t == .f32 || (r.mode == .nearest && (t == .u8 || t == .s8))
}

public func resizeAxisTable(inLen: Int, outLen: Int, scale: Float, attributes r: ResizeAttributes,
                            roiStart: Float, roiEnd: Float) -> ResizeAxisTable {
    var t = ResizeAxisTable()
    for o in 0..<outLen {
        let c = resizeSourceCoordinate(o, scale: scale, inLen: inLen, outLen: outLen, mode: r.coordinateTransformation,
                                       roiStart: roiStart, roiEnd: roiEnd)
        t.outside.append(r.coordinateTransformation == .tfCropAndResize && (c < 0 || c > Float(inLen - 1)))
        var i: Float
        if inLen == outLen && scale == 1 && r.coordinateTransformation != .tfCropAndResize {
            i = Float(o)
        } else {
            switch r.nearestMode {
            case .roundPreferFloor: i = c == c.rounded(.down) + 0.5 ? c.rounded(.down) : c.rounded()
            case .roundPreferCeil: i = c == c.rounded(.down) + 0.5 ? c.rounded(.up) : c.rounded()
            case .floor: i = c.rounded(.down)
            case .ceil: i = c.rounded(.up)
            }
        }
        t.nearest.append(min(max(i.isFinite ? Int(i) : 0, 0), max(inLen - 1, 0)))
        let cc = min(max(c.isFinite ? c : 0, 0), Float(max(inLen - 1, 0)))
        let f = cc.rounded(.down)
        t.lower.append(Int(f))
        t.upper.append(min(Int(f) + 1, max(inLen - 1, 0)))
        t.weight.append(cc - f)
    }
    return t
}

/// Resize tables for every axis, with the ROI (given for all axes or for `axes`) applied.
public func resizeTables(input: [Int], output: [Int], scales: [Float], roi: [Float]?,
                         attributes r: ResizeAttributes) -> [ResizeAxisTable] {
    let rank = input.count
    var roiStart = [Float](repeating: 0, count: rank), roiEnd = [Float](repeating: 1, count: rank)
    if let roi, !roi.isEmpty {
        let axes = r.axes.map { $0.map { $0 < 0 ? $0 + rank : $0 } } ?? Array(0..<rank)
        if roi.count == 2 * axes.count {
            for (k, a) in axes.enumerated() where a >= 0 && a < rank { roiStart[a] = roi[k]; roiEnd[a] = roi[axes.count + k] }
        }
    }
    return (0..<rank).map {
        resizeAxisTable(inLen: input[$0], outLen: output[$0], scale: scales[$0], attributes: r,
                        roiStart: roiStart[$0], roiEnd: roiEnd[$0])
    }
}

/// A data movement that is one strided read: the (contiguous) output iterated as `shape`, row
/// major, reads the input at Σ index·`strides`. The code generator emits it as one strided copy.
public struct StridedRead: Sendable, Equatable {
    public var shape: [Int]
    public var strides: [Int]
}

/// DepthToSpace of an N×C×H×W input: the output iterated as N × C/b² × H × b × W × b.
public func depthToSpaceRead(input s: [Int], blockSize b: Int, crd: Bool) -> StridedRead {
    let (c, h, w) = (s[1], s[2], s[3])
    let c2 = c / (b * b), plane = h * w
    // DCR: input channel (i·b + j)·C' + c; CRD: c·b² + i·b + j.
    let (cs, iS, jS) = crd ? (b * b * plane, b * plane, plane) : (plane, b * c2 * plane, c2 * plane)
    return StridedRead(shape: [s[0], c2, h, b, w, b], strides: [c * plane, cs, w, iS, 1, jS])
}

/// DepthToSpace and SpaceToDepth of a channels-last (NHWC) input into a channels-last output:
/// the output iterated in its memory order, N × H × b × W × b × C/b² (DepthToSpace) or
/// N × H/b × W/b × (b × b × C, DCR | C × b × b, CRD) (SpaceToDepth). `s` is the logical NCHW shape.
public func depthToSpaceReadChannelsLast(input s: [Int], blockSize b: Int, crd: Bool) -> StridedRead {
    let (c, w) = (s[1], s[3])
    let c2 = c / (b * b)
    let (iS, jS, cS) = crd ? (b, 1, b * b) : (b * c2, c2, 1)
    return StridedRead(shape: [s[0], s[2], b, w, b, c2], strides: [s[2] * w * c, w * c, iS, c, jS, cS])
}

public func spaceToDepthReadChannelsLast(input s: [Int], blockSize b: Int, crd: Bool) -> StridedRead {
    let (c, h, w) = (s[1], s[2], s[3])
    if crd { return StridedRead(shape: [s[0], h / b, w / b, c, b, b], strides: [h * w * c, b * w * c, b * c, 1, w * c, c]) }
    return StridedRead(shape: [s[0], h / b, w / b, b, b, c], strides: [h * w * c, b * w * c, b * c, w * c, c, 1])
}

/// SpaceToDepth of an N×C×H×W input: the output iterated as N × b × b × C × H/b × W/b (DCR)
/// or N × C × b × b × H/b × W/b (CRD).
public func spaceToDepthRead(input s: [Int], blockSize b: Int, crd: Bool) -> StridedRead {
    let (c, h, w) = (s[1], s[2], s[3])
    if crd { return StridedRead(shape: [s[0], c, b, b, h / b, w / b], strides: [c * h * w, h * w, w, 1, b * w, b]) }
    return StridedRead(shape: [s[0], b, b, c, h / b, w / b], strides: [c * h * w, w, 1, h * w, b * w, b])
}

/// Tile: the output iterated as r0 × d0 × r1 × d1 × …, the repeat axes reading with stride 0.
public func tileRead(input s: [Int], repeats: [Int]) -> StridedRead {
    let st = contiguousStrides(s)
    var shape: [Int] = [], strides: [Int] = []
    for k in s.indices {
        shape += [repeats[k], s[k]]
        strides += [0, st[k]]
    }
    return StridedRead(shape: shape, strides: strides)
}
