import Foundation
import KilnCodegen
import KilnIR
import KilnPasses
import KilnTarget

/// What `kiln compile` writes next to the library, as `NAME.report.md` (for people) and
/// `NAME.report.json` (for scripts): each node with its op and result, the precision of each
/// conv and matrix product (int8, or FP32 and why), each quantized tensor's scale and zero
/// point, and the library's memory. Deterministic: no timings, no paths but the model's.
public struct ModelReport: Codable, Sendable, Equatable {
    public struct NodeEntry: Codable, Sendable, Equatable {
        public var name: String
        /// The ONNX op it came from, and Kiln's op.
        public var onnx: String
        public var op: String
        /// Element type and shape of its (first) result.
        public var output: String
        /// "int8", "int8 (dynamic)" or "FP32" for convs and matrix products; nil for other ops.
        public var precision: String?
    }
    public struct QuantizedTensor: Codable, Sendable, Equatable {
        public var tensor: String
        public var type: String
        public var scales: [Float]
        public var zeroPoints: [Int32]
        /// With --quantize: 10·log10(signal / error) of its own quantization on the calibration
        /// samples, in dB (rounding inside its range, clipping outside); nil when not measured or exact.
        public var sqnrDB: Double?
    }

    public var name: String
    public var model: String
    public var kilnVersion: String
    public var arenaBytes: Int
    public var weightsBytes: Int
    /// Convs and matrix products that run int8, and all of them.
    public var int8Ops: Int
    public var computeOps: Int
    /// Of the int8 ones, those that on a CPU without VNNI compute in the f32 form of their
    /// definition (same function, f32 speed): `--int8 exact` where oneDNN's kernels could saturate.
    public var f32FormWithoutVNNI: Int
    public var nodes: [NodeEntry]
    public var quantizedTensors: [QuantizedTensor]
    /// Why nodes stay FP32, and which run as generic loops instead of oneDNN.
    public var notes: [String]
    /// With --quantize: each layer the recipe quantizes, its precision and why, and what was
    /// measured of it (NAME.precision.json holds the same).
    public var layers: [PrecisionPlan.Layer] = []

    /// Whether the graph had quantization in it (then `kiln compile` prints the precision summary).
    public var isQuantized: Bool { int8Ops > 0 || !quantizedTensors.isEmpty }

    /// "int8: 53 of 57 convs and matrix products; FP32: 4 (see NAME.report.md)".
    public var summary: String {
        "int8: \(int8Ops) of \(computeOps) convs and matrix products" + (computeOps > int8Ops ? "; FP32: \(computeOps - int8Ops) (see \(name).report.md)" : "")
    }

    public init(graph g: Graph, name: String, model: String, kilnVersion: String, arenaBytes: Int, weightsBytes: Int, notes: [String],
                int8Policy: Int8Policy = .exact, sqnr: [String: Double?] = [:], decisions: [String: String] = [:]) {
        self.name = name
        self.model = model
        self.kilnVersion = kilnVersion
        self.arenaBytes = arenaBytes
        self.weightsBytes = weightsBytes
        self.notes = notes
        var int8 = 0, compute = 0, f32Form = 0
        /// oneDNN's int8 kernel is exact without VNNI for a u8 source and weights within ±64.
        func computesF32FormWithoutVNNI(_ n: Node) -> Bool {
            guard int8Policy == .exact else { return false }
            guard let x = n.inputs[0], g.values[x].type.elementType == .u8,
                  let w = n.inputs[1].flatMap({ g.values[$0].constant }) else { return true }
            return !w.ints.allSatisfy { abs($0) <= 64 }
        }
        var quantization: [ValueID: Quantization] = [:]
        var entries: [NodeEntry] = []
        for n in g.nodes {
            var precision: String?
            switch n.op {
            case .quantizedConv(let q):
                precision = "int8"
                if computesF32FormWithoutVNNI(n) { f32Form += 1 }
                quantization[n.inputs[0]!] = q.input
                if let o = q.output { quantization[n.outputs[0]] = o }
                if let a = q.addend, n.inputs.count > 3, let v = n.inputs[3] { quantization[v] = a }
            case .quantizedMatMul(let q):
                precision = "int8"
                if computesF32FormWithoutVNNI(n) { f32Form += 1 }
                quantization[n.inputs[0]!] = q.input
                if let o = q.output { quantization[n.outputs[0]] = o }
            case .quantized(let q):
                for (x, p) in zip(n.inputs, q.inputs) { if let x, let p { quantization[x] = p } }
                quantization[n.outputs[0]] = q.output
            case .dynamicQuantizedMatMul:
                precision = "int8 (dynamic)"
                if int8Policy == .exact { f32Form += 1 }
            case .conv, .convTranspose, .gemm, .matMul:
                precision = "FP32"
            case .quantizeLinear:
                if let q = perTensorQuantization(n, g, integer: n.outputs[0]) { quantization[n.outputs[0]] = q }
            case .dequantizeLinear:
                if let q = perTensorQuantization(n, g, integer: n.inputs[0]) { quantization[n.inputs[0]!] = q }
            case .elementwiseGroup(let e):
                for (k, step) in e.steps.enumerated() {
                    let integer: ValueID?
                    switch step.op {
                    case .dequantizeLinear:
                        guard case .input(let i) = step.operands[0] else { continue }
                        integer = n.inputs[i]
                    case .quantizeLinear where k == e.steps.count - 1: integer = n.outputs[0]
                    default: continue
                    }
                    let params: [ValueID?] = step.operands.dropFirst().map { o in if case .input(let i) = o { return n.inputs[i] } else { return nil } }
                    let probe = Node(name: n.name, op: step.op, inputs: [integer] + params, outputs: [integer ?? 0], origin: n.origin)
                    if let integer, let q = perTensorQuantization(probe, g, integer: integer) { quantization[integer] = q }
                }
            default: break
            }
            if let p = precision {
                compute += 1
                if p.hasPrefix("int8") { int8 += 1 }
            }
            let y = n.outputs[0]
            // Kiln's own quantization says why for every node of the graph it planned on.
            let decided = decisions[n.name].flatMap { d in precision == nil || (precision == "FP32" && d.hasPrefix("FP32")) ? d : nil }
            entries.append(NodeEntry(name: n.name, onnx: n.origin.description, op: n.op.name, output: g.values[y].type.description, precision: decided ?? precision))
        }
        int8Ops = int8
        computeOps = compute
        f32FormWithoutVNNI = f32Form
        nodes = entries
        // Layout copies of a tensor carry the same parameters: list each tensor once, by its name in the model.
        var seen = Set<String>()
        quantizedTensors = quantization.keys.sorted().compactMap { v in
            let q = quantization[v]!
            let base = Self.tensorName(g.values[v].name)
            guard seen.insert(base).inserted else { return nil }
            return QuantizedTensor(tensor: base, type: q.type.description, scales: q.scales, zeroPoints: q.zeroPoints, sqnrDB: sqnr[base] ?? nil)
        }
    }

    /// A value's name without the suffixes of Kiln's layout and quantization copies: the tensor's name in the model.
    public static func tensorName(_ value: String) -> String {
        var base = value
        for suffix in ["_nhwc", "_plain", "_blocked", "_quantized"] where base.hasSuffix(suffix) { base.removeLast(suffix.count) }
        return base
    }

    public var markdown: String {
        var s = "# \(name): compile report\n\n"
        s += "Generated by Kiln \(kilnVersion) from `\((model as NSString).lastPathComponent)`.\n\n"
        s += "- Arena: \(arenaBytes) bytes per instance\n- Weights: \(weightsBytes) bytes\n"
        s += "- Convs and matrix products: \(computeOps), of which int8: \(int8Ops)\n"
        if f32FormWithoutVNNI > 0 {
            s += "- On a CPU without VNNI, \(f32FormWithoutVNNI) of the int8 ones compute in the f32 form of their definition "
                + "(the same results at f32 speed: there oneDNN's int8 kernels could saturate; `--int8 fast` takes them anyway)\n"
        }
        s += "\n"
        if !notes.isEmpty {
            s += "## Notes\n\n" + notes.map { "- \($0)\n" }.joined() + "\n"
        }
        s += "## Nodes\n\n| # | node | from | op | result | precision |\n|---|---|---|---|---|---|\n"
        for (i, n) in nodes.enumerated() {
            s += "| \(i) | \(n.name) | \(n.onnx) | \(n.op) | \(n.output) | \(n.precision ?? "") |\n"
        }
        if !quantizedTensors.isEmpty {
            let measured = quantizedTensors.contains { $0.sqnrDB != nil }
            s += "\n## Quantized tensors\n\n| tensor | type | scale | zero point |" + (measured ? " SQNR (dB) |" : "") + "\n|---|---|---|---|" + (measured ? "---|" : "") + "\n"
            for t in quantizedTensors {
                let scale = t.scales.count == 1 ? "\(t.scales[0])" : "\(t.scales.count) per channel, \(t.scales.min()!) to \(t.scales.max()!)"
                let zero = Set(t.zeroPoints).count == 1 ? "\(t.zeroPoints[0])" : "\(t.zeroPoints.count) per channel"
                s += "| \(t.tensor) | \(t.type) | \(scale) | \(zero) |" + (measured ? " \(t.sqnrDB.map { String(format: "%.1f", $0) } ?? "") |" : "") + "\n"
            }
            if measured {
                s += "\nSQNR: each tensor's own quantization (rounding inside its range, clipping outside) on the calibration samples.\n"
            }
        }
        if !layers.isEmpty {
            func f(_ x: Double?, _ format: String) -> String { x.map { String(format: format, $0) } ?? "" }
            s += "\n## Layer precision\n\n| layer | precision | int8 step (ms) | FP32 step (ms) | own int8 SQNR (dB) | why FP32 |\n|---|---|---|---|---|---|\n"
            for l in layers {
                s += "| \(l.node) | \(l.precision) | \(f(l.int8Ms, "%.4f")) | \(f(l.fp32Ms, "%.4f")) | \(f(l.sqnrDB, "%.1f")) | \(l.reason ?? "") |\n"
            }
            s += "\nSteps timed on the compiling machine (the int8 library and the calibration's f32 build, first sample); own SQNR: the layer's int8 result against its f32 one on the calibration samples (measured for --accuracy-budget). `--precision-plan \(name).precision.json` replays these decisions.\n"
        }
        return s
    }

    public var json: String {
        let e = JSONEncoder()
        e.outputFormatting = [.prettyPrinted, .sortedKeys]
        return String(decoding: (try? e.encode(self)) ?? Data(), as: UTF8.self) + "\n"
    }
}
