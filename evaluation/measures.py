"""The measures of control: f0 and pitch error, level, harmonic timbre features, and an instrument classifier."""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from utils.pitch import estimate_f0, hz_to_midi, midi_to_hz

# How generated notes are grouped: values trained on, held out of training, and between the data's values.
GROUPS = ("trained", "held-out", "between")
# YIN frames of 64 ms at 16 kHz: short enough to follow the glide, long enough for an octave below the range.
FRAME_LENGTH = 1024
HOP_LENGTH = 256
NUM_HARMONICS = 8
# Harmonic shares below -80 dB are mu-law quantisation noise, not timbre.
SHARE_FLOOR = 1e-8
SILENCE_DB = -200.0
# A note voiced in less than half its frames is silent: counted in a column of its own, its pitch left out of the
# pitch error (what pitch it has is not the note asked for), so that a median can never hide a note that never sounds.
SILENT_BELOW_VOICED = 0.5


@dataclass(frozen=True)
class NoteMeasurement:
    """One held note: median f0 as MIDI pitch (NaN when no frame is voiced), voiced share, level, timbre."""

    f0_midi: float
    voiced_fraction: float
    level_db: float
    features: np.ndarray


@dataclass(frozen=True)
class PitchTrack:
    """An f0 track against its target: frame times (s), target and measured MIDI pitch (NaN where unvoiced)."""

    times: np.ndarray
    target_midi: np.ndarray
    f0_midi: np.ndarray

    def cents(self) -> np.ndarray:
        """Return each frame's error in cents (NaN where unvoiced)."""
        return 100.0 * (self.f0_midi - self.target_midi)


@dataclass(frozen=True)
class NearestCentroid:
    """Instrument classifier: features standardised, each label the mean of its training examples."""

    labels: np.ndarray
    centroids: np.ndarray
    mean: np.ndarray
    scale: np.ndarray

    @classmethod
    def fit(cls, features: np.ndarray, labels: np.ndarray) -> NearestCentroid:
        """Return the classifier fit to features (N, F) with one label per row."""
        mean, scale = features.mean(axis=0), features.std(axis=0)
        scale = np.where(scale > 0, scale, 1.0)
        standard = (features - mean) / scale
        classes = np.unique(labels)
        centroids = np.stack([standard[labels == label].mean(axis=0) for label in classes])
        return cls(classes, centroids, mean, scale)

    def predict(self, features: np.ndarray) -> np.ndarray:
        """Return the label of the nearest centroid for each row of features (N, F)."""
        standard = (features - self.mean) / self.scale
        distances = ((standard[:, None, :] - self.centroids[None]) ** 2).sum(axis=-1)
        return self.labels[np.argmin(distances, axis=1)]


def rms_db(audio: np.ndarray) -> float:
    """Return the RMS level of audio in dB relative to full scale (SILENCE_DB for digital silence)."""
    rms = math.sqrt(float(np.mean(np.square(audio, dtype=np.float64))))
    return 20.0 * math.log10(rms) if rms > 0 else SILENCE_DB


def _ranks(values: np.ndarray) -> np.ndarray:
    order = np.argsort(values, kind="stable")
    ranks = np.empty(len(values))
    ranks[order] = np.arange(len(values))
    _, tie, count = np.unique(values, return_inverse=True, return_counts=True)
    return (np.bincount(tie, weights=ranks) / count)[tie]


def spearman(x: np.ndarray, y: np.ndarray) -> float:
    """Return Spearman's rank correlation of x and y (ties share their mean rank); NaN when either is constant."""
    rx, ry = _ranks(np.asarray(x, dtype=float)), _ranks(np.asarray(y, dtype=float))
    rx, ry = rx - rx.mean(), ry - ry.mean()
    norm = math.sqrt(float(np.sum(rx**2) * np.sum(ry**2)))
    return float(np.sum(rx * ry) / norm) if norm > 0 else float("nan")


def average_power_spectrum(audio: np.ndarray, n_fft: int = 2048) -> np.ndarray:
    """Return the mean power spectrum (n_fft // 2 + 1 bins) of Hann-windowed half-overlapping frames."""
    audio = np.asarray(audio, dtype=np.float64)
    if len(audio) < n_fft:
        audio = np.pad(audio, (0, n_fft - len(audio)))
    frames = np.lib.stride_tricks.sliding_window_view(audio, n_fft)[:: n_fft // 2]
    return np.mean(np.abs(np.fft.rfft(frames * np.hanning(n_fft), axis=1)) ** 2, axis=0)


def harmonic_features(audio: np.ndarray, sample_rate: int, f0_hz: float,
                      num_harmonics: int = NUM_HARMONICS) -> np.ndarray:
    """Return timbre features blind to pitch and level: each harmonic's share of the harmonic energy (dB),
    the spectral centroid in harmonic numbers, and the odd (3, 5, ...) to even harmonic energy ratio (dB)."""
    n_fft = 1 << int(math.ceil(math.log2(sample_rate / 8)))  # bins of 8 Hz or finer
    power = average_power_spectrum(audio, n_fft)
    harmonic = np.fft.rfftfreq(n_fft, 1.0 / sample_rate) / f0_hz
    numbers = np.arange(1, num_harmonics + 1)
    bands = np.abs(harmonic[None, :] - numbers[:, None]) < 0.5
    energy = bands.astype(np.float64) @ power
    share = energy / energy.sum() if energy.sum() > 0 else np.full(num_harmonics, 1.0 / num_harmonics)
    share = np.maximum(share, SHARE_FLOOR)
    odd_even = 10.0 * np.log10(share[2::2].sum() / share[1::2].sum())
    return np.concatenate([10.0 * np.log10(share), [np.sum(numbers * share), odd_even]])


def f0_range(pitches: np.ndarray) -> tuple[float, float]:
    """Return (fmin, fmax) in Hz for YIN: an octave beyond each end of the pitches, so octave errors show."""
    return float(midi_to_hz(np.min(pitches) - 12)), float(midi_to_hz(np.max(pitches) + 12))


def track_pitch(audio: np.ndarray, sample_rate: int, search: tuple[float, float]) -> tuple[np.ndarray, np.ndarray]:
    """Return (the sample each f0 describes, f0 as MIDI pitch or NaN where unvoiced) for each YIN frame."""
    f0, voiced = estimate_f0(audio, sample_rate, *search, frame_length=FRAME_LENGTH, hop_length=HOP_LENGTH)
    # YIN compares the frame's first half with itself shifted, so a frame measures the middle of its first half.
    centres = np.arange(len(f0)) * HOP_LENGTH + FRAME_LENGTH // 4
    return centres, np.where(voiced, hz_to_midi(np.where(voiced, f0, 1.0)), np.nan)


def measure_note(audio: np.ndarray, sample_rate: int, requested_midi: float,
                 search: tuple[float, float]) -> NoteMeasurement:
    """Return the f0, voiced share, level and timbre features of a held note."""
    _, f0_midi = track_pitch(audio, sample_rate, search)
    voiced = np.isfinite(f0_midi)
    note_midi = float(np.median(f0_midi[voiced])) if voiced.any() else float("nan")
    # The timbre is read at the harmonics the note has, so a wrong pitch does not also count as a wrong timbre.
    timbre_midi = note_midi if voiced.any() else requested_midi
    features = harmonic_features(audio, sample_rate, float(midi_to_hz(timbre_midi)))
    return NoteMeasurement(note_midi, float(voiced.mean()), rms_db(audio), features)


def glide_track(audio: np.ndarray, sample_rate: int, target_midi: np.ndarray, search: tuple[float, float],
                start: int = 0) -> PitchTrack:
    """Return the f0 track of audio[start:] against target_midi, given per sample of the whole audio."""
    centres, f0_midi = track_pitch(audio[start:], sample_rate, search)
    return PitchTrack((centres + start) / sample_rate, target_midi[centres + start], f0_midi)


def percentile(values: np.ndarray, q: float) -> float:
    """Return the q-th percentile of the finite values (NaN when there are none)."""
    finite = values[np.isfinite(values)]
    return float(np.percentile(finite, q)) if len(finite) else math.nan
