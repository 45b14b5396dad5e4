import KilnIR

/// Which kernel runs a node on which CPU: oneDNN's or Kiln's own, Winograd or direct. Rules of
/// the shapes and the CPU, not timings, so every library and handle of a model computes the same
/// bits on one machine. The code generator and the layout pass both decide by them.

/// The right padding that makes oneDNN's pooling produce the output size ONNX asks for (oneDNN
/// derives the output size from the padding), or nil when oneDNN cannot run the window: not
/// 2-D, dilated, a padding outside [0, kernel), or an average with counted padding whose
/// divisor oneDNN would compute differently (ONNX leaves a ceil-mode overhang out of it).
/// The code generator and the layout pass both decide by it.
public func oneDNNPoolingRightPadding(_ geo: WindowGeometry, average: Bool, countIncludePad: Bool) -> [Int]? {
    guard geo.input.count == 2, geo.dilations.allSatisfy({ $0 == 1 }) else { return nil }
    var right: [Int] = []
    for i in 0..<2 {
        let r = (geo.output[i] - 1) * geo.strides[i] + geo.kernel[i] - geo.input[i] - geo.padsBegin[i]
        if r < 0 || r >= geo.kernel[i] || geo.padsBegin[i] >= geo.kernel[i] { return nil }
        if average && countIncludePad && r != geo.padsEnd[i] { return nil }
        right.append(r)
    }
    return right
}

/// Whether oneDNN 2.6's deconvolution primitive computes this transposed convolution exactly as
/// ONNX does (1 to 3 spatial axes, the output size consistent with oneDNN's rule
/// `(dst − kernel_extent + pad_l + pad_r) / stride + 1 == src`, with ONNX's output padding
/// inside pad_r's slack). The code generator and the layout pass both decide by it.
public func oneDNNDeconvolutionApplies(_ geo: WindowGeometry) -> Bool {
    guard (1...3).contains(geo.input.count) else { return false }
    for i in geo.input.indices {
        let extent = (geo.kernel[i] - 1) * geo.dilations[i] + 1
        let span = geo.output[i] - extent + geo.padsBegin[i] + geo.padsEnd[i]
        guard geo.padsBegin[i] >= 0, geo.padsEnd[i] + geo.strides[i] > 0, span >= 0,
              span / geo.strides[i] + 1 == geo.input[i] else { return false }
    }
    return true
}

/// Kiln's own FP32 conv kernels (include/kiln/direct_conv.hpp): for CPUs with AVX2 but without
/// AVX-512, and their Winograd form where kilnWinogradOnAVX512 says on CPUs with AVX-512 too.
public enum KilnConvKernel: Sendable, Equatable {
    /// kiln::DirectConv: one group, or groups whose output channels are a multiple of 8.
    case direct
    /// kiln::GroupedConv: groups of 2 or 4 channels in and as many out, channels a multiple of 8.
    case grouped
}

/// The kernel of Kiln's that can take a 2-D conv of `c` input and `k` output channels in `group`
/// groups with window `kernel`, by shape alone: the code generator adds the element type, the
/// layout, constant weights and, for `--direct-conv auto`, the rule of kilnDirectConvPreferred.
/// One group with a 1×1 window stays with oneDNN, whose 1×1 kernels are as fast.
public func kilnConvKernel(inputChannels c: Int, outputChannels k: Int, group: Int, kernel: [Int]) -> KilnConvKernel? {
    guard kernel.count == 2, group >= 1, c % group == 0, k % group == 0 else { return nil }
    if group == 1 { return kernel == [1, 1] ? nil : .direct }
    if (k / group) % KernelLimits.directConvGroupMultiple == 0 { return .direct }
    if c == k, c % KernelLimits.groupedConvChannelMultiple == 0, KernelLimits.groupedConvGroupWidths.contains(c / group) { return .grouped }
    return nil
}

/// Where `--direct-conv auto` gives a conv the direct kernel takes that kernel: at least 8 input
/// channels per group (below, oneDNN's kernel is faster), or a tanh after the conv (oneDNN 2.6's
/// AVX2 tanh post-op is slow). A rule of the shapes, not a timing: every library and handle of a
/// model computes the same bits on one machine. Measurements: docs/optimizations.md.
public func kilnDirectConvPreferred(inputChannels c: Int, group: Int, postOps: [PostOp]) -> Bool {
    c / max(group, 1) >= 8 || postOps.contains(.tanh)
}

/// Where Kiln's Winograd F(4×4, 3×3) (a conv kilnWinogradApplies to) also replaces oneDNN's
/// kernels on CPUs with AVX-512, not only on AVX2 ones. When oneDNN's own Winograd cannot take the
/// conv (`oneDNNWinograd` false: a residual sum in the channels-last layout, an activation other
/// than ReLU, channel counts not multiples of 16), from 16 output tiles of 4×4 (14×14) on; when
/// it can, from 196 tiles (56×56) with at most 256 input and output channels together (Kiln's
/// kernel then keeps each thread's chunk of transformed tiles and products in L2): below, or
/// with more channels, oneDNN's AVX-512 F(4×4, 3×3) is as fast or faster. A rule of the shapes and
/// the CPU (Zen 4's AVX2 FMA rate equals its AVX-512 one), not a timing; the per-conv
/// measurements are in docs/optimizations.md.
public func kilnWinogradOnAVX512(inputChannels c: Int, outputChannels k: Int, outputHeight oh: Int, outputWidth ow: Int,
                                 oneDNNWinograd: Bool) -> Bool {
    let tiles = ((oh + 3) / 4) * ((ow + 3) / 4)
    return oneDNNWinograd ? tiles >= 196 && c + k <= 256 : tiles >= 16
}

/// Where Kiln's direct form runs as Winograd F(4×4, 3×3) (include/kiln/direct_conv.hpp): a 3×3
/// stride-1 conv of one group without dilation whose input channels are a multiple of 8; under
/// `--winograd auto` also at least 16 input channels, 9 output tiles of 4×4 and 12 MFLOP (below,
/// the transforms, the 4× larger transformed weights or the threads' start cost more than the
/// products save). `output` is the conv's NCHW output shape.
public func kilnWinogradApplies(policy: WinogradPolicy, group: Int, geometry geo: WindowGeometry,
                                inputChannels c: Int, output ys: [Int]) -> Bool {
    guard policy != .off, group == 1, geo.kernel == [3, 3], geo.strides == [1, 1], geo.dilations == [1, 1],
          c % KernelLimits.winogradChannelMultiple == 0
    else { return false }
    let tiles = ((ys[2] + 3) / 4) * ((ys[3] + 3) / 4)
    let flops = 2 * 9 * c * ys.reduce(1, *)
    return policy == .always || (c >= 16 && tiles >= 9 && flops >= 12_000_000)
}

/// Whether oneDNN 2.6's Winograd kernels take a 3×3 conv with these channel counts and post-ops:
/// channels that fill its 16-wide blocks, and ReLU and sum as the only post-ops (SiLU, clip, tanh,
/// ... are refused).
public func oneDNNWinogradTakes(outputChannels k: Int, inputChannels c: Int, postOps: [PostOp]) -> Bool {
    postOps.allSatisfy({ $0 == .relu || $0 == .sum }) && k % 16 == 0 && c % 16 == 0
}

/// The thresholds that Kiln's C++ kernels need as well as the rules above: written into the
/// generated include/kiln/limits.hpp (`limitsHeader`), so that no number is copied by hand.
public enum KernelLimits {
    /// kiln::DirectConv takes grouped convs whose groups have a multiple of this many output channels.
    public static let directConvGroupMultiple = 8
    /// kiln::GroupedConv takes groups of these many channels in and out ...
    public static let groupedConvGroupWidths = [2, 4]
    /// ... with a channel count that is a multiple of this.
    public static let groupedConvChannelMultiple = 8
    /// Kiln's Winograd F(4×4, 3×3) takes input channels that are a multiple of this.
    public static let winogradChannelMultiple = 8
}

/// The text of include/kiln/limits.hpp.
public func limitsHeader() -> String {
    """
    // Kiln runtime: the thresholds Kiln's kernel-choice rules (Sources/KilnTarget/KernelRules.swift)
    // share with the C++ kernels. Generated from KernelLimits — do not edit: change the Swift and
    // regenerate with `KILN_UPDATE_SNAPSHOTS=1 swift test --filter limitsHeader`.
    #pragma once

    namespace kiln {
    namespace limits {

    // kiln::DirectConv takes grouped convs whose groups have a multiple of this many output channels.
    constexpr int kDirectConvGroupMultiple = \(KernelLimits.directConvGroupMultiple);
    // kiln::GroupedConv takes groups of these many channels in and out, with a channel count that
    // is a multiple of kGroupedConvChannelMultiple.
    constexpr int kGroupedConvGroupWidths[] = {\(KernelLimits.groupedConvGroupWidths.map(String.init).joined(separator: ", "))};
    constexpr int kGroupedConvChannelMultiple = \(KernelLimits.groupedConvChannelMultiple);
    // Kiln's Winograd F(4×4, 3×3) takes input channels that are a multiple of this.
    constexpr int kWinogradChannelMultiple = \(KernelLimits.winogradChannelMultiple);

    }  // namespace limits
    }  // namespace kiln

    """
}
