import Foundation
import KilnIR
import KilnPasses
import KilnQuantization

/// `--accuracy-budget`: how far the int8 library's outputs may stray from FP32's on the
/// calibration samples.
public enum AccuracyBudget: Sendable, Equatable, CustomStringConvertible {
    /// Each output's top-1 (the largest element of each row along its last axis) agrees with
    /// FP32's on at least 1 − drop of the rows: `1%` is drop 0.01.
    case top1(drop: Double)
    /// Each output's mean cosine similarity to FP32's is at least this: `cosine=0.999`.
    case cosine(Double)

    /// `N%` (top-1 agreement with FP32 at least 100 − N percent) or `cosine=F` (0 < F ≤ 1).
    public init(parsing text: String) throws {
        let t = text.trimmingCharacters(in: .whitespaces)
        if t.hasSuffix("%"), let p = Double(t.dropLast()), p.isFinite, p >= 0, p < 100 {
            self = .top1(drop: p / 100)
        } else if let r = ["cosine=", "cosine:"].first(where: t.hasPrefix), let f = Double(t.dropFirst(r.count)), f.isFinite, f > 0, f <= 1 {
            self = .cosine(f)
        } else {
            throw KilnError("--accuracy-budget \(text): expected N% (top-1 agreement with FP32 at least 100 - N percent on the calibration samples, 0 <= N < 100) or cosine=F (each output's mean cosine to FP32 at least F, 0 < F <= 1)")
        }
    }

    public var description: String {
        switch self {
        case .top1(let d): return String(format: "top-1 agreement with FP32 >= %.4g%%", 100 * (1 - d))
        case .cosine(let f): return "cosine to FP32 >= \(f)"
        }
    }

    /// The budget's measure of `a`: the lowest top-1 agreement or the lowest cosine over the outputs.
    func measure(_ a: [Calibration.Agreement]) throws -> Double {
        switch self {
        case .top1:
            let shares = a.compactMap(\.top1)
            guard let m = shares.min() else {
                throw KilnError("--accuracy-budget: no f32 output has rows of several elements to take a top-1 from (\(a.map(\.output).joined(separator: ", "))); give cosine=F")
            }
            return m
        case .cosine: return a.map(\.cosine).min() ?? 1
        }
    }

    func holds(_ a: [Calibration.Agreement]) throws -> Bool {
        let m = try measure(a)
        switch self {
        case .top1(let d): return m >= 1 - d - 1e-12
        case .cosine(let f): return m >= f
        }
    }

    func format(_ m: Double) -> String {
        switch self {
        case .top1: return String(format: "top-1 agreement %.2f%%", 100 * m)
        case .cosine: return String(format: "cosine %.6f", m)
        }
    }
}

/// Which layers of a model run int8 and which FP32, and why: what `kiln compile --quantize int8`
/// decided, written as OUTDIR/NAME.precision.json, and read back by `--precision-plan FILE` to
/// build the same library without measuring again.
public struct PrecisionPlan: Codable, Sendable, Equatable {
    public struct Layer: Codable, Sendable, Equatable {
        /// The node's name in the model (a fused conv carries its conv's name).
        public var node: String
        /// "int8" or "fp32".
        public var precision: String
        /// Why a layer the recipe quantizes is FP32.
        public var reason: String?
        /// The error this layer alone adds in int8 on the calibration samples (SQNR of its int8
        /// result against its f32 one), when measured.
        public var sqnrDB: Double?
        /// Its step's milliseconds per run on the compiling machine in the int8 library and in
        /// the f32 one, when measured.
        public var int8Ms: Double?
        public var fp32Ms: Double?
    }
    public var format = "kiln-precision-plan-1"
    public var model: String
    public var layers: [Layer]

    public var json: String {
        let e = JSONEncoder()
        e.outputFormatting = [.prettyPrinted, .sortedKeys, .withoutEscapingSlashes]
        return String(decoding: (try? e.encode(self)) ?? Data(), as: UTF8.self) + "\n"
    }

    public static func read(path: String) throws -> PrecisionPlan {
        guard let data = FileManager.default.contents(atPath: path) else { throw KilnError("--precision-plan \(path): cannot read the file") }
        let plan: PrecisionPlan
        do { plan = try JSONDecoder().decode(PrecisionPlan.self, from: data) } catch {
            throw KilnError("--precision-plan \(path): not a precision plan (the NAME.precision.json that kiln compile --quantize int8 writes): \(error)")
        }
        guard plan.format == "kiln-precision-plan-1" else { throw KilnError("--precision-plan \(path): unknown format '\(plan.format)'") }
        for l in plan.layers where l.precision != "int8" && l.precision != "fp32" {
            throw KilnError("--precision-plan \(path): layer '\(l.node)' has precision '\(l.precision)'; expected int8 or fp32")
        }
        return plan
    }

    /// The layers to keep FP32 (node name → reason) in the fused graph `g`, whose recipe plan is
    /// `plan`. Every layer named must be one the recipe quantizes.
    func keptFloat(path: String, graph g: Graph, plan: QuantizationPlan) throws -> [String: String] {
        let known = Set(plan.layers.map { g.nodes[$0].name })
        let unknown = layers.map(\.node).filter { !known.contains($0) }
        guard unknown.isEmpty else {
            throw KilnError("--precision-plan \(path): \(unknown.count) layer\(unknown.count == 1 ? "" : "s") the X86 recipe does not quantize in this model: \(unknown.prefix(5).map { "'\($0)'" }.joined(separator: ", "))\(unknown.count > 5 ? ", ..." : "") (a plan from another model or another Kiln?)")
        }
        var keep: [String: String] = [:]
        for l in layers where l.precision == "fp32" { keep[l.node] = "kept FP32 by the precision plan \((path as NSString).lastPathComponent)\(l.reason.map { ": \($0)" } ?? "")" }
        return keep
    }
}

/// What `fitAccuracyBudget` decided: the layers kept FP32 and what was measured on the way.
struct BudgetFit {
    var keep: [String: String]
    /// Each layer's own int8 error (dB), by node name, when measured.
    var layerSQNR: [String: Double]
    var lines: [String]
}

/// Keeps the layers whose int8 error alone is largest FP32 until `budget` holds on the
/// calibration samples: each layer's error measured once (its int8 twin against its f32 result,
/// `Calibration.layerSQNR`), then the fewest of the worst that meet the budget, found by trial
/// libraries (1, 2, 4, ... of them, then halving the interval; each trial a library run on every
/// sample). `keep` holds the layers already FP32.
func fitAccuracyBudget(_ fused: Graph, calibration c: Calibration, budget: AccuracyBudget, keep base: [String: String],
                       progress: ProgressHandler, log: (String) -> Void) throws -> BudgetFit {
    var cache: [Int: (holds: Bool, measure: Double)] = [:]
    var ranked: [(layer: Int, sqnr: Double)] = []
    func keep(_ k: Int) -> [String: String] {
        var keep = base
        for (r, l) in ranked.prefix(k).enumerated() {
            keep[fused.nodes[l.layer].name] = String(format: "kept FP32 by --accuracy-budget (%@): its int8 error alone (SQNR %.1f dB) ranks %d of %d", budget.description, l.sqnr, r + 1, ranked.count)
        }
        return keep
    }
    func trial(_ k: Int) throws -> (holds: Bool, measure: Double) {
        if let r = cache[k] { return r }
        progress("accuracy: int8 with \(k) layer\(k == 1 ? "" : "s") kept FP32")
        let plan = planQuantization(fused, keepFloat: keep(k))
        var g = fused
        insertQuantization(&g, plan, parameters: c.parameters(for: plan).0, inputMeans: c.inputMeans)
        let a = try c.compare(try c.library(for: g, log: log))
        let r = (try budget.holds(a), try budget.measure(a))
        cache[k] = r
        return r
    }
    let first = try trial(0)
    if first.holds {
        return BudgetFit(keep: base, layerSQNR: [:], lines: ["accuracy budget (\(budget)): holds with every layer int8 (\(budget.format(first.measure)) on the calibration samples)"])
    }
    let plan = planQuantization(fused, keepFloat: base)
    ranked = try c.layerSQNR(fused, plan: plan, progress: progress, log: log).enumerated()
        .sorted { ($0.element.sqnr, $0.offset) < ($1.element.sqnr, $1.offset) }.map(\.element)
    // The fewest of the ranked layers that meet the budget: a doubling search, then bisection.
    var failing = 0, holding = ranked.count
    var k = 1
    while k < ranked.count {
        if try trial(k).holds { holding = k; break }
        failing = k
        k *= 2
    }
    if holding == ranked.count, !(try trial(ranked.count).holds) {
        throw KilnError("--accuracy-budget (\(budget)): not met even with every layer FP32 (\(budget.format(try trial(ranked.count).measure))): the FP32 kernels differ from the reference by more than the budget")
    }
    while holding - failing > 1 {
        let mid = (failing + holding) / 2
        if try trial(mid).holds { holding = mid } else { failing = mid }
    }
    var sqnr: [String: Double] = [:]
    for l in ranked { sqnr[fused.nodes[l.layer].name] = l.sqnr }
    var lines = [String(format: "accuracy budget (%@): every layer int8 gives %@; %d of %d layers kept FP32 give %@ (%d trial libraries)",
                        budget.description, budget.format(first.measure), holding, ranked.count, budget.format(try trial(holding).measure), cache.count)]
    for l in ranked.prefix(holding) {
        lines.append(String(format: "  kept FP32: %@, its int8 error alone SQNR %.1f dB", fused.nodes[l.layer].label, l.sqnr))
    }
    return BudgetFit(keep: keep(holding), layerSQNR: sqnr, lines: lines)
}
