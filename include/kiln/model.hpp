// kiln/model.hpp — a header-only C++ RAII wrapper over any Kiln library's C ABI.
//
// For C++ hosts of a Kiln-compiled model. It uses only the library's public C functions
// (NAME_create, NAME_run, the introspection functions, ...), so it needs nothing generated
// beyond the model's own header. C++11; exceptions carry the status code and the handle's
// last-error text.
//
//     #include "digits.h"           // the model's header, written by kiln compile
//     #include <kiln/model.hpp>
//     KILN_MODEL_API(digits);        // binds the digits_* functions: defines digits_api
//
//     kiln::Model<digits_api> model;                  // NAME_create; NAME_destroy at scope exit
//     model.set_threads(1);
//     std::vector<float> image(64), logits(10);
//     model.run({kiln::in(image)}, {kiln::out(logits)});   // sizes and element types checked
//
//     for (const kiln::TensorInfo& t : kiln::Model<digits_api>::inputs()) ...   // name, type, shape
//
// kiln::Error (a std::runtime_error) has status() (the C status code, never 0) and what()
// ("digits_run: a buffer's byte size differs from the tensor's: input 0 'image' has ...").
// A Model is movable, not copyable; one handle runs one inference at a time (use one per
// thread). This header is part of Kiln's runtime headers (include/kiln/, installed with kiln).
#ifndef KILN_MODEL_HPP_INCLUDED
#define KILN_MODEL_HPP_INCLUDED

#include <cstddef>
#include <cstdint>
#include <initializer_list>
#include <stdexcept>
#include <string>
#include <vector>

#include "abi.hpp"

namespace kiln {

// The element type a C++ type stands for in in()/out() (0: any, the bytes are taken as given).
template <class T> struct element_type_of { static const int value = 0; };
template <> struct element_type_of<float> { static const int value = static_cast<int>(ElementType::f32); };
template <> struct element_type_of<std::int8_t> { static const int value = static_cast<int>(ElementType::s8); };
template <> struct element_type_of<std::uint8_t> { static const int value = static_cast<int>(ElementType::u8); };
template <> struct element_type_of<std::int32_t> { static const int value = static_cast<int>(ElementType::s32); };
template <> struct element_type_of<std::int64_t> { static const int value = static_cast<int>(ElementType::s64); };
template <> struct element_type_of<bool> { static const int value = static_cast<int>(ElementType::boolean); };

class Error : public std::runtime_error {
public:
    Error(int status, const std::string& message) : std::runtime_error(message), status_(status) {}
    // The C status code (NAME_ERROR_*, compare with kiln::Status), or 0 for a check made by this
    // wrapper before any call (an element type that differs from the model's).
    int status() const { return status_; }
    bool is(Status s) const { return status_ == static_cast<int>(s); }

private:
    int status_;
};

struct TensorInfo {
    std::string name;
    int type;  // ElementType's number
    std::vector<std::int64_t> shape;
    std::size_t bytes;
};

// An input buffer: its bytes and, when built from a typed vector or pointer, its element type.
struct Input {
    const void* data;
    std::size_t bytes;
    int type;
};
// An output buffer.
struct Output {
    void* data;
    std::size_t bytes;
    int type;
};

template <class T> Input in(const std::vector<T>& v) { return Input{v.data(), v.size() * sizeof(T), element_type_of<T>::value}; }
template <class T> Input in(const T* data, std::size_t count) { return Input{data, count * sizeof(T), element_type_of<T>::value}; }
inline Input in_bytes(const void* data, std::size_t bytes) { return Input{data, bytes, 0}; }
template <class T> Output out(std::vector<T>& v) { return Output{v.data(), v.size() * sizeof(T), element_type_of<T>::value}; }
template <class T> Output out(T* data, std::size_t count) { return Output{data, count * sizeof(T), element_type_of<T>::value}; }
inline Output out_bytes(void* data, std::size_t bytes) { return Output{data, bytes, 0}; }

// A handle of the model whose functions `Api` binds (KILN_MODEL_API(NAME) defines NAME_api).
template <class Api>
class Model {
public:
    typedef typename Api::model handle_type;

    // NAME_create. threads >= 0 also sets the handle's thread count (0: OpenMP's default).
    explicit Model(int threads = -1) : handle_(nullptr) {
        handle_type* m = nullptr;
        int s = Api::create(&m);
        if (s != 0) throw Error(s, std::string(Api::prefix()) + "_create: " + Api::status_string(s));
        handle_ = m;
        if (threads >= 0) set_threads(threads);
    }
    ~Model() { Api::destroy(handle_); }
    Model(Model&& other) noexcept : handle_(other.handle_) { other.handle_ = nullptr; }
    Model& operator=(Model&& other) noexcept {
        if (this != &other) {
            Api::destroy(handle_);
            handle_ = other.handle_;
            other.handle_ = nullptr;
        }
        return *this;
    }
    Model(const Model&) = delete;
    Model& operator=(const Model&) = delete;

    // The C handle, for calls this wrapper does not cover (NULL after a move).
    handle_type* get() const { return handle_; }

    void set_threads(int threads) { check("set_num_threads", Api::set_num_threads(live(), threads)); }

    // One inference. Every buffer's size must equal its tensor's (NAME_run checks), and a
    // typed buffer's element type the tensor's (checked here first).
    void run(std::initializer_list<Input> inputs, std::initializer_list<Output> outputs) {
        std::vector<const void*> ip;
        std::vector<std::size_t> ib;
        std::vector<void*> op;
        std::vector<std::size_t> ob;
        std::size_t i = 0;
        for (const Input& x : inputs) {
            check_type("input", i, x.type, i < Api::num_inputs() ? Api::input_type(i) : 0, i < Api::num_inputs() ? Api::input_name(i) : nullptr);
            ip.push_back(x.data);
            ib.push_back(x.bytes);
            ++i;
        }
        i = 0;
        for (const Output& y : outputs) {
            check_type("output", i, y.type, i < Api::num_outputs() ? Api::output_type(i) : 0, i < Api::num_outputs() ? Api::output_name(i) : nullptr);
            op.push_back(y.data);
            ob.push_back(y.bytes);
            ++i;
        }
        check("run", Api::run(live(), ip.size(), ip.data(), ib.data(), op.size(), op.data(), ob.data()));
    }

    // Profiling (NAME_set_profiling, NAME_profile_ms, ...).
    void set_profiling(bool on) { check("set_profiling", Api::set_profiling(live(), on ? 1 : 0)); }

    static std::vector<TensorInfo> inputs() {
        return describe(Api::num_inputs(), Api::input_name, Api::input_type, Api::input_rank, Api::input_shape, Api::input_bytes);
    }
    static std::vector<TensorInfo> outputs() {
        return describe(Api::num_outputs(), Api::output_name, Api::output_type, Api::output_rank, Api::output_shape, Api::output_bytes);
    }
    // The Kiln version that generated the library.
    static std::string version() { return Api::version(); }

private:
    handle_type* handle_;

    static std::vector<TensorInfo> describe(std::size_t n, const char* (*name)(std::size_t), int (*type)(std::size_t),
                                            std::size_t (*rank)(std::size_t), const std::int64_t* (*shape)(std::size_t),
                                            std::size_t (*bytes)(std::size_t)) {
        std::vector<TensorInfo> r;
        for (std::size_t i = 0; i < n; ++i) {
            const std::int64_t* s = shape(i);
            r.push_back(TensorInfo{name(i), type(i), std::vector<std::int64_t>(s, s + rank(i)), bytes(i)});
        }
        return r;
    }

    handle_type* live() const {
        if (!handle_) throw Error(1, std::string(Api::prefix()) + ": this Model was moved from");
        return handle_;
    }
    void check(const char* call, int status) const {
        if (status == 0) return;
        std::string message = std::string(Api::prefix()) + "_" + call + ": " + Api::status_string(status);
        const char* detail = Api::last_error(handle_);
        if (detail && *detail) message += std::string(": ") + detail;
        throw Error(status, message);
    }
    static void check_type(const char* side, std::size_t i, int given, int want, const char* name) {
        if (given == 0 || want == 0 || given == want) return;
        throw Error(0, std::string(Api::prefix()) + "_run: " + side + " " + std::to_string(i) + " '" + (name ? name : "") +
                           "' is " + element_type_name(want) + ", the buffer holds " + element_type_name(given));
    }
};

}  // namespace kiln

// KILN_MODEL_API(NAME): defines NAME_api, the traits that bind kiln::Model to the NAME_*
// functions of the model's header (include it first). Use at namespace scope. NAME may itself
// be a macro (-DMODEL=digits, KILN_MODEL_API(MODEL) defines digits_api).
#define KILN_MODEL_API(NAME) KILN_MODEL_API_(NAME)
#define KILN_MODEL_API_(NAME)                                                                                   \
    struct NAME##_api {                                                                                         \
        typedef NAME##_model model;                                                                             \
        static const char* prefix() { return #NAME; }                                                           \
        static const char* version() { return NAME##_version(); }                                               \
        static int create(model** m) { return static_cast<int>(NAME##_create(m)); }                             \
        static void destroy(model* m) { NAME##_destroy(m); }                                                    \
        static const char* status_string(int s) { return NAME##_status_string(static_cast<NAME##_status>(s)); } \
        static const char* last_error(const model* m) { return NAME##_last_error(m); }                          \
        static int set_num_threads(model* m, int n) { return static_cast<int>(NAME##_set_num_threads(m, n)); }  \
        static int set_profiling(model* m, int on) { return static_cast<int>(NAME##_set_profiling(m, on)); }    \
        static int run(model* m, std::size_t ni, const void* const* i, const std::size_t* ib, std::size_t no,    \
                       void* const* o, const std::size_t* ob) {                                                 \
            return static_cast<int>(NAME##_run(m, ni, i, ib, no, o, ob));                                       \
        }                                                                                                       \
        static std::size_t num_inputs() { return NAME##_num_inputs(); }                                         \
        static const char* input_name(std::size_t i) { return NAME##_input_name(i); }                           \
        static int input_type(std::size_t i) { return static_cast<int>(NAME##_input_type(i)); }                 \
        static std::size_t input_rank(std::size_t i) { return NAME##_input_rank(i); }                           \
        static const std::int64_t* input_shape(std::size_t i) { return NAME##_input_shape(i); }                 \
        static std::size_t input_bytes(std::size_t i) { return NAME##_input_bytes(i); }                         \
        static std::size_t num_outputs() { return NAME##_num_outputs(); }                                       \
        static const char* output_name(std::size_t i) { return NAME##_output_name(i); }                         \
        static int output_type(std::size_t i) { return static_cast<int>(NAME##_output_type(i)); }               \
        static std::size_t output_rank(std::size_t i) { return NAME##_output_rank(i); }                         \
        static const std::int64_t* output_shape(std::size_t i) { return NAME##_output_shape(i); }               \
        static std::size_t output_bytes(std::size_t i) { return NAME##_output_bytes(i); }                       \
    }

#endif  // KILN_MODEL_HPP_INCLUDED
