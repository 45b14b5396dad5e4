// cxx_consumer.cpp — a C++ program that uses the standard library (std::shared_ptr,
// std::vector, std::unordered_map, std::string) and the C API of a Kiln library linked
// statically. The archive's C++ internals (libstdc++ and oneDNN inline code) must stay
// private to it: if the archive still carried COMDAT groups for them, the linker would
// keep this program's copies, discard the archive's and fail with "defined in discarded
// section". Built with -O0 so every inline function is emitted out of line. Built and run
// by Tests/consumer/run.sh.
#include <cmath>
#include <cstdio>
#include <memory>
#include <string>
#include <unordered_map>
#include <vector>

#include "digits.h"

struct Deleter {
    void operator()(digits_model* m) const { digits_destroy(m); }
};

int main() {
    auto shared = std::make_shared<std::vector<long>>(64, 1L);
    std::shared_ptr<int> counted(new int(7), [](int* p) { delete p; });
    std::unordered_map<int, std::string> names{{0, digits_input_name(0)}, {1, digits_output_name(0)}};

    digits_model* raw = nullptr;
    digits_status s = digits_create(&raw);
    if (s != DIGITS_OK) {
        std::fprintf(stderr, "error: digits_create: %s\n", digits_status_string(s));
        return 1;
    }
    std::unique_ptr<digits_model, Deleter> model(raw);

    std::vector<float> image(digits_input_bytes(0) / sizeof(float), 0.5f);
    std::vector<float> logits(digits_output_bytes(0) / sizeof(float));
    const void* inputs[1] = {image.data()};
    void* outputs[1] = {logits.data()};
    size_t in_bytes[1] = {image.size() * sizeof(float)}, out_bytes[1] = {logits.size() * sizeof(float)};
    s = digits_run(model.get(), 1, inputs, in_bytes, 1, outputs, out_bytes);
    if (s != DIGITS_OK) {
        std::fprintf(stderr, "error: digits_run: %s: %s\n", digits_status_string(s), digits_last_error(model.get()));
        return 1;
    }
    for (float x : logits)
        if (!std::isfinite(x)) {
            std::fprintf(stderr, "error: non-finite logit\n");
            return 1;
        }
    std::printf("C++ consumer: %s -> %s, %zu logits (%zu %d)\n", names[0].c_str(), names[1].c_str(),
                logits.size(), shared->size(), *counted);
    return 0;
}
