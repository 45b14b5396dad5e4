/* Runs the limit tests' model (Tests/limits/big_model.py, compiled with --name big) once through
 * its C API: reads the input from an .npy file (f32, version 1 or 2 header), writes the output
 * as raw f32 to OUT. Linked against libbig.a or libbig.so as a user's program would be.
 *
 *   run_big x.npy OUT
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "big.h"

int main(int argc, char** argv) {
    if (argc != 3) {
        fprintf(stderr, "usage: run_big x.npy OUT\n");
        return 2;
    }
    FILE* f = fopen(argv[1], "rb");
    unsigned char head[12];
    if (!f || fread(head, 1, 12, f) != 12 || memcmp(head, "\x93NUMPY", 6) != 0) {
        fprintf(stderr, "%s: not an .npy file\n", argv[1]);
        return 1;
    }
    long header = head[6] == 1 ? 10 + (head[8] | head[9] << 8)
                               : 12 + (long)(head[8] | head[9] << 8 | head[10] << 16 | (uint32_t)head[11] << 24);
    size_t in_bytes = big_input_bytes(0), out_bytes = big_output_bytes(0);
    float* x = malloc(in_bytes);
    float* y = malloc(out_bytes);
    if (!x || !y || fseek(f, header, SEEK_SET) != 0 || fread(x, 1, in_bytes, f) != in_bytes) {
        fprintf(stderr, "%s: cannot read %zu bytes of input\n", argv[1], in_bytes);
        return 1;
    }
    fclose(f);
    big_model* m = NULL;
    big_status s = big_create(&m);
    if (s != BIG_OK) {
        fprintf(stderr, "big_create: %s\n", big_status_string(s));
        return 1;
    }
    const void* inputs[1] = {x};
    void* outputs[1] = {y};
    s = big_run(m, 1, inputs, &in_bytes, 1, outputs, &out_bytes);
    if (s != BIG_OK) {
        fprintf(stderr, "big_run: %s: %s\n", big_status_string(s), big_last_error(m));
        return 1;
    }
    big_destroy(m);
    FILE* o = fopen(argv[2], "wb");
    if (!o || fwrite(y, 1, out_bytes, o) != out_bytes || fclose(o) != 0) {
        fprintf(stderr, "%s: cannot write the output\n", argv[2]);
        return 1;
    }
    free(x);
    free(y);
    return 0;
}
