/* A voice: its state and its working memory, made by rnncontrol.c and played by the per-sample loop (loop.c); not
 * public. */
#ifndef RNNCONTROL_VOICE_H
#define RNNCONTROL_VOICE_H

#include <stdint.h>

#include "model.h"

/* The most voices one pass of the loop plays in the lanes layout (loop.c); more are played in several passes. */
#define RC_PASS 16

struct rc_voice {
    const rc_model *model;
    float *x;        /* (1 + C): the audio input, the parameters held, the reference's channels */
    float *layer_in; /* (H + C): [h_{k-1}, conditioning] for models that feed it to every layer */
    float *hidden;   /* (L, H) */
    float *gi, *gh;  /* (3H) */
    float *logits;   /* (N) */
    float *top_value;
    int *top_index; /* (N) */
    float *pass;    /* (rc_pass_floats): the lanes layout's memory for a pass this voice leads */
    int previous, top_n;
    double inv_temperature;
    uint64_t state;
    double phase; /* the reference's φ: a float64 running sum of steps, never wrapped, as Python keeps it */
};

/* The floats of a voice's `pass`: RC_PASS columns of every row the lanes layout holds. */
size_t rc_pass_floats(const rc_model *model);

/* The loop on the kernel picked (loop.c), for up to RC_PASS voices of one model: rc_voices_render's and
 * rc_voices_step's arguments. */
void rc_loop_render(rc_voice *const *voices, int count, const float *cond, int32_t *codes, float *audio, int n);
void rc_loop_step(rc_voice *const *voices, int count, const float *x, float *logits);

#endif
