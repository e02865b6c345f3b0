/* A safetensors file is an 8-byte little-endian header length, a JSON header, then the tensors' bytes. The JSON
 * here is the small subset that format uses: one object of tensor entries and "__metadata__" (strings to strings). */
#include "safetensors.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Far more than any model of ours holds; it bounds what a hostile header can make us allocate. */
#define ST_MAX_ENTRIES 100000

typedef struct {
    const char *at, *end;
    char *error;
    size_t error_size;
} cursor;

static int fail(cursor *c, const char *format, ...) {
    va_list args;
    va_start(args, format);
    vsnprintf(c->error, c->error_size, format, args);
    va_end(args);
    return -1;
}

static void skip_space(cursor *c) {
    while (c->at < c->end && (*c->at == ' ' || *c->at == '\t' || *c->at == '\n' || *c->at == '\r')) c->at++;
}

static int expect(cursor *c, char wanted) {
    skip_space(c);
    if (c->at >= c->end || *c->at != wanted)
        return fail(c, "malformed header: expected '%c'", wanted);
    c->at++;
    return 0;
}

/* Returns whether the next character (after spaces) is `wanted`, consuming it if so. */
static int accept(cursor *c, char wanted) {
    skip_space(c);
    if (c->at < c->end && *c->at == wanted) {
        c->at++;
        return 1;
    }
    return 0;
}

static int hex_value(char h) {
    if (h >= '0' && h <= '9') return h - '0';
    if (h >= 'a' && h <= 'f') return h - 'a' + 10;
    if (h >= 'A' && h <= 'F') return h - 'A' + 10;
    return -1;
}

/* Appends code point u as UTF-8; the output never outgrows the escaped input it came from. */
static char *put_utf8(char *out, unsigned u) {
    if (u < 0x80) {
        *out++ = (char)u;
    } else if (u < 0x800) {
        *out++ = (char)(0xC0 | (u >> 6));
        *out++ = (char)(0x80 | (u & 0x3F));
    } else {
        *out++ = (char)(0xE0 | (u >> 12));
        *out++ = (char)(0x80 | ((u >> 6) & 0x3F));
        *out++ = (char)(0x80 | (u & 0x3F));
    }
    return out;
}

/* Parses a JSON string into a new NUL-terminated allocation in *text. */
static int parse_string(cursor *c, char **text) {
    if (expect(c, '"')) return -1;
    const char *start = c->at;
    while (c->at < c->end && *c->at != '"') c->at += (*c->at == '\\') ? 2 : 1;
    if (c->at >= c->end) return fail(c, "malformed header: unterminated string");
    char *out = malloc((size_t)(c->at - start) + 1), *o = out;
    if (!out) return fail(c, "out of memory");
    for (const char *s = start; s < c->at; s++) {
        if (*s != '\\') {
            *o++ = *s;
            continue;
        }
        s++;
        switch (*s) {
        case 'n': *o++ = '\n'; break;
        case 't': *o++ = '\t'; break;
        case 'r': *o++ = '\r'; break;
        case 'b': *o++ = '\b'; break;
        case 'f': *o++ = '\f'; break;
        case 'u': {
            unsigned u = 0;
            for (int i = 1; i <= 4; i++) {
                int h = s + i < c->at ? hex_value(s[i]) : -1;
                if (h < 0) {
                    free(out);
                    return fail(c, "malformed header: bad \\u escape");
                }
                u = u * 16 + (unsigned)h;
            }
            s += 4;
            o = put_utf8(o, u); /* a lone surrogate half stays as its own 3 bytes; names here are plain */
            break;
        }
        default: *o++ = *s; break; /* \" \\ \/ */
        }
    }
    *o = '\0';
    c->at++;
    *text = out;
    return 0;
}

static int parse_unsigned(cursor *c, uint64_t *value) {
    skip_space(c);
    if (c->at >= c->end || *c->at < '0' || *c->at > '9') return fail(c, "malformed header: expected a size");
    uint64_t v = 0;
    while (c->at < c->end && *c->at >= '0' && *c->at <= '9') {
        unsigned digit = (unsigned)(*c->at++ - '0');
        if (v > (UINT64_MAX - digit) / 10) return fail(c, "malformed header: a size overflows 64 bits");
        v = v * 10 + digit;
    }
    *value = v;
    return 0;
}

/* Skips any JSON value: entries the format may add that we do not read. */
static int skip_value(cursor *c, int depth) {
    if (depth > 32) return fail(c, "malformed header: nested too deeply");
    skip_space(c);
    if (c->at >= c->end) return fail(c, "malformed header: ends inside a value");
    if (*c->at == '"') {
        char *text;
        if (parse_string(c, &text)) return -1;
        free(text);
        return 0;
    }
    if (*c->at == '{' || *c->at == '[') {
        char close = *c->at == '{' ? '}' : ']';
        c->at++;
        if (accept(c, close)) return 0;
        do {
            if (close == '}') {
                char *key;
                if (parse_string(c, &key)) return -1;
                free(key);
                if (expect(c, ':')) return -1;
            }
            if (skip_value(c, depth + 1)) return -1;
        } while (accept(c, ','));
        return expect(c, close);
    }
    while (c->at < c->end && strchr(",}] \t\r\n", *c->at) == NULL) c->at++; /* number, true, false, null */
    return 0;
}

static int parse_metadata(cursor *c, st_file *out) {
    if (expect(c, '{')) return -1;
    if (accept(c, '}')) return 0;
    do {
        if (out->num_metadata >= ST_MAX_ENTRIES) return fail(c, "malformed header: too many metadata entries");
        st_entry *grown = realloc(out->metadata, sizeof *grown * (size_t)(out->num_metadata + 1));
        if (!grown) return fail(c, "out of memory");
        out->metadata = grown;
        st_entry *entry = &grown[out->num_metadata];
        entry->key = entry->value = NULL;
        out->num_metadata++;
        if (parse_string(c, &entry->key) || expect(c, ':') || parse_string(c, &entry->value)) return -1;
    } while (accept(c, ','));
    return expect(c, '}');
}

static int parse_sizes(cursor *c, uint64_t *values, int most, int *count) {
    *count = 0;
    if (expect(c, '[')) return -1;
    if (accept(c, ']')) return 0;
    do {
        if (*count >= most) return fail(c, "malformed header: more than %d numbers in a list", most);
        if (parse_unsigned(c, &values[(*count)++])) return -1;
    } while (accept(c, ','));
    return expect(c, ']');
}

static int parse_tensor(cursor *c, st_tensor *tensor, const unsigned char *data, uint64_t data_size) {
    uint64_t offsets[2];
    int num_offsets = -1;
    tensor->ndim = -1;
    if (expect(c, '{')) return -1;
    do {
        char *key;
        if (parse_string(c, &key)) return -1;
        int status = expect(c, ':');
        if (status == 0 && strcmp(key, "dtype") == 0) {
            free(tensor->dtype); /* a repeated key: the last one counts */
            tensor->dtype = NULL;
            status = parse_string(c, &tensor->dtype);
        } else if (status == 0 && strcmp(key, "shape") == 0) {
            status = parse_sizes(c, tensor->shape, ST_MAX_DIMS, &tensor->ndim);
        } else if (status == 0 && strcmp(key, "data_offsets") == 0) {
            status = parse_sizes(c, offsets, 2, &num_offsets);
        } else if (status == 0) {
            status = skip_value(c, 1);
        }
        free(key);
        if (status) return -1;
    } while (accept(c, ','));
    if (expect(c, '}')) return -1;
    if (!tensor->dtype || tensor->ndim < 0 || num_offsets != 2)
        return fail(c, "tensor '%s' lacks its dtype, shape or data_offsets", tensor->name);
    if (offsets[0] > offsets[1] || offsets[1] > data_size)
        return fail(c, "tensor '%s' lies outside the file (bytes %llu..%llu of %llu): the file is truncated",
                    tensor->name, (unsigned long long)offsets[0], (unsigned long long)offsets[1],
                    (unsigned long long)data_size);
    tensor->data = data + offsets[0];
    tensor->nbytes = offsets[1] - offsets[0];
    return 0;
}

int st_parse(const unsigned char *buffer, size_t size, st_file *out, char *error, size_t error_size) {
    memset(out, 0, sizeof *out);
    cursor c = {NULL, NULL, error, error_size};
    if (size < 8) return fail(&c, "file too short (%zu bytes) to be safetensors", size);
    uint64_t header_size = 0;
    for (int i = 7; i >= 0; i--) header_size = (header_size << 8) | buffer[i];
    if (header_size > size - 8)
        return fail(&c, "header of %llu bytes is longer than the file: truncated or not safetensors",
                    (unsigned long long)header_size);
    c.at = (const char *)buffer + 8;
    c.end = c.at + header_size;
    const unsigned char *data = buffer + 8 + header_size;
    uint64_t data_size = size - 8 - header_size;
    if (expect(&c, '{')) return -1;
    if (accept(&c, '}')) return 0;
    do {
        char *key;
        if (parse_string(&c, &key)) return -1;
        if (expect(&c, ':')) {
            free(key);
            return -1;
        }
        if (strcmp(key, "__metadata__") == 0) {
            free(key);
            if (parse_metadata(&c, out)) return -1;
            continue;
        }
        if (out->num_tensors >= ST_MAX_ENTRIES) {
            free(key);
            return fail(&c, "malformed header: too many tensors");
        }
        st_tensor *grown = realloc(out->tensors, sizeof *grown * (size_t)(out->num_tensors + 1));
        if (!grown) {
            free(key);
            return fail(&c, "out of memory");
        }
        out->tensors = grown;
        st_tensor *tensor = &grown[out->num_tensors++];
        memset(tensor, 0, sizeof *tensor);
        tensor->name = key;
        if (parse_tensor(&c, tensor, data, data_size)) return -1;
    } while (accept(&c, ','));
    return expect(&c, '}');
}

void st_free(st_file *file) {
    for (int i = 0; i < file->num_tensors; i++) {
        free(file->tensors[i].name);
        free(file->tensors[i].dtype);
    }
    for (int i = 0; i < file->num_metadata; i++) {
        free(file->metadata[i].key);
        free(file->metadata[i].value);
    }
    free(file->tensors);
    free(file->metadata);
    memset(file, 0, sizeof *file);
}

const st_tensor *st_tensor_named(const st_file *file, const char *name) {
    for (int i = 0; i < file->num_tensors; i++)
        if (strcmp(file->tensors[i].name, name) == 0) return &file->tensors[i];
    return NULL;
}

const char *st_metadata(const st_file *file, const char *key) {
    for (int i = 0; i < file->num_metadata; i++)
        if (strcmp(file->metadata[i].key, key) == 0) return file->metadata[i].value;
    return NULL;
}
