import pytest
import torch
from torch import nn

import model.cpu_gru as cpu_gru
from model.cpu_gru import GRULayer, projected_gru_forward


def _outputs_and_gradients(forward, projection: nn.Linear, gru: nn.GRU, x: torch.Tensor,
                           hidden: torch.Tensor) -> list[torch.Tensor]:
    """Return outputs, final hidden state and every gradient of a loss that reads both outputs and hidden state."""
    leaves = [x, hidden, *projection.parameters(), *gru.parameters()]
    for leaf in leaves:
        leaf.grad = None
    out, last = forward(projection, gru, x, hidden)
    weights = torch.Generator().manual_seed(1)
    loss = (out * torch.randn(out.shape, generator=weights)).sum() + (last * torch.randn(last.shape,
                                                                                         generator=weights)).sum()
    loss.backward()
    return [out.detach(), last.detach()] + [leaf.grad for leaf in leaves if leaf.requires_grad]


def _nn_gru_forward(projection: nn.Linear, gru: nn.GRU, x: torch.Tensor,
                    hidden: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    return gru(projection(x), hidden)


def _cpu_forward(projection: nn.Linear, gru: nn.GRU, x: torch.Tensor,
                 hidden: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    layers = [tuple(getattr(gru, f"{name}_l{k}") for name in ("weight_ih", "weight_hh", "bias_ih", "bias_hh"))
              for k in range(gru.num_layers)]
    return projected_gru_forward(projection, layers, None, x, hidden, gru.dropout if gru.training else 0.0)


def _chunk_bytes(steps: int, batch: int, size: int, dtype: torch.dtype) -> int:
    """Return the _CHUNK_BYTES that makes the backward work through `steps` steps at a time."""
    return steps * batch * 4 * size * torch.finfo(dtype).bits // 8


@pytest.mark.parametrize("hidden_given", [True, False])
@pytest.mark.parametrize("chunk_steps", [1, 4, 13])
def test_outputs_hidden_state_and_all_gradients_equal_nn_gru(monkeypatch, hidden_given, chunk_steps):
    batch, steps, size = 5, 13, 7
    monkeypatch.setattr(cpu_gru, "_CHUNK_BYTES", _chunk_bytes(chunk_steps, batch, size, torch.float32))
    torch.manual_seed(0)
    projection, gru = nn.Linear(3, 6), nn.GRU(6, size, 3, batch_first=True)
    x = torch.randn(batch, steps, 3, requires_grad=True)
    hidden = torch.randn(3, batch, size, requires_grad=True) if hidden_given else torch.zeros(3, batch, size)
    expected = _outputs_and_gradients(_nn_gru_forward, projection, gru, x, hidden)
    got = _outputs_and_gradients(_cpu_forward, projection, gru, x, hidden)
    assert len(got) == len(expected) == 2 + 1 + hidden_given + 2 + 4 * 3  # outputs, x, hidden, parameters
    for want, have in zip(expected, got):
        torch.testing.assert_close(have, want, atol=1e-5, rtol=1e-5)


def test_training_dropout_draws_what_nn_gru_draws_and_eval_mode_drops_nothing():
    torch.manual_seed(0)
    projection, gru = nn.Linear(3, 6), nn.GRU(6, 7, 3, batch_first=True, dropout=0.3)
    x, hidden = torch.randn(4, 9, 3), torch.randn(3, 4, 7)
    outputs = {}
    for mode in ("train", "eval"):
        getattr(gru, mode)()
        for name, forward in (("nn", _nn_gru_forward), ("cpu", _cpu_forward)):
            torch.manual_seed(5)
            outputs[mode, name] = forward(projection, gru, x, hidden)
    for mode in ("train", "eval"):
        for want, have in zip(outputs[mode, "nn"], outputs[mode, "cpu"]):
            torch.testing.assert_close(have, want, atol=1e-5, rtol=1e-5)
    assert not torch.allclose(outputs["train", "cpu"][0], outputs["eval", "cpu"][0], atol=1e-3)


@pytest.mark.parametrize("chunk_steps", [2, 5])
def test_layer_gradients_pass_gradcheck_in_float64(monkeypatch, chunk_steps):
    steps, batch, inputs, size = 5, 3, 2, 4
    monkeypatch.setattr(cpu_gru, "_CHUNK_BYTES", _chunk_bytes(chunk_steps, batch, size, torch.float64))
    torch.manual_seed(0)
    tensors = [torch.randn(steps, batch, inputs), torch.randn(batch, size), torch.randn(3 * size, inputs),
               torch.randn(3 * size, size), torch.randn(3 * size), torch.randn(3 * size)]
    tensors = [t.double().requires_grad_() for t in tensors]
    assert torch.autograd.gradcheck(GRULayer.apply, tensors)
