/// One dimension of a tensor: a known size, or a name that the user pins with `--input-shape`.
public enum Dim: Hashable, Sendable, CustomStringConvertible {
    case fixed(Int)
    case symbolic(String)

    public var value: Int? {
        if case .fixed(let v) = self { return v }
        return nil
    }

    public var description: String {
        switch self {
        case .fixed(let v): return String(v)
        case .symbolic(let s): return s.isEmpty ? "?" : s
        }
    }
}

/// Element type and shape of a value.
public struct TensorType: Hashable, Sendable, CustomStringConvertible {
    public var elementType: ElementType
    public var dims: [Dim]

    public init(_ elementType: ElementType, dims: [Dim]) {
        self.elementType = elementType
        self.dims = dims
    }

    public init(_ elementType: ElementType, _ shape: [Int]) {
        self.elementType = elementType
        self.dims = shape.map { .fixed($0) }
    }

    public var rank: Int { dims.count }

    /// The shape when every dimension is known.
    public var shape: [Int]? {
        var out: [Int] = []
        out.reserveCapacity(dims.count)
        for d in dims {
            guard let v = d.value else { return nil }
            out.append(v)
        }
        return out
    }

    public var isStatic: Bool { shape != nil }

    public var elementCount: Int? { shape.map(shapeProduct) }

    /// Bytes of the tensor, saturating at Int.max (a shape read from a file can be absurd).
    public var byteSize: Int? {
        elementCount.map {
            let (r, o) = $0.multipliedReportingOverflow(by: elementType.byteSize)
            return o ? Int.max : r
        }
    }

    public var description: String {
        "\(elementType)[\(dims.map(\.description).joined(separator: "x"))]"
    }
}

/// Shape arithmetic on sizes read from a file, which can be absurd: a result that overflows
/// saturates (Int.max or Int.min) instead of trapping, and shape inference rejects the tensor.
@inline(__always) public func satMul(_ a: Int, _ b: Int) -> Int {
    let (r, o) = a.multipliedReportingOverflow(by: b)
    return o ? ((a < 0) != (b < 0) ? Int.min : Int.max) : r
}
@inline(__always) public func satAdd(_ a: Int, _ b: Int) -> Int {
    let (r, o) = a.addingReportingOverflow(b)
    return o ? (b > 0 ? Int.max : Int.min) : r
}
@inline(__always) public func satSub(_ a: Int, _ b: Int) -> Int {
    let (r, o) = a.subtractingReportingOverflow(b)
    return o ? (b < 0 ? Int.max : Int.min) : r
}
/// A float size as an Int, saturating (NaN gives 0).
public func saturatingInt<F: BinaryFloatingPoint>(_ x: F) -> Int {
    guard !x.isNaN else { return 0 }
    if x >= F(Int.max) { return Int.max }
    if x <= F(Int.min) { return Int.min }
    return Int(x)
}

/// Product of dimensions, saturating at Int.max instead of trapping on overflow.
public func shapeProduct(_ shape: [Int]) -> Int {
    var p = 1
    for d in shape {
        let (r, o) = p.multipliedReportingOverflow(by: d)
        if o { return Int.max }
        p = r
    }
    return p
}

/// Shape as text, e.g. `1x3x224x224` (a scalar is `scalar`).
public func shapeString(_ shape: [Int]) -> String {
    shape.isEmpty ? "scalar" : shape.map(String.init).joined(separator: "x")
}
