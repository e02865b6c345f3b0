"""The live-play widget's kernel side: the browser pulls audio, knobs and MIDI notes change what the next pull plays,
and nothing plays once stopped. The browser side is tested in JupyterLab by test_live_browser.py."""
import math

import numpy as np
import pytest

from live.widget.live_play import LivePlay
from tests.harness.run_folders import TINY_SPECS
from train import train
from utils.run_folder import load_model


@pytest.fixture(scope="module", params=[{}, {"pitch_parameter": "p", "reference_harmonics": 2}],
                ids=["original", "periodic reference"])
def tiny_model(request, tiny_data_dir, tmp_path_factory):
    run = train({"datadir": str(tiny_data_dir), "props": TINY_SPECS, "num_epochs": 1, "batches_per_epoch": 1,
                 "batch_size": 4, "seqLen": 32, "savemodeldir": str(tmp_path_factory.mktemp("output")),
                 **request.param})
    return load_model(run)


class Browser:
    """Stands in for the page: sends the widget messages and keeps what the kernel sends back."""

    def __init__(self, widget: LivePlay, monkeypatch) -> None:
        self.widget, self.replies = widget, []
        monkeypatch.setattr(widget, "send", lambda content, buffers=None: self.replies.append((content, buffers)))

    def send(self, **content) -> list:
        self.replies.clear()
        self.widget._on_message(self.widget, content, [])
        return list(self.replies)


@pytest.fixture
def browser(tiny_model, monkeypatch):
    model, config = tiny_model
    return Browser(LivePlay(model, config, seed=0), monkeypatch)


def test_a_pull_is_answered_with_exactly_the_frames_asked_as_float32_bytes(browser):
    browser.send(type="start")
    ((reply, buffers),) = browser.send(type="pull", frames=321, id=7)
    assert reply["type"] == "audio" and reply["id"] == 7 and reply["real_time"] > 0
    audio = np.frombuffer(buffers[0], dtype=np.float32)
    assert audio.shape == (321,) and np.all(np.abs(audio) <= 1)


def test_a_knob_move_reaches_the_next_pull_and_is_named_in_its_reply(browser):
    browser.send(type="start")
    browser.send(type="set", values={"p": 75.5}, seq=4)
    ((reply, _),) = browser.send(type="pull", frames=10, id=1)
    assert reply["control"] == 4
    assert browser.widget.engine.defaults[list(TINY_SPECS).index("p")] == 75.5


def test_knobs_moved_while_stopped_play_at_the_next_start(browser):
    browser.send(type="set", values={"a": 0.25}, seq=1)
    browser.send(type="start")
    assert browser.widget.engine.defaults[list(TINY_SPECS).index("a")] == 0.25


def test_stop_drops_the_engine_and_later_pulls_play_nothing(browser):
    browser.send(type="start")
    browser.send(type="stop")
    assert browser.widget.engine is None
    assert browser.send(type="pull", frames=100, id=2) == []


def test_a_midi_note_sounds_until_its_key_is_released(browser):
    browser.send(type="start")
    browser.send(type="note_on", note=70, velocity=127, seq=1)
    engine = browser.widget.engine
    browser.send(type="note_off", note=65, seq=2)  # not the held note: it goes on
    browser.send(type="pull", frames=4000, id=1)
    assert engine.sounding() == 1
    browser.send(type="note_off", note=70, seq=3)
    ((reply, buffers),) = browser.send(type="pull", frames=4000, id=2)  # longer than the release
    assert engine.sounding() == 0 and reply["control"] == 3
    assert np.all(np.frombuffer(buffers[0], dtype=np.float32)[-100:] == 0)


@pytest.mark.parametrize("content, words", [
    ({"type": "set", "values": {"pitch": 70}, "seq": 1}, ["pitch", "instID", "'a'", "'p'"]),
    ({"type": "pull", "frames": 10 ** 7, "id": 1}, ["frames", "32000"]),
    ({"type": "volume"}, ["unknown message type 'volume'"]),
])
def test_bad_messages_are_answered_with_an_error_that_names_the_problem(browser, content, words):
    browser.send(type="start")
    ((reply, _),) = browser.send(**content)
    assert reply["type"] == "error" and all(word in reply["message"] for word in words)


@pytest.mark.parametrize("content, words", [
    ({"type": "note_on", "note": math.inf, "velocity": 100, "seq": 1}, ["note", "inf is not finite"]),
    ({"type": "note_on", "note": 1e300, "velocity": 100, "seq": 1}, ["note", "beyond float32's range"]),
    ({"type": "note_on", "note": 64, "velocity": -math.inf, "seq": 1}, ["velocity", "-inf is not finite"]),
    ({"type": "note_off", "note": math.nan, "seq": 1}, ["note", "nan is not finite"]),
    ({"type": "set", "values": {"p": math.nan}, "seq": 1}, ["p", "nan is not finite"]),
    ({"type": "set", "values": {"p": 1e39}, "seq": 1}, ["p", "beyond float32's range"]),
    ({"type": "set", "values": {"p": 1e30}, "seq": 1}, ["p", "range widths"]),
    ({"type": "set", "values": [70], "seq": 1}, ["values must map parameter names to numbers"]),
    ({"type": "set", "values": {"p": 70}, "seq": math.inf}, ["seq", "inf is not finite"]),
    ({"type": "pull", "frames": math.inf, "id": 1}, ["frames", "inf is not finite"]),
    ({"type": "pull", "frames": 10.5, "id": 1}, ["frames must be a whole number"]),
])
def test_a_message_with_a_value_no_voice_can_play_is_refused_and_changes_nothing(browser, content, words):
    knobs = dict(browser.widget.values)
    ((reply, _),) = browser.send(**content)  # stopped: refused before anything is stored
    assert reply["type"] == "error" and all(word in reply["message"] for word in words)
    assert browser.widget.values == knobs and browser.widget.control == 0
    browser.send(type="start")
    ((reply, _),) = browser.send(**content)  # playing: refused before anything is queued
    assert reply["type"] == "error"
    browser.send(type="note_on", note=70, velocity=100, seq=2)
    ((reply, buffers),) = browser.send(type="pull", frames=2000, id=3)
    assert reply["type"] == "audio" and reply["control"] == 2
    assert len(np.unique(np.frombuffer(buffers[0], dtype=np.float32)[1000:])) > 1


def test_midi_on_a_run_without_a_pitch_parameter_names_the_missing_one(tiny_model, monkeypatch):
    model, config = tiny_model
    browser = Browser(LivePlay(model, config, pitch="note"), monkeypatch)
    browser.send(type="start")
    ((reply, _),) = browser.send(type="note_on", note=64, velocity=90, seq=1)
    assert reply["type"] == "error" and "'note'" in reply["message"] and "instID" in reply["message"]


def test_the_widget_offers_knobs_in_the_parameters_units(tiny_model):
    model, config = tiny_model
    widget = LivePlay(model, config, values={"p": 70.0})
    assert widget.parameters == [{"name": "instID", "low": 1.0, "high": 2.0, "value": 1.5},
                                 {"name": "a", "low": 0.0, "high": 1.0, "value": 0.5},
                                 {"name": "p", "low": 64.0, "high": 76.0, "value": 70.0}]
    assert widget.sample_rate == 16000
    with pytest.raises(ValueError, match=r"values: unknown parameter\(s\) \['q'\]"):
        LivePlay(model, config, values={"q": 1.0})
