import pytest
import torch

from model.gru_audio_model import RNN, GRUAudioConfig


def test_default_model_has_69232_parameters():
    assert RNN(GRUAudioConfig()).num_parameters() == 69_232


def test_forward_shapes_and_explicit_hidden_state():
    model = RNN(GRUAudioConfig(cond_size=2))
    logits, hidden = model(torch.rand(3, 17, 3))
    assert logits.shape == (3, 17, 256) and hidden.shape == (4, 3, 48)
    assert model.init_hidden(5).shape == (4, 5, 48) and not model.init_hidden(5).any()


def test_conditioning_every_layer_adds_the_parameters_to_each_higher_layers_inputs():
    model = RNN(GRUAudioConfig(cond_every_layer=True))
    assert model.num_parameters() == 69_232 + 3 * (3 * 48) * 3  # 3 higher layers x 3 gates x 48 units x 3 params
    assert [w_ih.shape[1] for w_ih, *_ in model.gru_layers()] == [48, 51, 51, 51]


@pytest.mark.parametrize("cond_every_layer", [False, True])
def test_whole_sequence_forward_equals_stepping_one_sample_at_a_time(cond_every_layer):
    torch.manual_seed(0)
    model = RNN(GRUAudioConfig(cond_every_layer=cond_every_layer)).eval()
    x = torch.rand(2, 50, 4)
    whole, whole_hidden = model(x)
    hidden = model.init_hidden(2)
    stepped = []
    for t in range(50):
        logits, hidden = model.step(x[:, t], hidden)
        stepped.append(logits)
    assert torch.allclose(torch.stack(stepped, dim=1), whole, atol=1e-5)
    assert torch.allclose(hidden, whole_hidden, atol=1e-6)


@pytest.mark.parametrize("cond_every_layer", [False, True])
def test_cpu_training_forward_gives_nn_grus_logits_and_gradients(cond_every_layer):
    torch.manual_seed(0)
    model = RNN(GRUAudioConfig(dropout=0.0, cond_every_layer=cond_every_layer)).train()
    x = torch.rand(3, 20, 4)

    def gradients(logits: torch.Tensor) -> list[torch.Tensor]:
        model.zero_grad()
        logits.square().mean().backward()
        return [p.grad.clone() for p in model.parameters()]

    logits, _ = model(x)
    # nn.GRU's own path, which the model runs on CUDA and without gradients
    if cond_every_layer:
        reference = model.output(model._layer_by_layer(x, model.init_hidden(3))[0])
    else:
        reference = model.output(model.gru(model.input_proj(x), model.init_hidden(3))[0])
    assert torch.allclose(logits, reference, atol=1e-5)
    for got, expected in zip(gradients(logits), gradients(reference)):
        assert torch.allclose(got, expected, atol=1e-6)
