/*
 * classify.c — classify the held-back digits with a Kiln-compiled library.
 *
 * A plain C11 user of the generated API: it reads the test images and labels from
 * NumPy .npy files, checks through the library's introspection that the model takes
 * what the files hold, runs the images one at a time, and prints the accuracy (in the
 * format of `kiln eval`) and the median latency per image.
 *
 *     kiln compile samples/models/digits.onnx -o out --name digits --input-shape image=1x1x8x8
 *     cc -O2 -std=c11 classify.c -o classify $(PKG_CONFIG_PATH=out pkg-config --cflags --libs digits)
 *     ./classify samples/models/digits_test_images.npy samples/models/digits_test_labels.npy
 *
 * See build.sh next to this file for static, shared and CMake builds.
 */
#define _POSIX_C_SOURCE 200809L  /* clock_gettime */

#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "digits.h"

/* ------------------------------------------------------------------------------------
 * A small .npy reader: format versions 1.0, 2.0 and 3.0, little-endian dense arrays in
 * C order, one expected dtype. https://numpy.org/doc/stable/reference/generated/numpy.lib.format.html
 * ------------------------------------------------------------------------------------ */

#define NPY_MAX_DIMS 16

typedef struct npy_array {
    int ndim;
    int64_t shape[NPY_MAX_DIMS];
    size_t count;      /* number of elements: the product of shape (1 for a scalar) */
    size_t itemsize;   /* bytes per element */
    void* data;        /* count * itemsize bytes, host byte order */
} npy_array;

static void npy_free(npy_array* a) {
    free(a->data);
    a->data = NULL;
}

static int host_is_little_endian(void) {
    const uint16_t one = 1;
    unsigned char first;
    memcpy(&first, &one, 1);
    return first == 1;
}

static const char* skip_space(const char* p, const char* end) {
    while (p < end && (*p == ' ' || *p == '\t')) p++;
    return p;
}

/* Finds the value of 'key' in the header dict: a pointer just after "'key':" and spaces. */
static const char* find_key(const char* header, const char* end, const char* key) {
    char quoted[64];
    size_t qlen = (size_t)snprintf(quoted, sizeof quoted, "'%s'", key);
    for (const char* p = header; p + qlen <= end; p++) {
        if (memcmp(p, quoted, qlen) != 0) continue;
        const char* q = skip_space(p + qlen, end);
        if (q < end && *q == ':') return skip_space(q + 1, end);
    }
    return NULL;
}

/* Reads `path`, which must hold an array of dtype `descr` (e.g. "<f4") with element size
 * `itemsize`. On failure prints a message naming the file and returns non-zero. */
static int npy_read(const char* path, const char* descr, size_t itemsize, npy_array* out) {
    memset(out, 0, sizeof *out);
    int ok = 0;
    char* header = NULL;
    FILE* f = fopen(path, "rb");
    if (!f) {
        fprintf(stderr, "error: cannot open %s: %s\n", path, strerror(errno));
        return 1;
    }

    unsigned char pre[8];
    if (fread(pre, 1, sizeof pre, f) != sizeof pre || memcmp(pre, "\x93NUMPY", 6) != 0) {
        fprintf(stderr, "error: %s: not a .npy file (bad magic)\n", path);
        goto done;
    }
    unsigned major = pre[6], minor = pre[7];
    size_t header_len;
    if (major == 1) {
        unsigned char len[2];
        if (fread(len, 1, 2, f) != 2) goto truncated;
        header_len = (size_t)len[0] | (size_t)len[1] << 8;
    } else if (major == 2 || major == 3) {
        unsigned char len[4];
        if (fread(len, 1, 4, f) != 4) goto truncated;
        header_len = (size_t)len[0] | (size_t)len[1] << 8 | (size_t)len[2] << 16 | (size_t)len[3] << 24;
    } else {
        fprintf(stderr, "error: %s: unsupported .npy format version %u.%u\n", path, major, minor);
        goto done;
    }
    if (header_len == 0 || header_len > (1u << 20)) {
        fprintf(stderr, "error: %s: implausible header length %zu\n", path, header_len);
        goto done;
    }
    header = malloc(header_len + 1);
    if (!header) {
        fprintf(stderr, "error: %s: out of memory\n", path);
        goto done;
    }
    if (fread(header, 1, header_len, f) != header_len) goto truncated;
    header[header_len] = '\0';
    const char* end = header + header_len;
    if (memchr(header, '\0', header_len)) {
        fprintf(stderr, "error: %s: malformed header (NUL byte)\n", path);
        goto done;
    }

    /* 'descr': '<f4' */
    const char* v = find_key(header, end, "descr");
    if (!v || *v != '\'') {
        fprintf(stderr, "error: %s: header has no 'descr' string\n", path);
        goto done;
    }
    const char* close = memchr(v + 1, '\'', (size_t)(end - v - 1));
    if (!close) {
        fprintf(stderr, "error: %s: malformed 'descr'\n", path);
        goto done;
    }
    size_t dlen = (size_t)(close - v - 1);
    if (dlen != strlen(descr) || memcmp(v + 1, descr, dlen) != 0) {
        fprintf(stderr, "error: %s: dtype is '%.*s', expected '%s'\n", path, (int)dlen, v + 1, descr);
        goto done;
    }

    /* 'fortran_order': False */
    v = find_key(header, end, "fortran_order");
    if (!v) {
        fprintf(stderr, "error: %s: header has no 'fortran_order'\n", path);
        goto done;
    }
    if ((size_t)(end - v) >= 4 && memcmp(v, "True", 4) == 0) {
        fprintf(stderr, "error: %s: Fortran-ordered arrays are not supported (save with C order)\n", path);
        goto done;
    }
    if ((size_t)(end - v) < 5 || memcmp(v, "False", 5) != 0) {
        fprintf(stderr, "error: %s: malformed 'fortran_order'\n", path);
        goto done;
    }

    /* 'shape': (360, 1, 8, 8) — also (), (360,) */
    v = find_key(header, end, "shape");
    if (!v || *v != '(') {
        fprintf(stderr, "error: %s: header has no 'shape' tuple\n", path);
        goto done;
    }
    const char* p = v + 1;
    size_t count = 1;
    for (;;) {
        p = skip_space(p, end);
        if (p < end && *p == ')') break;
        if (p >= end || *p < '0' || *p > '9') {
            fprintf(stderr, "error: %s: malformed 'shape'\n", path);
            goto done;
        }
        int64_t dim = 0;
        while (p < end && *p >= '0' && *p <= '9') {
            if (dim > (INT64_MAX - 9) / 10) {
                fprintf(stderr, "error: %s: dimension too large\n", path);
                goto done;
            }
            dim = dim * 10 + (*p++ - '0');
        }
        if (out->ndim == NPY_MAX_DIMS) {
            fprintf(stderr, "error: %s: more than %d dimensions\n", path, NPY_MAX_DIMS);
            goto done;
        }
        out->shape[out->ndim++] = dim;
        if (dim != 0 && count > SIZE_MAX / itemsize / (size_t)dim) {
            fprintf(stderr, "error: %s: array too large\n", path);
            goto done;
        }
        count *= (size_t)dim;
        p = skip_space(p, end);
        if (p < end && *p == ',') p++;
        else if (p < end && *p == ')') break;
        else {
            fprintf(stderr, "error: %s: malformed 'shape'\n", path);
            goto done;
        }
    }

    out->count = count;
    out->itemsize = itemsize;
    size_t nbytes = count * itemsize;
    out->data = malloc(nbytes ? nbytes : 1);
    if (!out->data) {
        fprintf(stderr, "error: %s: out of memory (%zu bytes)\n", path, nbytes);
        goto done;
    }
    if (fread(out->data, 1, nbytes, f) != nbytes) goto truncated;
    if (fgetc(f) != EOF) {
        fprintf(stderr, "error: %s: extra bytes after the %zu bytes of data the header describes\n",
                path, nbytes);
        goto done;
    }
    if (!host_is_little_endian() && itemsize > 1) {  /* the file is little-endian ('<') */
        unsigned char* b = out->data;
        for (size_t i = 0; i < count; i++, b += itemsize)
            for (size_t j = 0; j < itemsize / 2; j++) {
                unsigned char t = b[j];
                b[j] = b[itemsize - 1 - j];
                b[itemsize - 1 - j] = t;
            }
    }
    ok = 1;
    goto done;

truncated:
    fprintf(stderr, "error: %s: file is truncated\n", path);
done:
    free(header);
    fclose(f);
    if (!ok) npy_free(out);
    return ok ? 0 : 1;
}

/* ------------------------------------------------------------------------------------ */

static double now_us(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec * 1e6 + (double)t.tv_nsec / 1e3;
}

static int compare_double(const void* a, const void* b) {
    double x = *(const double*)a, y = *(const double*)b;
    return (x > y) - (x < y);
}

static size_t shape_elements(const int64_t* shape, size_t rank) {
    size_t n = 1;
    for (size_t i = 0; i < rank; i++) n *= (size_t)shape[i];
    return n;
}

static void print_shape(FILE* f, const int64_t* shape, size_t rank) {
    for (size_t i = 0; i < rank; i++) fprintf(f, "%s%lld", i ? "x" : "", (long long)shape[i]);
}

int main(int argc, char** argv) {
    if (argc != 3) {
        fprintf(stderr, "usage: %s IMAGES.npy LABELS.npy\n"
                        "  IMAGES.npy: float32 (N, 1, 8, 8), C order; LABELS.npy: int64 (N,)\n",
                argc > 0 ? argv[0] : "classify");
        return 2;
    }

    /* What the library expects: one f32 input, one image per run, one f32 output. */
    if (digits_num_inputs() != 1 || digits_num_outputs() != 1) {
        fprintf(stderr, "error: expected a model with 1 input and 1 output, got %zu and %zu\n",
                digits_num_inputs(), digits_num_outputs());
        return 1;
    }
    const int64_t* in_shape = digits_input_shape(0);
    size_t in_rank = digits_input_rank(0);
    size_t in_elems = shape_elements(in_shape, in_rank);
    if (digits_input_type(0) != DIGITS_F32 || in_rank < 1 || in_shape[0] != 1 || in_elems != 64 ||
        digits_input_bytes(0) != in_elems * sizeof(float)) {
        fprintf(stderr, "error: input '%s' is type %d, shape ", digits_input_name(0),
                (int)digits_input_type(0));
        print_shape(stderr, in_shape, in_rank);
        fprintf(stderr, "; expected f32 with one 8x8 image (compile with --input-shape image=1x1x8x8)\n");
        return 1;
    }
    const int64_t* out_shape = digits_output_shape(0);
    size_t out_rank = digits_output_rank(0);
    size_t classes = shape_elements(out_shape, out_rank);
    if (digits_output_type(0) != DIGITS_F32 || classes == 0 ||
        digits_output_bytes(0) != classes * sizeof(float)) {
        fprintf(stderr, "error: output '%s' is not a non-empty f32 tensor\n", digits_output_name(0));
        return 1;
    }

    npy_array images, labels;
    if (npy_read(argv[1], "<f4", 4, &images) != 0) return 1;
    if (npy_read(argv[2], "<i8", 8, &labels) != 0) {
        npy_free(&images);
        return 1;
    }
    int status = 1;
    float* logits = NULL;
    double* latency = NULL;
    digits_model* model = NULL;

    if (images.ndim < 1 || images.shape[0] == 0 || images.count / (size_t)images.shape[0] != in_elems) {
        fprintf(stderr, "error: %s: shape (", argv[1]);
        for (int i = 0; i < images.ndim; i++) fprintf(stderr, "%s%lld", i ? ", " : "", (long long)images.shape[i]);
        fprintf(stderr, ") is not N images of %zu pixels\n", in_elems);
        goto cleanup;
    }
    size_t n = (size_t)images.shape[0];
    if (labels.ndim != 1 || (size_t)labels.shape[0] != n) {
        fprintf(stderr, "error: %s: expected %zu labels in a 1-D array\n", argv[2], n);
        goto cleanup;
    }
    const int64_t* label = labels.data;
    for (size_t i = 0; i < n; i++)
        if (label[i] < 0 || (uint64_t)label[i] >= classes) {
            fprintf(stderr, "error: %s: label %lld at index %zu is not in 0..%zu\n", argv[2],
                    (long long)label[i], i, classes - 1);
            goto cleanup;
        }

    logits = malloc(classes * sizeof *logits);
    latency = malloc(n * sizeof *latency);
    if (!logits || !latency) {
        fprintf(stderr, "error: out of memory\n");
        goto cleanup;
    }

    digits_status s = digits_create(&model);
    if (s != DIGITS_OK) {
        /* No handle, so no last-error string: the status says what failed. */
        fprintf(stderr, "error: digits_create: %s\n", digits_status_string(s));
        goto cleanup;
    }

    const float* pixels = images.data;
    size_t in_bytes = digits_input_bytes(0), out_bytes = digits_output_bytes(0);
    size_t correct = 0;
    for (size_t i = 0; i < n; i++) {
        const void* inputs[DIGITS_NUM_INPUTS] = {pixels + i * in_elems};
        void* outputs[DIGITS_NUM_OUTPUTS] = {logits};
        double t0 = now_us();
        s = digits_run(model, DIGITS_NUM_INPUTS, inputs, &in_bytes, DIGITS_NUM_OUTPUTS, outputs, &out_bytes);
        latency[i] = now_us() - t0;
        if (s != DIGITS_OK) {
            fprintf(stderr, "error: digits_run (image %zu): %s: %s\n", i, digits_status_string(s),
                    digits_last_error(model));
            goto cleanup;
        }
        size_t best = 0;
        for (size_t c = 1; c < classes; c++)
            if (logits[c] > logits[best]) best = c;
        if ((int64_t)best == label[i]) correct++;
    }

    qsort(latency, n, sizeof *latency, compare_double);
    double median = n % 2 ? latency[n / 2] : (latency[n / 2 - 1] + latency[n / 2]) / 2;
    printf("accuracy: %d/%d = %.2f%%\n", (int)correct, (int)n, 100.0 * (double)correct / (double)n);
    printf("median latency: %.1f us/image (%zu runs, Kiln %s)\n", median, n, digits_version());
    status = 0;

cleanup:
    digits_destroy(model);
    free(latency);
    free(logits);
    npy_free(&images);
    npy_free(&labels);
    return status;
}
