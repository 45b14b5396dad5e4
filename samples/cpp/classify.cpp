// classify.cpp — classify the held-back digits with a Kiln-compiled library from C++.
//
// The C++ host of the C ABI: kiln/model.hpp (header-only, shipped in Kiln's include/kiln/)
// wraps the library's functions in a RAII kiln::Model that throws kiln::Error. The program
// checks through the library's introspection that the model takes what the files hold, runs
// the images one at a time, and prints the accuracy (in the format of `kiln eval`) and the
// median latency per image.
//
//     kiln compile samples/models/digits.onnx -o out --name digits --input-shape image=1x1x8x8
//     c++ -O2 -std=c++11 samples/cpp/classify.cpp -o classify -I include $(PKG_CONFIG_PATH=out pkg-config --cflags --libs digits-static)
//     ./classify samples/models/digits_test_images.npy samples/models/digits_test_labels.npy
#include <algorithm>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <iterator>
#include <stdexcept>
#include <string>
#include <vector>

// The model's C prefix (kiln compile --name): digits unless built with -DMODEL=other.
#ifndef MODEL
#define MODEL digits
#endif
#define KILN_STRING_(x) #x
#define KILN_STRING(x) KILN_STRING_(x)
#define KILN_PASTE_(a, b) a##b
#define KILN_PASTE(a, b) KILN_PASTE_(a, b)

#include KILN_STRING(MODEL.h)
#include <kiln/model.hpp>

KILN_MODEL_API(MODEL);
typedef kiln::Model<KILN_PASTE(MODEL, _api)> Classifier;

namespace {

// A .npy array (format 1.0-3.0, little-endian, C order) of the dtype `descr` ("<f4", "<i8").
template <class T>
std::vector<T> read_npy(const std::string& path, const char* descr, std::vector<std::int64_t>& shape) {
    std::ifstream f(path, std::ios::binary);
    if (!f) throw std::runtime_error("cannot open " + path);
    std::vector<char> bytes((std::istreambuf_iterator<char>(f)), std::istreambuf_iterator<char>());
    if (bytes.size() < 10 || std::memcmp(bytes.data(), "\x93NUMPY", 6) != 0) throw std::runtime_error(path + ": not a .npy file");
    std::size_t header_len, start;
    if (bytes[6] == 1) {
        header_len = static_cast<unsigned char>(bytes[8]) | static_cast<unsigned char>(bytes[9]) << 8;
        start = 10;
    } else {
        if (bytes.size() < 12) throw std::runtime_error(path + ": truncated header");
        header_len = 0;
        for (int i = 3; i >= 0; --i) header_len = header_len << 8 | static_cast<unsigned char>(bytes[8 + i]);
        start = 12;
    }
    if (start + header_len > bytes.size()) throw std::runtime_error(path + ": truncated header");
    std::string header(bytes.data() + start, header_len);
    if (header.find(std::string("'descr': '") + descr + "'") == std::string::npos)
        throw std::runtime_error(path + ": expected dtype " + descr + " in " + header);
    if (header.find("'fortran_order': False") == std::string::npos) throw std::runtime_error(path + ": not in C order");
    std::size_t open = header.find("'shape': ("), close = header.find(')', open);
    if (open == std::string::npos || close == std::string::npos) throw std::runtime_error(path + ": no shape");
    shape.clear();
    std::size_t count = 1;
    for (std::size_t p = open + 10; p < close;) {
        while (p < close && (header[p] == ' ' || header[p] == ',')) ++p;
        if (p >= close) break;
        std::size_t used = 0;
        long long d = std::stoll(header.substr(p), &used);
        shape.push_back(d);
        count *= static_cast<std::size_t>(d);
        p += used;
    }
    if (start + header_len + count * sizeof(T) != bytes.size()) throw std::runtime_error(path + ": size disagrees with its shape");
    std::vector<T> data(count);
    std::memcpy(data.data(), bytes.data() + start + header_len, count * sizeof(T));
    return data;
}

}  // namespace

int main(int argc, char** argv) {
    if (argc != 3) {
        std::fprintf(stderr, "usage: %s IMAGES.npy LABELS.npy\n", argv[0]);
        return 2;
    }
    try {
        const std::vector<kiln::TensorInfo> ins = Classifier::inputs(), outs = Classifier::outputs();
        if (ins.size() != 1 || outs.size() != 1 || ins[0].type != static_cast<int>(kiln::ElementType::f32) ||
            outs[0].type != static_cast<int>(kiln::ElementType::f32) || ins[0].shape.empty() || ins[0].shape[0] != 1)
            throw std::runtime_error("the model should take one f32 image (batch 1) and return one f32 tensor");
        const std::size_t pixels = ins[0].bytes / sizeof(float), classes = outs[0].bytes / sizeof(float);

        std::vector<std::int64_t> image_shape, label_shape;
        const std::vector<float> images = read_npy<float>(argv[1], "<f4", image_shape);
        const std::vector<std::int64_t> labels = read_npy<std::int64_t>(argv[2], "<i8", label_shape);
        if (image_shape.empty() || images.size() != static_cast<std::size_t>(image_shape[0]) * pixels)
            throw std::runtime_error(std::string(argv[1]) + ": not N images of " + std::to_string(pixels) + " pixels");
        const std::size_t n = static_cast<std::size_t>(image_shape[0]);
        if (label_shape.size() != 1 || labels.size() != n) throw std::runtime_error(std::string(argv[2]) + ": expected " + std::to_string(n) + " labels");

        Classifier model(1);
        std::vector<float> logits(classes);
        std::vector<double> micros;
        std::size_t correct = 0;
        for (std::size_t i = 0; i < n; ++i) {
            auto t0 = std::chrono::steady_clock::now();
            model.run({kiln::in(images.data() + i * pixels, pixels)}, {kiln::out(logits)});
            micros.push_back(std::chrono::duration<double, std::micro>(std::chrono::steady_clock::now() - t0).count());
            const std::size_t best = static_cast<std::size_t>(std::max_element(logits.begin(), logits.end()) - logits.begin());
            correct += static_cast<std::int64_t>(best) == labels[i];
        }
        std::sort(micros.begin(), micros.end());
        std::printf("accuracy: %d/%d = %.2f%%\n", static_cast<int>(correct), static_cast<int>(n), 100.0 * correct / n);
        std::printf("median latency: %.1f us/image (%zu runs, Kiln %s, from C++)\n", micros[n / 2], n, Classifier::version().c_str());

        // Errors arrive as kiln::Error with the C status code and the handle's last error.
        std::vector<float> too_small(pixels - 1);
        try {
            model.run({kiln::in(too_small)}, {kiln::out(logits)});
            std::fprintf(stderr, "error: a buffer of the wrong size was accepted\n");
            return 1;
        } catch (const kiln::Error& e) {
            if (!e.is(kiln::Status::size_mismatch)) throw;
            std::printf("wrong size refused: %s\n", e.what());
        }
        return 0;
    } catch (const kiln::Error& e) {
        std::fprintf(stderr, "error: %s (status %d)\n", e.what(), e.status());
    } catch (const std::exception& e) {
        std::fprintf(stderr, "error: %s\n", e.what());
    }
    return 1;
}
