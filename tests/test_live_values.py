"""Values from outside live play: refused by name when a voice could not play them, and a voice never stuck.

A voice whose state turns NaN plays one constant (a DC offset near full scale) until it restarts, so every value
from outside is checked before it is queued, and a voice found non-finite anyway starts over and is counted.
"""
import math

import numpy as np
import pytest
import torch
from pythonosc.osc_message_builder import OscMessageBuilder

from audioDataLoader.audio_dataset import AudioDatasetConfig
from live.control import MidiMapping, OscListener
from live.engine import EngineConfig, LiveEngine
from live.synth import LiveSynth
from model.gru_audio_model import RNN, GRUAudioConfig
from tests.harness.backends import lively_model

MODEL_RATE = 16000
HZ_SPECS = {"instID": (1.0, 2.0), "a": (0.0, 1.0), "p": (200.0, 800.0)}


def engine(data: AudioDatasetConfig | None = None, model: RNN | None = None, **options) -> LiveEngine:
    data = data or AudioDatasetConfig()
    model = model or lively_model(1, GRUAudioConfig(cond_size=data.conditioning_size))
    settings = dict(output_rate=MODEL_RATE, seed=7, smooth_ms=0.0)
    settings.update(options)
    return LiveEngine(model, data, EngineConfig(**settings))


def referenced() -> AudioDatasetConfig:
    return AudioDatasetConfig(pitch_parameter="p", reference_harmonics=2)


def state_is_finite(synth: LiveEngine) -> bool:
    return bool(synth._voices.finite(np.arange(synth.config.voices)).all())


def plays(audio: np.ndarray) -> bool:
    """Whether audio moves: a voice with a NaN state plays one value, a constant."""
    return len(np.unique(audio)) > 1


@pytest.mark.parametrize("call, message", [
    (lambda s: s.set(p=1e39), r"p: 1e\+39 is beyond float32's range"),
    (lambda s: s.set(p=1.7e308), r"p: 1.7e\+308 is beyond float32's range"),
    (lambda s: s.set(a=1e30), r"a: a = 1e\+30 lies more than 100 range widths past a's range 0 to 1; give a value "
                              r"within -100 to 101"),
    (lambda s: s.set(p=10 ** 400), "p: 1000000.* is not finite"),
    (lambda s: s.ramp(ms=1e39, p=70), r"ms: 1e\+39 is beyond float32's range"),
    (lambda s: s.note_on(1e300), r"note: 1e\+300 is beyond float32's range"),
    (lambda s: s.note_on(20000), r"note 20000: p = 20000 lies more than 100 range widths past p's range 64 to 76"),
    (lambda s: s.note_off(1e39), r"note: 1e\+39 is beyond float32's range"),
    (lambda s: s.bend(1e300), r"bend: 1e\+300 is beyond float32's range"),
    (lambda s: s.bend(-200), r"bend: -200 semitones is past ±128"),
])
def test_values_a_voice_cannot_play_are_refused_by_name(call, message):
    with pytest.raises(ValueError, match=message):
        call(engine())


def test_a_starting_value_past_reach_is_refused_by_name():
    with pytest.raises(ValueError, match="p: p = 5000 lies more than 100 range widths"):
        engine(initial={"p": 5000})


def test_a_pitch_far_past_its_range_never_leaves_a_referenced_voice_playing_a_constant():
    # 20000 as a MIDI number is a frequency beyond float64: the reference's phase went infinite, the state NaN
    synth = engine(referenced(), drone=True)
    with pytest.raises(ValueError, match="p: p = 20000 lies more than 100 range widths"):
        synth.set(p=20000)
    synth.set(p=1276)  # the edge of reach: a frequency of 1e33 Hz, still finite
    synth.pull(400)
    synth.set(p=70)
    synth.pull(800)
    assert state_is_finite(synth) and plays(synth.pull(4000)) and synth.voice_resets == 0


def test_a_note_whose_frequency_overflows_is_refused_before_the_audio_thread_meets_it():
    hz = AudioDatasetConfig(parameter_specs=HZ_SPECS, pitch_parameter="p", pitch_units="hz")
    synth = engine(hz)
    with pytest.raises(ValueError, match=r"note 100000: p = inf lies more than 100 range widths past p's range "
                                         r"200 to 800"):
        synth.note_on(100000)  # 2 ** (99931 / 12) overflowed in the generator thread and stopped it
    synth.note_on(69)
    assert plays(synth.pull(2000))


def test_a_note_bent_past_reach_plays_at_the_edge_of_reach():
    synth = engine(referenced())
    synth.note_on(1270)
    synth.bend(128)
    synth.pull(400)
    pitch = synth._params.at(np.array([0]), np.array([float(synth.generated - 1)]))[0, 0, 2]
    assert pitch == 1276 and state_is_finite(synth)


def osc(listener: OscListener, address: str, value: float) -> None:
    """Deliver one OSC message with a double, as the listener's server receives it from the network."""
    builder = OscMessageBuilder(address)
    builder.add_arg(value, "d")
    listener.server.dispatcher.call_handlers_for_packet(builder.build().dgram, ("192.0.2.1", 9))


def test_osc_values_that_would_leave_a_constant_are_refused_in_one_line_naming_the_message():
    synth, reports = engine(referenced(), drone=True), []
    listener = OscListener(synth, 0, report=reports.append)
    try:
        for value in (1.7e308, -1.7e308, 20000.0):  # beyond float32; a frequency beyond float64
            osc(listener, "/param/p", value)
            synth.pull(200)
        osc(listener, "/param/p", 70.0)
    finally:
        listener.close()
    assert [line.split(":")[0] for line in reports] == ["OSC /param/p [1.7e+308]", "OSC /param/p [-1.7e+308]",
                                                        "OSC /param/p [20000.0]"]
    synth.pull(800)
    assert state_is_finite(synth) and plays(synth.pull(4000))


def test_a_midi_bend_range_past_the_widest_bend_is_refused_at_the_start():
    with pytest.raises(ValueError, match="--bend_range: 1000 semitones is past ±128"):
        MidiMapping(engine(), dict(AudioDatasetConfig().parameter_specs), bend_range=1000)


def poison(synth: LiveEngine, voice: int) -> None:
    """Make one voice's hidden state NaN, as no value from outside can."""
    voices = getattr(synth._voices, "inner", synth._voices)
    if hasattr(voices, "voices"):  # the C runtime's
        voices.voices[voice].hidden[:] = math.nan
    elif isinstance(voices.hidden, torch.Tensor):  # (L, B, H)
        voices.hidden[:, voice] = math.nan
    else:  # numba's (B, L, H)
        voices.hidden[voice] = math.nan


@pytest.mark.parametrize("backend, data", [("numba", None), ("torch", None), ("c", None),
                                           ("numba", referenced())], ids=["numba", "torch", "c", "reference"])
def test_a_voice_whose_state_turns_non_finite_starts_over_and_is_counted(backend, data, built_runtime):
    synth = engine(data, backend=backend, voices=2, drone=True)
    synth.note_on(70)
    synth.pull(50)
    poison(synth, 0)
    synth.pull(50)
    assert synth.voice_resets == 1 and state_is_finite(synth)
    assert plays(synth.pull(200))


def test_live_play_prints_its_voice_resets():
    data = AudioDatasetConfig()
    synth = LiveSynth(lively_model(1), data, EngineConfig(drone=True, seed=0), audio="none")
    synth.engine.pull(200)
    poison(synth.engine, 0)
    synth.engine.pull(200)
    assert "voice resets 1" in synth.status()
