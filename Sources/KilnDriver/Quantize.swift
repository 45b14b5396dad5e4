import Foundation
import KilnIR
import KilnPasses
import KilnTarget
import KilnQuantization

/// Kiln's own quantization of one model (`--quantize int8`), from the fused f32 graph: the X86
/// recipe's plan, the calibration, the layers kept FP32 (by a replayed precision plan, by the
/// accuracy budget, by measured speed), and the quantized graph they give.
final class ModelQuantizer {
    let fused: Graph
    let recipe: QuantizationPlan
    let calibration: Calibration
    let options: QuantizeOptions
    /// Layers kept FP32 (node name → why).
    private(set) var keep: [String: String]
    private(set) var layerSQNR: [String: Double] = [:]
    /// Per layer: its step's milliseconds per run in the int8 library and in the f32 one, when measured.
    private(set) var layerMs: [String: (int8: Double, fp32: Double)] = [:]
    private(set) var budgetLines: [String] = []
    private(set) var speedLines: [String] = []

    /// Plans `fused` by the recipe (which must quantize something), calibrates it on `samples`
    /// and keeps the layers a replayed plan or the accuracy budget says FP32.
    init(_ fused: Graph, recipe: QuantizationPlan, options q: QuantizeOptions, samples: CalibrationSamples, cpu: TargetCPU,
         kilnVersion: String, progress: ProgressHandler, log: (String) -> Void) throws {
        self.fused = fused
        self.recipe = recipe
        options = q
        // The replayed plan is checked before the long steps.
        keep = try q.precisionPlan.map { try PrecisionPlan.read(path: $0).keptFloat(path: $0, graph: fused, plan: recipe) } ?? [:]
        calibration = try Calibration(fused, plan: recipe, samples: samples, method: q.method, cpu: cpu, kilnVersion: kilnVersion, progress: progress, log: log)
        if let budget = q.accuracyBudget {
            let fit = try fitAccuracyBudget(fused, calibration: calibration, budget: budget, keep: keep, progress: progress, log: log)
            keep = fit.keep
            layerSQNR = fit.layerSQNR
            budgetLines = fit.lines
        }
    }

    func plan(keeping keep: [String: String]) -> QuantizationPlan { keep.isEmpty ? recipe : planQuantization(fused, keepFloat: keep) }

    /// The fused graph with the quantization of the plan that keeps `keep` FP32 inserted, and each
    /// quantized tensor's SQNR by name.
    func quantizedGraph(keeping keep: [String: String]? = nil) -> (graph: Graph, sqnr: [String: Double?]) {
        let plan = plan(keeping: keep ?? self.keep)
        let (parameters, tensorSQNR) = calibration.parameters(for: plan)
        var g = fused
        insertQuantization(&g, plan, parameters: parameters, inputMeans: calibration.inputMeans)
        var sqnr: [String: Double?] = [:]
        for v in plan.observed { sqnr[g.values[v].name] = tensorSQNR[v].flatMap { $0.isFinite ? $0 : nil } }
        return (g, sqnr)
    }

    /// The report's notes: the calibration, the budget's and the speed's decisions, each FP32 layer and why.
    var notes: [String] {
        let plan = plan(keeping: keep)
        return ["calibration: \(calibration.samples.description), \(options.method.rawValue) ranges, \(plan.groups.count) sets of parameters for \(plan.observed.count) quantized tensors"]
            + budgetLines + speedLines + plan.decisions.filter { $0.hasSuffix(")") }
    }

    var precisionPlan: PrecisionPlan {
        PrecisionPlan(model: "", layers: recipe.layers.map { i in
            let name = fused.nodes[i].name
            return PrecisionPlan.Layer(node: name, precision: keep[name] == nil ? "int8" : "fp32", reason: keep[name], sqnrDB: layerSQNR[name],
                                       int8Ms: layerMs[name]?.int8, fp32Ms: layerMs[name]?.fp32)
        })
    }

    /// The layers whose step takes longer in `int8` (the library of the current plan, loaded) than
    /// in the f32 build of the calibration, measured on the first sample; each layer's two times
    /// are kept for the precision plan. Returns them with why, to try FP32.
    func slowerInInt8(_ int8: CLibrary, progress: ProgressHandler) throws -> [String: String] {
        progress("speed: each layer in int8 and in FP32")
        let sample = try calibration.samples.sample(0, cache: &sampleCache)
        let t8 = try stepMilliseconds(int8, sample), t32 = try stepMilliseconds(calibration.library, sample)
        var slower: [String: String] = [:]
        for i in plan(keeping: keep).layers {
            let name = fused.nodes[i].name
            guard let a = t8[name], let b = t32[name] else { continue }
            layerMs[name] = (a, b)
            // A margin for the timer's noise: the whole model decides afterwards.
            if a > 1.05 * b + 0.002 {
                slower[name] = String(format: "kept FP32: slower in int8 on the compiling machine (its step %.4f ms int8, %.4f ms FP32)", a, b)
            }
        }
        return slower
    }

    /// Keeps `slower` FP32 from now on, with the whole model's figures (`speedLines`).
    func keepFloat(_ slower: [String: String], line: String) {
        keep.merge(slower) { a, _ in a }
        speedLines.append(line)
    }

    func noteSpeed(_ line: String) { speedLines.append(line) }

    /// Every layer that runs int8 in the current plan, with `reason` (to keep them all FP32).
    func int8Layers(reason: String) -> [String: String] {
        Dictionary(plan(keeping: keep).layers.map { (fused.nodes[$0].name, reason) }, uniquingKeysWith: { a, _ in a })
    }

    private var sampleCache: [String: Tensor] = [:]

    /// Milliseconds per run of each step of `lib` on `sample`, by node name (the steps' names
    /// without their op), over at least 10 runs and 0.3 s after 3 warm-up runs.
    func stepMilliseconds(_ lib: CLibrary, _ sample: [Tensor]) throws -> [String: Double] {
        let instance = try lib.makeInstance(threads: 0)
        let outputs = lib.outputs.map { UnsafeMutableRawPointer.allocate(byteCount: max($0.bytes, 1), alignment: 64) }
        defer { outputs.forEach { $0.deallocate() } }
        let (steps, _) = try instance.profiledRuns(minRuns: 10, seconds: 0.3) { try calibration.run(instance, of: lib, sample, outputs) }
        var ms: [String: Double] = [:]
        for step in steps {
            let name = step.name.range(of: " (", options: .backwards).map { String(step.name[..<$0.lowerBound]) } ?? step.name
            ms[name, default: 0] += step.ms
        }
        return ms
    }

    /// The median over 5 rounds of the ratio of `b`'s median latency to `a`'s, each timed for
    /// `seconds` per round in turns on the first sample, and `a`'s and `b`'s medians in ms.
    func compareLatency(_ a: CLibrary, _ b: CLibrary, seconds: Double = 0.15) throws -> (ratio: Double, a: Double, b: Double) {
        let sample = try calibration.samples.sample(0, cache: &sampleCache)
        let libs = [a, b]
        let instances = try libs.map { try $0.makeInstance(threads: 0) }
        let outputs = libs.map { $0.outputs.map { UnsafeMutableRawPointer.allocate(byteCount: max($0.bytes, 1), alignment: 64) } }
        defer { outputs.joined().forEach { $0.deallocate() } }
        func median(_ x: [Double]) -> Double { let s = x.sorted(); return s[s.count / 2] }
        var ratios: [Double] = [], medians: [[Double]] = [[], []]
        for k in 0..<2 { for _ in 0..<3 { try calibration.run(instances[k], of: libs[k], sample, outputs[k]) } }
        for _ in 0..<5 {
            var m = [0.0, 0.0]
            for k in 0..<2 {
                var times: [Double] = []
                let start = Date()
                while times.count < 5 || Date().timeIntervalSince(start) < seconds {
                    let t0 = Date()
                    try calibration.run(instances[k], of: libs[k], sample, outputs[k])
                    times.append(Date().timeIntervalSince(t0) * 1000)
                }
                m[k] = median(times)
                medians[k].append(m[k])
            }
            ratios.append(m[1] / m[0])
        }
        return (median(ratios), median(medians[0]), median(medians[1]))
    }
}
