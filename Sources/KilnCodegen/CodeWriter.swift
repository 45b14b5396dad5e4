import Foundation

/// Writes source text with scoped indentation: the one writer every emitter uses.
public struct CodeWriter {
    public private(set) var text = ""
    private var depth = 0

    public init() {}

    public mutating func line(_ s: String = "") {
        if s.isEmpty {
            text += "\n"
        } else {
            text += String(repeating: "    ", count: depth) + s + "\n"
        }
    }

    /// Opens a brace scope (`header {`, or a bare `{`); `close()` ends it.
    public mutating func open(_ header: String = "") {
        line(header.isEmpty ? "{" : header + " {")
        depth += 1
    }

    public mutating func close(_ text: String = "}") {
        depth -= 1
        line(text)
    }

    /// Ends one scope and opens the next on the same line: `} else {`.
    public mutating func reopen(_ text: String) {
        depth -= 1
        line(text)
        depth += 1
    }

    /// `header {` … `}` with the body indented.
    public mutating func block(_ header: String, close: String = "}", _ body: (inout CodeWriter) -> Void) {
        line(header + " {")
        depth += 1
        body(&self)
        depth -= 1
        line(close)
    }
}

/// A C identifier made from any name: letters, digits and '_', not starting with a digit.
public func cIdentifier(_ name: String) -> String {
    var s = String(name.map { c -> Character in c.isASCII && (c.isLetter || c.isNumber) ? c : "_" })
    if s.isEmpty || s.first!.isNumber { s = "_" + s }
    return s
}

/// A C string literal.
public func cString(_ s: String) -> String {
    var out = "\""
    for u in s.utf8 {
        switch u {
        case UInt8(ascii: "\""): out += "\\\""
        case UInt8(ascii: "\\"): out += "\\\\"
        case 0x20..<0x7F: out += String(UnicodeScalar(u))
        default: out += String(format: "\\%03o", u)
        }
    }
    return out + "\""
}

/// A name or path from the model, made safe inside a C or C++ comment (`/* */` or `//`): control
/// characters (a newline would end a `//` comment) become \xNN, and `*/`, `/*`, `??` (a trigraph
/// under -std=c99) and a backslash (a line splice at the end of a line) are broken apart, so that
/// no model can put code into the header or the generated source.
public func commentSafe(_ s: String) -> String {
    var out = ""
    for u in s.unicodeScalars {
        switch u.value {
        case 0..<0x20, 0x7F: out += String(format: "\\x%02X", u.value)
        case UInt32(UInt8(ascii: "\\")): out += "\\ "
        default: out.unicodeScalars.append(u)
        }
    }
    while out.contains("*/") || out.contains("/*") || out.contains("??") {
        out = out.replacingOccurrences(of: "*/", with: "* /").replacingOccurrences(of: "/*", with: "/ *")
            .replacingOccurrences(of: "??", with: "? ?")
    }
    return out
}
