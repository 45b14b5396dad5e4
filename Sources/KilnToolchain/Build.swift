import Foundation
import KilnIR
import KilnTarget

/// Which libraries to build.
public enum LibraryKind: String, CaseIterable, Sendable {
    case `static`, shared, both
    var wantsStatic: Bool { self != .shared }
    var wantsShared: Bool { self != .static }
}

/// g++'s sanitizers a library can be built with (`kiln compile --sanitize`): for testing a
/// program with the library, never for shipping it.
public enum Sanitizer: String, CaseIterable, Sendable {
    case address, undefined, thread

    /// Parses "address,undefined" or "thread" (thread goes with neither of the others).
    public static func parse(_ text: String) throws -> [Sanitizer] {
        var out: [Sanitizer] = []
        for part in text.split(separator: ",", omittingEmptySubsequences: false) {
            guard let s = Sanitizer(rawValue: part.trimmingCharacters(in: .whitespaces)) else {
                throw KilnError("--sanitize takes address, undefined and thread (comma-separated), not '\(part)'")
            }
            if !out.contains(s) { out.append(s) }
        }
        if out.contains(.thread) && out.count > 1 {
            throw KilnError("--sanitize thread cannot go with address or undefined (g++ builds one or the other)")
        }
        return out
    }

    /// `-fsanitize=...` for compiling and linking, the library's and its users'.
    public static func flag(_ list: [Sanitizer]) -> String { "-fsanitize=" + list.map(\.rawValue).joined(separator: ",") }
}

/// The C++ compiler every build runs: $KILN_CXX when set (a g++: the libraries use GNU OpenMP),
/// else g++ from PATH.
public func configuredCompiler() -> String {
    let env = ProcessInfo.processInfo.environment["KILN_CXX"] ?? ""
    return env.isEmpty ? "g++" : env
}

public struct BuildOptions: Sendable {
    public var outputDirectory: String
    public var name: String
    public var library: LibraryKind
    /// Folder holding `kiln/runtime.hpp`.
    public var includeDirectory: String
    public var compiler: String = configuredCompiler()
    public var optimization: String = "-O3"
    public var cpu: TargetCPU = .x86_64_v3
    public var extraFlags: [String] = []
    /// g++'s sanitizers to build with (none: a normal build). Programs linking the library must
    /// be linked with the same `-fsanitize=` (the pkg-config and CMake files say so).
    public var sanitizers: [Sanitizer] = []

    /// The compile and link flags the sanitizers add: instrumented code with frame pointers and
    /// debug lines for readable reports; undefined behaviour stops the program.
    var sanitizerFlags: [String] {
        guard !sanitizers.isEmpty else { return [] }
        return [Sanitizer.flag(sanitizers), "-fno-omit-frame-pointer", "-g"] + (sanitizers.contains(.undefined) ? ["-fno-sanitize-recover=undefined"] : [])
    }

    public init(outputDirectory: String, name: String, library: LibraryKind, includeDirectory: String) {
        self.outputDirectory = outputDirectory
        self.name = name
        self.library = library
        self.includeDirectory = includeDirectory
    }
}

/// What the build wrote.
public struct BuildProducts: Sendable {
    public var header: String
    public var source: String
    public var staticLibrary: String?
    public var sharedLibrary: String?
    /// `NAME.pc` for the shared library, `NAME-static.pc` for the static one (those built).
    public var pkgConfig: [String]
    public var cmakeConfig: String

    /// The same products moved from folder `from` to folder `to`.
    public func moved(from: String, to: String) -> BuildProducts {
        func m(_ p: String) -> String {
            p.hasPrefix(from + "/") ? (to as NSString).appendingPathComponent(String(p.dropFirst(from.count + 1))) : p
        }
        return BuildProducts(header: m(header), source: m(source), staticLibrary: staticLibrary.map(m), sharedLibrary: sharedLibrary.map(m),
                             pkgConfig: pkgConfig.map(m), cmakeConfig: m(cmakeConfig))
    }
}

/// The libraries a consumer links besides the model's own, for static linking.
public let consumerLinkLibraries = ["dnnl", "gomp", "stdc++", "m", "pthread"]

/// Writes the generated files into the output folder and builds the libraries with g++:
/// the weights go in through the assembler's `.incbin`; the static library is one relocatable
/// object whose non-API symbols are all local; the shared library exports only the API.
public func buildLibrary(header: String, source: String, weights: [UInt8], options o: BuildOptions,
                         log: (String) -> Void = { _ in }) throws -> BuildProducts {
    let fm = FileManager.default
    // Absolute, since the tools run inside the output folder.
    let dir = URL(fileURLWithPath: o.outputDirectory).standardizedFileURL.path
    do {
        try fm.createDirectory(atPath: dir, withIntermediateDirectories: true)
    } catch {
        throw KilnError("cannot create the output folder '\(dir)': \(error.localizedDescription)")
    }
    func path(_ file: String) -> String { (dir as NSString).appendingPathComponent(file) }
    func write(_ file: String, _ text: String) throws {
        do { try text.write(toFile: path(file), atomically: true, encoding: .utf8) } catch {
            throw KilnError("cannot write \(path(file)): \(error.localizedDescription)")
        }
    }
    let n = o.name
    try write("\(n).h", header)
    try write("\(n).cpp", source)
    // Straight from the array: a copy into Data would hold the weights once more.
    try weights.withUnsafeBytes { try writeFile(path("\(n)_weights.bin"), $0) }
    try write("\(n)_weights.S", """
        /* The weights of '\(n)', generated by Kiln — do not edit. In a large-data section
           (.lrodata, flag l: SHF_X86_64_LARGE), which linkers place after every other section,
           so that a blob over 2 GB never puts code and data out of each other's 32-bit reach. */
            .section .lrodata,"al",@progbits
            .balign 64
            .globl kiln_\(n)_weights
            .hidden kiln_\(n)_weights
            .type kiln_\(n)_weights, @object
        kiln_\(n)_weights:
            .incbin "\(n)_weights.bin"
            .byte 0
            .size kiln_\(n)_weights, . - kiln_\(n)_weights
            .section .note.GNU-stack,"",@progbits

        """)
    guard fm.fileExists(atPath: (o.includeDirectory as NSString).appendingPathComponent("kiln/runtime.hpp")) else {
        throw KilnError("Kiln's runtime headers are not in '\(o.includeDirectory)' (set KILN_INCLUDE_DIR to the folder holding kiln/runtime.hpp)")
    }
    // -ffp-contract=off: no multiply and add fused into one rounding where the source has two,
    // so that Kiln's own kernels round as the reference interpreter does (a quantized average
    // lands on the same side of a .5 tie). -fno-trapping-math: the library never reads the
    // floating-point exception flags, so comparisons and selects may be if-converted into vector
    // code (a clamp in a loop otherwise stops g++ from vectorizing it); values are unchanged.
    let cflags = ["-std=c++17", o.optimization, "-ffp-contract=off", "-fno-trapping-math", "-fPIC", "-fopenmp", "-fvisibility=hidden",
                  "-fvisibility-inlines-hidden", o.cpu.marchFlag, "-I", o.includeDirectory, "-I", dir] + o.sanitizerFlags + o.extraFlags
    try run(o.compiler, cflags + ["-c", path("\(n).cpp"), "-o", path("\(n).o")], in: dir, doing: "compiling \(n).cpp", log: log)
    try run(o.compiler, ["-c", path("\(n)_weights.S"), "-o", path("\(n)_weights.o")], in: dir, doing: "assembling the weights", log: log)
    // The weights are in the object now: their blob and its assembler file are not for the user.
    try? fm.removeItem(atPath: path("\(n)_weights.bin"))
    try? fm.removeItem(atPath: path("\(n)_weights.S"))

    var products = BuildProducts(header: path("\(n).h"), source: path("\(n).cpp"), staticLibrary: nil, sharedLibrary: nil,
                                 pkgConfig: (o.library.wantsShared ? [path("\(n).pc")] : []) + (o.library.wantsStatic ? [path("\(n)-static.pc")] : []),
                                 cmakeConfig: path("\(n)Config.cmake"))
    let apiPrefix = "\(n)_"
    if o.library.wantsStatic {
        let combined = path("\(n)_combined.o")
        // --force-group-allocation dissolves the COMDAT groups of inline code (libstdc++, oneDNN's
        // headers): once localised, their copies must not be merged with another model's or the
        // program's own, or the linker discards sections this object still points into.
        try run("ld", ["-r", "--force-group-allocation", path("\(n).o"), path("\(n)_weights.o"), "-o", combined], in: dir, log: log)
        // Keep only the API global: everything else the object defines becomes local.
        let symbols = try run("nm", ["--defined-only", "--extern-only", "-P", combined], in: dir, log: log)
        let keep = symbols.split(separator: "\n").compactMap { $0.split(separator: " ").first.map(String.init) }
            .filter { $0.hasPrefix(apiPrefix) }
        try (keep.joined(separator: "\n") + "\n").write(toFile: path("\(n).api"), atomically: true, encoding: .utf8)
        try run("objcopy", ["--localize-hidden", "--keep-global-symbols=\(path("\(n).api"))", combined], in: dir, log: log)
        let lib = path("lib\(n).a")
        try? fm.removeItem(atPath: lib)
        try run("ar", ["rcs", lib, combined], in: dir, doing: "archiving lib\(n).a", log: log)
        try? fm.removeItem(atPath: combined)
        try? fm.removeItem(atPath: path("\(n).api"))
        products.staticLibrary = lib
    }
    if o.library.wantsShared {
        // -Xlinker passes the path whole: in -Wl, a comma in the output folder's name would split it.
        let script = path("\(n).map")
        try "{ global: \(n)_*; local: *; };\n".write(toFile: script, atomically: true, encoding: .utf8)
        let lib = path("lib\(n).so")
        try run(o.compiler, ["-shared", "-fopenmp"] + o.sanitizerFlags + ["-o", lib, path("\(n).o"), path("\(n)_weights.o"),
                             "-Xlinker", "--version-script", "-Xlinker", script, "-Wl,-soname,lib\(n).so", "-Wl,--as-needed",
                             "-ldnnl", "-Wl,--no-undefined"], in: dir, doing: "linking lib\(n).so", log: log)
        try? fm.removeItem(atPath: script)
        products.sharedLibrary = lib
    }
    try? fm.removeItem(atPath: path("\(n).o"))
    try? fm.removeItem(atPath: path("\(n)_weights.o"))

    let libs = consumerLinkLibraries.map { "-l\($0)" }.joined(separator: " ")
    // A sanitized library needs its runtime in the program: linked with the same flag.
    let sanitize = o.sanitizers.isEmpty ? "" : " " + Sanitizer.flag(o.sanitizers)
    let pcHeader = """
        prefix=${pcfiledir}
        libdir=${prefix}
        includedir=${prefix}

        """
    if o.library.wantsShared {
        try write("\(n).pc", """
            # pkg-config file of the model '\(n)' (shared library), generated by Kiln.
            #   cc app.c $(pkg-config --cflags --libs \(n))      (run with lib\(n).so on the loader's path)
            \(pcHeader)
            Name: \(n)
            Description: Kiln-compiled model \(n) (shared library)
            Version: \(ABI.version)
            Libs: -L${libdir} -l\(n)\(sanitize)
            Libs.private: \(libs)
            Cflags: -I${includedir}

            """)
    }
    if o.library.wantsStatic {
        try write("\(n)-static.pc", """
            # pkg-config file of the model '\(n)' (static library), generated by Kiln.
            #   cc app.c $(pkg-config --cflags --libs \(n)-static)
            \(pcHeader)
            Name: \(n)-static
            Description: Kiln-compiled model \(n) (static library)
            Version: \(ABI.version)
            Libs: ${libdir}/lib\(n).a \(libs)\(sanitize)
            Cflags: -I${includedir}

            """)
    }
    let cmakeLibs = consumerLinkLibraries.joined(separator: ";")
    var cmake = """
        # CMake package of the model '\(n)', generated by Kiln.
        #   find_package(\(n) REQUIRED)   # with CMAKE_PREFIX_PATH or \(n)_DIR pointing here
        #   target_link_libraries(app PRIVATE \(n)::\(n))
        get_filename_component(_\(n)_dir "${CMAKE_CURRENT_LIST_FILE}" DIRECTORY)

        """
    if o.library.wantsStatic {
        cmake += """
            if(NOT TARGET \(n)::static)
              add_library(\(n)::static STATIC IMPORTED)
              set_target_properties(\(n)::static PROPERTIES
                IMPORTED_LOCATION "${_\(n)_dir}/lib\(n).a"
                INTERFACE_INCLUDE_DIRECTORIES "${_\(n)_dir}"
                INTERFACE_LINK_LIBRARIES "\(cmakeLibs)")
            endif()

            """
    }
    if o.library.wantsShared {
        cmake += """
            if(NOT TARGET \(n)::shared)
              add_library(\(n)::shared SHARED IMPORTED)
              set_target_properties(\(n)::shared PROPERTIES
                IMPORTED_LOCATION "${_\(n)_dir}/lib\(n).so"
                IMPORTED_SONAME "lib\(n).so"
                INTERFACE_INCLUDE_DIRECTORIES "${_\(n)_dir}")
            endif()

            """
    }
    cmake += """
        if(NOT TARGET \(n)::\(n))
          add_library(\(n)::\(n) INTERFACE IMPORTED)
          set_target_properties(\(n)::\(n) PROPERTIES INTERFACE_LINK_LIBRARIES "\(n)::\(o.library.wantsStatic ? "static" : "shared")")
        \(o.sanitizers.isEmpty ? "" : "  # Built with \(Sanitizer.flag(o.sanitizers)): programs link its runtime.\n  set_property(TARGET \(n)::\(n) APPEND PROPERTY INTERFACE_LINK_OPTIONS \"\(Sanitizer.flag(o.sanitizers))\")\n")endif()
        set(\(n)_FOUND TRUE)

        """
    try write("\(n)Config.cmake", cmake)
    try write("\(n)ConfigVersion.cmake", """
        # Version file of the CMake package '\(n)': the version is the C ABI version.
        set(PACKAGE_VERSION "\(ABI.version)")
        if(PACKAGE_FIND_VERSION_MAJOR AND NOT PACKAGE_FIND_VERSION_MAJOR STREQUAL "\(ABI.version)")
          set(PACKAGE_VERSION_COMPATIBLE FALSE)
        else()
          set(PACKAGE_VERSION_COMPATIBLE TRUE)
          if(PACKAGE_FIND_VERSION STREQUAL PACKAGE_VERSION)
            set(PACKAGE_VERSION_EXACT TRUE)
          endif()
        endif()

        """)
    return products
}

/// Writes `bytes` to a new file at `path` (replacing it), saying why when it cannot (a full disk).
public func writeFile(_ path: String, _ bytes: UnsafeRawBufferPointer) throws {
    let fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0o644)
    guard fd >= 0 else { throw KilnError("cannot write \(path): \(String(cString: strerror(errno)))") }
    var done = 0
    while done < bytes.count {
        let n = write(fd, bytes.baseAddress! + done, min(bytes.count - done, 1 << 30))
        if n < 0 && errno == EINTR { continue }
        guard n > 0 else {
            let why = n < 0 ? String(cString: strerror(errno)) : "nothing written"
            close(fd)
            throw KilnError("cannot write \(path): \(why)")
        }
        done += n
    }
    guard close(fd) == 0 else { throw KilnError("cannot write \(path): \(String(cString: strerror(errno)))") }
}

/// Runs a tool, returning its standard output; a failure throws with the tool's own words.
@discardableResult
public func run(_ tool: String, _ args: [String], in dir: String, doing: String? = nil, log: (String) -> Void = { _ in }) throws -> String {
    log(([tool] + args).map { $0.contains(" ") ? "'\($0)'" : $0 }.joined(separator: " "))
    let p = Process()
    p.executableURL = URL(fileURLWithPath: "/usr/bin/env")
    p.arguments = [tool] + args
    p.currentDirectoryURL = URL(fileURLWithPath: dir)
    let out = Pipe(), err = Pipe()
    p.standardOutput = out
    p.standardError = err
    do { try p.run() } catch { throw KilnError("cannot run \(tool): \(error.localizedDescription)") }
    // Drain stderr on another thread so that neither pipe fills up and blocks the tool.
    final class Box: @unchecked Sendable { var data = Data() }
    let errBox = Box()
    let group = DispatchGroup()
    group.enter()
    DispatchQueue.global().async {
        errBox.data = err.fileHandleForReading.readDataToEndOfFile()
        group.leave()
    }
    let outData = out.fileHandleForReading.readDataToEndOfFile()
    group.wait()
    let errData = errBox.data
    p.waitUntilExit()
    let what = doing.map { " while \($0)" } ?? ""
    if p.terminationReason == .uncaughtSignal {
        let s = p.terminationStatus
        let why = s == SIGKILL ? " (SIGKILL: out of memory, or killed by hand)" : s == SIGXFSZ ? " (SIGXFSZ: a file over the size limit)"
            : s == SIGTERM ? " (SIGTERM)" : s == SIGINT ? " (SIGINT)" : s == SIGSEGV ? " (SIGSEGV)" : ""
        throw KilnError("\(tool) was killed by signal \(s)\(why)\(what)")
    }
    guard p.terminationStatus == 0 else {
        let msg = String(decoding: errData, as: UTF8.self).split(separator: "\n").prefix(20).joined(separator: "\n")
        throw KilnError("\(tool) failed (status \(p.terminationStatus))\(what):\n\(msg)")
    }
    return String(decoding: outData, as: UTF8.self)
}
