"""Autoregressive sampling compiled with numba: the whole generation loop runs natively from the model's weights.

The recurrence is PyTorch's GRU (gates r, z, n in PyTorch's order) in float32. Each voice draws from its own
splitmix64 random stream, so a voice's audio depends on its seed and conditioning, not on threads or other voices.
"""
from __future__ import annotations

import math
import time
from typing import NamedTuple

import numba
import numpy as np
import torch
from numba import prange

from audioDataLoader.audio_dataset import input_value_table
from audioDataLoader.mulaw import mu_law_encode
from model.gru_audio_model import RNN

# Every fast-math licence except assuming no infinities or NaNs (the top-n search starts from -inf); numpy's error
# model, because Python's zero-division check on every `/` keeps LLVM from vectorising the gate loops. nogil: a
# live player generates on its own thread while the main thread keeps handling controls.
_COMPILE = dict(cache=True, nogil=True, error_model="numpy",
                fastmath={"nsz", "arcp", "contract", "afn", "reassoc"})
# Helpers are inlined into the compiled entry points, whose flags they then take.
_inline = numba.njit(inline="always")

# tanh(x) ~ x * P(x^2) / Q(x^2) on [-9, 9]: a rational fit of our own (Lawson-weighted least squares), max abs
# error 3.3e-7 in float32. Unlike math.tanh it is plain arithmetic, so the gate loops vectorise.
_TANH_LIMIT = np.float32(9.0)
_P0, _P1, _P2, _P3, _P4 = (np.float32(c) for c in (0.9999999067296377, 0.133731751393767, 0.0034865535089146503,
                                                    2.0471314991902903e-05, 1.3183444200875801e-08))
_Q1, _Q2, _Q3, _Q4 = (np.float32(c) for c in (0.4670647210915379, 0.02584187514005918, 0.000327133668967056,
                                              7.702356958630684e-07))
_ONE = np.float32(1.0)
_HALF = np.float32(0.5)

_GOLDEN_GAMMA = np.uint64(0x9E3779B97F4A7C15)
_MIX_1 = np.uint64(0xBF58476D1CE4E5B9)
_MIX_2 = np.uint64(0x94D049BB133111EB)


class GRUWeights(NamedTuple):
    """The model's weights in float32, transposed to (inputs, outputs) so that the inner loops run along outputs."""

    in_w_t: np.ndarray  # (1 + P, 3H): layer 0's input weights with the input projection folded in
    in_b: np.ndarray  # (3H,)
    w_ih_t: np.ndarray  # (L - 1, H, 3H): input weights of layers 1.. from the layer below, gate columns r, z, n
    cond_w_t: np.ndarray  # (L - 1, P or 0, 3H): their weights from the parameters (none in the original network)
    b_ih: np.ndarray  # (L - 1, 3H)
    w_hh_t: np.ndarray  # (L, H, 3H)
    b_hh: np.ndarray  # (L, 3H)
    out_w_t: np.ndarray  # (H, N)
    out_b: np.ndarray  # (N,)


def gru_weights(model: RNN) -> GRUWeights:
    """Return the model's weights laid out for the compiled sampler."""
    def array(tensor: torch.Tensor) -> np.ndarray:
        return tensor.detach().cpu().double().numpy()

    def contiguous(values: np.ndarray) -> np.ndarray:
        return np.ascontiguousarray(values, dtype=np.float32)

    layers = [[array(tensor) for tensor in layer] for layer in model.gru_layers()]
    w_ih, w_hh, b_ih, b_hh = ([layer[i] for layer in layers] for i in range(4))
    size, cond_size = model.config.hidden_size, model.config.cond_size
    upper = np.stack(w_ih[1:]) if len(layers) > 1 else np.zeros((0, 3 * size, size))
    proj_w, proj_b = array(model.input_proj.weight), array(model.input_proj.bias)
    # The input projection is linear and feeds only layer 0, so it folds into that layer's (3H, 1+P) weights.
    return GRUWeights(
        in_w_t=contiguous((w_ih[0] @ proj_w).T), in_b=contiguous(w_ih[0] @ proj_b + b_ih[0]),
        w_ih_t=contiguous(upper[:, :, :size].transpose(0, 2, 1)),
        cond_w_t=contiguous(upper[:, :, size:size + cond_size].transpose(0, 2, 1)), b_ih=contiguous(b_ih[1:]),
        w_hh_t=contiguous(np.stack(w_hh).transpose(0, 2, 1)), b_hh=contiguous(np.stack(b_hh)),
        out_w_t=contiguous(array(model.output.weight).T), out_b=contiguous(array(model.output.bias)),
    )


def seed_states(seed: int | None, voices: int) -> np.ndarray:
    """Return one random-stream state (uint64) per voice; voice b's state depends only on seed and b."""
    return np.random.SeedSequence(seed).generate_state(voices, dtype=np.uint64)


@_inline
def _affine_columns(weight_t, bias, vector, out):
    """Write vector @ weight_t + bias into out."""
    out[:] = bias
    _add_columns(weight_t, vector, out)


@_inline
def _add_columns(weight_t, vector, out):
    """Add vector @ weight_t to out."""
    # Passes along the outputs, eight inputs a pass: no sums across vector lanes (which cost more than the products
    # in dot products of 48 inputs), and an eighth of the loads and stores of `out` that one input a pass makes.
    # On an AVX-512 Xeon a 256 x 48 matrix took 515 ns this way, 1,188 ns one input a pass, 1,128 ns by row blocks;
    # a whole step then reads its 245 KB of weights from L2 at close to the cache's speed.
    inputs = weight_t.shape[0]
    k = 0
    while k + 8 <= inputs:
        v0, v1, v2, v3 = vector[k], vector[k + 1], vector[k + 2], vector[k + 3]
        v4, v5, v6, v7 = vector[k + 4], vector[k + 5], vector[k + 6], vector[k + 7]
        for m in range(out.shape[0]):
            out[m] += (weight_t[k, m] * v0 + weight_t[k + 1, m] * v1 + weight_t[k + 2, m] * v2 + weight_t[k + 3, m] * v3
                       + weight_t[k + 4, m] * v4 + weight_t[k + 5, m] * v5 + weight_t[k + 6, m] * v6
                       + weight_t[k + 7, m] * v7)
        k += 8
    for k in range(k, inputs):  # the rest, and layer 0's few inputs (the audio sample and the parameters)
        value = vector[k]
        for m in range(out.shape[0]):
            out[m] += weight_t[k, m] * value


@_inline
def _tanh(x):
    """Return tanh(x) for float32 x, within 3.3e-7."""
    x = min(max(x, -_TANH_LIMIT), _TANH_LIMIT)
    x2 = x * x
    p = (((_P4 * x2 + _P3) * x2 + _P2) * x2 + _P1) * x2 + _P0
    q = (((_Q4 * x2 + _Q3) * x2 + _Q2) * x2 + _Q1) * x2 + _ONE
    return x * p / q


@_inline
def _gru_update(gi, gh, h):
    """Overwrite h with PyTorch's GRU update from gi = W_i x + b_i and gh = W_h h + b_h (gates r, z, n)."""
    size = h.shape[0]
    for j in range(2 * size):
        gi[j] = _HALF + _HALF * _tanh(_HALF * (gi[j] + gh[j]))  # sigmoid, for r then z
    for j in range(size):
        n = _tanh(gi[2 * size + j] + gi[j] * gh[2 * size + j])
        h[j] = n + gi[size + j] * (h[j] - n)


@_inline
def _step(weights, x, hidden, gi, gh, logits):
    """Advance hidden (L, H) by one step of input x (1 + P,) and write the output logits."""
    for layer in range(hidden.shape[0]):
        if layer == 0:
            _affine_columns(weights.in_w_t, weights.in_b, x, gi)
        else:
            _affine_columns(weights.w_ih_t[layer - 1], weights.b_ih[layer - 1], hidden[layer - 1], gi)
            _add_columns(weights.cond_w_t[layer - 1], x[1:], gi)  # nothing to add in the original network
        _affine_columns(weights.w_hh_t[layer], weights.b_hh[layer], hidden[layer], gh)
        _gru_update(gi, gh, hidden[layer])
    _affine_columns(weights.out_w_t, weights.out_b, hidden[hidden.shape[0] - 1], logits)


@numba.njit(**_COMPILE)
def step_logits(weights: GRUWeights, x: np.ndarray, hidden: np.ndarray) -> np.ndarray:
    """Return the logits (N,) for one step of input x (1 + P,), advancing hidden (L, H) in place."""
    gates = weights.w_hh_t.shape[2]
    logits = np.empty(weights.out_b.shape[0], np.float32)
    _step(weights, x, hidden, np.empty(gates, np.float32), np.empty(gates, np.float32), logits)
    return logits


@_inline
def _uniform(state):
    """Return (a float in [0, 1), the next state) from a splitmix64 state."""
    state = state + _GOLDEN_GAMMA
    z = (state ^ (state >> np.uint64(30))) * _MIX_1
    z = (z ^ (z >> np.uint64(27))) * _MIX_2
    z = z ^ (z >> np.uint64(31))
    return np.float64(z >> np.uint64(11)) * (1.0 / 9007199254740992.0), state


@_inline
def _top(logits, count, top_value, top_index):
    """Write the `count` largest logits, largest first, and their indices into top_value and top_index."""
    top_value[:] = -np.inf
    for i in range(logits.shape[0]):
        value = logits[i]
        if value > top_value[count - 1]:
            j = count - 1
            while j > 0 and top_value[j - 1] < value:
                top_value[j] = top_value[j - 1]
                top_index[j] = top_index[j - 1]
                j -= 1
            top_value[j] = value
            top_index[j] = i


@_inline
def _draw(values, indices, inv_temperature, uniform):
    """Return the index drawn with probabilities softmax(values * inv_temperature), overwriting values."""
    largest = values.max()
    total = 0.0
    for i in range(values.shape[0]):
        values[i] = math.exp((values[i] - largest) * inv_temperature)
        total += values[i]
    target = uniform * total
    for i in range(values.shape[0] - 1):
        target -= values[i]
        if target < 0.0:
            return indices[i]
    return indices[values.shape[0] - 1]


@numba.njit(**_COMPILE)
def _sample_voice(weights, cond, previous, hidden, input_values, count, inv_temperature, state, codes):
    """Write codes (T,) generated for one voice's cond (T, P); return (last index, random state). The hot loop."""
    gates = weights.w_hh_t.shape[2]
    x = np.empty(1 + cond.shape[1], np.float32)
    gi = np.empty(gates, np.float32)
    gh = np.empty(gates, np.float32)
    logits = np.empty(weights.out_b.shape[0], np.float32)
    top_value = np.empty(count, np.float32)
    top_index = np.arange(count)
    for t in range(cond.shape[0]):
        x[0] = input_values[previous]
        x[1:] = cond[t]
        _step(weights, x, hidden, gi, gh, logits)
        if count == logits.shape[0]:
            top_value[:] = logits
        else:
            _top(logits, count, top_value, top_index)
        if count == 1:
            previous = top_index[0]
        else:
            uniform, state = _uniform(state)
            previous = _draw(top_value, top_index, inv_temperature, uniform)
        codes[t] = previous
    return previous, state


@numba.njit(parallel=True, **_COMPILE)
def _sample_voices(weights, cond, previous, hidden, input_values, count, inv_temperature, states, codes):
    """Run `_sample_voice` for every voice, in parallel over numba's threads."""
    # Whole voices per thread, with nothing shared per step: on 2 cores this beat batching the matrix products
    # over voices on one thread (64 voices: 1.4x), and it leaves one voice's code exactly the single-voice code.
    for b in prange(cond.shape[0]):
        previous[b], states[b] = _sample_voice(weights, cond[b], previous[b], hidden[b], input_values, count,
                                               inv_temperature, states[b], codes[b])


def sample_numba(weights: GRUWeights, cond: np.ndarray, previous: np.ndarray, hidden: np.ndarray,
                 input_values: np.ndarray, top_n: int | None, temperature: float,
                 states: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Return (mu-law indices (B, T), hidden (B, L, H)) generated for cond (B, T, P) after indices `previous` (B,).

    The compiled twin of `sample_torch`. previous (int64), hidden (float32) and the random states (uint64, from
    `seed_states`) are advanced in place, so the next call continues the same streams.
    """
    numtokens = input_values.shape[0]
    count = numtokens if top_n is None or top_n <= 0 or top_n >= numtokens else top_n
    codes = np.empty(cond.shape[:2], dtype=np.int64)
    _sample_voices(weights, np.ascontiguousarray(cond, dtype=np.float32), previous, hidden,
                   np.ascontiguousarray(input_values, dtype=np.float32), int(count), float(1.0 / temperature),
                   states, codes)
    return codes, hidden


def compile_sampler(weights: GRUWeights) -> tuple[float, bool]:
    """Make the sampler ready for weights of this layout; return (seconds taken, whether it had to compile).

    No compile when this process already has the code or numba's on-disk cache had it (then the seconds are those
    of loading it). numba's dispatcher counts a cache miss exactly when it compiles, so nothing is guessed from time.
    """
    misses = sum(_sample_voices.stats.cache_misses.values())
    start = time.perf_counter()
    layers, size = weights.w_hh_t.shape[:2]
    parameters, numtokens = weights.in_w_t.shape[0] - 1, weights.out_b.shape[0]
    # The first parallel call starts numba's thread pool. Its OpenMP layer is PyTorch's OpenMP runtime, and starting
    # sets that runtime's thread count to numba's: a process training on one thread would train on every core after
    # its first generation, its threads spinning against each other on a busy machine. Keep PyTorch's count.
    torch_threads = torch.get_num_threads()
    try:
        sample_numba(weights, np.zeros((1, 0, parameters), np.float32), np.zeros(1, np.int64),
                     np.zeros((1, layers, size), np.float32), np.zeros(numtokens, np.float32), 1, 1.0,
                     seed_states(0, 1))
    finally:
        torch.set_num_threads(torch_threads)
    return time.perf_counter() - start, sum(_sample_voices.stats.cache_misses.values()) > misses


class NumbaVoices:
    """B voices for `sample_numba`: the model's weights, last indices, hidden states and random streams."""

    def __init__(self, model: RNN, previous: torch.Tensor, hidden: torch.Tensor, encode: bool, seed: int | None,
                 threads: int | None = None) -> None:
        self.weights = gru_weights(model)
        self.previous = previous.cpu().numpy().astype(np.int64)
        self.hidden = np.ascontiguousarray(hidden.detach().transpose(0, 1).cpu().numpy(), dtype=np.float32)
        self.input_values = input_value_table(model.config.numtokens, encode).numpy().astype(np.float32)
        self.silence = int(mu_law_encode(np.zeros(1), model.config.numtokens)[0])
        self.states = seed_states(seed, len(self.previous))
        self.threads = threads
        _, self.compiled = compile_sampler(self.weights)

    def __len__(self) -> int:
        return len(self.previous)

    def sample(self, cond: np.ndarray | torch.Tensor, top_n: int | None, temperature: float,
               which: np.ndarray | None = None) -> np.ndarray:
        """Return the next mu-law indices (len(which), T) for cond (len(which), T, P), carrying the voices' state on."""
        if isinstance(cond, torch.Tensor):
            cond = cond.cpu().numpy()
        callers_threads = numba.get_num_threads()
        numba.set_num_threads(min(self.threads or numba.config.NUMBA_NUM_THREADS, numba.config.NUMBA_NUM_THREADS))
        try:
            if which is None:
                codes, self.hidden = sample_numba(self.weights, cond, self.previous, self.hidden, self.input_values,
                                                  top_n, temperature, self.states)
                return codes
            previous, hidden, states = self.previous[which], self.hidden[which], self.states[which]
            codes, hidden = sample_numba(self.weights, cond, previous, hidden, self.input_values, top_n, temperature,
                                         states)
            self.previous[which], self.hidden[which], self.states[which] = previous, hidden, states
            return codes
        finally:
            numba.set_num_threads(callers_threads)  # numba's thread count is per thread: leave the caller's as it was

    def restart(self, voice: int, random_state: int) -> None:
        """Put `voice` back to silence and a zero hidden state, drawing next from the stream `random_state`."""
        self.previous[voice], self.hidden[voice], self.states[voice] = self.silence, 0.0, random_state

    def finite(self, which: np.ndarray) -> np.ndarray:
        """Return for each voice in `which` whether its hidden state is finite."""
        return np.isfinite(self.hidden[which]).all(axis=(1, 2))
