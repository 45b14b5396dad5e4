/// Checks the structural invariants of a graph: value ids in range, every value written once,
/// topological order, node arity, and (when `requireStaticShapes`) static shapes everywhere;
/// with `checkTypeRules`, that each node's outputs have the element types and shapes its op's type
/// rule gives. Passes run it between steps in tests; the driver runs it before code generation.
public func verify(_ g: Graph, requireStaticShapes: Bool = false, checkTypeRules: Bool = false) throws {
    var defined = [Bool](repeating: false, count: g.values.count)
    func check(_ v: ValueID, _ what: String) throws {
        guard v >= 0 && v < g.values.count else { throw KilnError("verifier: \(what) refers to value #\(v), which does not exist") }
    }
    for v in g.inputs {
        try check(v, "graph input")
        defined[v] = true
    }
    for (i, val) in g.values.enumerated() where val.constant != nil {
        defined[i] = true
        if let c = val.constant, c.type != val.type {
            throw KilnError("verifier: constant '\(val.name)' holds \(c.type) but is typed \(val.type)")
        }
        if let c = val.constant, c.count != shapeProduct(c.shape) {
            throw KilnError("verifier: constant '\(val.name)' has \(c.count) elements for shape \(shapeString(c.shape))")
        }
    }
    for n in g.nodes {
        if case .unsupported(let reason) = n.op {
            throw KilnError("\(n.label) is not supported: \(reason)", unsupported: true)
        }
        for case let v? in n.inputs {
            try check(v, n.label)
            guard defined[v] else {
                throw KilnError("verifier: \(n.label) reads '\(g.values[v].name)' before it is computed")
            }
        }
        for v in n.outputs {
            try check(v, n.label)
            guard !defined[v] else {
                throw KilnError("verifier: '\(g.values[v].name)' is written twice (second time by \(n.label))")
            }
            defined[v] = true
        }
    }
    for v in g.outputs {
        try check(v, "graph output")
        guard defined[v] else { throw KilnError("verifier: graph output '\(g.values[v].name)' is never computed") }
    }
    if requireStaticShapes {
        for (i, val) in g.values.enumerated() where defined[i] && !val.type.isStatic {
            throw KilnError("verifier: '\(val.name)' has a dynamic shape \(val.type); pin the inputs with --input-shape")
        }
    }
    if checkTypeRules {
        for n in g.nodes {
            let inputs = n.inputs.map { $0.map { g.values[$0].type } }
            let constants = n.inputs.map { $0.flatMap { g.values[$0].constant } }
            let types: [TensorType]
            do {
                types = try inferOutputTypes(n, inputs: inputs, constants: constants)
            } catch let e as KilnError {
                throw KilnError("verifier: the type rule of \(n.label) fails: \(e.message)")
            }
            for (v, t) in zip(n.outputs, types) where g.values[v].type.elementType != t.elementType || g.values[v].type.shape != t.shape {
                throw KilnError("verifier: \(n.label) writes '\(g.values[v].name)' as \(g.values[v].type), but its type rule gives \(t)")
            }
        }
    }
}
