"""MIDI through JACK: events written into live play's JACK MIDI port act as --midi's do, each at its own frame, and
a note loop from jack_midiseq (jackd2's example sequencer) sounds at its pitches and frees its voice after each
release."""
import shutil
import subprocess
import sys
import time

import jack
import mido
import numpy as np
import pytest
import torch

from audioDataLoader.audio_dataset import AudioDatasetConfig
from live.control import MidiMapping
from live.engine import EngineConfig
from live.jack_midi import JackMidiInput
from live.synth import LiveSynth
from model.gru_audio_model import RNN, GRUAudioConfig
from tests.harness.jack_server import connect_when_ready, dummy_jack_server, midiseq, play_through_jack
from tests.harness.run_folders import QUICK_RUN, ROOT
from utils.pitch import hz_to_midi, median_f0
from utils.run_folder import load_model

pytestmark = pytest.mark.system
RATE, PERIOD = 48000, 128
CONTROLS = ("set", "note_on", "note_off", "bend")


@pytest.fixture(scope="module")
def jack_server() -> str:
    with dummy_jack_server(RATE, PERIOD) as name:
        yield name


class Recorder:
    """Stands in for the controls (or the engine's): keeps each call, with its `at` apart."""

    def __init__(self) -> None:
        self.calls, self.frames = [], []

    def __getattr__(self, name: str):
        if name not in CONTROLS:
            raise AttributeError(name)

        def control(*args, at=None, **values):
            self.calls.append((name, args, values))
            self.frames.append(at)
        return control


class Sender:
    """A JACK client with a MIDI output port that writes (offset, bytes) events into one period when asked."""

    def __init__(self, server: str) -> None:
        self.client = jack.Client("sender", servername=server)
        self.port = self.client.midi_outports.register("out")
        self.pending: list[tuple[int, bytes]] = []
        self.client.set_process_callback(self._process)
        self.client.activate()

    def _process(self, _frames: int) -> None:
        self.port.clear_buffer()
        events, self.pending = self.pending, []
        for offset, data in events:
            self.port.write_midi_event(offset, data)

    def close(self) -> None:
        self.client.deactivate()
        self.client.close()


def test_jack_midi_events_make_the_calls_midi_makes_each_at_its_own_frame(jack_server):
    torch.manual_seed(0)
    synth = LiveSynth(RNN(GRUAudioConfig()).eval(), AudioDatasetConfig(), EngineConfig(voices=2, seed=0),
                      audio="jack", jack_server=jack_server, connect=False)
    midi = JackMidiInput(synth, cc={1: "a"}, bend_range=12.0)
    engine = Recorder()
    midi._timed.engine = engine  # the calls the port makes on the engine, kept instead of played
    messages = [(3, mido.Message("note_on", note=64, velocity=90)), (40, mido.Message("pitchwheel", pitch=4096)),
                (41, mido.Message("control_change", control=1, value=64)),
                (42, mido.Message("control_change", control=7, value=5)),  # unmapped: ignored, as by --midi
                (100, mido.Message("note_on", note=64, velocity=0))]
    with synth:
        sender = Sender(jack_server)
        try:
            sender.client.connect(sender.port, midi.port)
            sender.pending = [(offset, bytes(message.bytes())) for offset, message in messages]
            deadline = time.monotonic() + 10
            while len(engine.calls) < 4 and time.monotonic() < deadline:
                time.sleep(0.01)
        finally:
            sender.close()
    as_midi = Recorder()
    mapping = MidiMapping(as_midi, synth.engine.specs, {1: "a"}, bend_range=12.0)
    for _offset, message in messages:
        mapping.handle(message)
    assert engine.calls == as_midi.calls == [("note_on", (64, 90), {}), ("bend", (6.0,), {}),
                                             ("set", (), {"a": 64 / 127}), ("note_off", (64,), {})]
    first = engine.frames[0]
    assert np.diff(engine.frames).tolist() == [37, 1, 59]  # the events' own spacing within the period
    came_at, acts_at = midi.received[0]
    assert came_at % PERIOD == 3 and acts_at == first == came_at + synth.depth + synth.period


@pytest.mark.skipif(shutil.which("jack_midiseq") is None, reason="jack_midiseq (jackd2) is not installed")
def test_a_jack_midiseq_loop_sounds_at_its_pitches_and_frees_each_voice_after_its_release(jack_server, tmp_path):
    model, config = load_model(QUICK_RUN, "cpu")
    engine = EngineConfig(voices=2, seed=0, initial={"instID": 1, "a": 0.8, "p": 70})
    # Recording keeps the engine's own stream: notes there start and end at their events' frames, and an underflow
    # of a loaded machine cannot split them as it would the captured output.
    synth = LiveSynth(model, config["data"], engine, audio="jack", jack_server=jack_server, connect=False,
                      buffer_ms=100, record=tmp_path / "take.wav")
    midi = JackMidiInput(synth)
    sounding = []
    # A 1 s loop: E4 (64) from 0 for 0.3 s, B4 (71) from 0.5 s for 0.3 s; a key lifted for 0.2 s before each.
    with midiseq(jack_server, "midiseq", RATE, [(0, 64, int(0.3 * RATE)), (RATE // 2, 71, int(0.3 * RATE))]) as source:
        try:
            captured = play_through_jack(synth, jack_server, 3.0, lambda _capture: sounding.extend(
                _connect_and_count_voices(synth, source, midi.port, seconds=2.0)))
        finally:
            midi.close()
    assert np.abs(captured).max() > 0.01  # it went out through JACK
    audio = np.concatenate(synth.generator.recording)
    notes = _sounding_stretches(audio)
    # A whole note: 0.3 s held and the 80 ms release (not cut by the capture's ends, nor split by an underflow).
    whole = [(start, stop) for start, stop in notes[1:-1] if 0.3 * RATE <= stop - start <= 0.45 * RATE]
    assert len(whole) >= 3 and midi.errors == 0, (notes, synth.ring.underflows)
    pitches = [hz_to_midi(median_f0(audio[start + RATE // 20:stop], RATE, fmin=150, fmax=1000))
               for start, stop in whole]
    nearest = [min((64, 71), key=lambda note: abs(note - pitch)) for pitch in pitches]
    assert np.all(np.abs(np.subtract(pitches, nearest)) < 1.0) and set(nearest) == {64, 71}, pitches
    # One note at a time, each voice freed after its release: two voices, never both sounding, and none between.
    assert max(sounding) == 1 and sounding.count(0) > len(sounding) / 10, sounding


def test_the_command_line_offers_the_jack_midi_port_with_jack_audio(jack_server):
    result = subprocess.run([sys.executable, "-m", "live", "--run_directory", str(QUICK_RUN), "--audio", "jack",
                             "--jack_server", jack_server, "--no_connect", "--seconds", "0.5"],
                            capture_output=True, text=True, cwd=ROOT, timeout=300)
    assert result.returncode == 0, result.stderr
    assert "JACK MIDI input: rnncontrol:midi_in" in result.stdout


def _connect_and_count_voices(synth: LiveSynth, source: str, port, seconds: float) -> list[int]:
    """Connect the sequencer to the synth's MIDI port, then return how many voices sounded, every 5 ms."""
    connect_when_ready(synth.output.client, source, port)
    counts, deadline = [], time.monotonic() + seconds
    while time.monotonic() < deadline:
        counts.append(synth.engine.sounding())
        time.sleep(0.005)
    return counts


def _sounding_stretches(audio: np.ndarray) -> list[tuple[int, int]]:
    """Return (first, last + 1) sample of each stretch of sound separated from the next by 50 ms of zeros."""
    sounding = np.flatnonzero(audio != 0)
    if len(sounding) == 0:
        return []
    breaks = np.flatnonzero(np.diff(sounding) > RATE // 20)
    starts = np.concatenate([[sounding[0]], sounding[breaks + 1]])
    stops = np.concatenate([sounding[breaks] + 1, [sounding[-1] + 1]])
    return list(zip(starts.tolist(), stops.tolist()))
