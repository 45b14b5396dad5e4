/// The eight element types of Kiln's IR. The raw values are fixed: generated headers use them
/// as the element-type enum, so they never change once released.
public enum ElementType: Int, CaseIterable, Sendable, CustomStringConvertible {
    case f32 = 1
    case f16 = 2
    case bf16 = 3
    case s8 = 4
    case u8 = 5
    case s32 = 6
    case s64 = 7
    case bool = 8

    /// Bytes per element.
    public var byteSize: Int {
        switch self {
        case .f32, .s32: return 4
        case .f16, .bf16: return 2
        case .s8, .u8, .bool: return 1
        case .s64: return 8
        }
    }

    /// Floating-point types are held as `Float` in a `Tensor`; the others as `Int64`.
    public var isFloat: Bool {
        switch self {
        case .f32, .f16, .bf16: return true
        default: return false
        }
    }

    public var isInteger: Bool { !isFloat && self != .bool }

    public var isSigned: Bool {
        switch self {
        case .u8, .bool: return false
        default: return true
        }
    }

    /// Range of an integer type (bool: 0...1).
    public var intRange: ClosedRange<Int64> {
        switch self {
        case .s8: return -128...127
        case .u8: return 0...255
        case .s32: return Int64(Int32.min)...Int64(Int32.max)
        case .s64: return Int64.min...Int64.max
        case .bool: return 0...1
        default: return Int64.min...Int64.max
        }
    }

    public var description: String {
        switch self {
        case .f32: return "f32"
        case .f16: return "f16"
        case .bf16: return "bf16"
        case .s8: return "s8"
        case .u8: return "u8"
        case .s32: return "s32"
        case .s64: return "s64"
        case .bool: return "bool"
        }
    }

    /// Rounds a value to the precision of a floating-point element type (f32: unchanged).
    @inline(__always)
    public func roundFloat(_ x: Float) -> Float {
        switch self {
        case .f16: return Float(Float16(x))
        case .bf16: return bfloat16Round(x)
        default: return x
        }
    }

    /// Wraps an integer to this type's width (two's complement), as C casts do.
    @inline(__always)
    public func wrap(_ x: Int64) -> Int64 {
        switch self {
        case .s8: return Int64(Int8(truncatingIfNeeded: x))
        case .u8: return Int64(UInt8(truncatingIfNeeded: x))
        case .s32: return Int64(Int32(truncatingIfNeeded: x))
        case .bool: return x != 0 ? 1 : 0
        default: return x
        }
    }
}

/// Round-to-nearest-even to bfloat16, returned as Float. NaN stays NaN.
@inline(__always)
public func bfloat16Round(_ x: Float) -> Float {
    if x.isNaN { return x }
    let bits = x.bitPattern
    let lsb = (bits >> 16) & 1
    let rounded = bits &+ 0x7FFF &+ lsb
    return Float(bitPattern: rounded & 0xFFFF_0000)
}

/// Converts a float to Int64 without trapping: NaN becomes 0, out-of-range values saturate,
/// and the fractional part is truncated toward zero.
@inline(__always)
public func saturatingInt64(_ x: Float) -> Int64 {
    if x.isNaN { return 0 }
    if x >= 9.2233715e18 { return Int64.max }
    if x <= -9.2233715e18 { return Int64.min }
    return Int64(x)
}

@inline(__always)
public func saturatingInt64(_ x: Double) -> Int64 {
    if x.isNaN { return 0 }
    if x >= 9.223372036854775e18 { return Int64.max }
    if x <= -9.223372036854775e18 { return Int64.min }
    return Int64(x)
}
