import math
import os
import re
import warnings
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from audioDataLoader.audio_dataset import (
    AudioDatasetConfig,
    MuLawAudioDataset,
    normalize_parameters,
    parse_filename_parameters,
)
from audioDataLoader.mulaw import mu_law_decode, mu_law_encode
from tests.harness.blocking import exception_within
from tests.harness.run_folders import TINY_SPECS, write_tone
from utils.checks import FLOAT32_MAX


def test_parses_the_original_file_name_pattern():
    found = parse_filename_parameters("nsynth_instID02.00_p76.00_a00.30.wav", ["instID", "p", "a"])
    assert found == {"instID": 2.0, "p": 76.0, "a": pytest.approx(0.3)}


def test_parses_negative_values():
    assert parse_filename_parameters("tone_p-3.50_a1.wav", ["p", "a"]) == {"p": -3.5, "a": 1.0}


def test_a_name_that_prefixes_another_is_not_confused():
    names = ["a", "amp"]
    assert parse_filename_parameters("x_amp0.75_a0.25.wav", names) == {"a": 0.25, "amp": 0.75}
    assert parse_filename_parameters("x_amp0.75.wav", names) == {"amp": 0.75}


def test_missing_parameter_is_absent():
    assert parse_filename_parameters("nsynth_p64.00.wav", ["p", "a"]) == {"p": 64.0}


def test_a_parameter_written_twice_is_refused_naming_the_file():
    with pytest.raises(ValueError, match=r"x_p64_p76.wav gives p 2 times \(64, 76\)"):
        parse_filename_parameters("x_p64_p76.wav", ["p"])


NAMES = st.text(alphabet="abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ", min_size=1, max_size=6)


@settings(deadline=None)
@given(st.text(max_size=40), st.lists(NAMES, min_size=1, max_size=4, unique=True))
def test_any_file_name_parses_to_finite_values_of_the_names_or_is_refused_naming_it(filename, names):
    try:
        found = parse_filename_parameters(filename, names)
    except ValueError as error:
        assert filename in str(error)
        return
    assert set(found) <= set(names) and all(math.isfinite(v) and abs(v) <= FLOAT32_MAX for v in found.values())


def test_a_value_beyond_float32_in_a_file_name_is_refused_naming_the_file():
    with pytest.raises(ValueError, match=r"x_p9{20}.*wav gives p: '9+' is beyond float32's range"):
        parse_filename_parameters("x_p" + "9" * 200 + ".wav", ["p"])


@settings(deadline=None)
@given(st.dictionaries(NAMES, st.floats(-1e6, 1e6).map(lambda v: round(v, 3)), min_size=1, max_size=4),
       st.sampled_from(["nsynth", "tone", ""]))
def test_names_written_once_parse_to_exactly_their_values(values, prefix):
    filename = prefix + "".join(f"_{name}{value:.3f}" for name, value in values.items()) + ".wav"
    assert parse_filename_parameters(filename, list(values)) == pytest.approx(values, abs=1e-3)


def test_values_map_linearly_from_their_range():
    mapped = normalize_parameters(np.array([[64.0, 0.5], [76.0, 0.0], [70.0, 1.0]]), {"p": (64, 76), "a": (0, 1)})
    assert np.allclose(mapped, [[0, 0.5], [1, 0], [0.5, 1]])


def test_equal_min_and_max_names_the_parameter():
    with pytest.raises(ValueError, match="'p'"):
        AudioDatasetConfig(parameter_specs={"p": (64, 64)})


def _dataset_and_warnings(folder: Path) -> tuple[MuLawAudioDataset, list[warnings.WarningMessage]]:
    """Return the dataset of `folder` and every warning its loading gave."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        return _dataset(folder), caught


def _copy_files(source: Path, folder: Path) -> None:
    for path in source.iterdir():
        (folder / path.name).write_bytes(path.read_bytes())


def _dataset(folder, **overrides) -> MuLawAudioDataset:
    settings = dict(data_dir=str(folder), sequence_length=32, parameter_specs=TINY_SPECS, add_noise=False)
    return MuLawAudioDataset(AudioDatasetConfig(**{**settings, **overrides}))


def test_item_shapes_and_parameter_columns(tiny_data_dir):
    dataset = _dataset(tiny_data_dir)
    inputs, targets = dataset[0]
    assert inputs.shape == (32, 4) and targets.shape == (32, 1)
    # first file in sorted order: instID 1, a 0.3, p 64 -> mapped (0, 0.3, 0)
    assert torch.allclose(inputs[:, 1:], torch.tensor([0.0, 0.3, 0.0]).expand(32, 3))


def test_target_is_the_mu_law_of_the_next_clean_sample(tiny_data_dir):
    dataset = _dataset(tiny_data_dir)
    audio, _ = sf.read(dataset.files[0], dtype="float32")
    index = 100
    inputs, targets = dataset[index]
    expected = mu_law_encode(audio[index:index + 33])
    assert torch.equal(targets[:, 0], torch.from_numpy(expected[1:]))
    assert torch.allclose(inputs[:, 0], torch.from_numpy(expected[:-1]).float() / 255)


def test_windows_cover_every_file_without_crossing_files(tiny_data_dir):
    dataset = _dataset(tiny_data_dir)
    per_file = 4000 - 32
    assert len(dataset) == 8 * per_file
    last_of_first, first_of_second = dataset[per_file - 1], dataset[per_file]
    assert last_of_first[0][0, 1] == 0.0 and first_of_second[0][0, 1] == 0.0  # still instID 1
    assert last_of_first[0][0, 2] != first_of_second[0][0, 2]  # but the amplitude changed: a new file


def test_noise_goes_on_the_audio_input_only(tiny_data_dir):
    clean = _dataset(tiny_data_dir)
    noisy = _dataset(tiny_data_dir, add_noise=True, noise_weight=0.1)
    generator_a, generator_b = torch.Generator().manual_seed(3), torch.Generator().manual_seed(3)
    clean_in, clean_target = clean.sample_batch(16, generator_a)
    noisy_in, noisy_target = noisy.sample_batch(16, generator_b)
    assert torch.equal(clean_target, noisy_target)
    assert torch.equal(clean_in[..., 1:], noisy_in[..., 1:])
    difference = noisy_in[..., 0] - clean_in[..., 0]
    assert 0 < difference.abs().max() <= 0.05 + 1e-6


def test_batch_sampler_matches_indexed_items(tiny_data_dir):
    dataset = _dataset(tiny_data_dir)
    inputs, targets = dataset.sample_batch(8, torch.Generator().manual_seed(0))
    index = torch.randint(len(dataset), (8,), generator=torch.Generator().manual_seed(0))
    for row, i in enumerate(index.tolist()):
        item_in, item_target = dataset[i]
        assert torch.equal(inputs[row], item_in) and torch.equal(targets[row], item_target)


def test_memory_is_one_byte_per_sample_plus_small_tables(tiny_data_dir):
    dataset = _dataset(tiny_data_dir)
    assert dataset.nbytes() < 8 * 4000 + 1000


def test_multichannel_is_mixed_and_other_rates_are_resampled(tmp_path):
    t = np.arange(8000) / 8000
    stereo = np.stack([np.sin(2 * np.pi * 200 * t), np.zeros_like(t)], axis=1) * 0.5
    sf.write(tmp_path / "s_instID1_a1_p70.wav", stereo, 8000)
    dataset = _dataset(tmp_path)
    assert len(dataset.codes) == 16000  # one second at 16 kHz
    peak = np.abs(mu_law_decode(dataset.codes.numpy())).max()
    assert peak == pytest.approx(0.25, rel=0.03)  # the mono mix halves the left channel


def test_files_lacking_a_parameter_are_skipped_with_one_warning(tiny_data_dir, tmp_path):
    _copy_files(tiny_data_dir, tmp_path)
    write_tone(tmp_path / "stray_p70.00.wav", 70, 0.5, bright=False)
    write_tone(tmp_path / "other_instID1_p70.00.wav", 70, 0.5, bright=False)
    dataset, caught = _dataset_and_warnings(tmp_path)
    assert len(dataset.files) == 8
    messages = [str(w.message) for w in caught]
    assert len(messages) == 1 and "skipped 2 of 10" in messages[0]
    assert "stray_p70.00.wav" in messages[0] and "other_instID1_p70.00.wav" in messages[0]


def test_files_giving_a_parameter_twice_are_skipped_with_a_warning_naming_them(tiny_data_dir, tmp_path):
    _copy_files(tiny_data_dir, tmp_path)
    write_tone(tmp_path / "x_instID1_a0.5_p64_p76.wav", 70, 0.5, bright=False)
    with pytest.warns(UserWarning, match=r"skipped 1 of 9 .* cannot be read: x_instID1_a0.5_p64_p76.wav gives p 2 times"):
        dataset = _dataset(tmp_path)
    assert len(dataset.files) == 8


def test_values_outside_the_declared_range_are_trained_with_one_warning_naming_them(tiny_data_dir, tmp_path):
    _copy_files(tiny_data_dir, tmp_path)
    write_tone(tmp_path / "x_instID1_a0.5_p90.wav", 90, 0.5, bright=False)
    write_tone(tmp_path / "x_instID3_a0.5_p64.wav", 64, 0.5, bright=False)
    dataset, caught = _dataset_and_warnings(tmp_path)
    assert len(dataset.files) == 10 and len(caught) == 1
    message = str(caught[0].message)
    assert "x_instID1_a0.5_p90.wav (p=90, range 64 to 76)" in message
    assert "x_instID3_a0.5_p64.wav (instID=3, range 1 to 2)" in message


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_a_wav_holding_nan_or_infinity_is_refused_by_name(tiny_data_dir, tmp_path, bad):
    _copy_files(tiny_data_dir, tmp_path)
    samples = np.zeros(4000, np.float32)
    samples[1234] = bad
    sf.write(tmp_path / "broken_instID1_a0.5_p64.wav", samples, 16000, subtype="FLOAT")
    with pytest.raises(ValueError, match=r"broken_instID1_a0.5_p64.wav holds 1 samples that are NaN or infinite "
                                         r"\(the first at sample 1234\)"):
        _dataset(tmp_path)


def test_excluded_values_leave_exactly_those_files_out(tiny_data_dir):
    dataset = _dataset(tiny_data_dir, exclude={"p": [76]})
    assert len(dataset.files) == 4 and all("_p64.00" in f.name for f in dataset.files)


def test_an_excluded_value_that_no_file_has_is_refused_with_the_values_there(tiny_data_dir):
    with pytest.raises(ValueError, match=r"exclude p=67.5 matches no file .* \[64.0, 76.0\]"):
        _dataset(tiny_data_dir, exclude={"p": [67.5]})


@pytest.mark.parametrize("make_folder, message", [
    (lambda d: None, "no .wav files"),
    (lambda d: write_tone(d / "tone_x1.wav", 64, 0.5, False), "no usable file"),
    (lambda d: (d / "nsynth_instID1_a1_p64.wav").write_bytes(b"not audio"), "cannot read"),
    (lambda d: sf.write(d / "nsynth_instID1_a1_p64.wav", np.zeros(0), 16000), "no audio samples"),
    (lambda d: sf.write(d / "nsynth_instID1_a1_p64.wav", np.zeros(8000), 1),
     "has a sample rate of 1 Hz, more than 16 times away from sample_rate 16000"),
    (lambda d: os.mkfifo(d / "nsynth_instID1_a1_p64.wav"), "is not a regular file"),
    (lambda d: (os.symlink(d / "x_p64.wav", d / "y_p64.wav"), os.symlink(d / "y_p64.wav", d / "x_p64.wav")),
     r"cannot read .*_p64.wav \(Too many levels of symbolic links\)"),
])
@pytest.mark.filterwarnings("ignore:skipped")
def test_bad_folders_give_a_clear_error_naming_the_path(tmp_path, make_folder, message):
    make_folder(tmp_path)
    before = sorted((p.name, p.lstat().st_mtime_ns) for p in tmp_path.iterdir())
    error = exception_within(lambda: _dataset(tmp_path))  # a FIFO once blocked for ever
    assert isinstance(error, (ValueError, FileNotFoundError)) and re.search(message, str(error))
    assert str(tmp_path) in str(error)
    assert sorted((p.name, p.lstat().st_mtime_ns) for p in tmp_path.iterdir()) == before


def test_missing_folder_says_how_to_build_the_default_set(tmp_path):
    with pytest.raises(FileNotFoundError, match="render_dataset"):
        _dataset(tmp_path / "nowhere")
