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

/* Writes the `count` largest logits, largest first, and their classes; ties keep the lower class first. */
RC_INLINE void top(const float *logits, int n, int count, float *top_value, int *top_index) {
    for (int j = 0; j < count; j++) top_value[j] = -INFINITY;
    for (int i = 0; i < n; i++) {
        if (i % 16 == 0 && i + 16 <= n) { /* skip 16 classes at once when none beats the last kept: most do not */
            int beats = 0;
            for (int l = 0; l < 16; l++) beats |= logits[i + l] > top_value[count - 1];
            if (!beats) {
                i += 15;
                continue;
            }
        }
        float value = logits[i];
        if (value > top_value[count - 1]) {
            int j = count - 1;
            for (; j > 0 && top_value[j - 1] < value; j--) {
                top_value[j] = top_value[j - 1];
                top_index[j] = top_index[j - 1];
            }
            top_value[j] = value;
            top_index[j] = i;
        }
    }
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
