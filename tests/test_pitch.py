
import numpy as np
import pytest

from utils.pitch import cents_error, estimate_f0, hz_to_midi, median_f0, midi_to_hz

SR = 16000


def tone(f0: float, seconds: float = 0.5, harmonics: int = 1, sample_rate: int = SR) -> np.ndarray:
    t = np.arange(int(seconds * sample_rate)) / sample_rate
    return 0.5 * sum(np.sin(2 * np.pi * k * f0 * t + k) / k for k in range(1, harmonics + 1))


def test_midi_and_hz_conversions_invert_each_other_around_a4():
    assert hz_to_midi(440.0) == pytest.approx(69.0)
    assert midi_to_hz(81.0) == pytest.approx(880.0)
    midi = np.array([21.0, 64.0, 76.5, 108.0])
    assert np.allclose(hz_to_midi(midi_to_hz(midi)), midi)


def test_cents_error_is_signed_and_one_semitone_is_100_cents():
    assert cents_error(midi_to_hz(70.0), midi_to_hz(69.0)) == pytest.approx(100.0)
    assert cents_error(440.0, 880.0) == pytest.approx(-1200.0)


@pytest.mark.parametrize("f0", [55.3, 196.0, 443.3, 659.26, 987.8])
def test_detuned_sine_is_found_within_one_cent_in_every_frame(f0):
    estimate, voiced = estimate_f0(tone(f0), SR)
    assert voiced.all()
    assert np.max(np.abs(cents_error(estimate, f0))) < 1.0


@pytest.mark.parametrize("f0", [110.0, 329.6, 659.26])
def test_harmonic_tone_is_found_at_its_fundamental_not_an_octave_off(f0):
    estimate, voiced = estimate_f0(tone(f0, harmonics=6), SR)
    assert voiced.all()
    assert np.max(np.abs(cents_error(estimate, f0))) < 5.0


def test_missing_fundamental_is_still_heard_at_the_fundamental():
    t = np.arange(SR // 2) / SR
    audio = sum(np.sin(2 * np.pi * k * 200.0 * t) for k in (2, 3, 4))
    assert abs(cents_error(median_f0(audio, SR), 200.0)) < 5.0


def test_silence_and_white_noise_are_unvoiced():
    silent_f0, silent_voiced = estimate_f0(np.zeros(SR // 2), SR)
    _, noise_voiced = estimate_f0(np.random.default_rng(0).standard_normal(SR // 2), SR)
    assert not silent_voiced.any() and np.isnan(silent_f0).all()
    assert noise_voiced.mean() < 0.1


def test_tone_after_silence_is_voiced_only_where_it_sounds():
    audio = np.concatenate([np.zeros(SR // 2), tone(300.0)])
    f0, voiced = estimate_f0(audio, SR, hop_length=256)
    starts = np.arange(len(f0)) * 256
    assert not voiced[starts + 2048 <= SR // 2].any()
    assert voiced[starts >= SR // 2].all()
    assert median_f0(audio, SR) == pytest.approx(300.0, rel=1e-3)


def test_one_frame_per_hop_that_fits_in_the_audio():
    f0, voiced = estimate_f0(tone(440.0, seconds=1.0), SR, frame_length=1024, hop_length=160)
    assert len(f0) == len(voiced) == (SR - 1024) // 160 + 1


def test_other_sample_rates_work_with_a_long_enough_frame():
    assert abs(cents_error(median_f0(tone(261.63, sample_rate=44100), 44100, frame_length=4096), 261.63)) < 1.0


def test_unvoiced_audio_has_nan_median():
    assert np.isnan(median_f0(np.zeros(SR // 4), SR))


@pytest.mark.parametrize("kwargs, message", [
    ({"fmin": 10.0}, "frame_length"),
    ({"fmin": 500.0, "fmax": 400.0}, "fmin < fmax"),
    ({"fmax": 9000.0}, "sample_rate/2"),
])
def test_bad_ranges_are_refused_with_the_option_to_change(kwargs, message):
    with pytest.raises(ValueError, match=message):
        estimate_f0(tone(440.0), SR, **kwargs)


def test_too_short_or_multichannel_audio_is_refused():
    with pytest.raises(ValueError, match="fewer than frame_length"):
        estimate_f0(np.zeros(100), SR)
    with pytest.raises(ValueError, match="mono"):
        estimate_f0(np.zeros((SR, 2)), SR)
