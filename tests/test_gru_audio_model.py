import torch

from model.gru_audio_model import RNN, GRUAudioConfig


def test_default_model_has_69232_parameters():
    assert RNN(GRUAudioConfig()).num_parameters() == 69_232


def test_forward_shapes_and_explicit_hidden_state():
    model = RNN(GRUAudioConfig(cond_size=2))
    logits, hidden = model(torch.rand(3, 17, 3))
    assert logits.shape == (3, 17, 256) and hidden.shape == (4, 3, 48)
    assert model.init_hidden(5).shape == (4, 5, 48) and not model.init_hidden(5).any()


def test_whole_sequence_forward_equals_stepping_one_sample_at_a_time():
    torch.manual_seed(0)
    model = RNN(GRUAudioConfig()).eval()
    x = torch.rand(2, 50, 4)
    whole, whole_hidden = model(x)
    hidden = model.init_hidden(2)
    stepped = []
    for t in range(50):
        logits, hidden = model.step(x[:, t], hidden)
        stepped.append(logits)
    assert torch.allclose(torch.stack(stepped, dim=1), whole, atol=1e-5)
    assert torch.allclose(hidden, whole_hidden, atol=1e-6)


def test_cpu_training_forward_gives_nn_grus_logits_and_gradients():
    torch.manual_seed(0)
    model = RNN(GRUAudioConfig(dropout=0.0)).train()
    x = torch.rand(3, 20, 4)

    def gradients(logits: torch.Tensor) -> list[torch.Tensor]:
        model.zero_grad()
        logits.square().mean().backward()
        return [p.grad.clone() for p in model.parameters()]

    logits, _ = model(x)
    reference = model.output(model.gru(model.input_proj(x), model.init_hidden(3))[0])
    assert torch.allclose(logits, reference, atol=1e-5)
    for got, expected in zip(gradients(logits), gradients(reference)):
        assert torch.allclose(got, expected, atol=1e-6)
