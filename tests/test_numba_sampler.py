import os
import subprocess
import sys

import numpy as np
import pytest
import torch

import model.c_sampler as c_sampler
import model.sampler as sampler
from audioDataLoader.audio_dataset import input_value_table
from audioDataLoader.mulaw import mu_law_encode
from model.generation import prime, run_inference
from model.gru_audio_model import GRUAudioConfig
from model.numba_sampler import gru_weights, step_logits
from model.sampler import choose_backend
from tests.harness.backends import assert_greedy_backend_follows_torch, chi_square, lively_model, random_model


@pytest.mark.parametrize("config", [
    GRUAudioConfig(),
    GRUAudioConfig(cond_size=2, hidden_size=10, num_layers=1, numtokens=30),  # sizes that are no multiple of a vector, one layer
    GRUAudioConfig(cond_size=1, hidden_size=7, num_layers=3, numtokens=13),
    GRUAudioConfig(cond_every_layer=True),
    GRUAudioConfig(cond_size=2, hidden_size=10, num_layers=3, numtokens=30, cond_every_layer=True),
])
def test_compiled_step_logits_match_pytorch_over_hundreds_of_steps(config):
    model = random_model(0, config)
    inputs = torch.rand(300, 1 + config.cond_size, generator=torch.Generator().manual_seed(1))
    hidden_torch = model.init_hidden(1)
    hidden_numba = np.zeros((config.num_layers, config.hidden_size), np.float32)
    weights = gru_weights(model)
    with torch.no_grad():
        for x in inputs:
            expected, hidden_torch = model.step(x[None], hidden_torch)
            logits = step_logits(weights, x.numpy(), hidden_numba)
            np.testing.assert_allclose(logits, expected[0].numpy(), rtol=0, atol=1e-4)
    np.testing.assert_allclose(hidden_numba, hidden_torch[:, 0].numpy(), rtol=0, atol=1e-5)


def test_greedy_sampling_gives_the_same_sequence_on_both_backends():
    assert_greedy_backend_follows_torch(lively_model(9), 400, "numba", least_margin=1e-3, least_values=4)


@pytest.mark.parametrize("top_n, temperature", [(5, 1.0), (3, 0.5), (0, 2.0)])
def test_drawn_samples_follow_the_top_n_softmax_on_both_backends(top_n, temperature):
    # Many voices in the same state each draw one sample: the counts against softmax(top_n logits / temperature).
    model = random_model(3)
    with torch.no_grad():
        model.output.weight.mul_(60)  # spread-out probabilities, so a temperature 10% off fails the test
    draws, warmup = 20000, 0.3 * np.sin(np.linspace(0, 10, 30))
    cond = np.full((draws, 1, 3), 0.4, np.float32)
    values = input_value_table(256, True)
    previous, hidden, _ = prime(model, warmup, torch.as_tensor(cond[:1]), values)
    with torch.no_grad():
        logits, _ = model.step(torch.cat([values[previous], torch.as_tensor(cond[0, 0])])[None], hidden)
    logits = logits[0].double()
    kept = logits.topk(top_n).indices if top_n else torch.arange(256)
    expected = torch.zeros(256, dtype=torch.float64)
    expected[kept] = torch.softmax(logits[kept] / temperature, dim=0)
    expected = expected.numpy()

    for backend in ("torch", "numba"):
        audio = run_inference(model, cond, warmup, top_n=top_n, temperature=temperature, seed=11, backend=backend)
        counts = np.bincount(mu_law_encode(audio[:, 0], 256), minlength=256)
        assert counts[expected == 0].sum() == 0, f"{backend} drew a class outside the top {top_n}"
        statistic, df = chi_square(counts, expected)
        # Six standard deviations above the statistic's mean: a wrong distribution lands far beyond this.
        assert statistic < df + 6 * np.sqrt(2 * df), f"{backend}: chi-square {statistic:.1f} with {df} df"


def test_a_voice_does_not_depend_on_the_voices_beside_it():
    model = random_model(0)
    cond = np.random.default_rng(0).uniform(size=(3, 200, 3)).astype(np.float32)
    together = run_inference(model, cond, None, top_n=3, seed=5, backend="numba")
    alone = run_inference(model, cond[0], None, top_n=3, seed=5, backend="numba")
    np.testing.assert_array_equal(together[0], alone)


def test_auto_backend_is_the_c_runtime_on_cpu_and_torch_on_request(built_runtime):
    model = random_model(0)
    cond = np.random.default_rng(1).uniform(size=(300, 3)).astype(np.float32)
    auto = run_inference(model, cond, None, top_n=3, seed=2)
    assert choose_backend(model) == "c"
    np.testing.assert_array_equal(auto, run_inference(model, cond, None, top_n=3, seed=2, backend="c"))
    assert not np.array_equal(auto, run_inference(model, cond, None, top_n=3, seed=2, backend="torch"))


def test_auto_backend_is_numba_without_a_c_runtime_that_loads_and_torch_without_either(monkeypatch, tmp_path):
    c_sampler.library.cache_clear()  # a failed load is not cached: later tests load the built runtime again
    monkeypatch.setattr(c_sampler, "LIBRARY", tmp_path / "librnncontrol.so")  # not built
    assert choose_backend(random_model(0)) == "numba"
    (tmp_path / "librnncontrol.so").write_bytes(b"not a library")  # a broken build
    assert choose_backend(random_model(0)) == "numba"
    monkeypatch.setattr(sampler, "numba_available", lambda: False)
    assert choose_backend(random_model(0)) == "torch"
    with pytest.raises(ImportError, match="pip install numba"):
        choose_backend(random_model(0), "numba")


def test_an_unknown_backend_is_refused_with_the_choices():
    with pytest.raises(ValueError, match=r"backend must be one of \('auto', 'torch', 'numba', 'c'\), got 'cuda'"):
        run_inference(random_model(0), np.zeros((10, 3), np.float32), backend="cuda")


def test_generating_leaves_pytorchs_thread_count_as_it_was():
    """numba's thread pool starts on the first generation of a process; training afterwards keeps its threads."""
    script = ("import numpy as np, torch\n"
              "torch.set_num_threads(1)\n"
              "from model.generation import run_inference\n"
              "from model.gru_audio_model import RNN, GRUAudioConfig\n"
              "run_inference(RNN(GRUAudioConfig()).eval(), np.zeros((4, 50, 3), np.float32), seed=0, backend='numba')\n"
              "print(torch.get_num_threads())\n")
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=300,
                            env={**os.environ, "NUMBA_NUM_THREADS": "2"})
    assert result.returncode == 0, result.stderr
    assert result.stdout.split()[-1] == "1"
