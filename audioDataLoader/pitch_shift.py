"""Pitch-shift augmentation: a window read at 2**(s/12) samples a step sounds s semitones higher.

Shifting each training window by a random fraction of a semitone, and its pitch label by the same amount, shows
the network pitch as a continuum rather than the few values the files were recorded at.
"""
from __future__ import annotations

from typing import Callable

import torch

# Catmull-Rom interpolation reads one sample before and two after each position.
_TAPS = torch.arange(-1, 3)


def draw_shifts(batch_size: int, max_semitones: float, generator: torch.Generator | None) -> torch.Tensor:
    """Return shifts (B,) in semitones, uniform in [-max_semitones, max_semitones]."""
    return (2 * torch.rand(batch_size, generator=generator, dtype=torch.float64) - 1) * max_semitones


def read_ratio(semitones: torch.Tensor) -> torch.Tensor:
    """Return the source samples read per output sample that shift the pitch by `semitones`."""
    return 2.0 ** (semitones / 12)


def span(length: int, ratio: torch.Tensor | float) -> torch.Tensor:
    """Return how many source samples a window of `length` read at `ratio` needs, interpolation taps included."""
    return torch.ceil(torch.as_tensor((length - 1) * ratio, dtype=torch.float64)).long() + 3


def fit_starts(start: torch.Tensor, ratio: torch.Tensor, length: int, file_start: torch.Tensor,
               file_end: torch.Tensor) -> torch.Tensor:
    """Return window starts moved, where needed, so the resampled window and its taps lie inside its file."""
    latest = file_end - span(length, ratio)
    return torch.minimum(torch.maximum(start, file_start + 1), latest)


def read_resampled(samples_at: Callable[[torch.Tensor], torch.Tensor], start: torch.Tensor, ratio: torch.Tensor,
                   length: int) -> torch.Tensor:
    """Return windows (B, length) of audio read from `start` at `ratio` source samples a step, Catmull-Rom.

    `samples_at(positions)` returns the float source samples at integer positions of any shape.
    """
    position = start[:, None].double() + torch.arange(length, dtype=torch.float64) * ratio[:, None]
    base = torch.floor(position)
    t = (position - base).float()
    y0, y1, y2, y3 = samples_at(base.long()[..., None] + _TAPS).unbind(-1)
    return y1 + 0.5 * t * (y2 - y0 + t * (2 * y0 - 5 * y1 + 4 * y2 - y3 + t * (3 * (y1 - y2) + y3 - y0)))
