"""Control envelopes for generation, and the plots of conditioning, audio and loss."""
from __future__ import annotations

import io
from pathlib import Path
from typing import TYPE_CHECKING, Sequence

import matplotlib.pyplot as plt
import numpy as np
from matplotlib.figure import Figure

if TYPE_CHECKING:
    from IPython.display import Audio

from utils.run_folder import write_atomically


def multi_linspace(breakpoints: Sequence[tuple[float, float]], n: int) -> np.ndarray:
    """Return n samples of the piecewise-linear envelope through (position, value) pairs.

    Positions run from 0 (first sample) to 1 (last sample) and must not decrease; a repeated
    position makes a jump: the envelope takes the later pair's value from that position on.
    """
    points = np.asarray(breakpoints, dtype=np.float64)
    if points.ndim != 2 or points.shape[1] != 2 or len(points) < 2:
        raise ValueError(f"breakpoints must be at least two (position, value) pairs, got {breakpoints!r}")
    positions, values = points[:, 0], points[:, 1]
    if np.any(np.diff(positions) < 0):
        raise ValueError(f"breakpoint positions must not decrease, got {positions.tolist()}")
    t = np.clip(np.linspace(0.0, 1.0, n), positions[0], positions[-1])
    k = np.clip(np.searchsorted(positions, t, side="right") - 1, 0, len(points) - 2)
    width = positions[k + 1] - positions[k]
    frac = np.divide(t - positions[k], width, out=np.ones_like(t), where=width > 0)
    return (values[k] + frac * (values[k + 1] - values[k])).astype(np.float32)


def steps(values: Sequence[float], n: int) -> np.ndarray:
    """Return n samples holding each value in turn for an equal share of the length."""
    if len(values) == 0:
        raise ValueError("steps needs at least one value")
    index = np.minimum(np.arange(n) * len(values) // max(n, 1), len(values) - 1)
    return np.asarray(values, dtype=np.float32)[index]


def plot_condition_tensor(cond: np.ndarray, sr: int, names: Sequence[str] | None = None,
                          title: str = "conditioning") -> Figure:
    """Return a figure of each conditioning parameter (columns of cond (T, P)) against time in seconds."""
    cond = np.asarray(cond)
    names = names or [f"param {i}" for i in range(cond.shape[1])]
    fig, axes = plt.subplots(cond.shape[1], 1, figsize=(9, 1.4 * cond.shape[1] + 0.6), sharex=True, squeeze=False)
    seconds = np.arange(len(cond)) / sr
    for ax, column, name in zip(axes[:, 0], cond.T, names):
        ax.plot(seconds, column)
        ax.set_ylabel(name)
    axes[0, 0].set_title(title)
    axes[-1, 0].set_xlabel("time (s)")
    fig.tight_layout()
    return fig


def plot_audio(audio: np.ndarray, sr: int, title: str = "") -> Figure:
    """Return a figure with the waveform above its spectrogram."""
    audio = np.asarray(audio, dtype=np.float32)
    fig, (wave, spec) = plt.subplots(2, 1, figsize=(9, 5), sharex=True)
    wave.plot(np.arange(len(audio)) / sr, audio, linewidth=0.5)
    wave.set_ylabel("amplitude")
    wave.set_ylim(-1.05, 1.05)
    wave.set_title(title)
    nfft = min(1024, max(16, 2 ** int(np.log2(max(len(audio), 2)) - 1)))
    spec.specgram(audio, NFFT=nfft, Fs=sr, noverlap=nfft // 2, cmap="magma", scale="dB", vmin=-120)
    spec.set_ylabel("frequency (Hz)")
    spec.set_xlabel("time (s)")
    fig.tight_layout()
    return fig


def playable(audio: np.ndarray, remove_dc: bool = False) -> np.ndarray:
    """Return float32 audio clipped to [-1, 1] at its own level, without its mean when `remove_dc`."""
    audio = np.asarray(audio, dtype=np.float32)
    if remove_dc and audio.size:
        audio = audio - audio.mean()
    return np.clip(audio, -1.0, 1.0)


def player(audio: np.ndarray, sr: int, remove_dc: bool = False) -> Audio:
    """Return a notebook audio player at the audio's real level (see `playable`).

    IPython's `Audio` scales every clip to full scale by default, which hides the amplitude parameter and turns a
    near-constant early-epoch output into a loud thump.
    """
    from IPython.display import Audio  # only where a notebook plays audio

    return Audio(playable(audio, remove_dc), rate=sr, normalize=False)


def plot_loss_curve(history: Sequence[float]) -> Figure:
    """Return a figure of the mean training loss per epoch."""
    fig, ax = plt.subplots(figsize=(6, 3.5))
    ax.plot(np.arange(1, len(history) + 1), history, marker="o", markersize=3)
    ax.set_xlabel("epoch")
    ax.set_ylabel("cross-entropy (nats)")
    ax.set_title("training loss")
    ax.grid(alpha=0.3)
    fig.tight_layout()
    return fig


def save_figure(path: str | Path, figure: Figure) -> None:
    """Write `figure` to `path` as a PNG atomically, so an interrupted write never leaves half an image, and close it."""
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=100)
    plt.close(figure)
    write_atomically(path, lambda f: f.write(buffer.getvalue()))
