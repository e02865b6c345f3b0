"""The periodic reference: an oscillator at the pitch parameter's frequency, given to the network beside the parameters.

With a reference the network need not carry a period of up to a few hundred samples in its state: it is told, at
every step, sin kφ and cos kφ (k = 1..K) of an oscillator at the note's f0, and learns to play in phase with it,
as the source signal of neural source-filter models and DDSP's harmonic oscillator. Training aligns φ with each
window's fundamental (a least-squares fit of a sinusoid at f0); generation starts φ at 0 when a voice starts and
accumulates it sample by sample, so a glide's phase stays continuous.

The channels follow the parameters in the network's conditioning: [sin φ, cos φ, sin 2φ, cos 2φ, ...].
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
import torch

if TYPE_CHECKING:
    from audioDataLoader.audio_dataset import AudioDatasetConfig
    from model.sampler import Voices

TWO_PI = 2.0 * math.pi
PITCH_UNITS = ("midi", "hz")


def frequency_hz(pitch: np.ndarray | torch.Tensor, units: str) -> np.ndarray | torch.Tensor:
    """Return the frequency in Hz of a pitch in its own units: MIDI note numbers, or Hz as they are."""
    if units == "hz":
        return pitch
    return 440.0 * 2.0 ** ((pitch - 69.0) / 12.0)


@dataclass(frozen=True)
class PeriodicReference:
    """How a model's reference is made: harmonics K, the pitch parameter (its column and range), units, sample rate."""

    harmonics: int
    pitch_index: int
    low: float  # the pitch parameter's value, in its own units, that maps to 0
    high: float  # ... and to 1
    units: str
    sample_rate: int

    @classmethod
    def of(cls, data: AudioDatasetConfig) -> PeriodicReference | None:
        """Return the reference a run's data settings describe, or None when the run has none."""
        if not data.reference_harmonics:
            return None
        low, high = data.parameter_specs[data.pitch_parameter]
        return cls(data.reference_harmonics, list(data.parameter_specs).index(data.pitch_parameter), low, high,
                   data.pitch_units, data.sample_rate)

    @property
    def size(self) -> int:
        """Return the number of channels, 2K."""
        return 2 * self.harmonics

    def frequency(self, normalized: np.ndarray | torch.Tensor) -> np.ndarray | torch.Tensor:
        """Return the oscillator's frequency in Hz (float64) for the pitch parameter's values in [0, 1]."""
        wide = normalized.double() if isinstance(normalized, torch.Tensor) else np.asarray(normalized, np.float64)
        return frequency_hz(self.low + (self.high - self.low) * wide, self.units)

    def increments(self, cond: np.ndarray) -> np.ndarray:
        """Return the phase step (radians, float64) at each row of cond (..., P) in [0, 1]."""
        return TWO_PI * self.frequency(cond[..., self.pitch_index]) / self.sample_rate

    def channels(self, cond: np.ndarray, phase: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Return (channels (B, T, 2K) float32, the phase after the block (B,)) for cond (B, T, P) in [0, 1].

        phase (B,) is each voice's φ at the block's first sample; row t gets φ plus the steps of rows before t,
        added one at a time.
        """
        # One running sum, never wrapped: a block split anywhere gives the same phases to the last bit, as one
        # long block does (and as the C runtime's per-sample sum does). Float64 keeps an hour at 1 kHz within 4e-9.
        steps = self.increments(cond)
        sums = np.cumsum(np.concatenate([phase[:, None], steps], axis=1), axis=1)
        return self.at(sums[:, :-1]), sums[:, -1]

    def at(self, phases: np.ndarray | torch.Tensor) -> np.ndarray | torch.Tensor:
        """Return the channels (..., 2K) float32 at the given phases (...)."""
        lib = torch if isinstance(phases, torch.Tensor) else np
        k = lib.arange(1, self.harmonics + 1, dtype=phases.dtype)
        if isinstance(phases, torch.Tensor):
            k = k.to(phases.device)
        angles = phases[..., None] * k
        pairs = lib.stack([lib.sin(angles), lib.cos(angles)], -1)
        channels = pairs.reshape(*phases.shape, self.size)
        return channels.float() if isinstance(channels, torch.Tensor) else channels.astype(np.float32)

    def aligned(self, target: torch.Tensor, frequency: torch.Tensor) -> torch.Tensor:
        """Return the channels (B, T, 2K) for training windows whose target audio is target (B, T) at frequency (B,).

        φ at step t is θ + ωt, θ the phase of the least-squares fit a·cos ωt + b·sin ωt to the window: the network
        then learns to play its note in phase with the oscillator, which generation starts at φ = 0.
        """
        t = torch.arange(target.shape[1], dtype=torch.float64)
        omega = TWO_PI * frequency.double()[:, None] / self.sample_rate
        c, s, y = torch.cos(omega * t), torch.sin(omega * t), target.double()
        cc, ss, cs = (c * c).sum(1), (s * s).sum(1), (c * s).sum(1)
        yc, ys = (y * c).sum(1), (y * s).sum(1)
        det = (cc * ss - cs * cs).clamp(min=1e-9)
        a, b = (yc * ss - ys * cs) / det, (ys * cc - yc * cs) / det
        theta = torch.atan2(-b, a)  # y ≈ A cos(ωt + θ)
        return self.at(torch.remainder(theta[:, None] + omega * t, TWO_PI))


class ReferencedVoices:
    """Voices of a model with a reference: each voice's phase is carried on, its channels appended to the parameters.

    Wraps any backend's voices (model.sampler.Voices); the backend sees the whole conditioning, parameters and
    reference, as the network does.
    """

    def __init__(self, inner: Voices, reference: PeriodicReference, phase: np.ndarray) -> None:
        self.inner, self.reference, self.phase = inner, reference, np.asarray(phase, dtype=np.float64).copy()

    def __len__(self) -> int:
        return len(self.inner)

    @property
    def threads(self) -> int | None:
        return self.inner.threads

    @threads.setter
    def threads(self, value: int | None) -> None:
        self.inner.threads = value

    @property
    def compiled(self) -> bool:
        return self.inner.compiled

    def sample(self, cond: np.ndarray | torch.Tensor, top_n: int | None, temperature: float,
               which: np.ndarray | None = None) -> np.ndarray:
        """Return the next mu-law classes (len(which), T) for the parameters cond (len(which), T, P) in [0, 1]."""
        cond = cond.cpu().numpy() if isinstance(cond, torch.Tensor) else np.asarray(cond, dtype=np.float32)
        which = np.arange(len(self)) if which is None else np.asarray(which)
        channels, self.phase[which] = self.reference.channels(cond, self.phase[which])
        return self.inner.sample(np.concatenate([cond.astype(np.float32), channels], axis=-1), top_n, temperature,
                                 which)

    def restart(self, voice: int, random_state: int) -> None:
        """Put `voice` back to silence, a zero state and φ = 0, drawing next from the stream `random_state`."""
        self.phase[voice] = 0.0
        self.inner.restart(voice, random_state)

    def finite(self, which: np.ndarray) -> np.ndarray:
        """Return for each voice in `which` whether its hidden state and phase are finite."""
        return self.inner.finite(which) & np.isfinite(self.phase[which])
