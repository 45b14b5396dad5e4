import Foundation

/// The instruction set generated kernels are compiled for (`-march`). oneDNN picks its own
/// kernels for the CPU at run time whatever this says.
public enum TargetCPU: String, CaseIterable, Sendable {
    case native
    case x86_64_v3 = "x86-64-v3"
    case x86_64_v4 = "x86-64-v4"
    public var marchFlag: String { "-march=\(rawValue)" }

    /// Whether every CPU a library built for this target runs on has AVX-512 (the library
    /// refuses to start elsewhere): x86-64-v4, or native on a build machine that has it.
    public var guaranteesAVX512: Bool {
        switch self {
        case .x86_64_v4: return true
        case .x86_64_v3: return false
        case .native: return HostCPU.read().flags.contains("avx512f")
        }
    }
}

/// The machine's CPU as /proc/cpuinfo describes its first processor: the model name and the
/// feature flags, each a whole word ("avx512f" is not "avx512_fp16").
public struct HostCPU: Sendable, Equatable {
    public var model: String
    public var flags: Set<String>

    public init(model: String, flags: Set<String>) {
        self.model = model
        self.flags = flags
    }

    public static func read(path: String = "/proc/cpuinfo") -> HostCPU {
        parse((try? String(contentsOfFile: path, encoding: .utf8)) ?? "")
    }

    public static func parse(_ info: String) -> HostCPU {
        var cpu = HostCPU(model: "unknown CPU", flags: [])
        var sawModel = false, sawFlags = false
        for line in info.split(separator: "\n") {
            let parts = line.split(separator: ":", maxSplits: 1).map { $0.trimmingCharacters(in: .whitespaces) }
            guard parts.count == 2 else { continue }
            if parts[0] == "model name", !sawModel { cpu.model = parts[1]; sawModel = true }
            if parts[0] == "flags", !sawFlags { cpu.flags = Set(parts[1].split(separator: " ").map(String.init)); sawFlags = true }
        }
        return cpu
    }
}
