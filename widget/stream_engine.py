"""The kernel side of live play: controls in the parameters' own units, audio pulled block by block."""
from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager, nullcontext

import numpy as np

from audioDataLoader.audio_dataset import AudioDatasetConfig, normalize_parameters
from inference import SynthStream
from model.gru_audio_model import RNN


class StreamEngine:
    """One voice of a run's model that plays whatever the controls say when audio is pulled.

    It offers the live engine's control interface (`set`, `note_on`, `note_off`, `pull`) over `SynthStream`,
    so the widget does not care which engine plays. Audio comes at the model's sample rate; the browser
    resamples. Nothing runs between pulls.
    """

    def __init__(self, model: RNN, data: AudioDatasetConfig, top_n: int | None = 3, temperature: float = 1.0,
                 seed: int | None = None, pitch: str = "p", amplitude: str = "a") -> None:
        self.specs, self.sample_rate = data.parameter_specs, data.sample_rate
        self.pitch, self.amplitude = pitch, amplitude
        self.stream = SynthStream(model, None, top_n, temperature, seed, data.encode, sample_rate=data.sample_rate)
        self.values = {name: (low + high) / 2 for name, (low, high) in self.specs.items()}
        self.held_note: int | None = None

    def set(self, **values: float) -> None:
        """Hold parameters at new values in their own units, from the next pulled sample on."""
        unknown = sorted(set(values) - set(self.specs))
        if unknown:
            raise ValueError(f"unknown parameter(s) {unknown}: this run is conditioned on {list(self.specs)}")
        self.values.update({name: float(value) for name, value in values.items()})

    def note_on(self, note: int, velocity: int = 100) -> None:
        """Play a MIDI note: the pitch parameter takes the note, the amplitude parameter the velocity (1-127)."""
        self._check_note_parameters()
        low, high = self.specs[self.amplitude]
        self.set(**{self.pitch: float(note), self.amplitude: low + (high - low) * min(max(velocity, 0), 127) / 127})
        self.held_note = note

    def note_off(self, note: int) -> None:
        """Silence the note being held (the amplitude's low end); releasing an older note changes nothing."""
        self._check_note_parameters()
        if note == self.held_note:
            self.set(**{self.amplitude: self.specs[self.amplitude][0]})
            self.held_note = None

    def pull(self, frames: int) -> np.ndarray:
        """Return the next `frames` samples (float32, at `sample_rate`) played with the current controls."""
        cond = normalize_parameters([self.values[name] for name in self.specs], self.specs)
        with _one_numba_thread() if self.stream.backend == "numba" else nullcontext():
            return self.stream.hold(cond, frames).astype(np.float32)

    def _check_note_parameters(self) -> None:
        missing = [name for name in (self.pitch, self.amplitude) if name not in self.specs]
        if missing:
            raise ValueError(f"MIDI notes play the pitch and amplitude parameters, but this run has no {missing} "
                             f"(it has {list(self.specs)}): pass pitch=NAME, amplitude=NAME to LivePlay")


@contextmanager
def _one_numba_thread() -> Iterator[None]:
    # One voice gains nothing from numba's thread pool, and waking it costs more than a short block on a busy
    # machine (measured: 320 samples in 4 to 8 ms on one thread, 16 to 20 ms on two, 2 loaded cores).
    # The setting is the calling thread's own; the notebook's batch generation keeps its threads.
    import numba

    previous = numba.get_num_threads()
    numba.set_num_threads(1)
    try:
        yield
    finally:
        numba.set_num_threads(previous)
