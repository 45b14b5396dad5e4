import Foundation
import Testing
import KilnDriver
import KilnIR
import KilnONNX

/// What real exporters write that a strict reading of ONNX would trip on, each in a small model
/// built here, compiled through the public pipeline and run through the library's C API against
/// the reference interpreter:
/// - tf2onnx and Keras: tensor names with ':' and '/' ("input_1:0", "model/dense/BiasAdd:0");
/// - older PyTorch exporters: numeric and '::' names ("0", "onnx::Add_5"), nodes without names;
/// - names that are C keywords, not ASCII, or that map to one C identifier;
/// - duplicate node names, unused initializers and inputs, outputs without type information,
///   inputs without a shape;
/// - opset imports of domains the graph never uses (ai.onnx.ml, com.microsoft), the default
///   domain spelled "ai.onnx";
/// - initializers that shadow graph inputs (IR < 4 exporters list every weight as an input).
/// (PaddlePaddle's dim_value -1 is ImportTests.nonPositiveDimValuesAreDynamic.)
@Suite struct ExporterQuirkTests {
    /// Compiles `b` (shared library) and runs it on `inputs`; returns its outputs and the reference
    /// interpreter's.
    func compileAndCompare(_ b: ModelBuilder, _ inputs: [String: Tensor], name: String,
                           shapes: [String: [Int]] = [:]) throws -> (library: [String: Tensor], reference: [String: Tensor]) {
        let path = try b.write()
        var o = CompileOptions(modelPath: path, outputDirectory: temporaryDirectory(), name: name, kilnVersion: "test")
        o.library = .shared
        o.inputShapes = shapes
        let r = try compileModel(o)
        let lib = try CLibrary(path: try #require(r.products.sharedLibrary), name: name)
        let out = try lib.makeInstance().run(inputs)
        let reference = try evaluateReference(try loadModel(path: path, inputShapes: shapes), inputs: inputs)
        return (out, reference)
    }

    func expectClose(_ a: [String: Tensor], _ b: [String: Tensor]) {
        #expect(Set(a.keys) == Set(b.keys), "\(a.keys.sorted()) vs \(b.keys.sorted())")
        for (k, x) in b {
            guard let y = a[k] else { continue }
            #expect(y.shape == x.shape, "\(k)")
            let worst = zip(x.floatValues, y.floatValues).map { abs($0 - $1) }.max() ?? 0
            #expect(worst <= 1e-5, "\(k): \(worst)")
        }
    }

    static let x = Tensor(.f32, shape: [1, 4], floats: [-1.5, 0.25, 2, -0.125])

    /// tf2onnx's and old PyTorch's names, C keywords, non-ASCII names, names that collide once
    /// made C identifiers ("a:0", "a/0", "a_0"), nodes without names and with the same name.
    @Test func oddNamesEverywhere() throws {
        var b = ModelBuilder()
        b.input("input_1:0", .f32, [.fixed(1), .fixed(4)])
        b.initializer("onnx::Add_5", Tensor(.f32, shape: [4], floats: [1, -1, 0.5, 2]))
        b.node("Relu", ["input_1:0"], ["0"], name: "")
        b.node("Add", ["0", "onnx::Add_5"], ["a:0"], name: "StatefulPartitionedCall/model/dense/BiasAdd")
        b.node("Neg", ["a:0"], ["a/0"], name: "dup")
        b.node("Sigmoid", ["a/0"], ["a_0"], name: "dup")
        b.node("Mul", ["a:0", "a_0"], ["Identity:0"], name: "")
        b.node("Tanh", ["0"], ["int"], name: "return")
        b.node("Abs", ["a/0"], ["größe"])
        b.output("Identity:0", .f32, [.fixed(1), .fixed(4)])
        b.output("int", .f32, [.fixed(1), .fixed(4)])
        b.output("größe", .f32, [.fixed(1), .fixed(4)])
        let (lib, ref) = try compileAndCompare(b, ["input_1:0": Self.x], name: "odd_names")
        expectClose(lib, ref)
    }

    /// Opset imports of domains no node uses, beside the default one (spelled "" or "ai.onnx").
    @Test(arguments: ["", "ai.onnx"])
    func unusedDomainsInTheOpsetImports(defaultDomain: String) throws {
        var b = ModelBuilder(opset: 13)
        b.model.opsetImport[0].domain = defaultDomain
        for (domain, version) in [("ai.onnx.ml", 2), ("com.microsoft", 1), ("ai.onnx.preview.training", 1), ("com.microsoft.nchwc", 1)] {
            var o = Onnx_OperatorSetIdProto()
            o.domain = domain
            o.version = Int64(version)
            b.model.opsetImport.append(o)
        }
        b.input("x", .f32, [.fixed(1), .fixed(4)])
        b.node("Relu", ["x"], ["y"])
        b.output("y", .f32, [.fixed(1), .fixed(4)])
        let (lib, ref) = try compileAndCompare(b, ["x": Self.x], name: "domains")
        expectClose(lib, ref)
        #expect(lib["y"]?.floats == [0, 0.25, 2, 0])
    }

    /// IR 3 exporters list each initializer among the graph's inputs: those are constants, and the
    /// library takes only the real input.
    @Test func initializersShadowingInputs() throws {
        var b = ModelBuilder(opset: 9)
        b.model.irVersion = 3
        b.input("x", .f32, [.fixed(1), .fixed(4)])
        b.input("w", .f32, [.fixed(4), .fixed(3)])
        b.input("bias", .f32, [.fixed(3)])
        b.initializer("w", floats([4, 3]) { Float($0 % 5) - 2 })
        b.initializer("bias", Tensor(.f32, shape: [3], floats: [0.5, 0, -0.5]))
        b.node("MatMul", ["x", "w"], ["m"])
        b.node("Add", ["m", "bias"], ["y"])
        b.output("y", .f32, [.fixed(1), .fixed(3)])
        let (lib, ref) = try compileAndCompare(b, ["x": Self.x], name: "shadowed")
        expectClose(lib, ref)
        let g = try loadModel(path: try b.write())
        #expect(g.inputs.map { g.values[$0].name } == ["x"])
    }

    /// An initializer no node reads and an input no node reads (tf2onnx keeps both): accepted;
    /// the unused input stays an input of the library, as ONNX Runtime keeps it.
    @Test func unusedInitializersAndInputs() throws {
        var b = ModelBuilder()
        b.input("x", .f32, [.fixed(1), .fixed(4)])
        b.input("unused_input", .f32, [.fixed(2)])
        b.initializer("unused_weight", floats([16]) { Float($0) })
        b.node("Relu", ["x"], ["y"])
        b.output("y", .f32, [.fixed(1), .fixed(4)])
        let (lib, ref) = try compileAndCompare(b, ["x": Self.x, "unused_input": Tensor(.f32, shape: [2], floats: [1, 2])], name: "unused")
        expectClose(lib, ref)
    }

    /// Outputs declared with a name only (no type: some tf2onnx and Keras models) and an input
    /// with an element type but no shape at all, pinned with --input-shape.
    @Test func outputsWithoutTypesAndInputsWithoutShapes() throws {
        var b = ModelBuilder()
        var vi = ModelBuilder.valueInfo("x", .f32, [])
        vi.type.tensorType.clearShape()
        b.model.graph.input.append(vi)
        b.node("Sigmoid", ["x"], ["y"])
        var out = Onnx_ValueInfoProto()
        out.name = "y"
        b.model.graph.output.append(out)
        let (lib, ref) = try compileAndCompare(b, ["x": Self.x], name: "untyped", shapes: ["x": [1, 4]])
        expectClose(lib, ref)
    }
}
