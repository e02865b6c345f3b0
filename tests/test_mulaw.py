import numpy as np
import pytest
import torch

from audioDataLoader.mulaw import mu_law_decode, mu_law_encode


def test_reference_values_for_256_classes():
    audio = np.array([-1.0, 0.0, 1.0, 0.5, -0.5])
    # y = sign(x) ln(1 + 255|x|) / ln(256); index = floor((y + 1) / 2 * 255 + 0.5)
    expected = [np.floor((np.sign(x) * np.log1p(255 * abs(x)) / np.log(256) + 1) / 2 * 255 + 0.5) for x in audio]
    assert mu_law_encode(audio).tolist() == [0, 128, 255, 239, 16] == expected


def test_values_outside_unit_range_are_clipped():
    assert mu_law_encode(np.array([-3.0, 2.0])).tolist() == [0, 255]


@pytest.mark.parametrize("numtokens", [2, 16, 256, 1024])
def test_decode_inverts_encode_on_every_class(numtokens):
    indices = np.arange(numtokens)
    assert np.array_equal(mu_law_encode(mu_law_decode(indices, numtokens), numtokens), indices)


def test_round_trip_error_is_within_half_a_step_of_the_companded_scale():
    audio = np.linspace(-1, 1, 10001)
    decoded = mu_law_decode(mu_law_encode(audio))
    # half a step of y = 1/255 is ln(256)/255 (|x| + 1/255) in x: relative near full scale, absolute near zero
    half_step = np.log(256) / 255 * (np.abs(audio) + 1 / 255)
    assert np.all(np.abs(decoded - audio) <= half_step * 1.02)  # the step is measured at x, not at the decoded level


def test_torch_and_numpy_agree():
    audio = np.random.default_rng(0).uniform(-1.2, 1.2, 1000)
    from_numpy = mu_law_encode(audio)
    from_torch = mu_law_encode(torch.tensor(audio, dtype=torch.float32))
    assert from_torch.dtype == torch.long
    assert np.array_equal(from_torch.numpy(), from_numpy)
    assert np.allclose(mu_law_decode(from_torch).numpy(), mu_law_decode(from_numpy), atol=1e-6)


def test_numtokens_below_two_is_refused():
    with pytest.raises(ValueError, match="numtokens"):
        mu_law_encode(np.zeros(3), numtokens=1)
