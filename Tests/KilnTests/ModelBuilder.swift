import Foundation
import KilnCodegen
import KilnDriver
import KilnIR
import KilnONNX
import KilnToolchain
import SwiftProtobuf
import KilnTarget

/// Builds small ONNX models in tests, the way an exporter would write them.
struct ModelBuilder {
    var model = Onnx_ModelProto()

    init(opset: Int = 17) {
        model.irVersion = 8
        var o = Onnx_OperatorSetIdProto()
        o.domain = ""
        o.version = Int64(opset)
        model.opsetImport = [o]
        model.graph.name = "test"
    }

    static func valueInfo(_ name: String, _ type: ElementType, _ dims: [Dim]) -> Onnx_ValueInfoProto {
        var vi = Onnx_ValueInfoProto()
        vi.name = name
        var tt = Onnx_TypeProto.Tensor()
        tt.elemType = Int32(onnxCode(type))
        var shape = Onnx_TensorShapeProto()
        for d in dims {
            var dim = Onnx_TensorShapeProto.Dimension()
            switch d {
            case .fixed(let v): dim.dimValue = Int64(v)
            case .symbolic(let s): dim.dimParam = s
            }
            shape.dim.append(dim)
        }
        tt.shape = shape
        var tp = Onnx_TypeProto()
        tp.tensorType = tt
        vi.type = tp
        return vi
    }

    mutating func input(_ name: String, _ type: ElementType = .f32, _ dims: [Dim]) {
        model.graph.input.append(Self.valueInfo(name, type, dims))
    }

    mutating func output(_ name: String, _ type: ElementType = .f32, _ dims: [Dim] = []) {
        model.graph.output.append(Self.valueInfo(name, type, dims))
    }

    mutating func initializer(_ name: String, _ t: Tensor) {
        model.graph.initializer.append(exportTensor(t, name: name))
    }

    mutating func node(_ op: String, _ inputs: [String], _ outputs: [String], name: String? = nil,
                       attributes: [Onnx_AttributeProto] = []) {
        var n = Onnx_NodeProto()
        n.opType = op
        n.input = inputs
        n.output = outputs
        n.name = name ?? "\(op)_\(model.graph.node.count)"
        n.attribute = attributes
        model.graph.node.append(n)
    }

    static func ints(_ name: String, _ v: [Int]) -> Onnx_AttributeProto {
        var a = Onnx_AttributeProto()
        a.name = name
        a.type = .ints
        a.ints = v.map { Int64($0) }
        return a
    }

    static func int(_ name: String, _ v: Int) -> Onnx_AttributeProto {
        var a = Onnx_AttributeProto()
        a.name = name
        a.type = .int
        a.i = Int64(v)
        return a
    }

    static func string(_ name: String, _ v: String) -> Onnx_AttributeProto {
        var a = Onnx_AttributeProto()
        a.name = name
        a.type = .string
        a.s = Data(v.utf8)
        return a
    }

    static func tensor(_ name: String, _ t: Tensor) -> Onnx_AttributeProto {
        var a = Onnx_AttributeProto()
        a.name = name
        a.type = .tensor
        a.t = exportTensor(t)
        return a
    }

    func data() throws -> Data { try model.serializedData() }

    /// Writes the model into a fresh temporary folder and returns the file's path.
    func write(name: String = "model.onnx", in dir: String? = nil) throws -> String {
        let folder = dir ?? temporaryDirectory()
        let path = (folder as NSString).appendingPathComponent(name)
        try data().write(to: URL(fileURLWithPath: path))
        return path
    }
}

func temporaryDirectory() -> String {
    let dir = (NSTemporaryDirectory() as NSString).appendingPathComponent("kiln-test-\(UUID().uuidString)")
    try? FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
    return dir
}

func floats(_ shape: [Int], _ f: (Int) -> Float) -> Tensor {
    Tensor(.f32, shape: shape, floats: (0..<shapeProduct(shape)).map(f))
}

/// Generates, builds (shared library) and runs a graph through its C API, as a user would.
func compileAndRun(_ g: Graph, _ inputs: [String: Tensor], name: String,
                   winograd: WinogradPolicy = .auto, directConv: DirectConvPolicy = .auto) throws -> (outputs: [String: Tensor], emitted: EmittedModel) {
    let emitted = try emitModel(g, options: CodegenOptions(name: name, kilnVersion: "test", winograd: winograd, directConv: directConv))
    let products = try buildLibrary(header: emitted.header, source: emitted.source, weights: emitted.weights,
                                    options: BuildOptions(outputDirectory: temporaryDirectory(), name: name, library: .shared,
                                                          includeDirectory: runtimeIncludeDirectory()))
    let outputs = try CLibrary(path: products.sharedLibrary!, name: name).makeInstance().run(inputs)
    return (outputs, emitted)
}
