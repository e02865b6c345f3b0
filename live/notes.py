"""Notes and MIDI values to parameters: the one rule that live play, the widget and MIDI follow.

The Pd external follows the same rule through the C runtime's `rc_model_velocity_value`.
"""
from __future__ import annotations

from model.reference import frequency_hz


def from_midi_value(spec: tuple[float, float], value: float) -> float:
    """Return a MIDI value 0..127 (a velocity or a controller) mapped onto a parameter's range (low, high)."""
    low, high = spec
    return low + (high - low) * value / 127


def note_value(note: float, units: str) -> float:
    """Return a note's number (MIDI, fractions allowed) in the pitch parameter's units: "midi" or "hz"."""
    return float(frequency_hz(note, "midi")) if units == "hz" else note
