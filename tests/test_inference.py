import numpy as np
import pytest
import torch

from inference import parameter_trajectory, run_inference
from model.gru_audio_model import RNN, GRUAudioConfig


@pytest.fixture
def model() -> RNN:
    torch.manual_seed(0)
    return RNN(GRUAudioConfig()).eval()


def test_output_has_the_conditioning_length_and_audio_range(model):
    audio = run_inference(model, np.full((400, 3), 0.5, dtype=np.float32), None, top_n=3, seed=0)
    assert audio.shape == (400,) and audio.dtype == np.float32
    assert np.all(np.abs(audio) <= 1.0)


def test_same_seed_gives_the_same_audio_and_another_seed_differs(model):
    cond = np.random.default_rng(0).uniform(size=(300, 3)).astype(np.float32)
    warmup = np.sin(np.linspace(0, 20, 200)) * 0.5
    first = run_inference(model, cond, warmup, top_n=5, temperature=1.0, seed=7)
    again = run_inference(model, cond, warmup, top_n=5, temperature=1.0, seed=7)
    other = run_inference(model, cond, warmup, top_n=5, temperature=1.0, seed=8)
    assert np.array_equal(first, again) and not np.array_equal(first, other)


def test_several_voices_in_one_call_have_their_own_conditioning(model):
    cond = np.stack([np.zeros((200, 3)), np.ones((200, 3))]).astype(np.float32)
    voices = run_inference(model, cond, None, top_n=1, seed=0)
    alone = run_inference(model, cond[1], None, top_n=1, seed=0)
    assert voices.shape == (2, 200)
    assert np.allclose(voices[1], alone)


def test_wrong_conditioning_width_is_refused(model):
    with pytest.raises(ValueError, match=r"\(T, 3\)"):
        run_inference(model, np.zeros((10, 2)))


def test_parameters_in_their_own_units_hold_or_ramp():
    specs = {"instID": (1, 2), "p": (64, 76)}
    cond = parameter_trajectory(specs, {"instID": (2, 2), "p": (64, 76)}, 5)
    assert np.allclose(cond[:, 0], 1) and np.allclose(cond[:, 1], [0, 0.25, 0.5, 0.75, 1])


def test_a_missing_parameter_is_named():
    with pytest.raises(ValueError, match="missing \\['p'\\]"):
        parameter_trajectory({"instID": (1, 2), "p": (64, 76)}, {"instID": (2, 2)}, 5)
