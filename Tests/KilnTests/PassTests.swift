import Foundation
import Testing
import KilnIR
import KilnPasses
import KilnDriver

/// One test group per pass, each showing the IR before and after.
@Suite struct PassTests {
    /// x (dynamic batch) → Conv → Reshape(x, [Shape(x)[0], -1]) written the way exporters do.
    func dynamicReshapeModel() -> ModelBuilder {
        var b = ModelBuilder()
        b.input("x", .f32, [.symbolic("batch"), .fixed(2), .fixed(3), .fixed(3)])
        b.initializer("w", floats([4, 2, 1, 1]) { Float($0) * 0.25 - 1 })
        b.initializer("zero", .scalar(int: 0))
        b.initializer("minus_one", .vector(ints: [-1]))
        b.initializer("axes0", .vector(ints: [0]))
        b.node("Conv", ["x", "w"], ["c"])
        b.node("Shape", ["c"], ["s"])
        b.node("Gather", ["s", "zero"], ["n"])
        b.node("Unsqueeze", ["n", "axes0"], ["n1"])
        b.node("Concat", ["n1", "minus_one"], ["target"], attributes: [ModelBuilder.int("axis", 0)])
        b.node("Reshape", ["c", "target"], ["flat"])
        b.node("Identity", ["flat"], ["y"])
        b.output("y", .f32, [.symbolic("batch"), .symbolic("features")])
        return b
    }

    @Test func pinningMakesADynamicModelStatic() throws {
        let path = try dynamicReshapeModel().write()
        let before = try inspectModel(path: path)
        #expect(before.unpinned.count == 1)
        #expect(before.unpinned[0].symbol == "batch")
        #expect(before.macs == nil)

        let g = try loadModel(path: path, inputShapes: ["x": [3, 2, 3, 3]])
        try verify(g, requireStaticShapes: true)
        // The Shape → Gather → Unsqueeze → Concat chain folded away: Conv and Reshape remain.
        #expect(g.nodes.map(\.op.name) == ["conv", "reshape"])
        let target = g.values[g.nodes[1].inputs[1]!].constant!
        #expect(target.ints == [3, -1])
        #expect(g.values[g.outputs[0]].type == TensorType(.f32, [3, 36]))
        let out = try evaluateReference(g, inputs: ["x": floats([3, 2, 3, 3]) { Float($0 % 5) }])["y"]!
        #expect(out.shape == [3, 36])
    }

    @Test func pinningChecksRankAndFixedDimensions() throws {
        var g = try KilnONNX_load(try dynamicReshapeModel().write())
        #expect(throws: KilnError.self) { try pinInputShapes(&g, ["x": [1, 2, 3]]) }
        #expect(throws: KilnError.self) { try pinInputShapes(&g, ["x": [1, 5, 3, 3]]) }
        #expect(throws: KilnError.self) { try pinInputShapes(&g, ["y": [1, 2, 3, 3]]) }
        try pinInputShapes(&g, ["x": [7, 2, 3, 3]])
        #expect(g.values[g.inputs[0]].type.shape == [7, 2, 3, 3])
    }

    @Test func inferShapesFoldsConstantSubgraphs() throws {
        var g = Graph()
        let x = g.addValue("x", TensorType(.f32, [3, 1]))
        let a = g.addConstant("a", .vector(ints: [2, 3]))
        let b = g.addConstant("b", .vector(ints: [1, 1]))
        let sum = g.addValue("sum", TensorType(.f32, dims: [.symbolic("?")]))
        let y = g.addValue("y", TensorType(.f32, dims: [.symbolic("?")]))
        g.inputs = [x]
        g.outputs = [y]
        g.nodes = [
            Node(name: "add", op: .binary(.add), inputs: [a, b], outputs: [sum], origin: NodeOrigin(opType: "Add", version: 14)),
            Node(name: "expand", op: .expand, inputs: [x, sum], outputs: [y], origin: NodeOrigin(opType: "Expand", version: 13)),
        ]
        try verify(g)
        try inferShapes(&g)
        // before: add(a, b) feeds expand's shape; after: add folded to the constant [3, 4]
        #expect(g.nodes.map(\.name) == ["expand"])
        #expect(g.values[sum].constant?.ints == [3, 4])
        #expect(g.values[y].type == TensorType(.f32, [3, 4]))
    }

    @Test func removeIdentitiesRewiresReaders() throws {
        var g = Graph()
        let x = g.addValue("x", TensorType(.f32, [4]))
        let i = g.addValue("i", TensorType(.f32, [4]))
        let d = g.addValue("d", TensorType(.f32, [4]))
        let y = g.addValue("y", TensorType(.f32, [4]))
        g.inputs = [x]
        g.outputs = [y]
        g.nodes = [
            Node(name: "id", op: .identity, inputs: [x], outputs: [i], origin: NodeOrigin(opType: "Identity", version: 16)),
            Node(name: "drop", op: .dropout, inputs: [i], outputs: [d], origin: NodeOrigin(opType: "Dropout", version: 13)),
            Node(name: "relu", op: .unary(.relu), inputs: [d], outputs: [y], origin: NodeOrigin(opType: "Relu", version: 14)),
        ]
        removeIdentities(&g)
        #expect(g.nodes.map(\.name) == ["relu"])
        #expect(g.nodes[0].inputs == [x])
        try verify(g)
    }

    /// Slices, Expands, Tiles and Casts that give their input back unchanged go; a slice that cuts,
    /// one that reverses, an Expand that grows and a Cast that converts stay.
    @Test func copiesThatChangeNothingAreRemoved() throws {
        var g = Graph()
        let o = NodeOrigin(opType: "test", version: 17)
        let x = g.addValue("x", TensorType(.f32, [2, 6]))
        g.inputs = [x]
        func v(_ name: String, _ t: TensorType) -> ValueID { g.addValue(name, t) }
        func c(_ name: String, _ ints: [Int64]) -> ValueID { g.addConstant(name, .vector(ints: ints)) }
        let r = v("r", TensorType(.f32, [2, 6]))
        let full = v("full", TensorType(.f32, [2, 6])), cut = v("cut", TensorType(.f32, [2, 4]))
        let rev = v("rev", TensorType(.f32, [2, 6])), same = v("same", TensorType(.f32, [2, 6]))
        let grow = v("grow", TensorType(.f32, [3, 2, 6])), tiled = v("tiled", TensorType(.f32, [2, 6]))
        let f32 = v("f32", TensorType(.f32, [2, 6])), s32 = v("s32", TensorType(.s32, [2, 6]))
        g.nodes = [
            Node(name: "relu", op: .unary(.relu), inputs: [x], outputs: [r], origin: o),
            Node(name: "full", op: .slice, inputs: [r, c("s0", [0]), c("e0", [100]), c("a0", [1]), c("t0", [1])], outputs: [full], origin: o),
            Node(name: "cut", op: .slice, inputs: [full, c("s1", [1]), c("e1", [5]), c("a1", [1])], outputs: [cut], origin: o),
            Node(name: "rev", op: .slice, inputs: [full, c("s2", [-1]), c("e2", [-100]), c("a2", [1]), c("t2", [-1])], outputs: [rev], origin: o),
            Node(name: "same", op: .expand, inputs: [rev, c("sh", [1, 6])], outputs: [same], origin: o),
            Node(name: "grow", op: .expand, inputs: [same, c("sh3", [3, 1, 1])], outputs: [grow], origin: o),
            Node(name: "tile", op: .tile, inputs: [same, c("rep", [1, 1])], outputs: [tiled], origin: o),
            Node(name: "f32", op: .cast(to: .f32), inputs: [tiled], outputs: [f32], origin: o),
            Node(name: "s32", op: .cast(to: .s32), inputs: [f32], outputs: [s32], origin: o),
        ]
        g.outputs = [cut, grow, s32]
        removeIdentities(&g)
        #expect(g.nodes.map(\.name) == ["relu", "cut", "rev", "grow", "s32"])
        #expect(g.nodes[1].inputs[0] == r && g.nodes[2].inputs[0] == r)
        #expect(g.nodes[3].inputs[0] == rev && g.nodes[4].inputs[0] == rev)
        try verify(g)
    }

    @Test func identityOfAGraphInputStays() throws {
        var g = Graph()
        let x = g.addValue("x", TensorType(.f32, [4]))
        let y = g.addValue("y", TensorType(.f32, [4]))
        g.inputs = [x]
        g.outputs = [y]
        g.nodes = [Node(name: "id", op: .identity, inputs: [x], outputs: [y], origin: NodeOrigin(opType: "Identity", version: 16))]
        removeIdentities(&g)
        #expect(g.nodes.count == 1)
    }

    @Test func identityProducingAGraphOutputHandsItsNameToTheProducer() throws {
        var g = Graph()
        let x = g.addValue("x", TensorType(.f32, [4]))
        let r = g.addValue("r", TensorType(.f32, [4]))
        let y = g.addValue("y", TensorType(.f32, [4]))
        g.inputs = [x]
        g.outputs = [y]
        g.nodes = [
            Node(name: "relu", op: .unary(.relu), inputs: [x], outputs: [r], origin: NodeOrigin(opType: "Relu", version: 14)),
            Node(name: "id", op: .identity, inputs: [r], outputs: [y], origin: NodeOrigin(opType: "Identity", version: 16)),
        ]
        removeIdentities(&g)
        #expect(g.nodes.map(\.name) == ["relu"])
        #expect(g.outputs == [r])
        #expect(g.values[r].name == "y")
        try verify(g)
    }

    @Test func deadCodeIsRemoved() throws {
        var g = Graph()
        let x = g.addValue("x", TensorType(.f32, [4]))
        let a = g.addValue("a", TensorType(.f32, [4]))
        let b = g.addValue("b", TensorType(.f32, [4]))
        g.inputs = [x]
        g.outputs = [a]
        g.nodes = [
            Node(name: "relu", op: .unary(.relu), inputs: [x], outputs: [a], origin: NodeOrigin(opType: "Relu", version: 14)),
            Node(name: "exp", op: .unary(.exp), inputs: [x], outputs: [b], origin: NodeOrigin(opType: "Exp", version: 13)),
        ]
        eliminateDeadCode(&g)
        #expect(g.nodes.map(\.name) == ["relu"])
    }

    @Test func verifierCatchesBrokenGraphs() throws {
        var g = Graph()
        let x = g.addValue("x", TensorType(.f32, [4]))
        let a = g.addValue("a", TensorType(.f32, [4]))
        let b = g.addValue("b", TensorType(.f32, [4]))
        g.inputs = [x]
        g.outputs = [b]
        // Reads `a` before it is written.
        g.nodes = [
            Node(name: "n1", op: .unary(.relu), inputs: [a], outputs: [b], origin: NodeOrigin(opType: "Relu", version: 14)),
            Node(name: "n0", op: .unary(.relu), inputs: [x], outputs: [a], origin: NodeOrigin(opType: "Relu", version: 14)),
        ]
        #expect(throws: KilnError.self) { try verify(g) }
        g.nodes.reverse()
        try verify(g)
        g.values[b].type = TensorType(.f32, dims: [.symbolic("n")])
        #expect(throws: KilnError.self) { try verify(g, requireStaticShapes: true) }
    }

    @Test func textFormIsReadable() throws {
        let g = try loadModel(path: try dynamicReshapeModel().write(), inputShapes: ["x": [1, 2, 3, 3]])
        let text = printIR(g)
        #expect(text.hasPrefix("graph test(%x: f32[1x2x3x3]) -> (%y)\n"))
        #expect(text.contains("%c = conv(%x, %w) {group=1} : f32[1x4x3x3]  # Conv_0 Conv-11"))
        #expect(text.contains("%y = reshape(%c, %target) : f32[1x36]  # Reshape_5 Reshape-14"))
        #expect(!text.contains("identity"))
    }
}

import KilnONNX
func KilnONNX_load(_ path: String) throws -> Graph { try loadONNXModel(path: path) }
