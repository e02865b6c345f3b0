/* [rnncontrol~ FILE PITCH VELOCITY]: plays an exported RNNControl model (export.py) in Pure Data.
 *
 * One voice of the C runtime; messages set its parameters by name in their own units ([p 67(, [a 0.5(),
 * [note NUMBER VELOCITY( sets parameter PITCH (default p) to the note number and parameter VELOCITY (default a)
 * to its range's low + (high - low) * velocity / 127, as live play does (VELOCITY `none`: velocity only gates);
 * velocity 0 fades out. [seed N(, [top_n N(, [temperature T(, [reset(, and [print( posts the model's parameters
 * and ranges. A model with a periodic reference plays the same way: the runtime makes the reference from the
 * pitch parameter. The signal outlet runs at Pd's sample rate: when it differs from the model's, the model's
 * samples are interpolated (cubic Hermite). Messages take effect at the next DSP block. */
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "m_pd.h"
#include "rnncontrol.h"

#define GATE_SECONDS 0.005 /* the fade of a note's start and end: no click */

static t_class *rnncontrol_tilde_class;

typedef struct {
    t_object x_obj;
    t_symbol *file;
    rc_model *model;
    int pitch, velocity; /* the parameters a note sets; velocity -1: none */
    rc_voice *voice;
    double step;      /* model samples per Pd sample */
    double phase;     /* position between history[1] and history[2], in model samples */
    float history[4]; /* the last four model samples */
    float gate, gate_target, gate_step;
    float note; /* the pitch of the note playing, for its note-off */
} t_rnncontrol_tilde;

static float hermite(const float *y, float t) {
    float c1 = 0.5f * (y[2] - y[0]);
    float c2 = y[0] - 2.5f * y[1] + 2.0f * y[2] - 0.5f * y[3];
    float c3 = 0.5f * (y[3] - y[0]) + 1.5f * (y[1] - y[2]);
    return ((c3 * t + c2) * t + c1) * t + y[1];
}

static void next_model_sample(t_rnncontrol_tilde *x) {
    memmove(x->history, x->history + 1, 3 * sizeof(float));
    rc_voice_render(x->voice, &x->history[3], 1);
}

static t_int *rnncontrol_tilde_perform(t_int *w) {
    t_rnncontrol_tilde *x = (t_rnncontrol_tilde *)(w[1]);
    t_sample *out = (t_sample *)(w[2]);
    int n = (int)(w[3]);
    if (x->step == 1.0) {
        /* Pd runs at the model's rate: the runtime's samples as they are */
        float *audio = (float *)out;
        if (sizeof(t_sample) == sizeof(float)) {
            rc_voice_render(x->voice, audio, n);
        } else {
            for (int i = 0; i < n; i++) {
                next_model_sample(x);
                out[i] = x->history[3];
            }
        }
    } else {
        for (int i = 0; i < n; i++) {
            while (x->phase >= 1.0) {
                next_model_sample(x);
                x->phase -= 1.0;
            }
            out[i] = hermite(x->history, (float)x->phase);
            x->phase += x->step;
        }
    }
    for (int i = 0; i < n; i++) {
        if (x->gate < x->gate_target) x->gate = fminf(x->gate + x->gate_step, x->gate_target);
        if (x->gate > x->gate_target) x->gate = fmaxf(x->gate - x->gate_step, x->gate_target);
        out[i] *= x->gate;
    }
    return w + 4;
}

static void rnncontrol_tilde_dsp(t_rnncontrol_tilde *x, t_signal **sp) {
    x->step = rc_model_sample_rate(x->model) / sp[0]->s_sr;
    x->gate_step = (float)(1.0 / (GATE_SECONDS * sp[0]->s_sr));
    dsp_add(rnncontrol_tilde_perform, 3, x, sp[0]->s_vec, (t_int)sp[0]->s_n);
}

/* Writes the model's parameter names, each after a space, for error messages. */
static void list_parameters(const rc_model *model, char *names, size_t size) {
    names[0] = '\0';
    for (int i = 0; i < rc_model_num_parameters(model); i++) {
        strncat(names, " ", size - strlen(names) - 1);
        strncat(names, rc_model_parameter_name(model, i), size - strlen(names) - 1);
    }
}

static void set_parameter(t_rnncontrol_tilde *x, const char *name, float value) {
    if (rc_voice_set_parameter(x->voice, name, value) == 0) return;
    char names[MAXPDSTRING];
    list_parameters(x->model, names, sizeof names);
    pd_error(x, "rnncontrol~: this model has no parameter '%s'; its parameters are:%s", name, names);
}

/* [NAME VALUE(: a parameter by name, in its own units. */
static void rnncontrol_tilde_anything(t_rnncontrol_tilde *x, t_symbol *s, int argc, t_atom *argv) {
    if (argc != 1 || argv[0].a_type != A_FLOAT) {
        pd_error(x, "rnncontrol~: '%s' wants one number: [%s VALUE(", s->s_name, s->s_name);
        return;
    }
    set_parameter(x, s->s_name, atom_getfloat(argv));
}

static void rnncontrol_tilde_note(t_rnncontrol_tilde *x, t_floatarg pitch, t_floatarg velocity) {
    if (velocity <= 0) {
        if (pitch == x->note) x->gate_target = 0;
        return;
    }
    if (velocity > 127) {
        pd_error(x, "rnncontrol~: velocity must be within 0..127, got %g", velocity);
        return;
    }
    set_parameter(x, rc_model_parameter_name(x->model, x->pitch), rc_model_note_value(x->model, x->pitch, pitch));
    if (x->velocity >= 0)
        set_parameter(x, rc_model_parameter_name(x->model, x->velocity),
                      rc_model_velocity_value(x->model, x->velocity, velocity));
    x->note = pitch;
    x->gate_target = 1;
}

static void rnncontrol_tilde_seed(t_rnncontrol_tilde *x, t_floatarg seed) {
    rc_voice_set_random_state(x->voice, (uint64_t)(seed < 0 ? 0 : seed));
}

static void rnncontrol_tilde_top_n(t_rnncontrol_tilde *x, t_floatarg top_n) { rc_voice_set_top_n(x->voice, (int)top_n); }

static void rnncontrol_tilde_temperature(t_rnncontrol_tilde *x, t_floatarg temperature) {
    if (rc_voice_set_temperature(x->voice, temperature))
        pd_error(x, "rnncontrol~: temperature must be at least %g (top_n 1 for the likeliest sample), got %g",
                 rc_min_temperature(), temperature);
}

/* [print(: one line for the model, one per parameter with its range and its role in a note, and the periodic
 * reference when the model has one. */
static void rnncontrol_tilde_print(t_rnncontrol_tilde *x) {
    int count = rc_model_num_parameters(x->model);
    post("rnncontrol~: %s, %d Hz, %d parameters:", x->file->s_name, rc_model_sample_rate(x->model), count);
    for (int i = 0; i < count; i++) {
        float low, high;
        rc_model_parameter_range(x->model, i, &low, &high);
        const char *role = i == x->pitch ? " (pitch)" : i == x->velocity ? " (velocity)" : "";
        post("  %s %g..%g%s", rc_model_parameter_name(x->model, i), low, high, role);
    }
    if (x->velocity < 0) post("  velocity: none (a note's velocity only starts and ends it)");
    int harmonics = rc_model_reference_harmonics(x->model);
    if (harmonics)
        post("  reference: %d harmonics following parameter %s", harmonics,
             rc_model_parameter_name(x->model, rc_model_reference_pitch(x->model)));
}

static void rnncontrol_tilde_reset(t_rnncontrol_tilde *x) {
    rc_voice_reset(x->voice);
    memset(x->history, 0, sizeof x->history);
    x->phase = 1.0;
}

/* Finds FILE beside the patch or on Pd's search path, as [soundfiler] and [text] do. */
static int find_file(t_symbol *file, char *path, size_t size) {
    char directory[MAXPDSTRING], *name;
    int fd = canvas_open(canvas_getcurrent(), file->s_name, "", directory, &name, MAXPDSTRING, 1);
    if (fd < 0) return -1;
    sys_close(fd);
    snprintf(path, size, "%s/%s", directory, name);
    return 0;
}

/* Returns the model in FILE, or NULL after saying why. */
static rc_model *load_model(t_symbol *file) {
    char path[2 * MAXPDSTRING], error[512];
    if (file == &s_) {
        pd_error(NULL, "rnncontrol~: give the model file: [rnncontrol~ model.safetensors] (make one with export.py)");
        return NULL;
    }
    if (find_file(file, path, sizeof path)) {
        pd_error(NULL, "rnncontrol~: %s not found beside the patch or on Pd's path", file->s_name);
        return NULL;
    }
    rc_model *model = rc_model_load(path, error, sizeof error);
    if (!model) pd_error(NULL, "rnncontrol~: %s", error);
    return model;
}

/* Sets *index to the parameter `name` (or `fallback` when no name was given) that sets a note's `role`; returns
 * -1 after saying why when the model has no such parameter. */
static int note_parameter(const rc_model *model, t_symbol *file, const char *role, t_symbol *name,
                          const char *fallback, int *index) {
    const char *wanted = name == &s_ ? fallback : name->s_name;
    *index = rc_model_parameter_index(model, wanted);
    if (*index >= 0) return 0;
    char names[MAXPDSTRING];
    list_parameters(model, names, sizeof names);
    pd_error(NULL, "rnncontrol~: %s has no parameter '%s' for a note's %s; its parameters are:%s (name them: "
             "[rnncontrol~ %s PITCH VELOCITY], VELOCITY none to ignore velocity)",
             file->s_name, wanted, role, names, file->s_name);
    return -1;
}

static void *rnncontrol_tilde_new(t_symbol *file, t_symbol *pitch_name, t_symbol *velocity_name) {
    rc_model *model = load_model(file);
    if (!model) return NULL;
    int pitch, velocity = -1;
    int refused = note_parameter(model, file, "pitch", pitch_name, "p", &pitch);
    if (velocity_name != gensym("none")) /* both checked, so one try shows every misnamed parameter */
        refused |= note_parameter(model, file, "velocity", velocity_name, "a", &velocity);
    if (refused) {
        rc_model_free(model);
        return NULL;
    }
    rc_voice *voice = rc_voice_new(model, 0);
    if (!voice) {
        pd_error(NULL, "rnncontrol~: out of memory for a voice");
        rc_model_free(model);
        return NULL;
    }
    t_rnncontrol_tilde *x = (t_rnncontrol_tilde *)pd_new(rnncontrol_tilde_class);
    x->file = file;
    x->model = model;
    x->pitch = pitch;
    x->velocity = velocity;
    x->voice = voice;
    x->step = 1.0;
    x->gate = x->gate_target = 1;
    x->note = -1;
    rnncontrol_tilde_reset(x);
    outlet_new(&x->x_obj, &s_signal);
    return x;
}

static void rnncontrol_tilde_free(t_rnncontrol_tilde *x) {
    rc_voice_free(x->voice);
    rc_model_free(x->model);
}

void rnncontrol_tilde_setup(void) {
    rnncontrol_tilde_class = class_new(gensym("rnncontrol~"), (t_newmethod)rnncontrol_tilde_new,
                                       (t_method)rnncontrol_tilde_free, sizeof(t_rnncontrol_tilde), CLASS_DEFAULT,
                                       A_DEFSYMBOL, A_DEFSYMBOL, A_DEFSYMBOL, 0);
    class_addmethod(rnncontrol_tilde_class, (t_method)rnncontrol_tilde_dsp, gensym("dsp"), A_CANT, 0);
    class_addmethod(rnncontrol_tilde_class, (t_method)rnncontrol_tilde_note, gensym("note"), A_FLOAT, A_FLOAT, 0);
    class_addmethod(rnncontrol_tilde_class, (t_method)rnncontrol_tilde_seed, gensym("seed"), A_FLOAT, 0);
    class_addmethod(rnncontrol_tilde_class, (t_method)rnncontrol_tilde_top_n, gensym("top_n"), A_FLOAT, 0);
    class_addmethod(rnncontrol_tilde_class, (t_method)rnncontrol_tilde_temperature, gensym("temperature"), A_FLOAT,
                    0);
    class_addmethod(rnncontrol_tilde_class, (t_method)rnncontrol_tilde_reset, gensym("reset"), 0);
    class_addmethod(rnncontrol_tilde_class, (t_method)rnncontrol_tilde_print, gensym("print"), 0);
    class_addanything(rnncontrol_tilde_class, (t_method)rnncontrol_tilde_anything);
}
