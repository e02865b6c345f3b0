/* RNNControl's runtime: plays a model exported by export.py (safetensors, see docs/runtime.md, "Exported model files").
 *
 * Load a model once, make a voice per player, set its parameters, render. A model is read-only once loaded and a
 * voice owns all its working memory, so each voice may render on its own thread; rendering allocates nothing.
 * The arithmetic is PyTorch's GRU in float32 and the draw is the numba sampler's (top-n, temperature, splitmix64).
 *
 * A model may have a periodic reference (model/reference.py): beside its P named parameters the network takes
 * sin kφ, cos kφ for k = 1..K, φ the phase of an oscillator at the pitch parameter's frequency. The runtime makes
 * them: a voice's φ starts at 0 and advances by 2π f0 / sample_rate after each sample it renders. */
#ifndef RNNCONTROL_H
#define RNNCONTROL_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* Version 2 adds the periodic reference; version 1 files load too, as models without one. */
#define RC_FORMAT_VERSION 2
/* The lowest temperature a voice takes, utils/checks.py's MIN_TEMPERATURE: below it the PyTorch sampler's
 * logits / temperature overflow float32, so no backend plays what another refuses. Greedy play is top_n 1. */
#define RC_MIN_TEMPERATURE 1e-3f

typedef struct rc_model rc_model;
typedef struct rc_voice rc_voice;

/* Returns the model in the file at path, or NULL with a one-line reason in error. */
rc_model *rc_model_load(const char *path, char *error, size_t error_size);
/* The same from the file's bytes in memory (copied; the buffer may be freed afterwards). */
rc_model *rc_model_load_buffer(const void *buffer, size_t size, char *error, size_t error_size);
void rc_model_free(rc_model *model);

int rc_model_sample_rate(const rc_model *model);
int rc_model_numtokens(const rc_model *model);
int rc_model_num_layers(const rc_model *model);
int rc_model_hidden_size(const rc_model *model);
/* The named parameters P; the network's conditioning is these and 2K reference channels. */
int rc_model_num_parameters(const rc_model *model);
/* The periodic reference's harmonics K (0: the model has none), and the parameter whose frequency it follows
 * (-1: none). */
int rc_model_reference_harmonics(const rc_model *model);
int rc_model_reference_pitch(const rc_model *model);
const char *rc_model_parameter_name(const rc_model *model, int index);
/* The parameter's value in its own units that maps to 0, and the one that maps to 1. */
void rc_model_parameter_range(const rc_model *model, int index, float *low, float *high);
/* Returns the parameter's index, or -1 when the model has no parameter of that name. */
int rc_model_parameter_index(const rc_model *model, const char *name);
/* The value in parameter `index`'s own units for a note's number (MIDI): the number itself, or its frequency in Hz
 * when `index` is the pitch parameter of a reference in Hz; the rule live play (live/notes.py) uses. */
float rc_model_note_value(const rc_model *model, int index, float note);
/* The value in parameter `index`'s own units for a note's velocity 0..127: low + (high - low) * velocity / 127,
 * the rule live play (live/notes.py) uses for its velocity parameter. */
float rc_model_velocity_value(const rc_model *model, int index, float velocity);

/* A voice starts from silence with a zero hidden state, parameters mid-range, top_n 3, temperature 1 and the
 * random stream state `seed`. Returns NULL when out of memory. */
rc_voice *rc_voice_new(const rc_model *model, uint64_t seed);
void rc_voice_free(rc_voice *voice);
/* Back to silence, a zero hidden state and reference phase 0; parameters, settings and random stream stay. */
void rc_voice_reset(rc_voice *voice);
/* The splitmix64 state that the next draw advances. */
void rc_voice_set_random_state(rc_voice *voice, uint64_t state);
uint64_t rc_voice_random_state(const rc_voice *voice);
/* Draw among the n most likely classes; n <= 0 or >= numtokens draws among all, 1 takes the most likely. */
void rc_voice_set_top_n(rc_voice *voice, int top_n);
/* RC_MIN_TEMPERATURE, for bindings that cannot read the header. */
float rc_min_temperature(void);
/* Returns 0, or -1 (and changes nothing) unless temperature >= RC_MIN_TEMPERATURE (NaN is refused). */
int rc_voice_set_temperature(rc_voice *voice, float temperature);
/* Sets a parameter by name in its own units; returns 0, or -1 when the model has no such parameter. */
int rc_voice_set_parameter(rc_voice *voice, const char *name, float value);
/* Sets parameter `index` mapped to [0, 1] (the network's own scale). */
void rc_voice_set_normalized(rc_voice *voice, int index, float value);

/* Renders n samples of float audio in [-1, 1] with the parameters held (the reference follows the held pitch). */
void rc_voice_render(rc_voice *voice, float *audio, int n);
/* Renders n samples following cond (n rows of num_parameters values in [0, 1]: the parameters only, the runtime
 * adds the reference); writes the mu-law classes to codes and the audio to audio, each when not NULL. The
 * parameters are then held at cond's last row. */
void rc_voice_render_conditioned(rc_voice *voice, const float *cond, int32_t *codes, float *audio, int n);

/* Renders n samples for each of `count` distinct voices of one model at once: each weight is read once a sample for
 * all of them, and each voice plays what rc_voice_render_conditioned plays for it alone (its own settings, random
 * stream and reference). cond holds voice b's n rows at cond + b n P (NULL: each voice holds its parameters); codes
 * and audio, each when not NULL, take voice b's n samples at b n. Returns 0, or -1 (rendering nothing) when the
 * voices are not all of one model. */
int rc_voices_render(rc_voice *const *voices, int count, const float *cond, int32_t *codes, float *audio, int n);
/* Teacher forcing for `count` voices at once: voice b's input as rc_voice_step's at x + b (1 + num_parameters +
 * 2 reference_harmonics); its logits at logits + b numtokens when logits is not NULL. Returns 0 or -1 as above. */
int rc_voices_step(rc_voice *const *voices, int count, const float *x, float *logits);

/* The instruction set the per-sample loop runs on: "avx512", "avx2" or "portable" (any CPU), the fastest this CPU
 * has, picked when the library loads. */
const char *rc_kernel(void);
/* Switches every voice to another (tests and benchmarks compare them); returns 0, or -1 (and changes nothing) when
 * this build or CPU lacks it. Not while a voice renders. */
int rc_set_kernel(const char *name);

/* Teacher forcing: feeds x (1 + num_parameters + 2 * reference_harmonics values: the audio input in [0, 1], the
 * parameters, the reference's channels: the whole network input, as training feeds it) and returns the numtokens
 * logits, valid until the voice's next call. The voice's last class and reference phase are left as they were. */
const float *rc_voice_step(rc_voice *voice, const float *x);
/* The hidden state, num_layers rows of hidden_size floats; writable, to start from a primed state. */
float *rc_voice_hidden(rc_voice *voice);
/* The class fed back at the next step; returns -1 (and changes nothing) when out of range. */
int rc_voice_set_previous(rc_voice *voice, int code);
int rc_voice_previous(const rc_voice *voice);

#ifdef __cplusplus
}
#endif

#endif
