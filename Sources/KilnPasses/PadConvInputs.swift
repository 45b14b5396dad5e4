import KilnIR
import KilnTarget

/// Gives a convolution with begin pads wider than 3 an explicit zero Pad in front and no pads of
/// its own. oneDNN 2.6's direct kernels without AVX-512 (jit:avx2, sse41, and jit_dw for
/// depthwise) take a left pad only up to their unroll width; wider ones (DeepLabV3's atrous
/// convs, MixNet's 11×11 depthwise convs) fall back to im2col and GEMM at half the speed or
/// less. The Pad, channels-last like the conv, costs one copy of the input.
///
///     before: %y = conv(%x, %w) {dilations=[12, 12] pads=[12, 12, 12, 12]}
///     after:  %p = pad(%x, [0, 0, 12, 12, 0, 0, 12, 12]) {mode=constant}; %y = conv(%p, %w) {dilations=[12, 12]}
///
/// Only f32 convs of 4-D tensors whose input is not a dequantized value (the quantized
/// lowering matches DequantizeLinear → Conv). With `kilnConvKernels` (`--direct-conv` not off),
/// not the convs Kiln's own kernels take on those CPUs (include/kiln/direct_conv.hpp, by
/// kilnConvKernel and kilnDirectConvPreferred; constant weights):
/// they read the pads as zeros and skip the taps that read only pads, where the explicit Pad
/// would cost a copy and the taps full work (DeepLabV3's atrous convs).
public func padConvInputs(_ g: inout Graph, kilnConvKernels: Bool = true) {
    let producers = g.producers()
    var nodes: [Node] = []
    for var n in g.nodes {
        defer { nodes.append(n) }
        guard case .conv(var a) = n.op, let x = n.inputs[0], n.inputs.count > 1, let w = n.inputs[1],
              let xs = g.values[x].type.shape, xs.count == 4, g.values[x].type.elementType == .f32,
              let ws = g.values[w].type.shape, ws.count == 4 else { continue }
        if let p = producers[x], case .dequantizeLinear = g.nodes[p].op { continue }
        if kilnConvKernels, g.values[w].constant != nil,
           let kernel = kilnConvKernel(inputChannels: xs[1], outputChannels: ws[0], group: a.group, kernel: Array(ws.dropFirst(2))),
           kernel == .grouped || kilnDirectConvPreferred(inputChannels: xs[1], group: a.group, postOps: a.postOps) { continue }
        guard let geo = try? windowGeometry(input: Array(xs.dropFirst(2)), kernel: Array(ws.dropFirst(2)), strides: a.strides,
                                            pads: a.pads, dilations: a.dilations, autoPad: a.autoPad, n.label),
              (geo.padsBegin + geo.padsEnd).max()! > 3 else { continue }
        let pads = [0, 0] + geo.padsBegin + [0, 0] + geo.padsEnd
        let padded = g.addValue("\(g.values[x].name)_padded",
                                TensorType(.f32, [xs[0], xs[1], xs[2] + pads[2] + pads[6], xs[3] + pads[3] + pads[7]]))
        nodes.append(Node(name: "\(n.name)_pad", op: .pad(mode: .constant),
                          inputs: [x, g.addConstant("\(n.name)_pads", .vector(ints: pads.map(Int64.init)))],
                          outputs: [padded], origin: n.origin))
        a.pads = [0, 0, 0, 0]
        a.autoPad = .notSet
        n.op = .conv(a)
        n.inputs[0] = padded
    }
    g.nodes = nodes
}
