import numpy as np
import pytest
import torch

from audioDataLoader import pitch_shift
from audioDataLoader.audio_dataset import AudioDatasetConfig, MuLawAudioDataset
from audioDataLoader.mulaw import mu_law_decode
from tests.harness.run_folders import write_tone
from utils.pitch import hz_to_midi, median_f0

SPECS = {"p": (60.0, 72.0)}


@pytest.fixture
def tone_folder(tmp_path):
    write_tone(tmp_path / "tone_p64.00.wav", 64, 0.8, bright=True, seconds=1.0)
    return tmp_path


def _config(folder, **overrides) -> AudioDatasetConfig:
    return AudioDatasetConfig(**{"data_dir": str(folder), "sequence_length": 4096, "parameter_specs": SPECS,
                                 "add_noise": False, "pitch_parameter": "p", **overrides})


def test_a_shifted_windows_pitch_moves_by_its_labels_shift(tone_folder):
    dataset = MuLawAudioDataset(_config(tone_folder, pitch_shift=1.0))
    inputs, targets = dataset.sample_batch(12, torch.Generator().manual_seed(0))
    labels = inputs[:, 0, 1].numpy() * 12 + 60
    measured = [hz_to_midi(median_f0(mu_law_decode(window[:, 0].numpy()), 16000)) for window in targets]
    assert np.ptp(labels) > 0.8  # the draws spread over the range, not one value
    np.testing.assert_allclose(measured, labels, atol=0.05)  # within 5 cents


def test_without_shift_the_labels_and_windows_are_the_files_own(tone_folder):
    dataset = MuLawAudioDataset(_config(tone_folder))
    inputs, targets = dataset.sample_batch(4, torch.Generator().manual_seed(0))
    assert torch.all(inputs[:, :, 1] == (64 - 60) / 12)
    assert abs(hz_to_midi(median_f0(mu_law_decode(targets[0, :, 0].numpy()), 16000)) - 64) < 0.02


def test_resampling_at_ratio_one_reads_the_samples_themselves():
    samples = torch.randn(100)
    window = pitch_shift.read_resampled(lambda positions: samples[positions], torch.tensor([5]),
                                        torch.tensor([1.0], dtype=torch.float64), 20)
    torch.testing.assert_close(window[0], samples[5:25])


def test_shifted_windows_stay_inside_their_file():
    ratio = pitch_shift.read_ratio(torch.full((3,), 2.0, dtype=torch.float64))
    start = pitch_shift.fit_starts(torch.tensor([0, 50, 95]), ratio, 20, torch.tensor([0]), torch.tensor([100]))
    reads = start[:, None] - 1 + torch.arange(int(pitch_shift.span(20, ratio[0])))
    assert reads.min() >= 0 and reads.max() <= 99


@pytest.mark.parametrize("settings, message", [
    ({"pitch_shift": 1.0, "pitch_parameter": None}, "needs pitch_parameter"),
    ({"pitch_parameter": "q"}, "'q' is not in parameter_specs"),
    ({"pitch_shift": -1.0}, "between 0 and 12"),
])
def test_bad_augmentation_settings_name_the_setting(tone_folder, settings, message):
    with pytest.raises(ValueError, match=message):
        _config(tone_folder, **settings)


def test_a_file_too_short_for_the_shifted_window_is_named(tone_folder):
    with pytest.raises(ValueError, match="tone_p64.00.wav .* pitch_shift"):
        MuLawAudioDataset(_config(tone_folder, sequence_length=15990, pitch_shift=1.0))
