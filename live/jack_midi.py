"""MIDI through JACK: with `--audio jack`, live play's JACK client offers a MIDI input port, `midi_in`.

JACK hands the port's events to the process callback, each with its frame within the period. They are turned into
controls by the same `MidiMapping` as `--midi` (notes, velocity, pitch bend, control changes), and each is queued to
take effect at its own frame: the period's first frame plus its offset plus the synth's constant control delay
(buffer depth plus one period), the delay every other control of a LiveSynth has. So a chord stays a chord and a
note keeps its place within the period, however the periods fall.
"""
from __future__ import annotations

from collections import deque
from typing import Any

from live.control import MidiMapping, Report
from live.engine import LiveEngine
from live.outputs import JackOutput
from live.synth import LiveSynth

PORT_NAME = "midi_in"


class _AtFrame:
    """The four controls, applied on the engine at output frame `at` (set before each event)."""

    def __init__(self, engine: LiveEngine) -> None:
        self.engine, self.at = engine, 0

    def set(self, **values: float) -> None:
        self.engine.set(at=self.at, **values)

    def note_on(self, note: float, velocity: float = 100) -> None:
        self.engine.note_on(note, velocity, at=self.at)

    def note_off(self, note: float) -> None:
        self.engine.note_off(note, at=self.at)

    def bend(self, semitones: float) -> None:
        self.engine.bend(semitones, at=self.at)


class JackMidiInput:
    """The JACK MIDI input port of a LiveSynth playing through JACK; made before the synth starts."""

    def __init__(self, synth: LiveSynth, cc: dict[int, str] | None = None, bend_range: float = 2.0,
                 report: Report | None = None) -> None:
        import mido

        if not isinstance(synth.output, JackOutput):
            raise ValueError("a JACK MIDI port needs the JACK output: play with --audio jack")
        self._output, self._ring = synth.output, synth.ring
        self._delay = synth.depth + synth.period  # as LiveSynth._at: the frame handed out now is ring.played
        self._timed = _AtFrame(synth.engine)
        self.mapping = MidiMapping(self._timed, synth.engine.specs, cc, bend_range)
        if report is not None:  # else MidiMapping's own: a line on stderr
            self.mapping.report = report
        self._parse = mido.Message.from_bytes
        self.port = synth.output.client.midi_inports.register(PORT_NAME)
        self.errors = 0
        self.received: deque[tuple[int, int]] = deque(maxlen=100_000)  # (frame the event came at, frame it acts at)
        self._output.before_play.append(self.process)

    def process(self, _frames: int) -> None:
        """Read this period's events and queue each at its frame (called by the JACK output before it plays)."""
        try:
            start = self._ring.played  # the first frame of the block this callback hands out
            for offset, data in self.port.incoming_midi_events():
                message = self._message(bytes(data))
                if message is None:
                    continue
                self._timed.at = start + offset + self._delay
                self.received.append((start + offset, self._timed.at))
                self.mapping.handle(message)
        except Exception as error:  # never into the audio host, which would drop the client
            self.errors += 1
            self.mapping.report(f"JACK MIDI: {error!r}")

    def _message(self, data: bytes) -> Any:
        try:
            return self._parse(data)
        except ValueError as error:  # JACK passes complete messages, but a client may write anything
            self.mapping.report(f"JACK MIDI {data.hex(' ')}: {error}")
            return None

    def close(self) -> None:
        """Stop reading the port (the port itself goes with the JACK client when the synth stops)."""
        if self.process in self._output.before_play:
            self._output.before_play.remove(self.process)
