"""Mu-law companding to and from `numtokens` integer classes, for NumPy arrays and torch tensors."""
from __future__ import annotations

import math

import numpy as np
import torch

Array = np.ndarray | torch.Tensor


def _check_numtokens(numtokens: int) -> int:
    if int(numtokens) != numtokens or numtokens < 2:
        raise ValueError(f"numtokens must be an integer >= 2, got {numtokens!r}")
    return int(numtokens)


def mu_law_encode(audio: Array, numtokens: int = 256) -> Array:
    """Return integer class indices in [0, numtokens-1] for audio in [-1, 1] (values outside are clipped)."""
    mu = _check_numtokens(numtokens) - 1
    if isinstance(audio, torch.Tensor):
        x = audio.float().clamp(-1.0, 1.0)
        y = torch.sign(x) * torch.log1p(mu * x.abs()) / math.log1p(mu)
        return torch.floor((y + 1) / 2 * mu + 0.5).long()
    x = np.clip(np.asarray(audio, dtype=np.float64), -1.0, 1.0)
    y = np.sign(x) * np.log1p(mu * np.abs(x)) / np.log1p(mu)
    return np.floor((y + 1) / 2 * mu + 0.5).astype(np.int64)


def mu_law_decode(indices: Array, numtokens: int = 256) -> Array:
    """Return float audio in [-1, 1] for mu-law class indices (the inverse of `mu_law_encode`)."""
    mu = _check_numtokens(numtokens) - 1
    if isinstance(indices, torch.Tensor):
        y = indices.float() / mu * 2 - 1
        return torch.sign(y) * torch.expm1(y.abs() * math.log1p(mu)) / mu
    y = np.asarray(indices, dtype=np.float64) / mu * 2 - 1
    return (np.sign(y) * np.expm1(np.abs(y) * np.log1p(mu)) / mu).astype(np.float32)
