// Kiln runtime: FP32 convolutions for CPUs with AVX2 and FMA but without AVX-512, direct or
// Winograd F(4×4, 3×3) (included after <dnnl.hpp>; compiled into every generated library,
// internal linkage).
//
// On such CPUs oneDNN 2.6 runs channels-last convolutions with its jit:avx2 kernel at 75-100
// GFLOP/s on two cores, where the direct kernel reaches 140-165 (3×3, 64-512 channels): it
// keeps a tile of 6 output pixels × 16 output channels in 12 ymm accumulators, and for each
// input channel of each tap loads the 16 weights once and broadcasts the 6 pixels' inputs.
// Activations are channels-last (NHWC); the weights are packed once, at create time, into
// groups of 16 output channels: [group][kh][kw][c][16]. Tiles whose windows reach into the pads
// read them tap by tap, from a row of zeros. A 3×3 stride-1 conv with at least
// 16 input channels and enough output runs as Winograd F(4×4, 3×3) instead (`winograd`, set by
// the generated code): 1.4-2.6× faster than the direct kernel on two Zen 3 cores, with errors
// about 5× the direct kernel's (≈1e-5 of the largest output on random data). The Winograd form
// also runs on CPUs with AVX-512 where the generated code's rule says so (`compiled_in()`, see
// kilnWinogradOnAVX512 in Sources/KilnTarget/KernelRules.swift): Zen 4's AVX2 FMA rate equals its
// AVX-512 one, and Winograd does a quarter of the products.
#pragma once

#include <algorithm>
#include <cstdint>
#include <cstring>
#include <vector>
#include <dnnl.hpp>
#include <omp.h>
#include "limits.hpp"
#if defined(__AVX2__) && defined(__FMA__)
#include <immintrin.h>
#endif

namespace kiln {
namespace {

// The window origins (iy, ix) of WT output pixels from flat index q0 (rows of ow pixels), and
// whether every window lies inside the h × w image.
template <int WT>
inline bool window_origins(int q0, int ow, int sh, int sw, int pt, int pl, int kh, int kw, int dh, int dw, int h, int w,
                           int* iy, int* ix) {
    bool inside = true;
    _Pragma("GCC unroll 16") for (int j = 0; j < WT; j++) {
        const int q = q0 + j, r = q / ow, col = q - r * ow;
        iy[j] = r * sh - pt;
        ix[j] = col * sw - pl;
        inside = inside && iy[j] >= 0 && iy[j] + (kh - 1) * dh < h && ix[j] >= 0 && ix[j] + (kw - 1) * dw < w;
    }
    return inside;
}

struct DirectConv {
    // Geometry (2-D): input [n, h, w, c], output [n, oh, ow, k], kernel kh × kw, `group` groups
    // (set before pack: see grouped()).
    int n = 0, c = 0, h = 0, w = 0, k = 0, kh = 0, kw = 0, group = 1;
    int sh = 1, sw = 1, dh = 1, dw = 1, pt = 0, pl = 0, pb = 0, pr = 0, oh = 0, ow = 0;
    std::vector<float> packed, bias;  // bias padded to whole groups
    std::vector<float> zeros;         // c zeros: what a window reads in the pads
    bool active = false;
    bool winograd = false;  // F(4×4, 3×3) instead of the direct loop (set before pack)
    // Threads that can each take whole Winograd chunks in their part of the scratch: OpenMP's
    // count when packed, at most kMaxSlots (more threads share chunks instead: the same bits).
    int slots = 0;
    static constexpr int kMaxSlots = 16;

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

    // ---- Grouped convs (ResNeXt's and RegNet's groups of 8 to 64 channels): output channel o
    // reads the c/group input channels of its group, so a block of output channels must lie in
    // one group: output channels per group a multiple of 8. The weights are packed per block of
    // 16 output channels when the groups have a multiple of 16, else per block of 8. Smaller
    // groups would leave lanes idle (kiln::GroupedConv below takes groups of 2 and 4).
    static bool grouped_supported(int c, int k, int group) {
        return group == 1 || (c % group == 0 && k % group == 0 && (k / group) % limits::kDirectConvGroupMultiple == 0);
    }
    int block() const { return group == 1 || (k / group) % kGroup == 0 ? kGroup : 8; }  // output channels per weight block
    int groups() const { return (k + block() - 1) / block(); }                            // weight blocks
    // Input channels a block reads, and the first of them for the block from output channel oc0.
    int span() const { return c / group; }
    int span_origin(int oc0) const { return oc0 / (k / group) * (c / group); }
    // Floats of scratch `run` needs (Winograd's transformed tiles: one chunk the threads share,
    // or one chunk for each of up to `slots` threads).
    // Tiles per chunk when each thread takes whole chunks: V and M within a core's L2.
    int local_chunk() const {
        const size_t per_tile = (size_t)kXi * (c + kpad()) * sizeof(float);
        return (int)std::max<size_t>(kTileRows, kLocalBytes / per_tile / kTileRows * kTileRows);
    }
    size_t local_floats() const { return (size_t)kXi * local_chunk() * (c + kpad()); }
    size_t scratch_floats() const {
        return winograd ? std::max((size_t)kXi * wino_chunk() * (c + kpad()), (size_t)slots * local_floats()) : 0;
    }

    // Packs plain OIHW weights [k, c, kh, kw] and the bias (k floats, or null).
    void pack(const float* weights, const float* b) {
        const int g = groups();
        bias.assign((size_t)g * kGroup, 0.0f);
        if (b) std::memcpy(bias.data(), b, sizeof(float) * k);
        if (winograd) {
            slots = std::min(omp_get_max_threads(), kMaxSlots);
            return pack_winograd(weights);
        }
        zeros.assign(c, 0.0f);
        const int bw = block(), cs = span(), cg = c / group, kg = k / group;
        packed.assign((size_t)g * bw * kh * kw * cs, 0.0f);
        for (int gi = 0; gi < g; gi++) {
            const int width = std::min(bw, k - gi * bw + 7) / 8 * 8;  // whole 8-channel blocks
            const int origin = span_origin(gi * bw);
            float* dst = packed.data() + (size_t)gi * bw * kh * kw * cs;
            for (int y = 0; y < kh; y++)
                for (int x = 0; x < kw; x++)
                    for (int ci = 0; ci < cs; ci++)
                        for (int o = 0; o < width; o++) {
                            const int oc = gi * bw + o, i = origin + ci - oc / kg * cg;  // i: within oc's group
                            dst[(((size_t)y * kw + x) * cs + ci) * width + o] =
                                oc < k && i >= 0 && i < cg ? weights[(((size_t)oc * cg + i) * kh + y) * kw + x] : 0.0f;
                        }
        }
    }

    // ---- Winograd F(4×4, 3×3) (Lavin & Gray): 3×3 stride-1 convs without dilation, input channels
    // a multiple of 8. Each 6×6 input tile (stride 4) becomes 36 values per channel (V = Bᵀ d B);
    // the 36 products V·U with the transformed weights (U = G g Gᵀ, packed at create time, 4× the
    // weights' size) are 36 matrix products of tiles × C by C × K, with the direct kernel's 6 × 16
    // register tile; each 4×4 output tile is Aᵀ M A. The products do a quarter of the direct
    // loop's multiply-adds (36 per 16 outputs instead of 144), the transforms the rest of the work.
    static constexpr int kXi = 36;              // transformed positions per tile
    static constexpr int kTileRows = 24;        // chunks are multiples of both register-tile widths
    static constexpr size_t kChunkFloats = 2u << 20;  // V + M of one chunk: 8 MB
    static constexpr size_t kLocalBytes = 384 * 1024;  // V + M of one thread's chunk
    static constexpr int kLocalChannels = 256;          // c + k up to which threads take whole chunks

    int tiles_w() const { return (ow + 3) / 4; }
    int tiles() const { return ((oh + 3) / 4) * tiles_w(); }
    int kpad() const { return groups() * kGroup; }
    // Tiles per chunk: as many as fit kChunkFloats (at least one register-tile row), never more
    // than the image needs.
    int wino_chunk() const {
        const size_t per_tile = (size_t)kXi * (c + kpad());
        int ct = (int)std::max<size_t>(kTileRows, kChunkFloats / per_tile / kTileRows * kTileRows);
        const int need = (tiles() + kTileRows - 1) / kTileRows * kTileRows;
        return std::min(ct, need);
    }

    // U = G g Gᵀ for every (output channel, input channel), in double, packed [ξ][group][c][16]
    // (the last group 8 wide when 8 channels or fewer are left).
    void pack_winograd(const float* weights) {
        static const double G[6][3] = {{1.0 / 4, 0, 0},         {-1.0 / 6, -1.0 / 6, -1.0 / 6},
                                       {-1.0 / 6, 1.0 / 6, -1.0 / 6}, {1.0 / 24, 1.0 / 12, 1.0 / 6},
                                       {1.0 / 24, -1.0 / 12, 1.0 / 6}, {0, 0, 1}};
        const int g = groups();
        packed.assign((size_t)g * kXi * c * kGroup, 0.0f);
        for (int oc = 0; oc < k; oc++) {
            const int gi = oc / kGroup, o = oc % kGroup;
            const int width = std::min(kGroup, k - gi * kGroup + 7) / 8 * 8;
            for (int ci = 0; ci < c; ci++) {
                const float* f = weights + ((size_t)oc * c + ci) * 9;
                double t[6][3];  // G g
                for (int i = 0; i < 6; i++)
                    for (int j = 0; j < 3; j++) t[i][j] = G[i][0] * f[j] + G[i][1] * f[3 + j] + G[i][2] * f[6 + j];
                for (int i = 0; i < 6; i++)
                    for (int j = 0; j < 6; j++) {
                        const double u = t[i][0] * G[j][0] + t[i][1] * G[j][1] + t[i][2] * G[j][2];
                        packed[((size_t)(i * 6 + j) * g + gi) * c * kGroup + (size_t)ci * width + o] = (float)u;
                    }
            }
        }
    }

#if defined(__AVX2__) && defined(__FMA__)
    // Bᵀ applied to six vectors: the rows of the input transform.
    static inline void bt6(const __m256 d[6], __m256 t[6]) {
        const __m256 four = _mm256_set1_ps(4.0f), five = _mm256_set1_ps(5.0f), two = _mm256_set1_ps(2.0f);
        t[0] = _mm256_fnmadd_ps(five, d[2], _mm256_fmadd_ps(four, d[0], d[4]));
        const __m256 a = _mm256_fnmadd_ps(four, d[2], d[4]), b = _mm256_fnmadd_ps(four, d[1], d[3]);
        t[1] = _mm256_add_ps(a, b);
        t[2] = _mm256_sub_ps(a, b);
        const __m256 e = _mm256_sub_ps(d[4], d[2]), f = _mm256_mul_ps(two, _mm256_sub_ps(d[3], d[1]));
        t[3] = _mm256_add_ps(e, f);
        t[4] = _mm256_sub_ps(e, f);
        t[5] = _mm256_fnmadd_ps(five, d[3], _mm256_fmadd_ps(four, d[1], d[5]));
    }
    // Aᵀ applied to six vectors: the rows of the output transform.
    static inline void at6(const __m256 m[6], __m256 o[4]) {
        const __m256 two = _mm256_set1_ps(2.0f), four = _mm256_set1_ps(4.0f), eight = _mm256_set1_ps(8.0f);
        const __m256 s12 = _mm256_add_ps(m[1], m[2]), d12 = _mm256_sub_ps(m[1], m[2]);
        const __m256 s34 = _mm256_add_ps(m[3], m[4]), d34 = _mm256_sub_ps(m[3], m[4]);
        o[0] = _mm256_add_ps(_mm256_add_ps(m[0], s12), s34);
        o[1] = _mm256_fmadd_ps(two, d34, d12);
        o[2] = _mm256_fmadd_ps(four, s34, s12);
        o[3] = _mm256_add_ps(_mm256_fmadd_ps(eight, d34, d12), m[5]);
    }

    // V[ξ][row] for tile `t` of image `x` (zeros outside it), all channels; a zero row for
    // t < 0 (the padding of a chunk to whole register tiles).
    void input_tile(const float* x, int t, float* v, size_t xi_stride) const {
        const int tw = tiles_w();
        const int ty = t / tw, tx = t - ty * tw, iy0 = ty * 4 - pt, ix0 = tx * 4 - pl;
        bool rok[6], cok[6];
        for (int i = 0; i < 6; i++) {
            rok[i] = t >= 0 && iy0 + i >= 0 && iy0 + i < h;
            cok[i] = t >= 0 && ix0 + i >= 0 && ix0 + i < w;
        }
        const __m256 zero = _mm256_setzero_ps();
        for (int cv = 0; cv < c; cv += 8) {
            __m256 rows[6][6];  // row-transformed: rows[r][j] = (d[r] Bᵀ-row j)
            for (int r = 0; r < 6; r++) {
                __m256 d[6];
                const float* xr = x + ((size_t)(iy0 + r) * w + ix0) * c + cv;
                _Pragma("GCC unroll 6") for (int j = 0; j < 6; j++) d[j] = rok[r] && cok[j] ? _mm256_loadu_ps(xr + (ptrdiff_t)j * c) : zero;
                bt6(d, rows[r]);
            }
            _Pragma("GCC unroll 6") for (int j = 0; j < 6; j++) {
                __m256 col[6], out[6];
                _Pragma("GCC unroll 6") for (int r = 0; r < 6; r++) col[r] = rows[r][j];
                bt6(col, out);
                _Pragma("GCC unroll 6") for (int i = 0; i < 6; i++) _mm256_storeu_ps(v + (size_t)(i * 6 + j) * xi_stride + cv, out[i]);
            }
        }
    }

    // M rows [r0, r0 + WT) of position ξ, channels oc0 .. oc0 + 8·B: V rows × U.
    template <int B, int WT>
    void wgemm(const float* v, const float* u, float* mrow, int kp) const {
        __m256 acc[B][WT];
        _Pragma("GCC unroll 16") for (int o = 0; o < B; o++) _Pragma("GCC unroll 16") for (int j = 0; j < WT; j++) acc[o][j] = _mm256_setzero_ps();
        for (int ci = 0; ci < c; ci++) {
            __m256 wv[B];
            _Pragma("GCC unroll 16") for (int o = 0; o < B; o++) wv[o] = _mm256_loadu_ps(u + (size_t)ci * B * 8 + o * 8);
            _Pragma("GCC unroll 16") for (int j = 0; j < WT; j++) {
                const __m256 x = _mm256_broadcast_ss(v + (size_t)j * c + ci);
                _Pragma("GCC unroll 16") for (int o = 0; o < B; o++) acc[o][j] = _mm256_fmadd_ps(wv[o], x, acc[o][j]);
            }
        }
        _Pragma("GCC unroll 16") for (int j = 0; j < WT; j++) _Pragma("GCC unroll 16") for (int o = 0; o < B; o++)
            _mm256_storeu_ps(mrow + (size_t)j * kp + o * 8, acc[o][j]);
    }

    // Output tile `t`: y = post(Aᵀ M A + bias [+ y]), the pixels inside the image.
    template <class Post>
    void output_tile(const float* mt, size_t xi_stride, int t, float* y, bool sum, const Post& post) const {
        const int tw = tiles_w();
        const int ty = t / tw, tx = t - ty * tw, oy0 = ty * 4, ox0 = tx * 4;
        const int rows = std::min(4, oh - oy0), cols = std::min(4, ow - ox0);
        for (int kv = 0; kv < k; kv += 8) {
            __m256 s[6][4];
            for (int i = 0; i < 6; i++) {
                __m256 m[6];
                _Pragma("GCC unroll 6") for (int j = 0; j < 6; j++) m[j] = _mm256_loadu_ps(mt + (size_t)(i * 6 + j) * xi_stride + kv);
                at6(m, s[i]);
            }
            const __m256 b = _mm256_loadu_ps(bias.data() + kv);
            const int valid = std::min(8, k - kv);
            for (int jj = 0; jj < cols; jj++) {
                __m256 col[6], out[4];
                _Pragma("GCC unroll 6") for (int i = 0; i < 6; i++) col[i] = s[i][jj];
                at6(col, out);
                for (int ii = 0; ii < rows; ii++) {
                    float* yp = y + ((size_t)(oy0 + ii) * ow + ox0 + jj) * k + kv;
                    alignas(32) float r[8];
                    _mm256_store_ps(r, _mm256_add_ps(out[ii], b));
                    if (valid == 8) {
                        if (sum) {
#pragma omp simd
                            for (int l = 0; l < 8; l++) yp[l] = post(yp[l] + r[l]);
                        } else {
#pragma omp simd
                            for (int l = 0; l < 8; l++) yp[l] = post(r[l]);
                        }
                    } else {
                        for (int l = 0; l < valid; l++) yp[l] = post(sum ? yp[l] + r[l] : r[l]);
                    }
                }
            }
        }
    }

    // M[ξ] rows 0 .. nt (whole register tiles; the rows past nt are zeros) for group gi.
    void gemm_xi(int xi, int gi, const float* V, float* M, size_t vs, size_t ms, int nt) const {
        const int g = groups(), kp = kpad(), oc0 = gi * kGroup;
        const float* u = packed.data() + ((size_t)xi * g + gi) * c * kGroup;
        const float* v = V + xi * vs;
        float* m = M + xi * ms + oc0;
        if (k - oc0 > 8)
            for (int r = 0; r < nt; r += kPixels) wgemm<2, kPixels>(v + (size_t)r * c, u, m + (size_t)r * kp, kp);
        else
            for (int r = 0; r < nt; r += 8) wgemm<1, 8>(v + (size_t)r * c, u, m + (size_t)r * kp, kp);
    }

    template <class Post>
    void run_winograd(const float* x, float* y, float* scratch, bool sum, const Post& post) const {
        const int g = groups(), kp = kpad(), total = tiles();
        const int cl = local_chunk(), local_chunks = (total + cl - 1) / cl;
        // Few channels: each thread takes whole chunks, its V and M never leave its L2. Many:
        // the threads share each chunk's products (ξ by ξ), U streaming once per chunk. Both
        // compute every output from the same operations in the same order: the same bits.
        const int threads = omp_get_max_threads();
        const bool local = local_chunks >= 4 * threads && c + kp <= kLocalChannels && threads <= slots;
        for (int b = 0; b < n; b++) {
            const float* src = x + (size_t)b * h * w * c;
            float* dst = y + (size_t)b * oh * ow * k;
            if (local) {
                // Each thread transforms, multiplies and transforms back whole chunks of tiles,
                // in its own part of the scratch (the same chunks for any thread count: the same
                // bits).
#pragma omp parallel num_threads(threads)
                {
                    const size_t vs = (size_t)cl * c, ms = (size_t)cl * kp;
                    float* V = scratch + (size_t)omp_get_thread_num() * local_floats();
                    float* M = V + kXi * vs;
#pragma omp for schedule(static)
                    for (int ch = 0; ch < local_chunks; ch++) {
                        const int t0 = ch * cl, nt = std::min(cl, total - t0), ntp = (nt + kTileRows - 1) / kTileRows * kTileRows;
                        for (int t = 0; t < ntp; t++) input_tile(src, t < nt ? t0 + t : -1, V + (size_t)t * c, vs);
                        for (int xi = 0; xi < kXi; xi++)
                            for (int gi = 0; gi < g; gi++) gemm_xi(xi, gi, V, M, vs, ms, nt);
                        for (int t = 0; t < nt; t++) output_tile(M + (size_t)t * kp, ms, t0 + t, dst, sum, post);
                    }
                }
                continue;
            }
            const int ct = wino_chunk();
            float* V = scratch;                         // [ξ][ct][c]
            float* M = scratch + (size_t)kXi * ct * c;  // [ξ][ct][kp]
            const size_t vs = (size_t)ct * c, ms = (size_t)ct * kp;
            for (int t0 = 0; t0 < total; t0 += ct) {
                const int nt = std::min(ct, total - t0), ntp = (nt + kTileRows - 1) / kTileRows * kTileRows;
#pragma omp parallel
                {
#pragma omp for schedule(static)
                    for (int t = 0; t < ntp; t++) input_tile(src, t < nt ? t0 + t : -1, V + (size_t)t * c, vs);
                    // ξ outer: each thread keeps its V[ξ] in L2 for every group of output channels.
#pragma omp for collapse(2) schedule(static)
                    for (int xi = 0; xi < kXi; xi++)
                        for (int gi = 0; gi < g; gi++) gemm_xi(xi, gi, V, M, vs, ms, nt);
#pragma omp for schedule(static)
                    for (int t = 0; t < nt; t++) output_tile(M + (size_t)t * kp, ms, t0 + t, dst, sum, post);
                }
            }
        }
    }
#endif

#if defined(__AVX2__) && defined(__FMA__)
    // One tile: WT output pixels from flat index q0, B × 8 channels from oc0. A tile whose
    // windows all lie inside the image reads it directly (one run of kw·c floats per kernel row
    // without dilation along w); one that reaches into the pads reads, tap by tap, each pixel's
    // input or a row of zeros.
    template <int B, int WT, class Post>
    void tile(const float* x, const float* wg, float* y, int q0, int oc0, const int* iy, const int* ix, bool inside,
              bool sum, const Post& post) const {
        const int cs = span();
        x += span_origin(oc0);  // the block's input channels (pads read zeros instead)
        __m256 acc[B][WT];
        _Pragma("GCC unroll 16") for (int o = 0; o < B; o++) {
            const __m256 b = _mm256_loadu_ps(bias.data() + oc0 + o * 8);
            _Pragma("GCC unroll 16") for (int j = 0; j < WT; j++) acc[o][j] = b;
        }
        const float* wt = wg;
        if (inside) {
            const float* xp[WT];
            _Pragma("GCC unroll 16") for (int j = 0; j < WT; j++) xp[j] = x + ((size_t)iy[j] * w + ix[j]) * c;
            const bool whole = dw == 1 && cs == c;  // a kernel row is one run of kw·c floats
            const int runs = whole ? 1 : kw, run = whole ? kw * c : cs;
            for (int y0 = 0; y0 < kh; y0++) {
                for (int x0 = 0; x0 < runs; x0++) {
                    const size_t off = ((size_t)y0 * dh * w + (size_t)x0 * dw) * c;
                    _Pragma("GCC unroll 8") for (int ci = 0; ci < run; ci++) {
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
        } else {
            for (int y0 = 0; y0 < kh; y0++) {
                for (int x0 = 0; x0 < kw; x0++) {
                    const float* xp[WT];
                    bool any = false;
                    _Pragma("GCC unroll 16") for (int j = 0; j < WT; j++) {
                        const int yy = iy[j] + y0 * dh, xx = ix[j] + x0 * dw;
                        const bool in = yy >= 0 && yy < h && xx >= 0 && xx < w;
                        xp[j] = in ? x + ((size_t)yy * w + xx) * c : zeros.data();
                        any = any || in;
                    }
                    if (!any) {  // a tap that reads only pads for every pixel of the tile
                        wt += (size_t)cs * B * 8;
                        continue;
                    }
                    _Pragma("GCC unroll 8") for (int ci = 0; ci < cs; ci++) {
                        __m256 wv[B];
                        _Pragma("GCC unroll 16") for (int o = 0; o < B; o++) wv[o] = _mm256_loadu_ps(wt + o * 8);
                        _Pragma("GCC unroll 16") for (int j = 0; j < WT; j++) {
                            const __m256 v = _mm256_broadcast_ss(xp[j] + ci);
                            _Pragma("GCC unroll 16") for (int o = 0; o < B; o++) acc[o][j] = _mm256_fmadd_ps(wv[o], v, acc[o][j]);
                        }
                        wt += B * 8;
                    }
                }
            }
        }
        const int valid = std::min(B * 8, k - oc0);
        if (valid == B * 8) {
            // The post-ops over the whole tile, a loop of constant length per pixel: straight
            // vector code, the pixels' activations interleaved.
            alignas(32) float t[WT][B * 8];
            _Pragma("GCC unroll 16") for (int j = 0; j < WT; j++) {
                const float* yp = y + (size_t)(q0 + j) * k + oc0;
                _Pragma("GCC unroll 16") for (int o = 0; o < B; o++) {
                    __m256 v = acc[o][j];
                    if (sum) v = _mm256_add_ps(v, _mm256_loadu_ps(yp + o * 8));
                    _mm256_store_ps(t[j] + o * 8, v);
                }
            }
            _Pragma("GCC unroll 16") for (int j = 0; j < WT; j++) {
                float* yp = y + (size_t)(q0 + j) * k + oc0;
#pragma omp simd
                for (int i = 0; i < B * 8; i++) yp[i] = post(t[j][i]);
            }
            return;
        }
        _Pragma("GCC unroll 16") for (int j = 0; j < WT; j++) {  // the last channels of a count not a multiple of 8
            float* yp = y + (size_t)(q0 + j) * k + oc0;
            alignas(32) float t[B * 8];
            _Pragma("GCC unroll 16") for (int o = 0; o < B; o++) _mm256_store_ps(t + o * 8, acc[o][j]);
            for (int i = 0; i < valid; i++) yp[i] = sum ? yp[i] + t[i] : t[i];
#pragma omp simd
            for (int i = 0; i < valid; i++) yp[i] = post(yp[i]);
        }
    }

    // Blocks b0..b1 of output channels (B × 8 each) for the pixels q0..q1, WT pixels at a time:
    // the tiles' window origins are found once for all the blocks (grouped convs have many
    // blocks of little work each).
    template <int B, int WT, class Post>
    void span(const float* x, float* y, int q0, int q1, int b0, int b1, bool sum, const Post& post) const {
        // The last pixels of the image one by one: two instantiations per width, not one per
        // remainder (each is fully unrolled; g++ time counts in every generated library).
        int q = q0;
        for (; q + WT <= q1; q += WT) blocks<B, WT>(x, y, q, b0, b1, sum, post);
        for (; q < q1; q++) blocks<B, 1>(x, y, q, b0, b1, sum, post);
    }

    template <int B, int WT, class Post>
    void blocks(const float* x, float* y, int q0, int b0, int b1, bool sum, const Post& post) const {
        int iy[WT], ix[WT];
        const bool inside = window_origins<WT>(q0, ow, sh, sw, pt, pl, kh, kw, dh, dw, h, w, iy, ix);
        const int bw = block();
        const size_t stride = (size_t)bw * kh * kw * span();
        for (int gi = b0; gi < b1; gi++)
            tile<B, WT>(x, packed.data() + gi * stride, y, q0, gi * bw, iy, ix, inside, sum, post);
    }
#endif

    // y = post(conv(x) + bias [+ y when `sum`]); `scratch` holds scratch_floats() floats.
    template <class Post>
    void run(const float* x, float* y, float* scratch, bool sum, const Post& post) const {
#if defined(__AVX2__) && defined(__FMA__)
        if (winograd) return run_winograd(x, y, scratch, sum, post);
        const int g = groups(), bw = block(), pixels = oh * ow, chunks = (pixels + kChunk - 1) / kChunk;
        // Blocks per task: enough for 4096 multiply-adds per pixel (grouped convs' blocks read
        // few input channels).
        const int per = std::max(1, std::min(g, 4096 / (bw * kh * kw * span()))), ranges = (g + per - 1) / per;
        // The 16-channel blocks, and the last 8 channels alone when k/16 leaves 8 or fewer.
        const int wide = bw == kGroup ? (k - (g - 1) * kGroup > 8 ? g : g - 1) : 0;
        for (int b = 0; b < n; b++) {
            const float* src = x + (size_t)b * h * w * c;
            float* dst = y + (size_t)b * oh * ow * k;
            auto task = [&](int r, int ch) {
                const int b0 = r * per, b1 = std::min(g, b0 + per), q0 = ch * kChunk, q1 = std::min(pixels, q0 + kChunk);
                if (b0 < wide) span<2, kPixels>(src, dst, q0, q1, b0, std::min(b1, wide), sum, post);
                if (b1 > wide) span<1, 8>(src, dst, q0, q1, std::max(b0, wide), b1, sum, post);
            };
            if (packed.size() * sizeof(float) <= kPixelMajorWeights) {
                // Each thread takes a range of pixels with every output channel: it reads only
                // its part of the input and writes whole lines of the output.
#pragma omp parallel for collapse(2) schedule(static)
                for (int ch = 0; ch < chunks; ch++)
                    for (int r = 0; r < ranges; r++) task(r, ch);
            } else {
                // Weights beyond the L2 cache: each thread takes a range of output channels.
#pragma omp parallel for collapse(2) schedule(static)
                for (int r = 0; r < ranges; r++)
                    for (int ch = 0; ch < chunks; ch++) task(r, ch);
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

namespace kiln {
namespace {

// A grouped FP32 convolution whose groups each have `gw` input and `gw` output channels, gw 2 or
// 4 (ResNeXt's first stage: 32 groups of 4), channels-last, for the same CPUs as DirectConv:
// oneDNN 2.6 runs these with an im2col and one small product per group (4 GFLOP/s for 32
// groups of 4). Each vector of 8 output channels spans 8/gw groups; for the ci-th input channel
// of their groups, one permute of the 8 input channels at the same place gives every lane its
// input. Tiles of 4 pixels × 16 channels; weights packed at create time [c/8][kh][kw][gw][8].
struct GroupedConv {
    int n = 0, c = 0, h = 0, w = 0, kh = 0, kw = 0, gw = 0;  // c input = output channels
    int sh = 1, sw = 1, dh = 1, dw = 1, pt = 0, pl = 0, oh = 0, ow = 0;
    std::vector<float> packed, bias, zeros;
    bool active = false;

    static constexpr int kPixels = 4;
    static constexpr int kChunk = 24;  // output pixels per parallel task

    // Weights [c][gw][kh][kw] (ONNX's grouped OIHW), bias c floats or null.
    void pack(const float* weights, const float* b) {
        packed.assign((size_t)c * kh * kw * gw, 0.0f);
        for (int oc = 0; oc < c; oc++)
            for (int ci = 0; ci < gw; ci++)
                for (int y = 0; y < kh; y++)
                    for (int x = 0; x < kw; x++)
                        packed[((((size_t)(oc / 8) * kh + y) * kw + x) * gw + ci) * 8 + oc % 8] =
                            weights[(((size_t)oc * gw + ci) * kh + y) * kw + x];
        bias.assign(c, 0.0f);
        if (b) std::memcpy(bias.data(), b, sizeof(float) * c);
        zeros.assign(16, 0.0f);  // what two blocks read in the pads
    }

#if defined(__AVX2__) && defined(__FMA__)
    // WT pixels from q0 × B blocks of 8 channels from block cv. Inside the image each pixel's
    // window is one pointer and tap offsets; a tile reaching into the pads takes, tap by tap,
    // each pixel's input or zeros.
    template <int GW, int B, int WT, class Post>
    void tile(const float* x, float* y, int q0, int cv, bool sum, const Post& post) const {
        __m256i idx[GW];
        _Pragma("GCC unroll 8") for (int ci = 0; ci < GW; ci++) {
            alignas(32) int t[8];
            for (int l = 0; l < 8; l++) t[l] = l / GW * GW + ci;
            idx[ci] = _mm256_load_si256((const __m256i*)t);
        }
        int iy[WT], ix[WT];
        const bool inside = window_origins<WT>(q0, ow, sh, sw, pt, pl, kh, kw, dh, dw, h, w, iy, ix);
        __m256 acc[B][WT];
        _Pragma("GCC unroll 8") for (int o = 0; o < B; o++) {
            const __m256 b = _mm256_loadu_ps(bias.data() + (cv + o) * 8);
            _Pragma("GCC unroll 16") for (int j = 0; j < WT; j++) acc[o][j] = b;
        }
        const size_t wblock = (size_t)kh * kw * GW * 8;  // floats of packed weights per block
        const float* wt = packed.data() + (size_t)cv * wblock;
        const float* xp[WT];
        _Pragma("GCC unroll 16") for (int j = 0; j < WT; j++) xp[j] = x + ((size_t)iy[j] * w + ix[j]) * c + cv * 8;
        for (int y0 = 0; y0 < kh; y0++) {
            for (int x0 = 0; x0 < kw; x0++) {
                const float* tp[WT];
                if (inside) {
                    const size_t off = ((size_t)y0 * dh * w + (size_t)x0 * dw) * c;
                    _Pragma("GCC unroll 16") for (int j = 0; j < WT; j++) tp[j] = xp[j] + off;
                } else {
                    _Pragma("GCC unroll 16") for (int j = 0; j < WT; j++) {
                        const int yy = iy[j] + y0 * dh, xx = ix[j] + x0 * dw;
                        tp[j] = yy >= 0 && yy < h && xx >= 0 && xx < w ? x + ((size_t)yy * w + xx) * c + cv * 8 : zeros.data();
                    }
                }
                _Pragma("GCC unroll 8") for (int o = 0; o < B; o++) {
                    _Pragma("GCC unroll 8") for (int ci = 0; ci < GW; ci++) {
                        const __m256 wv = _mm256_loadu_ps(wt + o * wblock + ci * 8);
                        _Pragma("GCC unroll 16") for (int j = 0; j < WT; j++)
                            acc[o][j] = _mm256_fmadd_ps(wv, _mm256_permutevar8x32_ps(_mm256_loadu_ps(tp[j] + o * 8), idx[ci]), acc[o][j]);
                    }
                }
                wt += GW * 8;
            }
        }
        alignas(32) float t[WT][B * 8];
        _Pragma("GCC unroll 16") for (int j = 0; j < WT; j++) {
            const float* yp = y + (size_t)(q0 + j) * c + cv * 8;
            _Pragma("GCC unroll 8") for (int o = 0; o < B; o++) {
                __m256 v = acc[o][j];
                if (sum) v = _mm256_add_ps(v, _mm256_loadu_ps(yp + o * 8));
                _mm256_store_ps(t[j] + o * 8, v);
            }
        }
        _Pragma("GCC unroll 16") for (int j = 0; j < WT; j++) {
            float* yp = y + (size_t)(q0 + j) * c + cv * 8;
#pragma omp simd
            for (int i = 0; i < B * 8; i++) yp[i] = post(t[j][i]);
        }
    }

    template <int GW, int B, class Post>
    void span(const float* x, float* y, int q0, int q1, int cv, bool sum, const Post& post) const {
        int q = q0;
        for (; q + kPixels <= q1; q += kPixels) tile<GW, B, kPixels>(x, y, q, cv, sum, post);
        for (; q < q1; q++) tile<GW, B, 1>(x, y, q, cv, sum, post);
    }

    template <int GW, class Post>
    void run_width(const float* x, float* y, bool sum, const Post& post) const {
        const int pixels = oh * ow, chunks = (pixels + kChunk - 1) / kChunk, blocks = c / 8;
        for (int b = 0; b < n; b++) {
            const float* src = x + (size_t)b * h * w * c;
            float* dst = y + (size_t)b * oh * ow * c;
#pragma omp parallel for schedule(static)
            for (int ch = 0; ch < chunks; ch++) {
                const int q0 = ch * kChunk, q1 = std::min(pixels, q0 + kChunk);
                int cv = 0;
                for (; cv + 2 <= blocks; cv += 2) span<GW, 2>(src, dst, q0, q1, cv, sum, post);
                if (cv < blocks) span<GW, 1>(src, dst, q0, q1, cv, sum, post);
            }
        }
    }
#endif

    // y = post(conv(x) + bias [+ y when `sum`]).
    template <class Post>
    void run(const float* x, float* y, bool sum, const Post& post) const {
#if defined(__AVX2__) && defined(__FMA__)
        if (gw == 2) return run_width<2>(x, y, sum, post);
        return run_width<4>(x, y, sum, post);
#else
        (void)x, (void)y, (void)sum, (void)post;
#endif
    }

    void release() { *this = GroupedConv(); }
};

}  // namespace
}  // namespace kiln
