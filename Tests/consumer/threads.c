/*
 * threads.c — two different Kiln models in one program, run from 8 threads at once, each
 * thread with its own handles, created concurrently: every call must give the bits of a
 * single-threaded run. The models are the sample CNN in FP32 (digits) and quantized by
 * PyTorch's PT2E flow (digits_q, int8); every handle runs on one OpenMP thread, as the
 * reference does (whether oneDNN's kernels give the same bits at every OpenMP thread count
 * depends on the kernels a CPU gets, and is not what this test checks). Built and run by
 * Tests/consumer/run.sh.
 */
#define _POSIX_C_SOURCE 200809L /* pthread barriers under -std=c11 */
#include <pthread.h>
#include <stdio.h>
#include <string.h>

#include "digits.h"
#include "digits_q.h"

enum { THREADS = 8, IMAGES = 16, ROUNDS = 25 };

static float images[IMAGES][64];
static float want_f32[IMAGES][10], want_q[IMAGES][10];
static pthread_barrier_t start;

typedef struct {
    int id;
    int mismatches;
    int failures;
} worker;

static int run_f32(digits_model* m, const float* image, float* logits) {
    const void* in[] = {image};
    size_t in_bytes[] = {64 * sizeof(float)};
    void* out[] = {logits};
    size_t out_bytes[] = {10 * sizeof(float)};
    return digits_run(m, 1, in, in_bytes, 1, out, out_bytes) != DIGITS_OK;
}

static int run_q(digits_q_model* m, const float* image, float* logits) {
    const void* in[] = {image};
    size_t in_bytes[] = {64 * sizeof(float)};
    void* out[] = {logits};
    size_t out_bytes[] = {10 * sizeof(float)};
    return digits_q_run(m, 1, in, in_bytes, 1, out, out_bytes) != DIGITS_Q_OK;
}

static void* work(void* arg) {
    worker* w = arg;
    digits_model* a = NULL;
    digits_q_model* b = NULL;
    pthread_barrier_wait(&start); /* every thread creates its handles at the same moment */
    if (digits_create(&a) != DIGITS_OK || digits_q_create(&b) != DIGITS_Q_OK) {
        w->failures++;
        goto done;
    }
    if (digits_set_num_threads(a, 1) != DIGITS_OK || digits_q_set_num_threads(b, 1) != DIGITS_Q_OK) {
        w->failures++;
        goto done;
    }
    for (int r = 0; r < ROUNDS; r++) {
        for (int i = 0; i < IMAGES; i++) {
            int k = (i + w->id + r) % IMAGES; /* threads run different images at any moment */
            float got[10];
            if (run_f32(a, images[k], got)) w->failures++;
            else if (memcmp(got, want_f32[k], sizeof got) != 0) w->mismatches++;
            if (run_q(b, images[k], got)) w->failures++;
            else if (memcmp(got, want_q[k], sizeof got) != 0) w->mismatches++;
        }
    }
done:
    digits_destroy(a);
    digits_q_destroy(b);
    return NULL;
}

int main(void) {
    for (int i = 0; i < IMAGES; i++)
        for (int p = 0; p < 64; p++) images[i][p] = (float)((p * 7 + i * 13 + (p / 8) * i) % 17) / 16.0f;

    /* The single-threaded reference: one handle of each, one OpenMP thread. */
    digits_model* a = NULL;
    digits_q_model* b = NULL;
    if (digits_create(&a) != DIGITS_OK || digits_q_create(&b) != DIGITS_Q_OK ||
        digits_set_num_threads(a, 1) != DIGITS_OK || digits_q_set_num_threads(b, 1) != DIGITS_Q_OK) {
        fprintf(stderr, "error: creating the reference handles failed\n");
        return 1;
    }
    for (int i = 0; i < IMAGES; i++) {
        if (run_f32(a, images[i], want_f32[i]) || run_q(b, images[i], want_q[i])) {
            fprintf(stderr, "error: reference run %d failed\n", i);
            return 1;
        }
    }
    digits_destroy(a);
    digits_q_destroy(b);

    pthread_t tid[THREADS];
    worker w[THREADS];
    pthread_barrier_init(&start, NULL, THREADS);
    for (int t = 0; t < THREADS; t++) {
        w[t] = (worker){t, 0, 0};
        if (pthread_create(&tid[t], NULL, work, &w[t]) != 0) {
            fprintf(stderr, "error: pthread_create failed\n");
            return 1;
        }
    }
    int mismatches = 0, failures = 0;
    for (int t = 0; t < THREADS; t++) {
        pthread_join(tid[t], NULL);
        mismatches += w[t].mismatches;
        failures += w[t].failures;
    }
    pthread_barrier_destroy(&start);
    int calls = THREADS * ROUNDS * IMAGES * 2;
    printf("threads: %d threads x 2 models (FP32, int8), %d calls: %d differ from the single-threaded bits, %d failed\n",
           THREADS, calls, mismatches, failures);
    return mismatches || failures ? 1 : 0;
}
