"""Values from outside live play (Python calls, OSC, MIDI, the widget) made safe for a voice, in one place.

Every control checks its values here before anything is queued or stored: a number finite in float32
(utils.checks.finite_number), then within reach of its parameter's range. A refusal is one ValueError line naming
the value; OSC, MIDI and the widget put their source in front of it. What passes cannot make a voice's state
non-finite: within reach, a value times the network's weights stays far inside float32, and a glide between two
such values never computes inf - inf.
"""
from __future__ import annotations

import numpy as np

from audioDataLoader.audio_dataset import AudioDatasetConfig
from live.notes import from_midi_value, note_value
from utils.checks import finite_number

# How far past its declared range a live value may go, in widths of that range: far enough for extrapolation and
# for every MIDI note on a narrow pitch range (note 0 lies 5.3 widths below a range of 64 to 76), near enough that
# the network's inputs stay small numbers.
REACH = 100.0
# The widest pitch bend, in semitones: past any pitch wheel's setting (the widest common one is 96).
MAX_BEND = 128.0


def _reach(spec: tuple[float, float]) -> tuple[float, float]:
    """Return the lowest and highest values within reach of a parameter's range (low, high)."""
    low, high = sorted(spec)
    return low - REACH * (high - low), high + REACH * (high - low)


class LiveValues:
    """The checks for one run's controls: its parameter ranges, which parameters notes set, the pitch's units."""

    def __init__(self, specs: dict[str, tuple[float, float]], pitch: str | None, velocity: str | None,
                 pitch_units: str = "midi") -> None:
        self.specs, self.pitch, self.velocity = dict(specs), pitch, velocity
        self.pitch_units = pitch_units  # "midi": notes are the pitch's values; "hz": they take their frequency
        self.names = list(self.specs)
        # Made once: OSC may bring 10,000 values a second, each checked in the listener's thread.
        self._index = {name: index for index, name in enumerate(self.names)}
        self._reaches = {name: _reach(spec) for name, spec in self.specs.items()}

    @classmethod
    def of(cls, data: AudioDatasetConfig, pitch: str | None, velocity: str | None) -> LiveValues:
        """Return the checks for a run's data settings, notes setting `pitch` and `velocity`."""
        # Notes are MIDI numbers; a pitch parameter declared in Hz takes their frequency.
        units = data.pitch_units if pitch == data.pitch_parameter else "midi"
        return cls(dict(data.parameter_specs), pitch, velocity, units)

    def parameter(self, name: str, value: object) -> tuple[int, float]:
        """Return (the parameter's index, value as a float), or raise ValueError naming it."""
        if name not in self._index:
            raise ValueError(f"unknown parameter {name!r}: this run's parameters are {self.names}")
        return self._index[name], self._within_reach(name, finite_number(name, value))

    def parameters(self, values: dict[str, object]) -> dict[str, float]:
        """Return {name: value as a float} for values in the parameters' own units, every one checked."""
        return {name: self.parameter(name, value)[1] for name, value in values.items()}

    def note(self, note: object) -> float:
        """Return a note's number (MIDI, fractions allowed) as a float whose pitch lies within reach."""
        self.check_notes_playable()
        number = finite_number("note", note)
        self._within_reach(self.pitch, self.pitch_value(number), f"note {number:g}")
        return number

    def note_velocity(self, velocity: object) -> float:
        """Return a note's velocity 0..127 as a float."""
        number = finite_number("velocity", velocity)
        if not 0 <= number <= 127:
            raise ValueError(f"velocity must be within 0..127, got {number}")
        return number

    def bend(self, semitones: object) -> float:
        """Return a pitch bend in semitones, within ±MAX_BEND."""
        self.check_notes_playable()
        number = finite_number("bend", semitones)
        if abs(number) > MAX_BEND:
            raise ValueError(f"bend: {number:g} semitones is past ±{MAX_BEND:g}; give a smaller bend")
        return number

    def note_targets(self, note: float, velocity: float) -> dict[str, float]:
        """Return the parameter values a note (bend included) sets: its pitch and velocity."""
        targets = {self.pitch: self.pitch_target(note)}
        if self.velocity is not None:
            targets[self.velocity] = from_midi_value(self.specs[self.velocity], velocity)
        return targets

    def pitch_target(self, note: float) -> float:
        """Return the pitch parameter's value for a note (bend included), held within reach.

        A checked note plus a checked bend may land past reach; played, it stops there, and nothing is raised.
        """
        low, high = self._reaches[self.pitch]
        return min(max(self.pitch_value(note), low), high)

    def pitch_value(self, note: float) -> float:
        """Return a note's number in the pitch parameter's units (infinite where its frequency overflows)."""
        with np.errstate(over="ignore"):  # numpy's inf where Python's float power would raise OverflowError
            return float(note_value(np.float64(note), self.pitch_units))

    def check_notes_playable(self) -> None:
        """Raise ValueError, saying what to choose, unless notes have the parameters they set."""
        for role, name in (("pitch", self.pitch), ("velocity", self.velocity)):
            if name is not None and name not in self.specs:
                raise ValueError(f"notes need a parameter for their {role}, and this run has no {name!r} "
                                 f"(its parameters are {self.names}): choose one with --{role} NAME, "
                                 f"or play with set()/ramp() or OSC /param/NAME")
        if self.pitch is None:
            raise ValueError("notes need a pitch parameter and none is configured: choose one with --pitch NAME")

    def _within_reach(self, name: str, value: float, what: str | None = None) -> float:
        low, high = self._reaches[name]
        if not low <= value <= high:
            spec_low, spec_high = sorted(self.specs[name])
            raise ValueError(f"{what or name}: {name} = {value:g} lies more than {REACH:g} range widths past "
                             f"{name}'s range {spec_low:g} to {spec_high:g}; give a value within {low:g} to {high:g}")
        return value
