"""Measure control: does a trained run play the pitch, loudness and instrument it is asked for?

Generates held notes over a grid (each instrument x pitches across the range, half-semitones between the
trained ones included, x a few amplitudes) and a pitch glide per instrument, then measures each note's f0
against the requested pitch (cents), its RMS level against the data's level at that amplitude (dB), and the
instrument a classifier fit on the data hears in it. The same measures on the data files are the floor.
Values held out of training (config.json's data.exclude) and values between the data's values are reported
apart from the trained ones.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Callable

import numpy as np

from audioDataLoader.audio_dataset import AudioDatasetConfig, MuLawAudioDataset, normalize_parameters, read_mono
from evaluation.measures import (
    FRAME_LENGTH,
    GROUPS,
    SILENT_BELOW_VOICED,
    NearestCentroid,
    NoteMeasurement,
    PitchTrack,
    f0_range,
    glide_track,
    measure_note,
    percentile,
    spearman,
)
from model.generation import GenerationRate, SynthStream
from model.gru_audio_model import RNN
from model.reference import PeriodicReference
from utils.run_folder import load_model
from utils.utils import multi_linspace


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
            silent = note.voiced_fraction < SILENT_BELOW_VOICED
            cents = math.nan if silent else 100.0 * (note.f0_midi - named[config.pitch])
            rows.append({"source": source, "group": value_group(named, self.values, self.exclude), **named,
                         "f0_midi": note.f0_midi, "cents_error": cents, "silent": silent,
                         "voiced_fraction": note.voiced_fraction, "level_db": note.level_db,
                         "level_error_db": note.level_db - expected_db, "heard_instrument": instrument})
        return rows


def measure_data(data: AudioDatasetConfig, config: EvaluationConfig) -> tuple[Reference, list[dict]]:
    """Return the reference built from every file of a run's data folder, and one row per file."""
    try:
        dataset = MuLawAudioDataset(replace(data, exclude={}))
    except FileNotFoundError as error:
        raise FileNotFoundError(f"{error}. A run is measured against its data (config.json data.data_dir, relative "
                                "to the folder it was trained from): run the evaluation from that folder, or give "
                                "the data's folder (evaluate.py --data_dir)") from None
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
    return {"voiced": voiced, "pitch error median (cents)": percentile(np.abs(cents), 50),
            "pitch error p90 (cents)": percentile(np.abs(cents), 90)}


def summary_row(rows: list[dict], config: EvaluationConfig, instruments: np.ndarray) -> dict:
    """Return the pitch, loudness and instrument measures over note rows of one source and group."""
    column = {key: np.array([row[key] for row in rows]) for key in rows[0]}
    correct = column["heard_instrument"] == column[config.instrument]
    row = {"source": rows[0]["source"], "group": rows[0]["group"], "notes": len(rows),
           "silent notes": int(column["silent"].sum()), **_pitch_columns(column["cents_error"], float(column["voiced_fraction"].mean())),
           "level rank correlation": level_rank_correlation(rows, config),
           "level error median (dB)": percentile(np.abs(column["level_error_db"]), 50),
           "instrument accuracy": float(correct.mean())}
    for instrument in instruments.tolist():
        asked = column[config.instrument] == instrument
        row[f"accuracy {config.instrument}={instrument:g}"] = float(correct[asked].mean()) if asked.any() else math.nan
    return row


def summary_rows(notes: list[dict], config: EvaluationConfig, instruments: np.ndarray) -> list[dict]:
    """Return one summary row for each source (generated, data) and group that has notes."""
    return [summary_row(rows, config, instruments) for source in ("generated", "data") for group in GROUPS
            if (rows := [r for r in notes if r["source"] == source and r["group"] == group])]


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
                         sample_rate=data.sample_rate, reference=PeriodicReference.of(data))
    return stream.render(normalize_parameters(settings, data.parameter_specs)), stream.rate


# What evaluate_run has done when it calls `progress`, in order: a caller's progress bar counts these.
STAGES = ("data files measured", "grid notes generated", "grid notes measured", "glides generated and measured")


def evaluate_run(run_directory: str | Path, config: EvaluationConfig = EvaluationConfig(),
                 device: str | None = None, progress: Callable[[str], None] = lambda stage: None,
                 data_dir: str | Path | None = None) -> Evaluation:
    """Return the evaluation of a run folder or model file: the grid notes and glides generated and measured, and
    the data, read from `data_dir` where given (a model file's data may live elsewhere than where it was trained).

    `progress(stage)` is called as each of STAGES ends, for a progress bar: the whole takes tens of seconds.
    """
    run_directory = Path(run_directory)
    model, run_config = load_model(run_directory, device)
    data = run_config["data"] if data_dir is None else replace(run_config["data"], data_dir=str(data_dir))
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
    summary = summary_rows(notes, config, instruments)
    summary += [glide_row(config.instrument, instrument, track) for instrument, track in glides.items()]
    rate = GenerationRate(grid_rate.samples + glide_rate.samples, grid_rate.seconds + glide_rate.seconds, sr)
    return Evaluation(run_directory, config, sr, summary, notes, glides, data.exclude, grid_audio, rate)
