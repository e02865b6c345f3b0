"""A dataset of fixed-length windows over a folder of wavs whose file names carry conditioning parameters."""
from __future__ import annotations

import math
import os
import re
import stat
import warnings
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import soundfile as sf
import torch
from torch.utils.data import Dataset

from audioDataLoader import pitch_shift
from audioDataLoader.encoded_cache import MAX_NUMTOKENS, encoded_audio
from audioDataLoader.labels import read_labels
from audioDataLoader.mulaw import mu_law_decode, mu_law_encode
from model.reference import PeriodicReference
from utils.checks import finite_number, setting_in_range

# How fast a cold-start window's note fades in from silence: a few milliseconds, a note's attack with no click.
COLD_START_FADE_MS = 5.0
# Below this share of a file's peak, a sample is silence: a file starting so has an attack, and its end so is a
# release's tail (-40 dB).
SILENCE_SHARE = 0.01
ONSET_MS = 2.0  # how much of a file's start must be silence for the file to start with an attack
# A file's own sample rate may differ from sample_rate by at most this factor either way: resampled, a header
# that claims 1 Hz would turn 16 KB into 128 MB of codes.
MAX_RATE_RATIO = 16


@dataclass
class AudioDatasetConfig:
    """Where the audio is and how it becomes network input. `parameter_specs` order is the conditioning order."""

    data_dir: str = "data/nsynth.64.76_sm"
    sequence_length: int = 256
    parameter_specs: dict[str, tuple[float, float]] = field(
        default_factory=lambda: {"instID": (1.0, 2.0), "a": (0.0, 1.0), "p": (64.0, 76.0)}
    )
    add_noise: bool = True
    noise_weight: float = 0.1
    # True: the audio input is the mu-law index / (numtokens-1); False: the raw sample mapped to [0, 1].
    encode: bool = True
    numtokens: int = 256
    sample_rate: int = 16000
    # Held-out values, e.g. {"p": [67, 71]}: files with these parameter values are left out.
    exclude: dict[str, list[float]] = field(default_factory=dict)
    # The parameter that is a pitch in semitones (MIDI), for pitch-shift augmentation; None: no parameter is.
    pitch_parameter: str | None = None
    # Pitch-shift augmentation: each window is resampled by a random shift of up to this many semitones either
    # way and its pitch_parameter moves with it. 0: off.
    pitch_shift: float = 0.0
    # A table of each file's parameter values (CSV `file,NAME1,...`, or JSON like NSynth's examples.json);
    # None: the values are read from the file names.
    labels: str | None = None
    # The share of windows that start cold, as generation does: silence as the first input (the network's state is
    # zero at every window's start) and the note's own attack as the target where its file starts from silence, or
    # the note fading in over COLD_START_FADE_MS where it has no attack. With cold_start, windows in a file's
    # trailing silence (a release into silence) are left out, so holding a note never trains to fall silent.
    # 0: every window starts inside the note, and the network never trains on starting one (the original recipe).
    cold_start: float = 0.0
    # The periodic reference (model/reference.py): sin kφ, cos kφ for k = 1..reference_harmonics of an oscillator at
    # pitch_parameter's frequency, appended to the parameters. 0: none (the original network).
    reference_harmonics: int = 0
    # What pitch_parameter's values are: MIDI note numbers ("midi") or frequencies ("hz").
    pitch_units: str = "midi"

    def __post_init__(self) -> None:
        if self.sequence_length < 1:
            raise ValueError(f"sequence_length must be at least 1, got {self.sequence_length} (seqLen, --seqLen on "
                             "the command line)")
        self.parameter_specs = {name: _parameter_range(name, ends) for name, ends in self.parameter_specs.items()}
        for name, values in self.exclude.items():
            if name not in self.parameter_specs:
                raise ValueError(f"exclude names {name!r}, which is not in parameter_specs {list(self.parameter_specs)}")
            for value in values:
                finite_number(f"exclude {name} (--exclude {name}=...)", value)
        setting_in_range("noise_weight (noise, --noise on the command line)", self.noise_weight, 0)
        if not 2 <= self.numtokens <= MAX_NUMTOKENS:
            raise ValueError(f"numtokens (--numtokens) must be from 2 to {MAX_NUMTOKENS:,} (the C runtime's limit), "
                             f"got {self.numtokens}")
        if self.pitch_parameter is not None and self.pitch_parameter not in self.parameter_specs:
            raise ValueError(f"pitch_parameter {self.pitch_parameter!r} is not in parameter_specs "
                             f"{list(self.parameter_specs)}; name the parameter that holds the pitch in semitones")
        if not 0 <= self.pitch_shift <= 12:
            raise ValueError(f"pitch_shift must be between 0 and 12 semitones, got {self.pitch_shift}")
        if not 0 <= self.cold_start <= 1:
            raise ValueError(f"cold_start is the share of windows that start from silence, from 0 to 1; got "
                             f"{self.cold_start}")
        if self.pitch_units not in ("midi", "hz"):
            raise ValueError(f"pitch_units must be 'midi' or 'hz', got {self.pitch_units!r}")
        if not 0 <= self.reference_harmonics <= 16:
            raise ValueError(f"reference_harmonics must be between 0 and 16, got {self.reference_harmonics}")
        if self.reference_harmonics and self.pitch_parameter is None:
            raise ValueError("reference_harmonics needs pitch_parameter: the parameter whose frequency the reference "
                             "oscillator follows")
        if self.pitch_shift and self.pitch_units != "midi":
            raise ValueError("pitch_shift moves pitch_parameter in semitones, so it needs pitch_units 'midi'")
        if self.pitch_shift and self.pitch_parameter is None:
            raise ValueError("pitch_shift needs pitch_parameter: the parameter whose value moves with the shift")


    @property
    def conditioning_size(self) -> int:
        """Return how many values condition the network at each step: the parameters, then the reference."""
        return len(self.parameter_specs) + 2 * self.reference_harmonics


def _parameter_range(name: str, ends: tuple[float, float]) -> tuple[float, float]:
    """Return a parameter's (min, max) as floats, refusing an empty range or one float32 cannot hold."""
    where = f"parameter {name!r} (--param {name}=MIN:MAX)"
    low, high = (finite_number(f"{where} {end}", value) for end, value in zip(("min", "max"), ends))
    if low == high:
        raise ValueError(f"{where}: its range ({low}, {high}) is empty; give min < max or max < min")
    finite_number(f"{where}: the width of the range", high - low)  # each value is mapped through it in float32
    return low, high


def parse_filename_parameters(filename: str, names: list[str]) -> dict[str, float]:
    """Return {name: value} for every `_NAME<float>` of `names` found in the file name's stem.

    Raises ValueError naming the file when a parameter is written twice or its value is beyond float32's range.
    """
    stem = Path(filename).stem
    found = {}
    for name in names:
        # The value must follow the name directly and end at "_" or the stem's end, so "a" never matches "_amp0.5".
        values = re.findall(rf"_{re.escape(name)}([-+]?\d+(?:\.\d*)?)(?=_|$)", stem)
        if len(values) > 1:
            raise ValueError(f"{filename} gives {name} {len(values)} times ({', '.join(values)})")
        if values:
            found[name] = finite_number(f"{filename} gives {name}", values[0])
    return found


def normalize_parameters(values: np.ndarray, specs: dict[str, tuple[float, float]]) -> np.ndarray:
    """Return values (..., P) in their own units mapped by (v - min) / (max - min) for each parameter."""
    lo = np.array([s[0] for s in specs.values()], dtype=np.float32)
    hi = np.array([s[1] for s in specs.values()], dtype=np.float32)
    return ((np.asarray(values, dtype=np.float32) - lo) / (hi - lo)).astype(np.float32)


def input_value_table(numtokens: int, encode: bool) -> torch.Tensor:
    """Return the network's audio input value for each mu-law index: index/(N-1), or the decoded sample in [0, 1]."""
    indices = torch.arange(numtokens)
    if encode:
        return indices.float() / (numtokens - 1)
    return (mu_law_decode(indices, numtokens) + 1) / 2


def read_mono(path: Path, sample_rate: int) -> np.ndarray:
    """Return the file's audio as float32 mono at `sample_rate`, resampling when the file has another rate."""
    try:
        audio, file_rate = sf.read(path, dtype="float32", always_2d=True)
    except Exception as error:
        raise ValueError(f"cannot read {path}: {error}. Remove the file or replace it with a valid wav.") from error
    if audio.size == 0:
        raise ValueError(f"{path} holds no audio samples. Remove it from the data folder.")
    broken = ~np.isfinite(audio).all(axis=1)
    if broken.any():  # mu-law would turn them into full-scale codes without a word
        raise ValueError(f"{path} holds {broken.sum()} samples that are NaN or infinite (the first at sample "
                         f"{broken.argmax()}). Repair the file or remove it from the data folder.")
    audio = audio.mean(axis=1)
    if not sample_rate / MAX_RATE_RATIO <= file_rate <= sample_rate * MAX_RATE_RATIO:
        raise ValueError(f"{path} has a sample rate of {file_rate} Hz, more than {MAX_RATE_RATIO} times away from "
                         f"sample_rate {sample_rate}; resample it yourself or remove it from the data folder")
    if file_rate != sample_rate:
        import soxr  # only needed for the uncommon case of mixed rates

        audio = soxr.resample(audio, file_rate, sample_rate).astype(np.float32)
    return audio


def _check_regular_file(path: Path) -> None:
    """Refuse a .wav that is not a regular file: reading a FIFO would wait forever, a link loop raises OSError."""
    try:
        mode = os.stat(path).st_mode
    except OSError as error:
        raise ValueError(f"cannot read {path} ({error.strerror}); remove it from the data folder or mend the "
                         "link") from None
    if not stat.S_ISREG(mode):
        raise ValueError(f"{path} is not a regular file (a FIFO, a device or a folder); remove it from the data "
                         "folder")


def _shown(items: list[str], separator: str = ", ") -> str:
    """Return the first five items joined, and how many more there are."""
    return separator.join(items[:5]) + (f" and {len(items) - 5} more" if len(items) > 5 else "")


def _close_to_any(value: float, values: list[float]) -> bool:
    """Return whether a value read from a file name equals one of `values` (names hold rounded decimals)."""
    return any(math.isclose(float(value), float(v), abs_tol=1e-6) for v in values)


class MuLawAudioDataset(Dataset):
    """Windows (input (T, 1+P), target (T, 1)) over every wav in a folder, found by index arithmetic.

    The audio is held once as mu-law indices (plus float samples when `encode` is False), memory-mapped from the
    folder's encoded cache (see encoded_cache.py; `cache=False` encodes into memory instead); a window is a
    start position, so memory stays close to the audio itself.
    """

    def __init__(self, config: AudioDatasetConfig, cache: bool = True) -> None:
        self.config = config
        self.files, raw = self._find_files(Path(config.data_dir))
        self.raw_parameters = raw  # (F, P) in the file names' (or the labels table's) units
        self.parameters = torch.from_numpy(normalize_parameters(raw, config.parameter_specs))
        self._load_audio(cache)
        self.input_values = input_value_table(config.numtokens, config.encode)
        self.reference = PeriodicReference.of(config)

    def _find_files(self, folder: Path) -> tuple[list[Path], np.ndarray]:
        if not folder.is_dir():
            raise FileNotFoundError(f"data folder {folder} does not exist. Build the default set with "
                                    "`python -m audioDataLoader.render_dataset` or point data_dir at your wavs.")
        wavs = sorted((p for p in folder.iterdir() if p.suffix.lower() == ".wav"), key=lambda p: p.name)
        if not wavs:
            raise FileNotFoundError(f"no .wav files in {folder}")
        for path in wavs:
            _check_regular_file(path)
        names = list(self.config.parameter_specs)
        table = self._labels_table(wavs, names, folder)
        complete, missing, unclear = [], [], []
        for path in wavs:
            try:
                found = parse_filename_parameters(path.name, names) if table is None else table.get(path.name, {})
            except ValueError as error:
                unclear.append(str(error))
                continue
            (complete if len(found) == len(names) else missing).append((path, found))
        where = (f"in {self.config.labels} (no row, or an empty cell)" if self.config.labels
                 else "in their names as _NAME<value>")
        if missing:
            warnings.warn(f"skipped {len(missing)} of {len(wavs)} files in {folder} that lack one of the "
                          f"parameters {names} {where}: {_shown([path.name for path, _ in missing])}", stacklevel=3)
        if unclear:
            warnings.warn(f"skipped {len(unclear)} of {len(wavs)} files in {folder} whose names cannot be read: "
                          f"{_shown(unclear, '; ')}. Rename them: each parameter once, with a number float32 holds.",
                          stacklevel=3)
        self._check_exclusions_match([found for _, found in complete], folder)
        kept = [(path, found) for path, found in complete if not self._is_excluded(found)]
        if not kept:
            raise ValueError(f"no usable file in {folder}: none has all of {names} {where}"
                             + (f" outside the excluded values {self.config.exclude}" if complete else "")
                             + ". Check parameter_specs against "
                             + (f"the columns of {self.config.labels}." if self.config.labels else "the file names."))
        values = np.array([[found[n] for n in names] for _, found in kept], dtype=np.float64)
        self._warn_out_of_range(kept)
        return [path for path, _ in kept], values.reshape(len(kept), len(names)).astype(np.float32)

    def _warn_out_of_range(self, kept: list[tuple[Path, dict[str, float]]]) -> None:
        """Warn once about values beyond their parameter's range: they train mapped outside [0, 1], maybe by intent."""
        outside = [f"{path.name} ({name}={found[name]:g}, range {lo:g} to {hi:g})"
                   for path, found in kept for name, (lo, hi) in self.config.parameter_specs.items()
                   if not min(lo, hi) <= found[name] <= max(lo, hi)]
        if outside:
            warnings.warn(f"{len(outside)} parameter values lie outside the ranges of parameter_specs and map "
                          f"beyond [0, 1]: {_shown(outside, '; ')}. Widen the ranges if that is not meant.",
                          stacklevel=4)

    def _labels_table(self, wavs: list[Path], names: list[str],
                      folder: Path) -> dict[str, dict[str, float]] | None:
        """Return the labels table's {file name: {name: value}}, or None where the values come from the file names."""
        if not self.config.labels:
            return None
        table = read_labels(self.config.labels, names)
        unmatched = sorted(set(table) - {path.name for path in wavs})
        if unmatched:
            warnings.warn(f"{len(unmatched)} of {len(table)} rows of {self.config.labels} name files that are not "
                          f"in {folder}: {_shown(unmatched)}", stacklevel=4)
        return table

    def _is_excluded(self, found: dict[str, float]) -> bool:
        return any(_close_to_any(found[name], values) for name, values in self.config.exclude.items())

    def _check_exclusions_match(self, found: list[dict[str, float]], folder: Path) -> None:
        """Refuse an excluded value that no file has: a typo would otherwise hold nothing out, silently."""
        for name, values in self.config.exclude.items():
            present = sorted({f[name] for f in found})
            for value in values:
                if not _close_to_any(value, present):
                    raise ValueError(f"exclude {name}={value:g} matches no file in {folder}; the values of {name} "
                                     f"there are {[round(v, 6) for v in present]}")

    def _load_audio(self, cache: bool) -> None:
        config, seq = self.config, self.config.sequence_length
        # Everything besides the files themselves that decides which files are used and what their samples are.
        settings = {"sample_rate": config.sample_rate, "parameters": list(config.parameter_specs),
                    "labels": config.labels and str(Path(config.labels).resolve()), "exclude": config.exclude}
        encoded = encoded_audio(Path(config.data_dir), self.files, self.raw_parameters,
                                lambda path: read_mono(path, config.sample_rate), settings, config.numtokens,
                                keep_audio=not config.encode, cache=cache)
        needed = int(pitch_shift.span(seq + 1, pitch_shift.read_ratio(config.pitch_shift))) + 1
        for path, length in zip(self.files, encoded.lengths.tolist()):
            if length < seq + 1:
                raise ValueError(f"{path} has {length} samples, fewer than sequence_length+1 = {seq + 1}. "
                                 "Remove it or lower sequence_length.")
            if length < needed:
                raise ValueError(f"{path} has {length} samples, fewer than the {needed} that a window of "
                                 f"sequence_length {seq} shifted by pitch_shift {config.pitch_shift} reads. "
                                 "Remove it, or lower sequence_length or pitch_shift.")
        lengths = torch.from_numpy(encoded.lengths)
        self.file_starts = torch.cumsum(lengths, 0) - lengths
        self.codes = torch.from_numpy(encoded.codes)
        # Where each file's windows may lie: the whole file, or with cold_start only where it sounds.
        self.sound_starts, sound_lengths = self.file_starts, lengths
        if config.cold_start:
            self.starts_silent, leads, sound_lengths = self._sounding_spans(lengths, needed)
            self.sound_starts = self.file_starts + leads
        windows = sound_lengths - seq
        self.window_ends = torch.cumsum(windows, 0)  # window i belongs to the first file whose end exceeds i
        self.window_starts = self.window_ends - windows
        self.audio = None if encoded.audio is None else torch.from_numpy(encoded.audio)

    def _sounding_spans(self, lengths: torch.Tensor, least: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Return (whether each file starts from silence, where its sound starts, how long it sounds).

        The sound starts ONSET_MS before the first sample above silence, so a window there starts with silence as
        its input and the attack as its targets; it ends with the last sample above silence. Each span keeps at
        least `least` samples, so every file still has a window.
        """
        numtokens, onset = self.config.numtokens, max(1, int(ONSET_MS * self.config.sample_rate / 1000))
        silent, leads, spans = [], [], []
        for first, length in zip(self.file_starts.tolist(), lengths.tolist()):
            level = mu_law_decode(self.codes[first:first + length].long(), numtokens).abs()
            loud = torch.nonzero(level >= SILENCE_SHARE * level.max()).flatten()
            lead = min(max(int(loud[0]) - onset, 0), length - least)
            silent.append(int(loud[0]) >= onset)
            leads.append(lead)
            spans.append(max(int(loud[-1]) + 1 - lead, least))
        return torch.tensor(silent), torch.tensor(leads), torch.tensor(spans)

    def __len__(self) -> int:
        return int(self.window_ends[-1])

    def __getitem__(self, index: int) -> tuple[torch.Tensor, torch.Tensor]:
        inputs, targets = self._windows(torch.tensor([index]), None)
        return inputs[0], targets[0]

    def sample_batch(self, batch_size: int, generator: torch.Generator | None = None
                     ) -> tuple[torch.Tensor, torch.Tensor]:
        """Return (inputs (B, T, 1+P), targets (B, T, 1)) for windows drawn uniformly over all windows."""
        index = torch.randint(len(self), (batch_size,), generator=generator)
        return self._windows(index, generator)

    def _windows(self, index: torch.Tensor, generator: torch.Generator | None) -> tuple[torch.Tensor, torch.Tensor]:
        seq = self.config.sequence_length
        file = torch.searchsorted(self.window_ends, index, right=True)
        start = self.sound_starts[file] + index - self.window_starts[file]
        params = self.parameters[file]
        cold = fade = None
        if self.config.cold_start:  # cold windows start at their file's attack, or fade in where it has none
            cold = torch.rand(len(index), generator=generator) < self.config.cold_start
            start = torch.where(cold & self.starts_silent[file], self.sound_starts[file], start)
            fade = cold & ~self.starts_silent[file]
        if self.config.pitch_shift:
            codes, audio_in, params = self._shifted_windows(file, start, params, generator)
        else:
            positions = start[:, None] + torch.arange(seq + 1)
            codes = self.codes[positions].long()
            if self.audio is None:
                audio_in = self.input_values[codes[:, :-1]]
            else:
                audio_in = (self.audio[positions[:, :-1]] + 1) / 2
        if fade is not None and fade.any():
            codes, audio_in = self._fade_in(codes, audio_in, fade)
        if self.config.add_noise:
            noise = torch.rand(audio_in.shape, generator=generator) - 0.5
            audio_in = audio_in + self.config.noise_weight * noise
        conditioning = [params[:, None, :].expand(-1, seq, -1)]
        if self.reference is not None:
            conditioning.append(self._reference_channels(codes, params))
        inputs = torch.cat([audio_in[..., None], *conditioning], dim=-1)
        return inputs, codes[:, 1:, None]

    def _reference_channels(self, codes: torch.Tensor, params: torch.Tensor) -> torch.Tensor:
        """Return the reference (B, T, 2K) aligned to each window's targets, at each window's (shifted) pitch."""
        target = mu_law_decode(codes[:, 1:], self.config.numtokens)
        return self.reference.aligned(target, self.reference.frequency(params[:, self.reference.pitch_index]))

    def _fade_in(self, codes: torch.Tensor, audio_in: torch.Tensor, rows: torch.Tensor
                 ) -> tuple[torch.Tensor, torch.Tensor]:
        """Return the windows with `rows` faded in from silence: codes (B, T+1) and audio input (B, T)."""
        numtokens, fade = self.config.numtokens, COLD_START_FADE_MS * self.config.sample_rate / 1000
        # A linear fade from exactly 0, so the first input is silence and the targets are the note's fade-in. The
        # fade is applied to the decoded codes: with encode=False a faded window's input is the quantised sample.
        gain = (torch.arange(codes.shape[1]) / fade).clamp(max=1.0)
        faded = mu_law_decode(codes[rows], numtokens) * gain
        codes, audio_in = codes.clone(), audio_in.clone()
        codes[rows] = mu_law_encode(faded, numtokens)
        audio_in[rows] = (self.input_values[codes[rows][:, :-1]] if self.audio is None
                          else (faded[:, :-1].clamp(-1, 1) + 1) / 2)
        return codes, audio_in

    def _shifted_windows(self, file: torch.Tensor, start: torch.Tensor, params: torch.Tensor,
                         generator: torch.Generator | None) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Return (codes (B, T+1), audio input (B, T), parameters (B, P)) of windows shifted in pitch."""
        config, length = self.config, self.config.sequence_length + 1
        semitones = pitch_shift.draw_shifts(len(file), config.pitch_shift, generator)
        ratio = pitch_shift.read_ratio(semitones)
        file_end = self.sound_starts[file] + self.window_ends[file] - self.window_starts[file] + length - 1
        start = pitch_shift.fit_starts(start, ratio, length, self.sound_starts[file], file_end)
        if self.audio is None:
            def samples_at(positions: torch.Tensor) -> torch.Tensor:
                return mu_law_decode(self.codes[positions].long(), config.numtokens)
        else:
            def samples_at(positions: torch.Tensor) -> torch.Tensor:
                return self.audio[positions]
        audio = pitch_shift.read_resampled(samples_at, start, ratio, length)
        codes = mu_law_encode(audio, config.numtokens)
        audio_in = self.input_values[codes[:, :-1]] if self.audio is None else (audio[:, :-1].clamp(-1, 1) + 1) / 2
        column = list(config.parameter_specs).index(config.pitch_parameter)
        low, high = config.parameter_specs[config.pitch_parameter]
        params = params.clone()
        params[:, column] += (semitones / (high - low)).float()
        return codes, audio_in, params

    def nbytes(self) -> int:
        """Return the bytes held by the dataset's tensors."""
        tensors = [self.codes, self.parameters, self.file_starts, self.window_starts, self.window_ends]
        if self.audio is not None:
            tensors.append(self.audio)
        return sum(t.element_size() * t.nelement() for t in tensors)
