"""Every live entry point driven with extreme numbers: each is refused in one line naming its source, or played, and
after any sequence the voices stay finite and a valid note sounds.

The entry points: OSC datagrams (as the listener's server receives them), MIDI messages, the widget's comm
messages, and Python calls on LiveSynth and LiveEngine.
"""
import math

import mido
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pythonosc.osc_message_builder import OscMessageBuilder

from audioDataLoader.audio_dataset import AudioDatasetConfig
from live.control import MidiMapping, OscListener
from live.engine import EngineConfig
from live.rate_limited_report import RateLimitedReport
from live.synth import LiveSynth
from live.widget.live_play import LivePlay
from model.gru_audio_model import GRUAudioConfig
from tests.harness.backends import lively_model

SPECS = {"instID": (1.0, 2.0), "a": (0.0, 1.0), "p": (64.0, 76.0)}
HZ_SPECS = {"instID": (1.0, 2.0), "a": (0.0, 1.0), "p": (200.0, 800.0)}
NAMES = list(SPECS)

EXTREMES = [math.nan, math.inf, -math.inf, 1.7e308, -1.7e308, 1e308, 1e300, 1e39, -1e39, 3.4e38, 3.5e38, 1e30,
            5e-324, -5e-324, 2.2e-308, 0.0, -0.0, 10 ** 400, -(10 ** 400), 2 ** 63, 2 ** 64 + 1, 20000, -20000, 1276,
            128.0, -129.0]
numbers = st.one_of(st.sampled_from(EXTREMES), st.floats(), st.integers(-(10 ** 40), 10 ** 40),
                    st.floats(-200, 200))
# a pull's frames: those refused, and few enough that a pull takes no time
frames = st.one_of(st.sampled_from([math.nan, math.inf, -1.0, 0, 10.5, 1e39, 10 ** 400, 32001]), st.integers(1, 400))

python_call = st.one_of(
    st.tuples(st.just("set"), st.sampled_from(NAMES), numbers),
    st.tuples(st.just("ramp"), numbers, st.sampled_from(NAMES), numbers),
    st.tuples(st.just("note_on"), numbers, numbers),
    st.tuples(st.just("note_off"), numbers),
    st.tuples(st.just("bend"), numbers),
)
osc_message = st.one_of(
    st.tuples(st.sampled_from(["/param/p", "/param/a", "/param/instID", "/note_off"]), st.lists(numbers, max_size=1)),
    st.tuples(st.just("/note_on"), st.lists(numbers, min_size=2, max_size=2)),
)
midi_message = st.one_of(
    st.builds(lambda n, v: mido.Message("note_on", note=n, velocity=v), st.integers(0, 127), st.integers(0, 127)),
    st.builds(lambda n: mido.Message("note_off", note=n), st.integers(0, 127)),
    st.builds(lambda p: mido.Message("pitchwheel", pitch=p), st.integers(-8192, 8191)),
    st.builds(lambda v: mido.Message("control_change", control=1, value=v), st.integers(0, 127)),
)
widget_message = st.one_of(
    st.builds(lambda name, v, seq: {"type": "set", "values": {name: v}, "seq": seq}, st.sampled_from(NAMES), numbers,
              numbers),
    st.builds(lambda n, v, seq: {"type": "note_on", "note": n, "velocity": v, "seq": seq}, numbers, numbers, numbers),
    st.builds(lambda n, seq: {"type": "note_off", "note": n, "seq": seq}, numbers, numbers),
    st.builds(lambda frames: {"type": "pull", "frames": frames, "id": 1}, frames),
)
action = st.one_of(st.tuples(st.just("python"), python_call), st.tuples(st.just("synth"), python_call),
                   st.tuples(st.just("osc"), osc_message), st.tuples(st.just("midi"), midi_message),
                   st.tuples(st.just("widget"), widget_message))


class Player:
    """A synth (no audio output), the OSC listener and MIDI mapping playing it, and a widget, on one tiny model."""

    def __init__(self, data: AudioDatasetConfig, listener: OscListener) -> None:
        model = lively_model(2, GRUAudioConfig(cond_size=data.conditioning_size, hidden_size=16, num_layers=2))
        engine = EngineConfig(voices=2, seed=1, smooth_ms=1.0, glide_ms=1.0, release_ms=2.0, drone=True)
        self.synth = LiveSynth(model, data, engine, audio="none", rate=16000)
        self.reports: list[str] = []
        # every line, for the test to read: the listener's own limit is tested in test_live_control.py
        listener.target, listener.report = self.synth, RateLimitedReport(self.reports.append, burst=10 ** 9)
        self.listener = listener
        self.midi = MidiMapping(self.synth, data.parameter_specs, {1: "p"}, bend_range=48, report=self.reports.append)
        self.widget = LivePlay(model, {"data": data}, seed=1)
        self.replies: list[dict] = []
        self.widget.send = lambda content, buffers=None: self.replies.append(content)
        self.widget._on_message(self.widget, {"type": "start"}, [])

    def do(self, source: str, what) -> None:
        """Apply one action; assert it was played or refused in one line naming its source."""
        if source in ("python", "synth"):
            target = self.synth.engine if source == "python" else self.synth
            kind, *args = what
            call = {"set": lambda name, v: target.set(**{name: v}),
                    "ramp": lambda ms, name, v: target.ramp(ms, **{name: v})}.get(kind, getattr(target, kind))
            try:
                call(*args)
            except ValueError as error:
                message = str(error)
                assert "\n" not in message and message.split(":")[0].split()[0] in (*NAMES, "note", "velocity",
                                                                                      "bend", "ms")
        elif source == "osc":
            address, args = what
            self.reports.clear()
            builder = OscMessageBuilder(address)
            for arg in args:  # doubles carry what float32 cannot; integers past 64 bits go as text
                builder.add_arg(*((float(arg), "d") if abs(arg) < 2 ** 63 or not isinstance(arg, int) else (str(arg),)))
            self.listener.server.dispatcher.call_handlers_for_packet(builder.build().dgram, ("127.0.0.1", 1))
            assert all(line.startswith(f"OSC {address} ") and "\n" not in line for line in self.reports), self.reports
        elif source == "midi":
            self.reports.clear()
            self.midi.handle(what)
            assert self.reports == []  # what MIDI can say is always playable
        else:
            self.replies.clear()
            self.widget._on_message(self.widget, what, [])
            errors = [reply for reply in self.replies if reply["type"] == "error"]
            assert all(reply["message"].startswith(f"{what['type']}: ") and "\n" not in reply["message"]
                       for reply in errors)

    def assert_finite_and_a_valid_note_plays(self) -> None:
        for engine in (self.synth.engine, self.widget.engine):
            assert np.isfinite(engine.pull(200)).all()
            assert engine._voices.finite(np.arange(engine.config.voices)).all() and engine.voice_resets == 0
            engine.bend(0)
            engine.set(instID=1, a=0.8, p=70)
            engine.note_on(70, 100)
            engine.pull(1500)
            assert len(np.unique(engine.pull(1000))) > 1  # a NaN state plays one value, a constant


@pytest.fixture(scope="module")
def listener():
    listening = OscListener(None, 0)
    yield listening
    listening.close()


@pytest.mark.parametrize("data", [
    AudioDatasetConfig(parameter_specs=SPECS, pitch_parameter="p", reference_harmonics=2),
    AudioDatasetConfig(parameter_specs=HZ_SPECS, pitch_parameter="p", pitch_units="hz", reference_harmonics=2),
], ids=["midi", "hz"])
def test_any_sequence_of_extreme_values_is_refused_by_name_or_played_and_voices_stay_finite(data, listener):
    @settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
    @given(st.lists(action, min_size=1, max_size=12))
    def run(actions):
        player = Player(data, listener)
        for source, what in actions:
            player.do(source, what)
            player.synth.engine.pull(50)
        player.assert_finite_and_a_valid_note_plays()

    run()
