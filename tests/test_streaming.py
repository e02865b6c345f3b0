import numpy as np
import pytest
import torch

from model.generation import SynthStream, run_inference
from model.gru_audio_model import RNN, GRUAudioConfig

BACKENDS = ["numba", "torch"]


@pytest.fixture
def model() -> RNN:
    torch.manual_seed(0)
    return RNN(GRUAudioConfig()).eval()


@pytest.mark.parametrize("backend", BACKENDS)
def test_blocks_played_one_after_another_equal_one_long_call(model, backend):
    cond = np.random.default_rng(0).uniform(size=(600, 3)).astype(np.float32)
    warmup = 0.5 * np.sin(np.linspace(0, 20, 100))
    stream = SynthStream(model, warmup, top_n=5, temperature=0.9, seed=3, backend=backend)
    edges = [0, 100, 137, 400, 401, 600]
    blocks = [stream.render(cond[start:end]) for start, end in zip(edges[:-1], edges[1:])]
    whole = run_inference(model, cond, warmup, top_n=5, temperature=0.9, seed=3, backend=backend)
    np.testing.assert_array_equal(np.concatenate(blocks), whole)


@pytest.mark.parametrize("backend", BACKENDS)
def test_several_voices_stream_with_their_own_controls(model, backend):
    cond = np.random.default_rng(1).uniform(size=(4, 300, 3)).astype(np.float32)
    stream = SynthStream(model, top_n=3, seed=4, backend=backend)
    blocks = np.concatenate([stream.render(cond[:, :120]), stream.render(cond[:, 120:])], axis=1)
    assert blocks.shape == (4, 300)
    np.testing.assert_array_equal(blocks, run_inference(model, cond, top_n=3, seed=4, backend=backend))


def test_holding_values_renders_them_for_every_sample(model):
    held = SynthStream(model, seed=6).hold([0.2, 0.9, 0.5], 250)
    spelled_out = SynthStream(model, seed=6).render(np.tile([0.2, 0.9, 0.5], (250, 1)))
    assert held.shape == (250,)
    np.testing.assert_array_equal(held, spelled_out)


def test_the_stream_reports_the_rate_of_its_last_block(model):
    stream = SynthStream(model, seed=0, sample_rate=8000)
    stream.hold(np.full((2, 3), 0.5), 300)
    rate = stream.rate
    assert rate.samples == 600 and rate.seconds > 0
    assert rate.samples_per_second == pytest.approx(600 / rate.seconds)
    assert rate.real_time == pytest.approx(rate.samples_per_second / 8000)


def test_changing_the_number_of_voices_mid_stream_is_refused(model):
    stream = SynthStream(model, seed=0)
    stream.hold([0.5, 0.5, 0.5], 10)
    with pytest.raises(ValueError, match="plays 1 voice"):
        stream.hold(np.full((2, 3), 0.5), 10)
