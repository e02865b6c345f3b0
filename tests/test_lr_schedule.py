import pytest

from utils.lr_schedule import learning_rate


def test_constant_schedule_is_the_peak_everywhere():
    assert {learning_rate("constant", 0.01, b, 100, 0.1, 0.05) for b in range(100)} == {0.01}


def test_cosine_warms_up_peaks_and_ends_at_the_final_share():
    rates = [learning_rate("cosine", 0.01, b, 100, 0.1, 0.05) for b in range(100)]
    assert rates[0] == pytest.approx(0.001) and rates[9] == pytest.approx(0.01)
    assert all(a <= b for a, b in zip(rates[:10], rates[1:10]))  # rising while warming up
    assert all(a >= b for a, b in zip(rates[10:], rates[11:]))  # then falling
    assert rates[-1] == pytest.approx(0.0005)


def test_unknown_schedule_is_named():
    with pytest.raises(ValueError, match="'linear'"):
        learning_rate("linear", 0.01, 0, 10, 0.1, 0.05)
