// Kiln runtime: a direct FP32 convolution for CPUs with AVX2 and FMA but without AVX-512
// (included after <dnnl.hpp>; compiled into every generated library, internal linkage).
//
// On such CPUs oneDNN 2.6 runs channels-last convolutions with its jit:avx2 kernel at 75-100
// GFLOP/s on two Zen 4 cores, where this kernel reaches 140-165 (3×3, 64-512 channels): it
// keeps a tile of 6 output pixels × 16 output channels in 12 ymm accumulators, and for each
// input channel of each tap loads the 16 weights once and broadcasts the 6 pixels' inputs.
// Activations are channels-last (NHWC); the weights are packed once, at create time, into
// groups of 16 output channels: [group][kh][kw][c][16]. Pads are materialized into a scratch
// copy of the input so that every tile reads a full window.
#pragma once

#include <algorithm>
#include <cstdint>
#include <cstring>
#include <vector>
#if defined(__AVX2__) && defined(__FMA__)
#include <immintrin.h>
#endif

namespace kiln {
namespace {

struct DirectConv {
    // Geometry (2-D, one group): input [n, h, w, c], output [n, oh, ow, k], kernel kh × kw.
    int n = 0, c = 0, h = 0, w = 0, k = 0, kh = 0, kw = 0;
    int sh = 1, sw = 1, dh = 1, dw = 1, pt = 0, pl = 0, pb = 0, pr = 0, oh = 0, ow = 0;
    std::vector<float> packed, bias;  // bias padded to whole groups
    bool active = false;

    static constexpr int kGroup = 16;  // output channels per weight group
    static constexpr int kPixels = 6;  // output pixels per tile
    static constexpr int kChunk = 24;  // output pixels per parallel task
    // Packed weights up to this size (half of a Zen 4 core's L2) are all used for each range of
    // pixels; larger ones are split between the threads.
    static constexpr size_t kPixelMajorWeights = 512 * 1024;

    // Whether this CPU is one the kernel is for: AVX2 and FMA compiled in, and oneDNN (as it
    // dispatches here, ONEDNN_MAX_CPU_ISA included) without AVX-512 kernels.
    static bool preferred_here() {
#if defined(__AVX2__) && defined(__FMA__)
        switch (dnnl::get_effective_cpu_isa()) {
        case dnnl::cpu_isa::avx2:
        case dnnl::cpu_isa::avx2_vnni:
            return true;
        default:
            return false;
        }
#else
        return false;
#endif
    }
    static bool compiled_in() {
#if defined(__AVX2__) && defined(__FMA__)
        return true;
#else
        return false;
#endif
    }

    int groups() const { return (k + kGroup - 1) / kGroup; }
    int padded_h() const { return h + pt + pb; }
    int padded_w() const { return w + pl + pr; }
    bool pads() const { return pt || pl || pb || pr; }
    // Floats of scratch `run` needs (the padded copy of one image), 0 without pads.
    size_t scratch_floats() const { return pads() ? (size_t)padded_h() * padded_w() * c : 0; }

    // Packs plain OIHW weights [k, c, kh, kw] and the bias (k floats, or null).
    void pack(const float* weights, const float* b) {
        const int g = groups();
        packed.assign((size_t)g * kGroup * kh * kw * c, 0.0f);
        bias.assign((size_t)g * kGroup, 0.0f);
        if (b) std::memcpy(bias.data(), b, sizeof(float) * k);
        for (int gi = 0; gi < g; gi++) {
            const int width = std::min(kGroup, k - gi * kGroup + 7) / 8 * 8;  // whole 8-channel blocks
            float* dst = packed.data() + (size_t)gi * kGroup * kh * kw * c;
            for (int y = 0; y < kh; y++)
                for (int x = 0; x < kw; x++)
                    for (int ci = 0; ci < c; ci++)
                        for (int o = 0; o < width; o++) {
                            const int oc = gi * kGroup + o;
                            dst[(((size_t)y * kw + x) * c + ci) * width + o] =
                                oc < k ? weights[(((size_t)oc * c + ci) * kh + y) * kw + x] : 0.0f;
                        }
        }
    }

#if defined(__AVX2__) && defined(__FMA__)
    // One tile: `count` (≤ WT) output pixels from flat index q0, `blocks` × 8 channels from oc0.
    template <int B, int WT, class Post>
    void tile(const float* x, int wp, const float* wg, float* y, int q0, int oc0, bool sum, const Post& post) const {
        __m256 acc[B][WT];
        const float* xp[WT];
        _Pragma("GCC unroll 16") for (int j = 0; j < WT; j++) {
            const int q = q0 + j, r = q / ow, col = q - r * ow;
            xp[j] = x + ((size_t)r * sh * wp + (size_t)col * sw) * c;
        }
        _Pragma("GCC unroll 16") for (int o = 0; o < B; o++) {
            const __m256 b = _mm256_loadu_ps(bias.data() + oc0 + o * 8);
            _Pragma("GCC unroll 16") for (int j = 0; j < WT; j++) acc[o][j] = b;
        }
        const float* wt = wg;
        // Without dilation along w, the taps of one kernel row read kw·c consecutive floats
        // (channels-last): one loop over them, however few the channels.
        const int runs = dw == 1 ? 1 : kw, run = dw == 1 ? kw * c : c;
        for (int y0 = 0; y0 < kh; y0++) {
            for (int x0 = 0; x0 < runs; x0++) {
                const size_t off = ((size_t)y0 * dh * wp + (size_t)x0 * dw) * c;
                for (int ci = 0; ci < run; ci++) {
                    __m256 wv[B];
                    _Pragma("GCC unroll 16") for (int o = 0; o < B; o++) wv[o] = _mm256_loadu_ps(wt + o * 8);
                    _Pragma("GCC unroll 16") for (int j = 0; j < WT; j++) {
                        const __m256 v = _mm256_broadcast_ss(xp[j] + off + ci);
                        _Pragma("GCC unroll 16") for (int o = 0; o < B; o++) acc[o][j] = _mm256_fmadd_ps(wv[o], v, acc[o][j]);
                    }
                    wt += B * 8;
                }
            }
        }
        const int valid = std::min(B * 8, k - oc0);
        _Pragma("GCC unroll 16") for (int j = 0; j < WT; j++) {
            float* yp = y + (size_t)(q0 + j) * k + oc0;
            if (valid == B * 8) {
                _Pragma("GCC unroll 16") for (int o = 0; o < B; o++) {
                    __m256 v = acc[o][j];
                    if (sum) v = _mm256_add_ps(v, _mm256_loadu_ps(yp + o * 8));
                    _mm256_storeu_ps(yp + o * 8, v);
                }
            } else {  // the last channels of a count not a multiple of 8
                alignas(32) float t[B * 8];
                _Pragma("GCC unroll 16") for (int o = 0; o < B; o++) _mm256_store_ps(t + o * 8, acc[o][j]);
                for (int i = 0; i < valid; i++) yp[i] = sum ? yp[i] + t[i] : t[i];
            }
#pragma omp simd
            for (int i = 0; i < valid; i++) yp[i] = post(yp[i]);
        }
    }

    template <int B, int WT, class Post>
    void span(const float* x, int wp, const float* wg, float* y, int q0, int q1, int oc0, bool sum, const Post& post) const {
        // The last pixels of the image one by one: two instantiations per width, not one per
        // remainder (each is fully unrolled; g++ time counts in every generated library).
        int q = q0;
        for (; q + WT <= q1; q += WT) tile<B, WT>(x, wp, wg, y, q, oc0, sum, post);
        for (; q < q1; q++) tile<B, 1>(x, wp, wg, y, q, oc0, sum, post);
    }
#endif

    // y = post(conv(x) + bias [+ y when `sum`]); `scratch` holds scratch_floats() floats.
    template <class Post>
    void run(const float* x, float* y, float* scratch, bool sum, const Post& post) const {
#if defined(__AVX2__) && defined(__FMA__)
        const int hp = padded_h(), wp = padded_w();
        const int g = groups(), pixels = oh * ow, chunks = (pixels + kChunk - 1) / kChunk;
        for (int b = 0; b < n; b++) {
            const float* src = x + (size_t)b * h * w * c;
            float* dst = y + (size_t)b * oh * ow * k;
            if (pads()) {
#pragma omp parallel for if ((size_t)hp * wp * c >= 32768)
                for (int r = 0; r < hp; r++) {
                    float* row = scratch + (size_t)r * wp * c;
                    const int ih = r - pt;
                    if (ih < 0 || ih >= h) {
                        std::memset(row, 0, sizeof(float) * wp * c);
                        continue;
                    }
                    std::memset(row, 0, sizeof(float) * pl * c);
                    std::memcpy(row + (size_t)pl * c, src + (size_t)ih * w * c, sizeof(float) * w * c);
                    std::memset(row + (size_t)(pl + w) * c, 0, sizeof(float) * pr * c);
                }
                src = scratch;
            }
            auto task = [&](int gi, int ch) {
                const int oc0 = gi * kGroup;
                const float* wg = packed.data() + (size_t)gi * kGroup * kh * kw * c;
                const int q0 = ch * kChunk, q1 = std::min(pixels, q0 + kChunk);
                if (k - oc0 > 8)
                    span<2, kPixels>(src, wp, wg, dst, q0, q1, oc0, sum, post);
                else
                    span<1, 8>(src, wp, wg, dst, q0, q1, oc0, sum, post);
            };
            if (packed.size() * sizeof(float) <= kPixelMajorWeights) {
                // Each thread takes a range of pixels with every output channel: it reads only
                // its part of the input and writes whole lines of the output.
#pragma omp parallel for collapse(2) schedule(static)
                for (int ch = 0; ch < chunks; ch++)
                    for (int gi = 0; gi < g; gi++) task(gi, ch);
            } else {
                // Weights beyond the L2 cache: each thread takes a range of output channels.
#pragma omp parallel for collapse(2) schedule(static)
                for (int gi = 0; gi < g; gi++)
                    for (int ch = 0; ch < chunks; ch++) task(gi, ch);
            }
        }
#else
        (void)x, (void)y, (void)scratch, (void)sum, (void)post;
#endif
    }

    void release() { *this = DirectConv(); }
};

}  // namespace
}  // namespace kiln
