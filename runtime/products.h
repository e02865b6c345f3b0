/* The matrix products of the per-sample loop (loop.c), inlined into each kernel so that each is compiled for that
 * kernel's instructions. Both compute out = x @ weight_t + bias, weight_t (inputs, outputs) row-major, each output's
 * sum starting from its bias and adding the inputs in order, so a voice's sums round alike in either layout:
 * - voice by voice (`affine`): each voice's vectors apart, the outputs across a vector's lanes; for a few voices;
 * - voices across lanes (`affine_lanes`): row r of a matrix holds value r of every voice of a pass, so each weight
 *   is broadcast once and multiplies a whole vector of voices; for many voices. */
#ifndef RNNCONTROL_PRODUCTS_H
#define RNNCONTROL_PRODUCTS_H

#include <string.h>

#include "model.h" /* RC_CHUNK */

#if defined(__GNUC__)
#define RC_INLINE static inline __attribute__((always_inline))
#else
#define RC_INLINE static inline
#endif

/* outs[b][m0 + m] for m in [from, to) of a chunk (see model.h) whose rows are `stride` floats, for `count` voices,
 * one output at a time: the outputs that do not fill a vector, and all of them where the compiler has no vector
 * types. */
RC_INLINE void columns(const float *chunk, int stride, const float *bias, const float *const *vectors,
                       float *const *outs, int inputs, int m0, int from, int to, int count) {
    for (int b = 0; b < count; b++)
        for (int m = from; m < to; m++) {
            float sum = bias[m0 + m];
            for (int k = 0; k < inputs; k++) sum += chunk[(size_t)k * stride + m] * vectors[b][k];
            outs[b][m0 + m] = sum;
        }
}

/* affine_lanes where the compiler has no vector types: rows m0.. of out, every column, one value at a time. */
RC_INLINE void rows(const float *weight_t, const float *bias, const float *x, float *out, int inputs, int outputs,
                    int m0, int stride) {
    for (int m = m0; m < outputs; m++)
        for (int c = 0; c < stride; c++) {
            float sum = bias[m];
            for (int k = 0; k < inputs; k++) sum += weight_t[(size_t)k * outputs + m] * x[(size_t)k * stride + c];
            out[(size_t)m * stride + c] = sum;
        }
}

#if defined(__GNUC__)
/* Lane i of vector v in every lane of a `vec`: a shuffle with GCC; clang has no shuffle by a computed mask, so there
 * an addition (which turns -0 into +0, harmless to the sums). */
#if defined(__clang__)
#define RC_SPLAT(vec, v, i) ((vec){0} + (v)[i])
#else
#define RC_SPLAT(vec, v, i) __builtin_shuffle(v, (vec##_index){0} + (i))
#endif
/* For vectors of `lanes` floats (each constant once inlined):
 * tile: outs[j][m0..m0 + lanes width) for `voices` voices (voices x width = 8): each weight vector is loaded once for
 *   all of them, and the eight vectors of sums stay in registers through every input.
 * panel: rows m0..m0 + height of out, columns [c0, c0 + lanes wide): each weight is broadcast once for `wide` vectors
 *   of voices, and the height x wide sums stay in registers through every input. The broadcast is a shuffle of a
 *   vector of weights: GCC builds (vec){0} + w with an addition (0 + -0 is +0) and {w, w, ...} from inserts. */
#define RC_VECTOR_PRODUCTS(vec, lanes)                                                                             \
    typedef float vec __attribute__((vector_size(4 * lanes)));                                                     \
    typedef int vec##_index __attribute__((vector_size(4 * lanes)));                                               \
    RC_INLINE void tile##lanes(const float *restrict weights, int stride, const float *restrict bias,              \
                               const float *const *vectors, float *const *outs, int inputs, int m0, int voices,   \
                               int width) {                                                                        \
        vec acc[8], x[4], w; /* voice j's outputs m0 + lanes i.. in acc[j width + i] */                            \
        for (int j = 0; j < voices; j++)                                                                           \
            for (int i = 0; i < width; i++) memcpy(&acc[j * width + i], bias + m0 + lanes * i, sizeof(vec));       \
        for (int k = 0; k < inputs; k++) {                                                                         \
            const float *row = weights + (size_t)k * stride;                                                       \
            for (int j = 0; j < voices; j++) x[j] = RC_SPLAT(vec, ((vec){vectors[j][k]}), 0);                     \
            for (int i = 0; i < width; i++) {                                                                      \
                memcpy(&w, row + lanes * i, sizeof w); /* unaligned */                                             \
                for (int j = 0; j < voices; j++) acc[j * width + i] += w * x[j];                                   \
            }                                                                                                      \
        }                                                                                                          \
        for (int j = 0; j < voices; j++) memcpy(outs[j] + m0, acc + j * width, sizeof(vec) * (size_t)width);      \
    }                                                                                                              \
    RC_INLINE void panel##lanes(const float *restrict weight_t, const float *restrict bias, const float *restrict x, \
                                float *restrict out, int inputs, int outputs, int m0, int c0, int stride,          \
                                int height, int wide) {                                                            \
        vec acc[RC_PANEL_SUMS] = {0}, column[2], w; /* row m0 + i, columns c0 + lanes j.. in acc[i wide + j]; */  \
        /* zeroed before the biases only because GCC 12 otherwise warns of a read it does not make */                \
        for (int i = 0; i < height; i++)                                                                           \
            for (int j = 0; j < wide; j++) acc[i * wide + j] = bias[m0 + i] - (vec){0}; /* b - 0 is b, even -0 */  \
        for (int k = 0; k < inputs; k++) {                                                                         \
            const float *weights = weight_t + (size_t)k * outputs + m0;                                            \
            for (int j = 0; j < wide; j++) memcpy(&column[j], x + (size_t)k * stride + c0 + lanes * j, sizeof(vec)); \
            vec held[RC_PANEL_SUMS / lanes + 1]; /* the panel's weights of input k, whole vectors (RC_PAD) */       \
            for (int i = 0; i < height; i += lanes) memcpy(&held[i / lanes], weights + i, sizeof(vec));            \
            for (int i = 0; i < height; i++) {                                                                     \
                w = RC_SPLAT(vec, held[i / lanes], i % lanes); /* weight i in every lane */                         \
                for (int j = 0; j < wide; j++) acc[i * wide + j] += w * column[j];                                 \
            }                                                                                                      \
        }                                                                                                          \
        for (int i = 0; i < height; i++)                                                                           \
            for (int j = 0; j < wide; j++)                                                                         \
                memcpy(out + (size_t)(m0 + i) * stride + c0 + lanes * j, &acc[i * wide + j], sizeof(vec));         \
    }
#define RC_PANEL_SUMS 24
RC_VECTOR_PRODUCTS(vec4, 4) /* SSE and NEON registers */
RC_VECTOR_PRODUCTS(vec8, 8) /* AVX registers */

/* A chunk's outputs (c0.., `size` of them) for `voices` voices, in tiles of `width` vectors of `lanes` floats, then
 * of one vector, then one at a time. */
RC_INLINE void tiles(const float *chunk, int size, const float *bias, const float *const *vectors,
                     float *const *outs, int inputs, int c0, int voices, int width, int lanes) {
    int m = 0;
    for (; m + lanes * width <= size; m += lanes * width)
        (lanes == 8 ? tile8 : tile4)(chunk + m, size, bias, vectors, outs, inputs, c0 + m, voices, width);
    for (; m + lanes <= size; m += lanes)
        (lanes == 8 ? tile8 : tile4)(chunk + m, size, bias, vectors, outs, inputs, c0 + m, voices, 1);
    columns(chunk, size, bias, vectors, outs, inputs, c0, m, size, voices);
}

/* Columns [c0, c0 + lanes wide) of out, in panels `height` rows high, then one row at a time. */
RC_INLINE void panels(const float *weight_t, const float *bias, const float *x, float *out, int inputs, int outputs,
                      int c0, int stride, int lanes, int height, int wide) {
    int m0 = 0;
    for (; m0 + height <= outputs; m0 += height)
        (lanes == 8 ? panel8 : panel4)(weight_t, bias, x, out, inputs, outputs, m0, c0, stride, height, wide);
    for (; m0 < outputs; m0++)
        (lanes == 8 ? panel8 : panel4)(weight_t, bias, x, out, inputs, outputs, m0, c0, stride, 1, wide);
}
#endif

/* outs[b] = vectors[b] @ W + bias for `count` voices, W in chunks (model.h), in blocks of four voices (then two,
 * then one), with vectors of `lanes` floats (the kernel's). */
RC_INLINE void affine(const float *chunks, const float *bias, const float *const *vectors, float *const *outs,
                      int inputs, int outputs, int count, int lanes) {
    for (int c0 = 0; c0 < outputs; c0 += RC_CHUNK) {
        int size = outputs - c0 < RC_CHUNK ? outputs - c0 : RC_CHUNK;
        const float *chunk = chunks + (size_t)c0 * inputs;
#if defined(__GNUC__)
        int b = 0;
        for (; b + 4 <= count; b += 4) tiles(chunk, size, bias, vectors + b, outs + b, inputs, c0, 4, 2, lanes);
        if (b + 2 <= count) tiles(chunk, size, bias, vectors + b, outs + b, inputs, c0, 2, 4, lanes), b += 2;
        if (b < count) tiles(chunk, size, bias, vectors + b, outs + b, inputs, c0, 1, 8, lanes);
#else
        (void)lanes;
        columns(chunk, size, bias, vectors, outs, inputs, c0, 0, size, count);
#endif
    }
}

/* out = weight_t^T x + bias in the lanes layout: x (inputs, stride), out (outputs, stride), stride a multiple of
 * `lanes`; panels two vectors wide (then one) and `height` rows high (then one row at a time). */
RC_INLINE void affine_lanes(const float *weight_t, const float *bias, const float *x, float *out, int inputs,
                            int outputs, int stride, int lanes, int height) {
#if defined(__GNUC__)
    for (int c0 = 0; c0 < stride; c0 += 2 * lanes)
        if (stride - c0 >= 2 * lanes) /* each call with constants, so that the sums stay in registers */
            panels(weight_t, bias, x, out, inputs, outputs, c0, stride, lanes, height, 2);
        else
            panels(weight_t, bias, x, out, inputs, outputs, c0, stride, lanes, height, 1);
#else
    (void)lanes, (void)height;
    rows(weight_t, bias, x, out, inputs, outputs, 0, stride);
#endif
}

#endif
