"""bench/bench_fp32_limits.py: the multiply-adds of a sample, and the limits tool's output."""
import subprocess

import pytest

from bench.bench_fp32_limits import RUNTIME, machine_limits, multiply_adds
from model.gru_audio_model import GRUAudioConfig
from tests.harness.backends import random_model


@pytest.mark.parametrize("config", [GRUAudioConfig(), GRUAudioConfig(cond_size=2, hidden_size=10, num_layers=3,
                                                                    numtokens=30, cond_every_layer=True)])
def test_a_sample_takes_one_multiply_add_per_weight_with_the_input_projection_folded_into_layer_0(config):
    model = random_model(0, config)
    matrices = sum(p.numel() for name, p in model.named_parameters() if name.endswith("weight")
                   or "weight_ih" in name or "weight_hh" in name)
    projection = model.input_proj.weight.numel()  # (H, 1 + C): folded into layer 0's (3H, 1 + C)
    layer0_input = 3 * config.hidden_size * config.hidden_size
    folded = 3 * config.hidden_size * (1 + config.cond_size)
    assert multiply_adds(model) == matrices - projection - layer0_input + folded
    if config == GRUAudioConfig():
        assert multiply_adds(model) == 61_248


def test_the_limits_tool_prints_both_rates_and_refuses_a_bad_call():
    limits = machine_limits(6400, 0.05)
    assert set(limits) == {"arithmetic", "stream"} and all(rate > 0 for rate in limits.values())
    refused = subprocess.run([str(RUNTIME / "tools" / "fp32_limits"), "10", "1"], capture_output=True, text=True)
    assert refused.returncode == 2 and "usage: fp32_limits WEIGHTS SECONDS" in refused.stderr
