/*
 * logits.c — runs a compiled model over images and writes its outputs, or compares them with
 * a previous run's: the check that a library gives the same results on another CPU (run under
 * qemu-x86_64 -cpu Haswell by Tests/consumer/run.sh). Built for one model:
 *
 *     cc -DMODEL=digits -DHEADER='"digits.h"' logits.c ...
 *     logits IMAGES.npy write OUT.bin
 *     logits IMAGES.npy compare REF.bin TOLERANCE
 *
 * IMAGES.npy holds float32 images of the model's input size; the model has one f32 input and
 * one f32 output. `compare` passes when every output is within TOLERANCE × the largest
 * |reference| value of its image (it also counts the images whose top-1 moved: within the
 * tolerance only one whose two largest reference values are that close can move).
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include HEADER

#define CAT_(a, b) a##b
#define CAT(a, b) CAT_(a, b)
#define API(name) CAT(MODEL, name)

static float* read_npy(const char* path, size_t per_item, size_t* count) {
    FILE* f = fopen(path, "rb");
    if (!f) return NULL;
    unsigned char head[10];
    if (fread(head, 1, 10, f) != 10 || memcmp(head, "\x93NUMPY", 6) != 0) { fclose(f); return NULL; }
    size_t header = head[8] | (head[9] << 8);
    fseek(f, 0, SEEK_END);
    long end = ftell(f);
    fseek(f, (long)(10 + header), SEEK_SET);
    size_t floats = (size_t)(end - 10 - (long)header) / sizeof(float);
    *count = floats / per_item;
    float* data = malloc(floats * sizeof(float));
    if (!data || fread(data, sizeof(float), floats, f) != floats) { fclose(f); free(data); return NULL; }
    fclose(f);
    return data;
}

int main(int argc, char** argv) {
    if (argc < 4 || (strcmp(argv[2], "write") != 0 && (strcmp(argv[2], "compare") != 0 || argc < 5))) {
        fprintf(stderr, "usage: %s IMAGES.npy write OUT.bin | IMAGES.npy compare REF.bin TOLERANCE\n", argv[0]);
        return 2;
    }
    size_t in_bytes = API(_input_bytes)(0), out_bytes = API(_output_bytes)(0);
    size_t in_floats = in_bytes / sizeof(float), out_floats = out_bytes / sizeof(float), n = 0;
    float* images = read_npy(argv[1], in_floats, &n);
    if (!images || n == 0) { fprintf(stderr, "error: cannot read %s\n", argv[1]); return 1; }
    API(_model)* m = NULL;
    int status = API(_create)(&m);
    if (status != 0) {
        fprintf(stderr, "error: create: %s\n", API(_status_string)(status));
        return 1;
    }
    float* out = malloc(n * out_bytes);
    for (size_t i = 0; i < n; i++) {
        const void* ins[] = {images + i * in_floats};
        void* outs[] = {out + i * out_floats};
        status = API(_run)(m, 1, ins, &in_bytes, 1, outs, &out_bytes);
        if (status != 0) {
            fprintf(stderr, "error: run %zu: %s\n", i, API(_last_error)(m));
            return 1;
        }
    }
    API(_destroy)(m);
    if (strcmp(argv[2], "write") == 0) {
        FILE* f = fopen(argv[3], "wb");
        if (!f || fwrite(out, out_bytes, n, f) != n) { fprintf(stderr, "error: cannot write %s\n", argv[3]); return 1; }
        fclose(f);
        printf("wrote %zu outputs\n", n);
        return 0;
    }
    size_t ref_n = 0;
    FILE* f = fopen(argv[3], "rb");
    float* ref = malloc(n * out_bytes);
    if (!f || (ref_n = fread(ref, out_bytes, n, f)) != n) { fprintf(stderr, "error: cannot read %zu outputs from %s\n", n, argv[3]); return 1; }
    fclose(f);
    double tolerance = atof(argv[4]), worst = 0;
    size_t moved = 0, identical = 0;
    for (size_t i = 0; i < n; i++) {
        const float *a = out + i * out_floats, *b = ref + i * out_floats;
        double scale = 0, diff = 0;
        size_t ia = 0, ib = 0;
        for (size_t k = 0; k < out_floats; k++) {
            scale = fmax(scale, fabs(b[k]));
            diff = fmax(diff, fabs((double)a[k] - b[k]));
            if (a[k] > a[ia]) ia = k;
            if (b[k] > b[ib]) ib = k;
        }
        worst = fmax(worst, diff / (scale > 0 ? scale : 1));
        moved += ia != ib;
        identical += memcmp(a, b, out_bytes) == 0;
    }
    printf("other CPU: %zu outputs, %zu bit-identical, largest difference %.3g of the largest value, %zu top-1 changes\n",
           n, identical, worst, moved);
    return worst <= tolerance ? 0 : 1;
}
