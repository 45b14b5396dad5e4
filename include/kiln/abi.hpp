// Kiln's C ABI for C++: the numbers every generated NAME.h also defines. Generated from
// Sources/KilnTarget/ABI.swift — do not edit: change the Swift and regenerate with
// `KILN_UPDATE_SNAPSHOTS=1 swift test --filter abiTexts`.
#pragma once

namespace kiln {

// The ABI version (NAME_ABI_VERSION, NAME_abi_version()).
constexpr int kABIVersion = 1;

// The ABI's element types (NAME_element_type).
enum class ElementType : int {
    f32 = 1,
    f16 = 2,
    bf16 = 3,
    s8 = 4,
    u8 = 5,
    s32 = 6,
    s64 = 7,
    boolean = 8,
};

inline const char* element_type_name(int t) {
    switch (t) {
    case 1: return "f32";
    case 2: return "f16";
    case 3: return "bf16";
    case 4: return "s8";
    case 5: return "u8";
    case 6: return "s32";
    case 7: return "s64";
    case 8: return "bool";
    default: return "unknown";
    }
}

// The ABI's status codes (NAME_status; later versions may add codes).
enum class Status : int {
    ok = 0,  // success
    null_pointer = 1,  // a required pointer argument is NULL
    invalid_argument = 2,  // an argument is out of range (a count, an index, a thread number)
    size_mismatch = 3,  // a buffer's byte size differs from the tensor's
    out_of_memory = 4,  // memory could not be allocated
    unsupported_cpu = 5,  // this CPU lacks the instruction set the library was built for
    backend = 6,  // oneDNN failed (see the last-error string)
    internal = 7,  // an unexpected failure inside the library (see the last-error string)
};

}  // namespace kiln
