import KilnIR

/// Rewrites an upsampling transposed convolution whose kernel equals its stride (2×2 stride 2,
/// as U-Nets and segmentation heads upsample) as a 1×1 convolution to K·s² channels followed by
/// DepthToSpace. Each output pixel then receives exactly one tap: output (h·s + i, w·s + j, k)
/// is channel (i·s + j)·K + k of the 1×1 conv at (h, w), DepthToSpace's DCR order. oneDNN 2.6's
/// deconvolution without AVX-512 is several times slower than its 1×1 convolution.
///
///     before: %y = conv_transpose(%x, %w[C, K, 2, 2], %b[K]) {strides=[2, 2] post_ops=[relu]}
///     after:  %t = conv(%x, %w'[4K, C, 1, 1], %b'[4K]) {post_ops=[relu]}; %y = depth_to_space(%t) {blocksize=2}
///
/// Only f32, 2-D, one group, no dilation, no pads or output padding, constant weights and bias,
/// square kernel equal to the strides (bias and activations move onto the 1×1 conv: they act on
/// each element alone).
public func convTransposeAsConv(_ g: inout Graph) {
    var nodes: [Node] = []
    for n in g.nodes {
        guard case .convTranspose(let a) = n.op, let x = n.inputs[0], n.inputs.count > 1, let w = n.inputs[1],
              let wt = g.values[w].constant, wt.elementType == .f32, !a.conv.postOps.contains(.sum), a.conv.group == 1,
              let xs = g.values[x].type.shape, xs.count == 4, g.values[x].type.elementType == .f32,
              let ys = g.values[n.outputs[0]].type.shape, wt.shape.count == 4,
              let geo = try? convTransposeGeometry(input: Array(xs.dropFirst(2)), kernel: Array(wt.shape.dropFirst(2)), attributes: a, n.label),
              geo.kernel[0] == geo.kernel[1], geo.kernel[0] > 1, geo.strides == geo.kernel, geo.dilations == [1, 1],
              (geo.padsBegin + geo.padsEnd).allSatisfy({ $0 == 0 }), geo.output == [xs[2] * geo.kernel[0], xs[3] * geo.kernel[1]]
        else { nodes.append(n); continue }
        let bias = n.inputs.count > 2 ? n.inputs[2].flatMap { g.values[$0].constant } : nil
        if n.inputs.count > 2, n.inputs[2] != nil, bias == nil { nodes.append(n); continue }
        let s = geo.kernel[0], c = wt.shape[0], k = wt.shape[1], blocks = s * s
        let from = wt.floats
        var weights = [Float](repeating: 0, count: blocks * k * c)
        for ci in 0..<c {
            for ko in 0..<k {
                for i in 0..<s {
                    for j in 0..<s {
                        weights[((i * s + j) * k + ko) * c + ci] = from[((ci * k + ko) * s + i) * s + j]
                    }
                }
            }
        }
        var operands: [ValueID?] = [x, g.addConstant("\(n.name)_as_conv_weights", Tensor(.f32, shape: [blocks * k, c, 1, 1], floats: weights))]
        if let bias {
            let b = bias.floats
            operands.append(g.addConstant("\(n.name)_as_conv_bias", Tensor(.f32, shape: [blocks * k], floats: (0..<blocks * k).map { b[$0 % k] })))
        }
        let t = g.addValue("\(g.values[n.outputs[0]].name)_blocks", TensorType(.f32, [ys[0], blocks * k, xs[2], xs[3]]))
        nodes.append(Node(name: "\(n.name)_as_conv", op: .conv(ConvAttributes(kernelShape: [1, 1], postOps: a.conv.postOps)),
                          inputs: operands, outputs: [t], origin: n.origin))
        nodes.append(Node(name: n.name, op: .depthToSpace(blockSize: s, crd: false), inputs: [t], outputs: n.outputs, origin: n.origin))
    }
    g.nodes = nodes
}
