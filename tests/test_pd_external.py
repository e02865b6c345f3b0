import shutil
import subprocess

import numpy as np
import pytest
import soundfile as sf
import torch

from audioDataLoader.audio_dataset import AudioDatasetConfig
from export import export
from live.notes import from_midi_value
from model.c_sampler import CModel, CVoice
from model.gru_audio_model import RNN, GRUAudioConfig
from tests.harness.run_folders import QUICK_RUN, ROOT, make_run
from utils.model_file import model_file_bytes, read_model_file
from utils.pitch import cents_error, estimate_f0, midi_to_hz

EXTERNAL = ROOT / "pd" / "rnncontrol~"
pytestmark = [pytest.mark.system, pytest.mark.usefixtures("built_runtime")]


@pytest.fixture(scope="module")
def model_file(tmp_path_factory):
    """The small trained run of tests/fixtures, exported."""
    return export(QUICK_RUN, tmp_path_factory.mktemp("model") / "model.safetensors")


RENAMED_SPECS = {"instID": (1.0, 2.0), "level": (0.25, 0.75), "note": (48.0, 72.0)}


@pytest.fixture(scope="module")
def renamed_model_file(tmp_path_factory):
    """A small untrained model whose pitch and velocity parameters are named `note` and `level`."""
    return export(make_run(tmp_path_factory.mktemp("renamed"), RENAMED_SPECS))


@pytest.fixture(scope="module")
def reference_model_file(tmp_path_factory):
    """A small untrained model with a 2-harmonic periodic reference following its pitch `p`."""
    data = AudioDatasetConfig(parameter_specs={"instID": (1, 2), "a": (0, 1), "p": (40, 80)}, pitch_parameter="p",
                              reference_harmonics=2)
    torch.manual_seed(0)
    model = RNN(GRUAudioConfig(cond_size=data.conditioning_size, hidden_size=16, num_layers=2)).eval()
    path = tmp_path_factory.mktemp("reference") / "model.safetensors"
    path.write_bytes(model_file_bytes(model, data, "in memory"))
    return path


def pd_message(text: str) -> str:
    return text.replace(",", " \\,").replace(";", " \\;")


def player_patch(start: str, changes: list[tuple[float, str]], stop_ms: float,
                 arguments: str = "model.safetensors") -> str:
    """Return a patch that plays [rnncontrol~ ARGUMENTS] into out.wav: `start` at load, each (ms, message) of
    `changes` when its time comes, and stops and quits Pd at stop_ms."""
    lines = ["#N canvas 0 50 600 400 12;", "#X obj 10 10 loadbang;", "#X obj 10 40 t b b b;",
             "#X msg 10 70 \\; pd dsp 1;", f"#X obj 10 100 rnncontrol~ {arguments};",
             "#X obj 10 130 writesf~ 1;", "#X msg 150 70 open -bytes 4 out.wav \\, start;",
             f"#X msg 300 70 {pd_message(start)};"]
    connections = [(0, 0, 1), (1, 0, 2), (1, 1, 5), (5, 0, 4), (1, 2, 6), (6, 0, 3), (3, 0, 4)]
    # Pd quits 100 ms (of Pd's clock) after writesf~ stops: writesf~ writes from a thread of its own, which a quit
    # in the same tick can beat, leaving an empty file (seen once in a full test run).
    ending = [(stop_ms, "stop", 4), (stop_ms + 100, "; pd quit", 4)]
    for ms, message, receiver in [*((ms, message, 3) for ms, message in changes), *ending]:
        delay, box = len(lines) - 1, len(lines)  # object numbers: the lines less the canvas line
        lines += [f"#X obj 10 200 delay {ms};", f"#X msg 10 230 {pd_message(message)};"]
        connections += [(1, 0, delay), (delay, 0, box), (box, 0, receiver)]
    lines += [f"#X connect {a} {outlet} {b} 0;" for a, outlet, b in connections]
    return "\n".join(lines) + "\n"


def play_in_pd(folder, model_file, patch: str, sample_rate: int) -> np.ndarray:
    """Return what Pd, headless and faster than real time, writes with writesf~ from `patch` in `folder`."""
    shutil.copy(model_file, folder / "model.safetensors")
    (folder / "player.pd").write_text(patch)
    result = subprocess.run(["pd", "-nogui", "-nosound", "-batch", "-stderr", "-noprefs", "-r", str(sample_rate),
                             "-path", str(EXTERNAL), "player.pd"], cwd=folder, capture_output=True, text=True,
                            timeout=120)
    assert result.returncode == 0 and "error" not in result.stderr, result.stderr
    audio, rate = sf.read(folder / "out.wav", dtype="float32")
    assert rate == sample_rate
    return audio


def open_in_pd(folder, patch: str) -> subprocess.CompletedProcess:
    """Return Pd's run when it opens `patch` (a file in `folder`) headless and quits; Pd's window goes to stderr."""
    return subprocess.run(["pd", "-nogui", "-nosound", "-batch", "-stderr", "-noprefs", "-path", str(EXTERNAL),
                           "-open", patch, "-send", "pd quit"], cwd=folder, capture_output=True, text=True, timeout=60)


def patch_with(boxes: list[str], connections: tuple[tuple[int, int], ...] = ()) -> str:
    """Return a patch of `boxes` ('obj loadbang', 'msg print', ...), one under another, each (a, b) of
    `connections` wiring box a's outlet 0 to box b's inlet 0."""
    lines = ["#N canvas 0 50 450 300 12;"]
    for i, box in enumerate(boxes):
        kind, text = box.split(" ", 1)
        lines.append(f"#X {kind} 10 {10 + 30 * i} {text};")
    lines += [f"#X connect {a} 0 {b} 0;" for a, b in connections]
    return "\n".join(lines) + "\n"


@pytest.mark.parametrize("model", ["model_file", "reference_model_file"])
def test_pd_plays_exactly_what_the_c_library_plays_for_the_same_seed_and_messages(request, tmp_path, model):
    model_file = request.getfixturevalue(model)
    changes = [(400, "p 71"), (800, "a 0.3, p 66"), (1200, "temperature 0.7")]
    audio = play_in_pd(tmp_path, model_file, player_patch("seed 5, top_n 3, instID 2, a 0.8, p 64", changes, 1600),
                       sample_rate=16000)
    # Pd's clock runs one DSP block ahead of the samples it writes: messages at t ms act from sample t * 16 - lag.
    lag = 1600 * 16 - len(audio)
    assert 0 <= lag <= 64

    voice = CVoice(CModel.from_file(model_file), 5)
    voice.set(3, 1.0)
    for name, value in (("instID", 2), ("a", 0.8), ("p", 64)):
        voice.set_parameter(name, value)
    expected, position = [], 0
    for ms, message in changes:
        expected.append(voice.render(ms * 16 - lag - position))
        position = ms * 16 - lag
        for setting in message.split(", "):
            name, value = setting.split()
            voice.set(3, float(value)) if name == "temperature" else voice.set_parameter(name, float(value))
    expected.append(voice.render(len(audio) - position))
    np.testing.assert_array_equal(audio, np.concatenate(expected))


def test_pd_at_44100_hz_plays_the_pitches_its_note_messages_ask_for(tmp_path, model_file):
    notes = [64, 71, 67]
    changes = [(1000 * i, f"note {pitch} 100") for i, pitch in enumerate(notes) if i]
    audio = play_in_pd(tmp_path, model_file, player_patch(f"seed 1, instID 1, note {notes[0]} 100", changes, 3000),
                       sample_rate=44100)
    assert len(audio) > 2.9 * 44100
    for i, pitch in enumerate(notes):
        held = audio[int((i + 0.25) * 44100):int((i + 1) * 44100) - 2048]  # past the change, and its transient
        f0, voiced = estimate_f0(held, 44100)
        assert voiced.mean() > 0.8
        error = np.median(np.abs(cents_error(f0[voiced], midi_to_hz(pitch))))
        assert error < 50, f"note {pitch}: median pitch error {error:.0f} cents"


def test_the_help_patch_opens_where_it_is_and_loads_the_shipped_default_model(built_runtime):
    result = open_in_pd(EXTERNAL, "rnncontrol~-help.pd")
    assert result.returncode == 0, result.stderr
    assert "error" not in result.stderr and "couldn't create" not in result.stderr, result.stderr


def test_pd_says_why_a_model_file_is_refused(tmp_path, model_file):
    (tmp_path / "model.safetensors").write_bytes(model_file.read_bytes()[:1000])
    (tmp_path / "player.pd").write_text(patch_with(["obj rnncontrol~ model.safetensors"]))
    result = open_in_pd(tmp_path, "player.pd")
    assert "rnncontrol~: " in result.stderr and "truncated" in result.stderr, result.stderr


@pytest.mark.parametrize("model, arguments, pitch, velocity", [
    ("model_file", "p a", "p", "a"),
    ("renamed_model_file", "note level", "note", "level"),
    ("model_file", "p none", "p", None),  # velocity ignored: `a` stays where the voice started
])
def test_pd_notes_set_the_named_parameters_by_live_plays_velocity_rule(request, tmp_path, model, arguments, pitch,
                                                                        velocity):
    model_file = request.getfixturevalue(model)
    audio = play_in_pd(tmp_path, model_file, player_patch("seed 5, note 64 100", [(400, "note 67 64")], 800,
                                                          f"model.safetensors {arguments}"), sample_rate=16000)
    change = 400 * 16 - (800 * 16 - len(audio))  # Pd's clock runs one DSP block ahead of the samples it writes
    assert 400 * 16 - 64 <= change <= 400 * 16
    assert np.abs(audio).max() > 0.01, "the note is silent"

    specs = read_model_file(model_file)[1]["data"].parameter_specs
    voice, expected = CVoice(CModel.from_file(model_file), 5), []
    for (note, strength), samples in zip([(64, 100), (67, 64)], [change, len(audio) - change]):
        voice.set_parameter(pitch, note)
        if velocity:
            voice.set_parameter(velocity, from_midi_value(specs[velocity], strength))  # live play's rule
        expected.append(voice.render(samples))
    np.testing.assert_array_equal(audio, np.concatenate(expected))


def test_pd_refuses_note_parameters_the_model_lacks_and_names_them(tmp_path, renamed_model_file):
    shutil.copy(renamed_model_file, tmp_path / "model.safetensors")
    (tmp_path / "player.pd").write_text(patch_with(["obj rnncontrol~ model.safetensors note loudness",
                                                    "obj rnncontrol~ model.safetensors"]))
    stderr = open_in_pd(tmp_path, "player.pd").stderr
    parameters = "its parameters are: instID level note"
    for name, role in (("loudness", "velocity"), ("p", "pitch"), ("a", "velocity")):
        assert any(f"no parameter '{name}' for a note's {role}; {parameters}" in line
                   for line in stderr.splitlines()), stderr
    assert stderr.count("couldn't create") == 2, stderr


def test_pd_print_posts_each_parameter_with_its_range_and_role(tmp_path, renamed_model_file):
    shutil.copy(renamed_model_file, tmp_path / "model.safetensors")
    (tmp_path / "player.pd").write_text(patch_with(["obj loadbang", "msg print",
                                                    "obj rnncontrol~ model.safetensors note level"], ((0, 1), (1, 2))))
    stderr = open_in_pd(tmp_path, "player.pd").stderr
    lines = [line.strip() for line in stderr.splitlines()]
    assert "rnncontrol~: model.safetensors, 16000 Hz, 3 parameters:" in lines, stderr
    assert ["instID 1..2", "level 0.25..0.75 (velocity)", "note 48..72 (pitch)"] == [
        line for line in lines if line.split(" ")[0] in RENAMED_SPECS], stderr


def test_pd_print_names_the_reference_and_the_parameter_it_follows(tmp_path, reference_model_file):
    shutil.copy(reference_model_file, tmp_path / "model.safetensors")
    (tmp_path / "player.pd").write_text(patch_with(["obj loadbang", "msg print", "obj rnncontrol~ model.safetensors"],
                                                   ((0, 1), (1, 2))))
    lines = [line.strip() for line in open_in_pd(tmp_path, "player.pd").stderr.splitlines()]
    assert "rnncontrol~: model.safetensors, 16000 Hz, 3 parameters:" in lines, lines
    assert "reference: 2 harmonics following parameter p" in lines, lines
