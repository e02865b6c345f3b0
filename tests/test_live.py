"""LiveSynth through a dummy JACK server the tests start, and the command line without a sound card."""
import gc
import subprocess
import sys
import time

import numpy as np
import pytest
import soundfile as sf
import torch
from pythonosc.udp_client import SimpleUDPClient

from audioDataLoader.audio_dataset import AudioDatasetConfig
from live.control import OscListener
from live.engine import EngineConfig
from live.outputs import open_output
from live.realtime import AudioUnavailable
from live.synth import LiveSynth
from model.gru_audio_model import RNN, GRUAudioConfig
from tests.harness.jack_server import Capture, dummy_jack_server, play_through_jack
from tests.harness.run_folders import QUICK_RUN, ROOT
from utils.pitch import estimate_f0, hz_to_midi
from utils.run_folder import load_model

RATE = 48000


@pytest.fixture(scope="module")
def jack_server() -> str:
    with dummy_jack_server(RATE, 128) as name:
        yield name


@pytest.fixture(scope="module")
def random_model() -> RNN:
    torch.manual_seed(0)
    return RNN(GRUAudioConfig()).eval()


@pytest.mark.system
def test_jack_plays_the_synth_and_the_capture_is_audio(jack_server, random_model):
    synth = LiveSynth(random_model, AudioDatasetConfig(), EngineConfig(drone=True, seed=0), audio="jack",
                      jack_server=jack_server, connect=False)
    assert (synth.rate, synth.period) == (RATE, 128)
    audio = play_through_jack(synth, jack_server, 1.0)
    assert len(audio) == RATE
    assert np.sqrt(np.mean(audio ** 2)) > 0.01 and len(np.unique(audio)) > 100



def test_record_writes_exactly_what_was_played_underflows_included(random_model, tmp_path):
    wav = tmp_path / "take.wav"
    synth = LiveSynth(random_model, AudioDatasetConfig(), EngineConfig(drone=True, seed=0), audio="none",
                      record=wav, realtime=False)
    handed_out, play = [], synth.ring.play

    def spy(out: np.ndarray) -> None:
        play(out)
        handed_out.append(out.copy())

    synth.ring.play = spy
    with synth:
        time.sleep(0.4)
        synth.generator.stop()  # starve the callback: what follows is silence, counted as underflows
        time.sleep(0.1)
    assert synth.ring.underflows > 0
    recorded, rate = sf.read(wav, dtype="float32")
    played = np.concatenate(handed_out)
    assert rate == RATE and len(recorded) == len(played)
    np.testing.assert_allclose(recorded, played, atol=1 / 32767)  # the WAV is 16-bit


@pytest.mark.system
def test_an_osc_message_over_loopback_changes_the_pitch_of_the_capture(jack_server):
    model, config = load_model(QUICK_RUN, "cpu")
    engine = EngineConfig(drone=True, seed=0, initial={"instID": 1, "a": 0.8, "p": 64})
    synth = LiveSynth(model, config["data"], engine, audio="jack", jack_server=jack_server, connect=False)
    listener = OscListener(synth, 0)
    client = SimpleUDPClient("127.0.0.1", listener.port)

    def send_at_one_second(capture: Capture) -> None:
        capture.wait(RATE)
        client.send_message("/param/p", 72.0)

    try:
        audio = play_through_jack(synth, jack_server, 2.5, send_at_one_second)
    finally:
        listener.close()
    f0, voiced = estimate_f0(audio, RATE, fmin=150, fmax=1000, frame_length=4096, hop_length=1024)
    times = np.arange(len(f0)) * 1024 / RATE
    before = np.median(hz_to_midi(f0[voiced & (times > 0.3) & (times < 0.9)]))
    after = np.median(hz_to_midi(f0[voiced & (times > 1.6)]))
    assert abs(before - 64) < 1.0 and abs(after - 72) < 1.0, (before, after)


def test_no_jack_server_says_how_to_start_one():
    with pytest.raises(AudioUnavailable, match="no JACK server 'rnncontrol-absent' is running.*--audio none"):
        open_output("jack", RATE, 128, jack_server="rnncontrol-absent")


def test_an_unknown_sound_card_names_the_devices_and_the_other_backends():
    with pytest.raises(AudioUnavailable, match=r"no usable PortAudio output 'No Such Card'.*PortAudio host APIs.*"
                                               r"--audio jack.*--audio none --record"):
        open_output("portaudio", RATE, 128, device="No Such Card")


@pytest.mark.parametrize("options, message", [
    (dict(period=16), "--period must be within 32..2048 frames, got 16"),
    (dict(buffer_ms=1.0), r"--buffer_ms 1.0 is shorter than one period \(128 frames = 2.67 ms\)"),
    (dict(buffer_ms=float("nan")), "buffer_ms: nan is not finite"),
    (dict(audio="alsa"), "--audio must be one of"),
    (dict(record="/dev/null"), r"/dev/null is not a regular file .* so it is not replaced"),
])
def test_bad_audio_settings_are_refused(random_model, options, message):
    with pytest.raises(ValueError, match=message):
        LiveSynth(random_model, AudioDatasetConfig(), **{"audio": "none", **options})


def test_python_controls_play_notes_in_real_time(random_model):
    synth = LiveSynth(random_model, AudioDatasetConfig(), EngineConfig(voices=2, seed=0), audio="none")
    with synth:
        synth.note_on(64, 100)
        assert wait_until(lambda: synth.engine.sounding() == 1)
        synth.note_off(64)
        assert wait_until(lambda: synth.engine.sounding() == 0)  # after its 80 ms release


def test_while_playing_a_garbage_collection_leaves_the_objects_made_before_untouched(random_model):
    # A full collection of torch's objects holds the GIL for ~90 ms: the generator and the callback would wait.
    synth = LiveSynth(random_model, AudioDatasetConfig(), EngineConfig(voices=1, seed=0), audio="none")
    with synth:
        assert gc.get_freeze_count() > 10_000
    assert gc.get_freeze_count() == 0


def wait_until(condition, seconds: float = 10.0) -> bool:
    deadline = time.monotonic() + seconds
    while not condition() and time.monotonic() < deadline:
        time.sleep(0.01)
    return condition()


def run_live(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "live", *args], capture_output=True, text=True,
                          cwd=ROOT, timeout=300)


@pytest.mark.parametrize("backend", ["auto", "c"])
def test_the_command_line_plays_without_a_sound_card_and_records(tmp_path, backend, built_runtime):
    wav = tmp_path / "take.wav"
    result = run_live("--run_directory", str(QUICK_RUN), "--audio", "none", "--drone", "--seconds", "1",
                      "--record", str(wav), "--param", "instID=1", "--param", "p=67", "--backend", backend)
    assert result.returncode == 0, result.stderr
    audio, rate = sf.read(wav)
    # About a second: a loaded machine may pace the `none` output late, and lost periods are not caught up.
    assert rate == RATE and 0.3 * RATE < len(audio) < 1.5 * RATE and np.abs(audio).max() > 0.01
    assert "underflows" in result.stdout and f"wrote {wav}" in result.stdout


@pytest.mark.parametrize("args, message", [
    (["--cc", "1=volume"], "error: --cc '1=volume': this run has no parameter 'volume'"),
    (["--param", "p=nan"], "error: --param 'p=nan': give finite numbers"),
    (["--audio", "portaudio", "--device", "No Such Card"], "error: no usable PortAudio output 'No Such Card'"),
    (["--voices", "0"], "error: voices must be at least 1"),
])
def test_command_line_errors_are_one_clear_line(args, message):
    result = run_live("--run_directory", str(QUICK_RUN), "--audio", "none", "--seconds", "0.1", *args)
    assert result.returncode != 0
    assert message in result.stderr and "Traceback" not in result.stderr
