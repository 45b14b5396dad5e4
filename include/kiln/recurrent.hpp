// Kiln's C++ runtime, recurrent layers: ONNX RNN, GRU and LSTM, one direction per call, by their
// definitions (gate orders: GRU z, r, h; LSTM i, o, f, c). The input projections of every step
// (X·Wᵀ, one oneDNN sgemm) are computed first, then the steps one after another, each a product
// of the batch's states by Rᵀ (sgemm) and the gates' functions. Included through runtime.hpp;
// internal linkage.
#pragma once

#include "core.hpp"

#include <dnnl.h>

#include <algorithm>
#include <vector>

namespace kiln {
namespace {

enum class RecurrentKind { rnn, gru, lstm };

struct RecurrentShape {
    int64_t seq, batch, input, hidden, dirs;
    bool batch_major;
};

// C[m×n] = A[m×k] · B[n×k]ᵀ, row-major, by oneDNN's sgemm.
inline void recurrent_product(const float* a, const float* b, float* c, int64_t m, int64_t n, int64_t k, int64_t ldc) {
    if (m == 0 || n == 0) return;
    if (k == 0) {
        for (int64_t i = 0; i < m; i++) std::fill(c + i * ldc, c + i * ldc + n, 0.0f);
        return;
    }
    dnnl_sgemm('N', 'T', m, n, k, 1.0f, a, k, b, k, 0.0f, c, ldc);
}

// Direction `dir` (reverse: from each entry's last step back) of an RNN, GRU or LSTM over x;
// writes its slices of y, yh and yc (each may be null). w, r, b, p, h0, c0 are ONNX's operands
// (b, lens, h0, c0 and p may be null); clip <= 0: none. f, g, h: the direction's activations.
template <RecurrentKind K, class F, class G, class H>
inline void recurrent_direction(const RecurrentShape& s, int64_t dir, bool reverse, const float* x, const float* w,
                                const float* r, const float* b, const int32_t* lens, const float* h0, const float* c0,
                                const float* p, float* y, float* yh, float* yc, float clip, bool linear_before_reset,
                                bool input_forget, F f, G g, H h) {
    constexpr int64_t gates = K == RecurrentKind::rnn ? 1 : K == RecurrentKind::gru ? 3 : 4;
    const int64_t S = s.seq, B = s.batch, I = s.input, Hd = s.hidden, D = s.dirs, rows = gates * Hd;
    const float* wd = w + dir * rows * I;
    const float* rd = r + dir * rows * Hd;
    const float* wb = b ? b + dir * 2 * rows : nullptr;
    const float* rb = b ? wb + rows : nullptr;
    auto clipped = [clip](float v) { return clip > 0 ? std::min(std::max(v, -clip), clip) : v; };
    auto y_at = [&](int64_t t, int64_t bi) { return y + (s.batch_major ? (bi * S + t) * D + dir : (t * D + dir) * B + bi) * Hd; };
    auto state_at = [&](int64_t bi) { return (s.batch_major ? bi * D + dir : dir * B + bi) * Hd; };
    // X·Wᵀ for every step, in X's own row order (row_of), then Wb (+ Rb, except a GRU's hidden
    // gate with linear_before_reset).
    std::vector<float> xw(S * B * rows);
    recurrent_product(x, wd, xw.data(), S * B, rows, I, rows);
    auto row_of = [&](int64_t t, int64_t bi) { return s.batch_major ? bi * S + t : t * B + bi; };
    if (wb) {
        std::vector<float> bias(rows);
        for (int64_t j = 0; j < rows; j++) bias[j] = wb[j] + (K == RecurrentKind::gru && linear_before_reset && j >= 2 * Hd ? 0.0f : rb[j]);
        for (int64_t q = 0; q < S * B; q++)
            for (int64_t j = 0; j < rows; j++) xw[q * rows + j] += bias[j];
    }
    std::vector<float> hs(B * Hd), cs(B * Hd), hr(B * rows), hn(B * Hd), rh(B * Hd);
    for (int64_t bi = 0; bi < B; bi++) {
        for (int64_t j = 0; j < Hd; j++) {
            hs[bi * Hd + j] = h0 ? h0[state_at(bi) + j] : 0.0f;
            cs[bi * Hd + j] = c0 ? c0[state_at(bi) + j] : 0.0f;
        }
    }
    std::vector<int64_t> len(B);
    for (int64_t bi = 0; bi < B; bi++) len[bi] = lens ? std::max<int64_t>(0, std::min<int64_t>(S, lens[bi])) : S;
    const int64_t longest = B ? *std::max_element(len.begin(), len.end()) : 0;
    if (y) {
        for (int64_t t = 0; t < S; t++)
            for (int64_t bi = 0; bi < B; bi++)
                if (t >= len[bi]) std::fill(y_at(t, bi), y_at(t, bi) + Hd, 0.0f);
    }
    const float* pi = p ? p + dir * 3 * Hd : nullptr;
    for (int64_t step = 0; step < longest; step++) {
        // H·Rᵀ for the whole batch: every gate's rows (a GRU without linear_before_reset: z and r).
        const int64_t recurrent_rows = K == RecurrentKind::gru && !linear_before_reset ? 2 * Hd : rows;
        recurrent_product(hs.data(), rd, hr.data(), B, recurrent_rows, Hd, rows);
        if constexpr (K == RecurrentKind::gru) {
            if (!linear_before_reset) {
                // (r ⊙ h)·Rₕᵀ: the reset gate first.
                for (int64_t bi = 0; bi < B; bi++) {
                    if (step >= len[bi]) continue;
                    const int64_t t = reverse ? len[bi] - 1 - step : step;
                    const float* a = xw.data() + row_of(t, bi) * rows;
                    for (int64_t j = 0; j < Hd; j++) rh[bi * Hd + j] = f(clipped(a[Hd + j] + hr[bi * rows + Hd + j])) * hs[bi * Hd + j];
                }
                recurrent_product(rh.data(), rd + 2 * Hd * Hd, hr.data() + 2 * Hd, B, Hd, Hd, rows);
            }
        }
        for (int64_t bi = 0; bi < B; bi++) {
            if (step >= len[bi]) continue;
            const int64_t t = reverse ? len[bi] - 1 - step : step;
            const float* a = xw.data() + row_of(t, bi) * rows;
            const float* q = hr.data() + bi * rows;
            float* hp = hs.data() + bi * Hd;
            float* cp = cs.data() + bi * Hd;
            for (int64_t j = 0; j < Hd; j++) {
                if constexpr (K == RecurrentKind::rnn) {
                    hn[bi * Hd + j] = f(clipped(a[j] + q[j]));
                } else if constexpr (K == RecurrentKind::gru) {
                    const float z = f(clipped(a[j] + q[j]));
                    float pre;
                    if (linear_before_reset) {
                        const float rg = f(clipped(a[Hd + j] + q[Hd + j]));
                        pre = a[2 * Hd + j] + rg * (q[2 * Hd + j] + (rb ? rb[2 * Hd + j] : 0.0f));
                    } else {
                        pre = a[2 * Hd + j] + q[2 * Hd + j];
                    }
                    hn[bi * Hd + j] = (1.0f - z) * g(clipped(pre)) + z * hp[j];
                } else {
                    const float c_prev = cp[j];
                    const float ig = f(clipped(a[j] + q[j] + (pi ? pi[j] * c_prev : 0.0f)));
                    const float fg = input_forget ? 1.0f - ig : f(clipped(a[2 * Hd + j] + q[2 * Hd + j] + (pi ? pi[2 * Hd + j] * c_prev : 0.0f)));
                    const float cg = g(clipped(a[3 * Hd + j] + q[3 * Hd + j]));
                    const float c = fg * c_prev + ig * cg;
                    const float og = f(clipped(a[Hd + j] + q[Hd + j] + (pi ? pi[Hd + j] * c : 0.0f)));
                    cp[j] = c;
                    hn[bi * Hd + j] = og * h(c);
                }
            }
            std::copy(hn.data() + bi * Hd, hn.data() + (bi + 1) * Hd, hp);
            if (y) std::copy(hp, hp + Hd, y_at(t, bi));
        }
    }
    // An entry of no steps has zero states (as ONNX Runtime gives), not its initial ones.
    for (int64_t bi = 0; bi < B; bi++) {
        if (len[bi] == 0) {
            std::fill(hs.data() + bi * Hd, hs.data() + (bi + 1) * Hd, 0.0f);
            std::fill(cs.data() + bi * Hd, cs.data() + (bi + 1) * Hd, 0.0f);
        }
        if (yh) std::copy(hs.data() + bi * Hd, hs.data() + (bi + 1) * Hd, yh + state_at(bi));
        if (yc) std::copy(cs.data() + bi * Hd, cs.data() + (bi + 1) * Hd, yc + state_at(bi));
    }
}

}  // namespace
}  // namespace kiln
