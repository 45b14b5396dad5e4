import KilnIR

/// The numbers of the C ABI of generated libraries, defined once: the ABI version, the status
/// codes and the element types (`ElementType`'s raw values). The model header (`HeaderEmitter`),
/// the pkg-config and CMake version files, and the generated texts below are written from them;
/// tests check each generated text against its committed copy (KILN_UPDATE_SNAPSHOTS=1 rewrites
/// them), and the consumer tests check the compiled header against model.hpp and the Python module.
public enum ABI {
    /// Bumped when the API changes incompatibly.
    public static let version = 1

    /// The status codes: fixed numbers, documented in every header.
    public static let statusCodes: [(name: String, value: Int, meaning: String)] = [
        ("OK", 0, "success"),
        ("ERROR_NULL_POINTER", 1, "a required pointer argument is NULL"),
        ("ERROR_INVALID_ARGUMENT", 2, "an argument is out of range (a count, an index, a thread number)"),
        ("ERROR_SIZE_MISMATCH", 3, "a buffer's byte size differs from the tensor's"),
        ("ERROR_OUT_OF_MEMORY", 4, "memory could not be allocated"),
        ("ERROR_UNSUPPORTED_CPU", 5, "this CPU lacks the instruction set the library was built for"),
        ("ERROR_BACKEND", 6, "oneDNN failed (see the last-error string)"),
        ("ERROR_INTERNAL", 7, "an unexpected failure inside the library (see the last-error string)"),
    ]

    /// A status code's name without its ERROR_ prefix ("NULL_POINTER").
    static func shortName(_ name: String) -> String { name.hasPrefix("ERROR_") ? String(name.dropFirst(6)) : name }

    /// The text of include/kiln/abi.hpp: the numbers for C++ (model.hpp includes it).
    public static func cppHeader() -> String {
        var s = """
        // Kiln's C ABI for C++: the numbers every generated NAME.h also defines. Generated from
        // Sources/KilnTarget/ABI.swift — do not edit: change the Swift and regenerate with
        // `KILN_UPDATE_SNAPSHOTS=1 swift test --filter abiTexts`.
        #pragma once

        namespace kiln {

        // The ABI version (NAME_ABI_VERSION, NAME_abi_version()).
        constexpr int kABIVersion = \(version);

        // The ABI's element types (NAME_element_type).
        enum class ElementType : int {

        """
        s += ElementType.allCases.map { "    \($0 == .bool ? "boolean" : $0.description) = \($0.rawValue)," }.joined(separator: "\n") + "\n};\n\n"
        s += "inline const char* element_type_name(int t) {\n    switch (t) {\n"
        for t in ElementType.allCases { s += "    case \(t.rawValue): return \"\(t)\";\n" }
        s += "    default: return \"unknown\";\n    }\n}\n\n"
        s += "// The ABI's status codes (NAME_status; later versions may add codes).\nenum class Status : int {\n"
        for c in statusCodes { s += "    \(shortName(c.name).lowercased()) = \(c.value),  // \(c.meaning)\n" }
        s += "};\n\n}  // namespace kiln\n"
        return s
    }

    /// The lines of samples/python/kiln_runtime.py between its "# BEGIN ABI" and "# END ABI" markers.
    public static func pythonBlock() -> String {
        var s = "# The C ABI version this module speaks (the header's NAME_ABI_VERSION).\nABI_VERSION = \(version)\n"
        s += "# NAME_element_type and NAME_status: the numbers are fixed by the ABI.\n"
        s += "_TYPE_NAMES = {" + ElementType.allCases.map { "\($0.rawValue): \"\($0)\"" }.joined(separator: ", ") + "}\n"
        s += "_STATUS_NAMES = {" + statusCodes.map { "\($0.value): \"\(shortName($0.name))\"" }.joined(separator: ", ") + "}\n"
        return s
    }

    /// The status-code table of docs/c-api.md, between its "<!-- BEGIN status codes -->" and
    /// "<!-- END status codes -->" markers.
    public static func docsStatusTable() -> String {
        "| Code | Name | Meaning |\n|---:|---|---|\n"
            + statusCodes.map { "| \($0.value) | `NAME_\($0.name)` | \($0.meaning) |\n" }.joined()
    }
}
