import json
import warnings

import numpy as np
import pytest

from audioDataLoader.audio_dataset import AudioDatasetConfig, MuLawAudioDataset
from audioDataLoader.labels import read_labels
from tests.harness.run_folders import TINY_SPECS, write_tone
from train import _parse_args, train
from utils.run_folder import read_config

NSYNTH_SPECS = {"instrument_family": (0.0, 10.0), "pitch": (21.0, 108.0), "velocity": (0.0, 127.0)}


@pytest.fixture
def plain_folder(tmp_path):
    """Four tones whose names carry no parameters."""
    folder = tmp_path / "plain"
    folder.mkdir()
    for i, midi in enumerate((64, 76, 64, 76)):
        write_tone(folder / f"take{i}.wav", midi, 0.5, bright=i >= 2)
    return folder


def write_csv(path, text):
    path.write_text(text)
    return path


def dataset(folder, labels, specs=TINY_SPECS, **overrides):
    return MuLawAudioDataset(AudioDatasetConfig(data_dir=str(folder), labels=str(labels), parameter_specs=specs,
                                                sequence_length=32, add_noise=False, **overrides))


def test_csv_gives_each_file_its_values_whatever_its_name(plain_folder, tmp_path):
    labels = write_csv(tmp_path / "labels.csv", "p,file,a,instID,notes\n"  # any column order, extra columns
                       "64,take0.wav,0.5,1,first\n76,take1.wav,0.25,1,\n64,take2,0.5,2,\n76,take3.wav,1,2,\n")
    data = dataset(plain_folder, labels)
    assert [f.name for f in data.files] == ["take0.wav", "take1.wav", "take2.wav", "take3.wav"]
    assert np.array_equal(data.raw_parameters, [[1, 0.5, 64], [1, 0.25, 76], [2, 0.5, 64], [2, 1, 76]])
    inputs, _ = data[4000 - 32]  # the first window of take1.wav
    assert np.allclose(inputs[0, 1:].numpy(), [0, 0.25, 1])


def test_csv_written_by_a_spreadsheet_with_a_byte_order_mark_and_spaces(plain_folder, tmp_path):
    labels = tmp_path / "labels.csv"
    labels.write_bytes("\ufefffile, instID, a, p\n".encode() + b"".join(
        f"take{i}.wav, 1, 0.5 , 64\n".encode() for i in range(4)))
    assert dataset(plain_folder, labels).raw_parameters.tolist() == [[1, 0.5, 64]] * 4


def write_nsynth(folder, tmp_path):
    """NSynth's layout: audio/<note>.wav and examples.json keyed by note, with text and list fields beside numbers."""
    entries = {}
    for family, pitch, velocity in [(2, 64, 25), (2, 76, 127), (9, 64, 75)]:
        note = f"{['bass', 'brass', 'keyboard', 'reed'][family % 4]}_acoustic_{family:03d}-{pitch:03d}-{velocity:03d}"
        write_tone(folder / f"{note}.wav", pitch, velocity / 127, bright=family == 9)
        entries[note] = {"note": 1000 + pitch, "sample_rate": 16000, "pitch": pitch, "velocity": velocity,
                         "instrument_family": family, "instrument_family_str": "brass", "instrument": 7,
                         "instrument_source": 0, "note_str": note, "qualities": [0, 1, 0],
                         "qualities_str": ["bright"]}
    path = tmp_path / "examples.json"
    path.write_text(json.dumps(entries))
    return path, entries


def test_nsynth_examples_json_gives_pitch_velocity_and_family(tmp_path):
    audio = tmp_path / "nsynth-valid" / "audio"
    audio.mkdir(parents=True)
    labels, entries = write_nsynth(audio, tmp_path)
    data = dataset(audio, labels, NSYNTH_SPECS)
    expected = {f"{note}.wav": [e["instrument_family"], e["pitch"], e["velocity"]] for note, e in entries.items()}
    assert {f.name: row.tolist() for f, row in zip(data.files, data.raw_parameters)} == expected


def test_a_non_numeric_value_names_the_table_the_row_and_the_column(plain_folder, tmp_path):
    labels = write_csv(tmp_path / "labels.csv", "file,instID,a,p\ntake0.wav,1,loud,64\n")
    with pytest.raises(ValueError, match=r"labels.csv, line 2 \(take0.wav\): a = 'loud' is not a finite number"):
        dataset(plain_folder, labels)


def test_a_text_field_of_examples_json_is_refused_by_name(tmp_path):
    labels, _ = write_nsynth(tmp_path, tmp_path)
    with pytest.raises(ValueError, match=r"examples.json, entry 'keyboard_acoustic_002-064-025': instrument_family_str = 'brass'"):
        dataset(tmp_path, labels, {"instrument_family_str": (0, 10)})


@pytest.mark.parametrize("text, message", [
    ("name,instID,a,p\ntake0.wav,1,1,64\n", r"no column \['file'\]; its header is \['name', 'instID', 'a', 'p'\]"),
    ("file,instID,p\ntake0.wav,1,64\n", r"no column \['a'\]"),
    ("file,instID,a,p\ntake0.wav,1,1,64\ntake0,2,1,64\n", "line 3: take0.wav already has a row .line 2."),
    ("file,instID,a,p\ntake0.wav,1,nan,64\n", "a = 'nan' is not a finite number"),
    ("instID,a,p,file\n1,1,64\n", "line 2: the file column is empty"),
    ("file,instID,a,p\ntake0.wav,1,1,1e300\n", "p = '1e300' is not a finite number within float32's range"),
    ("file,instID,a,p\ntake0.wav,1,1," + "6" * 131_073 + "\n", "line 2 holds 131,088 characters"),
    ("file,instID,a,p\ntake0.wav,1,1,64\ncaf\xe9.wav,1,1,64\n".encode("latin-1"), "line 3 is not UTF-8"),
])
def test_a_malformed_csv_gives_a_clear_error_naming_the_table(plain_folder, tmp_path, text, message):
    path = tmp_path / "labels.csv"
    path.write_bytes(text if isinstance(text, bytes) else text.encode())
    with pytest.raises(ValueError, match=message) as error:
        dataset(plain_folder, path)
    assert str(path) in str(error.value)


@pytest.mark.parametrize("text, message", [
    ('{"x": {"pitch": 60}}', r"no entry of .* has the field\(s\) \['velocity'\]; its fields are \['pitch'\]"),
    ('[{"pitch": 60, "velocity": 1}]', "must hold one object"),
    ('{"x": {"pitch": 60, "velocity": 1}', "is not valid JSON"),
    ('{"x": {"pitch": 60, "velocity": 1}, "x.wav": {"pitch": 60, "velocity": 1}}', "x.wav has two entries"),
    ('{"x": {"pitch": 60, "velocity": 1}, "x": {"pitch": 61, "velocity": 1}}', "the key 'x' appears twice"),
    ('{"x": {"pitch": ' + "6" * 401 + ', "velocity": 1}}', r"\(401 digits\) is beyond 64 bits"),
    ('{"x": {"pitch": 1e39, "velocity": 1}}', "pitch = 1e.39 is not a finite number within float32's range"),
    ('{"x": ' + "[" * 100_000 + "]" * 100_000 + "}", "nests its brackets deeper"),
])
def test_a_malformed_json_table_gives_a_clear_error(tmp_path, text, message):
    path = tmp_path / "examples.json"
    path.write_text(text)
    with pytest.raises(ValueError, match=message):
        read_labels(path, ["pitch", "velocity"])


def test_a_missing_table_or_another_format_is_refused(plain_folder, tmp_path):
    with pytest.raises(FileNotFoundError, match="labels table .*nowhere.csv does not exist"):
        dataset(plain_folder, tmp_path / "nowhere.csv")
    with pytest.raises(ValueError, match=r"use a .csv"):
        dataset(plain_folder, write_csv(tmp_path / "labels.tsv", "file\tp\n"))


def test_files_without_a_complete_row_are_skipped_and_rows_without_a_file_are_named(plain_folder, tmp_path):
    labels = write_csv(tmp_path / "labels.csv", "file,instID,a,p\ntake0.wav,1,1,64\ntake1.wav,1,,76\n"
                       "take2.wav,2,1,64\nlost.wav,2,1,76\n")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        data = dataset(plain_folder, labels)
    assert [f.name for f in data.files] == ["take0.wav", "take2.wav"]
    messages = sorted(str(w.message) for w in caught)
    assert len(messages) == 2
    assert "1 of 4 rows of" in messages[0] and "not in" in messages[0] and "lost.wav" in messages[0]
    assert messages[1].startswith("skipped 2 of 4 files") and "labels.csv (no row, or an empty cell)" in messages[1]
    assert "take1.wav" in messages[1] and "take3.wav" in messages[1]


def test_no_file_with_a_row_says_to_check_the_columns(plain_folder, tmp_path):
    labels = write_csv(tmp_path / "labels.csv", "file,instID,a,p\nother.wav,1,1,64\n")
    with pytest.raises(ValueError, match="no usable file .* Check parameter_specs against the columns of"):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            dataset(plain_folder, labels)


def test_a_changed_table_gives_its_new_values_never_the_cached_ones(plain_folder, tmp_path):
    labels = write_csv(tmp_path / "labels.csv", "file,instID,a,p\n" + "".join(
        f"take{i}.wav,1,0.5,64\n" for i in range(4)))
    dataset(plain_folder, labels)
    labels.write_text("file,instID,a,p\n" + "".join(f"take{i}.wav,2,0.5,76\n" for i in range(4)))
    assert dataset(plain_folder, labels).raw_parameters.tolist() == [[2, 0.5, 76]] * 4


def test_training_from_a_table_keeps_it_in_the_run_and_resume_uses_it(plain_folder, tmp_path, monkeypatch):
    write_csv(tmp_path / "labels.csv", "file,instID,a,p\n" + "".join(
        f"take{i}.wav,{1 + i // 2},0.5,{64 + 12 * (i % 2)}\n" for i in range(4)))
    monkeypatch.chdir(tmp_path)
    params = {"datadir": str(plain_folder), "labels": "labels.csv", "props": TINY_SPECS, "num_epochs": 1,
              "batches_per_epoch": 2, "batch_size": 4, "seqLen": 32, "savemodeldir": str(tmp_path / "output")}
    run_dir = train(params)
    assert read_config(run_dir)["data"].labels == str(tmp_path / "labels.csv")
    monkeypatch.chdir(plain_folder)  # the saved path is absolute: resume works from anywhere
    train({"resume": str(run_dir), "num_epochs": 2})
    assert read_config(run_dir)["data"].labels == str(tmp_path / "labels.csv")
    assert _parse_args(["--labels", "examples.json"])["labels"] == "examples.json"
