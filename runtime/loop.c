/* The per-sample loop: PyTorch's GRU in float32 and the numba sampler's draw, for up to RC_PASS voices of one model
 * at a time, in one of two layouts (products.h): voice by voice for a few voices, voices across the vectors' lanes
 * for more. A voice plays the same in either, alone or beside others: its sums run in the same order. The loop is
 * compiled once for each instruction set (the kernels, at the end); the best one this CPU runs is picked at load. */
#include <math.h>
#include <stdint.h>
#include <string.h>

#include "draw.h"
#include "products.h"
#include "voice.h"

/* The largest top_n whose draw the lanes layout finds for all its voices at once (top_lanes); larger ones are found
 * voice by voice. */
#define LANES_TOP 8

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

/* PyTorch's GRU update from gi = W_i x + b_i and gh = W_h h + b_h, gates r, z, n, each `size` values (a layer of
 * one voice, or of a pass's columns in the lanes layout: elementwise either way); overwrites h. */
RC_INLINE void gru_update(float *restrict gi, const float *restrict gh, float *restrict h, int size) {
    for (int j = 0; j < 2 * size; j++) gi[j] = 0.5f + 0.5f * fast_tanh(0.5f * (gi[j] + gh[j])); /* sigmoid */
    for (int j = 0; j < size; j++) {
        float n = fast_tanh(gi[2 * size + j] + gi[j] * gh[2 * size + j]);
        h[j] = n + gi[size + j] * (h[j] - n);
    }
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

/* The network's input for the voice's next sample in v->x: its last class, cond's row (when not NULL), the reference
 * at its phase, which then advances. */
RC_INLINE void next_input(rc_voice *v, const float *cond_row) {
    const rc_model *m = v->model;
    v->x[0] = m->input_values[v->previous];
    if (cond_row) memcpy(v->x + 1, cond_row, sizeof(float) * (size_t)m->P);
    if (m->K) {
        rc_reference_at(m->K, v->phase, v->x + 1 + m->P);
        v->phase += rc_reference_increment(m, v->x[1 + m->pitch]);
    }
}

/* Draws the voice's next class from its logits and writes it (codes) and its audio, each when not NULL. */
RC_INLINE void emit(rc_voice *v, int32_t *code, float *audio) {
    v->previous = choose(v);
    if (code) *code = v->previous;
    if (audio) *audio = v->model->decoded[v->previous];
}

/* ---------------------------------------------------------------- voice by voice */

/* Advances the hidden states of `count` voices by one step of inputs[b] (1 + C each) and writes their logits. */
RC_INLINE void forward(rc_voice *const *voices, int count, const float *const *inputs, int lanes) {
    const rc_model *m = voices[0]->model;
    int H = m->H, G = 3 * H;
    const float *in[RC_PASS], *state[RC_PASS];
    float *gi[RC_PASS], *gh[RC_PASS], *logits[RC_PASS];
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
        affine(layer->w_ih_c, layer->b_ih, in, gi, layer->inputs, G, count, lanes);
        affine(layer->w_hh_c, layer->b_hh, state, gh, H, G, count, lanes);
        for (int b = 0; b < count; b++) gru_update(gi[b], gh[b], voices[b]->hidden + (size_t)k * H, H);
    }
    for (int b = 0; b < count; b++) state[b] = voices[b]->hidden + (size_t)(m->L - 1) * H;
    affine(m->out_w_c, m->out_b, state, logits, H, m->N, count, lanes);
}

/* cond is voice b's n rows of P values at cond + b n P, or NULL to hold the parameters in each voice's x; codes and
 * audio take voice b's n samples at b n. */
RC_INLINE void render(rc_voice *const *voices, int count, const float *cond, int32_t *codes, float *audio, int n,
                      int lanes) {
    const rc_model *m = voices[0]->model;
    const float *inputs[RC_PASS];
    for (int b = 0; b < count; b++) inputs[b] = voices[b]->x;
    for (int t = 0; t < n; t++) {
        for (int b = 0; b < count; b++) next_input(voices[b], cond ? cond + ((size_t)b * n + t) * m->P : NULL);
        forward(voices, count, inputs, lanes);
        for (int b = 0; b < count; b++) {
            size_t at = (size_t)b * n + t;
            emit(voices[b], codes ? codes + at : NULL, audio ? audio + at : NULL);
        }
    }
}

/* Teacher forcing: voice b's input at x + b (1 + C), its logits (when wanted) at logits + b N. */
RC_INLINE void step(rc_voice *const *voices, int count, const float *x, float *logits, int lanes) {
    const rc_model *m = voices[0]->model;
    const float *inputs[RC_PASS];
    for (int b = 0; b < count; b++) inputs[b] = x + (size_t)b * (1 + m->C);
    forward(voices, count, inputs, lanes);
    for (int b = 0; logits && b < count; b++)
        memcpy(logits + (size_t)b * m->N, voices[b]->logits, sizeof(float) * (size_t)m->N);
}

/* ---------------------------------------------------------------- voices across lanes */

/* A pass's matrices in the lanes layout, in its first voice's `pass` memory: row r holds value r of each voice,
 * in `stride` columns (the voices, then zeros up to a whole vector). */
typedef struct {
    int stride;
    float *x;        /* (1 + C, stride): the input */
    float *layer_in; /* (H + C, stride): [h_{k-1}, conditioning] for models that feed it to every layer */
    float *hidden;   /* (L, H, stride) */
    float *gi, *gh;  /* (3H, stride) */
    float *logits;   /* (N, stride) */
    float *top_value; /* (LANES_TOP, stride): each voice's largest logits so far, largest first */
    int *top_index;   /* (LANES_TOP, stride): their classes */
} lanes_memory;

size_t rc_pass_floats(const rc_model *m) {
    return (size_t)RC_PASS * ((1 + (size_t)m->C) + ((size_t)m->H + m->C) + (size_t)m->L * m->H + 6 * (size_t)m->H +
                              (size_t)m->N + 2 * LANES_TOP);
}

static lanes_memory lanes_memory_of(rc_voice *leader, int count, int lanes) {
    const rc_model *m = leader->model;
    lanes_memory l;
    l.stride = (count + lanes - 1) / lanes * lanes;
    size_t S = (size_t)l.stride;
    l.x = leader->pass;
    l.layer_in = l.x + (1 + (size_t)m->C) * S;
    l.hidden = l.layer_in + ((size_t)m->H + m->C) * S;
    l.gi = l.hidden + (size_t)m->L * m->H * S;
    l.gh = l.gi + 3 * (size_t)m->H * S;
    l.logits = l.gh + 3 * (size_t)m->H * S;
    l.top_value = l.logits + (size_t)m->N * S;
    l.top_index = (int *)(l.top_value + LANES_TOP * S);
    return l;
}

/* Copies the voices' hidden states into the pass's columns (zeros beyond them), or back when `back`. */
static void move_hidden(rc_voice *const *voices, int count, const lanes_memory *l, int back) {
    const rc_model *m = voices[0]->model;
    size_t rows = (size_t)m->L * m->H;
    for (size_t r = 0; r < rows; r++) {
        float *row = l->hidden + r * l->stride;
        for (int b = 0; b < count; b++)
            if (back)
                voices[b]->hidden[r] = row[b];
            else
                row[b] = voices[b]->hidden[r];
        if (!back)
            for (int b = count; b < l->stride; b++) row[b] = 0.0f;
    }
}

/* Puts each voice's input vector (1 + C) in its column of the pass's input. */
static void gather_inputs(rc_voice *const *voices, int count, const lanes_memory *l, const float *const *inputs) {
    const rc_model *m = voices[0]->model;
    for (int r = 0; r <= m->C; r++) {
        float *row = l->x + (size_t)r * l->stride;
        for (int b = 0; b < count; b++) row[b] = inputs[b][r];
        for (int b = count; b < l->stride; b++) row[b] = 0.0f;
    }
}

/* Copies each voice's column of the pass's logits into its own logits. */
static void scatter_logits(rc_voice *const *voices, int count, const lanes_memory *l) {
    const rc_model *m = voices[0]->model;
    for (int i = 0; i < m->N; i++) {
        const float *row = l->logits + (size_t)i * l->stride;
        for (int b = 0; b < count; b++) voices[b]->logits[i] = row[b];
    }
}

/* Each column's floor, in bound: the top_n-th largest (1..8) of the largest logits of its eight sets of classes
 * i, i + 8, ... Each is one of the column's logits, from disjoint sets, so the floor is at most its top_n-th largest
 * logit: a logit below it never enters the column's top n (as in draw.h's top). */
RC_INLINE void floors(const float *logits, int n, int S, int top_n, float *bound) {
    float part[8 * RC_PASS]; /* part[l S + c]: the largest of column c's classes l, l + 8, ... */
    for (int c = 0; c < 8 * S; c++) part[c] = -INFINITY;
    for (int i = 0; i + 8 <= n; i += 8) {
        const float *rows = logits + (size_t)i * S; /* rows i..i + 7 */
        for (int c = 0; c < 8 * S; c++) part[c] = rows[c] > part[c] ? rows[c] : part[c];
    }
    for (int c = 0; c < S; c++) {
        float largest[8];
        int sets[8];
        for (int j = 0; j < top_n; j++) largest[j] = -INFINITY;
        for (int l = 0; l < 8; l++) insert(part[l * S + c], l, top_n, largest, sets);
        bound[c] = largest[top_n - 1];
    }
}

/* The top_n (1..LANES_TOP) largest logits of every column and their classes, largest first, ties keeping the lower
 * class first: top() for all the pass's voices at once, each row of logits a few vector operations. A new value
 * enters at row j where the value held there is smaller, taking j - 1's place when that one is smaller too. Rows
 * where no column's logit reaches its floor are passed over: with logits peaked around a class, most are. */
RC_INLINE void top_lanes(const lanes_memory *l, int n, int top_n) {
    int S = l->stride;
    float *value = l->top_value, *last = value + (size_t)(top_n - 1) * S, bound[RC_PASS];
    int *index = l->top_index;
    floors(l->logits, n, S, top_n, bound);
    for (int c = 0; c < top_n * S; c++) value[c] = -INFINITY;
    for (int i = 0; i < n; i++) {
        const float *row = l->logits + (size_t)i * S;
        int beats = 0; /* one vector comparison a row, to skip it */
        for (int c = 0; c < S; c++) beats |= (row[c] >= bound[c]) & (row[c] > last[c]);
        if (!beats) continue;
        for (int j = top_n - 1; j >= 0; j--) {
            float *held = value + (size_t)j * S;
            int *held_index = index + (size_t)j * S;
            for (int c = 0; c < S; c++) {
                int enters = held[c] < row[c], above = j > 0 && held[c - S] < row[c];
                float moved = above ? held[c - S] : row[c];
                int moved_index = above ? held_index[c - S] : i;
                held_index[c] = enters ? moved_index : held_index[c];
                held[c] = enters ? moved : held[c];
            }
        }
    }
}

/* Draws each voice's next class from the pass's logits: through top_lanes where the voices share a top_n it handles,
 * else from each voice's own copy of its column. */
RC_INLINE void choose_lanes(rc_voice *const *voices, int count, const lanes_memory *l) {
    const rc_model *m = voices[0]->model;
    int top_n = voices[0]->top_n, shared = top_n >= 1 && top_n <= LANES_TOP && top_n < m->N;
    for (int b = 1; b < count; b++) shared &= voices[b]->top_n == top_n;
    if (!shared) {
        scatter_logits(voices, count, l);
        for (int b = 0; b < count; b++) voices[b]->previous = choose(voices[b]);
        return;
    }
    top_lanes(l, m->N, top_n);
    for (int b = 0; b < count; b++) {
        rc_voice *v = voices[b];
        if (top_n == 1) { /* greedy: no draw, the stream does not move */
            v->previous = l->top_index[b];
            continue;
        }
        for (int j = 0; j < top_n; j++) {
            v->top_value[j] = l->top_value[(size_t)j * l->stride + b];
            v->top_index[j] = l->top_index[(size_t)j * l->stride + b];
        }
        v->previous = draw(v->top_value, v->top_index, top_n, v->inv_temperature, uniform(&v->state));
    }
}

/* forward() in the lanes layout: advances the pass's hidden states by one step of its input, writes its logits.
 * Panels `height` rows high keep their sums in the kernel's registers. */
RC_INLINE void forward_lanes(const rc_model *m, const lanes_memory *l, int lanes, int height) {
    int H = m->H, G = 3 * H, S = l->stride;
    for (int k = 0; k < m->L; k++) {
        const rc_layer *layer = &m->layers[k];
        float *state = l->hidden + (size_t)k * H * S;
        const float *in = k == 0 ? l->x : state - (size_t)H * S;
        if (k > 0 && m->cond_every_layer) {
            memcpy(l->layer_in, in, sizeof(float) * (size_t)H * S);
            memcpy(l->layer_in + (size_t)H * S, l->x + S, sizeof(float) * (size_t)m->C * S);
            in = l->layer_in;
        }
        affine_lanes(layer->w_ih_t, layer->b_ih, in, l->gi, layer->inputs, G, S, lanes, height);
        affine_lanes(layer->w_hh_t, layer->b_hh, state, l->gh, H, G, S, lanes, height);
        gru_update(l->gi, l->gh, state, H * S);
    }
    affine_lanes(m->out_w_t, m->out_b, l->hidden + (size_t)(m->L - 1) * H * S, l->logits, H, m->N, S, lanes, height);
}

RC_INLINE void render_lanes(rc_voice *const *voices, int count, const float *cond, int32_t *codes, float *audio,
                            int n, int lanes, int height) {
    const rc_model *m = voices[0]->model;
    lanes_memory l = lanes_memory_of(voices[0], count, lanes);
    const float *inputs[RC_PASS];
    for (int b = 0; b < count; b++) inputs[b] = voices[b]->x;
    move_hidden(voices, count, &l, 0);
    for (int t = 0; t < n; t++) {
        for (int b = 0; b < count; b++) next_input(voices[b], cond ? cond + ((size_t)b * n + t) * m->P : NULL);
        gather_inputs(voices, count, &l, inputs);
        forward_lanes(m, &l, lanes, height);
        choose_lanes(voices, count, &l);
        for (int b = 0; b < count; b++) {
            size_t at = (size_t)b * n + t;
            if (codes) codes[at] = voices[b]->previous;
            if (audio) audio[at] = m->decoded[voices[b]->previous];
        }
    }
    move_hidden(voices, count, &l, 1);
}

RC_INLINE void step_lanes(rc_voice *const *voices, int count, const float *x, float *logits, int lanes, int height) {
    const rc_model *m = voices[0]->model;
    lanes_memory l = lanes_memory_of(voices[0], count, lanes);
    const float *inputs[RC_PASS];
    for (int b = 0; b < count; b++) inputs[b] = x + (size_t)b * (1 + m->C);
    move_hidden(voices, count, &l, 0);
    gather_inputs(voices, count, &l, inputs);
    forward_lanes(m, &l, lanes, height);
    move_hidden(voices, count, &l, 1);
    scatter_logits(voices, count, &l);
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

/* A kernel: vectors of `lanes` floats, panels `height` rows high (two vectors of voices each, as many sums as its
 * registers hold). */
#define RC_KERNEL(name, lanes, height, ...)                                                                        \
    __VA_ARGS__ static void render_##name(rc_voice *const *voices, int count, const float *cond, int32_t *codes,  \
                                          float *audio, int n) {                                                  \
        if (count > lanes) /* the lanes layout gains once its panels are two vectors wide */                     \
            render_lanes(voices, count, cond, codes, audio, n, lanes, height);                                    \
        else                                                                                                      \
            render(voices, count, cond, codes, audio, n, lanes);                                                  \
    }                                                                                                             \
    __VA_ARGS__ static void step_##name(rc_voice *const *voices, int count, const float *x, float *logits) {      \
        if (count > lanes)                                                                                        \
            step_lanes(voices, count, x, logits, lanes, height);                                                  \
        else                                                                                                      \
            step(voices, count, x, logits, lanes);                                                                \
    }

RC_KERNEL(portable, 4, 6)      /* 16 SSE registers */
#ifdef RC_DISPATCH
RC_KERNEL(avx2, 8, 6, __attribute__((target("arch=x86-64-v3"))))    /* 16 AVX registers */
RC_KERNEL(avx512, 8, 12, __attribute__((target("arch=x86-64-v4")))) /* 32: AVX-512 gives AVX's vectors 16 more */
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

void rc_loop_render(rc_voice *const *voices, int count, const float *cond, int32_t *codes, float *audio, int n) {
    current->render(voices, count, cond, codes, audio, n);
}

void rc_loop_step(rc_voice *const *voices, int count, const float *x, float *logits) {
    current->step(voices, count, x, logits);
}
