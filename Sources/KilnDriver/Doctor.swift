import Foundation
import KilnCodegen
import KilnToolchain
import KilnTarget

/// What `kiln doctor` and `kiln --version` report about the machine: each thing a compile needs,
/// found the way a compile finds it (the same compiler, search paths and headers), with the
/// command that fixes it when it is missing.
public struct Diagnosis: Sendable {
    public struct Check: Sendable {
        /// What is checked: "g++", "oneDNN headers", ...
        public var what: String
        /// What was found (a version, a path), or why not.
        public var found: String
        /// Whether a compile can proceed (false: `fix` says what to do). Informational lines
        /// (the CPU, free disk) are always ok.
        public var ok: Bool
        public var fix: String?
    }
    public var checks: [Check] = []
    public var healthy: Bool { checks.allSatisfy(\.ok) }

    public var text: String {
        checks.map { c in
            let mark = c.ok ? "ok     " : "MISSING"
            return "\(mark) \(c.what): \(c.found)" + (c.fix.map { "\n        fix: \($0)" } ?? "")
        }.joined(separator: "\n")
    }
}

/// The C ABI version of the libraries this Kiln writes (NAME_ABI_VERSION).
public var writtenABIVersion: Int { ABI.version }

/// The CPU's model name and the x86 features Kiln's kernels and oneDNN's care about.
public func cpuDescription() -> (model: String, features: [String]) {
    let cpu = HostCPU.read()
    let (model, flags) = (cpu.model, cpu.flags)
    let interesting = ["sse4_2", "avx", "avx2", "fma", "f16c", "avx512f", "avx512bw", "avx512vl", "avx512dq", "avx512_vnni",
                       "avx_vnni", "avx512_bf16", "avx512_fp16", "amx_tile", "amx_int8", "amx_bf16"]
    return (model, interesting.filter { flags.contains($0) })
}

/// Runs the checks. `compiler` defaults to `configuredCompiler()`.
public func diagnose(kilnVersion: String, compiler: String? = nil, outputDirectory: String = ".") -> Diagnosis {
    let cxx = compiler ?? configuredCompiler()
    let fm = FileManager.default
    var d = Diagnosis()
    let scratch = (NSTemporaryDirectory() as NSString).appendingPathComponent("kiln-doctor-\(getpid())")
    try? fm.createDirectory(atPath: scratch, withIntermediateDirectories: true)
    defer { try? fm.removeItem(atPath: scratch) }
    func tool(_ args: [String]) -> String? { try? KilnToolchain.run(cxx, args, in: scratch) }

    d.checks.append(.init(what: "kiln", found: "version \(kilnVersion), writes C ABI version \(ABI.version)", ok: true))
    let include = runtimeIncludeDirectory()
    let hasRuntime = fm.fileExists(atPath: (include as NSString).appendingPathComponent("kiln/runtime.hpp"))
    d.checks.append(.init(what: "runtime headers", found: hasRuntime ? include : "no kiln/runtime.hpp in \(include)", ok: hasRuntime,
                          fix: hasRuntime ? nil : "reinstall Kiln (scripts/install), or set KILN_INCLUDE_DIR to the folder holding kiln/runtime.hpp"))

    // The compiler, C++17 and OpenMP.
    let version = tool(["--version"])?.split(separator: "\n").first.map(String.init)
    d.checks.append(.init(what: "C++ compiler (\(cxx))", found: version ?? "not found or does not run", ok: version != nil,
                          fix: version == nil ? "apt-get install g++ (or set KILN_CXX to a g++ that runs)" : nil))
    guard version != nil else { return d }
    let probe = (scratch as NSString).appendingPathComponent("probe.cpp")
    func compiles(_ source: String, _ flags: [String]) -> Bool {
        guard (try? source.write(toFile: probe, atomically: true, encoding: .utf8)) != nil else { return false }
        return tool(flags + ["-c", probe, "-o", (scratch as NSString).appendingPathComponent("probe.o")]) != nil
    }
    let openmp = compiles("#include <omp.h>\nint f() { return omp_get_max_threads(); }\n", ["-std=c++17", "-fopenmp"])
    let gomp = tool(["-print-file-name=libgomp.so"])?.trimmingCharacters(in: .whitespacesAndNewlines) ?? ""
    let gompFound = openmp && gomp.hasPrefix("/") && fm.fileExists(atPath: gomp)
    d.checks.append(.init(what: "OpenMP (GNU libgomp)", found: gompFound ? gomp : "\(cxx) -fopenmp does not compile or finds no libgomp.so", ok: gompFound,
                          fix: gompFound ? nil : "apt-get install g++ libgomp1"))

    // oneDNN: the headers as the compiler finds them, their version, and the library.
    let versionProbe = """
        #include <oneapi/dnnl/dnnl.hpp>
        #include <oneapi/dnnl/dnnl_version.h>
        static_assert(DNNL_VERSION_MAJOR >= 0, "");
        """
    let headers = compiles(versionProbe, ["-std=c++17"])
    var dnnlVersion = "?"
    if headers, (try? "#include <oneapi/dnnl/dnnl_version.h>\nKILN DNNL_VERSION_MAJOR.DNNL_VERSION_MINOR.DNNL_VERSION_PATCH\n".write(toFile: probe, atomically: true, encoding: .utf8)) != nil,
       let out = tool(["-E", "-P", "-x", "c++", probe]), let line = out.split(separator: "\n").first(where: { $0.hasPrefix("KILN ") }) {
        dnnlVersion = String(line.dropFirst(5)).replacingOccurrences(of: " ", with: "")
    }
    let major = Int(dnnlVersion.split(separator: ".").first ?? "") ?? -1
    d.checks.append(.init(what: "oneDNN headers", found: headers ? "version \(dnnlVersion)" + (major == 2 ? "" : " (Kiln is written for oneDNN 2.x)") : "<oneapi/dnnl/dnnl.hpp> not found by \(cxx)",
                          ok: headers && major == 2, fix: headers && major == 2 ? nil : "apt-get install libdnnl-dev"))
    let dnnl = tool(["-print-file-name=libdnnl.so"])?.trimmingCharacters(in: .whitespacesAndNewlines) ?? ""
    let dnnlFound = dnnl.hasPrefix("/") && fm.fileExists(atPath: dnnl)
    d.checks.append(.init(what: "oneDNN library", found: dnnlFound ? (URL(fileURLWithPath: dnnl).resolvingSymlinksInPath().path) : "\(cxx) finds no libdnnl.so",
                          ok: dnnlFound, fix: dnnlFound ? nil : "apt-get install libdnnl-dev"))

    // The CPU (informational): what --cpu native targets, and how int8 runs here.
    let cpu = cpuDescription()
    let has = Set(cpu.features)
    let native = has.contains("avx512f") && has.contains("avx512bw") && has.contains("avx512vl") && has.contains("avx512dq") ? "x86-64-v4 level (AVX-512)"
        : has.contains("avx2") && has.contains("fma") ? "x86-64-v3 level (AVX2)" : "below x86-64-v3: Kiln's libraries need AVX2 (--cpu x86-64-v3 at least)"
    let int8 = has.contains("avx512_vnni") || has.contains("avx_vnni") ? "int8 with VNNI" : "int8 without VNNI (u8·s8 pairs saturate at 16 bits: Kiln keeps int8 exact)"
    d.checks.append(.init(what: "CPU", found: "\(cpu.model); \(cpu.features.joined(separator: " ")); --cpu native targets \(native); \(int8)",
                          ok: has.contains("avx2"), fix: has.contains("avx2") ? nil : "run the libraries on an x86-64 CPU with AVX2 (Haswell or later)"))

    // Free disk where the outputs go (informational; a compile of a large model needs about
    // three times its weights).
    if let attributes = try? fm.attributesOfFileSystem(forPath: outputDirectory), let free = attributes[.systemFreeSize] as? NSNumber {
        let gb = free.doubleValue / 1e9
        d.checks.append(.init(what: "free disk", found: String(format: "%.1f GB in %@", gb, URL(fileURLWithPath: outputDirectory).standardized.path), ok: gb >= 0.5,
                              fix: gb >= 0.5 ? nil : "free some space: a compile writes about three times the model's weights"))
    }
    return d
}
