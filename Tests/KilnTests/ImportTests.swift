import Foundation
import Testing
import KilnIR
import KilnONNX
import KilnDriver
import KilnPasses

@Suite struct ImportTests {
    /// Conv → Relu with weights as raw_data, bias as float_data, and a Constant node.
    func convModel() -> ModelBuilder {
        var b = ModelBuilder()
        b.input("x", .f32, [.fixed(1), .fixed(2), .fixed(5), .fixed(5)])
        b.initializer("w", floats([3, 2, 3, 3]) { Float($0 % 7) * 0.1 - 0.3 })
        var bias = Onnx_TensorProto()
        bias.name = "b"
        bias.dataType = 1
        bias.dims = [3]
        bias.floatData = [0.5, -0.5, 0.25]
        b.model.graph.initializer.append(bias)
        b.node("Conv", ["x", "w", "b"], ["c"], attributes: [ModelBuilder.ints("pads", [1, 1, 1, 1])])
        b.node("Constant", [], ["k"], attributes: [ModelBuilder.tensor("value", .scalar(2))])
        b.node("Mul", ["c", "k"], ["m"])
        b.node("Relu", ["m"], ["y"])
        b.output("y")
        return b
    }

    @Test func importsTypedAndRawData() throws {
        let g = try loadONNXModel(path: try convModel().write())
        #expect(g.nodes.map(\.op.name) == ["conv", "mul", "relu"])
        #expect(g.nodes[0].origin == NodeOrigin(opType: "Conv", version: 11))
        let bias = g.values[g.nodes[0].inputs[2]!].constant!
        #expect(bias.floats == [0.5, -0.5, 0.25])
        let k = g.values[g.nodes[1].inputs[1]!].constant!
        #expect(k.floats == [2])
    }

    @Test func initializersListedAsInputsAreConstants() throws {
        var b = convModel()
        b.model.graph.input.append(ModelBuilder.valueInfo("w", .f32, [.fixed(3), .fixed(2), .fixed(3), .fixed(3)]))
        let g = try loadONNXModel(path: try b.write())
        #expect(g.inputs.map { g.values[$0].name } == ["x"])
    }

    @Test func externalDataIsReadNextToTheModel() throws {
        let dir = temporaryDirectory()
        var b = ModelBuilder()
        b.input("x", .f32, [.fixed(4)])
        var w = Onnx_TensorProto()
        w.name = "w"
        w.dataType = 1
        w.dims = [4]
        w.dataLocation = .external
        var loc = Onnx_StringStringEntryProto()
        loc.key = "location"
        loc.value = "weights.bin"
        var off = Onnx_StringStringEntryProto()
        off.key = "offset"
        off.value = "4"
        w.externalData = [loc, off]
        b.model.graph.initializer.append(w)
        b.node("Add", ["x", "w"], ["y"])
        b.output("y")
        let path = try b.write(in: dir)
        // Missing file: a clear error naming it.
        #expect(throws: KilnError.self) { try loadONNXModel(path: path) }
        do {
            _ = try loadONNXModel(path: path)
        } catch let e as KilnError {
            #expect(e.message.contains("weights.bin"))
        }
        var bytes = [UInt8](repeating: 0xFF, count: 4)
        bytes += Tensor(.f32, shape: [4], floats: [1, 2, 3, 4]).rawBytes()
        try Data(bytes).write(to: URL(fileURLWithPath: (dir as NSString).appendingPathComponent("weights.bin")))
        let g = try loadONNXModel(path: path)
        #expect(g.values[g.nodes[0].inputs[1]!].constant!.floats == [1, 2, 3, 4])
    }

    @Test func unknownOpBecomesAnUnsupportedNodeThatNamesIt() throws {
        var b = ModelBuilder()
        b.input("x", .f32, [.fixed(2)])
        b.node("FancyOp", ["x"], ["y"], name: "my_fancy")
        b.output("y")
        let path = try b.write()
        let r = try inspectModel(path: path)
        #expect(!r.isSupported)
        #expect(r.unsupported.count == 1)
        #expect(r.unsupported[0].name == "my_fancy")
        #expect(r.unsupported[0].opType == "FancyOp")
        #expect(r.unsupported[0].opset == 17)
        #expect(throws: KilnError.self) { try loadModel(path: path) }
    }

    @Test func unsupportedAttributeValueIsReported() throws {
        var b = ModelBuilder()
        b.input("x", .f32, [.fixed(1), .fixed(1), .fixed(4), .fixed(4)])
        b.initializer("scales", Tensor(.f32, shape: [4], floats: [1, 1, 2, 2]))
        b.node("Resize", ["x", "", "scales"], ["y"], name: "up", attributes: [ModelBuilder.string("mode", "cubic")])
        b.node("Relu", ["y"], ["z"], attributes: [ModelBuilder.int("bogus", 1)], )
        b.output("z")
        let r = try inspectModel(path: try b.write())
        #expect(r.unsupported.map(\.opType) == ["Resize", "Relu"])
        #expect(r.unsupported[0].reason.contains("cubic"))
        #expect(r.unsupported[1].reason.contains("bogus"))
    }

    @Test func legacyOpsetAttributesBecomeOperands() throws {
        // Opset 9: Slice with attributes, Unsqueeze with axes attribute, Clip-6 bounds.
        var b = ModelBuilder(opset: 9)
        b.input("x", .f32, [.fixed(2), .fixed(6)])
        b.node("Slice", ["x"], ["s"], attributes: [ModelBuilder.ints("starts", [1]), ModelBuilder.ints("ends", [5]),
                                                   ModelBuilder.ints("axes", [1])])
        b.node("Unsqueeze", ["s"], ["u"], attributes: [ModelBuilder.ints("axes", [0])])
        var lo = Onnx_AttributeProto(); lo.name = "min"; lo.type = .float; lo.f = 2
        var hi = Onnx_AttributeProto(); hi.name = "max"; hi.type = .float; hi.f = 8
        b.node("Clip", ["u"], ["y"], attributes: [lo, hi])
        b.output("y")
        let g = try loadModel(path: try b.write())
        let x = floats([2, 6]) { Float($0) }
        let y = try evaluateReference(g, inputs: ["x": x])["y"]!
        #expect(y.shape == [1, 2, 4])
        #expect(y.floats == [2, 2, 3, 4, 7, 8, 8, 8])
    }

    @Test func nodesOutOfOrderAreSorted() throws {
        var b = ModelBuilder()
        b.input("x", .f32, [.fixed(3)])
        b.node("Relu", ["a"], ["y"])
        b.node("Neg", ["x"], ["a"])
        b.output("y")
        let g = try loadModel(path: try b.write())
        let y = try evaluateReference(g, inputs: ["x": Tensor(.f32, shape: [3], floats: [-1, 2, -3])])["y"]!
        #expect(y.floats == [1, 0, 3])
    }

    /// PaddlePaddle and tf2onnx write dim_value -1 (or 0) for a dynamic dimension, as ONNX
    /// Runtime reads it: a dimension to pin, never an error once pinned.
    @Test(arguments: [-1, 0])
    func nonPositiveDimValuesAreDynamic(_ marker: Int) throws {
        var b = ModelBuilder()
        b.input("x", .f32, [.fixed(1), .fixed(marker)])
        b.node("Relu", ["x"], ["y"])
        b.output("y", .f32, [.fixed(1), .fixed(marker)])
        let path = try b.write()
        #expect(throws: KilnError.self) { try loadModel(path: path) }
        let g = try loadModel(path: path, inputShapes: ["x": [1, 3]])
        let y = try evaluateReference(g, inputs: ["x": Tensor(.f32, shape: [1, 3], floats: [-1, 2, -3])])["y"]!
        #expect(y.floats == [0, 2, 0])
    }

    @Test func danglingNamesAndCyclesAreErrors() throws {
        var b = ModelBuilder()
        b.input("x", .f32, [.fixed(3)])
        b.node("Relu", ["nowhere"], ["y"])
        b.output("y")
        #expect(throws: KilnError.self) { try loadONNXModel(path: try b.write()) }
        var c = ModelBuilder()
        c.input("x", .f32, [.fixed(3)])
        c.node("Add", ["x", "b"], ["a"])
        c.node("Relu", ["a"], ["b"])
        c.output("b")
        #expect(throws: KilnError.self) { try loadONNXModel(path: try c.write()) }
    }
}
