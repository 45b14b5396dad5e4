import Foundation
import KilnCodegen

/// `NAME.report.html`: the compile report as pictures, in one self-contained file (inline CSS,
/// SVG and a little script; nothing fetched from a network). It shows the layers with their
/// precision, share of the run time and (int8) SQNR as bars, the arena over time, and how long
/// each compile step took. Unlike the Markdown and JSON reports it holds timings, so two compiles
/// of one model give different HTML files.
public struct HTMLReport {
    public var report: ModelReport
    /// Each node's first result, by node name (a quantized tensor's SQNR is looked up by it).
    public var results: [String: String] = [:]
    /// The arena's buffers and the nodes they live across (`EmittedModel.arena`, `.nodeNames`).
    public var arena: [ArenaBufferUse] = []
    public var arenaNodes: [String] = []
    /// The compile's steps and seconds.
    public var compileSteps: [(name: String, seconds: Double)] = []
    /// Each step of a run of the library on this machine (ms per run), or nil with `profileNote` saying why not.
    public var profile: [StepProfile]?
    public var profileNote = ""

    public init(report: ModelReport) { self.report = report }

    public var html: String {
        var h = ""
        let r = report
        h += """
            <!DOCTYPE html>
            <html lang="en"><head><meta charset="utf-8">
            <meta name="viewport" content="width=device-width, initial-scale=1">
            <title>\(htmlEscaped(r.name)): Kiln compile report</title>
            <script>
            window.kilnErrors = [];
            window.addEventListener('error', function (e) {
              window.kilnErrors.push(String(e.message));
              document.documentElement.setAttribute('data-errors', window.kilnErrors.join('; '));
            });
            </script>
            <style>\(Self.css)</style>
            </head><body>

            """
        h += "<h1>\(htmlEscaped(r.name)) <span class=\"sub\">compile report</span></h1>\n"
        let total = compileSteps.reduce(0) { $0 + $1.seconds }
        var facts: [(String, String)] = [
            ("model", (r.model as NSString).lastPathComponent),
            ("Kiln", r.kilnVersion),
            ("arena", "\(bytes(r.arenaBytes)) per instance"),
            ("weights", bytes(r.weightsBytes)),
            ("convs and matrix products", r.computeOps == 0 ? "none" : r.int8Ops == 0 ? "\(r.computeOps), all FP32" : "\(r.computeOps), int8: \(r.int8Ops)"),
            ("nodes", "\(r.nodes.count)"),
        ]
        if total > 0 { facts.append(("compile", String(format: "%.1f s", total))) }
        if let p = profile { facts.append(("one run here", String(format: "%.3f ms in steps", p.reduce(0) { $0 + $1.ms }))) }
        h += "<dl class=\"facts\">" + facts.map { "<div><dt>\(htmlEscaped($0.0))</dt><dd>\(htmlEscaped($0.1))</dd></div>" }.joined() + "</dl>\n"
        let int8 = !r.quantizedTensors.isEmpty || !r.layers.isEmpty
        h += "<nav><a href=\"#ops\">Time by op</a> <a href=\"#arena\">Arena over time</a> <a href=\"#steps\">Compile steps</a> <a href=\"#layers\">Layers</a>"
            + (int8 ? " <a href=\"#int8\">int8</a>" : "") + (r.notes.isEmpty ? "" : " <a href=\"#notes\">Notes</a>") + "</nav>\n"
        h += opsSection()
        h += arenaSection()
        h += stepsSection(total: total)
        h += layersSection()
        h += int8Section()
        if !r.notes.isEmpty {
            h += "<section id=\"notes\"><h2>Notes</h2><ul>" + r.notes.map { "<li>\(htmlEscaped($0))</li>" }.joined() + "</ul></section>\n"
        }
        h += "<footer>Written by <code>kiln compile</code>; the same figures as <code>\(htmlEscaped(r.name)).report.md</code> and <code>\(htmlEscaped(r.name)).report.json</code>, with this compile's timings.</footer>\n"
        h += "<script>\(Self.script)</script>\n</body></html>\n"
        return h
    }

    /// Milliseconds per run of each node's step, by node name (a step is named "node (op)").
    private var msByNode: [String: Double] {
        var ms: [String: Double] = [:]
        for s in profile ?? [] {
            let name = s.name.range(of: " (", options: .backwards).map { String(s.name[..<$0.lowerBound]) } ?? s.name
            ms[name, default: 0] += s.ms
        }
        return ms
    }

    private func layersSection() -> String {
        let r = report
        let ms = msByNode
        let totalMs = max(ms.values.reduce(0, +), 1e-12)
        let maxMs = max(ms.values.max() ?? 0, 1e-12)
        var sqnr: [String: Double] = [:]
        for t in r.quantizedTensors { if let d = t.sqnrDB { sqnr[t.tensor] = d } }
        let layerSQNR = Dictionary(r.layers.compactMap { l in l.sqnrDB.map { (l.node, $0) } }, uniquingKeysWith: { a, _ in a })
        let showSQNR = !sqnr.isEmpty || !layerSQNR.isEmpty
        var h = "<section id=\"layers\"><h2>Layers</h2>\n<p>"
        h += profile != nil
            ? "Each node in run order with its precision, its share of one run's time and, for quantized results, the SQNR of their quantization. " + htmlEscaped(profileNote)
            : "Each node in run order with its precision" + (showSQNR ? " and, for quantized results, the SQNR of their quantization" : "") + ". Time share not measured: " + htmlEscaped(profileNote)
        h += " Click a column's title to sort.</p>\n"
        h += "<label class=\"filter\"><input type=\"checkbox\" id=\"computeOnly\"> only convs and matrix products</label>\n"
        h += "<table class=\"sortable\" id=\"layerTable\"><thead><tr><th data-type=\"num\">#</th><th>node</th><th>op</th><th>from</th><th>result</th><th>precision</th>"
        if profile != nil { h += "<th data-type=\"num\">time per run</th>" }
        if showSQNR { h += "<th data-type=\"num\">SQNR</th>" }
        h += "</tr></thead><tbody>\n"
        for (i, n) in r.nodes.enumerated() {
            let compute = ["conv", "conv_transpose", "gemm", "matmul", "quantized_conv", "quantized_matmul"].contains(n.op)
            h += "<tr data-compute=\"\(compute ? 1 : 0)\"><td data-v=\"\(i)\">\(i)</td><td class=\"name\" title=\"\(htmlEscaped(n.name))\">\(htmlEscaped(n.name))</td><td>\(htmlEscaped(n.op))</td><td>\(htmlEscaped(n.onnx))</td><td class=\"type\">\(htmlEscaped(n.output))</td>"
            h += "<td>" + precisionBadge(n.precision ?? (n.op.hasPrefix("quantized_") ? "int8" : nil)) + "</td>"
            if profile != nil {
                let t = ms[n.name] ?? 0
                h += "<td data-v=\"\(t)\">" + bar(t / maxMs, label: String(format: "%.4f ms · %.1f%%", t, 100 * t / totalMs), kind: n.precision == "int8" ? "int8" : "time") + "</td>"
            }
            if showSQNR {
                let d = results[n.name].flatMap { sqnr[$0] } ?? layerSQNR[n.name]
                h += "<td data-v=\"\(d ?? -1)\">" + (d.map { bar(min(max($0, 0), 60) / 60, label: String(format: "%.1f dB", $0), kind: "sqnr") } ?? "") + "</td>"
            }
            h += "</tr>\n"
        }
        h += "</tbody></table></section>\n"
        return h
    }

    /// Time by op kind: where a run goes at a glance.
    private func opsSection() -> String {
        var h = "<section id=\"ops\"><h2>Time by op</h2>\n"
        guard let profile, !profile.isEmpty else {
            return h + "<p>Not measured: \(htmlEscaped(profileNote))</p></section>\n"
        }
        var byOp: [String: (ms: Double, count: Int)] = [:]
        let opOf = Dictionary(report.nodes.map { ($0.name, $0.op + ($0.precision == "int8" ? " (int8)" : "")) }, uniquingKeysWith: { a, _ in a })
        for s in profile {
            let node = s.name.range(of: " (", options: .backwards).map { String(s.name[..<$0.lowerBound]) } ?? s.name
            let op = opOf[node] ?? (s.name.range(of: " (", options: .backwards).map { String(s.name[$0.upperBound...].dropLast()) } ?? "other")
            byOp[op, default: (0, 0)].ms += s.ms
            byOp[op, default: (0, 0)].count += 1
        }
        let total = max(byOp.values.reduce(0) { $0 + $1.ms }, 1e-12)
        let rows = byOp.sorted { $0.value.ms != $1.value.ms ? $0.value.ms > $1.value.ms : $0.key < $1.key }
        let top = rows.first?.value.ms ?? 1
        h += "<p>One run's time on this machine by op, over \(profile.count) steps. \(htmlEscaped(profileNote))</p>\n<table class=\"bars\">"
        for (op, v) in rows {
            h += "<tr><th>\(htmlEscaped(op))</th><td class=\"count\">\(v.count)×</td><td>" + bar(v.ms / max(top, 1e-12), label: String(format: "%.4f ms · %.1f%%", v.ms, 100 * v.ms / total), kind: op.hasSuffix("(int8)") ? "int8" : "time") + "</td></tr>\n"
        }
        return h + "</table></section>\n"
    }

    private func int8Section() -> String {
        let r = report
        guard !r.quantizedTensors.isEmpty || !r.layers.isEmpty else { return "" }
        var h = "<section id=\"int8\"><h2>int8</h2>\n<p>\(htmlEscaped(r.summary)).</p>\n"
        if r.quantizedTensors.contains(where: { $0.sqnrDB != nil }) {
            h += "<h3>Quantized tensors: SQNR of their own quantization</h3>\n<p>Signal to quantization noise on the calibration samples (rounding inside the range, clipping outside); higher is better, the bar's end is 60 dB.</p>\n<table class=\"bars\">"
            for t in r.quantizedTensors {
                guard let d = t.sqnrDB else { continue }
                h += "<tr><th class=\"name\">\(htmlEscaped(t.tensor))</th><td class=\"count\">\(htmlEscaped(t.type))</td><td>" + bar(min(max(d, 0), 60) / 60, label: String(format: "%.1f dB", d), kind: d < 20 ? "low" : "sqnr") + "</td></tr>\n"
            }
            h += "</table>\n"
        } else if !r.quantizedTensors.isEmpty {
            h += "<p>\(r.quantizedTensors.count) quantized tensors, with the scales and zero points the model gives (NAME.report.md lists them).</p>\n"
        }
        if !r.layers.isEmpty {
            let maxMs = max(r.layers.flatMap { [$0.int8Ms ?? 0, $0.fp32Ms ?? 0] }.max() ?? 0, 1e-12)
            h += "<h3>Layer precision</h3>\n<p>Each layer the recipe quantizes, its precision and why; its step's time in int8 and in FP32 as measured when it was compiled.</p>\n"
            h += "<table class=\"sortable\"><thead><tr><th>layer</th><th>precision</th><th data-type=\"num\">int8 step</th><th data-type=\"num\">FP32 step</th><th data-type=\"num\">own int8 SQNR</th><th>why FP32</th></tr></thead><tbody>\n"
            for l in r.layers {
                let a = l.int8Ms.map { bar($0 / maxMs, label: String(format: "%.4f ms", $0), kind: "int8") } ?? ""
                let b = l.fp32Ms.map { bar($0 / maxMs, label: String(format: "%.4f ms", $0), kind: "fp32") } ?? ""
                let s = l.sqnrDB.map { bar(min(max($0, 0), 60) / 60, label: String(format: "%.1f dB", $0), kind: "sqnr") } ?? ""
                h += "<tr><td class=\"name\">\(htmlEscaped(l.node))</td><td>\(precisionBadge(l.precision == "int8" ? "int8" : "FP32"))</td><td data-v=\"\(l.int8Ms ?? -1)\">\(a)</td><td data-v=\"\(l.fp32Ms ?? -1)\">\(b)</td><td data-v=\"\(l.sqnrDB ?? -1)\">\(s)</td><td>\(htmlEscaped(l.reason ?? ""))</td></tr>\n"
            }
            h += "</tbody></table>\n"
        }
        return h + "</section>\n"
    }

    /// The arena over time: each buffer a rectangle from the node that writes it to the last that
    /// reads it, at its offset.
    private func arenaSection() -> String {
        var h = "<section id=\"arena\"><h2>Arena over time</h2>\n"
        let size = report.arenaBytes
        guard size > 0, !arena.isEmpty, !arenaNodes.isEmpty else {
            return h + "<p>The model needs no arena: every value lives in the caller's buffers or the weights.</p></section>\n"
        }
        let (w, ht, left, bottom, top) = (960.0, 360.0, 64.0, 28.0, 10.0)
        let n = Double(arenaNodes.count)
        // Bytes live at each node: a running sum of each buffer's start and end.
        var delta = [Int](repeating: 0, count: arenaNodes.count + 1)
        for b in arena where b.first <= b.last && b.last < arenaNodes.count {
            delta[b.first] += b.size
            delta[b.last + 1] -= b.size
        }
        var live: [Int] = [], running = 0
        for i in 0..<arenaNodes.count {
            running += delta[i]
            live.append(running)
        }
        let peak = live.max() ?? 0
        h += "<p>\(htmlEscaped(bytes(size))) per instance, shared by \(arena.count) buffers over \(arenaNodes.count) nodes; at most \(htmlEscaped(bytes(peak))) live at once. Each rectangle is a buffer at its offset, from the node that writes it to the last that reads it (hover for its values).</p>\n"
        h += "<svg class=\"arena\" viewBox=\"0 \(Int(-top)) \(Int(w + left + 8)) \(Int(ht + bottom + top))\" role=\"img\" aria-label=\"arena over time\">\n"
        h += "<rect x=\"\(left)\" y=\"0\" width=\"\(w)\" height=\"\(ht)\" class=\"frame\"/>\n"
        for k in 0...4 {
            let y = ht - Double(k) / 4 * ht
            h += "<line x1=\"\(left - 4)\" x2=\"\(left + w)\" y1=\"\(f(y))\" y2=\"\(f(y))\" class=\"grid\"/><text x=\"\(left - 6)\" y=\"\(f(y + 4))\" class=\"axis\" text-anchor=\"end\">\(htmlEscaped(bytes(size * k / 4)))</text>\n"
        }
        for (k, b) in arena.enumerated() {
            let x = left + Double(b.first) / n * w, bw = max(Double(b.last - b.first + 1) / n * w, 1)
            let y = ht - Double(b.offset + b.size) / Double(size) * ht, bh = max(Double(b.size) / Double(size) * ht, 0.75)
            let from = b.first < arenaNodes.count ? arenaNodes[b.first] : "?", to = b.last < arenaNodes.count ? arenaNodes[b.last] : "?"
            let values = b.values.prefix(6).joined(separator: ", ") + (b.values.count > 6 ? ", ..." : "")
            h += "<rect x=\"\(f(x))\" y=\"\(f(y))\" width=\"\(f(bw))\" height=\"\(f(bh))\" class=\"buf c\(k % 6)\"><title>\(htmlEscaped(values)): \(htmlEscaped(bytes(b.size))) at \(b.offset), nodes \(b.first) (\(htmlEscaped(from))) to \(b.last) (\(htmlEscaped(to)))</title></rect>\n"
        }
        // Bytes live at each node, as a line over the rectangles.
        let points = live.enumerated().map { i, v in "\(f(left + (Double(i) + 0.5) / n * w)),\(f(ht - Double(v) / Double(size) * ht))" }.joined(separator: " ")
        h += "<polyline points=\"\(points)\" class=\"live\"><title>bytes live at each node</title></polyline>\n"
        h += "<text x=\"\(f(left + w / 2))\" y=\"\(f(ht + 20))\" class=\"axis\" text-anchor=\"middle\">node, in run order (0 to \(arenaNodes.count - 1)) →</text>\n"
        h += "</svg></section>\n"
        return h
    }

    private func stepsSection(total: Double) -> String {
        var h = "<section id=\"steps\"><h2>Compile steps</h2>\n"
        guard !compileSteps.isEmpty else {
            return h + "<p>Not recorded: compiled with --no-time-steps, so that the report holds no timings and two compiles of the model give the same files.</p></section>\n"
        }
        let top = max(compileSteps.map(\.seconds).max() ?? 0, 1e-9)
        h += String(format: "<p>%.2f s in all, on this machine.</p>\n", total) + "<table class=\"bars\">"
        // Runs of steps under 1% of the whole (the graph passes) share one row.
        var rows: [(name: String, seconds: Double)] = []
        var small: [(name: String, seconds: Double)] = []
        func flush() {
            if small.count == 1 { rows.append(small[0]) }
            if small.count > 1 { rows.append(("\(small.first!.name) … \(small.last!.name) (\(small.count) steps)", small.reduce(0) { $0 + $1.seconds })) }
            small = []
        }
        for s in compileSteps {
            if s.seconds < 0.01 * total { small.append(s) } else { flush(); rows.append(s) }
        }
        flush()
        for s in rows {
            h += "<tr><th>\(htmlEscaped(s.name))</th><td>" + bar(s.seconds / top, label: s.seconds < 0.1 ? String(format: "%.1f ms", s.seconds * 1000) : String(format: "%.2f s", s.seconds), kind: "step") + "</td></tr>\n"
        }
        return h + "</table></section>\n"
    }

    private func precisionBadge(_ p: String?) -> String {
        guard let p else { return "" }
        let kind = p == "int8" ? "int8" : "fp32"
        let short = p == "int8" ? "int8" : "FP32"
        return "<span class=\"badge \(kind)\" title=\"\(htmlEscaped(p))\">\(short)</span>"
    }

    /// A horizontal bar filled to `fraction` (0...1) with its label.
    private func bar(_ fraction: Double, label: String, kind: String) -> String {
        let pct = fraction.isFinite ? min(max(fraction, 0), 1) * 100 : 0
        return "<div class=\"bar\"><span class=\"fill \(kind)\" style=\"width:\(String(format: "%.2f", pct))%\"></span><span class=\"label\">\(htmlEscaped(label))</span></div>"
    }

    private func f(_ x: Double) -> String { String(format: "%.2f", x) }

    private func bytes(_ n: Int) -> String {
        let d = Double(n)
        if n >= 1 << 30 { return String(format: "%.2f GiB", d / Double(1 << 30)) }
        if n >= 1 << 20 { return String(format: "%.2f MiB", d / Double(1 << 20)) }
        if n >= 1 << 10 { return String(format: "%.1f KiB", d / Double(1 << 10)) }
        return "\(n) B"
    }

    static let css = """
        body{font:14px/1.45 system-ui,-apple-system,'Segoe UI',sans-serif;margin:24px auto;max-width:1120px;padding:0 16px;color:#1d232b;background:#fff}
        h1{font-size:24px;margin:0 0 12px}h1 .sub{font-weight:400;color:#66707c}h2{font-size:18px;margin:28px 0 8px;border-bottom:1px solid #dde2e8;padding-bottom:4px}h3{font-size:15px;margin:18px 0 6px}
        nav a{margin-right:14px;color:#2357a8;text-decoration:none}nav{margin:8px 0 4px}
        .facts{display:flex;flex-wrap:wrap;gap:8px 28px;margin:0 0 8px}.facts div{min-width:120px}.facts dt{color:#66707c;font-size:12px}.facts dd{margin:0;font-weight:600}
        table{border-collapse:collapse;width:100%;font-size:13px}th,td{text-align:left;padding:3px 8px;border-bottom:1px solid #eef1f4;vertical-align:middle}
        thead th{position:sticky;top:0;background:#f6f8fa;cursor:pointer;user-select:none;white-space:nowrap}
        td.name,th.name{font-family:ui-monospace,Menlo,Consolas,monospace;font-size:12px;word-break:break-all}#layerTable td.name{max-width:300px;white-space:nowrap;overflow:hidden;text-overflow:ellipsis;direction:rtl;text-align:left}td.type{font-family:ui-monospace,Menlo,monospace;font-size:12px;color:#4a535e}
        table.bars th{font-weight:500;width:30%;word-break:break-all}td.count{width:60px;color:#66707c;white-space:nowrap}
        .bar{position:relative;min-width:180px;height:18px;background:#f1f3f6;border-radius:3px;overflow:hidden}
        .bar .fill{position:absolute;left:0;top:0;bottom:0;border-radius:3px}.bar .label{position:relative;padding-left:6px;font-size:12px;line-height:18px;white-space:nowrap}
        .fill.time{background:#9bbbe8}.fill.int8{background:#6cc4a8}.fill.fp32{background:#f2b36f}.fill.sqnr{background:#b9a3e3}.fill.low{background:#ef8a8a}.fill.step{background:#c3cbd6}
        .badge{display:inline-block;padding:0 6px;border-radius:8px;font-size:11px;font-weight:600}.badge.int8{background:#d3f0e6;color:#0f6b4f}.badge.fp32{background:#fde5c8;color:#8a4b06}
        svg.arena{width:100%;height:auto;background:#fff}svg .frame{fill:#fafbfc;stroke:#c9d0d8}svg .grid{stroke:#e6e9ee}svg .axis{font-size:11px;fill:#66707c}
        svg .buf{stroke:#fff;stroke-width:.3}svg .buf:hover{stroke:#000;stroke-width:1}svg .live{fill:none;stroke:#c0392b;stroke-width:1.2}
        .c0{fill:#8fb3e0}.c1{fill:#86cdb4}.c2{fill:#f1bf83}.c3{fill:#c2aee6}.c4{fill:#e8a3a3}.c5{fill:#a9c98a}
        .filter{display:block;margin:4px 0 8px;color:#4a535e}footer{margin:32px 0 8px;color:#66707c;font-size:12px}
        """

    static let script = """
        (function () {
          function sortTable(table, col, numeric, dir) {
            var body = table.tBodies[0];
            var rows = Array.prototype.slice.call(body.rows);
            rows.sort(function (a, b) {
              var x = a.cells[col], y = b.cells[col];
              if (numeric) {
                return dir * (parseFloat(x.getAttribute('data-v') || '0') - parseFloat(y.getAttribute('data-v') || '0'));
              }
              return dir * x.textContent.localeCompare(y.textContent);
            });
            rows.forEach(function (r) { body.appendChild(r); });
          }
          document.querySelectorAll('table.sortable').forEach(function (table) {
            var heads = table.tHead.rows[0].cells;
            Array.prototype.forEach.call(heads, function (th, col) {
              var dir = -1;
              th.addEventListener('click', function () {
                dir = -dir;
                sortTable(table, col, th.getAttribute('data-type') === 'num', th.getAttribute('data-type') === 'num' ? -dir : dir);
              });
            });
          });
          var only = document.getElementById('computeOnly');
          if (only) {
            only.addEventListener('change', function () {
              document.querySelectorAll('#layerTable tbody tr').forEach(function (r) {
                r.style.display = only.checked && r.getAttribute('data-compute') !== '1' ? 'none' : '';
              });
            });
          }
          document.documentElement.setAttribute('data-ready', '1');
        })();
        """
}

/// Escapes text for HTML (element content and quoted attributes).
func htmlEscaped(_ s: String) -> String {
    var out = ""
    out.reserveCapacity(s.utf8.count)
    for c in s.unicodeScalars {
        switch c {
        case "&": out += "&amp;"
        case "<": out += "&lt;"
        case ">": out += "&gt;"
        case "\"": out += "&quot;"
        case "'": out += "&#39;"
        default: out.unicodeScalars.append(c)
        }
    }
    return out
}
