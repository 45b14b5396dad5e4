/// The kernel-choice options of `kiln compile` (--winograd, --direct-conv, --int8).

/// Which algorithm a 3×3, stride-1, ungrouped FP32 convolution (with constant weights) runs with.
/// oneDNN's Winograd (AVX-512 CPUs; channel counts multiples of 16): oneDNN never picks it by
/// itself; it wins on most of these layers and loses on some small ones, so by default each
/// library measures both on the CPU it runs on. Kiln's F(4×4, 3×3) in its own conv kernel (CPUs
/// without AVX-512; input channels multiples of 8): chosen by a rule of the shapes.
public enum WinogradPolicy: String, Sendable, CaseIterable {
    /// oneDNN's: at create time each such conv runs both ways, and keeps Winograd only if it is
    /// faster by 5%. Kiln's: convs with at least 16 input channels, 9 output tiles of 4×4 and 12 MFLOP.
    case auto
    /// Winograd wherever oneDNN or Kiln's kernel implements it for the CPU (tests and experiments).
    case always
    /// Direct convolutions only: outputs identical across machines, at some cost in speed.
    case off
}

/// Which kernel runs an FP32 channels-last convolution that Kiln's direct kernel takes (2-D, one
/// group, a window larger than 1×1, constant weights and bias):
/// on CPUs without AVX-512 Kiln's kernel beats oneDNN 2.6's jit:avx2 one, and oneDNN's AVX-512
/// kernels beat Kiln's where they exist.
public enum DirectConvPolicy: String, Sendable, CaseIterable {
    /// Kiln's kernel where oneDNN, as it dispatches on the CPU the library runs on, has no AVX-512
    /// kernels (ONEDNN_MAX_CPU_ISA counts), for convs with at least 8 input channels or a tanh
    /// after them; oneDNN's elsewhere.
    case auto
    /// Kiln's kernel on every CPU (tests and experiments).
    case always
    /// oneDNN's kernels only.
    case off
}

/// How quantized convs and matrix products run on a CPU without VNNI, where oneDNN 2.6's int8
/// kernels add pairs of u8·s8 products in 16 bits with saturation.
public enum Int8Policy: String, Sendable, CaseIterable {
    /// The QDQ graph's function on every CPU: without VNNI, oneDNN's int8 kernels only where they
    /// cannot saturate (u8 source, weights within ±64), the f32 form of the definition elsewhere.
    case exact
    /// oneDNN's int8 kernels on every CPU, as ONNX Runtime and OpenVINO run QDQ graphs: about 2×
    /// faster without VNNI, where a pair of large products can saturate (rare; the error where it
    /// happens is unbounded). Identical to `exact` on CPUs with VNNI.
    case fast
}
