/* The loaded model, shared by the loader (model_file.c) and the per-sample loop (rnncontrol.c); not public. */
#ifndef RNNCONTROL_MODEL_H
#define RNNCONTROL_MODEL_H

#include "rnncontrol.h"

#define MAX_NAME 64

typedef struct {
    int inputs;
    float *w_ih_t; /* (inputs, 3H): transposed so the inner loops run along the outputs */
    float *b_ih;   /* (3H) */
    float *w_hh_t; /* (H, 3H) */
    float *b_hh;   /* (3H) */
} rc_layer;

struct rc_model {
    int P, H, L, N, cond_every_layer, encode, sample_rate;
    char (*names)[MAX_NAME];
    float *low, *high;
    rc_layer *layers;
    float *out_w_t;      /* (H, N) */
    float *out_b;        /* (N) */
    float *input_values; /* (N): the network's audio input for each class */
    float *decoded;      /* (N): each class as audio in [-1, 1] */
    float *weights;      /* the one allocation behind every array above */
};

#endif
