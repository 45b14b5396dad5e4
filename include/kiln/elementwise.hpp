// Kiln's C++ runtime, elementwise kernels: unary maps and broadcast binary ops, Where,
// per-channel scale and shift (BatchNormalization, dequantize/requantize around it), and
// QuantizeLinear/DequantizeLinear.
// Every kernel takes its element types as template parameters (f32, f16, bf16, the integer types,
// u8/s8 for the quantized graphs). Included through runtime.hpp; internal linkage.
#pragma once

#include "core.hpp"

#include <immintrin.h>
#include <vector>

namespace kiln {
namespace {

// y[i] = f(x[i]) over n elements, computing in the input's compute type.
template <class X, class Y, class F>
inline void map(const X* x, Y* y, int64_t n, F f) {
#pragma omp parallel for simd if (n >= kParallelThreshold)
    for (int64_t i = 0; i < n; i++) y[i] = store_c<Y>(f(load(x[i])));
}

// y = table[x] over `rows` rows of n bytes (x and y advancing by their strides), 64 lookups at a
// time: the table is four AVX-512 registers, loaded once, a lookup two vpermi2b and a blend, each
// row's last partial 64 bytes masked. One row is lookup8's chunk; many short ones the requantized
// inputs of a channels-last concatenation (ShuffleNet's 58 channels a pixel). Compiled for AVX-512
// VBMI whatever the library's --cpu target; called only where the CPU has it (has_vbmi).
__attribute__((target("avx512f,avx512bw,avx512vbmi"))) inline void lookup8_vbmi(
        const uint8_t* __restrict x, int64_t x_stride, uint8_t* __restrict y, int64_t y_stride, int64_t rows, int64_t n,
        const uint8_t* __restrict table) {
    const __m512i t0 = _mm512_loadu_si512(table), t1 = _mm512_loadu_si512(table + 64);
    const __m512i t2 = _mm512_loadu_si512(table + 128), t3 = _mm512_loadu_si512(table + 192);
    const int64_t whole = n / 64 * 64;
    const __mmask64 tail = n == whole ? 0 : ~0ULL >> (64 - (n - whole));
    for (int64_t r = 0; r < rows; r++) {
        const uint8_t* src = x + r * x_stride;
        uint8_t* dst = y + r * y_stride;
        for (int64_t k = 0; k < n; k += 64) {
            const __mmask64 m = k < whole ? ~0ULL : tail;
            const __m512i v = _mm512_maskz_loadu_epi8(m, src + k);
            const __m512i lo = _mm512_permutex2var_epi8(t0, v, t1);
            const __m512i hi = _mm512_permutex2var_epi8(t2, v, t3);
            _mm512_mask_storeu_epi8(dst + k, m, _mm512_mask_blend_epi8(_mm512_movepi8_mask(v), lo, hi));
        }
    }
}

// Whether the CPU has AVX-512 VBMI (asked once).
inline bool has_vbmi() {
    static const bool vbmi = __builtin_cpu_supports("avx512vbmi");
    return vbmi;
}

// y[i] = table[x[i]] over n 8-bit elements (u8, or s8 read as its bit pattern): any function of
// one 8-bit input, tabulated once. 1-byte results on a CPU with AVX-512 VBMI take lookup8_vbmi
// (measured: 35 GB/s on one core, 20x the arithmetic of a dequantize-hardswish-quantize loop);
// otherwise one load per element (about 3 GB/s). Exact either way.
template <class T>
inline void lookup8(const uint8_t* __restrict x, T* __restrict y, int64_t n, const T* __restrict table) {
    const bool vbmi = sizeof(T) == 1 && has_vbmi();
    constexpr int64_t chunk = 1 << 14;
    const int64_t chunks = (n + chunk - 1) / chunk;
    // Parallel from the usual size even though one core's vpermi2b keeps up alone in isolation: in a
    // model the input was just written by both cores, and a single thread would fetch half of it
    // from the other core's cache (MobileNetV3's 131,712-element hard-swish tables: 0.057 -> 0.035 ms).
#pragma omp parallel for if (n >= kParallelThreshold)
    for (int64_t c = 0; c < chunks; c++) {
        const int64_t k = c * chunk, end = std::min(n, k + chunk);
        if constexpr (sizeof(T) == 1) {
            if (vbmi) {
                lookup8_vbmi(x + k, 0, (uint8_t*)y + k, 0, 1, end - k, (const uint8_t*)table);
                continue;
            }
        }
        for (int64_t i = k; i < end; i++) y[i] = table[x[i]];
    }
}

// y = f(a, b) with numpy broadcasting (strides 0 on broadcast axes).
template <class A, class B, class Y, class F>
inline void binary(const A* a, const int64_t* sa, const B* b, const int64_t* sb, Y* y, int rank,
                   const int64_t* shape, F f) {
    const int64_t* strides[2] = {sa, sb};
    for_each_strided<2>(rank, shape, strides, [&](int64_t k, const int64_t* o) {
        y[k] = store_c<Y>(f(load(a[o[0]]), load(b[o[1]])));
    });
}

// y = c ? a : b with broadcasting.
template <class T>
inline void where(const bool* c, const int64_t* sc, const T* a, const int64_t* sa, const T* b,
                  const int64_t* sb, T* y, int rank, const int64_t* shape) {
    const int64_t* strides[3] = {sc, sa, sb};
    for_each_strided<3>(rank, shape, strides, [&](int64_t k, const int64_t* o) {
        y[k] = c[o[0]] ? a[o[1]] : b[o[2]];
    });
}

template <class T, class P>
inline void batch_norm_nhwc(const T* x, const P* scale, const P* bias, const P* mean, const P* var, float eps, T* y,
                            int64_t pixels, int64_t c) {
    float sc[1024], sh[1024];
    for (int64_t c0 = 0; c0 < c; c0 += 1024) {
        const int64_t cn = std::min<int64_t>(1024, c - c0);
        for (int64_t k = 0; k < cn; k++) {
            const float inv = 1.0f / std::sqrt(load(var[c0 + k]) + eps);
            sc[k] = inv * load(scale[c0 + k]);
            sh[k] = load(bias[c0 + k]) - load(mean[c0 + k]) * sc[k];
        }
#pragma omp parallel for if (pixels * cn >= kParallelThreshold)
        for (int64_t p = 0; p < pixels; p++) {
            const T* src = x + p * c + c0;
            T* dst = y + p * c + c0;
            for (int64_t k = 0; k < cn; k++) dst[k] = store<T>(load(src[k]) * sc[k] + sh[k]);
        }
    }
}

// y = f(x · scale[c] + shift[c]) per channel, channels-last (c innermost) or plain (inner = H·W).
template <class T, class U, class F>
inline void scale_shift(const T* x, const float* scale, const float* shift, U* y, int64_t outer, int64_t c,
                        int64_t inner, bool channels_last, F f) {
    if (channels_last) {
#pragma omp parallel for if (outer * inner * c >= kParallelThreshold)
        for (int64_t p = 0; p < outer * inner; p++) {
            const T* __restrict src = x + p * c;
            U* __restrict dst = y + p * c;
            for (int64_t k = 0; k < c; k++) dst[k] = store<U>(f((float)load(src[k]) * scale[k] + shift[k]));
        }
    } else {
#pragma omp parallel for collapse(2) if (outer * c * inner >= kParallelThreshold)
        for (int64_t b = 0; b < outer; b++)
            for (int64_t ch = 0; ch < c; ch++) {
                const T* __restrict src = x + (b * c + ch) * inner;
                U* __restrict dst = y + (b * c + ch) * inner;
                const float sc = scale[ch], sh = shift[ch];
                for (int64_t i = 0; i < inner; i++) dst[i] = store<U>(f((float)load(src[i]) * sc + sh));
            }
    }
}

// scale_shift between 8-bit tensors, y = q(f(dq(x) · scale[c] + shift[c])) with dq(x) = (x − zx)·sx
// and q(v) = saturate(round_half_even(v / sy) + zy): the dequantization folds into per-channel
// A = sx·scale, B = shift − zx·A, so a value is one product and one sum, v = f(x·A + B), and the
// quantization's division becomes a product by 1/sy; where f commutes with a positive scale
// (`Homogeneous`: the identity, ReLU) 1/sy folds into A and B too. Each value stays within a few
// float roundings of the reference's, so it lands on the reference's quantization step but for a
// value within those roundings of a .5 tie. Compiled twice (512-bit vectors: 1.7x on an AVX-512
// CPU; the form above 1.4x over the reference's order of operations with 256-bit ones), chosen by
// has_avx512(); A and B live on the stack for up to 4096 channels.
#define KILN_SCALE_SHIFT_Q(ATTRIBUTES, NAME)                                                                \
    template <class T, class U, class F>                                                                    \
    ATTRIBUTES inline void NAME(const T* __restrict x, const float* __restrict a, const float* __restrict b, \
                                U* __restrict y, int64_t outer, int64_t c, int64_t inner, bool channels_last, F f, \
                                float inv, int32_t zy) {                                                    \
        const float zero = (float)zy;                                                                       \
        if (channels_last) {                                                                                \
            _Pragma("omp parallel for if (outer * inner * c >= kParallelThreshold)")                        \
            for (int64_t p = 0; p < outer * inner; p++) {                                                   \
                const T* __restrict src = x + p * c;                                                        \
                U* __restrict dst = y + p * c;                                                              \
                for (int64_t k = 0; k < c; k++) {                                                           \
                    dst[k] = saturate_rounded<U>(std::nearbyint(f((float)(int32_t)src[k] * a[k] + b[k]) * inv) + zero); \
                }                                                                                           \
            }                                                                                               \
        } else {                                                                                            \
            _Pragma("omp parallel for collapse(2) if (outer * c * inner >= kParallelThreshold)")           \
            for (int64_t n = 0; n < outer; n++)                                                             \
                for (int64_t ch = 0; ch < c; ch++) {                                                        \
                    const T* __restrict src = x + (n * c + ch) * inner;                                     \
                    U* __restrict dst = y + (n * c + ch) * inner;                                           \
                    const float sa = a[ch], sb = b[ch];                                                     \
                    for (int64_t i = 0; i < inner; i++) {                                                   \
                        dst[i] = saturate_rounded<U>(std::nearbyint(f((float)(int32_t)src[i] * sa + sb) * inv) + zero); \
                    }                                                                                       \
                }                                                                                           \
        }                                                                                                   \
    }
KILN_SCALE_SHIFT_Q(, scale_shift_quantized_here)
KILN_SCALE_SHIFT_Q(KILN_AVX512, scale_shift_quantized_avx512)
#undef KILN_SCALE_SHIFT_Q

template <bool Homogeneous, class T, class U, class F>
inline void scale_shift_quantized(const T* x, const float* scale, const float* shift, U* y, int64_t outer, int64_t c,
                                  int64_t inner, bool channels_last, F f, float sx, int32_t zx, float sy, int32_t zy) {
    float small_a[4096], small_b[4096];
    std::vector<float> big_a, big_b;
    float *a = small_a, *b = small_b;
    if (c > 4096) {
        big_a.resize(c), big_b.resize(c);
        a = big_a.data(), b = big_b.data();
    }
    // With Homogeneous, f(v)·k = f(v·k) for k > 0: the division by sy moves into A and B.
    const float pre = Homogeneous ? 1.0f / sy : 1.0f, inv = Homogeneous ? 1.0f : 1.0f / sy;
    for (int64_t k = 0; k < c; k++) {
        const float ak = sx * scale[k];
        a[k] = ak * pre;
        b[k] = (shift[k] - (float)zx * ak) * pre;
    }
    has_avx512() ? scale_shift_quantized_avx512(x, a, b, y, outer, c, inner, channels_last, f, inv, zy)
                 : scale_shift_quantized_here(x, a, b, y, outer, c, inner, channels_last, f, inv, zy);
}

// Inference BatchNormalization: y = (x - mean) / sqrt(var + eps) * scale + bias per channel.
template <class T, class P>
inline void batch_norm(const T* x, const P* scale, const P* bias, const P* mean, const P* var, float eps, T* y,
                       int64_t n, int64_t c, int64_t inner) {
    for (int64_t ch = 0; ch < c; ch++) {
        const float inv = 1.0f / std::sqrt(load(var[ch]) + eps);
        const float sc = inv * load(scale[ch]), sh = load(bias[ch]) - load(mean[ch]) * sc;
        for (int64_t b = 0; b < n; b++) {
            const T* src = x + (b * c + ch) * inner;
            T* dst = y + (b * c + ch) * inner;
            for (int64_t i = 0; i < inner; i++) dst[i] = store<T>(load(src[i]) * sc + sh);
        }
    }
}

// QuantizeLinear: saturate(round_half_even(x / scale) + zp); param index = (i / inner) % dim.
template <class X, class S, class Q>
inline void quantize(const X* x, const S* scale, const Q* zp, Q* y, int64_t n, int64_t inner, int64_t dim,
                     int64_t lo, int64_t hi) {
    for (int64_t i = 0; i < n; i++) {
        int64_t p = dim > 1 ? (i / inner) % dim : 0;
        float q = std::nearbyint((float)load(x[i]) / load(scale[p]));
        double v = (double)q + (double)(zp ? load(zp[p]) : 0);
        int64_t r = std::isnan(v) ? 0 : (v > (double)hi ? hi : (v < (double)lo ? lo : (int64_t)v));
        y[i] = (Q)r;
    }
}

template <class Q, class S, class Y>
inline void dequantize(const Q* x, const S* scale, const Q* zp, Y* y, int64_t n, int64_t inner, int64_t dim) {
    for (int64_t i = 0; i < n; i++) {
        int64_t p = dim > 1 ? (i / inner) % dim : 0;
        y[i] = store<Y>((float)(load(x[i]) - (zp ? load(zp[p]) : 0)) * load(scale[p]));
    }
}

// Per-tensor quantization, y = saturate(round_half_to_even(x / scale) + zp) (NaN gives 0), and
// dequantization, y = (x − zp) · scale: one parallel, vectorizable loop each. The quantizations
// are compiled twice (the division and conversions bind them: 512-bit vectors 1.4x on an
// AVX-512 CPU), chosen by has_avx512().
#define KILN_QUANTIZE_TENSOR(ATTRIBUTES, NAME)                                                              \
    template <class Q>                                                                                      \
    ATTRIBUTES inline void NAME(const float* __restrict x, float scale, int32_t zp, Q* __restrict y, int64_t n) { \
        /* A plain parallel loop: g++ 12 leaves the rounding scalar under `parallel for simd`. */          \
        _Pragma("omp parallel for if (n >= kParallelThreshold)")                                            \
        for (int64_t i = 0; i < n; i++) y[i] = quantize_value<Q>(x[i], scale, zp);                          \
    }
KILN_QUANTIZE_TENSOR(, quantize_tensor_here)
KILN_QUANTIZE_TENSOR(KILN_AVX512, quantize_tensor_avx512)
#undef KILN_QUANTIZE_TENSOR

template <class Q>
inline void quantize_tensor(const float* __restrict x, float scale, int32_t zp, Q* __restrict y, int64_t n) {
    has_avx512() ? quantize_tensor_avx512(x, scale, zp, y, n) : quantize_tensor_here(x, scale, zp, y, n);
}

// Per-tensor quantization of an N×C×H×W image of C ≤ 4 channels into channels-last (N×H×W×C):
// the quantization and the interleaving in one pass, over tasks of 256 pixels.
#define KILN_QUANTIZE_TO_CHANNELS_LAST(ATTRIBUTES, NAME)                                                   \
    template <int C, class Q>                                                                              \
    ATTRIBUTES inline void NAME(const float* __restrict x, float scale, int32_t zp, Q* __restrict y, int64_t n, \
                                int64_t hw) {                                                              \
        const int64_t blocks = (hw + 255) / 256;                                                           \
        _Pragma("omp parallel for if (n * hw * C >= kParallelThreshold)")                                  \
        for (int64_t t = 0; t < n * blocks; t++) {                                                         \
            const int64_t image = t / blocks, p0 = (t % blocks) * 256, e = std::min<int64_t>(256, hw - p0); \
            const float* __restrict src = x + image * C * hw + p0;                                         \
            Q* __restrict dst = y + (image * hw + p0) * C;                                                 \
            for (int64_t p = 0; p < e; p++)                                                                \
                for (int c = 0; c < C; c++) dst[p * C + c] = quantize_value<Q>(src[c * hw + p], scale, zp); \
        }                                                                                                  \
    }
KILN_QUANTIZE_TO_CHANNELS_LAST(, quantize_to_channels_last_here)
KILN_QUANTIZE_TO_CHANNELS_LAST(KILN_AVX512, quantize_to_channels_last_avx512)
#undef KILN_QUANTIZE_TO_CHANNELS_LAST

template <int C, class Q>
inline void quantize_to_channels_last(const float* __restrict x, float scale, int32_t zp, Q* __restrict y, int64_t n,
                                      int64_t hw) {
    has_avx512() ? quantize_to_channels_last_avx512<C>(x, scale, zp, y, n, hw)
                 : quantize_to_channels_last_here<C>(x, scale, zp, y, n, hw);
}

template <class Q>
inline void dequantize_tensor(const Q* __restrict x, float scale, int32_t zp, float* __restrict y, int64_t n) {
#pragma omp parallel for if (n >= kParallelThreshold)
    for (int64_t i = 0; i < n; i++) y[i] = (float)((int32_t)x[i] - zp) * scale;
}

// ONNX DynamicQuantizeLinear of n floats into u8: the range [min(x, 0), max(x, 0)] onto 0..255,
// scale (max − min) / 255 (1 / 255 for an empty range, as ONNX's reference), zero point
// round_half_to_even(−min / scale), then quantize_tensor. Returns the parameters.
struct DynamicQuantization {
    float scale;
    int32_t zero_point;
};

inline DynamicQuantization dynamic_quantize(const float* __restrict x, int64_t n, uint8_t* __restrict y) {
    float lo = 0.0f, hi = 0.0f;
#pragma omp parallel for simd reduction(min : lo) reduction(max : hi) if (n >= kParallelThreshold)
    for (int64_t i = 0; i < n; i++) {
        lo = x[i] < lo ? x[i] : lo;
        hi = x[i] > hi ? x[i] : hi;
    }
    const float scale = (hi == lo ? 1.0f : hi - lo) / 255.0f;
    const float z = std::nearbyint(std::max(0.0f, std::min(255.0f, 0.0f - lo / scale)));
    quantize_tensor(x, scale, (int32_t)z, y, n);
    return {scale, (int32_t)z};
}

// ONNX MatMulInteger: y = (a − a_zp) · (b − b_zp) in 32 bits, over `batch` products of
// rows×k by k×cols (a and b advancing by their batch strides, 0 for a shared operand). The zero
// points: none (null), one, or one per row of a (per_row) and per column of b (per_column).
template <class A, class B>
inline void matmul_integer(const A* a, const B* b, const A* a_zp, bool per_row, const B* b_zp, bool per_column, int32_t* y,
                           int64_t batch, int64_t a_stride, int64_t b_stride, int64_t rows, int64_t k, int64_t cols) {
#pragma omp parallel for collapse(2) if (batch * rows * cols * k >= kParallelThreshold)
    for (int64_t t = 0; t < batch; t++) {
        for (int64_t i = 0; i < rows; i++) {
            const A* ar = a + t * a_stride + i * k;
            const B* bt = b + t * b_stride;
            const int32_t za = a_zp ? (int32_t)a_zp[per_row ? i : 0] : 0;
            int32_t* yr = y + (t * rows + i) * cols;
            for (int64_t j = 0; j < cols; j++) yr[j] = 0;
            for (int64_t kk = 0; kk < k; kk++) {
                const int32_t av = (int32_t)ar[kk] - za;
                const B* br = bt + kk * cols;
                for (int64_t j = 0; j < cols; j++) {
                    const int32_t zb = b_zp ? (int32_t)b_zp[per_column ? j : 0] : 0;
                    yr[j] += av * ((int32_t)br[j] - zb);
                }
            }
        }
    }
}

}  // namespace
}  // namespace kiln
