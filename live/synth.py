"""`LiveSynth`: a trained run played live, with audio out through PortAudio, JACK or none, and a recording."""
from __future__ import annotations

import gc
from pathlib import Path

import numpy as np

from audioDataLoader.audio_dataset import AudioDatasetConfig
from live.engine import EngineConfig, LiveEngine
from live.outputs import open_output
from live.realtime import Generator, RingBuffer, played_audio
from model.gru_audio_model import RNN
from utils.atomic_write import writable_target
from utils.checks import finite_number
from utils.run_folder import load_model, newest_run_or_shipped_model
from utils.wav import save_wav

# From bench/bench_live.py on the quiet 2-core machine (docs/results/speed.md), 20 s a row: 4 ms underflowed (7 times with one voice,
# 969 with four); 8 ms played 1 and 4 voices with none, at an engine latency of 10 ms (median) and 11 ms (p99).
DEFAULT_BUFFER_MS = 8.0


class LiveSynth:
    """A run playing live: the engine, a generator thread ahead of the audio callback, the output, a recording.

    Controls (`set`, `ramp`, `note_on`, `note_off`, `bend`) take effect buffer_ms plus one period after the call,
    at their own sample: the delay is constant, not rounded to blocks.
    """

    def __init__(self, model: RNN, data_config: AudioDatasetConfig, engine: EngineConfig | None = None,
                 audio: str = "none", rate: int = 48000, period: int = 128, buffer_ms: float = DEFAULT_BUFFER_MS,
                 device: str | int | None = None, jack_server: str | None = None, connect: bool = True,
                 record: str | Path | None = None, name: str = "rnncontrol", realtime: bool = True) -> None:
        buffer_ms = finite_number("buffer_ms", buffer_ms)
        if buffer_ms <= 0:
            raise ValueError(f"--buffer_ms must be > 0, got {buffer_ms}")
        self.output = open_output(audio, rate, period, device, jack_server, connect, name, realtime)
        self.rate, self.period = self.output.rate, self.output.period
        if buffer_ms * self.rate / 1000 < self.period:
            raise ValueError(f"--buffer_ms {buffer_ms} is shorter than one period ({self.period} frames = "
                             f"{1000 * self.period / self.rate:.2f} ms): every callback would underflow; raise it")
        engine = engine or EngineConfig()
        engine.output_rate = self.rate
        self.engine = LiveEngine(model, data_config, engine)
        self.depth = max(1, int(round(buffer_ms * self.rate / 1000)))
        self.ring = RingBuffer(1 << int(np.ceil(np.log2(4 * (self.depth + self.period)))))
        self.generator = Generator(self.engine.pull, self.ring, self.period, self.depth, self.rate, realtime)
        self.record_path = Path(record) if record else None
        if self.record_path is not None:
            writable_target(self.record_path)  # refused now, not when playing stops
        if self.record_path is not None:
            self.generator.recording = []
        self.playing = False

    @classmethod
    def from_run(cls, run_directory: str | Path | None = None, **options) -> LiveSynth:
        """Return a LiveSynth for a run folder or model file (default: the newest run under output/, else the shipped
        default model); options as for __init__."""
        model, config = load_model(run_directory or newest_run_or_shipped_model(), "cpu")
        return cls(model, config["data"], **options)

    def start(self) -> LiveSynth:
        """Fill the buffer, then start the audio and the generator thread."""
        self.generator.prefill()
        self.output.start(self.ring.play)
        self.generator.start()
        # A full garbage collection walks every object in the process (torch's ~170,000 here: 80 to 100 ms, measured)
        # holding the GIL, and the generator and a Python audio callback wait for it: take what exists now out of
        # the collector's reach while playing (stop gives them back).
        gc.freeze()
        self.playing = True
        return self

    def stop(self) -> None:
        """Stop the audio and the generator, and write the recording (atomically) if one was asked for."""
        if not self.playing:
            return
        self.playing = False
        self.output.stop()
        self.generator.stop()
        gc.unfreeze()
        if self.record_path is not None:
            save_wav(self.record_path, played_audio(self.generator.recording, self.ring), self.rate)

    def __enter__(self) -> LiveSynth:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    def _at(self) -> int:
        # The generator never runs more than depth frames past the frame being played, so this sample is not
        # rendered yet: every control waits the same depth + period, whatever the block boundaries.
        return int(self.ring.frame_now(self.rate)) + self.depth + self.period

    def set(self, **values: float) -> None:
        """Set parameters in their own units, e.g. set(p=67.5)."""
        self.engine.set(at=self._at(), **values)

    def ramp(self, ms: float, **values: float) -> None:
        """Ramp parameters to values over ms milliseconds, e.g. ramp(p=76, ms=500)."""
        self.engine.ramp(ms, at=self._at(), **values)

    def note_on(self, note: float, velocity: float = 100) -> None:
        """Start a note (a MIDI note number, fractions allowed) with velocity 0..127."""
        self.engine.note_on(note, velocity, at=self._at())

    def note_off(self, note: float) -> None:
        """Release a note."""
        self.engine.note_off(note, at=self._at())

    def bend(self, semitones: float) -> None:
        """Bend every note by semitones."""
        self.engine.bend(semitones, at=self._at())

    def status(self) -> str:
        """Return a one-line status: voices sounding, buffer fill, underflows, xruns, the generator's load."""
        return (f"voices {self.engine.sounding()}/{self.engine.config.voices} | buffer "
                f"{100 * self.ring.fill() / self.depth:3.0f}% | underflows {self.ring.underflows} | xruns "
                f"{self.output.xruns} | voice resets {self.engine.voice_resets} | generator "
                f"{100 * self.generator.share_of_real_time():3.0f}% of real time")
