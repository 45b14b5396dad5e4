import KilnIR
import KilnTarget

/// The files code generation produces for one model.
public struct EmittedModel: Sendable {
    public var name: String
    /// `NAME.h`: the public C header.
    public var header: String
    /// `NAME.cpp`: kernels, oneDNN primitives, the run function and the C API.
    public var source: String
    /// The weights blob, linked into the library by the assembler.
    public var weights: [UInt8]
    public var arenaBytes: Int
    /// Number of nodes that run through oneDNN, and through generated loops.
    public var oneDNNNodes: Int
    public var loopNodes: Int
    /// Nodes that oneDNN could have run but that run as Kiln's generic loops, each with why
    /// (`kiln compile --verbose` prints them).
    public var fallbacks: [String] = []
    /// The arena over time: each buffer's bytes and the nodes it lives across, by node name and value names.
    public var arena: [ArenaBufferUse] = []
    /// The nodes in run order (the indices of `arena`'s `first` and `last`).
    public var nodeNames: [String] = []
}

/// An arena buffer as the report shows it.
public struct ArenaBufferUse: Sendable, Equatable {
    /// The values that live in it, by name.
    public var values: [String]
    public var offset: Int
    public var size: Int
    public var first: Int
    public var last: Int
}

/// Options of code generation.
public struct CodegenOptions: Sendable {
    /// Prefix of every exported symbol, and the header's name.
    public var name: String
    /// Stamped into the header and the source.
    public var kilnVersion: String
    /// Where the model came from (a comment in the generated files).
    public var modelPath: String

    /// Whether 3×3 stride-1 convolutions may run as Winograd convolutions.
    public var winograd: WinogradPolicy = .auto
    /// How quantized convs and matrix products run without VNNI.
    public var int8: Int8Policy = .exact
    /// Whether FP32 convolutions may run as Kiln's own AVX2 kernel (include/kiln/direct_conv.hpp).
    public var directConv: DirectConvPolicy = .auto

    public init(name: String, kilnVersion: String, modelPath: String = "", winograd: WinogradPolicy = .auto, int8: Int8Policy = .exact,
                directConv: DirectConvPolicy = .auto) {
        self.name = name
        self.kilnVersion = kilnVersion
        self.modelPath = modelPath
        self.winograd = winograd
        self.int8 = int8
        self.directConv = directConv
    }
}


/// Checks that `name` can prefix C symbols.
public func validateModelName(_ name: String) throws {
    guard let f = name.unicodeScalars.first, f.properties.isAlphabetic || f == "_",
          name.unicodeScalars.allSatisfy({ $0.isASCII && ($0.properties.isAlphabetic || ("0"..."9").contains($0) || $0 == "_") })
    else {
        throw KilnError("--name '\(name)' must be a C identifier (letters, digits, '_', not starting with a digit)")
    }
}

/// Generates the C++ source, the C header and the weights blob of a static, verified graph.
public func emitModel(_ graph: Graph, options: CodegenOptions) throws -> EmittedModel {
    try validateModelName(options.name)
    var g = graph
    prepareForCodegen(&g)
    try verify(g, requireStaticShapes: true)
    let plan = planMemory(g)
    var e = ModelEmitter(graph: g, plan: plan, options: options)
    try e.emitNodes()
    let source = e.source()
    let header = emitHeader(g, plan: plan, options: options)
    var weights = [UInt8](repeating: 0, count: plan.weightsBytes)
    weights.withUnsafeMutableBytes { blob in
        for (v, off) in plan.constants {
            let t = g.values[v].constant!
            t.writeRawBytes(into: UnsafeMutableRawBufferPointer(rebasing: blob[off..<(off + t.byteSize)]))
        }
    }
    return EmittedModel(name: options.name, header: header, source: source, weights: weights,
                        arenaBytes: plan.arenaBytes, oneDNNNodes: e.oneDNNCount, loopNodes: e.loopCount,
                        fallbacks: e.fallbacks,
                        arena: plan.buffers.map { ArenaBufferUse(values: $0.values.map { g.values[$0].name }, offset: $0.offset, size: $0.size, first: $0.first, last: $0.last) },
                        nodeNames: g.nodes.map(\.name))
}

/// C++ spelling of an element type's storage.
func cType(_ t: ElementType) -> String {
    switch t {
    case .f32: return "float"
    case .f16: return "kiln::f16"
    case .bf16: return "kiln::bf16"
    case .s8: return "int8_t"
    case .u8: return "uint8_t"
    case .s32: return "int32_t"
    case .s64: return "int64_t"
    case .bool: return "bool"
    }
}

/// A brace list of integers: `{1, 2, 3}` (`{0}` when empty, so C arrays stay valid).
func list(_ v: [Int]) -> String { v.isEmpty ? "{0}" : "{" + v.map(String.init).joined(separator: ", ") + "}" }

/// A C++ int64_t literal (INT64_MIN has no literal of its own).
func int64Literal(_ i: Int64) -> String {
    i == .min ? "(-9223372036854775807LL - 1)" : "\(i)LL"
}

struct ModelEmitter {
    let g: Graph
    let plan: MemoryPlan
    let options: CodegenOptions
    var run = CodeWriter()
    var create = CodeWriter()
    /// Functions the run function calls: the elementwise loops, each in an AVX-512 and a default form.
    var kernels = CodeWriter()
    var members: [String] = []
    /// Named elementwise functors (`struct PostN`), one per distinct body, in order of first use:
    /// kernel templates instantiated with them are compiled once per body, not once per node.
    var functors: [(name: String, body: String)] = []
    var oneDNNCount = 0
    var loopCount = 0
    /// "node: why" for each node that runs as a generic loop where oneDNN usually runs it.
    var fallbacks: [String] = []
    /// Values referenced by the run function, whose pointers it declares.
    var referenced = Set<ValueID>()
    /// oneDNN memories bound to the caller's buffers: re-pointed at every run.
    var rebinds: [(member: String, value: ValueID)] = []

    init(graph: Graph, plan: MemoryPlan, options: CodegenOptions) {
        self.g = graph
        self.plan = plan
        self.options = options
    }

    var name: String { options.name }

    /// The C++ expression for a value's pointer in the run function.
    mutating func v(_ id: ValueID) -> String {
        referenced.insert(id)
        return "v\(id)"
    }

    mutating func opt(_ id: ValueID?) -> String { id.map { v($0) } ?? "nullptr" }

    func type(_ id: ValueID) -> TensorType { g.values[id].type }
    func shape(_ id: ValueID) -> [Int] { g.values[id].type.shape! }
    func elem(_ id: ValueID) -> ElementType { g.values[id].type.elementType }
    func constant(_ id: ValueID?) -> Tensor? { id.flatMap { g.values[$0].constant } }

    /// A pointer to a value that create-time code can use (arena or weights; nil for caller buffers).
    func createTimePointer(_ id: ValueID) -> String? {
        switch plan.storage[id]! {
        case .arena(let off): return "(void*)(m->arena + \(off))"
        case .constant(let off): return "(void*)(W + \(off))"
        case .input, .output: return nil
        }
    }

    mutating func emitNodes() throws {
        for (i, n) in g.nodes.enumerated() {
            // Blocked values are oneDNN's alone: its convolutions, pooling and reorders.
            let touchesBlocked = (n.inputs.compactMap { $0 } + n.outputs).contains { g.values[$0].layout == .blocked16 }
            switch n.op {
            case .conv, .maxPool, .averagePool, .layoutConvert: break
            default:
                if touchesBlocked { throw KilnError("\(n.label): internal error: a blocked-layout value reached a generated kernel") }
            }
            run.line("// \(commentSafe(n.name)) (\(commentSafe(n.origin.description))): \(n.op.name)")
            run.line("if (m->profiling) t0 = std::chrono::steady_clock::now();")
            try emit(n, index: i)
            run.line("if (m->profiling) m->profile[\(i)] += std::chrono::duration<double, std::nano>(std::chrono::steady_clock::now() - t0).count();")
        }
        // Graph outputs that no node writes: constants, inputs, or a value listed twice.
        var written = Set<ValueID>()
        for n in g.nodes { written.formUnion(n.outputs) }
        for (j, o) in g.outputs.enumerated() {
            if case .output(let k) = plan.storage[o]!, k == j, written.contains(o) { continue }
            let bytes = type(o).byteSize!
            run.line("std::memcpy(out[\(j)], \(v(o)), \(bytes));")
        }
    }

    // MARK: the generated file

    func source() -> String {
        var w = CodeWriter()
        w.line("// \(name).cpp — generated by Kiln \(options.kilnVersion)\(options.modelPath.isEmpty ? "" : " from \(commentSafe(options.modelPath))") — do not edit.")
        w.line("#include \"\(name).h\"")
        w.line("#include <kiln/runtime.hpp>")
        w.line("#include <dnnl.hpp>")
        w.line("#include <kiln/onednn.hpp>")
        w.line("#include <kiln/direct_conv.hpp>")
        w.line("#include <omp.h>")
        w.line("#include <exception>")
        w.line("#include <new>")
        w.line("#include <string>")
        w.line("#include <cfloat>")
        w.line("#include <chrono>")
        w.line("#include <cstdio>")
        w.line("#include <cstdlib>")
        w.line()
        w.line("extern \"C\" __attribute__((visibility(\"hidden\"))) const unsigned char kiln_\(name)_weights[];")
        w.line()
        w.block("namespace kiln_\(name)", close: "}  // namespace kiln_\(name)") { w in
            w.line("const unsigned char* const W = kiln_\(name)_weights;")
            w.line()
            for f in functors {
                w.line("struct \(f.name) { float operator()(float v) const { return \(f.body); } };")
            }
            if !functors.isEmpty { w.line() }
            for l in kernels.text.split(separator: "\n", omittingEmptySubsequences: false).dropLast() { w.line(String(l)) }
            w.block("struct Model", close: "};") { w in
                w.line("std::string error;")
                w.line("int threads = 0;")
                w.line("bool profiling = false;")
                w.line("double profile[\(max(g.nodes.count, 1))] = {};  // nanoseconds per step")
                w.line("unsigned char* arena = nullptr;")
                w.line("dnnl::engine eng;")
                w.line("dnnl::stream strm;")
                for m in members { w.line(m) }
                w.line("~Model() { std::free(arena); }")
            }
            w.line()
            w.line("// Creates the oneDNN primitives and prepacks the weights (once, at create time). One long")
            w.line("// function of library calls: -O1 builds it about 3× faster than -O3, and it runs as fast.")
            w.block("__attribute__((optimize(\"O1\", \"fp-contract=off\", \"no-trapping-math\"))) static void create_primitives(Model* m)") { w in
                w.line("using namespace dnnl;")
                w.line("using tag = memory::format_tag;")
                w.line("using dt = memory::data_type;")
                w.line("(void)sizeof(tag); (void)sizeof(dt);")
                for l in create.text.split(separator: "\n", omittingEmptySubsequences: false).dropLast() { w.line(String(l)) }
            }
            w.line()
            w.line("// Runs the graph: returns 0, or the number of the node that failed.")
            w.block("static int run_graph(Model* m, const void* const* in, void* const* out)") { w in
                w.line("(void)in; (void)out;")
                w.line("std::chrono::steady_clock::time_point t0;")
                for id in referenced.sorted() {
                    let t = cType(elem(id))
                    switch plan.storage[id]! {
                    case .input(let i): w.line("const \(t)* v\(id) = static_cast<const \(t)*>(in[\(i)]);")
                    case .output(let j): w.line("\(t)* v\(id) = static_cast<\(t)*>(out[\(j)]);")
                    case .arena(let off): w.line("\(t)* v\(id) = reinterpret_cast<\(t)*>(m->arena + \(off));")
                    case .constant(let off): w.line("const \(t)* v\(id) = reinterpret_cast<const \(t)*>(W + \(off));")
                    }
                }
                for r in rebinds {
                    w.line("dnnl_memory_set_data_handle(m->\(r.member).get(), const_cast<void*>(static_cast<const void*>(v\(r.value))));")
                }
                for l in run.text.split(separator: "\n", omittingEmptySubsequences: false).dropLast() { w.line(String(l)) }
                w.line("return 0;")
            }
        }
        w.line()
        emitAPI(&w)
        return w.text
    }
}
