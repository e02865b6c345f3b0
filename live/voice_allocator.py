"""Which voice plays which note: allocation of free voices, stealing, release and legato for live play."""
from __future__ import annotations

from dataclasses import dataclass
from enum import Enum

# The note a drone voice holds: it sounds from the start and no MIDI note number releases it.
DRONE = -1.0


class Start(Enum):
    """How a note_on starts its voice."""

    FRESH = "fresh"  # a free voice: new hidden state and random stream, fades in
    LEGATO = "legato"  # the only voice was sounding: it glides to the new note, keeping its state
    STOLEN = "stolen"  # every voice was busy: the oldest one is retuned to the new note, keeping its state


@dataclass
class _Voice:
    note: float | None = None  # the note it holds; None once released or free
    sounding: bool = False  # False only when free
    order: int = 0  # when it last started or was released, to find the oldest


class VoiceAllocator:
    """Assigns notes to `count` voices: free voices first, then the oldest released one, then the oldest held one."""

    def __init__(self, count: int) -> None:
        if count < 1:
            raise ValueError(f"voices must be at least 1, got {count}")
        self._voices = [_Voice() for _ in range(count)]
        self._clock = 0

    def note_on(self, note: float) -> tuple[int, Start]:
        """Return (voice, how it starts) for a new note."""
        self._clock += 1
        voice = self._find(note)
        if voice is None:
            voice, start = self._choose()
        else:
            start = Start.STOLEN  # the same note struck again: its voice goes on
        if len(self._voices) == 1 and self._voices[0].sounding:
            start = Start.LEGATO
        self._voices[voice] = _Voice(note, True, self._clock)
        return voice, start

    def note_off(self, note: float) -> int | None:
        """Return the voice that held `note` and is now releasing, or None if no voice holds it."""
        voice = self._find(note)
        if voice is not None:
            self._clock += 1
            self._voices[voice].note = None
            self._voices[voice].order = self._clock
        return voice

    def free(self, voice: int) -> None:
        """Mark `voice` silent and free (its release has ended), unless a new note took it meanwhile."""
        if self._voices[voice].note is None:
            self._voices[voice] = _Voice()

    def held(self, voice: int) -> float | None:
        """Return the note `voice` holds, or None."""
        return self._voices[voice].note

    def sounding(self) -> list[int]:
        """Return the voices that sound (held or releasing)."""
        return [v for v, voice in enumerate(self._voices) if voice.sounding]

    def _find(self, note: float) -> int | None:
        return next((v for v, voice in enumerate(self._voices) if voice.note == note), None)

    def _choose(self) -> tuple[int, Start]:
        free = [v for v, voice in enumerate(self._voices) if not voice.sounding]
        if free:
            return free[0], Start.FRESH
        releasing = [v for v, voice in enumerate(self._voices) if voice.note is None]
        candidates = releasing or range(len(self._voices))
        return min(candidates, key=lambda v: self._voices[v].order), Start.STOLEN
