"""The shipped models (models/): each loads and plays its instruments in tune on every backend, its card agrees with
its tensors and with models/README.md, and everything that plays takes a model file or a run folder alike."""
import subprocess
import sys

import numpy as np
import pytest
import soundfile as sf
from safetensors import safe_open

from audioDataLoader.audio_dataset import normalize_parameters
from evaluation.measures import f0_range, measure_note
from export import main as export_main
from model.generation import SynthStream
from model.reference import PeriodicReference
from models.card import FIGURES, cards_markdown, describe
from models.remake import SHIPPED
from tests.harness.run_folders import QUICK_RUN, ROOT
from utils.run_folder import SHIPPED_DEFAULT_MODEL, load_model

MODELS = sorted((ROOT / "models").glob("*.safetensors"))
SECONDS, SETTLE = 1.0, 0.25  # each test note, and its start left out as evaluate.py does


def test_every_model_the_remake_script_makes_is_shipped_the_default_among_them():
    assert {path.stem for path in MODELS} == set(SHIPPED)
    assert SHIPPED_DEFAULT_MODEL in MODELS


def _trained_pitch(data) -> float:
    """A pitch the model trained on: two semitones below the highest, or the next one down not held out (where
    both shipped pairs sound: the cello's lowest notes do not, as the tuba_cello card says)."""
    _, high = data.parameter_specs[data.pitch_parameter]
    held_out = data.exclude.get(data.pitch_parameter, [])
    return next(p for p in np.arange(high - 2, high - 12, -1) if p not in held_out)


@pytest.mark.parametrize("backend", ["torch", "numba", "c"])
@pytest.mark.parametrize("path", MODELS, ids=lambda path: path.stem)
def test_each_shipped_model_plays_each_instrument_at_a_trained_pitch_on_every_backend(path, backend, built_runtime):
    model, config = load_model(path, "cpu")
    data, card = config["data"], describe(path).card
    names = list(data.parameter_specs)
    pitch = _trained_pitch(data)
    instruments = data.parameter_specs["instID"]
    settings = np.array([[{"instID": instrument, "a": 0.7, "p": pitch}[name] for name in names]
                         for instrument in instruments])
    length = int(SECONDS * data.sample_rate)
    cond = normalize_parameters(np.repeat(settings[:, None, :], length, axis=1), data.parameter_specs)
    audio = SynthStream(model, None, 3, 1.0, 0, data.encode, backend, data.sample_rate,
                        PeriodicReference.of(data)).render(cond)
    # Generous: a short render on one seed, against the card's p90 over its whole grid.
    bound = max(50.0, 2 * card.measured["trained p90"])
    for instrument, note in zip(instruments, audio):
        measured = measure_note(note[int(SETTLE * data.sample_rate):], data.sample_rate, pitch, f0_range([pitch]))
        assert measured.voiced_fraction > 0.5, f"instID {instrument:g} at {pitch}: silent on {backend}"
        cents = 100 * abs(measured.f0_midi - pitch)
        assert cents < bound, f"instID {instrument:g} at {pitch}: {cents:.0f} cents off on {backend}"


@pytest.mark.parametrize("path", MODELS, ids=lambda path: path.stem)
def test_each_card_agrees_with_its_tensors_and_holds_every_figure(path):
    summary = describe(path)
    with safe_open(path, "pt") as handle:
        input_weight = handle.get_slice("input_proj.weight").get_shape()
        harmonics = int(handle.metadata()["reference.harmonics"])
    assert input_weight[1] == 1 + len(summary.parameters) + 2 * harmonics
    card = summary.card
    assert card is not None and card.name == path.stem
    assert set(card.units) == set(summary.parameters)
    assert set(card.measured) == set(FIGURES) and all(np.isfinite(list(card.measured.values())))
    assert card.recipe and card.schedule and card.data_licence and card.remake.endswith(path.stem)


def test_models_readme_shows_every_card_as_export_prints_it():
    assert cards_markdown([describe(path) for path in MODELS]) in (ROOT / "models" / "README.md").read_text()


def test_a_card_is_printed_from_a_model_file_and_from_a_run_folder(capsys):
    export_main(["--card", str(SHIPPED_DEFAULT_MODEL), str(QUICK_RUN)])
    printed = capsys.readouterr().out
    assert "clarinet_trumpet: clarinet and trumpet" in printed and "trained median" in printed
    assert "quick_run: a run folder" in printed and "p 64..76" in printed


def _run(*args: str, cwd) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, *args], capture_output=True, text=True, cwd=cwd, timeout=300)


def test_live_with_no_run_and_no_model_plays_the_shipped_default_and_says_so(tmp_path):
    wav = tmp_path / "x.wav"
    result = _run("-m", "live", "--audio", "none", "--drone", "--seconds", "3", "--record", str(wav),
                  "--param", "instID=1", "--param", "p=69", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert f"playing the shipped default model {SHIPPED_DEFAULT_MODEL}" in result.stderr
    audio, rate = sf.read(wav)
    measured = measure_note(audio[rate // 2:], rate, 69, f0_range([69]))
    assert measured.voiced_fraction > 0.5 and abs(measured.f0_midi - 69) < 0.5


def test_inference_plays_a_model_file_and_writes_under_output(tmp_path):
    result = _run(str(ROOT / "inference.py"), "--model", str(SHIPPED_DEFAULT_MODEL), "--length_seconds", "0.3",
                  "--param", "instID=1", "--param", "a=0.7", "--param", "p=66", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    audio, rate = sf.read(tmp_path / "output" / "clarinet_trumpet" / "generated.wav")
    assert len(audio) == int(0.3 * rate) and np.abs(audio).max() > 0.01


@pytest.mark.parametrize("args", [["--model", "no/such/model.safetensors"], ["--run_directory", "README.md"]])
def test_a_bad_model_path_is_one_clear_line(args, tmp_path):
    result = _run(str(ROOT / "inference.py"), *args, cwd=tmp_path)
    assert result.returncode != 0 and "Traceback" not in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1 and "error:" in result.stderr
