import math

import numpy as np
import pytest
import torch

from audioDataLoader.audio_dataset import AudioDatasetConfig
from live.engine import EngineConfig, LiveEngine, _Ramps
from live.voice_allocator import Start, VoiceAllocator
from model.gru_audio_model import RNN, GRUAudioConfig

MODEL_RATE = 16000


@pytest.fixture(scope="module")
def model() -> RNN:
    torch.manual_seed(0)
    return RNN(GRUAudioConfig()).eval()


def engine(model, **options) -> LiveEngine:
    settings = dict(output_rate=MODEL_RATE, seed=7, smooth_ms=0.0)
    settings.update(options)
    return LiveEngine(model, AudioDatasetConfig(), EngineConfig(**settings))


def test_a_timestamped_event_lands_on_its_sample_inside_a_block(model):
    scheduled = engine(model, drone=True)
    scheduled.set(p=76, at=1000)
    whole = scheduled.pull(2000)  # one block: the event falls in its middle

    by_hand = engine(model, drone=True)
    before = by_hand.pull(1000)
    by_hand.set(p=76)  # as soon as possible: the next sample is 1000
    after = by_hand.pull(1000)

    unchanged = engine(model, drone=True).pull(2000)
    np.testing.assert_array_equal(whole, np.concatenate([before, after]))
    np.testing.assert_array_equal(whole[:1000], unchanged[:1000])
    assert not np.array_equal(whole[1000:], unchanged[1000:])


def test_an_event_whose_time_has_passed_applies_at_once_and_is_counted(model):
    late = engine(model, drone=True)
    late.pull(500)
    late.set(p=70, at=100)
    now = engine(model, drone=True)
    now.pull(500)
    now.set(p=70)
    np.testing.assert_array_equal(late.pull(300), now.pull(300))
    assert late.late_events == 1 and now.late_events == 0


def test_pull_returns_float32_frames_at_the_output_rate(model):
    synth = engine(model, output_rate=48000, drone=True)
    blocks = [synth.pull(frames) for frames in (128, 37, 2048, 1)]
    assert [len(b) for b in blocks] == [128, 37, 2048, 1]
    assert all(b.dtype == np.float32 for b in blocks)
    audio = np.concatenate(blocks)
    assert np.all(np.abs(audio) <= 1.0) and np.abs(audio[1000:]).max() > 0
    assert synth.frames == 128 + 37 + 2048 + 1


def test_without_notes_or_drone_the_engine_is_silent(model):
    np.testing.assert_array_equal(engine(model).pull(800), np.zeros(800, dtype=np.float32))


def test_note_off_fades_the_voice_out_and_frees_it(model):
    synth = engine(model, voices=2, release_ms=10.0)
    synth.note_on(64, 100)
    assert np.abs(synth.pull(1600)).max() > 0 and synth.sounding() == 1
    synth.note_off(64)
    fading = synth.pull(160)  # 10 ms
    assert synth.sounding() == 0
    gain_before = np.abs(fading[:40]).max()
    assert gain_before > np.abs(fading[-20:]).max()
    np.testing.assert_array_equal(synth.pull(400), np.zeros(400, dtype=np.float32))


def test_each_note_gets_its_own_voice_and_notes_mix(model):
    one = engine(model, voices=4)
    one.note_on(64)
    two = engine(model, voices=4)
    two.note_on(64)
    two.note_on(71)
    assert not np.array_equal(one.pull(800), two.pull(800))
    assert two.sounding() == 2 and one.sounding() == 1


def test_notes_beyond_the_voices_steal_the_oldest():
    voices = VoiceAllocator(2)
    assert voices.note_on(60) == (0, Start.FRESH)
    assert voices.note_on(62) == (1, Start.FRESH)
    assert voices.note_on(64) == (0, Start.STOLEN)  # 60 was the oldest
    assert voices.held(0) == 64 and voices.held(1) == 62
    assert voices.note_off(60) is None  # stolen notes are gone


def test_a_released_voice_is_stolen_before_a_held_one():
    voices = VoiceAllocator(2)
    voices.note_on(60)
    voices.note_on(62)
    assert voices.note_off(62) == 1
    assert voices.note_on(65) == (1, Start.STOLEN)
    voices.note_off(60)
    voices.free(0)
    assert voices.sounding() == [1]
    assert voices.note_on(67) == (0, Start.FRESH)


def test_one_voice_plays_legato():
    voices = VoiceAllocator(1)
    assert voices.note_on(60) == (0, Start.FRESH)
    assert voices.note_on(67) == (0, Start.LEGATO)
    assert voices.note_off(60) is None and voices.note_off(67) == 0


def test_legato_glides_the_pitch_instead_of_restarting(model):
    glide = engine(model, voices=1, glide_ms=50.0)
    glide.note_on(64)
    glide.pull(400)
    glide.note_on(76)
    glide.pull(400)  # 25 ms of a 50 ms glide
    pitch = glide._params.at(np.array([0]), np.array([float(glide.generated - 1)]))[0, 0, 2]
    assert 69 < pitch < 71


@pytest.mark.parametrize("call, message", [
    (lambda s: s.set(p=math.nan), "p: nan is not finite"),
    (lambda s: s.set(p=math.inf), "p: inf is not finite"),
    (lambda s: s.ramp(ms=math.nan, p=70), "ms: nan is not finite"),
    (lambda s: s.ramp(ms=-5, p=70), "ms: a ramp lasts 0 ms or more"),
    (lambda s: s.note_on(-math.inf), "note: -inf is not finite"),
    (lambda s: s.note_on(64, velocity=math.nan), "velocity: nan is not finite"),
    (lambda s: s.note_on(64, velocity=200), "velocity must be within 0..127"),
    (lambda s: s.bend(math.nan), "bend: nan is not finite"),
    (lambda s: s.set(pitch=3), r"unknown parameter 'pitch': this run's parameters are \['instID', 'a', 'p'\]"),
    (lambda s: s.set(p="high"), "p: 'high' is not a number"),
])
def test_bad_control_values_are_refused_with_their_name(model, call, message):
    with pytest.raises(ValueError, match=message):
        call(engine(model))


def test_a_run_without_a_pitch_parameter_refuses_notes_but_takes_parameters(model):
    torch.manual_seed(0)
    small = RNN(GRUAudioConfig(cond_size=1)).eval()
    data = AudioDatasetConfig(parameter_specs={"brightness": (0.0, 1.0)})
    synth = LiveEngine(small, data, EngineConfig(output_rate=MODEL_RATE, drone=True))
    with pytest.raises(ValueError, match=r"no 'p' \(its parameters are \['brightness'\]\): choose one with --pitch"):
        synth.note_on(64)
    synth.set(brightness=0.8)
    assert np.abs(synth.pull(400)).max() > 0


def test_bad_engine_settings_are_refused(model):
    with pytest.raises(ValueError, match="voices must be at least 1"):
        engine(model, voices=0)
    with pytest.raises(ValueError, match="resample quality must be one of"):
        engine(model, resample_quality="best")
    with pytest.raises(ValueError, match="unknown parameter 'q'"):
        engine(model, initial={"q": 1.0})


def test_one_held_voice_plays_exactly_what_run_inference_renders(model):
    from model.generation import run_inference

    held = engine(model, drone=True, initial={"instID": 2, "a": 0.7, "p": 70}).pull(3000)
    cond = np.tile(np.array([1.0, 0.7, 0.5], dtype=np.float32), (3000, 1))  # the same values mapped to [0, 1]
    np.testing.assert_array_equal(held, run_inference(model, cond, seed=7))


def test_notes_start_sound_and_free_in_the_order_of_their_samples(model):
    """Events timed on the engine's own sample clock take effect in order, whatever the block boundaries."""
    synth = engine(model, voices=2, release_ms=10.0)  # a 160-sample release
    synth.note_on(64, 100, at=300)
    synth.note_on(71, 100, at=500)
    synth.note_off(64, at=900)
    sounding = []
    for block in (250, 100, 200, 300, 100, 100, 20):  # boundaries fall before, between and after the events
        synth.pull(block)
        sounding.append((synth.frames, synth.sounding()))
    # 64 is released at 900 and freed after its release, at 1060
    assert sounding == [(250, 0), (350, 1), (550, 2), (850, 2), (950, 2), (1050, 2), (1070, 1)]
    assert synth.late_events == 0


@pytest.mark.parametrize("backend", ["numba", "c", "torch"])
def test_the_engine_plays_the_same_notes_on_every_backend(backend, built_runtime):
    from tests.harness.backends import lively_model

    settings = dict(voices=3, top_n=1, release_ms=5.0)  # the greedy draw: equal across backends, margins allowing
    played = {}
    for name in ("numba", backend):
        synth = engine(lively_model(3), backend=name, **settings)
        assert synth.backend == name
        synth.note_on(64, 90, at=0)
        synth.note_on(70, 40, at=200)
        synth.note_off(64, at=700)
        played[name] = np.concatenate([synth.pull(block) for block in (128, 512, 1000)])
    assert np.abs(played["numba"]).max() > 0.01
    np.testing.assert_array_equal(played[backend], played["numba"])


def test_an_unknown_engine_backend_is_refused(model):
    with pytest.raises(ValueError, match=r"backend must be one of \('auto', 'torch', 'numba', 'c'\), got 'gpu'"):
        engine(model, backend="gpu")


def test_a_flood_of_changes_plays_only_each_parameters_last_change_in_a_block(model):
    flooded = engine(model, drone=True)
    calls = []
    sample = flooded._voices.sample
    flooded._voices.sample = lambda *args, **kw: calls.append(1) or sample(*args, **kw)
    for frame in range(0, 1000, 2):  # 500 changes of p and 250 of a, each on its own sample, in one block
        flooded.set(p=64 + frame % 12, at=frame)
        if frame % 4 == 0:
            flooded.set(a=frame / 1000, at=frame + 1)
    flooded.note_on(70, at=300)  # notes keep their sample
    whole = flooded.pull(2000)

    last_only = engine(model, drone=True)
    last_only.set(p=64 + 998 % 12, at=998)
    last_only.set(a=0.996, at=997)
    last_only.note_on(70, at=300)
    np.testing.assert_array_equal(whole, last_only.pull(2000))
    assert len(calls) <= 4  # split at the note, a's change and p's change: not at 750 events
    assert flooded.coalesced_events == 748


def test_a_ramp_plays_the_same_values_whether_a_block_starts_inside_it_or_after_it():
    # 0.3 -> 0.9: 0.3 + (0.9 - 0.3) is not 0.9 in float64, so a block after the end must play what the ramp did.
    ramps = _Ramps(2, 1, np.array([0.3]))
    ramps.start(1, 0, 100, 0.9, 50)
    spanning = ramps.at(np.array([0, 1]), np.arange(120.0, 180.0))
    after = ramps.at(np.array([0, 1]), np.arange(160.0, 180.0))
    np.testing.assert_array_equal(after, spanning[:, 40:])
    assert spanning[1, 0, 0] < spanning[1, 29, 0] == after[1, 0, 0] and spanning[0, 0, 0] == 0.3  # ends at 149
    ramps.start(0, 0, 200, 0.5, 10)  # a new ramp: blocks inside it move again
    assert 0.3 < ramps.at(np.array([0]), np.array([204.0]))[0, 0, 0] < 0.5


def test_a_new_ramp_starts_from_exactly_the_value_the_old_one_was_playing():
    # A note-on mid-glide reads one value (`value`, scalar arithmetic): it must be the very float `at` played there.
    ramps = _Ramps(3, 2, np.array([0.3, 0.1]))
    ramps.start(2, 1, 100, 0.9, 37)
    played = ramps.at(np.array([0, 1, 2]), np.arange(90.0, 150.0))
    for sample in range(90, 150):
        for voice in range(3):
            for channel in range(2):
                assert ramps.value(voice, channel, float(sample)) == played[voice, sample - 90, channel]
    ramps.start(2, 1, 120, 0.2, 10)  # from inside the first ramp: it leaves sample 119's value, unbroken
    assert ramps.at(np.array([2]), np.array([119.0]))[0, 0, 1] == played[2, 119 - 90, 1]
