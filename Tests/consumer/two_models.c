/*
 * two_models.c — two Kiln libraries in one program. The same model compiled twice, as
 * 'digits_a' and 'digits_b', both linked statically: if any symbol other than the
 * prefixed API leaked out of the archives, the link would fail with duplicate symbols.
 * Runs one image through each and checks the logits are identical. Built and run by
 * Tests/consumer/run.sh.
 */
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "digits_a.h"
#include "digits_b.h"

int main(void) {
    float image[64], logits_a[10], logits_b[10];
    for (int i = 0; i < 64; i++) image[i] = (float)((i * 7) % 17) / 16.0f;  /* a fixed, non-trivial image */
    for (int i = 0; i < 10; i++) logits_a[i] = logits_b[i] = NAN;

    if (digits_a_input_bytes(0) != sizeof image || digits_a_output_bytes(0) != sizeof logits_a ||
        digits_b_input_bytes(0) != sizeof image || digits_b_output_bytes(0) != sizeof logits_b) {
        fprintf(stderr, "error: unexpected tensor sizes (compile with --input-shape image=1x1x8x8)\n");
        return 1;
    }

    digits_a_model* a = NULL;
    digits_b_model* b = NULL;
    digits_a_status sa = digits_a_create(&a);
    if (sa != DIGITS_A_OK) {
        fprintf(stderr, "error: digits_a_create: %s\n", digits_a_status_string(sa));
        return 1;
    }
    digits_b_status sb = digits_b_create(&b);
    if (sb != DIGITS_B_OK) {
        fprintf(stderr, "error: digits_b_create: %s\n", digits_b_status_string(sb));
        digits_a_destroy(a);
        return 1;
    }

    const void* in[1] = {image};
    size_t in_bytes[1] = {sizeof image}, out_bytes[1] = {sizeof logits_a};
    void* out_a[1] = {logits_a};
    void* out_b[1] = {logits_b};
    int rc = 1;
    sa = digits_a_run(a, 1, in, in_bytes, 1, out_a, out_bytes);
    if (sa != DIGITS_A_OK) {
        fprintf(stderr, "error: digits_a_run: %s: %s\n", digits_a_status_string(sa), digits_a_last_error(a));
        goto done;
    }
    sb = digits_b_run(b, 1, in, in_bytes, 1, out_b, out_bytes);
    if (sb != DIGITS_B_OK) {
        fprintf(stderr, "error: digits_b_run: %s: %s\n", digits_b_status_string(sb), digits_b_last_error(b));
        goto done;
    }

    printf("digits_a logits:");
    for (int i = 0; i < 10; i++) printf(" %.6g", logits_a[i]);
    printf("\ndigits_b logits:");
    for (int i = 0; i < 10; i++) printf(" %.6g", logits_b[i]);
    printf("\n");
    int finite = 1;
    for (int i = 0; i < 10; i++) finite &= isfinite(logits_a[i]) != 0;
    if (!finite) {
        fprintf(stderr, "error: digits_a wrote non-finite logits\n");
        goto done;
    }
    if (memcmp(logits_a, logits_b, sizeof logits_a) != 0) {
        fprintf(stderr, "error: the two libraries disagree\n");
        goto done;
    }
    printf("two models: identical logits\n");
    rc = 0;
done:
    digits_b_destroy(b);
    digits_a_destroy(a);
    return rc;
}
