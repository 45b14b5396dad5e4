// Kiln's C++ runtime, data movement as strided copies: Slice/Transpose/Expand/Split, Concat
// (with requantization), Gather and GatherElements, channel shuffles, Pad and Resize.
// Every kernel takes its element types as template parameters (f32, f16, bf16, the integer types,
// u8/s8 for the quantized graphs). Included through runtime.hpp; internal linkage.
#pragma once

#include <omp.h>

#include "core.hpp"
#include "elementwise.hpp"

namespace kiln {
namespace {

// Copies n bytes that may be few (a pixel's channels): fixed-size moves g++ inlines as vector
// loads and stores, where a memcpy call per pixel of 16-96 bytes costs more than the copy.
inline void copy_bytes(void* dst, const void* src, size_t n) {
    auto* d = static_cast<unsigned char*>(dst);
    const auto* s = static_cast<const unsigned char*>(src);
    if (n > 256) {
        std::memcpy(d, s, n);
        return;
    }
    for (; n >= 32; n -= 32, d += 32, s += 32) std::memcpy(d, s, 32);
    if (n >= 16) { std::memcpy(d, s, 16); n -= 16; d += 16; s += 16; }
    if (n >= 8) { std::memcpy(d, s, 8); n -= 8; d += 8; s += 8; }
    if (n >= 4) { std::memcpy(d, s, 4); n -= 4; d += 4; s += 4; }
    for (; n > 0; n--) *d++ = *s++;
}

// Copies `count` runs of L elements, run j from src + j·step to dst + j·L. L is a compile-time
// constant: each run is a fixed-size move, not a loop.
template <int L, class T>
inline void copy_runs(const T* src, int64_t step, T* dst, int64_t count) {
    for (int64_t j = 0; j < count; j++) std::memcpy(dst + j * L, src + j * step, L * sizeof(T));
}
template <class T>
inline void copy_runs(const T* src, int64_t step, T* dst, int64_t count, int64_t run) {
    switch (run) {
    case 1: return copy_runs<1>(src, step, dst, count);
    case 2: return copy_runs<2>(src, step, dst, count);
    case 3: return copy_runs<3>(src, step, dst, count);
    case 4: return copy_runs<4>(src, step, dst, count);
    case 6: return copy_runs<6>(src, step, dst, count);
    case 8: return copy_runs<8>(src, step, dst, count);
    default:
        for (int64_t j = 0; j < count; j++) {
            const T* s = src + j * step;
            T* d = dst + j * run;
            for (int64_t l = 0; l < run; l++) d[l] = s[l];
        }
    }
}

// Strided copy: y (contiguous, `shape`) from x at `offset` + index · `strides`.
// Serves Slice, Transpose, Expand, Split and DepthToSpace. Three forms:
// - the innermost axis contiguous in x (runs): each run is copied whole, the offsets stepping
//   along the next axis instead of being recomputed per row (channels-last splits, DepthToSpace's
//   runs of r elements: ESPCN's 3-float runs 3.8 → 20+ GB/s);
// - the innermost axis strided in x and another axis contiguous (a transpose): tiles of 16 × 16
//   over those two axes, reading runs of x and writing runs of y (MobileViT's unfolding
//   transposes: 2 → 10+ GB/s);
// - otherwise element by element.
// Threads take equal ranges of runs (rows).
constexpr int64_t kTransposeTile = 16;
template <class T>
inline void strided_copy(const T* x, int64_t offset, const int64_t* strides, T* y, int rank,
                         const int64_t* shape) {
    if (rank >= 2 && strides[rank - 1] == 1 && shape[rank - 1] > 0) {
        int64_t total = 1;
        for (int d = 0; d < rank; d++) total *= shape[d];
        if (total == 0) return;
        const int64_t run = shape[rank - 1], n2 = shape[rank - 2], s2 = strides[rank - 2];
        const int64_t runs = total / run;
        const int threads = total >= kParallelThreshold ? std::min<int64_t>(omp_get_max_threads(), runs) : 1;
#pragma omp parallel num_threads(threads) if (threads > 1)
        {
            const int t = omp_get_thread_num(), nt = omp_get_num_threads();
            int64_t q = runs * t / nt;
            const int64_t q1 = runs * (t + 1) / nt;
            while (q < q1) {
                // Run q is element j of row r along axis rank-2.
                const int64_t r = q / n2, j = q % n2;
                int64_t xo = offset, rem = r;
                for (int d = rank - 3; d >= 0; d--) {
                    xo += (rem % shape[d]) * strides[d];
                    rem /= shape[d];
                }
                const int64_t count = std::min(n2 - j, q1 - q);
                copy_runs(x + xo + j * s2, s2, y + q * run, count, run);
                q += count;
            }
        }
        return;
    }
    int a = -1;  // the axis along which x is contiguous, when the innermost one is not
    if (rank >= 2 && strides[rank - 1] != 1 && strides[rank - 1] != 0) {
        for (int d = rank - 2; d >= 0; d--) {
            if (strides[d] == 1 && shape[d] > 1) { a = d; break; }
        }
    }
    if (a < 0) {
        const int64_t* s[1] = {strides};
        const T* base = x + offset;
        for_each_strided<1>(rank, shape, s, [&](int64_t k, const int64_t* o) { y[k] = base[o[0]]; });
        return;
    }
    int64_t ystride[kMaxRank], total = 1;
    for (int d = rank - 1; d >= 0; d--) { ystride[d] = total; total *= shape[d]; }
    if (total == 0) return;
    const int64_t na = shape[a], nl = shape[rank - 1], sl = strides[rank - 1], ya = ystride[a];
    const int64_t outer = total / (na * nl);
    if (nl <= 4) {
        // A few strided elements per step of the contiguous axis (an image's 3 channels into
        // channels-last): the whole axis a in blocks, a fixed count of elements per step.
        const int64_t blocks = (na + 255) / 256;
        auto run = [&](auto count) {
            constexpr int64_t L = decltype(count)::value;
#pragma omp parallel for if (total >= kParallelThreshold && outer * blocks > 1)
            for (int64_t t = 0; t < outer * blocks; t++) {
                const int64_t r = t / blocks, i0 = (t % blocks) * 256, i1 = std::min(na, i0 + 256);
                int64_t xo = offset, yo = 0, rem = r;
                for (int d = rank - 2; d >= 0; d--) {
                    if (d == a) continue;
                    const int64_t i = rem % shape[d];
                    rem /= shape[d];
                    xo += i * strides[d];
                    yo += i * ystride[d];
                }
                const T* __restrict src = x + xo;
                T* __restrict dst = y + yo;
                if (ya == L) {  // y contiguous over both axes: interleaving stores
                    for (int64_t i = i0; i < i1; i++)
                        for (int64_t l = 0; l < L; l++) dst[i * L + l] = src[i + l * sl];
                } else {
                    for (int64_t i = i0; i < i1; i++)
                        for (int64_t l = 0; l < L; l++) dst[i * ya + l] = src[i + l * sl];
                }
            }
        };
        switch (nl) {
        case 1: return run(std::integral_constant<int64_t, 1>());
        case 2: return run(std::integral_constant<int64_t, 2>());
        case 3: return run(std::integral_constant<int64_t, 3>());
        default: return run(std::integral_constant<int64_t, 4>());
        }
    }
#pragma omp parallel for if (total >= kParallelThreshold && outer > 1)
    for (int64_t r = 0; r < outer; r++) {
        int64_t xo = offset, yo = 0, rem = r;
        for (int d = rank - 2; d >= 0; d--) {
            if (d == a) continue;
            const int64_t i = rem % shape[d];
            rem /= shape[d];
            xo += i * strides[d];
            yo += i * ystride[d];
        }
        for (int64_t i0 = 0; i0 < na; i0 += kTransposeTile) {
            const int64_t i1 = std::min(na, i0 + kTransposeTile);
            for (int64_t l0 = 0; l0 < nl; l0 += kTransposeTile) {
                const int64_t l1 = std::min(nl, l0 + kTransposeTile);
                for (int64_t i = i0; i < i1; i++) {
                    const T* src = x + xo + i;
                    T* dst = y + yo + i * ya;
                    for (int64_t l = l0; l < l1; l++) dst[l] = src[l * sl];
                }
            }
        }
    }
}

// Concat: for each of `outer` rows, copy each input's chunk in turn.
template <class T>
inline void concat(int count, const T* const* xs, const int64_t* chunks, T* y, int64_t outer) {
    int64_t total = 0;
    for (int i = 0; i < count; i++) total += chunks[i];
#pragma omp parallel for if (outer * total >= kParallelThreshold && outer > 1)
    for (int64_t o = 0; o < outer; o++) {
        T* dst = y + o * total;
        for (int i = 0; i < count; i++) {
            copy_bytes(dst, xs[i] + o * chunks[i], sizeof(T) * chunks[i]);
            dst += chunks[i];
        }
    }
}

// Split, concat's inverse: for each of `outer` rows of x, each output takes its chunk in turn.
// One pass over x, parallel over the rows (MobileNet-style splits of channels-last values are
// thousands of rows of a few dozen channels).
template <class T>
inline void split(const T* x, int count, T* const* ys, const int64_t* chunks, int64_t outer) {
    int64_t total = 0;
    for (int i = 0; i < count; i++) total += chunks[i];
#pragma omp parallel for if (outer * total >= kParallelThreshold && outer > 1)
    for (int64_t o = 0; o < outer; o++) {
        const T* src = x + o * total;
        for (int i = 0; i < count; i++) {
            copy_bytes(ys[i] + o * chunks[i], src, sizeof(T) * chunks[i]);
            src += chunks[i];
        }
    }
}

// Concatenation of quantized tensors into one with the output's parameters: inputs with them
// are copied, the others requantized, q' = quantize((q − zero)·scale) (ONNX's definition); on a
// CPU with AVX-512 VBMI through a 256-entry table of that function, computed once per call for
// inputs of at least 4096 elements, each input's rows looked up with the table held in registers
// (lookup8_vbmi: SqueezeNet's requantizing concatenations 13 -> 60-80 GB/s).
template <class T>
inline void concat_requantize(int count, const T* const* xs, const int64_t* chunks, const float* scales, const int32_t* zeros,
                              T* y, int64_t outer, float out_scale, int32_t out_zero) {
    int64_t total = 0;
    for (int i = 0; i < count; i++) total += chunks[i];
    constexpr int kTables = 32;
    alignas(64) uint8_t tables[kTables][256];
    bool tabled[kTables] = {};
    if (has_vbmi()) {
        for (int i = 0; i < count && i < kTables; i++) {
            if ((scales[i] == out_scale && zeros[i] == out_zero) || chunks[i] * outer < 4096) continue;
            for (int k = 0; k < 256; k++)
                tables[i][k] = (uint8_t)quantize_value<T>((float)((int32_t)(T)(uint8_t)k - zeros[i]) * scales[i], out_scale, out_zero);
            tabled[i] = true;
        }
    }
    // Input by input, each over all rows (a tabled input's table stays in registers across rows),
    // in one parallel region: the threads split each input's rows into the same 64 ranges.
    const int64_t tasks = std::min<int64_t>(outer, 64);
#pragma omp parallel if (outer * total >= kParallelThreshold && outer > 1)
    {
        int64_t offset = 0;
        for (int i = 0; i < count; offset += chunks[i], i++) {
            const T* __restrict x = xs[i];
            const int64_t len = chunks[i];  // hoisted: the loops vectorize only with a known trip count
            const float s = scales[i];
            const int32_t z = zeros[i];
            const bool same = s == out_scale && z == out_zero;
            const bool table = i < kTables && tabled[i];
#pragma omp for nowait
            for (int64_t t = 0; t < tasks; t++) {
                const int64_t o0 = outer * t / tasks, o1 = outer * (t + 1) / tasks;
                if (table) {
                    lookup8_vbmi((const uint8_t*)(x + o0 * len), len, (uint8_t*)(y + o0 * total + offset), total, o1 - o0, len,
                                 tables[i]);
                    continue;
                }
                for (int64_t o = o0; o < o1; o++) {
                    const T* __restrict src = x + o * len;
                    T* __restrict d = y + o * total + offset;
                    if (same) {
                        std::memcpy(d, src, sizeof(T) * len);
                    } else {
                        for (int64_t k = 0; k < len; k++) d[k] = quantize_value<T>((float)((int32_t)src[k] - z) * s, out_scale, out_zero);
                    }
                }
            }
        }
    }
}

// Gather along an axis: data viewed as [outer, dim, inner], indices flat.
template <class T, class I>
inline int gather(const T* x, const I* idx, int64_t nidx, T* y, int64_t outer, int64_t dim, int64_t inner) {
    for (int64_t o = 0; o < outer; o++) {
        for (int64_t j = 0; j < nidx; j++) {
            int64_t i = (int64_t)idx[j];
            if (i < 0) i += dim;
            if (i < 0 || i >= dim) return 1;
            std::memcpy(y + (o * nidx + j) * inner, x + (o * dim + i) * inner, sizeof(T) * inner);
        }
    }
    return 0;
}

// Gather of channels in a channels-last tensor: y[p][k] = x[p][idx[k]] for each of `pixels`.
template <class T, class I>
inline int gather_channels(const T* x, const I* idx, int64_t k_out, T* y, int64_t pixels, int64_t c) {
    for (int64_t k = 0; k < k_out; k++)
        if (idx[k] < -c || idx[k] >= c) return 1;
#pragma omp parallel for if (pixels * k_out >= kParallelThreshold)
    for (int64_t p = 0; p < pixels; p++) {
        const T* src = x + p * c;
        T* dst = y + p * k_out;
        for (int64_t k = 0; k < k_out; k++) {
            int64_t i = (int64_t)idx[k];
            dst[k] = src[i < 0 ? i + c : i];
        }
    }
    return 0;
}

// GatherElements: y[i…] = x[i… with idx[i…] at `axis`], idx of the same rank as x (shape
// ishape, which y has too). Returns 1, writing nothing, if an index is out of range.
template <class T, class I>
inline int gather_elements(const T* x, const I* idx, T* y, int rank, const int64_t* xshape, const int64_t* ishape,
                           int axis) {
    int64_t n = 1, xstride[kMaxRank];
    for (int d = 0; d < rank; d++) n *= ishape[d];
    for (int64_t d = rank - 1, s = 1; d >= 0; s *= xshape[d], d--) xstride[d] = s;
    const int64_t dim = xshape[axis];
    for (int64_t k = 0; k < n; k++)
        if ((int64_t)idx[k] < -dim || (int64_t)idx[k] >= dim) return 1;
    const int64_t last = rank ? ishape[rank - 1] : 1, rows = last ? n / last : 0;
#pragma omp parallel for if (n >= kParallelThreshold && rows > 1)
    for (int64_t r = 0; r < rows; r++) {
        // The row's offset in x without the gathered axis; that axis's stride for the indices.
        int64_t base = 0, rem = r;
        for (int d = rank - 2; d >= 0; d--) {
            const int64_t i = rem % ishape[d];
            rem /= ishape[d];
            if (d != axis) base += i * xstride[d];
        }
        for (int64_t j = 0; j < last; j++) {
            int64_t i = (int64_t)idx[r * last + j];
            if (i < 0) i += dim;
            y[r * last + j] = rank - 1 == axis ? x[base + i] : x[base + j * xstride[rank - 1] + i * xstride[axis]];
        }
    }
    return 0;
}

// ShuffleNet's channel shuffle in the channels-last layout: within each pixel, channel
// j·(c/G) + i moves to i·G + j. With G known at compile time the loop vectorizes (9× faster than
// the indexed gather at ShuffleNet's sizes).
template <int G, class T>
inline void channel_shuffle(const T* __restrict x, T* __restrict y, int64_t pixels, int64_t c) {
    const int64_t per = c / G;
#pragma omp parallel for if (pixels * c >= kParallelThreshold)
    for (int64_t p = 0; p < pixels; p++) {
        const T* s = x + p * c;
        T* d = y + p * c;
        for (int64_t i = 0; i < per; i++)
            for (int j = 0; j < G; j++) d[i * G + j] = s[j * per + i];
    }
}

// ONNX Pad's modes.
enum class PadMode { constant, reflect, edge, wrap };

// Where output index i (already shifted by the begin pad) reads along an axis of n elements:
// its source index, or -1 to take the constant.
inline int64_t pad_source(int64_t i, int64_t n, PadMode mode) {
    if (i >= 0 && i < n) return i;
    if (n == 0 || mode == PadMode::constant) return -1;
    if (mode == PadMode::edge) return std::min(std::max(i, (int64_t)0), n - 1);
    if (mode == PadMode::wrap) return ((i % n) + n) % n;
    if (n == 1) return 0;
    const int64_t period = 2 * (n - 1);
    i = ((i % period) + period) % period;
    return i >= n ? period - i : i;
}

// Pad (or crop, with negative pads) in any layout: the shapes and begin pads are given in
// memory order. Rows of the innermost axis in parallel; a constant pad copies each row's
// inside in one piece.
template <class T>
inline void pad(const T* x, const int64_t* in_shape, const int64_t* begin, T* y, const int64_t* out_shape,
                int rank, PadMode mode, T value) {
    int64_t in_strides[kMaxRank];
    int64_t acc = 1;
    for (int d = rank - 1; d >= 0; d--) { in_strides[d] = acc; acc *= in_shape[d]; }
    int64_t total = 1;
    for (int d = 0; d < rank; d++) total *= out_shape[d];
    if (total == 0) return;
    if (rank == 0) { y[0] = x[0]; return; }
    const int64_t width = out_shape[rank - 1], in_width = in_shape[rank - 1], b = begin[rank - 1];
    const int64_t rows = total / width;
    const int64_t lo = std::min(std::max(b, (int64_t)0), width), hi = std::max(lo, std::min(width, b + in_width));
#pragma omp parallel for if (total >= kParallelThreshold && rows > 1)
    for (int64_t r = 0; r < rows; r++) {
        T* yr = y + r * width;
        int64_t rem = r, off = 0;
        bool fill = false;
        for (int d = rank - 2; d >= 0; d--) {
            const int64_t i = pad_source(rem % out_shape[d] - begin[d], in_shape[d], mode);
            rem /= out_shape[d];
            if (i < 0) { fill = true; break; }
            off += i * in_strides[d];
        }
        if (fill) {
            for (int64_t j = 0; j < width; j++) yr[j] = value;
            continue;
        }
        const T* xr = x + off;
        if (mode == PadMode::constant) {
            for (int64_t j = 0; j < lo; j++) yr[j] = value;
            if (hi > lo) std::memcpy(yr + lo, xr + (lo - b), sizeof(T) * (hi - lo));
            for (int64_t j = hi; j < width; j++) yr[j] = value;
        } else {
            for (int64_t j = 0; j < width; j++) {
                const int64_t i = pad_source(j - b, in_width, mode);
                yr[j] = i < 0 ? value : xr[i];
            }
        }
    }
}

// Resize with per-axis tables (computed by the compiler): nearest index, or linear neighbours and
// weight; `outside` marks coordinates that take the extrapolation value.
template <class T>
inline void resize(const T* x, T* y, int rank, const int64_t* in_shape, const int64_t* out_shape,
                   const int64_t* const* nearest, const int64_t* const* lower, const int64_t* const* upper,
                   const float* const* weight, const unsigned char* const* outside, bool linear, float extrapolation) {
    int64_t strides[kMaxRank];
    int64_t acc = 1;
    for (int d = rank - 1; d >= 0; d--) { strides[d] = acc; acc *= in_shape[d]; }
    int64_t total = 1;
    for (int d = 0; d < rank; d++) total *= out_shape[d];
    int64_t idx[kMaxRank] = {};
    for (int64_t k = 0; k < total; k++) {
        bool out = false;
        for (int d = 0; d < rank; d++) out = out || outside[d][idx[d]];
        float v;
        if (out) {
            v = extrapolation;
        } else if (!linear) {
            int64_t off = 0;
            for (int d = 0; d < rank; d++) off += nearest[d][idx[d]] * strides[d];
            v = (float)load(x[off]);
        } else {
            v = 0;
            for (int corner = 0; corner < (1 << rank); corner++) {
                float w = 1;
                int64_t off = 0;
                for (int d = 0; d < rank; d++) {
                    bool up = (corner >> d) & 1;
                    float wd = weight[d][idx[d]];
                    w *= up ? wd : 1 - wd;
                    off += (up ? upper[d][idx[d]] : lower[d][idx[d]]) * strides[d];
                }
                if (w != 0) v += w * (float)load(x[off]);
            }
        }
        if constexpr (std::is_same<compute_t<T>, int64_t>::value) y[k] = store_i<T>(f2i(std::nearbyint(v)));
        else y[k] = store<T>(v);
        for (int d = rank - 1; d >= 0; d--) {
            if (++idx[d] < out_shape[d]) break;
            idx[d] = 0;
        }
    }
}

// Linear resize of NCHW planes (one channel each) whose rows fit kResizeRow: each task takes
// a run of output rows of one plane, interpolates each input row it needs along the width once
// (the two latest kept), then blends two such rows per output row, contiguously. The two
// weighings round differently from the four-corner sum, within two ulps of it.
constexpr int64_t kResizeRow = 2048;
inline void resize_hw_planes_linear(const float* x, float* y, int64_t planes, int64_t ih, int64_t iw, int64_t oh,
                                    int64_t ow, const int64_t* ly, const int64_t* uy, const float* wy,
                                    const int64_t* lx, const int64_t* ux, const float* wx) {
    // Each task interpolates its first input rows afresh: at least 16 output rows per task, and
    // four input rows' worth when upsampling (DeepLab's ×16 at 16 rows: 1.9 → 1.0 ms).
    const int64_t kRun = std::max<int64_t>(16, 4 * ((oh + ih - 1) / std::max<int64_t>(ih, 1)));
    const int64_t runs = (oh + kRun - 1) / kRun;
    auto term = [](float w, float v) { return w != 0.0f ? w * v : 0.0f; };
#pragma omp parallel for if (planes * oh * ow >= kParallelThreshold && planes * runs > 1)
    for (int64_t t = 0; t < planes * runs; t++) {
        const int64_t p = t / runs, oy0 = (t % runs) * kRun, oy1 = std::min(oh, oy0 + kRun);
        float rows[2][kResizeRow];
        int64_t held[2] = {-1, -1};
        int next = 0;
        auto row = [&](int64_t iy) -> const float* {
            for (int k = 0; k < 2; k++) if (held[k] == iy) return rows[k];
            float* dst = rows[next];
            held[next] = iy;
            next ^= 1;
            const float* src = x + (p * ih + iy) * iw;
#pragma omp simd
            for (int64_t ox = 0; ox < ow; ox++) dst[ox] = term(1.0f - wx[ox], src[lx[ox]]) + term(wx[ox], src[ux[ox]]);
            return dst;
        };
        for (int64_t oy = oy0; oy < oy1; oy++) {
            const float* top = row(ly[oy]);
            const float* bottom = row(uy[oy]);
            if (held[0] != ly[oy] && held[1] != ly[oy]) top = row(ly[oy]);  // both evicted by a distinct pair
            const float b = wy[oy], a = 1.0f - b;
            float* out = y + (p * oh + oy) * ow;
#pragma omp simd
            for (int64_t ox = 0; ox < ow; ox++) out[ox] = term(a, top[ox]) + term(b, bottom[ox]);
        }
    }
}

// Nearest resize of the two spatial axes (any element type: a copy): NCHW as `planes` = N·C
// planes of one channel, or NHWC as N planes of `c` channels. Each thread takes a run of output
// rows; a row whose source row is the previous row's copies that row whole (upsampling by 2: half
// the rows), and in NHWC a pixel is `c` contiguous elements.
template <class T>
inline void resize_hw_nearest(const T* x, T* y, int64_t planes, int64_t c, int64_t ih, int64_t iw, int64_t oh, int64_t ow,
                              const int64_t* ly, const int64_t* lx) {
    const int64_t rows = planes * oh, row = ow * c;
    const bool parallel = rows * row * (int64_t)sizeof(T) >= kParallelThreshold * 4 && rows > 1;
#pragma omp parallel if (parallel)
    {
        const int64_t threads = omp_get_num_threads(), t = omp_get_thread_num();
        const int64_t r0 = rows * t / threads, r1 = rows * (t + 1) / threads;
        for (int64_t r = r0; r < r1; r++) {
            const int64_t p = r / oh, oy = r % oh;
            T* out = y + r * row;
            if (r > r0 && oy > 0 && ly[oy] == ly[oy - 1]) {
                std::memcpy(out, out - row, sizeof(T) * row);
                continue;
            }
            const T* src = x + (p * ih + ly[oy]) * iw * c;
            if (c == 1) {
                for (int64_t ox = 0; ox < ow; ox++) out[ox] = src[lx[ox]];
            } else {
                for (int64_t ox = 0; ox < ow; ox++) copy_bytes(out + ox * c, src + lx[ox] * c, sizeof(T) * c);
            }
        }
    }
}

// Linear resize of the two spatial axes of a 4-D f32 tensor whose batch and channel axes stay
// (`resize` handles the rest): NCHW as `planes` = N·C planes of one channel, or NHWC as N
// planes of `c` channels, vectorized along the channels. Per-axis tables as for `resize`. It
// weighs the four neighbours as `resize` does, in the same order, so both give the same bits
// (NCHW rows up to kResizeRow take resize_hw_planes_linear). Parallel over output rows.
inline void resize_hw(const float* x, float* y, int64_t planes, int64_t c, int64_t ih, int64_t iw, int64_t oh, int64_t ow,
                      const int64_t* ly, const int64_t* uy, const float* wy, const int64_t* lx, const int64_t* ux,
                      const float* wx) {
    if (c == 1 && ow <= kResizeRow) {
        resize_hw_planes_linear(x, y, planes, ih, iw, oh, ow, ly, uy, wy, lx, ux, wx);
        return;
    }
#pragma omp parallel for if (planes * oh * ow * c >= kParallelThreshold && planes * oh > 1)
    for (int64_t r = 0; r < planes * oh; r++) {
        const int64_t p = r / oh, oy = r % oh;
        const float* top = x + (p * ih + ly[oy]) * iw * c;
        const float* bottom = x + (p * ih + uy[oy]) * iw * c;
        float* out = y + r * ow * c;
        const float b = wy[oy], a = 1.0f - b;
        // A corner of weight 0 adds nothing (not even an infinity's NaN), as in `resize`.
        auto term = [](float w, float v) { return w != 0.0f ? w * v : 0.0f; };
        if (c == 1) {
#pragma omp simd
            for (int64_t ox = 0; ox < ow; ox++) {
                const float d = wx[ox], e = 1.0f - d;
                float v = 0.0f;
                v += term(a * e, top[lx[ox]]);
                v += term(b * e, bottom[lx[ox]]);
                v += term(a * d, top[ux[ox]]);
                v += term(b * d, bottom[ux[ox]]);
                out[ox] = v;
            }
            continue;
        }
        for (int64_t ox = 0; ox < ow; ox++) {
            float* o = out + ox * c;
            const float* t0 = top + lx[ox] * c;
            const float* t1 = top + ux[ox] * c;
            const float* b0 = bottom + lx[ox] * c;
            const float* b1 = bottom + ux[ox] * c;
            const float d = wx[ox], e = 1.0f - d;
            const float w00 = a * e, w10 = b * e, w01 = a * d, w11 = b * d;
#pragma omp simd
            for (int64_t k = 0; k < c; k++) {
                float v = 0.0f;
                v += term(w00, t0[k]);
                v += term(w10, b0[k]);
                v += term(w01, t1[k]);
                v += term(w11, b1[k]);
                o[k] = v;
            }
        }
    }
}

}  // namespace
}  // namespace kiln
