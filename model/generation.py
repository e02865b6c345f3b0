"""Generation from a trained model: priming, the block-by-block stream, and one-call generation on any backend."""
from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import numpy as np
import torch

from audioDataLoader.audio_dataset import input_value_table
from audioDataLoader.mulaw import mu_law_decode, mu_law_encode
from model.gru_audio_model import RNN
from model.reference import PeriodicReference
from model.sampler import Voices, choose_backend, make_voices
from utils.checks import check_finite_array, check_sampling_settings


@torch.no_grad()
def prime(model: RNN, warmup_sequence: np.ndarray | torch.Tensor | None, cond: torch.Tensor,
          input_values: torch.Tensor, reference: PeriodicReference | None = None
          ) -> tuple[torch.Tensor, torch.Tensor, np.ndarray]:
    """Return (last warm-up index (B,), hidden, reference phase (B,)) after running the warm-up through the model.

    The warm-up is float audio in [-1, 1], fed with the first parameters of each voice (and the reference, from
    phase 0 on); its last sample is the first fed-back input. With no warm-up, generation starts from silence.
    """
    batch, device, numtokens = cond.shape[0], cond.device, model.config.numtokens
    hidden, phase = model.init_hidden(batch, device), np.zeros(batch)
    if warmup_sequence is None or len(warmup_sequence) == 0:
        return mu_law_encode(torch.zeros(batch, device=device), numtokens), hidden, phase
    check_finite_array("warmup_sequence", warmup_sequence)
    codes = mu_law_encode(torch.as_tensor(warmup_sequence, dtype=torch.float32, device=device), numtokens)
    if len(codes) > 1:
        audio_in = input_values[codes[:-1]][None, :, None].expand(batch, -1, 1)
        params = cond[:, :1].expand(-1, len(codes) - 1, -1)
        if reference is not None:
            channels, phase = reference.channels(params.cpu().numpy(), phase)
            params = torch.cat([params, torch.from_numpy(channels).to(device)], dim=-1)
        _, hidden = model(torch.cat([audio_in, params], dim=-1), hidden)
    return codes[-1].expand(batch).clone(), hidden, phase


@dataclass(frozen=True)
class GenerationRate:
    """How fast a block was generated: `samples` over all voices in `seconds`, for audio at `sample_rate`."""

    samples: int
    seconds: float
    sample_rate: int

    @property
    def samples_per_second(self) -> float:
        """Return the samples generated per second, all voices together."""
        return self.samples / self.seconds

    @property
    def real_time(self) -> float:
        """Return how many times faster than real time generation ran (above 1 it keeps up with playback)."""
        return self.samples_per_second / self.sample_rate


@contextmanager
def _evaluating(model: RNN) -> Iterator[None]:
    was_training = model.training
    model.eval()
    try:
        yield
    finally:
        model.train(was_training)


class SynthStream:
    """The model playing as a stream: each `render` continues the audio where the previous block stopped.

    Conditioning is in [0, 1] per parameter (`parameter_trajectory` builds it from a run's own units), so the
    controls can change from block to block while the hidden state, last sample and random streams carry over:
    blocks rendered one after another equal one long call with the same seed. The first block primes the network
    with `warmup_sequence` and fixes the number of voices, (n, P) for one voice or (B, n, P) for B voices. The
    numba and c backends play the weights the model had at the first block. `rate` tells how fast the last block ran.
    A run trained with a periodic reference plays with it: `reference=PeriodicReference.of(config["data"])`.
    """

    def __init__(self, model: RNN, warmup_sequence: np.ndarray | torch.Tensor | None = None,
                 top_n: int | None = 3, temperature: float = 1.0, seed: int | None = None, encode: bool = True,
                 backend: str = "auto", sample_rate: int = 16000, reference: PeriodicReference | None = None) -> None:
        check_sampling_settings(top_n, temperature)
        self.model, self.warmup_sequence, self.seed, self.sample_rate = model, warmup_sequence, seed, sample_rate
        self.encode, self.reference = encode, reference
        self.top_n, self.temperature = top_n, temperature
        self.backend = choose_backend(model, backend)
        self.device = next(model.parameters()).device
        self.input_values = input_value_table(model.config.numtokens, encode).to(self.device)
        self.voices: Voices | None = None
        self.rate: GenerationRate | None = None
        self.compile_seconds: float | None = None  # how long the first block spent compiling the numba sampler

    def render(self, cond: np.ndarray | torch.Tensor) -> np.ndarray:
        """Return the next block of float audio, (n,) for cond (n, P) or (B, n) for cond (B, n, P)."""
        start = time.perf_counter()
        size = self.model.config.cond_size - (self.reference.size if self.reference else 0)
        block = torch.as_tensor(cond, dtype=torch.float32, device=self.device).detach()
        check_finite_array("conditioning", block)
        single = block.ndim == 2
        if single:
            block = block[None]
        if block.ndim != 3 or block.shape[-1] != size:
            raise ValueError(f"conditioning must be (T, {size}) or (B, T, {size}) for this model, got shape "
                             f"{tuple(block.shape)}; a run trained with a periodic reference plays with "
                             "reference=PeriodicReference.of(config['data'])")
        with _evaluating(self.model):
            ready_seconds = 0.0  # making the voices (compiling or loading the numba sampler) is left out of `rate`
            if self.voices is None:
                self.voices = self._start(block)
                ready_seconds = time.perf_counter() - start
                self.compile_seconds = ready_seconds if self.voices.compiled else None
            elif len(self.voices) != len(block):
                raise ValueError(f"this stream plays {len(self.voices)} voice(s), got conditioning for "
                                 f"{len(block)}; make a new SynthStream to change the number of voices")
            codes = self.voices.sample(block, self.top_n, self.temperature)
        audio = mu_law_decode(codes, self.model.config.numtokens)
        self.rate = GenerationRate(codes.size, time.perf_counter() - start - ready_seconds, self.sample_rate)
        return audio[0] if single else audio

    def hold(self, values: np.ndarray | list[float], num_samples: int) -> np.ndarray:
        """Return the next num_samples of audio with the parameters held at values, (P,) or (B, P) in [0, 1]."""
        values = np.asarray(values, dtype=np.float32)
        return self.render(np.repeat(values[..., None, :], num_samples, axis=-2))

    def _start(self, block: torch.Tensor) -> Voices:
        previous, hidden, phase = prime(self.model, self.warmup_sequence, block, self.input_values, self.reference)
        return make_voices(self.backend, self.model, previous, hidden, self.encode, self.seed,
                           reference=self.reference, phase=phase)


def run_inference(model: RNN, cond_seq: np.ndarray | torch.Tensor,
                  warmup_sequence: np.ndarray | torch.Tensor | None = None, top_n: int | None = 3,
                  temperature: float = 1.0, seed: int | None = None, encode: bool = True,
                  backend: str = "auto", reference: PeriodicReference | None = None) -> np.ndarray:
    """Return float audio (T,) for cond_seq (T, P), or (B, T) for B voices at once from cond_seq (B, T, P).

    cond_seq holds the parameters mapped to [0, 1]; `encode` is the run's data setting (config["data"].encode).
    `backend` "auto" runs the C runtime (numba where it is not built) for a CPU model and PyTorch for a CUDA one
    (see `choose_backend`); PyTorch draws from other random streams, so a seed reproduces audio within a backend.
    A run trained with a periodic reference plays with it: `reference=PeriodicReference.of(config["data"])`.
    """
    stream = SynthStream(model, warmup_sequence, top_n, temperature, seed, encode, backend, reference=reference)
    return stream.render(cond_seq)
