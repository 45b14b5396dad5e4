// Kiln's C++ runtime: element types and the generic kernels that generated model code calls.
// Compiled into every generated library (header-only, internal linkage); never seen by consumers.
#ifndef KILN_RUNTIME_HPP
#define KILN_RUNTIME_HPP

#include <algorithm>
#include <array>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <limits>
#include <type_traits>

namespace kiln {

// exp_vec's clamp bounds, outside the anonymous namespace so that the optimizer cannot prove
// them constant: with literal bounds g++ threads each clamped case through the polynomial as a
// constant and blends three results (exp and sigmoid loops 1.4× slower). Never written.
inline float exp_vec_range[2] = {-87.33654f, 88.7228394f};

namespace {

// ---------------------------------------------------------------------------------------------
// Element types. Floating-point kernels compute in float, integer kernels in int64_t.

struct f16 { uint16_t bits; };
struct bf16 { uint16_t bits; };

inline float half_to_float(uint16_t h) {
    uint32_t sign = (uint32_t)(h & 0x8000) << 16;
    uint32_t exp = (h >> 10) & 0x1F, mant = h & 0x3FF;
    uint32_t bits;
    if (exp == 0) {
        if (mant == 0) {
            bits = sign;
        } else {  // subnormal: normalize
            int e = -1;
            do { mant <<= 1; e++; } while ((mant & 0x400) == 0);
            bits = sign | (uint32_t)(127 - 15 - e) << 23 | (mant & 0x3FF) << 13;
        }
    } else if (exp == 31) {
        bits = sign | 0x7F800000u | mant << 13;
    } else {
        bits = sign | (exp + 112) << 23 | mant << 13;
    }
    float f;
    std::memcpy(&f, &bits, 4);
    return f;
}

inline uint16_t float_to_half(float f) {
    uint32_t x;
    std::memcpy(&x, &f, 4);
    uint32_t sign = (x >> 16) & 0x8000;
    uint32_t absx = x & 0x7FFFFFFF;
    if (absx > 0x7F800000) return (uint16_t)(sign | 0x7E00);  // NaN
    if (absx >= 0x477FF000) return (uint16_t)(sign | 0x7C00);  // overflow to inf (after rounding)
    if (absx < 0x38800000) {  // a half subnormal (or zero): units of 2^-24
        if (absx < 0x33000000) return (uint16_t)sign;
        uint32_t e = absx >> 23;
        uint32_t mant = (absx & 0x7FFFFF) | 0x800000;
        int shift = 126 - (int)e;
        uint32_t r = mant >> shift;
        uint32_t rem = mant & ((1u << shift) - 1), mid = 1u << (shift - 1);
        if (rem > mid || (rem == mid && (r & 1))) r++;
        return (uint16_t)(sign | r);
    }
    uint32_t r = absx - 0x38000000;  // rebias exponent 127 -> 15
    uint32_t lsb = (r >> 13) & 1;
    r += 0xFFF + lsb;
    return (uint16_t)(sign | (r >> 13));
}

inline float bf16_to_float(uint16_t b) {
    uint32_t bits = (uint32_t)b << 16;
    float f;
    std::memcpy(&f, &bits, 4);
    return f;
}

inline uint16_t float_to_bf16(float f) {
    uint32_t x;
    std::memcpy(&x, &f, 4);
    if ((x & 0x7FFFFFFF) > 0x7F800000) return (uint16_t)((x >> 16) | 0x40);
    uint32_t lsb = (x >> 16) & 1;
    return (uint16_t)((x + 0x7FFF + lsb) >> 16);
}

// Loading and storing: every storage type to/from its compute type.
inline float load(float v) { return v; }
inline float load(f16 v) { return half_to_float(v.bits); }
inline float load(bf16 v) { return bf16_to_float(v.bits); }
inline int64_t load(int8_t v) { return v; }
inline int64_t load(uint8_t v) { return v; }
inline int64_t load(int32_t v) { return v; }
inline int64_t load(int64_t v) { return v; }
inline int64_t load(bool v) { return v ? 1 : 0; }

template <class T> struct compute_of { using type = int64_t; };
template <> struct compute_of<float> { using type = float; };
template <> struct compute_of<f16> { using type = float; };
template <> struct compute_of<bf16> { using type = float; };
template <class T> using compute_t = typename compute_of<T>::type;

// Float to integer without undefined behaviour: NaN -> 0, saturating at int64's range,
// truncating toward zero; then wrapped to the storage type as C casts do.
inline int64_t f2i(float v) {
    if (std::isnan(v)) return 0;
    if (v >= 9.2233715e18f) return std::numeric_limits<int64_t>::max();
    if (v <= -9.2233715e18f) return std::numeric_limits<int64_t>::min();
    return (int64_t)v;
}

template <class T> inline T store(float v);
template <> inline float store<float>(float v) { return v; }
template <> inline f16 store<f16>(float v) { return f16{float_to_half(v)}; }
template <> inline bf16 store<bf16>(float v) { return bf16{float_to_bf16(v)}; }
template <> inline int8_t store<int8_t>(float v) { return (int8_t)(uint8_t)(uint64_t)f2i(v); }
template <> inline uint8_t store<uint8_t>(float v) { return (uint8_t)(uint64_t)f2i(v); }
template <> inline int32_t store<int32_t>(float v) { return (int32_t)(uint32_t)(uint64_t)f2i(v); }
template <> inline int64_t store<int64_t>(float v) { return f2i(v); }
template <> inline bool store<bool>(float v) { return v != 0; }

// ONNX's QuantizeLinear of one value: real / scale rounded half to even, plus the zero point,
// saturated to Q's range; NaN gives 0.
template <class Q>
inline Q quantize_value(float real, float scale, int32_t zp) {
    const float lo = (float)std::numeric_limits<Q>::min(), hi = (float)std::numeric_limits<Q>::max();
    float v = std::nearbyint(real / scale) + (float)zp;
    v = v != v ? 0.0f : (v < lo ? lo : (v > hi ? hi : v));
    return (Q)(int32_t)v;
}

// A value as float; 8- to 32-bit integers through int32 (vectorizes, unlike int64).
template <class T>
inline float load_float(T v) {
    if constexpr (std::is_integral_v<T> && sizeof(T) <= 4) return (float)(int32_t)v;
    else return (float)load(v);
}

template <class T> inline T store_i(int64_t v);
template <> inline float store_i<float>(int64_t v) { return (float)v; }
template <> inline f16 store_i<f16>(int64_t v) { return f16{float_to_half((float)v)}; }
template <> inline bf16 store_i<bf16>(int64_t v) { return bf16{float_to_bf16((float)v)}; }
template <> inline int8_t store_i<int8_t>(int64_t v) { return (int8_t)(uint8_t)(uint64_t)v; }
template <> inline uint8_t store_i<uint8_t>(int64_t v) { return (uint8_t)(uint64_t)v; }
template <> inline int32_t store_i<int32_t>(int64_t v) { return (int32_t)(uint32_t)(uint64_t)v; }
template <> inline int64_t store_i<int64_t>(int64_t v) { return v; }
template <> inline bool store_i<bool>(int64_t v) { return v != 0; }

template <class T> inline T store_c(float v) { return store<T>(v); }
template <class T> inline T store_c(int64_t v) { return store_i<T>(v); }

// Wrapping integer arithmetic (no signed-overflow UB).
inline int64_t wadd(int64_t a, int64_t b) { return (int64_t)((uint64_t)a + (uint64_t)b); }
inline int64_t wsub(int64_t a, int64_t b) { return (int64_t)((uint64_t)a - (uint64_t)b); }
inline int64_t wmul(int64_t a, int64_t b) { return (int64_t)((uint64_t)a * (uint64_t)b); }
inline int64_t wdiv(int64_t a, int64_t b) {
    if (b == 0) return 0;
    if (a == std::numeric_limits<int64_t>::min() && b == -1) return a;
    return a / b;
}
// ONNX Mod: fmod=0 takes the divisor's sign (Python's %), fmod=1 the dividend's (C's %).
inline int64_t wfmod(int64_t a, int64_t b) { return (b == 0 || b == -1) ? 0 : a % b; }
inline int64_t wmod(int64_t a, int64_t b) {
    int64_t r = wfmod(a, b);
    return (r != 0 && ((r < 0) != (b < 0))) ? r + b : r;
}
inline float fmod_floor(float a, float b) {
    float r = std::fmod(a, b);
    if (r != 0 && ((r < 0) != (b < 0))) return r + b;
    return r == 0 ? std::copysign(0.0f, b) : r;
}
inline int64_t wpow(int64_t base, int64_t e) {
    if (e < 0) return base == 1 ? 1 : (base == -1 ? ((e % 2 == 0) ? 1 : -1) : 0);
    int64_t r = 1;
    while (e > 0) {
        if (e & 1) r = wmul(r, base);
        base = wmul(base, base);
        e >>= 1;
    }
    return r;
}
inline float fmax_nan(float a, float b) { return (std::isnan(a) || std::isnan(b)) ? NAN : std::max(a, b); }
inline float fmin_nan(float a, float b) { return (std::isnan(a) || std::isnan(b)) ? NAN : std::min(a, b); }

// ---------------------------------------------------------------------------------------------
// Shapes: up to 8 dimensions, passed as static arrays from generated code.

constexpr int kMaxRank = 8;

// Work below this many elements runs on one thread: a parallel region costs microseconds.
constexpr int64_t kParallelThreshold = 1 << 15;

// The innermost loop of for_each_strided when every input's innermost step is 0 (broadcast)
// or 1 (contiguous), as bit j of Unit says. With the steps known at compile time the loads are
// contiguous or loop-invariant, and g++ -O3 vectorizes the loop for the build's instruction set
// (AVX-512 with --cpu x86-64-v4 or native on such a CPU, AVX2 with x86-64-v3) with a scalar
// tail: a row-broadcast multiply-add over 64K floats runs 4× faster than the generic loop.
// (`omp simd` here makes it slower: it vectorizes the offsets array, not the loads.)
template <int N, unsigned Unit, class F>
inline void strided_row(int64_t k, const int64_t* off, int64_t inner, F& f) {
    for (int64_t i = 0; i < inner; i++) {
        int64_t o[N];
        for (int j = 0; j < N; j++) o[j] = off[j] + (((Unit >> j) & 1u) ? i : 0);
        f(k + i, (const int64_t*)o);
    }
}

template <int N, unsigned Unit = 0, class F>
inline void strided_row_dispatch(unsigned unit, int64_t k, const int64_t* off, int64_t inner, F& f) {
    if constexpr (Unit + 1 < (1u << N)) {
        if (unit != Unit) return strided_row_dispatch<N, Unit + 1>(unit, k, off, inner, f);
    }
    strided_row<N, Unit>(k, off, inner, f);
}

// Calls f(out_index, in_offsets) over a shape, where each input advances by its own strides
// (0 on broadcast axes). The innermost axis runs as a vectorized loop when every input steps by
// 0 or 1 along it (up to 3 inputs), as a plain loop otherwise; rows are split across OpenMP
// threads when the work is large enough.
// `Parallel` must be false when f writes to anything but element k (reductions).
template <int N, bool Parallel = true, class F>
inline void for_each_strided(int rank, const int64_t* shape, const int64_t* const* strides, F f) {
    int64_t total = 1;
    for (int d = 0; d < rank; d++) total *= shape[d];
    if (total == 0) return;
    if (rank == 0) {
        int64_t off[N] = {};
        f((int64_t)0, off);
        return;
    }
    const int64_t inner = shape[rank - 1];
    const int64_t rows = total / inner;
    int64_t step[N];
    bool simple = N <= 3;
    unsigned unit = 0;
    for (int j = 0; j < N; j++) {
        step[j] = strides[j][rank - 1];
        if (step[j] == 1) unit |= 1u << j;
        else if (step[j] != 0) simple = false;
    }
#pragma omp parallel for if (Parallel && total >= kParallelThreshold && rows > 1)
    for (int64_t r = 0; r < rows; r++) {
        // Offsets of row r: decompose its index over the outer axes.
        int64_t off[N] = {};
        int64_t rem = r;
        for (int d = rank - 2; d >= 0; d--) {
            const int64_t i = rem % shape[d];
            rem /= shape[d];
            for (int j = 0; j < N; j++) off[j] += i * strides[j][d];
        }
        const int64_t k = r * inner;
        if constexpr (N <= 3) {
            if (simple) {
                strided_row_dispatch<N>(unit, k, off, inner, f);
                continue;
            }
        }
        for (int64_t i = 0; i < inner; i++) {
            int64_t o[N];
            for (int j = 0; j < N; j++) o[j] = off[j] + i * step[j];
            f(k + i, o);
        }
    }
}

// y[i] = f(x[i]) over n elements, computing in the input's compute type.
template <class X, class Y, class F>
inline void map(const X* x, Y* y, int64_t n, F f) {
#pragma omp parallel for simd if (n >= kParallelThreshold)
    for (int64_t i = 0; i < n; i++) y[i] = store_c<Y>(f(load(x[i])));
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

// Strided copy: y (contiguous, `shape`) from x at `offset` + index · `strides`.
// Serves Slice, Transpose, Expand and Split.
template <class T>
inline void strided_copy(const T* x, int64_t offset, const int64_t* strides, T* y, int rank,
                         const int64_t* shape) {
    const int64_t* s[1] = {strides};
    const T* base = x + offset;
    for_each_strided<1>(rank, shape, s, [&](int64_t k, const int64_t* o) { y[k] = base[o[0]]; });
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
            std::memcpy(dst, xs[i] + o * chunks[i], sizeof(T) * chunks[i]);
            dst += chunks[i];
        }
    }
}

// Concatenation of quantized tensors into one with the output's parameters: inputs with them
// are copied, the others requantized, q' = quantize((q − zero)·scale) (ONNX's definition).
template <class T>
inline void concat_requantize(int count, const T* const* xs, const int64_t* chunks, const float* scales, const int32_t* zeros,
                              T* y, int64_t outer, float out_scale, int32_t out_zero) {
    int64_t total = 0;
    for (int i = 0; i < count; i++) total += chunks[i];
#pragma omp parallel for if (outer * total >= kParallelThreshold && outer > 1)
    for (int64_t o = 0; o < outer; o++) {
        T* dst = y + o * total;
        for (int i = 0; i < count; i++) {
            const T* __restrict src = xs[i] + o * chunks[i];
            T* __restrict d = dst;
            if (scales[i] == out_scale && zeros[i] == out_zero) {
                std::memcpy(d, src, sizeof(T) * chunks[i]);
            } else {
                const float s = scales[i];
                const int32_t z = zeros[i];
                const int64_t len = chunks[i];  // hoisted: the loop vectorizes only with a known trip count
                for (int64_t k = 0; k < len; k++) d[k] = quantize_value<T>((float)((int32_t)src[k] - z) * s, out_scale, out_zero);
            }
            dst += chunks[i];
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

// Spatial geometry padded to 3 axes (D, H, W).
struct Window {
    int64_t in[3], out[3], k[3], s[3], d[3], p[3], pe[3];
};

// Direct convolution (any element type; the f32 path goes through oneDNN instead).
template <class T>
inline void conv(const T* x, const T* w, const T* b, T* y, int64_t n, int64_t c, int64_t m, int64_t groups,
                 const Window& g) {
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
                        float acc = b ? load(b[oc]) : 0.0f;
                        for (int64_t icg = 0; icg < cg; icg++) {
                            const T* xin = x + (bi * c + grp * cg + icg) * insz;
                            const T* wk = w + (oc * cg + icg) * ksz;
                            for (int64_t kd = 0; kd < g.k[0]; kd++) {
                                int64_t id = od * g.s[0] + kd * g.d[0] - g.p[0];
                                if (id < 0 || id >= g.in[0]) continue;
                                for (int64_t kh = 0; kh < g.k[1]; kh++) {
                                    int64_t ih = oh * g.s[1] + kh * g.d[1] - g.p[1];
                                    if (ih < 0 || ih >= g.in[1]) continue;
                                    for (int64_t kw = 0; kw < g.k[2]; kw++) {
                                        int64_t iw = ow * g.s[2] + kw * g.d[2] - g.p[2];
                                        if (iw < 0 || iw >= g.in[2]) continue;
                                        acc += load(xin[(id * g.in[1] + ih) * g.in[2] + iw]) *
                                               load(wk[(kd * g.k[1] + kh) * g.k[2] + kw]);
                                    }
                                }
                            }
                        }
                        y[(bi * m + oc) * outsz + (od * g.out[1] + oh) * g.out[2] + ow] = store<T>(acc);
                    }
        }
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
// f32, u8 and s8: each output pixel starts as the first valid input of its window and takes the
// max of the others in place (NaN wins), over contiguous channels (vectorized). About twice
// oneDNN 2.6's jit:avx2 nhwc pooling (ResNet's 3×3/2 on 112×112×64: 0.25 against 0.47 ms).
// A window entirely in the padding gives store<T>(-inf), as `pool_nhwc`.
template <class T>
inline void max_pool_nhwc_2d(const T* x, T* y, int64_t n, int64_t c, const Window& g) {
    const int64_t ih_ = g.in[1], iw_ = g.in[2], oh_ = g.out[1], ow_ = g.out[2];
    const int64_t kh = g.k[1], kw = g.k[2], sh = g.s[1], sw = g.s[2], pt = g.p[1], pl = g.p[2];
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
                        for (int64_t k = 0; k < c; k++) {
                            const T v = src[k];
                            dst[k] = (v > dst[k] || v != v) ? v : dst[k];
                        }
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

// How a kernel reads and writes values: as they are (`plain_load`, `plain_store`), or
// quantized, dequantizing what it reads, (q − zero)·scale, and quantizing what it writes.
struct plain_load {
    template <class T> float operator()(T v) const { return (float)load(v); }
};
template <class U> struct plain_store {
    U operator()(float v) const { return store<U>(v); }
};
struct dequantizer {
    float scale;
    int32_t zero;
    template <class Q> float operator()(Q v) const { return (float)((int32_t)v - zero) * scale; }
};
template <class Q> struct quantizer {
    float scale;
    int32_t zero;
    Q operator()(float v) const { return quantize_value<Q>(v, scale, zero); }
};

// y = f(x · scale[c] + shift[c]) per channel, channels-last (c innermost) or plain (inner = H·W),
// x read through `ld` and y written through `st`.
template <class T, class U, class F, class L = plain_load, class S = plain_store<U>>
inline void scale_shift(const T* x, const float* scale, const float* shift, U* y, int64_t outer, int64_t c,
                        int64_t inner, bool channels_last, F f, L ld = {}, S st = {}) {
    if (channels_last) {
#pragma omp parallel for if (outer * inner * c >= kParallelThreshold)
        for (int64_t p = 0; p < outer * inner; p++) {
            const T* __restrict src = x + p * c;
            U* __restrict dst = y + p * c;
            for (int64_t k = 0; k < c; k++) dst[k] = st(f(ld(src[k]) * scale[k] + shift[k]));
        }
    } else {
#pragma omp parallel for collapse(2) if (outer * c * inner >= kParallelThreshold)
        for (int64_t b = 0; b < outer; b++)
            for (int64_t ch = 0; ch < c; ch++) {
                const T* __restrict src = x + (b * c + ch) * inner;
                U* __restrict dst = y + (b * c + ch) * inner;
                const float sc = scale[ch], sh = shift[ch];
                for (int64_t i = 0; i < inner; i++) dst[i] = st(f(ld(src[i]) * sc + sh));
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
    constexpr int64_t kRun = 16;
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

// Resize of the two spatial axes of a 4-D f32 tensor whose batch and channel axes stay
// (`resize` handles the rest): NCHW as `planes` = N·C planes of one channel, or NHWC as N
// planes of `c` channels, vectorized along the channels. Per-axis tables as for `resize`;
// nearest reads lower[] (the nearest index). Linear weighs the four neighbours as `resize`
// does, in the same order, so both give the same bits (NCHW rows up to kResizeRow take
// resize_hw_planes_linear). Parallel over output rows.
inline void resize_hw(const float* x, float* y, int64_t planes, int64_t c, int64_t ih, int64_t iw, int64_t oh, int64_t ow,
                      const int64_t* ly, const int64_t* uy, const float* wy, const int64_t* lx, const int64_t* ux,
                      const float* wx, bool linear) {
    if (c == 1 && linear && ow <= kResizeRow) {
        resize_hw_planes_linear(x, y, planes, ih, iw, oh, ow, ly, uy, wy, lx, ux, wx);
        return;
    }
#pragma omp parallel for if (planes * oh * ow * c >= kParallelThreshold && planes * oh > 1)
    for (int64_t r = 0; r < planes * oh; r++) {
        const int64_t p = r / oh, oy = r % oh;
        const float* top = x + (p * ih + ly[oy]) * iw * c;
        const float* bottom = x + (p * ih + uy[oy]) * iw * c;
        float* out = y + r * ow * c;
        const float b = linear ? wy[oy] : 0.0f, a = 1.0f - b;
        // A corner of weight 0 adds nothing (not even an infinity's NaN), as in `resize`.
        auto term = [](float w, float v) { return w != 0.0f ? w * v : 0.0f; };
        if (c == 1) {
            if (!linear) {
                for (int64_t ox = 0; ox < ow; ox++) out[ox] = top[lx[ox]];
            } else {
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
            }
            continue;
        }
        for (int64_t ox = 0; ox < ow; ox++) {
            float* o = out + ox * c;
            const float* t0 = top + lx[ox] * c;
            if (!linear) {
                std::memcpy(o, t0, sizeof(float) * c);
                continue;
            }
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

template <class T>
inline void fill(T* y, int64_t n, T value) {
    for (int64_t i = 0; i < n; i++) y[i] = value;
}

// e^x in float, in a form g++ vectorizes (Cephes' expf: 2^n · p(r), |r| ≤ ln2/2, a degree-5
// polynomial; relative error below 2e-7 against the exact value). Inputs are clamped to
// [-87.34, 88.72], the normal range: below, the result is the smallest normal float rather than
// a subnormal or zero (exp_f below gives 0 and +inf outside).
// With FMA (x86-64-v3 and up) the polynomial uses fused multiply-adds: the same function, rounded
// differently in the last bit, so libraries for different --cpu targets may differ by an ulp.
inline float exp_vec(float x) {
#ifdef __FMA__
#define KILN_MADD(a, b, c) std::fma(a, b, c)
#else
#define KILN_MADD(a, b, c) ((a) * (b) + (c))
#endif
    x = std::min(std::max(x, exp_vec_range[0]), exp_vec_range[1]);
    // n = round(x / ln2) by the 1.5·2²³ trick (std::floor would stop vectorization).
    const float n = (x * 1.44269504088896341f + 12582912.0f) - 12582912.0f;
    float r = KILN_MADD(n, -0.693359375f, x);
    r = KILN_MADD(n, 2.12194440e-4f, r);
    float p = 1.9875691500e-4f;
    p = KILN_MADD(p, r, 1.3981999507e-3f);
    p = KILN_MADD(p, r, 8.3334519073e-3f);
    p = KILN_MADD(p, r, 4.1665795894e-2f);
    p = KILN_MADD(p, r, 1.6666665459e-1f);
    p = KILN_MADD(p, r, 5.0000001201e-1f);
    p = KILN_MADD(p * r, r, r) + 1.0f;
#undef KILN_MADD
    // 2^n as two factors, so that n = 128 (x near the top of the range) needs no special case.
    const int32_t ni = (int32_t)n, n1 = ni >> 1;
    const int32_t bits1 = (n1 + 127) << 23, bits2 = (ni - n1 + 127) << 23;
    float s1, s2;
    std::memcpy(&s1, &bits1, sizeof s1);
    std::memcpy(&s2, &bits2, sizeof s2);
    return p * s1 * s2;
}

// e^x, sigmoid and SiLU of a float for elementwise loops, vectorizable (exp_vec): within 2 ulp
// of the exact value where it is a normal float; e^x is +inf above 88.72 and 0 below -87.34
// (where the exact value is subnormal, below 1.2e-38). NaN gives NaN.
inline float exp_f(float x) {
    const float e = exp_vec(x);
    return x > 88.7228394f ? INFINITY : (x < -87.3365479f ? 0.0f : e);
}
inline float sigmoid_f(float x) { return 1.0f / (1.0f + exp_vec(-x)); }
inline float silu_f(float x) { return x / (1.0f + exp_vec(-x)); }

// tanh of a float for elementwise loops, vectorizable: for |x| < 0.25 its odd Taylor polynomial
// through x⁹ (truncation below 2e-8 relative), above 1 − 2/(e^{2|x|} + 1) (exp_vec; the
// cancellation costs at most 2 bits there), with x's sign; ±1 beyond 9; NaN gives NaN. Within
// 6 ulp of the exact value (measured over every 97th float: 5.0, just above 0.25).
inline float tanh_f(float x) {
    const float a = std::fabs(x), x2 = x * x;
    const float big = 1.0f - 2.0f / (exp_vec(2.0f * std::min(a, 9.0f)) + 1.0f);
    const float small = a * (1.0f + x2 * (-0.333333333f + x2 * (0.133333333f + x2 * (-0.0539682540f + x2 * 0.0218694885f))));
    const float r = std::copysign(a < 0.25f ? small : big, x);
    return x != x ? x : r;
}

// Softmax (or log-softmax) of one contiguous row of f32. The exponentials are summed in float
// within blocks of 256 (vectorized) and the blocks in double.
inline void softmax_row(const float* x, float* y, int64_t len, bool log_softmax) {
    float mx = -INFINITY;
#pragma omp simd reduction(max : mx)
    for (int64_t l = 0; l < len; l++) mx = std::max(mx, x[l]);
    double sum = 0;
    for (int64_t b = 0; b < len; b += 256) {
        const int64_t end = std::min(len, b + 256);
        float part = 0;
        if (log_softmax) {
#pragma omp simd reduction(+ : part)
            for (int64_t l = b; l < end; l++) part += exp_vec(x[l] - mx);
        } else {
#pragma omp simd reduction(+ : part)
            for (int64_t l = b; l < end; l++) {
                const float e = exp_vec(x[l] - mx);
                y[l] = e;
                part += e;
            }
        }
        sum += part;
    }
    if (log_softmax) {
        const float shift = mx + (float)std::log(sum);
#pragma omp simd
        for (int64_t l = 0; l < len; l++) y[l] = x[l] - shift;
    } else {
        const float inv = (float)(1.0 / sum);
#pragma omp simd
        for (int64_t l = 0; l < len; l++) y[l] *= inv;
    }
}

// Softmax over the middle axis of [outer, len, inner] for `w` ≤ kSoftmaxBlock neighbouring
// columns at once (inner > 1: the axis is strided, the columns are contiguous).
constexpr int64_t kSoftmaxBlock = 256;
inline void softmax_columns(const float* x, float* y, int64_t len, int64_t inner, int64_t w, bool log_softmax) {
    float mx[kSoftmaxBlock], acc[kSoftmaxBlock];
    double sum[kSoftmaxBlock];
    for (int64_t j = 0; j < w; j++) { mx[j] = -INFINITY; sum[j] = 0; }
    for (int64_t l = 0; l < len; l++) {
        const float* p = x + l * inner;
#pragma omp simd
        for (int64_t j = 0; j < w; j++) mx[j] = std::max(mx[j], p[j]);
    }
    for (int64_t l = 0; l < len; l++) {
        const float* p = x + l * inner;
        float* q = y + l * inner;
#pragma omp simd
        for (int64_t j = 0; j < w; j++) {
            const float e = exp_vec(p[j] - mx[j]);
            if (!log_softmax) q[j] = e;
            sum[j] += (double)e;
        }
    }
    for (int64_t j = 0; j < w; j++) acc[j] = log_softmax ? mx[j] + (float)std::log(sum[j]) : (float)(1.0 / sum[j]);
    for (int64_t l = 0; l < len; l++) {
        const float* p = x + l * inner;
        float* q = y + l * inner;
        if (log_softmax) {
#pragma omp simd
            for (int64_t j = 0; j < w; j++) q[j] = p[j] - acc[j];
        } else {
#pragma omp simd
            for (int64_t j = 0; j < w; j++) q[j] *= acc[j];
        }
    }
}

// Softmax over the middle axis of x viewed as [outer, len, inner]. f32 runs vectorized (exp_vec)
// and in parallel over rows or column blocks; every element is computed the same way whatever
// the thread count. Other types take a scalar loop in double.
template <class T>
inline void softmax(const T* x, T* y, int64_t outer, int64_t len, int64_t inner, bool log_softmax) {
    if constexpr (std::is_same<T, float>::value) {
        if (inner == 1) {
#pragma omp parallel for if (outer * len >= kParallelThreshold && outer > 1)
            for (int64_t o = 0; o < outer; o++) softmax_row(x + o * len, y + o * len, len, log_softmax);
        } else {
            const int64_t blocks = (inner + kSoftmaxBlock - 1) / kSoftmaxBlock;
#pragma omp parallel for if (outer * len * inner >= kParallelThreshold && outer * blocks > 1)
            for (int64_t t = 0; t < outer * blocks; t++) {
                const int64_t o = t / blocks, j0 = (t % blocks) * kSoftmaxBlock;
                const int64_t off = o * len * inner + j0;
                softmax_columns(x + off, y + off, len, inner, std::min(kSoftmaxBlock, inner - j0), log_softmax);
            }
        }
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

// Reduction over the axes marked in `reduced` of an iteration space `shape`, where f(offsets)
// gives the value at a point (input j at offsets[j], advancing by strides[j]): a plain reduce
// reads one tensor, a fused elementwise group computes its steps there. Output elements are in
// the kept axes' order. Floats accumulate in double (max and min propagate NaN); integers wrap
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

// InstanceNormalization: each of the `planes` (n, c) planes of `inner` elements normalized by
// its own mean and variance, then scaled and shifted by its channel's scale and bias.
template <class T>
inline void instance_norm(const T* x, const T* scale, const T* bias, T* y, int64_t planes, int64_t channels,
                          int64_t inner, float eps) {
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
// dequantization, y = (x − zp) · scale: one parallel, vectorizable loop each.
template <class Q>
inline void quantize_tensor(const float* __restrict x, float scale, int32_t zp, Q* __restrict y, int64_t n) {
    // A plain parallel loop: g++ 12 leaves the rounding scalar under `parallel for simd`.
#pragma omp parallel for if (n >= kParallelThreshold)
    for (int64_t i = 0; i < n; i++) y[i] = quantize_value<Q>(x[i], scale, zp);
}

template <class Q>
inline void dequantize_tensor(const Q* __restrict x, float scale, int32_t zp, float* __restrict y, int64_t n) {
#pragma omp parallel for if (n >= kParallelThreshold)
    for (int64_t i = 0; i < n; i++) y[i] = (float)((int32_t)x[i] - zp) * scale;
}

}  // namespace
}  // namespace kiln

#endif
