/* The loaded model, shared by the loader (model_file.c), the per-sample loop (loop.c) and the periodic
 * reference (reference.c); not public. */
#ifndef RNNCONTROL_MODEL_H
#define RNNCONTROL_MODEL_H

#include "rnncontrol.h"

#define MAX_NAME 64

/* Each matrix is held twice, transposed so the inner loops run along its outputs: whole rows (`_t`, inputs x
 * outputs), where the voices-across-lanes layout reads a few outputs of one input at a time; and in chunks (`_c`)
 * of RC_CHUNK outputs, each chunk's rows one after another, so that the voice-by-voice layout, which takes a chunk
 * through every input, reads the weights in one stream (loop.c, products.h). */
#define RC_CHUNK 64
/* Floats after each whole-rows matrix, so that a panel may read a whole vector past its last weight (products.h). */
#define RC_PAD 16

typedef struct {
    int inputs;
    float *w_ih_t, *w_ih_c; /* (inputs, 3H) */
    float *b_ih;            /* (3H) */
    float *w_hh_t, *w_hh_c; /* (H, 3H) */
    float *b_hh;            /* (3H) */
} rc_layer;

struct rc_model {
    int C;            /* the network's conditioning: P named parameters, then 2K reference channels */
    int P, K;         /* named parameters; harmonics of the periodic reference (0: none) */
    int pitch;        /* the parameter whose frequency the reference follows, -1 without a reference */
    int pitch_in_hz;  /* its units: 1 Hz, 0 MIDI note numbers */
    double pitch_low, pitch_high; /* its range in double, as Python computes the reference's frequency */
    int H, L, N, cond_every_layer, encode, sample_rate;
    char (*names)[MAX_NAME];
    float *low, *high; /* (P): one allocation at low */
    rc_layer *layers;
    float *out_w_t, *out_w_c; /* (H, N) */
    float *out_b;        /* (N) */
    float *input_values; /* (N): the network's audio input for each class */
    float *decoded;      /* (N): each class as audio in [-1, 1] */
    float *weights;      /* the one allocation behind the layers' arrays and the four above */
};

/* The periodic reference (reference.c): the phase step in radians for the pitch parameter's value mapped to
 * [0, 1], and the 2K channels at phase φ. */
double rc_reference_increment(const rc_model *model, float pitch);
void rc_reference_at(int harmonics, double phase, float *channels);

#endif
