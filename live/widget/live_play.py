"""A JupyterLab widget that plays a run's model live: knobs in the parameters' units, the sound follows as it plays.

The kernel only answers the browser. The browser pulls: when its jitter buffer runs low it asks for the next block,
and the kernel's live engine (live.engine.LiveEngine, one drone voice at the model's rate; the browser resamples)
renders exactly that much with the current controls and sends it back as a binary buffer. A slow
link therefore means a deeper buffer (more latency), never a pile-up, and nothing runs in the kernel between pulls:
stopping, re-running the cell or closing the tab leaves it idle. The protocol, browser to kernel:

    {"type": "start"}                       a fresh engine, with the knobs' current values
    {"type": "set", "values": {name: v}, "seq": n}    knob moves, in the parameters' units
    {"type": "note_on", "note": k, "velocity": v, "seq": n}, {"type": "note_off", "note": k, "seq": n}
                                            MIDI keys: the pitch and amplitude parameters follow the note (a
                                            released note fades out; the next note or Play sounds again)
    {"type": "pull", "frames": n, "id": k}  answered by {"type": "audio", "id": k, "control": seq, "real_time": x}
                                            and the float32 samples as a binary buffer
    {"type": "stop"}                        drops the engine

`control` is the last control message applied before the block's first sample: the browser times the sound of a
knob move from it. Errors are answered with {"type": "error", "message": ...}.
"""
from __future__ import annotations

import time
from dataclasses import replace
from pathlib import Path

import anywidget
import traitlets

from live.engine import EngineConfig, LiveEngine
from live.values import LiveValues
from model.gru_audio_model import RNN
from utils.checks import finite_number

HERE = Path(__file__).resolve().parent
# The most one pull may ask for: 2 s of audio at the model's rate, far above any jitter buffer's need.
MAX_PULL_SECONDS = 2.0


class LivePlay(anywidget.AnyWidget):
    """Play a run's model live in the notebook: `LivePlay(model, config)`, then press Play."""

    _esm = HERE / "live_play.js"
    _css = HERE / "live_play.css"
    _worklet = traitlets.Unicode((HERE / "jitter_buffer_worklet.js").read_text()).tag(sync=True)
    parameters = traitlets.List().tag(sync=True)  # [{"name", "low", "high", "value"}] in the parameters' units
    sample_rate = traitlets.Int().tag(sync=True)

    def __init__(self, model: RNN, config: dict, top_n: int | None = 3, temperature: float = 1.0,
                 seed: int | None = None, pitch: str = "p", amplitude: str = "a",
                 values: dict[str, float] | None = None) -> None:
        data = config["data"]
        self._model, self._data = model, data
        self._checks = LiveValues.of(data, pitch, amplitude)
        self._engine_config = EngineConfig(voices=1, output_rate=data.sample_rate, pitch=pitch, velocity=amplitude,
                                           drone=True, top_n=top_n, temperature=temperature, seed=seed)
        self.values = {name: (low + high) / 2 for name, (low, high) in data.parameter_specs.items()}
        unknown = sorted(set(values or {}) - set(self.values))
        if unknown:
            raise ValueError(f"values: unknown parameter(s) {unknown}; this run has {list(self.values)}")
        self.values.update(self._checks.parameters(values or {}))
        super().__init__(sample_rate=data.sample_rate, parameters=[
            {"name": name, "low": min(span), "high": max(span), "value": self.values[name]}
            for name, span in data.parameter_specs.items()])
        self.engine: LiveEngine | None = None
        self.control = 0
        self.on_msg(self._on_message)

    def _start(self) -> None:
        self.engine = LiveEngine(self._model, self._data, replace(self._engine_config, initial=dict(self.values)))

    def _on_message(self, _widget: LivePlay, content: dict, _buffers: list) -> None:
        try:
            self._handle(content)
        except (ValueError, KeyError, TypeError) as error:
            self.send({"type": "error", "message": f"{content.get('type', 'message')}: {error}"})

    def _handle(self, content: dict) -> None:
        kind = content["type"]
        if kind == "start":
            self._start()
        elif kind == "stop":
            self.engine = None
        elif kind == "pull":
            self._send_audio(_whole("frames", content["frames"]), content.get("id"))
        elif kind in ("set", "note_on", "note_off"):
            self._control(kind, content)
        else:
            raise ValueError(f"unknown message type {kind!r}")

    def _control(self, kind: str, content: dict) -> None:
        # Every value is checked before any is stored or played: a refused message changes nothing.
        seq = _whole("seq", content["seq"])
        if kind == "set":
            if not isinstance(content["values"], dict):
                raise ValueError(f"values must map parameter names to numbers, got {content['values']!r}")
            values = self._checks.parameters(content["values"])
            self.values.update(values)
            if self.engine:
                self.engine.set(**values)
        elif kind == "note_on":
            note = self._checks.note(content["note"])
            velocity = self._checks.note_velocity(content.get("velocity", 100))
            if self.engine:
                self.engine.note_on(note, velocity)
        else:
            note = self._checks.note(content["note"])
            if self.engine:
                self.engine.note_off(note)
        self.control = seq

    def _send_audio(self, frames: int, content_id: int | None) -> None:
        if self.engine is None:
            return  # a pull that crossed a stop: nothing plays
        most = int(MAX_PULL_SECONDS * self.sample_rate)
        if not 0 < frames <= most:
            raise ValueError(f"frames must be between 1 and {most}, got {frames}")
        start = time.perf_counter()
        audio = self.engine.pull(frames)
        real_time = frames / self.sample_rate / max(time.perf_counter() - start, 1e-9)
        self.send({"type": "audio", "id": content_id, "control": self.control, "real_time": real_time},
                  buffers=[audio.tobytes()])


def _whole(name: str, value: object) -> int:
    """Return a message's count or sequence number as an int, or raise ValueError naming it."""
    number = finite_number(name, value)
    if number != int(number):
        raise ValueError(f"{name} must be a whole number, got {value!r}")
    return int(number)
