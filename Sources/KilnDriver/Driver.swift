import Foundation
import KilnIR
import KilnONNX
import KilnPasses
import KilnReference

/// The front half of Kiln's pipeline as one list: read the model, pin its input shapes,
/// simplify. The CLI and the tests call this; nothing here prints (progress goes through
/// the callback).
public func loadModel(path: String, inputShapes: [String: [Int]] = [:], passes: PassOptions = PassOptions(),
                      progress: ProgressHandler = { _ in }) throws -> Graph {
    let bytes = (try? FileManager.default.attributesOfItem(atPath: path)[.size] as? Int) ?? nil
    progress(ProgressUpdate("import \(path)" + (bytes.map { $0 >= 1 << 20 ? " (\($0 >> 20) MB)" : "" } ?? "")))
    var g = try loadONNXModel(path: path, inputShapes: inputShapes)
    try Pipeline.simplify(&g, inputShapes: inputShapes, options: passes, progress: { progress(ProgressUpdate($0)) })
    return g
}

/// Checks user-supplied inputs against the graph and runs the reference interpreter.
public func evaluateReference(_ g: Graph, inputs: [String: Tensor]) throws -> [String: Tensor] {
    for id in g.inputs {
        let v = g.values[id]
        guard let t = inputs[v.name] else {
            throw KilnError("no value given for input '\(v.name)' (\(v.type)); pass --input \(v.name)=FILE.npy")
        }
        guard t.elementType == v.type.elementType else {
            throw KilnError("input '\(v.name)' must be \(v.type.elementType), the file holds \(t.elementType)")
        }
        guard t.shape == v.type.shape else {
            throw KilnError("input '\(v.name)' must have shape \(shapeString(v.type.shape ?? [])), the file holds \(shapeString(t.shape))")
        }
    }
    return try ReferenceInterpreter(g).run(inputs)
}

/// Makes a value name safe as a file name: anything but letters, digits, '.', '-' and '_' becomes '_'.
public func sanitizedFileName(_ name: String) -> String {
    var s = String(name.map { c -> Character in
        c.isASCII && (c.isLetter || c.isNumber || c == "." || c == "-" || c == "_") ? c : "_"
    })
    if s.isEmpty || s == "." || s == ".." { s = "_" + s }
    return s
}

/// Top-1 accuracy of logits (last axis = classes) against integer labels.
public func top1Accuracy(logits: Tensor, labels: Tensor) throws -> (correct: Int, total: Int) {
    guard let classes = logits.shape.last, classes > 0 else { throw KilnError("the output has no class axis") }
    let rows = logits.count / classes
    guard labels.count == rows else {
        throw KilnError("\(labels.count) labels for \(rows) rows of logits (\(shapeString(logits.shape)))")
    }
    let vals = logits.floatValues, labs = labels.int64Values
    var correct = 0
    for r in 0..<rows {
        var best = 0
        for c in 1..<classes where vals[r * classes + c] > vals[r * classes + best] { best = c }
        if Int64(best) == labs[r] { correct += 1 }
    }
    return (correct, rows)
}

/// Parses `NAME=1x3x224x224` (also accepts commas as separators).
public func parseInputShape(_ text: String) throws -> (String, [Int]) {
    guard let eq = text.lastIndex(of: "=") else {
        throw KilnError("--input-shape '\(text)' should look like NAME=1x3x224x224")
    }
    let name = String(text[..<eq])
    let dims = text[text.index(after: eq)...].split(whereSeparator: { $0 == "x" || $0 == "," || $0 == "X" })
    var shape: [Int] = []
    for d in dims {
        guard let v = Int(d), v >= 0, v < Int(Int32.max) else {
            throw KilnError("--input-shape '\(text)': '\(d)' is not a dimension")
        }
        shape.append(v)
    }
    guard !name.isEmpty else { throw KilnError("--input-shape '\(text)' has no input name") }
    return (name, shape)
}

