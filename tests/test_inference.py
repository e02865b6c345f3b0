import numpy as np
import pytest
import torch

from inference import parameter_trajectory
from model.generation import SynthStream, run_inference
from model.gru_audio_model import RNN, GRUAudioConfig
from utils.checks import check_finite_array


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


@pytest.mark.parametrize("backend", ["torch", "numba"])
@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_non_finite_conditioning_is_refused_with_its_position(model, backend, bad):
    cond = np.full((50, 3), 0.5, np.float32)
    cond[20, 1] = bad
    with pytest.raises(ValueError, match=r"conditioning holds 1 NaN or infinite values \(the first at index \(20, 1\)\)"):
        run_inference(model, cond, backend=backend)
    with pytest.raises(ValueError, match="NaN or infinite"):
        run_inference(model, torch.as_tensor(cond), backend=backend)


def test_a_non_finite_warm_up_is_refused(model):
    with pytest.raises(ValueError, match="warmup_sequence holds 1 NaN"):
        run_inference(model, np.zeros((10, 3), np.float32), np.array([0.0, np.nan, 0.1]))


@pytest.mark.parametrize("settings, message", [
    ({"temperature": 0.0}, "temperature"), ({"temperature": -1.0}, "temperature"),
    ({"temperature": float("nan")}, "temperature"), ({"temperature": float("inf")}, "temperature"),
    ({"top_n": -1}, "top_n"), ({"top_n": 2.5}, "top_n"),
])
def test_sampling_settings_that_would_give_garbage_are_refused(model, settings, message):
    with pytest.raises(ValueError, match=message):
        run_inference(model, np.zeros((10, 3), np.float32), **settings)


def test_a_live_stream_refuses_a_non_finite_block_and_plays_on(model):
    stream = SynthStream(model, top_n=3, seed=0)
    first = stream.hold([0.5, 0.5, 0.5], 100)
    with pytest.raises(ValueError, match="NaN or infinite"):
        stream.hold([0.5, float("nan"), 0.5], 100)
    assert check_finite_array("conditioning", [0.0, 1.0]) is None
    assert len(first) == len(stream.hold([0.5, 0.5, 0.5], 100)) == 100


@pytest.mark.parametrize("backend", ["torch", "numba"])
def test_conditioning_that_requires_grad_plays_like_plain_conditioning(model, backend):
    cond = torch.rand(100, 3, generator=torch.Generator().manual_seed(0))
    plain = run_inference(model, cond, top_n=3, seed=4, backend=backend)
    tracked = run_inference(model, cond.clone().requires_grad_(), torch.zeros(5, requires_grad=True), top_n=3,
                            seed=4, backend=backend)
    warmed = run_inference(model, cond, torch.zeros(5), top_n=3, seed=4, backend=backend)
    assert plain.shape == tracked.shape and np.array_equal(tracked, warmed)


def test_a_process_that_has_the_compiled_sampler_reports_no_compile(model):
    SynthStream(model, seed=0, backend="numba").render(np.zeros((10, 3), np.float32))
    stream = SynthStream(model, seed=0, backend="numba")
    stream.render(np.zeros((10, 3), np.float32))
    assert stream.compile_seconds is None and stream.rate.samples == 10
