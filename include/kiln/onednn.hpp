// Kiln runtime: helpers of generated code that drive oneDNN (included after <dnnl.hpp>).
#pragma once

#include <algorithm>
#include <chrono>
#include <cstring>
#include <mutex>
#include <unordered_map>
#include <dnnl.hpp>

namespace kiln {
namespace {

// Runs both once to warm up, then alternately `rounds` times, and says whether the best time of
// `second` beats the best time of `first` by at least `margin` (best-of absorbs the noise of a
// shared machine; the margin keeps the first, the default, on a near tie).
template <class A, class B>
inline bool second_is_faster(A&& first, B&& second, double margin = 0.05, int rounds = 5) {
    using clock = std::chrono::steady_clock;
    first();
    second();
    double best_first = 1e300, best_second = 1e300;
    for (int r = 0; r < rounds; r++) {
        auto t0 = clock::now();
        first();
        auto t1 = clock::now();
        second();
        auto t2 = clock::now();
        best_first = std::min(best_first, std::chrono::duration<double>(t1 - t0).count());
        best_second = std::min(best_second, std::chrono::duration<double>(t2 - t1).count());
    }
    return best_second < (1.0 - margin) * best_first;
}

// Whether oneDNN chose its im2col-and-GEMM convolution for `pd` ("gemm:jit", "x64:gemm:jit"):
// what it falls back to where its direct kernels do not take a shape (AlexNet's 11×11 stride-4
// first conv on AVX2: 77 GFLOP/s, where Kiln's direct kernel reaches 120).
inline bool onednn_im2col(const dnnl::primitive_desc_base& pd) {
    const char* impl = pd.impl_info_str();
    return impl && std::strstr(impl, "gemm") != nullptr;
}

// Choices made by measuring are made once per process: the first handle of a library to reach
// choice `slot` measures, every later handle takes its answer, so that all handles of one
// library compute the same bits. (Per library: this header's names are internal to each.)
struct Decisions {
    std::mutex lock;
    std::unordered_map<size_t, bool> made;
};
inline Decisions& decisions() {
    static Decisions d;
    return d;
}
template <class F>
inline bool decide_once(size_t slot, F&& measure) {
    Decisions& d = decisions();
    std::lock_guard<std::mutex> guard(d.lock);
    auto it = d.made.find(slot);
    if (it != d.made.end()) return it->second;
    bool answer = measure();
    d.made.emplace(slot, answer);
    return answer;
}

// The Winograd form of a convolution. oneDNN's Winograd kernels take only their own blocked
// layout: on a graph in another layout the form is three steps (reorder the source into it,
// convolve, reorder the result back); on a graph already in it, the conv alone. Created next to
// the direct form; `active` says which of the two the run function executes.
struct WinogradConv {
    dnnl::convolution_forward conv;
    dnnl::memory src, weights, dst;  // src and dst: own buffers when reordered, else the graph's
    dnnl::reorder to_blocked, from_blocked;
    dnnl_exec_arg_t to_args[2], conv_args[4], from_args[2];
    int conv_nargs = 0;
    bool reorders = false;
    bool active = false;

    // Creates the primitives and prepacks the weights (plain, at `plain_weights`). `graph_src`
    // and `graph_dst` are the direct form's memories, re-pointed at every run; `bias` may be
    // empty. Throws dnnl::error where oneDNN has no Winograd kernel for this conv and CPU.
    void create(const dnnl::engine& eng, dnnl::stream& strm, const dnnl::convolution_forward::desc& d,
                const dnnl::primitive_attr& attr, const dnnl::memory::desc& plain_weights_md,
                const void* plain_weights, const dnnl::memory& graph_src, const dnnl::memory& graph_dst,
                const dnnl::memory& bias) {
        dnnl::convolution_forward::primitive_desc pd(d, attr, eng);
        conv = dnnl::convolution_forward(pd);
        weights = dnnl::memory(pd.weights_desc(), eng);
        dnnl::memory plain(plain_weights_md, eng, const_cast<void*>(plain_weights));
        dnnl::reorder(plain, weights).execute(strm, plain, weights);
        strm.wait();
        reorders = pd.src_desc() != graph_src.get_desc() || pd.dst_desc() != graph_dst.get_desc();
        if (reorders) {
            src = dnnl::memory(pd.src_desc(), eng);
            dst = dnnl::memory(pd.dst_desc(), eng);
            to_blocked = dnnl::reorder(dnnl::reorder::primitive_desc(eng, graph_src.get_desc(), eng, pd.src_desc()));
            from_blocked = dnnl::reorder(dnnl::reorder::primitive_desc(eng, pd.dst_desc(), eng, graph_dst.get_desc()));
        } else {
            src = graph_src;
            dst = graph_dst;
        }
        to_args[0] = {DNNL_ARG_FROM, graph_src.get()};
        to_args[1] = {DNNL_ARG_TO, src.get()};
        conv_nargs = 0;
        conv_args[conv_nargs++] = {DNNL_ARG_SRC, src.get()};
        conv_args[conv_nargs++] = {DNNL_ARG_WEIGHTS, weights.get()};
        if (bias.get(true)) conv_args[conv_nargs++] = {DNNL_ARG_BIAS, bias.get()};
        conv_args[conv_nargs++] = {DNNL_ARG_DST, dst.get()};
        from_args[0] = {DNNL_ARG_FROM, dst.get()};
        from_args[1] = {DNNL_ARG_TO, graph_dst.get()};
    }

    // The steps, through the C API (no allocation).
    bool run(dnnl::stream& strm) const {
        if (!reorders) return dnnl_primitive_execute(conv.get(), strm.get(), conv_nargs, conv_args) == dnnl_success;
        return dnnl_primitive_execute(to_blocked.get(), strm.get(), 2, to_args) == dnnl_success &&
               dnnl_primitive_execute(conv.get(), strm.get(), conv_nargs, conv_args) == dnnl_success &&
               dnnl_primitive_execute(from_blocked.get(), strm.get(), 2, from_args) == dnnl_success;
    }

    void release() { *this = WinogradConv(); }

    // Whether this form beats `direct` (with its `weights` and `bias`) on this CPU, timed on
    // scratch buffers of zeros: the caller's buffers do not exist at create time.
    bool faster_than(const dnnl::primitive& direct, const dnnl::memory& direct_weights, const dnnl::memory& bias,
                     const dnnl::engine& eng, dnnl::stream& strm, const dnnl::memory::desc& src_md,
                     const dnnl::memory::desc& dst_md) const {
        dnnl::memory s(src_md, eng), t(dst_md, eng);
        std::memset(s.get_data_handle(), 0, src_md.get_size());
        std::memset(t.get_data_handle(), 0, dst_md.get_size());
        std::unordered_map<int, dnnl::memory> direct_args{{DNNL_ARG_SRC, s}, {DNNL_ARG_WEIGHTS, direct_weights}, {DNNL_ARG_DST, t}};
        std::unordered_map<int, dnnl::memory> conv_args{{DNNL_ARG_SRC, reorders ? src : s}, {DNNL_ARG_WEIGHTS, weights}, {DNNL_ARG_DST, reorders ? dst : t}};
        if (bias.get(true)) {
            direct_args[DNNL_ARG_BIAS] = bias;
            conv_args[DNNL_ARG_BIAS] = bias;
        }
        auto run_direct = [&] {
            direct.execute(strm, direct_args);
            strm.wait();
        };
        auto run_winograd = [&] {
            if (reorders) to_blocked.execute(strm, {{DNNL_ARG_FROM, s}, {DNNL_ARG_TO, src}});
            conv.execute(strm, conv_args);
            if (reorders) from_blocked.execute(strm, {{DNNL_ARG_FROM, dst}, {DNNL_ARG_TO, t}});
            strm.wait();
        };
        return second_is_faster(run_direct, run_winograd);
    }
};

// Whether oneDNN's int8 convolutions compute exactly on this CPU (as oneDNN dispatches here,
// ONEDNN_MAX_CPU_ISA included). With VNNI (vpdpbusd) products accumulate in 32 bits; without it
// oneDNN 2.6 adds pairs of u8·s8 products in 16 bits with saturation and halves the weights of s8
// sources. Kiln's quantized convs run their f32 form where this is false (QuantizedEmitters.swift).
inline bool int8_exact() {
    switch (dnnl::get_effective_cpu_isa()) {
    case dnnl::cpu_isa::avx512_core_vnni:
    case dnnl::cpu_isa::avx512_core_bf16:
    case dnnl::cpu_isa::avx512_core_amx:
        return true;
    default:
        return false;
    }
}

}  // namespace
}  // namespace kiln
