"""Helpers for the tests that compare a sampler backend with the PyTorch reference."""
from __future__ import annotations

import numpy as np
import torch

from audioDataLoader.audio_dataset import input_value_table
from audioDataLoader.mulaw import mu_law_encode
from model.generation import prime, run_inference
from model.gru_audio_model import RNN, GRUAudioConfig


def random_model(seed: int, config: GRUAudioConfig = GRUAudioConfig()) -> RNN:
    torch.manual_seed(seed)
    return RNN(config).eval()


def lively_model(seed: int, config: GRUAudioConfig = GRUAudioConfig()) -> RNN:
    """A random model with well separated logits, so that the most likely class moves about and leads clearly."""
    model = random_model(seed, config)
    with torch.no_grad():
        model.input_proj.weight.mul_(3)
        model.output.weight.mul_(40)
    return model


def chi_square(counts: np.ndarray, probabilities: np.ndarray) -> tuple[float, int]:
    """Return Pearson's (statistic, degrees of freedom), classes expecting fewer than 5 draws pooled into one."""
    expected = counts.sum() * probabilities
    rare = expected < 5
    observed = np.append(counts[~rare], counts[rare].sum())
    expected = np.append(expected[~rare], expected[rare].sum())
    kept = expected > 0
    return float(((observed[kept] - expected[kept]) ** 2 / expected[kept]).sum()), int(kept.sum()) - 1


def greedy_margin(model: RNN, cond: np.ndarray, warmup: np.ndarray, audio: np.ndarray) -> float:
    """Return the least lead of the best class over the next along the path that greedy sampling took."""
    values = input_value_table(256, True)
    previous, hidden, _ = prime(model, warmup, torch.as_tensor(cond)[None], values)
    fed_back = torch.cat([previous, mu_law_encode(torch.as_tensor(audio), 256)[:-1]])
    with torch.no_grad():
        logits, _ = model(torch.cat([values[fed_back][None, :, None], torch.as_tensor(cond)[None]], dim=-1), hidden)
    best_two = logits[0].topk(2, dim=-1).values
    return float((best_two[:, 0] - best_two[:, 1]).min())


def gliding_conditioning(length: int) -> np.ndarray:
    t = np.linspace(0, 1, length, dtype=np.float32)
    return np.stack([t, 1 - t, 0.5 + 0.5 * np.sin(40 * t)], axis=1).astype(np.float32)


def assert_greedy_backend_follows_torch(model: RNN, steps: int, backend: str, least_margin: float,
                                        least_values: int) -> None:
    """Greedy sampling on `backend` must give the PyTorch loop's samples exactly, along a gliding path where the
    best class leads the next by `least_margin` (far more than either side's rounding) and takes `least_values`."""
    cond, warmup = gliding_conditioning(steps), 0.5 * np.sin(np.linspace(0, 30, 200))
    from_torch = run_inference(model, cond, warmup, top_n=1, backend="torch")
    from_backend = run_inference(model, cond, warmup, top_n=1, backend=backend)

    assert greedy_margin(model, cond, warmup, from_torch) > least_margin  # the premise
    assert len(np.unique(from_torch)) >= least_values
    np.testing.assert_array_equal(from_backend, from_torch)
