/* RNNControl's runtime: voices and the per-sample loop (PyTorch's GRU, the numba sampler's draw). */
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "model.h"

/* The hot loop is compiled for plain x86-64 and again for AVX2 and AVX-512 machines; the loader picks the clone
 * for the CPU it runs on, so one portable build is vectorised wherever it lands. Elsewhere (ARM, clang, `make
 * native`) the compiler's own target flags decide. */
#if defined(__GNUC__) && !defined(__clang__) && defined(__x86_64__) && defined(__linux__) && !defined(RC_NATIVE)
#define RC_HOT __attribute__((target_clones("default", "arch=x86-64-v3", "arch=x86-64-v4")))
#else
#define RC_HOT
#endif
/* The loop's helpers are inlined into each clone, so each is compiled for that clone's instructions. */
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

/* out = vector @ weight_t + bias, along the outputs, eight inputs a pass (as the numba sampler: fewer loads and
 * stores of out, and no sums across vector lanes). */
RC_INLINE void affine(const float *restrict weight_t, const float *restrict bias, const float *restrict vector,
                          int inputs, int outputs, float *restrict out) {
    memcpy(out, bias, sizeof(float) * (size_t)outputs);
    int k = 0;
    for (; k + 8 <= inputs; k += 8) {
        const float *w = weight_t + (size_t)k * outputs;
        float v0 = vector[k], v1 = vector[k + 1], v2 = vector[k + 2], v3 = vector[k + 3];
        float v4 = vector[k + 4], v5 = vector[k + 5], v6 = vector[k + 6], v7 = vector[k + 7];
        for (int m = 0; m < outputs; m++)
            out[m] += w[m] * v0 + w[outputs + m] * v1 + w[2 * outputs + m] * v2 + w[3 * outputs + m] * v3 +
                      w[4 * outputs + m] * v4 + w[5 * outputs + m] * v5 + w[6 * outputs + m] * v6 +
                      w[7 * outputs + m] * v7;
    }
    for (; k < inputs; k++) {
        const float *w = weight_t + (size_t)k * outputs;
        float value = vector[k];
        for (int m = 0; m < outputs; m++) out[m] += w[m] * value;
    }
}

/* tanh(x) within 3.3e-7 in float32: the numba sampler's rational fit, plain arithmetic so the gate loops vectorise. */
RC_INLINE float fast_tanh(float x) {
    x = x < -9.0f ? -9.0f : x > 9.0f ? 9.0f : x;
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

/* Advances the hidden state by one step of input x (1 + C) and writes the logits. */
RC_INLINE void forward(rc_voice *v, const float *x) {
    const rc_model *m = v->model;
    int H = m->H, G = 3 * H;
    for (int k = 0; k < m->L; k++) {
        const rc_layer *layer = &m->layers[k];
        const float *input = x;
        if (k > 0 && m->cond_every_layer) {
            memcpy(v->layer_in, v->hidden + (size_t)(k - 1) * H, sizeof(float) * (size_t)H);
            memcpy(v->layer_in + H, x + 1, sizeof(float) * (size_t)m->C);
            input = v->layer_in;
        } else if (k > 0) {
            input = v->hidden + (size_t)(k - 1) * H;
        }
        affine(layer->w_ih_t, layer->b_ih, input, layer->inputs, G, v->gi);
        affine(layer->w_hh_t, layer->b_hh, v->hidden + (size_t)k * H, H, G, v->gh);
        gru_update(v->gi, v->gh, v->hidden + (size_t)k * H, H);
    }
    affine(m->out_w_t, m->out_b, v->hidden + (size_t)(m->L - 1) * H, H, m->N, v->logits);
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

/* The hot loop: cond is n rows of P values, or NULL to hold the parameters in v->x. */
RC_HOT static void render(rc_voice *v, const float *cond, int32_t *codes, float *audio, int n) {
    const rc_model *m = v->model;
    for (int t = 0; t < n; t++) {
        v->x[0] = m->input_values[v->previous];
        if (cond) memcpy(v->x + 1, cond + (size_t)t * m->P, sizeof(float) * (size_t)m->P);
        if (m->K) {
            rc_reference_at(m->K, v->phase, v->x + 1 + m->P);
            v->phase += rc_reference_increment(m, v->x[1 + m->pitch]);
        }
        forward(v, v->x);
        v->previous = choose(v);
        if (codes) codes[t] = v->previous;
        if (audio) audio[t] = m->decoded[v->previous];
    }
}

RC_HOT static void step(rc_voice *v, const float *x) { forward(v, x); }

void rc_voice_render(rc_voice *v, float *audio, int n) { render(v, NULL, NULL, audio, n); }

void rc_voice_render_conditioned(rc_voice *v, const float *cond, int32_t *codes, float *audio, int n) {
    render(v, cond, codes, audio, n);
}

const float *rc_voice_step(rc_voice *v, const float *x) {
    step(v, x);
    return v->logits;
}
