/* RNNControl's runtime: loading an exported model, and the per-sample loop (PyTorch's GRU, the numba sampler's
 * draw). The layout of the file is described in the README's "Exported model files" section. */
#include "rnncontrol.h"

#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "safetensors.h"

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

struct rc_voice {
    const rc_model *model;
    float *x;        /* (1 + P): the audio input, then the parameters held */
    float *layer_in; /* (H + P): [h_{k-1}, parameters] for models that feed the parameters to every layer */
    float *hidden;   /* (L, H) */
    float *gi, *gh;  /* (3H) */
    float *logits;   /* (N) */
    float *top_value;
    int *top_index; /* (N) */
    int previous, top_n;
    double inv_temperature;
    uint64_t state;
};

/* ---------------------------------------------------------------- loading */

static int fail(char *error, size_t error_size, const char *format, ...) {
    va_list args;
    va_start(args, format);
    vsnprintf(error, error_size, format, args);
    va_end(args);
    return -1;
}

static int metadata_int(const st_file *file, const char *key, long low, long high, int *value, char *error,
                        size_t error_size) {
    const char *text = st_metadata(file, key);
    char *end;
    if (!text) return fail(error, error_size, "metadata '%s' missing: export the model with export.py", key);
    long v = strtol(text, &end, 10);
    if (*text == '\0' || *end != '\0' || v < low || v > high)
        return fail(error, error_size, "metadata '%s' is '%s', not a whole number in [%ld, %ld]", key, text, low, high);
    *value = (int)v;
    return 0;
}

static int metadata_float(const st_file *file, const char *key, float *value, char *error, size_t error_size) {
    const char *text = st_metadata(file, key);
    char *end;
    if (!text) return fail(error, error_size, "metadata '%s' missing: export the model with export.py", key);
    double v = strtod(text, &end);
    if (*text == '\0' || *end != '\0' || !isfinite(v))
        return fail(error, error_size, "metadata '%s' is '%s', not a number", key, text);
    *value = (float)v;
    return 0;
}

/* Copies the float32 tensor `name` of shape (rows, cols), or (rows) when cols is 0, into values as doubles. */
static int read_tensor(const st_file *file, const char *name, int rows, int cols, double *values, char *error,
                       size_t error_size) {
    const st_tensor *t = st_tensor_named(file, name);
    int ndim = cols ? 2 : 1;
    if (!t) return fail(error, error_size, "tensor '%s' missing", name);
    if (strcmp(t->dtype, "F32") != 0)
        return fail(error, error_size, "tensor '%s' is %s; the runtime reads F32 (float32)", name, t->dtype);
    if (t->ndim != ndim || t->shape[0] != (uint64_t)rows || (cols && t->shape[1] != (uint64_t)cols))
        return fail(error, error_size, "tensor '%s' has the wrong shape for the sizes in the metadata: want (%d%s%.0d)",
                    name, rows, cols ? ", " : "", cols);
    size_t count = (size_t)rows * (size_t)(cols ? cols : 1);
    if (t->nbytes != count * sizeof(float))
        return fail(error, error_size, "tensor '%s' holds %llu bytes for %zu floats", name,
                    (unsigned long long)t->nbytes, count);
    for (size_t i = 0; i < count; i++) {
        float f;
        memcpy(&f, t->data + i * sizeof f, sizeof f); /* the file's data need not be aligned */
        values[i] = f;
    }
    return 0;
}

static void transpose_into(const double *rows_cols, int rows, int cols, float *cols_rows) {
    for (int r = 0; r < rows; r++)
        for (int c = 0; c < cols; c++) cols_rows[(size_t)c * rows + r] = (float)rows_cols[(size_t)r * cols + c];
}

static int read_sizes(const st_file *file, rc_model *m, char *error, size_t error_size) {
    const char *format = st_metadata(file, "format");
    if (!format || strcmp(format, "rnncontrol") != 0)
        return fail(error, error_size, "not an RNNControl model file (no metadata format=rnncontrol): "
                                       "export one with export.py");
    int version, input_size;
    if (metadata_int(file, "format_version", 0, 1000000, &version, error, error_size)) return -1;
    if (version != RC_FORMAT_VERSION)
        return fail(error, error_size, "the file has format version %d; this runtime reads version %d", version,
                    RC_FORMAT_VERSION);
    if (metadata_int(file, "input_size", 1, 1, &input_size, error, error_size) ||
        metadata_int(file, "cond_size", 0, 1024, &m->P, error, error_size) ||
        metadata_int(file, "hidden_size", 1, 8192, &m->H, error, error_size) ||
        metadata_int(file, "num_layers", 1, 256, &m->L, error, error_size) ||
        metadata_int(file, "numtokens", 2, 65536, &m->N, error, error_size) ||
        metadata_int(file, "cond_every_layer", 0, 1, &m->cond_every_layer, error, error_size) ||
        metadata_int(file, "encode", 0, 1, &m->encode, error, error_size) ||
        metadata_int(file, "sample_rate", 1, 1000000, &m->sample_rate, error, error_size))
        return -1;
    return 0;
}

static int read_parameters(const st_file *file, rc_model *m, char *error, size_t error_size) {
    for (int i = 0; i < m->P; i++) {
        char key[64];
        snprintf(key, sizeof key, "parameter.%d.name", i);
        const char *name = st_metadata(file, key);
        if (!name || !*name || strlen(name) >= MAX_NAME)
            return fail(error, error_size, "metadata '%s' missing or longer than %d bytes", key, MAX_NAME - 1);
        strcpy(m->names[i], name);
        snprintf(key, sizeof key, "parameter.%d.min", i);
        if (metadata_float(file, key, &m->low[i], error, error_size)) return -1;
        snprintf(key, sizeof key, "parameter.%d.max", i);
        if (metadata_float(file, key, &m->high[i], error, error_size)) return -1;
        if (m->low[i] == m->high[i]) return fail(error, error_size, "parameter '%s' has an empty range", name);
    }
    return 0;
}

static size_t layer_inputs(const rc_model *m, int k) {
    if (k == 0) return (size_t)(1 + m->P); /* the input projection is folded into layer 0 */
    return (size_t)(m->cond_every_layer ? m->H + m->P : m->H);
}

/* Carves every array out of one allocation. */
static int allocate_weights(rc_model *m) {
    size_t G = 3 * (size_t)m->H, total = (size_t)m->H * m->N + 3 * (size_t)m->N + 2 * (size_t)m->P;
    for (int k = 0; k < m->L; k++) total += layer_inputs(m, k) * G + (size_t)m->H * G + 2 * G;
    m->weights = malloc(total * sizeof(float));
    m->layers = calloc((unsigned)m->L, sizeof *m->layers);
    m->names = calloc((unsigned)m->P + 1, sizeof *m->names);
    if (!m->weights || !m->layers || !m->names) return -1;
    float *at = m->weights;
    for (int k = 0; k < m->L; k++) {
        rc_layer *layer = &m->layers[k];
        layer->inputs = (int)layer_inputs(m, k);
        layer->w_ih_t = at, at += (size_t)layer->inputs * G;
        layer->b_ih = at, at += G;
        layer->w_hh_t = at, at += (size_t)m->H * G;
        layer->b_hh = at, at += G;
    }
    m->out_w_t = at, at += (size_t)m->H * m->N;
    m->out_b = at, at += m->N;
    m->input_values = at, at += m->N;
    m->decoded = at, at += m->N;
    m->low = at, at += m->P;
    m->high = at;
    return 0;
}

/* Layer 0 reads the input projection's output only, so W_ih0 (proj_w x + proj_b) + b_ih0 folds into one
 * (3H, 1 + P) affine map, computed in double. */
static void fold_input_projection(rc_model *m, const double *proj_w, const double *proj_b, const double *w_ih,
                                  const double *b_ih) {
    int G = 3 * m->H, I = 1 + m->P;
    rc_layer *layer = &m->layers[0];
    for (int g = 0; g < G; g++) {
        double bias = b_ih[g];
        for (int h = 0; h < m->H; h++) bias += w_ih[(size_t)g * m->H + h] * proj_b[h];
        layer->b_ih[g] = (float)bias;
        for (int i = 0; i < I; i++) {
            double sum = 0;
            for (int h = 0; h < m->H; h++) sum += w_ih[(size_t)g * m->H + h] * proj_w[(size_t)h * I + i];
            layer->w_ih_t[(size_t)i * G + g] = (float)sum;
        }
    }
}

/* Reads every tensor through the scratch arrays a (a matrix) and b (a vector). */
static int read_matrices(const st_file *file, rc_model *m, double *proj_w, double *proj_b, double *a, double *b,
                         char *error, size_t error_size) {
    int H = m->H, G = 3 * H, I = 1 + m->P;
    if (read_tensor(file, "input_proj.weight", H, I, proj_w, error, error_size) ||
        read_tensor(file, "input_proj.bias", H, 0, proj_b, error, error_size))
        return -1;
    for (int k = 0; k < m->L; k++) {
        rc_layer *layer = &m->layers[k];
        int inputs = k == 0 ? H : layer->inputs;
        char name[64];
        snprintf(name, sizeof name, "gru.%d.weight_ih", k);
        if (read_tensor(file, name, G, inputs, a, error, error_size)) return -1;
        snprintf(name, sizeof name, "gru.%d.bias_ih", k);
        if (read_tensor(file, name, G, 0, b, error, error_size)) return -1;
        if (k == 0) {
            fold_input_projection(m, proj_w, proj_b, a, b);
        } else {
            transpose_into(a, G, inputs, layer->w_ih_t);
            for (int g = 0; g < G; g++) layer->b_ih[g] = (float)b[g];
        }
        snprintf(name, sizeof name, "gru.%d.weight_hh", k);
        if (read_tensor(file, name, G, H, a, error, error_size)) return -1;
        transpose_into(a, G, H, layer->w_hh_t);
        snprintf(name, sizeof name, "gru.%d.bias_hh", k);
        if (read_tensor(file, name, G, 0, b, error, error_size)) return -1;
        for (int g = 0; g < G; g++) layer->b_hh[g] = (float)b[g];
    }
    if (read_tensor(file, "output.weight", m->N, H, a, error, error_size) ||
        read_tensor(file, "output.bias", m->N, 0, b, error, error_size))
        return -1;
    transpose_into(a, m->N, H, m->out_w_t);
    for (int n = 0; n < m->N; n++) m->out_b[n] = (float)b[n];
    return 0;
}

static int read_weights(const st_file *file, rc_model *m, char *error, size_t error_size) {
    int H = m->H, G = 3 * H, I = 1 + m->P;
    size_t rows = (size_t)(m->N > G ? m->N : G); /* the most rows of any matrix: 3H, or N for the output */
    double *proj_w = malloc(sizeof(double) * ((size_t)H * (I + 1) + rows * (H + m->P + 1)));
    if (!proj_w) return fail(error, error_size, "out of memory");
    double *proj_b = proj_w + (size_t)H * I, *a = proj_b + H, *b = a + rows * (H + m->P);
    int status = read_matrices(file, m, proj_w, proj_b, a, b, error, error_size);
    free(proj_w);
    return status;
}

/* The class tables, as audioDataLoader computes them: index / (N - 1), or the decoded sample mapped to [0, 1]. */
static void fill_class_tables(rc_model *m) {
    double mu = m->N - 1;
    for (int i = 0; i < m->N; i++) {
        double y = i / mu * 2 - 1;
        double decoded = (y > 0 ? 1 : y < 0 ? -1 : 0) * expm1(fabs(y) * log1p(mu)) / mu;
        m->decoded[i] = (float)decoded;
        m->input_values[i] = m->encode ? (float)i / (float)(m->N - 1) : ((float)decoded + 1.0f) / 2.0f;
    }
}

static int host_is_little_endian(void) {
    const uint16_t one = 1;
    return *(const unsigned char *)&one == 1;
}

rc_model *rc_model_load_buffer(const void *buffer, size_t size, char *error, size_t error_size) {
    if (!host_is_little_endian()) {
        fail(error, error_size, "this runtime reads float32 little-endian files on little-endian machines only");
        return NULL;
    }
    st_file file;
    rc_model *m = calloc(1, sizeof *m);
    int status = m ? st_parse(buffer, size, &file, error, error_size) : fail(error, error_size, "out of memory");
    if (status == 0) status = read_sizes(&file, m, error, error_size);
    if (status == 0 && allocate_weights(m)) status = fail(error, error_size, "out of memory");
    if (status == 0) status = read_parameters(&file, m, error, error_size);
    if (status == 0) status = read_weights(&file, m, error, error_size);
    if (m) st_free(&file);
    if (status != 0) {
        rc_model_free(m);
        return NULL;
    }
    fill_class_tables(m);
    return m;
}

rc_model *rc_model_load(const char *path, char *error, size_t error_size) {
    FILE *f = fopen(path, "rb");
    if (!f) {
        fail(error, error_size, "cannot open %s: no such readable file", path);
        return NULL;
    }
    long size = fseek(f, 0, SEEK_END) == 0 ? ftell(f) : -1;
    unsigned char *buffer = size >= 0 ? malloc((size_t)size + 1) : NULL;
    rc_model *m = NULL;
    if (size < 0 || !buffer || fseek(f, 0, SEEK_SET) != 0 || fread(buffer, 1, (size_t)size, f) != (size_t)size) {
        fail(error, error_size, "cannot read %s", path);
    } else {
        char reason[400];
        m = rc_model_load_buffer(buffer, (size_t)size, reason, sizeof reason);
        if (!m) fail(error, error_size, "%s: %s", path, reason);
    }
    free(buffer);
    fclose(f);
    return m;
}

void rc_model_free(rc_model *m) {
    if (!m) return;
    free(m->weights);
    free(m->layers);
    free(m->names);
    free(m);
}

int rc_model_sample_rate(const rc_model *m) { return m->sample_rate; }
int rc_model_numtokens(const rc_model *m) { return m->N; }
int rc_model_num_layers(const rc_model *m) { return m->L; }
int rc_model_hidden_size(const rc_model *m) { return m->H; }
int rc_model_num_parameters(const rc_model *m) { return m->P; }
const char *rc_model_parameter_name(const rc_model *m, int index) { return m->names[index]; }

void rc_model_parameter_range(const rc_model *m, int index, float *low, float *high) {
    *low = m->low[index];
    *high = m->high[index];
}

int rc_model_parameter_index(const rc_model *m, const char *name) {
    for (int i = 0; i < m->P; i++)
        if (strcmp(m->names[i], name) == 0) return i;
    return -1;
}

/* ---------------------------------------------------------------- voices */

rc_voice *rc_voice_new(const rc_model *m, uint64_t seed) {
    size_t G = 3 * (size_t)m->H;
    size_t floats = (1 + (size_t)m->P) + ((size_t)m->H + m->P) + (size_t)m->L * m->H + 2 * G + 2 * (size_t)m->N;
    rc_voice *v = calloc(1, sizeof *v + floats * sizeof(float) + (size_t)m->N * sizeof(int));
    if (!v) return NULL;
    float *at = (float *)(v + 1);
    v->model = m;
    v->x = at, at += 1 + m->P;
    v->layer_in = at, at += m->H + m->P;
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
}

void rc_voice_set_random_state(rc_voice *v, uint64_t state) { v->state = state; }
uint64_t rc_voice_random_state(const rc_voice *v) { return v->state; }
void rc_voice_set_top_n(rc_voice *v, int top_n) { v->top_n = top_n; }

int rc_voice_set_temperature(rc_voice *v, float temperature) {
    if (!(temperature > 0)) return -1;
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

/* Advances the hidden state by one step of input x (1 + P) and writes the logits. */
RC_INLINE void forward(rc_voice *v, const float *x) {
    const rc_model *m = v->model;
    int H = m->H, G = 3 * H;
    for (int k = 0; k < m->L; k++) {
        const rc_layer *layer = &m->layers[k];
        const float *input = x;
        if (k > 0 && m->cond_every_layer) {
            memcpy(v->layer_in, v->hidden + (size_t)(k - 1) * H, sizeof(float) * (size_t)H);
            memcpy(v->layer_in + H, x + 1, sizeof(float) * (size_t)m->P);
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
