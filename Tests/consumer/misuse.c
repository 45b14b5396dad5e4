/*
 * misuse.c — the C API of a Kiln library (compiled as 'digits', input f32 [1,1,8,8],
 * output f32 [1,10]) must reject every misuse with the documented status, leave a
 * last-error string behind, and still work afterwards. Prints one line per check and
 * exits non-zero if any failed. Built and run by Tests/consumer/run.sh.
 */
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "digits.h"

static int failures = 0;

static void check(int ok, const char* what) {
    printf("%s: %s\n", ok ? "ok  " : "FAIL", what);
    if (!ok) failures++;
}

/* Checks a call's status and, for a failure with a handle, that the last error says something. */
static void expect(digits_status got, digits_status want, const digits_model* m, const char* what) {
    char line[512];
    if (got == want) {
        const char* err = want != DIGITS_OK && m ? digits_last_error(m) : NULL;
        if (err) snprintf(line, sizeof line, "%s -> %s (last error: \"%s\")", what, digits_status_string(got), err);
        else snprintf(line, sizeof line, "%s -> %s", what, digits_status_string(got));
        check(1, line);
        if (want != DIGITS_OK && m) {
            snprintf(line, sizeof line, "  digits_last_error is non-empty after: %s", what);
            check(err != NULL && err[0] != '\0', line);
        }
    } else {
        snprintf(line, sizeof line, "%s -> %d (%s), expected %d (%s)", what, (int)got,
                 digits_status_string(got) ? digits_status_string(got) : "NULL", (int)want,
                 digits_status_string(want) ? digits_status_string(want) : "NULL");
        check(0, line);
    }
}

int main(void) {
    /* Buffers of the right sizes, with room for a second (bogus) input and output so that
       a library which wrongly read past the counts would not read outside our arrays. */
    float image[64], logits[10], spare_in[64], spare_out[10];
    for (int i = 0; i < 64; i++) image[i] = (float)i / 64.0f;
    memset(spare_in, 0, sizeof spare_in);
    const void* inputs[2] = {image, spare_in};
    void* outputs[2] = {logits, spare_out};
    size_t in_bytes[2] = {sizeof image, sizeof spare_in};
    size_t out_bytes[2] = {sizeof logits, sizeof spare_out};

    /* Constants and introspection agree with the header. */
    check(digits_num_inputs() == DIGITS_NUM_INPUTS, "digits_num_inputs() == DIGITS_NUM_INPUTS");
    check(digits_num_outputs() == DIGITS_NUM_OUTPUTS, "digits_num_outputs() == DIGITS_NUM_OUTPUTS");
    check(digits_version() && strcmp(digits_version(), DIGITS_KILN_VERSION) == 0,
          "digits_version() == DIGITS_KILN_VERSION");
    check(digits_abi_version() == DIGITS_ABI_VERSION, "digits_abi_version() == DIGITS_ABI_VERSION");
    check(digits_input_bytes(0) == sizeof image && digits_output_bytes(0) == sizeof logits,
          "input/output byte sizes are 256/40");

    /* Every status code has a description. */
    for (int c = DIGITS_OK; c <= DIGITS_ERROR_INTERNAL; c++) {
        const char* s = digits_status_string((digits_status)c);
        char line[256];
        snprintf(line, sizeof line, "digits_status_string(%d) = \"%s\"", c, s ? s : "(NULL)");
        check(s != NULL && s[0] != '\0', line);
    }
    {
        const char* s = digits_status_string((digits_status)99);
        char line[256];
        snprintf(line, sizeof line, "digits_status_string(99) (unknown code) is non-NULL: \"%s\"", s ? s : "(NULL)");
        check(s != NULL, line);
    }

    /* Introspection with an index out of range gives NULL or 0. */
    size_t bad[] = {1, 2, SIZE_MAX};
    for (size_t k = 0; k < sizeof bad / sizeof bad[0]; k++) {
        size_t i = bad[k];
        char line[256];
        snprintf(line, sizeof line, "input introspection at index %zu gives NULL/0", i);
        check(digits_input_name(i) == NULL && digits_input_type(i) == 0 && digits_input_rank(i) == 0 &&
                  digits_input_shape(i) == NULL && digits_input_bytes(i) == 0, line);
        snprintf(line, sizeof line, "output introspection at index %zu gives NULL/0", i);
        check(digits_output_name(i) == NULL && digits_output_type(i) == 0 && digits_output_rank(i) == 0 &&
                  digits_output_shape(i) == NULL && digits_output_bytes(i) == 0, line);
    }

    /* Handles. */
    digits_destroy(NULL);
    check(1, "digits_destroy(NULL) returns");
    expect(digits_create(NULL), DIGITS_ERROR_NULL_POINTER, NULL, "digits_create(NULL)");
    {
        /* Not documented in the header; a binding may well call it with NULL after a failed create. */
        const char* err = digits_last_error(NULL);
        char line[256];
        snprintf(line, sizeof line, "digits_last_error(NULL) is a non-NULL string: \"%s\"", err ? err : "(NULL)");
        check(err != NULL, line);
    }

    digits_model* m = NULL;
    digits_status s = digits_create(&m);
    expect(s, DIGITS_OK, NULL, "digits_create(&m)");
    if (s != DIGITS_OK || m == NULL) {
        printf("misuse: cannot continue without a handle\n");
        return 1;
    }
    {
        const char* err = digits_last_error(m);
        char line[256];
        snprintf(line, sizeof line, "digits_last_error of a fresh handle is \"\" (got \"%s\")", err ? err : "(NULL)");
        check(err != NULL && err[0] == '\0', line);
    }

    /* digits_run misuse. */
    expect(digits_run(NULL, 1, inputs, in_bytes, 1, outputs, out_bytes), DIGITS_ERROR_NULL_POINTER, NULL,
           "digits_run(NULL, ...)");
    expect(digits_run(m, 2, inputs, in_bytes, 1, outputs, out_bytes), DIGITS_ERROR_INVALID_ARGUMENT, m,
           "digits_run with num_inputs 2");
    expect(digits_run(m, 0, inputs, in_bytes, 1, outputs, out_bytes), DIGITS_ERROR_INVALID_ARGUMENT, m,
           "digits_run with num_inputs 0");
    expect(digits_run(m, 1, inputs, in_bytes, 2, outputs, out_bytes), DIGITS_ERROR_INVALID_ARGUMENT, m,
           "digits_run with num_outputs 2");
    expect(digits_run(m, 1, NULL, in_bytes, 1, outputs, out_bytes), DIGITS_ERROR_NULL_POINTER, m,
           "digits_run with inputs array NULL");
    {
        const void* null_input[1] = {NULL};
        expect(digits_run(m, 1, null_input, in_bytes, 1, outputs, out_bytes), DIGITS_ERROR_NULL_POINTER, m,
               "digits_run with inputs[0] NULL");
    }
    expect(digits_run(m, 1, inputs, NULL, 1, outputs, out_bytes), DIGITS_ERROR_NULL_POINTER, m,
           "digits_run with input_bytes NULL");
    {
        size_t wrong[1] = {sizeof image - 4};
        expect(digits_run(m, 1, inputs, wrong, 1, outputs, out_bytes), DIGITS_ERROR_SIZE_MISMATCH, m,
               "digits_run with input_bytes[0] = 252");
        size_t bigger[1] = {sizeof image * 2};
        expect(digits_run(m, 1, inputs, bigger, 1, outputs, out_bytes), DIGITS_ERROR_SIZE_MISMATCH, m,
               "digits_run with input_bytes[0] = 512");
    }
    expect(digits_run(m, 1, inputs, in_bytes, 1, NULL, out_bytes), DIGITS_ERROR_NULL_POINTER, m,
           "digits_run with outputs array NULL");
    {
        void* null_output[1] = {NULL};
        expect(digits_run(m, 1, inputs, in_bytes, 1, null_output, out_bytes), DIGITS_ERROR_NULL_POINTER, m,
               "digits_run with outputs[0] NULL");
    }
    expect(digits_run(m, 1, inputs, in_bytes, 1, outputs, NULL), DIGITS_ERROR_NULL_POINTER, m,
           "digits_run with output_bytes NULL");
    {
        size_t wrong[1] = {sizeof logits - 4};
        expect(digits_run(m, 1, inputs, in_bytes, 1, outputs, wrong), DIGITS_ERROR_SIZE_MISMATCH, m,
               "digits_run with output_bytes[0] = 36");
    }

    /* Threads. */
    expect(digits_set_num_threads(m, -1), DIGITS_ERROR_INVALID_ARGUMENT, m, "digits_set_num_threads(m, -1)");
    /* 100000 threads once crashed libgomp in the next run. */
    expect(digits_set_num_threads(m, 100000), DIGITS_ERROR_INVALID_ARGUMENT, m, "digits_set_num_threads(m, 100000)");
    expect(digits_set_num_threads(m, 1025), DIGITS_ERROR_INVALID_ARGUMENT, m, "digits_set_num_threads(m, 1025)");
    expect(digits_set_num_threads(NULL, 1), DIGITS_ERROR_NULL_POINTER, NULL, "digits_set_num_threads(NULL, 1)");
    expect(digits_set_num_threads(m, 1), DIGITS_OK, m, "digits_set_num_threads(m, 1)");
    expect(digits_set_num_threads(m, 0), DIGITS_OK, m, "digits_set_num_threads(m, 0)");

    /* After all that, a valid run still works and gives finite logits. */
    for (int i = 0; i < 10; i++) logits[i] = NAN;
    expect(digits_run(m, 1, inputs, in_bytes, 1, outputs, out_bytes), DIGITS_OK, m, "valid digits_run afterwards");
    int finite = 1;
    for (int i = 0; i < 10; i++) finite &= isfinite(logits[i]) != 0;
    check(finite, "the valid run wrote 10 finite logits");
    {
        const char* err = digits_last_error(m);
        printf("info: digits_last_error after the successful run: \"%s\"\n", err ? err : "(NULL)");
    }

    digits_destroy(m);
    printf("misuse: %d check(s) failed\n", failures);
    return failures ? 1 : 0;
}
