/* Reading a safetensors file's header: the tensors' names, shapes and byte ranges, and the string metadata.
 * Every offset and size is checked against the buffer, so a truncated or malformed file is refused, not read past. */
#ifndef RNNCONTROL_SAFETENSORS_H
#define RNNCONTROL_SAFETENSORS_H

#include <stddef.h>
#include <stdint.h>

#define ST_MAX_DIMS 8
/* The safetensors format's own limit on the JSON header (utils/model_file_header.py's MAX_HEADER_SIZE). */
#define ST_MAX_HEADER_SIZE 100000000

typedef struct {
    char *name;
    char *dtype;
    int ndim;
    uint64_t shape[ST_MAX_DIMS];
    const unsigned char *data; /* inside the buffer given to st_parse */
    uint64_t nbytes;
} st_tensor;

typedef struct {
    char *key;
    char *value;
} st_entry;

typedef struct {
    st_tensor *tensors;
    int num_tensors;
    st_entry *metadata;
    int num_metadata;
} st_file;

/* Parses the header of buffer[0..size) into out; returns 0, or -1 with a message in error. */
int st_parse(const unsigned char *buffer, size_t size, st_file *out, char *error, size_t error_size);
void st_free(st_file *file);
const st_tensor *st_tensor_named(const st_file *file, const char *name);
const char *st_metadata(const st_file *file, const char *key);

#endif
