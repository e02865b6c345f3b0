"""The samplers' one interface: B voices of a model that each carry their state from call to call.

Three backends implement `Voices`: PyTorch (the reference, and the CUDA path), numba (the CPU path) and the C
runtime. Generation (`model.generation`), evaluation, live play and the notebook widget all take their voices from
`make_voices`, so each of them runs on any backend.
"""
from __future__ import annotations

import importlib.util
from typing import Protocol

import numpy as np
import torch

from audioDataLoader.mulaw import mu_law_encode
from model.gru_audio_model import RNN
from model.reference import PeriodicReference, ReferencedVoices

BACKENDS = ("auto", "torch", "numba", "c")


class Voices(Protocol):
    """B voices: each has its last class, hidden state and random stream, carried on from one `sample` to the next.

    `threads` caps how many threads one `sample` call may use (None: the backend's default).
    """

    threads: int | None
    compiled: bool  # whether making these voices compiled the backend's code (numba's first run)

    def __len__(self) -> int:
        """Return B, the number of voices."""

    def sample(self, cond: np.ndarray | torch.Tensor, top_n: int | None, temperature: float,
               which: np.ndarray | None = None) -> np.ndarray:
        """Return the next mu-law classes (len(which), T) for cond (len(which), T, P) in [0, 1].

        `which` picks the voices that play (default: all B, in order); the others keep their state.
        """

    def restart(self, voice: int, random_state: int) -> None:
        """Put `voice` back to silence and a zero hidden state, drawing next from the stream `random_state`."""

    def finite(self, which: np.ndarray) -> np.ndarray:
        """Return for each voice in `which` whether its whole state is finite: one that is not plays a constant."""


def numba_available() -> bool:
    """Return whether numba is installed, so the compiled sampler can run."""
    return importlib.util.find_spec("numba") is not None


def choose_backend(model: RNN, backend: str = "auto") -> str:
    """Return the sampler to use. "auto" picks, for a CPU model, the C runtime when it is built and loads (the
    fastest: its batched kernel plays 16 voices for 2.6x less CPU than numba, bench/bench_voices.py), else numba when
    installed; torch for a CUDA model or when neither is there."""
    if backend not in BACKENDS:
        raise ValueError(f"backend must be one of {BACKENDS}, got {backend!r}")
    if backend == "auto":
        from model.c_sampler import c_runtime_loads

        if next(model.parameters()).device.type != "cpu":
            return "torch"
        return "c" if c_runtime_loads() else "numba" if numba_available() else "torch"
    if backend == "numba" and not numba_available():
        raise ImportError("backend='numba' needs numba: pip install numba, or pass backend='torch'")
    if backend == "c":
        from model.c_sampler import library

        library()  # raises, saying how to build it, when the C runtime is not built
    return backend


def make_voices(backend: str, model: RNN, previous: torch.Tensor, hidden: torch.Tensor, encode: bool,
                seed: int | None, threads: int | None = None, reference: PeriodicReference | None = None,
                phase: np.ndarray | None = None) -> Voices:
    """Return len(previous) voices of `model` on `backend` ("torch", "numba" or "c"; see `choose_backend`).

    previous (B,) holds each voice's last class and hidden (L, B, H) its state; `encode` is the run's data setting
    (config["data"].encode). Voice b's random stream depends only on the seed and b. With a periodic `reference`,
    the voices take the parameters alone and add the reference themselves, from `phase` (B,) on (default 0).
    """
    voices = _backend_voices(backend, model, previous, hidden, encode, seed, threads)
    if reference is None:
        return voices
    return ReferencedVoices(voices, reference, np.zeros(len(previous)) if phase is None else phase)


def _backend_voices(backend: str, model: RNN, previous: torch.Tensor, hidden: torch.Tensor, encode: bool,
                    seed: int | None, threads: int | None) -> Voices:
    if backend == "numba":
        from model.numba_sampler import NumbaVoices

        return NumbaVoices(model, previous, hidden, encode, seed, threads)
    if backend == "c":
        from model.c_sampler import CVoices

        return CVoices(model, previous, hidden, encode, seed, threads)
    if backend == "torch":
        from model.torch_sampler import TorchVoices

        return TorchVoices(model, previous, hidden, encode, seed, threads)
    raise ValueError(f"backend must be one of {BACKENDS[1:]} here, got {backend!r}; choose_backend resolves 'auto'")


def silent_voices(model: RNN, count: int, backend: str, encode: bool, seed: int | None, threads: int | None = None,
                  reference: PeriodicReference | None = None) -> Voices:
    """Return `count` voices that start from silence with a zero hidden state (and φ = 0), as every note does."""
    device = next(model.parameters()).device
    previous = mu_law_encode(torch.zeros(count, device=device), model.config.numtokens)
    return make_voices(backend, model, previous, model.init_hidden(count, device), encode, seed, threads, reference)
