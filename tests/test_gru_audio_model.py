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
