/*
 * create_destroy.c — creates, runs and destroys handles of two Kiln models (digits, FP32, and
 * digits_q, the PT2E int8 model) in a loop, some with a failed run in between, as a long-running
 * program that loads and unloads models would. Built with the libraries under
 * -fsanitize=address,undefined by Tests/consumer/run.sh: LeakSanitizer, at exit, must find
 * nothing left behind (it exits non-zero if it does). With --rss (a normal build: ASan's
 * quarantine holds freed memory), RSS must not grow with the rounds either.
 */
#define _POSIX_C_SOURCE 200809L
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "digits.h"
#include "digits_q.h"

enum { ROUNDS = 200 };

static long rss_kb(void) {
    FILE* f = fopen("/proc/self/status", "r");
    char line[256];
    long kb = -1;
    while (f && fgets(line, sizeof line, f))
        if (strncmp(line, "VmRSS:", 6) == 0) kb = strtol(line + 6, NULL, 10);
    if (f) fclose(f);
    return kb;
}

int main(int argc, char** argv) {
    int check_rss = argc > 1 && strcmp(argv[1], "--rss") == 0;
    float image[64], logits[10];
    for (int p = 0; p < 64; p++) image[p] = (float)(p % 17) / 16.0f;
    const void* in[] = {image};
    size_t in_bytes[] = {sizeof image}, bad_bytes[] = {sizeof image - 4};
    void* out[] = {logits};
    size_t out_bytes[] = {sizeof logits};
    long after_warmup = 0;
    for (int r = 0; r < ROUNDS; r++) {
        digits_model* a = NULL;
        digits_q_model* b = NULL;
        if (digits_create(&a) != DIGITS_OK || digits_q_create(&b) != DIGITS_Q_OK) {
            fprintf(stderr, "error: create failed in round %d\n", r);
            return 1;
        }
        if (r % 3 == 0 && digits_run(a, 1, in, bad_bytes, 1, out, out_bytes) != DIGITS_ERROR_SIZE_MISMATCH) {
            fprintf(stderr, "error: a wrong size was not refused\n");
            return 1;
        }
        if (digits_set_num_threads(a, 1 + r % 2) != DIGITS_OK ||
            digits_run(a, 1, in, in_bytes, 1, out, out_bytes) != DIGITS_OK ||
            digits_q_run(b, 1, in, in_bytes, 1, out, out_bytes) != DIGITS_Q_OK) {
            fprintf(stderr, "error: run failed in round %d\n", r);
            return 1;
        }
        digits_destroy(a);
        digits_q_destroy(b);
        if (r == 20) after_warmup = rss_kb();
    }
    long end = rss_kb();
    printf("create/destroy: %d rounds of 2 models, RSS %ld kB after 20 rounds, %ld kB after %d\n", ROUNDS, after_warmup, end, ROUNDS);
    /* Caches (oneDNN's primitive cache, ASan's quarantine) settle early; a leak grows with the rounds. */
    if (check_rss && end - after_warmup > 16 * 1024) {
        fprintf(stderr, "error: RSS grew by %ld kB over %d rounds\n", end - after_warmup, ROUNDS - 20);
        return 1;
    }
    return 0;
}
