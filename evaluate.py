"""Measure control: does a trained run play the pitch, loudness and instrument it is asked for?

Generates held notes over a grid (each instrument x pitches across the range, half-semitones between the
trained ones included, x a few amplitudes) and a pitch glide per instrument, then measures each note's f0
against the requested pitch (cents), its RMS level against the data's level at that amplitude (dB), and the
instrument a classifier fit on the data hears in it. The same measures on the data files are the floor.
Values held out of training (config.json's data.exclude) and values between the data's values are reported
apart from the trained ones.

    python evaluate.py --run_directory output/20261124-120000 [--seconds 1] [--top_n 3] [--seed 0]
    python evaluate.py --instrument timbre --pitch note --amplitude level   # a run with other parameter names

writes RUN/evaluation/: summary.csv, summary.md, notes.csv, evaluation_config.json and four plots.
"""
from __future__ import annotations

import argparse
import csv
import io
import json
import math
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Callable

import matplotlib.pyplot as plt
import numpy as np
from matplotlib.figure import Figure
from matplotlib.ticker import FuncFormatter

from audioDataLoader.audio_dataset import AudioDatasetConfig, MuLawAudioDataset, normalize_parameters, read_mono
from inference import GenerationRate, SynthStream
from model.gru_audio_model import RNN
from utils.pitch import estimate_f0, hz_to_midi, midi_to_hz
from utils.run_folder import load_model, newest_run, write_atomically
from utils.utils import multi_linspace, save_figure

# YIN frames of 64 ms at 16 kHz: short enough to follow the glide, long enough for an octave below the range.
FRAME_LENGTH = 1024
HOP_LENGTH = 256
NUM_HARMONICS = 8
# Harmonic shares below -80 dB are mu-law quantisation noise, not timbre.
SHARE_FLOOR = 1e-8
SILENCE_DB = -200.0
GROUPS = ("trained", "held-out", "between")


@dataclass(frozen=True)
class EvaluationConfig:
    """What to generate and measure: the note grid, the glide, sampling, and which parameter is which."""

    seconds: float = 1.0  # length of each grid note
    settle_seconds: float = 0.25  # left out of every measure: the network starts each note from silence
    pitch_step: float = 0.5  # grid pitches cover the run's pitch range in these steps (MIDI)
    amplitudes: tuple[float, ...] = (0.2, 0.5, 0.8)
    glide_seconds: float = 4.0  # the pitch range up and back down, per instrument, at the middle amplitude
    top_n: int = 3
    temperature: float = 1.0
    seed: int = 0
    instrument: str = "instID"
    pitch: str = "p"
    amplitude: str = "a"

    def __post_init__(self) -> None:
        object.__setattr__(self, "amplitudes", tuple(float(a) for a in self.amplitudes))
        if not self.amplitudes:
            raise ValueError("amplitudes must name at least one amplitude to generate")
        if self.pitch_step <= 0:
            raise ValueError(f"pitch_step must be > 0 semitones, got {self.pitch_step}")
        if not 0 <= self.settle_seconds < min(self.seconds, self.glide_seconds):
            raise ValueError(f"settle_seconds ({self.settle_seconds}) must be >= 0 and shorter than both seconds "
                             f"({self.seconds}) and glide_seconds ({self.glide_seconds})")

    @property
    def middle_amplitude(self) -> float:
        """Return the middle of the amplitudes (the lower of the two middle ones for an even count)."""
        return sorted(self.amplitudes)[(len(self.amplitudes) - 1) // 2]


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


@dataclass
class Evaluation:
    """What one evaluation measured: summary rows, one row per note, glide tracks, the grid audio and its speed."""

    run_directory: Path
    config: EvaluationConfig
    sample_rate: int
    summary: list[dict]
    notes: list[dict]  # generated notes first, in the order of grid_audio, then the data files
    glides: dict[float, PitchTrack]  # by instrument value
    exclude: dict[str, list[float]]  # the run's held-out values
    grid_audio: np.ndarray  # (notes, samples)
    rate: GenerationRate


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


def value_group(values: dict[str, float], data_values: dict[str, np.ndarray],
                exclude: dict[str, list[float]]) -> str:
    """Return "held-out" when any value was excluded from training, "between" when any is not among the data's
    values of its parameter, else "trained"."""
    if any(np.isclose(values[name], held, atol=1e-6).any() for name, held in exclude.items()):
        return "held-out"
    if any(not np.isclose(data_values[name], value, atol=1e-6).any() for name, value in values.items()):
        return "between"
    return "trained"


def grid_settings(config: EvaluationConfig, specs: dict[str, tuple[float, float]],
                  instruments: np.ndarray) -> np.ndarray:
    """Return the grid's (notes, P) parameter values in the run's units and order: instrument x pitch x amplitude."""
    low, high = sorted(specs[config.pitch])
    pitches = np.round(np.arange(low, high + config.pitch_step / 2, config.pitch_step), 6)
    combos = np.array(np.meshgrid(instruments, pitches, config.amplitudes, indexing="ij")).reshape(3, -1).T
    columns = {config.instrument: 0, config.pitch: 1, config.amplitude: 2}
    return combos[:, [columns[name] for name in specs]]


def glide_settings(config: EvaluationConfig, specs: dict[str, tuple[float, float]], instruments: np.ndarray,
                   length: int) -> np.ndarray:
    """Return (instruments, length, P) values in the run's units: each instrument gliding over the pitch range
    and back at the middle of the amplitudes."""
    names = list(specs)
    settings = np.zeros((len(instruments), length, len(names)), dtype=np.float32)
    settings[..., names.index(config.instrument)] = np.asarray(instruments)[:, None]
    low, high = specs[config.pitch]
    settings[..., names.index(config.pitch)] = multi_linspace([(0.0, low), (0.5, high), (1.0, low)], length)
    settings[..., names.index(config.amplitude)] = config.middle_amplitude
    return settings


def level_references(instruments: np.ndarray, amplitudes: np.ndarray,
                     levels_db: np.ndarray) -> dict[float, tuple[np.ndarray, np.ndarray]]:
    """Return {instrument: (amplitudes, mean level in dB at each)} of the data, to interpolate between."""
    references = {}
    for instrument in np.unique(instruments):
        mine = instruments == instrument
        values = np.unique(amplitudes[mine])
        levels = np.array([levels_db[mine & (amplitudes == a)].mean() for a in values])
        references[float(instrument)] = (values, levels)
    return references


def _percentile(values: np.ndarray, q: float) -> float:
    finite = values[np.isfinite(values)]
    return float(np.percentile(finite, q)) if len(finite) else math.nan


def level_rank_correlation(rows: list[dict], config: EvaluationConfig) -> float:
    """Return the mean over (instrument, pitch) of the Spearman correlation of amplitude and RMS level, so
    that only the amplitude parameter varies within each correlation; NaN when no pair has two amplitudes."""
    cells: dict[tuple[float, float], list[dict]] = {}
    for row in rows:
        cells.setdefault((row[config.instrument], row[config.pitch]), []).append(row)
    correlations = np.array([spearman([r[config.amplitude] for r in cell], [r["level_db"] for r in cell])
                             for cell in cells.values()])
    finite = correlations[np.isfinite(correlations)]
    return float(finite.mean()) if len(finite) else math.nan


@dataclass(frozen=True)
class Reference:
    """The data a run is measured against: each parameter's values there, the run's held-out values, the mean
    level per instrument and amplitude, the instrument classifier, and the f0 search range in Hz."""

    names: list[str]
    values: dict[str, np.ndarray]
    exclude: dict[str, list[float]]
    levels: dict[float, tuple[np.ndarray, np.ndarray]]
    classifier: NearestCentroid
    search: tuple[float, float]

    def rows(self, source: str, settings: np.ndarray, measured: list[NoteMeasurement],
             config: EvaluationConfig) -> list[dict]:
        """Return one row per note: its values and group, pitch and level errors, and the instrument heard."""
        heard = self.classifier.predict(np.stack([m.features for m in measured]))
        rows = []
        for values, note, instrument in zip(settings.tolist(), measured, heard.tolist()):
            named = dict(zip(self.names, values))
            amplitudes, levels = self.levels[named[config.instrument]]
            expected_db = float(np.interp(named[config.amplitude], amplitudes, levels))
            rows.append({"source": source, "group": value_group(named, self.values, self.exclude), **named,
                         "f0_midi": note.f0_midi, "cents_error": 100.0 * (note.f0_midi - named[config.pitch]),
                         "voiced_fraction": note.voiced_fraction, "level_db": note.level_db,
                         "level_error_db": note.level_db - expected_db, "heard_instrument": instrument})
        return rows


def measure_data(data: AudioDatasetConfig, config: EvaluationConfig) -> tuple[Reference, list[dict]]:
    """Return the reference built from every file of a run's data folder, and one row per file."""
    try:
        dataset = MuLawAudioDataset(replace(data, exclude={}))
    except FileNotFoundError as error:
        raise FileNotFoundError(f"{error}. A run is measured against its data (config.json data.data_dir, relative "
                                "to the folder it was trained from): run the evaluation from that folder") from None
    names = list(data.parameter_specs)
    # The dataset holds float32; file names carry a few decimals, so rounding gives back the named values.
    settings = np.round(dataset.raw_parameters.astype(np.float64), 6)
    instruments, pitches, amplitudes = (settings[:, names.index(n)]
                                        for n in (config.instrument, config.pitch, config.amplitude))
    search = f0_range(pitches)
    measured = [measure_note(read_mono(path, data.sample_rate), data.sample_rate, pitch, search)
                for path, pitch in zip(dataset.files, pitches)]
    # The classifier hears every file, held-out ones too: it stands for the instruments, not for the run's split.
    classifier = NearestCentroid.fit(np.stack([m.features for m in measured]), instruments)
    levels = level_references(instruments, amplitudes, np.array([m.level_db for m in measured]))
    values = {name: np.unique(settings[:, i]) for i, name in enumerate(names)}
    reference = Reference(names, values, data.exclude, levels, classifier, search)
    rows = reference.rows("data", settings, measured, config)
    return reference, [{**row, "file": path.name} for row, path in zip(rows, dataset.files)]


def _pitch_columns(cents: np.ndarray, voiced: float) -> dict:
    return {"voiced": voiced, "pitch error median (cents)": _percentile(np.abs(cents), 50),
            "pitch error p90 (cents)": _percentile(np.abs(cents), 90)}


def summary_row(rows: list[dict], config: EvaluationConfig, instruments: np.ndarray) -> dict:
    """Return the pitch, loudness and instrument measures over note rows of one source and group."""
    column = {key: np.array([row[key] for row in rows]) for key in rows[0]}
    correct = column["heard_instrument"] == column[config.instrument]
    row = {"source": rows[0]["source"], "group": rows[0]["group"], "notes": len(rows),
           **_pitch_columns(column["cents_error"], float(column["voiced_fraction"].mean())),
           "level rank correlation": level_rank_correlation(rows, config),
           "level error median (dB)": _percentile(np.abs(column["level_error_db"]), 50),
           "instrument accuracy": float(correct.mean())}
    for instrument in instruments.tolist():
        asked = column[config.instrument] == instrument
        row[f"accuracy {config.instrument}={instrument:g}"] = float(correct[asked].mean()) if asked.any() else math.nan
    return row


def glide_row(instrument_name: str, instrument: float, track: PitchTrack) -> dict:
    """Return the summary row of one glide: voiced share and the cents error over its voiced frames."""
    cents = track.cents()
    return {"source": "generated", "group": f"glide {instrument_name}={instrument:g}", "notes": 1,
            **_pitch_columns(cents, float(np.isfinite(cents).mean()))}


def _check_names(config: EvaluationConfig, specs: dict[str, tuple[float, float]]) -> None:
    wanted = [config.instrument, config.pitch, config.amplitude]
    if sorted(wanted) != sorted(specs):
        raise ValueError(f"this run is conditioned on {list(specs)}, but the evaluation measures an instrument, a "
                         f"pitch and an amplitude named {wanted}: name this run's parameters with the options "
                         "--instrument NAME --pitch NAME --amplitude NAME (Evaluate.ipynb: its instrument, "
                         "pitch and amplitude parameters; Python: "
                         "EvaluationConfig(instrument=..., pitch=..., amplitude=...))")


def _render(model: RNN, settings: np.ndarray, config: EvaluationConfig,
            data: AudioDatasetConfig) -> tuple[np.ndarray, GenerationRate]:
    stream = SynthStream(model, None, config.top_n, config.temperature, config.seed, data.encode,
                         sample_rate=data.sample_rate)
    return stream.render(normalize_parameters(settings, data.parameter_specs)), stream.rate


# What evaluate_run has done when it calls `progress`, in order: a caller's progress bar counts these.
STAGES = ("data files measured", "grid notes generated", "grid notes measured", "glides generated and measured")


def evaluate_run(run_directory: str | Path, config: EvaluationConfig = EvaluationConfig(),
                 device: str | None = None, progress: Callable[[str], None] = lambda stage: None) -> Evaluation:
    """Return the evaluation of a run folder: the grid notes and glides generated and measured, and the data.

    `progress(stage)` is called as each of STAGES ends, for a progress bar: the whole takes tens of seconds.
    """
    run_directory = Path(run_directory)
    model, run_config = load_model(run_directory, device)
    data = run_config["data"]
    specs, sr = data.parameter_specs, data.sample_rate
    _check_names(config, specs)
    settle, length = int(round(config.settle_seconds * sr)), int(round(config.seconds * sr))
    glide_length = int(round(config.glide_seconds * sr))
    if min(length, glide_length) - settle < FRAME_LENGTH:
        raise ValueError(f"seconds and glide_seconds must each exceed settle_seconds by {FRAME_LENGTH} samples "
                         f"({FRAME_LENGTH / sr:.3f} s) to measure; raise them or lower settle_seconds")
    reference, data_rows = measure_data(data, config)
    progress(STAGES[0])
    instruments = reference.values[config.instrument]

    settings = grid_settings(config, specs, instruments)
    grid_audio, grid_rate = _render(model, np.repeat(settings[:, None, :], length, axis=1), config, data)
    progress(STAGES[1])
    pitch = list(specs).index(config.pitch)
    measured = [measure_note(audio[settle:], sr, values[pitch], reference.search)
                for audio, values in zip(grid_audio, settings)]
    progress(STAGES[2])

    glide = glide_settings(config, specs, instruments, glide_length)
    glide_audio, glide_rate = _render(model, glide, config, data)
    glides = {float(instrument): glide_track(audio, sr, glide[0, :, pitch], reference.search, settle)
              for instrument, audio in zip(instruments, glide_audio)}
    progress(STAGES[3])

    notes = reference.rows("generated", settings, measured, config) + data_rows
    summary = [summary_row(rows, config, instruments) for source in ("generated", "data") for group in GROUPS
               if (rows := [r for r in notes if r["source"] == source and r["group"] == group])]
    summary += [glide_row(config.instrument, instrument, track) for instrument, track in glides.items()]
    rate = GenerationRate(grid_rate.samples + glide_rate.samples, grid_rate.seconds + glide_rate.seconds, sr)
    return Evaluation(run_directory, config, sr, summary, notes, glides, data.exclude, grid_audio, rate)


GROUP_COLOURS = {"trained": "C0", "held-out": "C3", "between": "C1"}


def _per_instrument(evaluation: Evaluation, height: float = 3.5) -> tuple[Figure, list]:
    count = len(evaluation.glides)
    figure, axes = plt.subplots(1, count, figsize=(4.5 * count + 1, height), squeeze=False)
    return figure, list(zip(axes[0], evaluation.glides))


def _notes(evaluation: Evaluation, source: str, instrument: float, group: str | None = None) -> list[dict]:
    key = evaluation.config.instrument
    return [r for r in evaluation.notes
            if r["source"] == source and r[key] == instrument and (group is None or r["group"] == group)]


def _scatter_notes(ax, evaluation: Evaluation, instrument: float, x: str, y: str) -> None:
    """Scatter y against x of the data files in grey and of the generated notes coloured by group."""
    data = _notes(evaluation, "data", instrument)
    ax.scatter([r[x] for r in data], [r[y] for r in data], marker="x", color="0.6", label="data")
    for group, colour in GROUP_COLOURS.items():
        rows = _notes(evaluation, "generated", instrument, group)
        if rows:
            ax.scatter([r[x] for r in rows], [r[y] for r in rows], color=colour, s=14, label=f"generated, {group}")


def _mark_held_out_pitches(ax, evaluation: Evaluation, along_x: bool) -> None:
    for k, pitch in enumerate(evaluation.exclude.get(evaluation.config.pitch, [])):
        (ax.axvline if along_x else ax.axhline)(pitch, color=GROUP_COLOURS["held-out"], alpha=0.25, linewidth=6,
                                                label="_" if k else "held-out pitch")


def plot_pitch(evaluation: Evaluation) -> Figure:
    """Return a figure of each note's f0 against its requested pitch (cents off); held-out pitches shaded."""
    config = evaluation.config
    figure, panels = _per_instrument(evaluation)
    for ax, instrument in panels:
        _scatter_notes(ax, evaluation, instrument, config.pitch, "cents_error")
        _mark_held_out_pitches(ax, evaluation, along_x=True)
        ax.axhline(0.0, color="k", linewidth=0.8)
        ax.set_yscale("symlog", linthresh=50)  # linear within a quarter-tone, octave errors still on the plot
        low, high = ax.get_ylim()
        ax.set_ylim(min(low, -100), max(high, 100))
        ax.yaxis.set_major_formatter(FuncFormatter(lambda value, _: f"{value:g}"))
        unvoiced = sum(np.isnan(r["cents_error"]) for r in _notes(evaluation, "generated", instrument))
        ax.set_title(f"{config.instrument}={instrument:g}" + (f" ({unvoiced} unvoiced notes not shown)"
                                                              if unvoiced else ""), fontsize=10)
        ax.set_xlabel(f"requested pitch {config.pitch} (MIDI)")
    panels[0][0].set_ylabel("f0 - requested (cents)")
    panels[0][0].legend(fontsize=7)
    figure.tight_layout()
    return figure


def plot_glide(evaluation: Evaluation) -> Figure:
    """Return a figure of each glide's f0 track over its target pitch; held-out pitches shaded."""
    figure, panels = _per_instrument(evaluation)
    for ax, instrument in panels:
        track = evaluation.glides[instrument]
        _mark_held_out_pitches(ax, evaluation, along_x=False)
        ax.plot(track.times, track.target_midi, color="k", linewidth=1, label="requested")
        ax.plot(track.times, track.f0_midi, ".", markersize=3, label="f0 of the generated audio")
        ax.set_title(f"glide, {evaluation.config.instrument}={instrument:g}", fontsize=10)
        ax.set_xlabel("time (s)")
    panels[0][0].set_ylabel("pitch (MIDI)")
    panels[0][0].legend(fontsize=7)
    figure.tight_layout()
    return figure


def plot_loudness(evaluation: Evaluation) -> Figure:
    """Return a figure of each note's RMS level against its amplitude parameter, over the data's levels."""
    config = evaluation.config
    figure, panels = _per_instrument(evaluation)
    for ax, instrument in panels:
        _scatter_notes(ax, evaluation, instrument, config.amplitude, "level_db")
        ax.set_title(f"{config.instrument}={instrument:g}", fontsize=10)
        ax.set_xlabel(f"amplitude {config.amplitude}")
    panels[0][0].set_ylabel("RMS level (dBFS)")
    panels[0][0].legend(fontsize=7)
    figure.tight_layout()
    return figure


def plot_spectrograms(evaluation: Evaluation) -> Figure:
    """Return spectrograms of a few generated notes: per instrument, one of each group (trained, held-out,
    between), nearest the middle amplitude and the middle of that group's pitches."""
    config = evaluation.config
    generated = [r for r in evaluation.notes if r["source"] == "generated"]
    groups = [g for g in GROUPS if any(r["group"] == g for r in generated)]
    figure, axes = plt.subplots(len(evaluation.glides), len(groups), squeeze=False, sharey=True,
                                figsize=(3.2 * len(groups) + 1, 2.6 * len(evaluation.glides)))
    for row, instrument in zip(axes, evaluation.glides):
        for ax, group in zip(row, groups):
            mine = [i for i, r in enumerate(generated) if r[config.instrument] == instrument and r["group"] == group]
            if not mine:
                ax.set_axis_off()
                continue
            middle_pitch = np.median([generated[i][config.pitch] for i in mine])
            chosen = min(mine, key=lambda i: (abs(generated[i][config.amplitude] - config.middle_amplitude),
                                              abs(generated[i][config.pitch] - middle_pitch)))
            ax.specgram(evaluation.grid_audio[chosen], NFFT=512, Fs=evaluation.sample_rate, noverlap=384,
                        cmap="magma", scale="dB", vmin=-120)
            note = generated[chosen]
            ax.set_title(f"{config.instrument}={instrument:g} {config.pitch}={note[config.pitch]:g} "
                         f"{config.amplitude}={note[config.amplitude]:g} ({group})", fontsize=8)
    for ax in axes[:, 0]:
        ax.set_ylabel("frequency (Hz)")
    for ax in axes[-1]:
        ax.set_xlabel("time (s)")
    figure.tight_layout()
    return figure


PLOTS = {"pitch.png": plot_pitch, "glide.png": plot_glide, "loudness.png": plot_loudness,
         "spectrograms.png": plot_spectrograms}


def _columns(rows: list[dict]) -> list[str]:
    return list(dict.fromkeys(key for row in rows for key in row))


def table_csv(rows: list[dict]) -> str:
    """Return rows as CSV text, one column per key seen in any row (blank where a row lacks it)."""
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, _columns(rows), restval="", lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    return buffer.getvalue()


def _cell(value: object) -> str:
    if isinstance(value, float):
        if math.isnan(value):
            return "n/a"
        return f"{value:.3g}" if abs(value) < 1000 else f"{value:.0f}"
    return str(value)


def table_markdown(rows: list[dict]) -> str:
    """Return rows as a Markdown table with numbers to three significant figures."""
    columns = _columns(rows)
    lines = ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
    lines += ["| " + " | ".join(_cell(row.get(key, "")) for key in columns) + " |" for row in rows]
    return "\n".join(lines) + "\n"


def summary_markdown(evaluation: Evaluation) -> str:
    """Return the report's Markdown: what was generated, how fast, and the summary table."""
    config, rate = evaluation.config, evaluation.rate
    grid = sum(r["source"] == "generated" for r in evaluation.notes)
    return (f"# Evaluation of {evaluation.run_directory}\n\n"
            f"{grid} notes of {config.seconds:g} s and {len(evaluation.glides)} glides of {config.glide_seconds:g} s "
            f"(first {config.settle_seconds:g} s of each left out), top_n={config.top_n}, "
            f"temperature={config.temperature:g}, seed={config.seed}; generated in {rate.seconds:.1f} s "
            f"({rate.real_time:.2f}x real time, all voices together).\n\n"
            "Pitch error: |f0 - requested| in cents, f0 the median of a note's voiced frames (per frame for the "
            "glides); voiced: the share of voiced frames. Level rank correlation: Spearman's, of RMS level with the "
            "amplitude parameter within each instrument and pitch, averaged; level error: |RMS level - the data's "
            "mean level at that instrument and amplitude| in dB. "
            "Instrument: accuracy of a nearest-centroid classifier of harmonic spectra fit on the data. "
            "Rows of source 'data' measure the data files themselves: the floor.\n\n"
            + table_markdown(evaluation.summary))


def write_report(evaluation: Evaluation, folder: str | Path | None = None) -> Path:
    """Write the tables, the evaluation's settings and the plots into folder (default RUN/evaluation); return it."""
    folder = Path(folder) if folder else evaluation.run_directory / "evaluation"
    texts = {"summary.csv": table_csv(evaluation.summary), "summary.md": summary_markdown(evaluation),
             "notes.csv": table_csv(evaluation.notes),
             "evaluation_config.json": json.dumps(asdict(evaluation.config), indent=2) + "\n"}
    for name, text in texts.items():
        write_atomically(folder / name, lambda f, text=text: f.write(text.encode()))
    for name, plot in PLOTS.items():
        save_figure(folder / name, plot(evaluation))
    return folder


def main(argv: list[str] | None = None) -> None:
    """Command line: evaluate a run folder, write RUN/evaluation/ and print the summary table."""
    defaults = EvaluationConfig()
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--run_directory", help="run folder written by train.py (default: newest under output/)")
    parser.add_argument("--seconds", type=float, default=defaults.seconds, help="length of each grid note")
    parser.add_argument("--settle_seconds", type=float, default=defaults.settle_seconds,
                        help="start of each note left out of the measures")
    parser.add_argument("--pitch_step", type=float, default=defaults.pitch_step, help="grid pitch step (MIDI)")
    parser.add_argument("--amplitudes", type=float, nargs="+", default=defaults.amplitudes)
    parser.add_argument("--glide_seconds", type=float, default=defaults.glide_seconds)
    parser.add_argument("--top_n", type=int, default=defaults.top_n)
    parser.add_argument("--temperature", type=float, default=defaults.temperature)
    parser.add_argument("--seed", type=int, default=defaults.seed)
    for role in ("instrument", "pitch", "amplitude"):
        parser.add_argument(f"--{role}", default=getattr(defaults, role), metavar="NAME",
                            help=f"the run's parameter that sets the {role} (default: %(default)s)")
    parser.add_argument("--device", default=None, help="cpu or cuda (default: cuda when available)")
    parser.add_argument("--output_dir", help="default: <run_directory>/evaluation")
    args = vars(parser.parse_args(argv))
    run_directory, device, output_dir = args.pop("run_directory"), args.pop("device"), args.pop("output_dir")
    try:
        config = EvaluationConfig(**args)
        evaluation = evaluate_run(Path(run_directory) if run_directory else newest_run(), config, device)
    except (ValueError, FileNotFoundError) as error:
        raise SystemExit(f"error: {error}") from None
    folder = write_report(evaluation, output_dir)
    print(summary_markdown(evaluation))
    print(f"wrote {folder}")


if __name__ == "__main__":
    main()
