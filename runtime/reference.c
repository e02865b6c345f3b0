/* The periodic reference (model/reference.py): sin kφ, cos kφ for k = 1..K of an oscillator at the pitch
 * parameter's frequency. A voice's phase is a running float64 sum of these steps, as Python's. The Makefile
 * compiles this file without fused multiply-adds so that each step rounds as numpy's does, operation for operation;
 * only pow, sin and cos may differ from numpy's own in the last bit (numpy's SIMD power does in about 5% of
 * pitches on an AVX-512 machine), far below the float32 rounding of the channels. */
#include <math.h>

#include "model.h"

#define TWO_PI 6.283185307179586476925286766559 /* Python's 2.0 * math.pi; C99 has no M_PI */

double rc_reference_increment(const rc_model *m, float pitch) {
    double value = m->pitch_low + (m->pitch_high - m->pitch_low) * (double)pitch;
    double hz = m->pitch_in_hz ? value : 440.0 * pow(2.0, (value - 69.0) / 12.0);
    return TWO_PI * hz / m->sample_rate;
}

void rc_reference_at(int harmonics, double phase, float *channels) {
    for (int k = 1; k <= harmonics; k++) {
        double angle = phase * k;
        channels[2 * k - 2] = (float)sin(angle);
        channels[2 * k - 1] = (float)cos(angle);
    }
}
