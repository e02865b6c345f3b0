/* RNNControl's runtime: voices and the per-sample loop (PyTorch's GRU, the numba sampler's draw). */
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "model.h"

/* The loop's helpers are inlined into each kernel (below), so each is compiled for that kernel's instructions. */
#if defined(__GNUC__)
#define RC_INLINE static inline __attribute__((always_inline))
#else
#define RC_INLINE static inline
#endif

struct rc_voice {
    const rc_model *model;
    float *x;        /* (1 + C): the audio input, the parameters held, the reference's channels */
    float *layer_in; /* (H + C): [h_{k-1}, conditioning] for models that feed it to every layer */
    float *hidden;   /* (L, H) */
    float *gi, *gh;  /* (3H) */
    float *logits;   /* (N) */
    float *top_value;
    int *top_index; /* (N) */
    int previous, top_n;
    double inv_temperature;
    uint64_t state;
    double phase; /* the reference's φ: a float64 running sum of steps, never wrapped, as Python keeps it */
};

rc_voice *rc_voice_new(const rc_model *m, uint64_t seed) {
    size_t G = 3 * (size_t)m->H;
    size_t floats = (1 + (size_t)m->C) + ((size_t)m->H + m->C) + (size_t)m->L * m->H + 2 * G + 2 * (size_t)m->N;
    rc_voice *v = calloc(1, sizeof *v + floats * sizeof(float) + (size_t)m->N * sizeof(int));
    if (!v) return NULL;
    float *at = (float *)(v + 1);
    v->model = m;
    v->x = at, at += 1 + m->C;
    v->layer_in = at, at += m->H + m->C;
    v->hidden = at, at += (size_t)m->L * m->H;
    v->gi = at, at += G;
    v->gh = at, at += G;
    v->logits = at, at += m->N;
    v->top_value = at, at += m->N;
    v->top_index = (int *)at;
    for (int i = 0; i < m->P; i++) v->x[1 + i] = 0.5f;
    v->top_n = 3;
    v->inv_temperature = 1.0;
    v->state = seed;
    rc_voice_reset(v);
    return v;
}

void rc_voice_free(rc_voice *v) { free(v); }

void rc_voice_reset(rc_voice *v) {
    memset(v->hidden, 0, sizeof(float) * (size_t)v->model->L * v->model->H);
    v->previous = (int)floor((v->model->N - 1) / 2.0 + 0.5); /* mu-law class of silence */
    v->phase = 0.0;
}

void rc_voice_set_random_state(rc_voice *v, uint64_t state) { v->state = state; }
uint64_t rc_voice_random_state(const rc_voice *v) { return v->state; }
void rc_voice_set_top_n(rc_voice *v, int top_n) { v->top_n = top_n; }

float rc_min_temperature(void) { return RC_MIN_TEMPERATURE; }

int rc_voice_set_temperature(rc_voice *v, float temperature) {
    if (!(temperature >= RC_MIN_TEMPERATURE)) return -1; /* written so that NaN fails too */
    v->inv_temperature = 1.0 / (double)temperature; /* numba's draw gets 1 / temperature in double */
    return 0;
}

int rc_voice_set_parameter(rc_voice *v, const char *name, float value) {
    int i = rc_model_parameter_index(v->model, name);
    if (i < 0) return -1;
    rc_voice_set_normalized(v, i, (value - v->model->low[i]) / (v->model->high[i] - v->model->low[i]));
    return 0;
}

void rc_voice_set_normalized(rc_voice *v, int index, float value) { v->x[1 + index] = value; }
float *rc_voice_hidden(rc_voice *v) { return v->hidden; }
int rc_voice_previous(const rc_voice *v) { return v->previous; }

int rc_voice_set_previous(rc_voice *v, int code) {
    if (code < 0 || code >= v->model->N) return -1;
    v->previous = code;
    return 0;
}

/* ---------------------------------------------------------------- the per-sample loop */

/* Voices advance together, up to RC_BATCH in one pass over the weights; more are rendered in passes of RC_BATCH. */
#define RC_BATCH 32
/* outs[b][m0..outputs) = vectors[b] @ weight_t[:, m0..outputs) + bias for `count` voices, one output at a time: the
 * outputs that do not fill a vector, and all of them where the compiler has no vector types. */
RC_INLINE void columns(const float *weight_t, const float *bias, const float *const *vectors, float *const *outs,
                       int inputs, int outputs, int m0, int count) {
    for (int b = 0; b < count; b++)
        for (int m = m0; m < outputs; m++) {
            float sum = bias[m];
            for (int k = 0; k < inputs; k++) sum += weight_t[(size_t)k * outputs + m] * vectors[b][k];
            outs[b][m] = sum;
        }
}

#if defined(__GNUC__)
/* outs[j][m0..m0+lanes width) = vectors[j] @ weight_t[:, m0..m0+lanes width) + bias for `voices` voices (voices x
 * width = 8, both constants once inlined): each weight is loaded once for all of them, and the eight vectors of
 * sums stay in registers through every input. One definition for each vector size. */
#define RC_TILE(vec, lanes)                                                                                        \
    typedef float vec __attribute__((vector_size(4 * lanes)));                                                     \
    RC_INLINE void tile##lanes(const float *restrict weight_t, const float *restrict bias,                         \
                               const float *const *vectors, float *const *outs, int inputs, int outputs, int m0,  \
                               int voices, int width) {                                                            \
        vec acc[8], x[4], w; /* voice j's outputs m0 + lanes i.. in acc[j width + i] */                            \
        for (int j = 0; j < voices; j++)                                                                           \
            for (int i = 0; i < width; i++) memcpy(&acc[j * width + i], bias + m0 + lanes * i, sizeof(vec));       \
        for (int k = 0; k < inputs; k++) {                                                                         \
            const float *row = weight_t + (size_t)k * outputs + m0;                                                \
            for (int j = 0; j < voices; j++) x[j] = (vec){0} + vectors[j][k]; /* broadcast */                      \
            for (int i = 0; i < width; i++) {                                                                      \
                memcpy(&w, row + lanes * i, sizeof w); /* unaligned */                                             \
                for (int j = 0; j < voices; j++) acc[j * width + i] += w * x[j];                                   \
            }                                                                                                      \
        }                                                                                                          \
        for (int j = 0; j < voices; j++) memcpy(outs[j] + m0, acc + j * width, sizeof(vec) * (size_t)width);      \
    }
RC_TILE(vec4, 4) /* SSE and NEON registers */
RC_TILE(vec8, 8) /* AVX registers */

/* `voices` voices' outputs in tiles of `width` vectors of `lanes` floats, then of one vector, then one at a time. */
RC_INLINE void tiles(const float *weight_t, const float *bias, const float *const *vectors, float *const *outs,
                     int inputs, int outputs, int voices, int width, int lanes) {
    int m0 = 0;
    for (; m0 + lanes * width <= outputs; m0 += lanes * width)
        (lanes == 8 ? tile8 : tile4)(weight_t, bias, vectors, outs, inputs, outputs, m0, voices, width);
    for (; m0 + lanes <= outputs; m0 += lanes)
        (lanes == 8 ? tile8 : tile4)(weight_t, bias, vectors, outs, inputs, outputs, m0, voices, 1);
    columns(weight_t, bias, vectors, outs, inputs, outputs, m0, voices);
}
#endif

/* outs[b] = vectors[b] @ weight_t + bias for `count` voices, in blocks of four voices (then two, then one), with
 * vectors of `lanes` floats (the kernel's). */
RC_INLINE void affine(const float *weight_t, const float *bias, const float *const *vectors, float *const *outs,
                      int inputs, int outputs, int count, int lanes) {
#if defined(__GNUC__)
    int b = 0;
    for (; b + 4 <= count; b += 4) tiles(weight_t, bias, vectors + b, outs + b, inputs, outputs, 4, 2, lanes);
    if (b + 2 <= count) tiles(weight_t, bias, vectors + b, outs + b, inputs, outputs, 2, 4, lanes), b += 2;
    if (b < count) tiles(weight_t, bias, vectors + b, outs + b, inputs, outputs, 1, 8, lanes);
#else
    (void)lanes;
    columns(weight_t, bias, vectors, outs, inputs, outputs, 0, count);
#endif
}

/* tanh(x) within 3.3e-7 in float32: the numba sampler's rational fit, plain arithmetic so the gate loops vectorise. */
RC_INLINE float fast_tanh(float x) {
    x = x < -9.0f ? -9.0f : x; /* two plain selects, which the vectoriser turns into blends */
    x = x > 9.0f ? 9.0f : x;
    float x2 = x * x;
    float p = (((1.3183444200875801e-08f * x2 + 2.0471314991902903e-05f) * x2 + 0.0034865535089146503f) * x2 +
               0.133731751393767f) * x2 + 0.9999999067296377f;
    float q = (((7.702356958630684e-07f * x2 + 0.000327133668967056f) * x2 + 0.02584187514005918f) * x2 +
               0.4670647210915379f) * x2 + 1.0f;
    return x * p / q;
}

/* PyTorch's GRU update from gi = W_i x + b_i and gh = W_h h + b_h, gates r, z, n; overwrites h. */
RC_INLINE void gru_update(float *restrict gi, const float *restrict gh, float *restrict h, int size) {
    for (int j = 0; j < 2 * size; j++) gi[j] = 0.5f + 0.5f * fast_tanh(0.5f * (gi[j] + gh[j])); /* sigmoid */
    for (int j = 0; j < size; j++) {
        float n = fast_tanh(gi[2 * size + j] + gi[j] * gh[2 * size + j]);
        h[j] = n + gi[size + j] * (h[j] - n);
    }
}

/* Advances the hidden states of `count` voices by one step of inputs[b] (1 + C each) and writes their logits. */
RC_INLINE void forward(rc_voice *const *voices, int count, const float *const *inputs, int lanes) {
    const rc_model *m = voices[0]->model;
    int H = m->H, G = 3 * H;
    const float *in[RC_BATCH], *state[RC_BATCH];
    float *gi[RC_BATCH], *gh[RC_BATCH], *logits[RC_BATCH];
    for (int b = 0; b < count; b++) gi[b] = voices[b]->gi, gh[b] = voices[b]->gh, logits[b] = voices[b]->logits;
    for (int k = 0; k < m->L; k++) {
        const rc_layer *layer = &m->layers[k];
        for (int b = 0; b < count; b++) {
            rc_voice *v = voices[b];
            state[b] = v->hidden + (size_t)k * H;
            in[b] = k == 0 ? inputs[b] : state[b] - H;
            if (k > 0 && m->cond_every_layer) {
                memcpy(v->layer_in, state[b] - H, sizeof(float) * (size_t)H);
                memcpy(v->layer_in + H, inputs[b] + 1, sizeof(float) * (size_t)m->C);
                in[b] = v->layer_in;
            }
        }
        affine(layer->w_ih_t, layer->b_ih, in, gi, layer->inputs, G, count, lanes);
        affine(layer->w_hh_t, layer->b_hh, state, gh, H, G, count, lanes);
        for (int b = 0; b < count; b++) gru_update(gi[b], gh[b], voices[b]->hidden + (size_t)k * H, H);
    }
    for (int b = 0; b < count; b++) state[b] = voices[b]->hidden + (size_t)(m->L - 1) * H;
    affine(m->out_w_t, m->out_b, state, logits, H, m->N, count, lanes);
}

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

RC_INLINE int choose(rc_voice *v) {
    const rc_model *m = v->model;
    int count = v->top_n <= 0 || v->top_n >= m->N ? m->N : v->top_n;
    if (count == m->N) {
        memcpy(v->top_value, v->logits, sizeof(float) * (size_t)m->N);
        return draw(v->top_value, NULL, count, v->inv_temperature, uniform(&v->state));
    }
    top(v->logits, m->N, count, v->top_value, v->top_index);
    if (count == 1) return v->top_index[0]; /* greedy: no draw, the stream does not move */
    return draw(v->top_value, v->top_index, count, v->inv_temperature, uniform(&v->state));
}

/* The hot loop for up to RC_BATCH voices: cond is voice b's n rows of P values at cond + b n P, or NULL to hold the
 * parameters in each voice's x; codes and audio take voice b's n samples at b n. */
RC_INLINE void render(rc_voice *const *voices, int count, const float *cond, int32_t *codes, float *audio, int n,
                      int lanes) {
    const rc_model *m = voices[0]->model;
    const float *inputs[RC_BATCH];
    for (int b = 0; b < count; b++) inputs[b] = voices[b]->x;
    for (int t = 0; t < n; t++) {
        for (int b = 0; b < count; b++) {
            rc_voice *v = voices[b];
            v->x[0] = m->input_values[v->previous];
            if (cond) memcpy(v->x + 1, cond + ((size_t)b * n + t) * m->P, sizeof(float) * (size_t)m->P);
            if (m->K) {
                rc_reference_at(m->K, v->phase, v->x + 1 + m->P);
                v->phase += rc_reference_increment(m, v->x[1 + m->pitch]);
            }
        }
        forward(voices, count, inputs, lanes);
        for (int b = 0; b < count; b++) {
            rc_voice *v = voices[b];
            v->previous = choose(v);
            if (codes) codes[(size_t)b * n + t] = v->previous;
            if (audio) audio[(size_t)b * n + t] = m->decoded[v->previous];
        }
    }
}

/* Teacher forcing for up to RC_BATCH voices: voice b's input at x + b (1 + C), its logits (when wanted) at
 * logits + b N. */
RC_INLINE void step(rc_voice *const *voices, int count, const float *x, float *logits, int lanes) {
    const rc_model *m = voices[0]->model;
    const float *inputs[RC_BATCH];
    for (int b = 0; b < count; b++) inputs[b] = x + (size_t)b * (1 + m->C);
    forward(voices, count, inputs, lanes);
    for (int b = 0; logits && b < count; b++)
        memcpy(logits + (size_t)b * m->N, voices[b]->logits, sizeof(float) * (size_t)m->N);
}

/* ---------------------------------------------------------------- kernels: the loop for each instruction set */

/* The loop is compiled for plain x86-64 and again for AVX2 and AVX-512 machines; the best one this CPU runs is
 * picked when the library loads. Elsewhere (ARM, clang, `make native`) the compiler's own target flags decide. */
#if defined(__GNUC__) && !defined(__clang__) && defined(__x86_64__) && !defined(RC_NATIVE)
#define RC_DISPATCH 1
#endif

typedef void render_function(rc_voice *const *, int, const float *, int32_t *, float *, int);
typedef void step_function(rc_voice *const *, int, const float *, float *);

#define RC_KERNEL(name, lanes, ...)                                                                                      \
    __VA_ARGS__ static void render_##name(rc_voice *const *voices, int count, const float *cond, int32_t *codes,  \
                                          float *audio, int n) {                                                  \
        render(voices, count, cond, codes, audio, n, lanes);                                                       \
    }                                                                                                             \
    __VA_ARGS__ static void step_##name(rc_voice *const *voices, int count, const float *x, float *logits) {      \
        step(voices, count, x, logits, lanes);                                                                     \
    }

RC_KERNEL(portable, 4)
#ifdef RC_DISPATCH
RC_KERNEL(avx2, 8, __attribute__((target("arch=x86-64-v3"))))
RC_KERNEL(avx512, 8, __attribute__((target("arch=x86-64-v4"))))
#endif

typedef struct {
    const char *name;
    render_function *render;
    step_function *step;
} kernel;

/* Fastest first; the portable loop runs anywhere. */
static const kernel KERNELS[] = {
#ifdef RC_DISPATCH
    {"avx512", render_avx512, step_avx512},
    {"avx2", render_avx2, step_avx2},
#endif
    {"portable", render_portable, step_portable},
};
#define KERNEL_COUNT (int)(sizeof KERNELS / sizeof KERNELS[0])

static const kernel *current = &KERNELS[KERNEL_COUNT - 1];

static int supported(const kernel *k) {
#ifdef RC_DISPATCH
    __builtin_cpu_init(); /* the CPU model may not be read yet when constructors run */
    if (k->render == render_avx512) return __builtin_cpu_supports("x86-64-v4");
    if (k->render == render_avx2) return __builtin_cpu_supports("x86-64-v3");
#endif
    (void)k;
    return 1;
}

#ifdef RC_DISPATCH
__attribute__((constructor)) static void pick_kernel(void) {
    for (int i = 0; i < KERNEL_COUNT; i++)
        if (supported(&KERNELS[i])) {
            current = &KERNELS[i];
            return;
        }
}
#endif

const char *rc_kernel(void) { return current->name; }

int rc_set_kernel(const char *name) {
    for (int i = 0; i < KERNEL_COUNT; i++)
        if (!strcmp(KERNELS[i].name, name) && supported(&KERNELS[i])) {
            current = &KERNELS[i];
            return 0;
        }
    return -1;
}

/* ---------------------------------------------------------------- rendering */

static int one_model(rc_voice *const *voices, int count) {
    for (int b = 1; b < count; b++)
        if (voices[b]->model != voices[0]->model) return 0;
    return count >= 0;
}

int rc_voices_render(rc_voice *const *voices, int count, const float *cond, int32_t *codes, float *audio, int n) {
    if (!one_model(voices, count)) return -1;
    for (int b = 0; b < count; b += RC_BATCH) {
        int batch = count - b < RC_BATCH ? count - b : RC_BATCH;
        size_t skip = (size_t)b * n;
        current->render(voices + b, batch, cond ? cond + skip * voices[0]->model->P : NULL, codes ? codes + skip : NULL,
                        audio ? audio + skip : NULL, n);
    }
    return 0;
}

int rc_voices_step(rc_voice *const *voices, int count, const float *x, float *logits) {
    if (!one_model(voices, count)) return -1;
    for (int b = 0; b < count; b += RC_BATCH) {
        const rc_model *m = voices[0]->model;
        int batch = count - b < RC_BATCH ? count - b : RC_BATCH;
        current->step(voices + b, batch, x + (size_t)b * (1 + m->C), logits ? logits + (size_t)b * m->N : NULL);
    }
    return 0;
}

void rc_voice_render(rc_voice *v, float *audio, int n) { current->render(&v, 1, NULL, NULL, audio, n); }

void rc_voice_render_conditioned(rc_voice *v, const float *cond, int32_t *codes, float *audio, int n) {
    current->render(&v, 1, cond, codes, audio, n);
}

const float *rc_voice_step(rc_voice *v, const float *x) {
    current->step(&v, 1, x, NULL);
    return v->logits;
}
