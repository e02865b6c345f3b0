/* RNNControl's runtime: voices, their settings, and rendering them in passes of the per-sample loop (loop.c). */
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "voice.h"

rc_voice *rc_voice_new(const rc_model *m, uint64_t seed) {
    size_t G = 3 * (size_t)m->H;
    size_t floats = (1 + (size_t)m->C) + ((size_t)m->H + m->C) + (size_t)m->L * m->H + 2 * G + 2 * (size_t)m->N;
    /* The pass memory last, on a 64-byte line: the lanes layout's rows then start on whole vectors. */
    size_t before_pass = sizeof(rc_voice) + floats * sizeof(float) + (size_t)m->N * sizeof(int);
    rc_voice *v = calloc(1, before_pass + 64 + rc_pass_floats(m) * sizeof(float));
    if (!v) return NULL;
    float *at = (float *)(v + 1);
    v->model = m;
    v->pass = (float *)(((uintptr_t)v + before_pass + 63) & ~(uintptr_t)63);
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

/* ---------------------------------------------------------------- rendering */

static int one_model(rc_voice *const *voices, int count) {
    for (int b = 1; b < count; b++)
        if (voices[b]->model != voices[0]->model) return 0;
    return count >= 0;
}

int rc_voices_render(rc_voice *const *voices, int count, const float *cond, int32_t *codes, float *audio, int n) {
    if (!one_model(voices, count)) return -1;
    for (int b = 0; b < count; b += RC_PASS) {
        int batch = count - b < RC_PASS ? count - b : RC_PASS;
        size_t skip = (size_t)b * n;
        rc_loop_render(voices + b, batch, cond ? cond + skip * voices[0]->model->P : NULL, codes ? codes + skip : NULL,
                        audio ? audio + skip : NULL, n);
    }
    return 0;
}

int rc_voices_step(rc_voice *const *voices, int count, const float *x, float *logits) {
    if (!one_model(voices, count)) return -1;
    for (int b = 0; b < count; b += RC_PASS) {
        const rc_model *m = voices[0]->model;
        int batch = count - b < RC_PASS ? count - b : RC_PASS;
        rc_loop_step(voices + b, batch, x + (size_t)b * (1 + m->C), logits ? logits + (size_t)b * m->N : NULL);
    }
    return 0;
}

void rc_voice_render(rc_voice *v, float *audio, int n) { rc_loop_render(&v, 1, NULL, NULL, audio, n); }

void rc_voice_render_conditioned(rc_voice *v, const float *cond, int32_t *codes, float *audio, int n) {
    rc_loop_render(&v, 1, cond, codes, audio, n);
}

const float *rc_voice_step(rc_voice *v, const float *x) {
    rc_loop_step(&v, 1, x, NULL);
    return v->logits;
}
