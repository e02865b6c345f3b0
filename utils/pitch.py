"""Fundamental frequency by YIN (de Cheveigné and Kawahara, 2002), and conversions between Hz, MIDI and cents."""
from __future__ import annotations

import numpy as np

# Frames quieter than this (about -80 dBFS) count as silence: YIN's normalised difference is 0/0 there.
_SILENCE_RMS = 1e-4


def hz_to_midi(frequency_hz: np.ndarray | float) -> np.ndarray | float:
    """Return the MIDI pitch (69 = A4 = 440 Hz, fractional between semitones) of each frequency."""
    return 69.0 + 12.0 * np.log2(np.asarray(frequency_hz, dtype=np.float64) / 440.0)


def midi_to_hz(midi: np.ndarray | float) -> np.ndarray | float:
    """Return the frequency in Hz of each MIDI pitch (69 = A4 = 440 Hz)."""
    return 440.0 * 2.0 ** ((np.asarray(midi, dtype=np.float64) - 69.0) / 12.0)


def cents_error(frequency_hz: np.ndarray | float, reference_hz: np.ndarray | float) -> np.ndarray | float:
    """Return how many cents `frequency_hz` lies above `reference_hz` (negative when below)."""
    return 1200.0 * np.log2(np.asarray(frequency_hz, dtype=np.float64) / np.asarray(reference_hz, dtype=np.float64))


def _difference(frames: np.ndarray, window: int, max_lag: int) -> np.ndarray:
    """Return YIN's squared difference d(tau) for tau in 0..max_lag for each frame, (n_frames, max_lag + 1)."""
    n_fft = 1 << int(np.ceil(np.log2(frames.shape[1] + window)))
    head = np.fft.rfft(frames[:, :window], n_fft)
    whole = np.fft.rfft(frames, n_fft)
    correlation = np.fft.irfft(np.conj(head) * whole, n_fft)[:, : max_lag + 1]
    energy = np.concatenate([np.zeros((len(frames), 1)), np.cumsum(frames**2, axis=1)], axis=1)
    lags = np.arange(max_lag + 1)
    shifted_energy = energy[:, lags + window] - energy[:, lags]
    # d = sum (x_j - x_{j+tau})^2 expanded; rounding can make it slightly negative
    return np.maximum(energy[:, [window]] + shifted_energy - 2.0 * correlation, 0.0)


def _cumulative_mean_normalized(difference: np.ndarray) -> np.ndarray:
    """Return YIN's d'(tau) = d(tau) tau / sum_{1..tau} d, with d'(0) = 1 and 1 where the sum is 0."""
    running = np.cumsum(difference[:, 1:], axis=1)
    lags = np.arange(1, difference.shape[1])
    normalized = np.divide(difference[:, 1:] * lags, running, out=np.ones_like(running), where=running > 0)
    return np.concatenate([np.ones((len(difference), 1)), normalized], axis=1)


def estimate_f0(audio: np.ndarray, sample_rate: int, fmin: float = 50.0, fmax: float = 2000.0,
                frame_length: int = 2048, hop_length: int = 256, threshold: float = 0.1
                ) -> tuple[np.ndarray, np.ndarray]:
    """Return (f0 in Hz per frame, NaN where unvoiced; voiced flag per frame) of mono `audio` by YIN.

    Frame i covers samples [i * hop_length, i * hop_length + frame_length); the difference function
    integrates over its first half, so frame_length // 2 must exceed sample_rate / fmin. A frame is voiced
    when the cumulative mean normalised difference dips below `threshold` between the lags of fmax and fmin.
    """
    audio = np.asarray(audio, dtype=np.float64)
    if audio.ndim != 1:
        raise ValueError(f"estimate_f0 takes mono audio (1-D), got shape {audio.shape}; mix channels first")
    if not 0 < fmin < fmax < sample_rate / 2:
        raise ValueError(f"need 0 < fmin < fmax < sample_rate/2, got fmin={fmin}, fmax={fmax}, "
                         f"sample_rate={sample_rate}")
    window = frame_length // 2
    min_lag = max(int(np.floor(sample_rate / fmax)), 2)
    max_lag = int(np.ceil(sample_rate / fmin))
    if max_lag + 2 > frame_length - window:
        raise ValueError(f"frame_length={frame_length} is too short for fmin={fmin} Hz at {sample_rate} Hz: "
                         f"raise frame_length to at least {2 * (max_lag + 2)} or raise fmin")
    if len(audio) < frame_length:
        raise ValueError(f"audio has {len(audio)} samples, fewer than frame_length={frame_length}; "
                         "pass a longer signal or a smaller frame_length")
    frames = np.lib.stride_tricks.sliding_window_view(audio, frame_length)[::hop_length]
    difference = _difference(frames, window, max_lag + 1)
    normalized = _cumulative_mean_normalized(difference)

    lags = np.arange(max_lag + 2)
    in_range = (lags >= min_lag) & (lags <= max_lag)
    below = (normalized < threshold) & in_range
    first = np.argmax(below, axis=1)
    # The chosen lag is the deepest point of the first dip below the threshold, not its first sample.
    dip_over = (lags > first[:, None]) & ~below
    dip_end = np.where(dip_over.any(axis=1), np.argmax(dip_over, axis=1), max_lag + 1)
    in_dip = (lags >= first[:, None]) & (lags < dip_end[:, None])
    lag = np.argmin(np.where(in_dip, normalized, np.inf), axis=1)

    rms = np.sqrt(np.mean(frames[:, :window] ** 2, axis=1))
    voiced = below.any(axis=1) & (rms > _SILENCE_RMS)

    # Parabolic interpolation on the raw difference gives the sub-sample period without d''s bias.
    rows = np.arange(len(frames))
    left, centre, right = (difference[rows, lag + k] for k in (-1, 0, 1))
    curvature = left - 2.0 * centre + right
    shift = np.divide(left - right, 2.0 * curvature, out=np.zeros_like(centre), where=curvature > 0)
    period = lag + np.clip(shift, -1.0, 1.0)
    f0 = np.divide(float(sample_rate), period, out=np.full_like(period, np.nan), where=voiced)
    return f0, voiced


def median_f0(audio: np.ndarray, sample_rate: int, **yin_options: float) -> float:
    """Return the median f0 in Hz over the voiced frames of `audio`, or NaN when no frame is voiced."""
    f0, voiced = estimate_f0(audio, sample_rate, **yin_options)
    return float(np.median(f0[voiced])) if voiced.any() else float("nan")
