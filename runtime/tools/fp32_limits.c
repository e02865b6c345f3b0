/* The two limits one voice's fp32 loop meets on this CPU, for bench/bench_fp32_limits.py: the multiply-add rate
 * of independent fused multiply-adds in registers (the arithmetic limit), and the rate of multiply-adds that stream
 * their weights, WEIGHTS floats one after another, from wherever they fit (the model's 245 KB: the L2 cache).
 * Usage: fp32_limits WEIGHTS SECONDS; prints "arithmetic G" and "stream G" (10^9 multiply-adds a second, process time).
 * Built for this machine's own instructions (make -C runtime limits). */
#define _POSIX_C_SOURCE 199309L /* clock_gettime */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

typedef float vec8 __attribute__((vector_size(32)));

static double cpu_seconds(void) {
    struct timespec t;
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &t);
    return (double)t.tv_sec + 1e-9 * (double)t.tv_nsec;
}

/* Twelve chains of vector multiply-adds, each waiting only on itself: enough to keep every FMA unit busy. */
__attribute__((noinline)) static float peak(long rounds) {
    vec8 acc[12], a = (vec8){0} + 0.999f, b = (vec8){0} + 1e-3f;
    for (int i = 0; i < 12; i++) acc[i] = (vec8){0} + (float)i;
    for (long r = 0; r < rounds; r++)
        for (int i = 0; i < 12; i++) acc[i] = acc[i] * a + b;
    float sum = 0;
    for (int i = 0; i < 12; i++) sum += acc[i][0];
    return sum;
}

/* One pass over the weights, eight vectors of sums, each weight multiplied by one input: one voice's pattern. */
__attribute__((noinline)) static float stream(const float *weights, long count, float x) {
    vec8 acc[8] = {0}, in = (vec8){0} + x, w;
    for (long i = 0; i + 64 <= count; i += 64)
        for (int j = 0; j < 8; j++) {
            memcpy(&w, weights + i + 8 * j, sizeof w);
            acc[j] += w * in;
        }
    float sum = 0;
    for (int j = 0; j < 8; j++) sum += acc[j][0];
    return sum;
}

int main(int argc, char **argv) {
    long count = argc > 1 ? atol(argv[1]) : 0;
    double seconds = argc > 2 ? atof(argv[2]) : 0;
    if (count < 64 || !(seconds > 0)) {
        fprintf(stderr, "usage: fp32_limits WEIGHTS SECONDS (WEIGHTS >= 64)\n");
        return 2;
    }
    count -= count % 64;
    float *weights = malloc(sizeof(float) * (size_t)count), sink = 0;
    if (!weights) return 1;
    for (long i = 0; i < count; i++) weights[i] = 1e-3f * (float)(i % 7);
    long rounds = 1000000, passes = 0;
    double start = cpu_seconds();
    sink += peak(rounds);
    double peak_rate = 96.0 * (double)rounds / (cpu_seconds() - start);
    start = cpu_seconds();
    while (cpu_seconds() - start < seconds) /* the clock is a system call: read it every thousand passes */
        for (int i = 0; i < 1000; i++) sink += stream(weights, count, (float)passes++);
    double stream_rate = (double)count * (double)passes / (cpu_seconds() - start);
    printf("arithmetic %.2f\nstream %.2f\n", peak_rate * 1e-9, stream_rate * 1e-9);
    free(weights);
    return sink == 12345.0f; /* keeps the sums alive */
}
