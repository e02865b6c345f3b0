/* Loads each model file of a stream through the runtime's loader: built with AddressSanitizer and
 * UndefinedBehaviorSanitizer (`make -C runtime sanitize`), it is the C half of tests/test_model_file_fuzz.py.
 *
 * Reads records from stdin, each an 8-byte little-endian length and that many bytes, and prints one line a record:
 * "accepted", or "refused: " and the loader's reason. An accepted model renders a few samples, which must be
 * finite audio in [-1, 1]. Any sanitizer report ends the run with a non-zero status. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>

#include "rnncontrol.h"

/* Reads one record into a new allocation; returns 0 at the end of the stream, -1 on a short record. */
static int read_record(unsigned char **content, size_t *size) {
    unsigned char length[8];
    size_t got = fread(length, 1, sizeof length, stdin);
    if (got == 0) return 0;
    if (got != sizeof length) return -1;
    uint64_t n = 0;
    for (int i = 7; i >= 0; i--) n = (n << 8) | length[i];
    *content = malloc(n ? (size_t)n : 1);
    if (!*content || fread(*content, 1, (size_t)n, stdin) != (size_t)n) return -1;
    *size = (size_t)n;
    return 1;
}

/* Plays 64 samples: every class the model can draw must decode to audio in [-1, 1]. */
static int plays(const rc_model *model) {
    rc_voice *voice = rc_voice_new(model, 1);
    if (!voice) return 0;
    float audio[64];
    rc_voice_render(voice, audio, 64);
    rc_voice_free(voice);
    for (int i = 0; i < 64; i++)
        if (!(fabsf(audio[i]) <= 1.0f)) return 0;
    return 1;
}

int main(void) {
    unsigned char *content = NULL;
    size_t size = 0;
    int status;
    while ((status = read_record(&content, &size)) == 1) {
        char error[512];
        rc_model *model = rc_model_load_buffer(content, size, error, sizeof error);
        free(content);
        if (!model) {
            printf("refused: %s\n", error);
            continue;
        }
        int ok = plays(model);
        rc_model_free(model);
        if (!ok) {
            printf("accepted, but played audio outside [-1, 1]\n");
            return 2;
        }
        printf("accepted\n");
    }
    if (status < 0) {
        fprintf(stderr, "fuzz_model_file: a record is shorter than its length\n");
        return 1;
    }
    return 0;
}
