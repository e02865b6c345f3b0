/* A safetensors file is an 8-byte little-endian header length, a JSON header, then the tensors' bytes. The JSON
 * here is the small subset that format uses: one object of tensor entries and "__metadata__" (strings to strings),
 * read strictly (UTF-8, JSON's escapes, no duplicate or unknown keys, nothing after the object), so that
 * utils/model_file_header.py, which reads it with Python's json module, accepts exactly the same headers. */
#include "safetensors.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Far more than any model of ours holds (256 layers make 1030 tensors, 1024 parameters 3087 metadata entries);
 * it bounds what a hostile header can make us allocate and the time the duplicate-key checks take. */
#define ST_MAX_ENTRIES 10000

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

/* Appends code point u (below 0x110000, no surrogate) as UTF-8; never longer than the escapes it came from. */
static char *put_utf8(char *out, unsigned u) {
    if (u < 0x80) {
        *out++ = (char)u;
    } else if (u < 0x800) {
        *out++ = (char)(0xC0 | (u >> 6));
        *out++ = (char)(0x80 | (u & 0x3F));
    } else if (u < 0x10000) {
        *out++ = (char)(0xE0 | (u >> 12));
        *out++ = (char)(0x80 | ((u >> 6) & 0x3F));
        *out++ = (char)(0x80 | (u & 0x3F));
    } else {
        *out++ = (char)(0xF0 | (u >> 18));
        *out++ = (char)(0x80 | ((u >> 12) & 0x3F));
        *out++ = (char)(0x80 | ((u >> 6) & 0x3F));
        *out++ = (char)(0x80 | (u & 0x3F));
    }
    return out;
}

/* Reads the 4 hex digits after "\u" at s (s + 4 < end), or returns -1. */
static long read_hex4(const char *s, const char *end) {
    long u = 0;
    for (int i = 1; i <= 4; i++) {
        int h = s + i < end ? hex_value(s[i]) : -1;
        if (h < 0) return -1;
        u = u * 16 + h;
    }
    return u;
}

/* Decodes the \u escape at s (pointing at 'u'), a surrogate pair included; returns the code point and moves *s to
 * its last character, or returns -1 for a malformed escape, a lone surrogate half or U+0000 (which would cut a
 * C string short, so that this reader and Python's would see different names). */
static long unicode_escape(const char **s, const char *end) {
    long u = read_hex4(*s, end);
    if (u <= 0 || (u >= 0xDC00 && u <= 0xDFFF)) return -1;
    *s += 4;
    if (u < 0xD800 || u > 0xDBFF) return u;
    if (*s + 2 >= end || (*s)[1] != '\\' || (*s)[2] != 'u') return -1;
    long low = read_hex4(*s + 2, end);
    if (low < 0xDC00 || low > 0xDFFF) return -1;
    *s += 6;
    return 0x10000 + ((u - 0xD800) << 10) + (low - 0xDC00);
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
        if ((unsigned char)*s < 0x20) {
            free(out);
            return fail(c, "malformed header: a control character inside a string");
        }
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
        case '"': case '\\': case '/': *o++ = *s; break;
        case 'u': {
            long u = unicode_escape(&s, c->at);
            if (u < 0) {
                free(out);
                return fail(c, "malformed header: a bad \\u escape (malformed, a lone surrogate or \\u0000)");
            }
            o = put_utf8(o, (unsigned)u);
            break;
        }
        default:
            free(out);
            return fail(c, "malformed header: an unknown escape in a string");
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
    if (*c->at == '0' && c->at + 1 < c->end && c->at[1] >= '0' && c->at[1] <= '9')
        return fail(c, "malformed header: a number with a leading zero");
    uint64_t v = 0;
    while (c->at < c->end && *c->at >= '0' && *c->at <= '9') {
        unsigned digit = (unsigned)(*c->at++ - '0');
        if (v > (UINT64_MAX - digit) / 10) return fail(c, "malformed header: a size overflows 64 bits");
        v = v * 10 + digit;
    }
    *value = v;
    return 0;
}

/* Returns whether key is among the first `count` metadata keys. */
static int metadata_has(const st_file *file, int count, const char *key) {
    for (int i = 0; i < count; i++)
        if (strcmp(file->metadata[i].key, key) == 0) return 1;
    return 0;
}

static int parse_metadata(cursor *c, st_file *out) {
    if (expect(c, '{')) return -1;
    if (accept(c, '}')) return 0;
    do {
        if (out->num_metadata >= ST_MAX_ENTRIES) return fail(c, "malformed header: more than %d metadata entries", ST_MAX_ENTRIES);
        st_entry *grown = realloc(out->metadata, sizeof *grown * (size_t)(out->num_metadata + 1));
        if (!grown) return fail(c, "out of memory");
        out->metadata = grown;
        st_entry *entry = &grown[out->num_metadata];
        entry->key = entry->value = NULL;
        out->num_metadata++;
        if (parse_string(c, &entry->key)) return -1;
        if (metadata_has(out, out->num_metadata - 1, entry->key))
            return fail(c, "malformed header: metadata '%s' is given twice", entry->key);
        if (expect(c, ':') || parse_string(c, &entry->value)) return -1;
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

/* Reads the value of a tensor's field `key`: each of dtype, shape and data_offsets once, nothing else. */
static int parse_tensor_field(cursor *c, const char *key, st_tensor *tensor, uint64_t *offsets, int *num_offsets) {
    int is_dtype = strcmp(key, "dtype") == 0, is_shape = strcmp(key, "shape") == 0;
    if (!is_dtype && !is_shape && strcmp(key, "data_offsets") != 0)
        return fail(c, "malformed header: tensor '%s' has an unknown field '%s'", tensor->name, key);
    if (is_dtype ? tensor->dtype != NULL : is_shape ? tensor->ndim >= 0 : *num_offsets >= 0)
        return fail(c, "malformed header: tensor '%s' gives '%s' twice", tensor->name, key);
    if (expect(c, ':')) return -1;
    if (is_dtype) return parse_string(c, &tensor->dtype);
    if (is_shape) return parse_sizes(c, tensor->shape, ST_MAX_DIMS, &tensor->ndim);
    return parse_sizes(c, offsets, 2, num_offsets);
}

static int parse_tensor(cursor *c, st_tensor *tensor, const unsigned char *data, uint64_t data_size) {
    uint64_t offsets[2] = {0, 0};
    int num_offsets = -1;
    tensor->ndim = -1;
    if (expect(c, '{')) return -1;
    do {
        char *key;
        if (parse_string(c, &key)) return -1;
        int status = parse_tensor_field(c, key, tensor, offsets, &num_offsets);
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

/* Adds the tensor entry `key` (which it then owns) and reads its fields. */
static int parse_tensor_entry(cursor *c, st_file *out, char *key, const unsigned char *data, uint64_t data_size) {
    if (st_tensor_named(out, key) || out->num_tensors >= ST_MAX_ENTRIES) {
        if (out->num_tensors >= ST_MAX_ENTRIES) fail(c, "malformed header: more than %d tensors", ST_MAX_ENTRIES);
        else fail(c, "malformed header: tensor '%s' is given twice", key);
        free(key);
        return -1;
    }
    st_tensor *grown = realloc(out->tensors, sizeof *grown * (size_t)(out->num_tensors + 1));
    if (!grown) {
        free(key);
        return fail(c, "out of memory");
    }
    out->tensors = grown;
    st_tensor *tensor = &grown[out->num_tensors++];
    memset(tensor, 0, sizeof *tensor);
    tensor->name = key;
    return parse_tensor(c, tensor, data, data_size);
}

/* Returns the length of the valid UTF-8 sequence at s (before end), or 0: no overlong forms, no surrogates, nothing
 * above U+10FFFF, as Python's bytes.decode("utf-8") requires. */
static int utf8_length(const unsigned char *s, const unsigned char *end) {
    if (s[0] < 0x80) return 1;
    int n = s[0] >= 0xC2 && s[0] <= 0xDF ? 2 : s[0] >= 0xE0 && s[0] <= 0xEF ? 3 : s[0] >= 0xF0 && s[0] <= 0xF4 ? 4 : 0;
    if (n == 0 || end - s < n) return 0;
    for (int i = 1; i < n; i++)
        if ((s[i] & 0xC0) != 0x80) return 0;
    if ((s[0] == 0xE0 && s[1] < 0xA0) || (s[0] == 0xED && s[1] > 0x9F) || (s[0] == 0xF0 && s[1] < 0x90) ||
        (s[0] == 0xF4 && s[1] > 0x8F))
        return 0;
    return n;
}

static int check_utf8(cursor *c) {
    const unsigned char *s = (const unsigned char *)c->at, *end = (const unsigned char *)c->end;
    while (s < end) {
        int n = utf8_length(s, end);
        if (n == 0) return fail(c, "malformed header: not UTF-8 (at byte %ld)", (long)(s - (const unsigned char *)c->at));
        s += n;
    }
    return 0;
}

static int parse_entries(cursor *c, st_file *out, const unsigned char *data, uint64_t data_size) {
    int has_metadata = 0;
    if (accept(c, '}')) return 0;
    do {
        char *key;
        if (parse_string(c, &key)) return -1;
        if (expect(c, ':')) {
            free(key);
            return -1;
        }
        if (strcmp(key, "__metadata__") != 0) {
            if (parse_tensor_entry(c, out, key, data, data_size)) return -1;
            continue;
        }
        free(key);
        if (has_metadata++) return fail(c, "malformed header: '__metadata__' is given twice");
        if (parse_metadata(c, out)) return -1;
    } while (accept(c, ','));
    return expect(c, '}');
}

int st_parse(const unsigned char *buffer, size_t size, st_file *out, char *error, size_t error_size) {
    memset(out, 0, sizeof *out);
    cursor c = {NULL, NULL, error, error_size};
    if (size < 8) return fail(&c, "file too short (%zu bytes) to be safetensors", size);
    uint64_t header_size = 0;
    for (int i = 7; i >= 0; i--) header_size = (header_size << 8) | buffer[i];
    if (header_size > ST_MAX_HEADER_SIZE)
        return fail(&c, "header of %llu bytes is over the limit of %d: not a model file",
                    (unsigned long long)header_size, ST_MAX_HEADER_SIZE);
    if (header_size > size - 8)
        return fail(&c, "header of %llu bytes is longer than the file: truncated or not safetensors",
                    (unsigned long long)header_size);
    c.at = (const char *)buffer + 8;
    c.end = c.at + header_size;
    const unsigned char *data = buffer + 8 + header_size;
    uint64_t data_size = size - 8 - header_size;
    if (check_utf8(&c) || expect(&c, '{') || parse_entries(&c, out, data, data_size)) return -1;
    skip_space(&c);
    if (c.at != c.end) return fail(&c, "malformed header: text after its closing '}'");
    return 0;
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
