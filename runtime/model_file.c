/* Loading an exported model: the file's metadata and tensors checked against each other, the weights laid out for
 * the per-sample loop. The layout of the file is described in docs/runtime.md, "Exported model files". */
#include <float.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "model.h"
#include "safetensors.h"

static int fail(char *error, size_t error_size, const char *format, ...) {
    va_list args;
    va_start(args, format);
    vsnprintf(error, error_size, format, args);
    va_end(args);
    return -1;
}

/* Returns whether text is a whole number as Python's utils/model_file_checks.py reads it: -?[0-9]+, nothing else
 * (strtol alone would take spaces and a '+'). */
static int is_whole_number(const char *text) {
    const char *digits = text + (*text == '-');
    if (*digits == '\0') return 0;
    for (; *digits; digits++)
        if (*digits < '0' || *digits > '9') return 0;
    return 1;
}

/* Returns whether text is a decimal number: [+-]?([0-9]+(.[0-9]*)?|.[0-9]+)([eE][+-]?[0-9]+)?, as repr() writes
 * floats; strtod alone would also take "nan", "inf", hexadecimal and leading spaces. */
static int is_decimal(const char *text) {
    const char *s = text + (*text == '+' || *text == '-');
    size_t whole = strspn(s, "0123456789"), fraction = 0;
    s += whole;
    if (*s == '.') fraction = strspn(++s, "0123456789"), s += fraction;
    if (whole + fraction == 0) return 0;
    if (*s == 'e' || *s == 'E') {
        s += 1 + (s[1] == '+' || s[1] == '-');
        size_t exponent = strspn(s, "0123456789");
        if (exponent == 0) return 0;
        s += exponent;
    }
    return *s == '\0';
}

static int metadata_int(const st_file *file, const char *key, long low, long high, int *value, char *error,
                        size_t error_size) {
    const char *text = st_metadata(file, key);
    if (!text) return fail(error, error_size, "metadata '%s' missing: export the model with export.py", key);
    long v = is_whole_number(text) ? strtol(text, NULL, 10) : 0; /* strtol saturates: too long is out of range */
    if (!is_whole_number(text) || v < low || v > high)
        return fail(error, error_size, "metadata '%s' is '%s', not a whole number in [%ld, %ld]", key, text, low, high);
    *value = (int)v;
    return 0;
}

/* Reads a number finite in float32 (the runtime holds it as one: 1e39 would be infinite there). */
static int metadata_double(const st_file *file, const char *key, double *value, char *error, size_t error_size) {
    const char *text = st_metadata(file, key);
    if (!text) return fail(error, error_size, "metadata '%s' missing: export the model with export.py", key);
    double v = is_decimal(text) ? strtod(text, NULL) : NAN;
    if (!isfinite(v)) return fail(error, error_size, "metadata '%s' is '%s', not a finite number", key, text);
    if (fabs(v) > FLT_MAX)
        return fail(error, error_size, "metadata '%s' is '%s', beyond float32's range (+-%.3g)", key, text, FLT_MAX);
    *value = v;
    return 0;
}

/* Names tensor `index` of the 4 + 4L the sizes call for, in the order they are checked and read, and gives its
 * shape: (rows, cols), or (rows) when cols is 0. */
static void expected_tensor(const rc_model *m, int index, char *name, size_t name_size, int *rows, int *cols) {
    static const char *const gru[4] = {"weight_ih", "bias_ih", "weight_hh", "bias_hh"};
    int H = m->H, last = 2 + 4 * m->L;
    if (index < 2 || index >= last) {
        int output = index >= last;
        snprintf(name, name_size, "%s.%s", output ? "output" : "input_proj", index % 2 ? "bias" : "weight");
        *rows = output ? m->N : H;
        *cols = index % 2 ? 0 : output ? H : 1 + m->C;
        return;
    }
    int k = (index - 2) / 4, which = (index - 2) % 4;
    snprintf(name, name_size, "gru.%d.%s", k, gru[which]);
    *rows = 3 * H;
    *cols = which % 2 ? 0 : which == 2 || k == 0 || !m->cond_every_layer ? H : H + m->C;
}

/* Checks every tensor the sizes call for, and that there is no other, before anything is allocated for them. */
static int check_tensors(const st_file *file, const rc_model *m, char *error, size_t error_size) {
    int count = 4 + 4 * m->L;
    for (int index = 0; index < count; index++) {
        char name[64];
        int rows, cols;
        expected_tensor(m, index, name, sizeof name, &rows, &cols);
        const st_tensor *t = st_tensor_named(file, name);
        if (!t) return fail(error, error_size, "tensor '%s' missing", name);
        if (strcmp(t->dtype, "F32") != 0)
            return fail(error, error_size, "tensor '%s' is %s; the runtime reads F32 (float32)", name, t->dtype);
        if (t->ndim != (cols ? 2 : 1) || t->shape[0] != (uint64_t)rows || (cols && t->shape[1] != (uint64_t)cols))
            return fail(error, error_size, "tensor '%s' has the wrong shape for the sizes in the metadata: want "
                                           "(%d%s%.0d)", name, rows, cols ? ", " : "", cols);
        uint64_t floats = (uint64_t)rows * (uint64_t)(cols ? cols : 1);
        if (t->nbytes != floats * sizeof(float))
            return fail(error, error_size, "tensor '%s' holds %llu bytes for %llu floats", name,
                        (unsigned long long)t->nbytes, (unsigned long long)floats);
    }
    if (file->num_tensors != count)
        return fail(error, error_size, "the file holds %d tensors where its sizes call for %d", file->num_tensors,
                    count);
    return 0;
}

/* Copies the checked tensor `name` of rows * cols floats (cols 0: one column) into values as doubles; refuses
 * NaN or infinite weights, which would make every voice's state non-finite. */
static int read_tensor(const st_file *file, const char *name, int rows, int cols, double *values, char *error,
                       size_t error_size) {
    const st_tensor *t = st_tensor_named(file, name);
    size_t count = (size_t)rows * (size_t)(cols ? cols : 1);
    for (size_t i = 0; i < count; i++) {
        float f;
        memcpy(&f, t->data + i * sizeof f, sizeof f); /* the file's data need not be aligned */
        if (!isfinite(f))
            return fail(error, error_size, "tensor '%s' holds NaN or infinite values (the first at index %zu): "
                                           "export a checkpoint from before training diverged", name, i);
        values[i] = f;
    }
    return 0;
}

static void transpose_into(const double *rows_cols, int rows, int cols, float *cols_rows) {
    for (int r = 0; r < rows; r++)
        for (int c = 0; c < cols; c++) cols_rows[(size_t)c * rows + r] = (float)rows_cols[(size_t)r * cols + c];
}

/* Returns the file's format version, or -1. */
static int read_sizes(const st_file *file, rc_model *m, char *error, size_t error_size) {
    const char *format = st_metadata(file, "format");
    if (!format || strcmp(format, "rnncontrol") != 0)
        return fail(error, error_size, "not an RNNControl model file (no metadata format=rnncontrol): "
                                       "export one with export.py");
    int version, input_size;
    if (metadata_int(file, "format_version", 0, 1000000, &version, error, error_size)) return -1;
    if (version < 1 || version > RC_FORMAT_VERSION)
        return fail(error, error_size, "the file has format version %d; this runtime reads versions 1 to %d",
                    version, RC_FORMAT_VERSION);
    if (metadata_int(file, "input_size", 1, 1, &input_size, error, error_size) ||
        metadata_int(file, "cond_size", 0, 1024, &m->C, error, error_size) ||
        metadata_int(file, "hidden_size", 1, 8192, &m->H, error, error_size) ||
        metadata_int(file, "num_layers", 1, 256, &m->L, error, error_size) ||
        metadata_int(file, "numtokens", 2, 65536, &m->N, error, error_size) ||
        metadata_int(file, "cond_every_layer", 0, 1, &m->cond_every_layer, error, error_size) ||
        metadata_int(file, "encode", 0, 1, &m->encode, error, error_size) ||
        metadata_int(file, "sample_rate", 1, 1000000, &m->sample_rate, error, error_size))
        return -1;
    double dropout; /* unused when playing, but PyTorch refuses a network built with one outside [0, 1] */
    if (metadata_double(file, "dropout", &dropout, error, error_size)) return -1;
    if (dropout < 0 || dropout > 1)
        return fail(error, error_size, "metadata 'dropout' is '%s', not a number in [0, 1]",
                    st_metadata(file, "dropout"));
    return version;
}

/* Reads the periodic reference (version 2; a version 1 file has none) and so splits cond_size into P and 2K. */
static int read_reference(const st_file *file, int version, rc_model *m, char *error, size_t error_size) {
    m->K = 0, m->pitch = -1, m->P = m->C;
    if (version < 2) return 0;
    if (metadata_int(file, "reference.harmonics", 0, 16, &m->K, error, error_size)) return -1;
    if (m->K == 0) return 0;
    if (2 * m->K >= m->C)
        return fail(error, error_size, "metadata 'reference.harmonics' is %d: its %d channels leave no pitch "
                                       "parameter in cond_size %d", m->K, 2 * m->K, m->C);
    m->P = m->C - 2 * m->K;
    if (metadata_int(file, "reference.pitch", 0, m->P - 1, &m->pitch, error, error_size)) return -1;
    const char *units = st_metadata(file, "reference.units");
    if (!units) return fail(error, error_size, "metadata 'reference.units' missing: export the model with export.py");
    if (strcmp(units, "midi") != 0 && strcmp(units, "hz") != 0)
        return fail(error, error_size, "metadata 'reference.units' is '%s', not 'midi' or 'hz'", units);
    m->pitch_in_hz = strcmp(units, "hz") == 0;
    return 0;
}

static int read_parameters(const st_file *file, rc_model *m, char *error, size_t error_size) {
    m->names = calloc((unsigned)m->P + 1, sizeof *m->names);
    m->low = calloc(2 * (unsigned)m->P + 1, sizeof *m->low);
    if (!m->names || !m->low) return fail(error, error_size, "out of memory");
    m->high = m->low + m->P;
    for (int i = 0; i < m->P; i++) {
        char key[64];
        snprintf(key, sizeof key, "parameter.%d.name", i);
        const char *name = st_metadata(file, key);
        if (!name || !*name || strlen(name) >= MAX_NAME)
            return fail(error, error_size, "metadata '%s' missing or longer than %d bytes", key, MAX_NAME - 1);
        if (rc_model_parameter_index(m, name) >= 0)
            return fail(error, error_size, "metadata '%s': parameter '%s' is named twice", key, name);
        strcpy(m->names[i], name);
        double low = 0, high = 0; /* initialised for GCC only: a failed read returns before they are used */
        snprintf(key, sizeof key, "parameter.%d.min", i);
        if (metadata_double(file, key, &low, error, error_size)) return -1;
        snprintf(key, sizeof key, "parameter.%d.max", i);
        if (metadata_double(file, key, &high, error, error_size)) return -1;
        m->low[i] = (float)low, m->high[i] = (float)high;
        if (m->low[i] == m->high[i]) return fail(error, error_size, "parameter '%s' has an empty range", name);
        if (i == m->pitch) m->pitch_low = low, m->pitch_high = high;
    }
    return 0;
}

static size_t layer_inputs(const rc_model *m, int k) {
    if (k == 0) return (size_t)(1 + m->C); /* the input projection is folded into layer 0 */
    return (size_t)(m->cond_every_layer ? m->H + m->C : m->H);
}

/* Carves every weight array out of one allocation. */
static int allocate_weights(rc_model *m) {
    size_t G = 3 * (size_t)m->H, total = 2 * (size_t)m->H * m->N + RC_PAD + 3 * (size_t)m->N;
    for (int k = 0; k < m->L; k++) total += 2 * (layer_inputs(m, k) * G + (size_t)m->H * G + RC_PAD) + 2 * G;
    m->weights = calloc(total, sizeof(float)); /* the pads zeros */
    m->layers = calloc((unsigned)m->L, sizeof *m->layers);
    if (!m->weights || !m->layers) return -1;
    float *at = m->weights;
    for (int k = 0; k < m->L; k++) {
        rc_layer *layer = &m->layers[k];
        layer->inputs = (int)layer_inputs(m, k);
        layer->w_ih_t = at, at += (size_t)layer->inputs * G + RC_PAD;
        layer->w_ih_c = at, at += (size_t)layer->inputs * G;
        layer->b_ih = at, at += G;
        layer->w_hh_t = at, at += (size_t)m->H * G + RC_PAD;
        layer->w_hh_c = at, at += (size_t)m->H * G;
        layer->b_hh = at, at += G;
    }
    m->out_w_t = at, at += (size_t)m->H * m->N + RC_PAD;
    m->out_w_c = at, at += (size_t)m->H * m->N;
    m->out_b = at, at += m->N;
    m->input_values = at, at += m->N;
    m->decoded = at;
    return 0;
}

/* Layer 0 reads the input projection's output only, so W_ih0 (proj_w x + proj_b) + b_ih0 folds into one
 * (3H, 1 + C) affine map, computed in double. */
static void fold_input_projection(rc_model *m, const double *proj_w, const double *proj_b, const double *w_ih,
                                  const double *b_ih) {
    int G = 3 * m->H, I = 1 + m->C;
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
    int H = m->H, G = 3 * H, I = 1 + m->C;
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

/* Copies transposed weights (inputs, outputs) into chunks of RC_CHUNK outputs, each chunk's rows contiguous. */
static void chunk_into(const float *transposed, int inputs, int outputs, float *chunks) {
    for (int c0 = 0; c0 < outputs; c0 += RC_CHUNK) {
        int size = outputs - c0 < RC_CHUNK ? outputs - c0 : RC_CHUNK;
        for (int k = 0; k < inputs; k++)
            memcpy(chunks + (size_t)c0 * inputs + (size_t)k * size, transposed + (size_t)k * outputs + c0,
                   sizeof(float) * (size_t)size);
    }
}

static void chunk_weights(rc_model *m) {
    for (int k = 0; k < m->L; k++) {
        rc_layer *layer = &m->layers[k];
        chunk_into(layer->w_ih_t, layer->inputs, 3 * m->H, layer->w_ih_c);
        chunk_into(layer->w_hh_t, m->H, 3 * m->H, layer->w_hh_c);
    }
    chunk_into(m->out_w_t, m->H, m->N, m->out_w_c);
}

static int read_weights(const st_file *file, rc_model *m, char *error, size_t error_size) {
    int H = m->H, G = 3 * H, I = 1 + m->C;
    size_t rows = (size_t)(m->N > G ? m->N : G); /* the most rows of any matrix: 3H, or N for the output */
    double *proj_w = malloc(sizeof(double) * ((size_t)H * (I + 1) + rows * (H + m->C + 1)));
    if (!proj_w) return fail(error, error_size, "out of memory");
    double *proj_b = proj_w + (size_t)H * I, *a = proj_b + H, *b = a + rows * (H + m->C);
    int status = read_matrices(file, m, proj_w, proj_b, a, b, error, error_size);
    free(proj_w);
    if (status == 0) chunk_weights(m);
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

/* Shows any control character in the message (a newline in a hostile name) as '?', so it stays one line. */
static void one_line(char *error, size_t error_size) {
    for (size_t i = 0; i < error_size && error[i]; i++)
        if ((unsigned char)error[i] < 0x20 || error[i] == 0x7f) error[i] = '?';
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
    int version = status == 0 ? read_sizes(&file, m, error, error_size) : -1;
    status = version < 0 ? -1 : read_reference(&file, version, m, error, error_size);
    if (status == 0) status = read_parameters(&file, m, error, error_size);
    if (status == 0) status = check_tensors(&file, m, error, error_size);
    if (status == 0 && allocate_weights(m)) status = fail(error, error_size, "out of memory");
    if (status == 0) status = read_weights(&file, m, error, error_size);
    if (m) st_free(&file);
    if (status != 0) {
        one_line(error, error_size);
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
        if (!m) fail(error, error_size, "%s: %s", path, reason), one_line(error, error_size);
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
    free(m->low);
    free(m);
}

int rc_model_sample_rate(const rc_model *m) { return m->sample_rate; }
int rc_model_numtokens(const rc_model *m) { return m->N; }
int rc_model_num_layers(const rc_model *m) { return m->L; }
int rc_model_hidden_size(const rc_model *m) { return m->H; }
int rc_model_num_parameters(const rc_model *m) { return m->P; }
int rc_model_reference_harmonics(const rc_model *m) { return m->K; }
int rc_model_reference_pitch(const rc_model *m) { return m->pitch; }
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

float rc_model_note_value(const rc_model *m, int index, float note) {
    /* in double, as live/notes.py computes it, so the value is Python's rounded once to float */
    if (index == m->pitch && m->pitch_in_hz) return (float)(440.0 * pow(2.0, (note - 69.0) / 12.0));
    return note;
}

float rc_model_velocity_value(const rc_model *m, int index, float velocity) {
    /* in double, in live/notes.py's order, so the value is Python's rounded once to float */
    double low = m->low[index], high = m->high[index];
    return (float)(low + (high - low) * velocity / 127.0);
}
