/* The draw of the per-sample loop (loop.c), as the numba sampler draws: splitmix64 uniforms, the n largest logits,
 * softmax with a temperature. Inlined into each kernel. */
#ifndef RNNCONTROL_DRAW_H
#define RNNCONTROL_DRAW_H

#include <math.h>
#include <stdint.h>

#include "products.h" /* RC_INLINE */

/* Returns a float in [0, 1) from the splitmix64 stream, advancing it. */
RC_INLINE double uniform(uint64_t *state) {
    *state += 0x9E3779B97F4A7C15ULL;
    uint64_t z = *state;
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
    z ^= z >> 31;
    return (double)(z >> 11) * (1.0 / 9007199254740992.0);
}

/* Inserts value (class i) among the `count` largest so far, largest first, when it beats the last of them; after
 * any equal value, so that ties keep the lower class first. */
RC_INLINE void insert(float value, int i, int count, float *top_value, int *top_index) {
    if (!(value > top_value[count - 1])) return;
    int j = count - 1;
    for (; j > 0 && top_value[j - 1] < value; j--) {
        top_value[j] = top_value[j - 1];
        top_index[j] = top_index[j - 1];
    }
    top_value[j] = value;
    top_index[j] = i;
}

/* Writes the `count` largest logits, largest first, and their classes; ties keep the lower class first (NaN is
 * never taken). A first pass keeps the largest of every eighth class (eight disjoint sets): the count-th largest of
 * those eight is at most the count-th largest logit, so the classes below it are passed over 16 at a time. Both
 * passes are vector operations. */
RC_INLINE void top(const float *logits, int n, int count, float *top_value, int *top_index) {
    float part[8], floor = -INFINITY;
    for (int l = 0; l < 8; l++) part[l] = -INFINITY;
    for (int i = 0; i + 8 <= n; i += 8)
        for (int l = 0; l < 8; l++) part[l] = logits[i + l] > part[l] ? logits[i + l] : part[l];
    for (int j = 0; j < count; j++) top_value[j] = -INFINITY;
    if (count <= 8) {
        for (int l = 0; l < 8; l++) insert(part[l], l, count, top_value, top_index);
        floor = top_value[count - 1];
        for (int j = 0; j < count; j++) top_value[j] = -INFINITY;
    }
    int i = 0;
    for (; i + 16 <= n; i += 16) {
        int reach = 0; /* a sum of comparisons, which vectorises */
        for (int l = 0; l < 16; l++) reach += logits[i + l] >= floor;
        if (reach)
            for (int l = 0; l < 16; l++) insert(logits[i + l], i + l, count, top_value, top_index);
    }
    for (; i < n; i++) insert(logits[i], i, count, top_value, top_index);
}

/* Returns the class drawn with probabilities softmax(values * inv_temperature), overwriting values. */
RC_INLINE int draw(float *values, const int *indices, int count, double inv_temperature, double u) {
    float largest = values[0];
    for (int i = 1; i < count; i++) largest = values[i] > largest ? values[i] : largest;
    double total = 0.0;
    for (int i = 0; i < count; i++) {
        values[i] = (float)exp((double)(values[i] - largest) * inv_temperature);
        total += values[i];
    }
    double target = u * total;
    for (int i = 0; i < count - 1; i++) {
        target -= values[i];
        if (target < 0.0) return indices ? indices[i] : i;
    }
    return indices ? indices[count - 1] : count - 1;
}

#endif
