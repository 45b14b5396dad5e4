/// A tensor value: constants in the IR, and the values the reference interpreter computes.
///
/// Floating-point types (f32, f16, bf16) are held as `Float` in `floats`, rounded to the
/// type's precision; integer types and bool are held as `Int64` in `ints`, wrapped to the
/// type's range. Exactly one of the two arrays is used.
public struct Tensor: Sendable, Equatable {
    public var elementType: ElementType
    public var shape: [Int]
    public var floats: [Float]
    public var ints: [Int64]

    public init(_ elementType: ElementType, shape: [Int], floats: [Float]) {
        precondition(elementType.isFloat)
        self.elementType = elementType
        self.shape = shape
        self.floats = floats
        self.ints = []
    }

    public init(_ elementType: ElementType, shape: [Int], ints: [Int64]) {
        precondition(!elementType.isFloat)
        self.elementType = elementType
        self.shape = shape
        self.floats = []
        self.ints = ints
    }

    /// A tensor of zeros.
    public init(zeros elementType: ElementType, shape: [Int]) {
        let n = shapeProduct(shape)
        if elementType.isFloat {
            self.init(elementType, shape: shape, floats: [Float](repeating: 0, count: n))
        } else {
            self.init(elementType, shape: shape, ints: [Int64](repeating: 0, count: n))
        }
    }

    public static func scalar(_ v: Float, _ t: ElementType = .f32) -> Tensor {
        Tensor(t, shape: [], floats: [t.roundFloat(v)])
    }

    public static func scalar(int v: Int64, _ t: ElementType = .s64) -> Tensor {
        Tensor(t, shape: [], ints: [t.wrap(v)])
    }

    public static func vector(ints: [Int64], _ t: ElementType = .s64) -> Tensor {
        Tensor(t, shape: [ints.count], ints: ints)
    }

    public var count: Int { elementType.isFloat ? floats.count : ints.count }
    public var rank: Int { shape.count }
    public var type: TensorType { TensorType(elementType, shape) }
    public var byteSize: Int { count * elementType.byteSize }

    /// Element `i` as a Double, whatever the type.
    @inline(__always)
    public func double(at i: Int) -> Double {
        elementType.isFloat ? Double(floats[i]) : Double(ints[i])
    }

    /// Element `i` as an Int64 (floats truncated toward zero, saturating).
    @inline(__always)
    public func int(at i: Int) -> Int64 {
        elementType.isFloat ? saturatingInt64(floats[i]) : ints[i]
    }

    /// All elements as Int64 (for shape-like tensors).
    public var int64Values: [Int64] {
        elementType.isFloat ? floats.map(saturatingInt64) : ints
    }

    /// All elements as Float.
    public var floatValues: [Float] {
        elementType.isFloat ? floats : ints.map { Float($0) }
    }

    /// Same data, new shape (element count must match).
    public func reshaped(_ newShape: [Int]) -> Tensor {
        var t = self
        t.shape = newShape
        return t
    }

    /// The raw little-endian bytes of the tensor in its element type.
    public func rawBytes() -> [UInt8] {
        [UInt8](unsafeUninitializedCapacity: byteSize) { buf, c in
            writeRawBytes(into: UnsafeMutableRawBufferPointer(buf))
            c = byteSize
        }
    }

    /// Writes the raw little-endian bytes (`byteSize` of them) at the start of `out`, with no
    /// copy in between (the weights of a large model are written once).
    public func writeRawBytes(into out: UnsafeMutableRawBufferPointer) {
        precondition(out.count >= byteSize)
        switch elementType {
        case .f32:
            floats.withUnsafeBytes { src in
                for i in 0..<floats.count { out.storeBytes(of: src.load(fromByteOffset: 4 * i, as: UInt32.self).littleEndian, toByteOffset: 4 * i, as: UInt32.self) }
            }
        case .f16:
            for (i, v) in floats.enumerated() { out.storeBytes(of: Float16(v).bitPattern.littleEndian, toByteOffset: 2 * i, as: UInt16.self) }
        case .bf16:
            for (i, v) in floats.enumerated() { out.storeBytes(of: UInt16(truncatingIfNeeded: bfloat16Round(v).bitPattern >> 16).littleEndian, toByteOffset: 2 * i, as: UInt16.self) }
        case .s8, .u8, .bool:
            for (i, v) in ints.enumerated() { out[i] = UInt8(truncatingIfNeeded: v) }
        case .s32:
            for (i, v) in ints.enumerated() { out.storeBytes(of: UInt32(truncatingIfNeeded: v).littleEndian, toByteOffset: 4 * i, as: UInt32.self) }
        case .s64:
            for (i, v) in ints.enumerated() { out.storeBytes(of: UInt64(bitPattern: v).littleEndian, toByteOffset: 8 * i, as: UInt64.self) }
        }
    }

    /// Builds a tensor from raw little-endian bytes. Returns nil when the byte count is wrong.
    public init?(_ elementType: ElementType, shape: [Int], rawBytes bytes: UnsafeRawBufferPointer) {
        let n = shapeProduct(shape)
        guard n != Int.max, bytes.count == n * elementType.byteSize else { return nil }
        self.elementType = elementType
        self.shape = shape
        self.floats = []
        self.ints = []
        switch elementType {
        case .f32:
            floats = [Float](unsafeUninitializedCapacity: n) { buf, c in
                for i in 0..<n { buf[i] = Float(bitPattern: UInt32(littleEndian: bytes.loadUnaligned(fromByteOffset: 4 * i, as: UInt32.self))) }
                c = n
            }
        case .f16:
            floats = (0..<n).map { i in
                Float(Float16(bitPattern: UInt16(littleEndian: bytes.loadUnaligned(fromByteOffset: 2 * i, as: UInt16.self))))
            }
        case .bf16:
            floats = (0..<n).map { i in
                Float(bitPattern: UInt32(UInt16(littleEndian: bytes.loadUnaligned(fromByteOffset: 2 * i, as: UInt16.self))) << 16)
            }
        case .s8: ints = (0..<n).map { Int64(Int8(bitPattern: bytes[$0])) }
        case .u8: ints = (0..<n).map { Int64(bytes[$0]) }
        case .bool: ints = (0..<n).map { bytes[$0] != 0 ? 1 : 0 }
        case .s32:
            ints = (0..<n).map { i in Int64(Int32(littleEndian: bytes.loadUnaligned(fromByteOffset: 4 * i, as: Int32.self))) }
        case .s64:
            ints = (0..<n).map { i in Int64(littleEndian: bytes.loadUnaligned(fromByteOffset: 8 * i, as: Int64.self)) }
        }
    }
}
