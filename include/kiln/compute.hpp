// Kiln's C++ runtime, generic compute: ArgMax/ArgMin and TopK, convolutions and transposed
// convolutions of types oneDNN does not take, pooling, MatMul of other types, Softmax,
// reductions, LayerNormalization and InstanceNormalization.
// Every kernel takes its element types as template parameters (f32, f16, bf16, the integer types,
// u8/s8 for the quantized graphs). Included through runtime.hpp; internal linkage.
#pragma once

#include "core.hpp"

#include <omp.h>

namespace kiln {
namespace {

template <class V> inline bool is_nan_value(V v) {
    if constexpr (std::is_floating_point<V>::value) return std::isnan(v);
    else return false;
}

// ArgMax (largest) or ArgMin along the middle axis of x viewed as [outer, len, inner]: ties go to
// the first index, or the last with `last`; a NaN wins over any number (numpy's rule).
template <class T>
inline void arg_reduce(const T* x, int64_t* y, int64_t outer, int64_t len, int64_t inner, bool largest, bool last) {
#pragma omp parallel for if (outer * len * inner >= kParallelThreshold && outer * inner > 1)
    for (int64_t oi = 0; oi < outer * inner; oi++) {
        const T* p = x + (oi / inner) * len * inner + oi % inner;
        auto best = load(p[0]);
        int64_t at = 0;
        for (int64_t l = 1; l < len; l++) {
            const auto v = load(p[l * inner]);
            bool take;
            if (is_nan_value(best)) take = last && is_nan_value(v);
            else if (is_nan_value(v)) take = true;
            else take = (largest ? v > best : v < best) || (last && v == best);
            if (take) { best = v; at = l; }
        }
        y[oi] = at;
    }
}

// TopK along the middle axis of x viewed as [outer, len, inner]: the k first elements in the
// order "larger first" (or "smaller first"), equal values by index, a NaN counting as larger than
// any number. Each row keeps a heap of its k best indices in its own row of `indices` (stride
// inner), so no scratch memory is needed: O(len log k), then the heap is sorted in place.
template <class T>
inline void top_k(const T* x, T* values, int64_t* indices, int64_t outer, int64_t len, int64_t inner, int64_t k,
                  bool largest) {
    if (k == 0) return;
#pragma omp parallel for if (outer * len * inner >= kParallelThreshold && outer * inner > 1)
    for (int64_t oi = 0; oi < outer * inner; oi++) {
        const int64_t o = oi / inner, i = oi % inner;
        const T* p = x + o * len * inner + i;
        int64_t* h = indices + o * k * inner + i;
        // before(a, b): element a comes before element b in the output.
        auto before = [&](int64_t a, int64_t b) {
            const auto va = load(p[a * inner]), vb = load(p[b * inner]);
            const bool na = is_nan_value(va), nb = is_nan_value(vb);
            if (na || nb) {
                if (na && nb) return a < b;
                return largest ? na : nb;
            }
            if (va != vb) return largest ? va > vb : va < vb;
            return a < b;
        };
        // A heap whose root is the element that comes last: the first to drop out.
        auto sift_down = [&](int64_t at, int64_t size) {
            const int64_t e = h[at * inner];
            for (;;) {
                int64_t c = 2 * at + 1;
                if (c >= size) break;
                if (c + 1 < size && before(h[c * inner], h[(c + 1) * inner])) c++;
                if (!before(e, h[c * inner])) break;
                h[at * inner] = h[c * inner];
                at = c;
            }
            h[at * inner] = e;
        };
        for (int64_t l = 0; l < k; l++) {
            int64_t at = l;
            while (at > 0 && before(h[((at - 1) / 2) * inner], l)) {
                h[at * inner] = h[((at - 1) / 2) * inner];
                at = (at - 1) / 2;
            }
            h[at * inner] = l;
        }
        for (int64_t l = k; l < len; l++) {
            if (before(l, h[0])) {
                h[0] = l;
                sift_down(0, k);
            }
        }
        for (int64_t size = k - 1; size > 0; size--) {
            const int64_t root = h[0];
            h[0] = h[size * inner];
            h[size * inner] = root;
            sift_down(0, size);
        }
        T* v = values + o * k * inner + i;
        for (int64_t l = 0; l < k; l++) v[l * inner] = p[h[l * inner] * inner];
    }
}

// Spatial geometry padded to 3 axes (D, H, W).
struct Window {
    int64_t in[3], out[3], k[3], s[3], d[3], p[3], pe[3];
};

// Direct convolution, accumulating in Acc: y[oc] = store(bias(oc) + Σ load_x(x) · load_w(w, oc)).
template <class Acc, class X, class Wt, class Y, class LoadX, class LoadW, class Bias, class Store>
inline void conv_loop(const X* x, const Wt* w, Y* y, int64_t n, int64_t c, int64_t m, int64_t groups, const Window& g,
                      LoadX load_x, LoadW load_w, Bias bias, Store store_y) {
    const int64_t cg = c / groups, mg = m / groups;
    const int64_t insz = g.in[0] * g.in[1] * g.in[2], outsz = g.out[0] * g.out[1] * g.out[2];
    const int64_t ksz = g.k[0] * g.k[1] * g.k[2];
#pragma omp parallel for collapse(2) if (n * m * outsz * cg * ksz > 100000)
    for (int64_t bi = 0; bi < n; bi++)
        for (int64_t oc = 0; oc < m; oc++) {
            const int64_t grp = oc / mg;
            for (int64_t od = 0; od < g.out[0]; od++)
                for (int64_t oh = 0; oh < g.out[1]; oh++)
                    for (int64_t ow = 0; ow < g.out[2]; ow++) {
                        Acc acc = bias(oc);
                        for (int64_t icg = 0; icg < cg; icg++) {
                            const X* xin = x + (bi * c + grp * cg + icg) * insz;
                            const Wt* wk = w + (oc * cg + icg) * ksz;
                            for (int64_t kd = 0; kd < g.k[0]; kd++) {
                                int64_t id = od * g.s[0] + kd * g.d[0] - g.p[0];
                                if (id < 0 || id >= g.in[0]) continue;
                                for (int64_t kh = 0; kh < g.k[1]; kh++) {
                                    int64_t ih = oh * g.s[1] + kh * g.d[1] - g.p[1];
                                    if (ih < 0 || ih >= g.in[1]) continue;
                                    for (int64_t kw = 0; kw < g.k[2]; kw++) {
                                        int64_t iw = ow * g.s[2] + kw * g.d[2] - g.p[2];
                                        if (iw < 0 || iw >= g.in[2]) continue;
                                        acc += load_x(xin[(id * g.in[1] + ih) * g.in[2] + iw]) *
                                               load_w(wk[(kd * g.k[1] + kh) * g.k[2] + kw], oc);
                                    }
                                }
                            }
                        }
                        y[(bi * m + oc) * outsz + (od * g.out[1] + oh) * g.out[2] + ow] = store_y(acc);
                    }
        }
}

// Direct convolution (any element type; the f32 path goes through oneDNN instead).
template <class T>
inline void conv(const T* x, const T* w, const T* b, T* y, int64_t n, int64_t c, int64_t m, int64_t groups,
                 const Window& g) {
    conv_loop<float>(x, w, y, n, c, m, groups, g, [](T v) { return (float)load(v); }, [](T v, int64_t) { return (float)load(v); },
                     [b](int64_t oc) { return b ? (float)load(b[oc]) : 0.0f; }, [](float a) { return store<T>(a); });
}

// ONNX ConvInteger: conv(x − x_zp, w − w_zp) in 32 bits; x_zp one value or null, w_zp one value,
// one per output channel (w_per_channel), or null.
template <class X, class Wt>
inline void conv_integer(const X* x, const Wt* w, const X* x_zp, const Wt* w_zp, bool w_per_channel, int32_t* y, int64_t n,
                         int64_t c, int64_t m, int64_t groups, const Window& g) {
    const int32_t zx = x_zp ? (int32_t)x_zp[0] : 0;
    conv_loop<int32_t>(x, w, y, n, c, m, groups, g, [zx](X v) { return (int32_t)v - zx; },
                       [w_zp, w_per_channel](Wt v, int64_t oc) { return (int32_t)v - (w_zp ? (int32_t)w_zp[w_per_channel ? oc : 0] : 0); },
                       [](int64_t) { return (int32_t)0; }, [](int32_t a) { return a; });
}

// Transposed convolution (weights [C, M/g, k...]).
template <class T>
inline void conv_transpose(const T* x, const T* w, const T* b, T* y, int64_t n, int64_t c, int64_t m,
                           int64_t groups, const Window& g) {
    const int64_t cg = c / groups, mg = m / groups;
    const int64_t insz = g.in[0] * g.in[1] * g.in[2], outsz = g.out[0] * g.out[1] * g.out[2];
    const int64_t ksz = g.k[0] * g.k[1] * g.k[2];
    float* acc = new float[outsz];
    for (int64_t bi = 0; bi < n; bi++)
        for (int64_t oc = 0; oc < m; oc++) {
            const int64_t grp = oc / mg, ocg = oc % mg;
            const float bias = b ? load(b[oc]) : 0.0f;
            for (int64_t i = 0; i < outsz; i++) acc[i] = bias;
            for (int64_t icg = 0; icg < cg; icg++) {
                const int64_t ic = grp * cg + icg;
                const T* xin = x + (bi * c + ic) * insz;
                const T* wk = w + (ic * mg + ocg) * ksz;
                for (int64_t id = 0; id < g.in[0]; id++)
                    for (int64_t ih = 0; ih < g.in[1]; ih++)
                        for (int64_t iw = 0; iw < g.in[2]; iw++) {
                            const float xv = load(xin[(id * g.in[1] + ih) * g.in[2] + iw]);
                            for (int64_t kd = 0; kd < g.k[0]; kd++) {
                                int64_t od = id * g.s[0] + kd * g.d[0] - g.p[0];
                                if (od < 0 || od >= g.out[0]) continue;
                                for (int64_t kh = 0; kh < g.k[1]; kh++) {
                                    int64_t oh = ih * g.s[1] + kh * g.d[1] - g.p[1];
                                    if (oh < 0 || oh >= g.out[1]) continue;
                                    for (int64_t kw = 0; kw < g.k[2]; kw++) {
                                        int64_t ow = iw * g.s[2] + kw * g.d[2] - g.p[2];
                                        if (ow < 0 || ow >= g.out[2]) continue;
                                        acc[(od * g.out[1] + oh) * g.out[2] + ow] +=
                                            xv * load(wk[(kd * g.k[1] + kh) * g.k[2] + kw]);
                                    }
                                }
                            }
                        }
            }
            T* dst = y + (bi * m + oc) * outsz;
            for (int64_t i = 0; i < outsz; i++) dst[i] = store<T>(acc[i]);
        }
    delete[] acc;
}

// Average pooling of quantized values: each value read is dequantized, (q − in_zero)·in_scale,
// and each window's mean (sum / div; padding counts as a real 0) quantized by the output's
// parameters, as ONNX defines it.
template <class Q>
struct requantized_mean {
    float in_scale;
    int32_t in_zero;
    float out_scale;
    int32_t out_zero;
    template <class T> float in(T v) const { return (float)((int32_t)v - in_zero) * in_scale; }
    Q operator()(float sum, int64_t div) const { return quantize_value<Q>(div > 0 ? sum / (float)div : 0.0f, out_scale, out_zero); }
};

// What pooling adds up: the value as float, or through `fin.in` (`requantized_mean`).
template <class F, class T>
inline float pool_value(const F& fin, T v) {
    if constexpr (std::is_same_v<F, std::nullptr_t>) return load_float(v);
    else return fin.in(v);
}

// Max or average pooling over up to 3 spatial axes. With `fin` (average only), values are read
// and each window's sum and divisor written through it (`requantized_mean`).
template <class T, class U = T, class F = std::nullptr_t>
inline void pool(const T* x, U* y, int64_t planes, const Window& g, bool average, bool count_include_pad, F fin = nullptr) {
    const int64_t insz = g.in[0] * g.in[1] * g.in[2], outsz = g.out[0] * g.out[1] * g.out[2];
#pragma omp parallel for if (planes * outsz > 100000)
    for (int64_t p = 0; p < planes; p++) {
        const T* xin = x + p * insz;
        for (int64_t od = 0; od < g.out[0]; od++)
            for (int64_t oh = 0; oh < g.out[1]; oh++)
                for (int64_t ow = 0; ow < g.out[2]; ow++) {
                    const int64_t o3[3] = {od, oh, ow};
                    int64_t pad_count = 1;
                    for (int ax = 0; ax < 3; ax++) {
                        int64_t start = o3[ax] * g.s[ax] - g.p[ax], cnt = 0;
                        for (int64_t kk = 0; kk < g.k[ax]; kk++) {
                            int64_t i = start + kk * g.d[ax];
                            if (i >= -g.p[ax] && i < g.in[ax] + g.pe[ax]) cnt++;
                        }
                        pad_count *= cnt;
                    }
                    float acc = average ? 0.0f : -INFINITY;
                    int64_t count = 0;
                    for (int64_t kd = 0; kd < g.k[0]; kd++) {
                        int64_t id = od * g.s[0] + kd * g.d[0] - g.p[0];
                        if (id < 0 || id >= g.in[0]) continue;
                        for (int64_t kh = 0; kh < g.k[1]; kh++) {
                            int64_t ih = oh * g.s[1] + kh * g.d[1] - g.p[1];
                            if (ih < 0 || ih >= g.in[1]) continue;
                            for (int64_t kw = 0; kw < g.k[2]; kw++) {
                                int64_t iw = ow * g.s[2] + kw * g.d[2] - g.p[2];
                                if (iw < 0 || iw >= g.in[2]) continue;
                                float v = pool_value(fin, xin[(id * g.in[1] + ih) * g.in[2] + iw]);
                                if (average) acc += v;
                                else if (v > acc || std::isnan(v)) acc = v;
                                count++;
                            }
                        }
                    }
                    U* dst = y + p * outsz + (od * g.out[1] + oh) * g.out[2] + ow;
                    if (average) {
                        int64_t div = count_include_pad ? pad_count : count;
                        if constexpr (!std::is_same_v<F, std::nullptr_t>) {
                            *dst = fin(acc, div);
                            continue;
                        }
                        acc = div > 0 ? acc / (float)div : 0.0f;
                    }
                    *dst = store<U>(acc);
                }
    }
}

// Pooling over a channels-last (N, H, W, C) tensor: the innermost loop runs over channels.
// `fin` as for `pool`.
template <class T, class U = T, class F = std::nullptr_t>
inline void pool_nhwc(const T* x, U* y, int64_t n, int64_t c, const Window& g, bool average, bool count_include_pad, F fin = nullptr) {
    const int64_t ih_ = g.in[1], iw_ = g.in[2], oh_ = g.out[1], ow_ = g.out[2];
#pragma omp parallel for collapse(2) if (n * oh_ * ow_ * c > 32768)
    for (int64_t b = 0; b < n; b++)
        for (int64_t oh = 0; oh < oh_; oh++) {
            float acc[1024];
            for (int64_t ow = 0; ow < ow_; ow++) {
                U* dst = y + ((b * oh_ + oh) * ow_ + ow) * c;
                int64_t h0 = oh * g.s[1] - g.p[1], w0 = ow * g.s[2] - g.p[2];
                int64_t pad_h = 0, pad_w = 0, count = 0;
                for (int64_t kh = 0; kh < g.k[1]; kh++) { int64_t i = h0 + kh * g.d[1]; if (i >= -g.p[1] && i < ih_ + g.pe[1]) pad_h++; }
                for (int64_t kw = 0; kw < g.k[2]; kw++) { int64_t i = w0 + kw * g.d[2]; if (i >= -g.p[2] && i < iw_ + g.pe[2]) pad_w++; }
                for (int64_t c0 = 0; c0 < c; c0 += 1024) {
                    const int64_t cn = std::min<int64_t>(1024, c - c0);
                    for (int64_t k = 0; k < cn; k++) acc[k] = average ? 0.0f : -INFINITY;
                    count = 0;
                    for (int64_t kh = 0; kh < g.k[1]; kh++) {
                        int64_t ih = h0 + kh * g.d[1];
                        if (ih < 0 || ih >= ih_) continue;
                        for (int64_t kw = 0; kw < g.k[2]; kw++) {
                            int64_t iw = w0 + kw * g.d[2];
                            if (iw < 0 || iw >= iw_) continue;
                            const T* src = x + ((b * ih_ + ih) * iw_ + iw) * c + c0;
                            if (average) { for (int64_t k = 0; k < cn; k++) acc[k] += pool_value(fin, src[k]); }
                            else {
                                for (int64_t k = 0; k < cn; k++) {
                                    float v = (float)load(src[k]);
                                    acc[k] = (v > acc[k] || std::isnan(v)) ? v : acc[k];
                                }
                            }
                            count++;
                        }
                    }
                    if (average) {
                        const int64_t div = count_include_pad ? pad_h * pad_w : count;
                        if constexpr (!std::is_same_v<F, std::nullptr_t>) {
                            for (int64_t k = 0; k < cn; k++) dst[c0 + k] = fin(acc[k], div);
                        } else {
                            const float inv = div > 0 ? 1.0f / (float)div : 0.0f;
                            for (int64_t k = 0; k < cn; k++) dst[c0 + k] = store<U>(acc[k] * inv);
                        }
                    } else {
                        for (int64_t k = 0; k < cn; k++) dst[c0 + k] = store<U>(acc[k]);
                    }
                }
            }
        }
}

// Max pooling of a channels-last (N, H, W, C) tensor over a 2-D window without dilation, for
// f32, u8 and s8: the max of the window's valid inputs (NaN wins), over contiguous channels
// (vectorized); separable (rows, then columns) when an input row fits 64 KB. About twice
// oneDNN 2.6's jit:avx2 nhwc pooling (ResNet's 3×3/2 on 112×112×64: 0.25 against 0.47 ms).
// A window entirely in the padding gives store<T>(-inf), as `pool_nhwc`.
template <class T>
inline T max_nan(T v, T a) { return (v > a || v != v) ? v : a; }

template <class T>
inline void max_pool_nhwc_2d(const T* x, T* y, int64_t n, int64_t c, const Window& g) {
    const int64_t ih_ = g.in[1], iw_ = g.in[2], oh_ = g.out[1], ow_ = g.out[2];
    const int64_t kh = g.k[1], kw = g.k[2], sh = g.s[1], sw = g.s[2], pt = g.p[1], pl = g.p[2];
    const int64_t rowlen = iw_ * c;
    constexpr int64_t kRowBytes = 64 << 10;
    if (rowlen * (int64_t)sizeof(T) <= kRowBytes) {
        // Separable: the max over the window's rows, one contiguous loop over a whole input row
        // (iw·c values), then over each window's columns of that row. ShuffleNet's 3×3/2 on
        // 112×112×24: 1.45× the pixel-by-pixel form below.
#pragma omp parallel for collapse(2) if (n * oh_ * ow_ * c >= kParallelThreshold)
        for (int64_t b = 0; b < n; b++)
            for (int64_t oh = 0; oh < oh_; oh++) {
                alignas(64) unsigned char buf[kRowBytes];
                T* __restrict r = reinterpret_cast<T*>(buf);
                const int64_t h0 = oh * sh - pt, a0 = std::max<int64_t>(0, h0), a1 = std::min(ih_, h0 + kh);
                T* __restrict out = y + (b * oh_ + oh) * ow_ * c;
                if (a0 >= a1) {
                    for (int64_t k = 0; k < ow_ * c; k++) out[k] = store<T>(-INFINITY);
                    continue;
                }
                const T* __restrict first = x + (b * ih_ + a0) * rowlen;
                for (int64_t k = 0; k < rowlen; k++) r[k] = first[k];
                for (int64_t i = a0 + 1; i < a1; i++) {
                    const T* __restrict src = x + (b * ih_ + i) * rowlen;
                    for (int64_t k = 0; k < rowlen; k++) r[k] = max_nan(src[k], r[k]);
                }
                for (int64_t ow = 0; ow < ow_; ow++) {
                    const int64_t w0 = ow * sw - pl, b0 = std::max<int64_t>(0, w0), b1 = std::min(iw_, w0 + kw);
                    T* __restrict dst = out + ow * c;
                    if (b0 >= b1) {
                        for (int64_t k = 0; k < c; k++) dst[k] = store<T>(-INFINITY);
                        continue;
                    }
                    const T* __restrict p0 = r + b0 * c;
                    for (int64_t k = 0; k < c; k++) dst[k] = p0[k];
                    for (int64_t j = b0 + 1; j < b1; j++) {
                        const T* __restrict p = r + j * c;
                        for (int64_t k = 0; k < c; k++) dst[k] = max_nan(p[k], dst[k]);
                    }
                }
            }
        return;
    }
#pragma omp parallel for collapse(2) if (n * oh_ * ow_ * c >= kParallelThreshold)
    for (int64_t b = 0; b < n; b++)
        for (int64_t oh = 0; oh < oh_; oh++) {
            const int64_t h0 = oh * sh - pt, a0 = std::max<int64_t>(0, h0), a1 = std::min(ih_, h0 + kh);
            for (int64_t ow = 0; ow < ow_; ow++) {
                const int64_t w0 = ow * sw - pl, b0 = std::max<int64_t>(0, w0), b1 = std::min(iw_, w0 + kw);
                T* dst = y + ((b * oh_ + oh) * ow_ + ow) * c;
                if (a0 >= a1 || b0 >= b1) {
                    for (int64_t k = 0; k < c; k++) dst[k] = store<T>(-INFINITY);
                    continue;
                }
                const T* first = x + ((b * ih_ + a0) * iw_ + b0) * c;
                for (int64_t k = 0; k < c; k++) dst[k] = first[k];
                for (int64_t i = a0; i < a1; i++)
                    for (int64_t j = (i == a0 ? b0 + 1 : b0); j < b1; j++) {
                        const T* src = x + ((b * ih_ + i) * iw_ + j) * c;
                        for (int64_t k = 0; k < c; k++) dst[k] = max_nan(src[k], dst[k]);
                    }
            }
        }
}

// Global pooling of a channels-last tensor; `fin` as for `pool`.
template <class T, class U = T, class F = std::nullptr_t>
inline void global_pool_nhwc(const T* x, U* y, int64_t n, int64_t hw, int64_t c, bool average, F fin = nullptr) {
    // Blocks of 128 channels, in parallel (each channel's sum runs in order either way).
    const int64_t blocks = (c + 127) / 128;
#pragma omp parallel for collapse(2) if (n * hw * c >= kParallelThreshold)
    for (int64_t b = 0; b < n; b++) {
        for (int64_t cb = 0; cb < blocks; cb++) {
            const int64_t c0 = cb * 128, cn = std::min<int64_t>(128, c - c0);
            float acc[128];
            for (int64_t k = 0; k < cn; k++) acc[k] = average ? 0.0f : -INFINITY;
            for (int64_t i = 0; i < hw; i++) {
                const T* __restrict src = x + (b * hw + i) * c + c0;
                if (average) { for (int64_t k = 0; k < cn; k++) acc[k] += pool_value(fin, src[k]); }
                else { for (int64_t k = 0; k < cn; k++) acc[k] = std::max(acc[k], load_float(src[k])); }
            }
            if constexpr (!std::is_same_v<F, std::nullptr_t>) {
                for (int64_t k = 0; k < cn; k++) y[b * c + c0 + k] = fin(acc[k], hw);
            } else {
                for (int64_t k = 0; k < cn; k++) y[b * c + c0 + k] = store<U>(average ? acc[k] / (float)hw : acc[k]);
            }
        }
    }
}

// Global pooling of planes of `inner` values; `fin` as for `pool`.
template <class T, class U = T, class F = std::nullptr_t>
inline void global_pool(const T* x, U* y, int64_t planes, int64_t inner, bool average, F fin = nullptr) {
#pragma omp parallel for if (planes * inner >= kParallelThreshold && planes > 1)
    for (int64_t p = 0; p < planes; p++) {
        float acc = average ? 0.0f : -INFINITY;
        for (int64_t i = 0; i < inner; i++) {
            float v = pool_value(fin, x[p * inner + i]);
            if (average) acc += v; else acc = std::max(acc, v);
        }
        if constexpr (!std::is_same_v<F, std::nullptr_t>) y[p] = fin(acc, inner);
        else y[p] = store<U>(average ? acc / (float)inner : acc);
    }
}

// y[m][n] = sum_k a[m][k] b[k][n] over a batch (batch offsets precomputed by the caller).
template <class T>
inline void matmul(const T* a, const T* b, T* y, int64_t m, int64_t n, int64_t k, bool ta, bool tb) {
    using C = compute_t<T>;
    for (int64_t i = 0; i < m; i++)
        for (int64_t j = 0; j < n; j++) {
            C acc = 0;
            for (int64_t kk = 0; kk < k; kk++) {
                C av = load(ta ? a[kk * m + i] : a[i * k + kk]);
                C bv = load(tb ? b[j * k + kk] : b[kk * n + j]);
                if constexpr (std::is_same<C, int64_t>::value) acc = wadd(acc, wmul(av, bv));
                else acc += av * bv;
            }
            y[i * n + j] = store_c<T>(acc);
        }
}

// A softmax probability below the smallest normal float becomes 0: masked positions (an additive
// mask of -3.4e38, as transformers' exporters write) take exp_f's 0, not exp_vec's smallest
// normal, whose product by 1/sum was subnormal: a matmul over subnormal probabilities ran 50x
// slower (MiniLM's attention x V on a padded sentence: 7.9 ms against 0.05), and the softmax
// itself 3.5x (computing each subnormal product). NaN stays NaN.
inline float flush_subnormal(float v) { return v < std::numeric_limits<float>::min() ? 0.0f : v; }

// Softmax (or log-softmax) of one contiguous row of f32. The exponentials are summed in float
// within blocks of 256 (vectorized) and the blocks in double.
template <bool log_softmax>
inline void softmax_row(const float* x, float* y, int64_t len) {
    const float mx = max_of(x, len);
    double sum = 0;
    for (int64_t b = 0; b < len; b += 256) {
        const int64_t end = std::min(len, b + 256);
        float part = 0;
        if constexpr (log_softmax) {
#pragma omp simd reduction(+ : part)
            for (int64_t l = b; l < end; l++) part += exp_vec(x[l] - mx);
        } else {
#pragma omp simd reduction(+ : part)
            for (int64_t l = b; l < end; l++) {
                const float e = exp_f(x[l] - mx);
                y[l] = e;
                part += e;
            }
        }
        sum += part;
    }
    if constexpr (log_softmax) {
        const float shift = mx + (float)std::log(sum);
#pragma omp simd
        for (int64_t l = 0; l < len; l++) y[l] = x[l] - shift;
    } else {
        const float inv = (float)(1.0 / sum);
#pragma omp simd
        for (int64_t l = 0; l < len; l++) y[l] = flush_subnormal(y[l] * inv);
    }
}

// Softmax over the middle axis of [outer, len, inner] for `w` ≤ kSoftmaxBlock neighbouring
// columns at once (inner > 1: the axis is strided, the columns are contiguous).
constexpr int64_t kSoftmaxBlock = 256;
template <bool log_softmax>
inline void softmax_columns(const float* x, float* y, int64_t len, int64_t inner, int64_t w) {
    alignas(32) float mx[kSoftmaxBlock], acc[kSoftmaxBlock], part[kSoftmaxBlock];
    double sum[kSoftmaxBlock];
    for (int64_t j = 0; j < w; j++) { mx[j] = -INFINITY; sum[j] = 0; }
    for (int64_t l = 0; l < len; l++) {
        const float* p = x + l * inner;
#pragma omp simd
        for (int64_t j = 0; j < w; j++) mx[j] = std::max(mx[j], p[j]);
    }
    // The exponentials summed in float over 256 rows at a time, those sums in double (a double
    // accumulator in the vector loop halves its width: YOLO's 16-bin softmax 2x slower).
    for (int64_t l0 = 0; l0 < len; l0 += 256) {
        const int64_t l1 = std::min(len, l0 + 256);
        for (int64_t j = 0; j < w; j++) part[j] = 0;
        for (int64_t l = l0; l < l1; l++) {
            const float* p = x + l * inner;
            float* q = y + l * inner;
#pragma omp simd
            for (int64_t j = 0; j < w; j++) {
                const float e = log_softmax ? exp_vec(p[j] - mx[j]) : exp_f(p[j] - mx[j]);
                if constexpr (!log_softmax) q[j] = e;
                part[j] += e;
            }
        }
        for (int64_t j = 0; j < w; j++) sum[j] += (double)part[j];
    }
    for (int64_t j = 0; j < w; j++) acc[j] = log_softmax ? mx[j] + (float)std::log(sum[j]) : (float)(1.0 / sum[j]);
    for (int64_t l = 0; l < len; l++) {
        const float* p = x + l * inner;
        float* q = y + l * inner;
        if constexpr (log_softmax) {
#pragma omp simd
            for (int64_t j = 0; j < w; j++) q[j] = p[j] - acc[j];
        } else {
#pragma omp simd
            for (int64_t j = 0; j < w; j++) q[j] = flush_subnormal(q[j] * acc[j]);
        }
    }
}

// Softmax over the middle axis of x viewed as [outer, len, inner]. f32 runs vectorized (exp_vec)
// and in parallel over rows or column blocks; every element is computed the same way whatever
// the thread count. Other types take a scalar loop in double.
// (Log-softmax a template parameter: a run-time flag captured by the OpenMP region is not
// folded, and the vector loops test it per element: 2x slower.)
template <bool log_softmax>
inline void softmax_f32(const float* x, float* y, int64_t outer, int64_t len, int64_t inner) {
    if (inner == 1) {
#pragma omp parallel for if (outer * len >= kParallelThreshold && outer > 1)
        for (int64_t o = 0; o < outer; o++) softmax_row<log_softmax>(x + o * len, y + o * len, len);
    } else {
        const int64_t blocks = (inner + kSoftmaxBlock - 1) / kSoftmaxBlock;
#pragma omp parallel for if (outer * len * inner >= kParallelThreshold && outer * blocks > 1)
        for (int64_t t = 0; t < outer * blocks; t++) {
            const int64_t o = t / blocks, j0 = (t % blocks) * kSoftmaxBlock;
            const int64_t off = o * len * inner + j0;
            softmax_columns<log_softmax>(x + off, y + off, len, inner, std::min(kSoftmaxBlock, inner - j0));
        }
    }
}

template <class T>
inline void softmax(const T* x, T* y, int64_t outer, int64_t len, int64_t inner, bool log_softmax) {
    if constexpr (std::is_same<T, float>::value) {
        if (log_softmax) softmax_f32<true>(x, y, outer, len, inner);
        else softmax_f32<false>(x, y, outer, len, inner);
        return;
    }
    for (int64_t o = 0; o < outer; o++)
        for (int64_t i = 0; i < inner; i++) {
            float mx = -INFINITY;
            for (int64_t l = 0; l < len; l++) mx = std::max(mx, load(x[(o * len + l) * inner + i]));
            double sum = 0;
            for (int64_t l = 0; l < len; l++) sum += std::exp((double)(load(x[(o * len + l) * inner + i]) - mx));
            for (int64_t l = 0; l < len; l++) {
                int64_t k = (o * len + l) * inner + i;
                double v = (double)(load(x[k]) - mx);
                y[k] = store<T>((float)(log_softmax ? v - std::log(sum) : std::exp(v) / sum));
            }
        }
}

// The ONNX reductions (ReduceOp in Kiln's IR, same order of names).
enum class Reduce { mean, sum, max, min, prod, sum_square, l1, l2, log_sum, log_sum_exp };

// The sum (of squares for sum_square and L2, of magnitudes for L1) of f over `len` points along
// the innermost axis from offsets `off`, input j stepping by bit j of Unit (1 or 0): floats in
// blocks of 256 (a vectorized loop), the blocks in double.
template <int N, unsigned Unit, Reduce K, class F>
inline double reduce_row(const int64_t* off, int64_t len, F& f) {
    double acc = 0;
    for (int64_t b = 0; b < len; b += 256) {
        const int64_t e = std::min(len, b + 256);
        float part = 0;
#pragma omp simd reduction(+ : part)
        for (int64_t i = b; i < e; i++) {
            int64_t o[N];
            for (int j = 0; j < N; j++) o[j] = off[j] + (((Unit >> j) & 1u) ? i : 0);
            const float v = (float)f((const int64_t*)o);
            part += K == Reduce::sum_square || K == Reduce::l2 ? v * v : K == Reduce::l1 ? std::fabs(v) : v;
        }
        acc += (double)part;
    }
    return acc;
}

template <int N, Reduce K, unsigned Unit = 0, class F>
inline double reduce_row_dispatch(unsigned unit, const int64_t* off, int64_t len, F& f) {
    if constexpr (Unit + 1 < (1u << N)) {
        if (unit != Unit) return reduce_row_dispatch<N, K, Unit + 1>(unit, off, len, f);
    }
    return reduce_row<N, Unit, K>(off, len, f);
}

// Reduction over the axes marked in `reduced` of an iteration space `shape`, where f(offsets)
// gives the value at a point (input j at offsets[j], advancing by strides[j]): a plain reduce
// reads one tensor, a fused elementwise group computes its steps there. Output elements are in
// the kept axes' order. Floats accumulate in double (max and min propagate NaN), except the sums
// (mean, sum, sum of squares, L1, L2) over a reduced innermost axis along which every input
// steps by 0 or 1 (up to 3 inputs): those run as vectorized rows (reduce_row). Integers wrap
// like the reference (L2 and the logarithms are for floats only). Parallel over outputs; no
// allocation.
template <int N, Reduce K, class T, class F>
inline void reduce_strided(int rank, const int64_t* shape, const int64_t* const* strides, const bool* reduced,
                           T* y, int64_t int_lowest, int64_t int_highest, F f) {
    using C = compute_t<T>;
    constexpr bool is_int = std::is_same<C, int64_t>::value;
    using A = typename std::conditional<is_int, int64_t, double>::type;
    int kept_axes[kMaxRank], red_axes[kMaxRank];
    int nk = 0, nr = 0;
    int64_t out_count = 1, red_count = 1;
    for (int d = 0; d < rank; d++) {
        if (reduced[d]) { red_axes[nr++] = d; red_count *= shape[d]; }
        else { kept_axes[nk++] = d; out_count *= shape[d]; }
    }
    A start = K == Reduce::prod ? 1 : 0;
    if constexpr (is_int) {
        if (K == Reduce::max) start = int_lowest;
        if (K == Reduce::min) start = int_highest;
    } else {
        if (K == Reduce::max) start = -INFINITY;
        if (K == Reduce::min) start = INFINITY;
    }
    // The vectorized rows: a sum over a reduced innermost axis, unit or zero steps there.
    constexpr bool summing = K == Reduce::mean || K == Reduce::sum || K == Reduce::sum_square || K == Reduce::l1 || K == Reduce::l2;
    bool rows = !is_int && summing && N <= 3 && nr > 0 && red_axes[nr - 1] == rank - 1 && shape[rank - 1] > 0;
    unsigned unit = 0;
    for (int j = 0; j < N && rows; j++) {
        const int64_t st = strides[j][rank - 1];
        if (st == 1) unit |= 1u << j;
        else if (st != 0) rows = false;
    }
#pragma omp parallel for if (out_count * red_count >= kParallelThreshold && out_count > 1)
    for (int64_t i = 0; i < out_count; i++) {
        int64_t off[N] = {};
        int64_t rem = i;
        for (int a = nk - 1; a >= 0; a--) {
            const int d = kept_axes[a];
            const int64_t idx = rem % shape[d];
            rem /= shape[d];
            for (int j = 0; j < N; j++) off[j] += idx * strides[j][d];
        }
        if constexpr (!is_int && summing && N <= 3) {
            if (rows) {
                // Rows along the innermost axis; an odometer over the other reduced axes.
                const int64_t len = shape[rank - 1], count = red_count / len;
                int64_t counter[kMaxRank] = {};
                double acc = 0;
                for (int64_t r = 0; r < count; r++) {
                    acc += reduce_row_dispatch<N, K>(unit, off, len, f);
                    for (int a = nr - 2; a >= 0; a--) {
                        const int d = red_axes[a];
                        for (int j = 0; j < N; j++) off[j] += strides[j][d];
                        if (++counter[a] < shape[d]) break;
                        for (int j = 0; j < N; j++) off[j] -= strides[j][d] * shape[d];
                        counter[a] = 0;
                    }
                }
                if (K == Reduce::mean) acc /= (double)red_count;
                if (K == Reduce::l2) acc = std::sqrt(acc);
                y[i] = store<T>((float)acc);
                continue;
            }
        }
        int64_t counter[kMaxRank] = {};
        A acc = start;
        bool nan = false;
        for (int64_t r = 0; r < red_count; r++) {
            const C v = f((const int64_t*)off);
            if constexpr (K == Reduce::max || K == Reduce::min) {
                if constexpr (!is_int) { if (std::isnan((float)v)) nan = true; }
                if (K == Reduce::max ? (A)v > acc : (A)v < acc) acc = (A)v;
            } else if constexpr (is_int) {
                const int64_t w = (int64_t)v;
                if constexpr (K == Reduce::prod) acc = wmul(acc, w);
                else if constexpr (K == Reduce::sum_square || K == Reduce::l2) acc = wadd(acc, wmul(w, w));
                else if constexpr (K == Reduce::l1) acc = wadd(acc, w < 0 ? wsub((int64_t)0, w) : w);
                else acc = wadd(acc, w);
            } else {
                const double w = (double)v;
                if constexpr (K == Reduce::prod) acc *= w;
                else if constexpr (K == Reduce::sum_square || K == Reduce::l2) acc += w * w;
                else if constexpr (K == Reduce::l1) acc += std::fabs(w);
                else if constexpr (K == Reduce::log_sum_exp) acc += std::exp(w);
                else acc += w;
            }
            // Next point: an odometer over the reduced axes, innermost last.
            for (int a = nr - 1; a >= 0; a--) {
                const int d = red_axes[a];
                for (int j = 0; j < N; j++) off[j] += strides[j][d];
                if (++counter[a] < shape[d]) break;
                for (int j = 0; j < N; j++) off[j] -= strides[j][d] * shape[d];
                counter[a] = 0;
            }
        }
        if constexpr (is_int) {
            if (K == Reduce::mean) acc = red_count ? acc / red_count : 0;
            y[i] = store_i<T>(acc);
        } else {
            if (K == Reduce::mean) acc /= (double)red_count;
            if (K == Reduce::l2) acc = std::sqrt(acc);
            if (K == Reduce::log_sum || K == Reduce::log_sum_exp) acc = std::log(acc);
            y[i] = store<T>(nan ? NAN : (float)acc);
        }
    }
}

template <class T>
inline void layer_norm(const T* x, const T* scale, const int64_t* scale_idx, const T* bias, const int64_t* bias_idx,
                       T* y, float* mean_out, float* inv_out, int64_t outer, int64_t len, float eps) {
    // Rows in parallel; within a row the sums run in double, vectorized (the reduction may
    // reorder them: the same bits for every thread count, within an ulp of the serial sum).
#pragma omp parallel for if (outer * len >= kParallelThreshold && outer > 1)
    for (int64_t o = 0; o < outer; o++) {
        const T* __restrict xr = x + o * len;
        T* __restrict yr = y + o * len;
        double mean = 0;
#pragma omp simd reduction(+ : mean)
        for (int64_t l = 0; l < len; l++) mean += (double)load(xr[l]);
        mean /= (double)len;
        double var = 0;
#pragma omp simd reduction(+ : var)
        for (int64_t l = 0; l < len; l++) { const double d = (double)load(xr[l]) - mean; var += d * d; }
        var /= (double)len;
        const double inv = 1.0 / std::sqrt(var + (double)eps);
        if (mean_out) mean_out[o] = (float)mean;
        if (inv_out) inv_out[o] = (float)inv;
        if (!scale_idx && !bias_idx) {
#pragma omp simd
            for (int64_t l = 0; l < len; l++) {
                float v = (float)(((double)load(xr[l]) - mean) * inv) * load(scale[l]);
                if (bias) v += load(bias[l]);
                yr[l] = store<T>(v);
            }
            continue;
        }
        for (int64_t l = 0; l < len; l++) {
            float v = (float)(((double)load(xr[l]) - mean) * inv) * load(scale[scale_idx ? scale_idx[l] : l]);
            if (bias) v += load(bias[bias_idx ? bias_idx[l] : l]);
            yr[l] = store<T>(v);
        }
    }
}

// The mean and 1/sqrt(variance + eps) of n floats: fixed blocks of kNormBlock (at most
// kNormBlocks of them, larger blocks beyond), in parallel when `parallel`, each summed in float
// runs of 256 (vectorized) and the runs and blocks in double, in order: the same bits whatever
// the thread count.
constexpr int64_t kNormBlock = 8192, kNormBlocks = 256;
inline void plane_moments(const float* x, int64_t n, float eps, bool parallel, float& mean_out, float& inv_out) {
    const int64_t block = std::max(kNormBlock, (n + kNormBlocks - 1) / kNormBlocks), nb = (n + block - 1) / block;
    double part[kNormBlocks];
    auto sum = [&](double shift, bool squares) {
#pragma omp parallel for if (parallel && nb > 1)
        for (int64_t b = 0; b < nb; b++) {
            const int64_t b0 = b * block, b1 = std::min(n, b0 + block);
            double acc = 0;
            for (int64_t r = b0; r < b1; r += 256) {
                const int64_t e = std::min(b1, r + 256);
                const float sh = (float)shift;
                float p = 0;
                if (squares) {
#pragma omp simd reduction(+ : p)
                    for (int64_t k = r; k < e; k++) { const float d = x[k] - sh; p += d * d; }
                } else {
#pragma omp simd reduction(+ : p)
                    for (int64_t k = r; k < e; k++) p += x[k];
                }
                acc += (double)p;
            }
            part[b] = acc;
        }
        double total = 0;
        for (int64_t b = 0; b < nb; b++) total += part[b];
        return total;
    };
    const double mean = n ? sum(0, false) / (double)n : 0;
    const double var = n ? sum(mean, true) / (double)n : 0;
    mean_out = (float)mean;
    inv_out = (float)(1.0 / std::sqrt(var + (double)eps));
}

// InstanceNormalization: each of the `planes` (n, c) planes of `inner` elements normalized by
// its own mean and variance, then scaled and shifted by its channel's scale and bias. f32 runs
// vectorized, in parallel over planes, or within a plane when there are fewer planes than
// threads (GroupNorm with one group exported as one plane: MobileViTv2); other types in double.
template <class T>
inline void instance_norm(const T* x, const T* scale, const T* bias, T* y, int64_t planes, int64_t channels,
                          int64_t inner, float eps) {
    if constexpr (std::is_same<T, float>::value) {
        auto plane = [&](int64_t p, bool within) {
            float mean, inv;
            plane_moments(x + p * inner, inner, eps, within, mean, inv);
            const float a = inv * scale[p % channels], c = bias[p % channels] - mean * a;
            const float* xp = x + p * inner;
            float* yp = y + p * inner;
#pragma omp parallel for simd if (within)
            for (int64_t k = 0; k < inner; k++) yp[k] = xp[k] * a + c;
        };
        // One parallel level only: a region inside another (even one of a single thread) makes
        // libgomp start a new team each time.
        if (planes < omp_get_max_threads() && inner >= kParallelThreshold) {
            for (int64_t p = 0; p < planes; p++) plane(p, true);
        } else {
#pragma omp parallel for if (planes * inner > kParallelThreshold && planes > 1)
            for (int64_t p = 0; p < planes; p++) plane(p, false);
        }
        return;
    }
#pragma omp parallel for if (planes * inner > kParallelThreshold && planes > 1)
    for (int64_t p = 0; p < planes; p++) {
        const T* xp = x + p * inner;
        T* yp = y + p * inner;
        double mean = 0;
        for (int64_t k = 0; k < inner; k++) mean += load(xp[k]);
        mean /= (double)inner;
        double var = 0;
        for (int64_t k = 0; k < inner; k++) { double d = load(xp[k]) - mean; var += d * d; }
        var /= (double)inner;
        const double inv = 1.0 / std::sqrt(var + (double)eps);
        const double s = load(scale[p % channels]), b = load(bias[p % channels]);
        for (int64_t k = 0; k < inner; k++) yp[k] = store<T>((float)((load(xp[k]) - mean) * inv * s + b));
    }
}

}  // namespace
}  // namespace kiln
