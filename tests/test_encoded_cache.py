import json
import os
import shutil
import signal
import subprocess
import sys
import textwrap
import warnings

import numpy as np
import pytest
import torch

import audioDataLoader.audio_dataset as audio_dataset
import audioDataLoader.encoded_cache as encoded_cache
from audioDataLoader.audio_dataset import AudioDatasetConfig, MuLawAudioDataset, read_mono
from audioDataLoader.encoded_cache import CACHE_FOLDER
from audioDataLoader.mulaw import mu_law_encode
from tests.harness.run_folders import TINY_SPECS, write_tone


@pytest.fixture
def data_dir(tiny_data_dir, tmp_path):
    """A copy of the tiny data set that a test may change."""
    return shutil.copytree(tiny_data_dir, tmp_path / "data", ignore=shutil.ignore_patterns(".*"))


@pytest.fixture
def reads(monkeypatch):
    """The files read by the dataset, in order."""
    paths = []

    def counting_read(path, sample_rate):
        paths.append(path)
        return read_mono(path, sample_rate)

    monkeypatch.setattr(audio_dataset, "read_mono", counting_read)
    return paths


def config(folder, **overrides) -> AudioDatasetConfig:
    settings = dict(data_dir=str(folder), sequence_length=32, parameter_specs=TINY_SPECS, add_noise=False)
    return AudioDatasetConfig(**{**settings, **overrides})


def whole_corpus_codes(files, numtokens=256) -> np.ndarray:
    """The codes as the dataset made them before the cache: every file read, joined, then encoded at once."""
    return mu_law_encode(np.concatenate([read_mono(path, 16000) for path in files]), numtokens)


def cache_files(data_dir):
    return sorted(p.name for p in (data_dir.parent / CACHE_FOLDER).iterdir())


@pytest.mark.parametrize("numtokens", [256, 1024])
def test_cache_equals_the_codes_of_the_whole_corpus_encoded_at_once(data_dir, numtokens):
    built = MuLawAudioDataset(config(data_dir, numtokens=numtokens))
    mapped = MuLawAudioDataset(config(data_dir, numtokens=numtokens))
    expected = whole_corpus_codes(built.files, numtokens)
    assert np.array_equal(built.codes.numpy(), expected) and np.array_equal(mapped.codes.numpy(), expected)
    assert mapped.codes.dtype == (torch.uint8 if numtokens == 256 else torch.uint16)


def test_raw_sample_input_is_cached_as_the_float_samples(data_dir):
    MuLawAudioDataset(config(data_dir, encode=False))
    dataset = MuLawAudioDataset(config(data_dir, encode=False))
    expected = np.concatenate([read_mono(path, 16000) for path in dataset.files])
    assert torch.equal(dataset.audio, torch.from_numpy(expected))


def test_a_second_start_maps_the_cache_without_reading_any_file(data_dir, reads):
    MuLawAudioDataset(config(data_dir))
    assert len(reads) == 8
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # torch's warning about a non-writable array included
        dataset = MuLawAudioDataset(config(data_dir))
    assert len(reads) == 8 and np.array_equal(dataset.codes.numpy(), whole_corpus_codes(dataset.files))


def change_one_file(data_dir):
    path = sorted(data_dir.glob("*.wav"))[0]
    size = path.stat().st_size
    write_tone(path, 70, 0.5, bright=True)
    assert path.stat().st_size == size  # the same size: only the modification time tells


def add_a_file(data_dir):
    write_tone(data_dir / "nsynth_instID01.00_p70.00_a00.50.wav", 70, 0.5, bright=False)


def remove_a_file(data_dir):
    sorted(data_dir.glob("*.wav"))[3].unlink()


@pytest.mark.parametrize("change", [change_one_file, add_a_file, remove_a_file])
def test_a_changed_added_or_removed_file_triggers_a_rebuild(data_dir, reads, change):
    MuLawAudioDataset(config(data_dir))
    old_cache = cache_files(data_dir)
    change(data_dir)
    reads.clear()
    dataset = MuLawAudioDataset(config(data_dir))
    assert len(reads) == len(dataset.files) and reads == dataset.files
    assert np.array_equal(dataset.codes.numpy(), whole_corpus_codes(dataset.files))
    assert len(cache_files(data_dir)) == len(old_cache) and cache_files(data_dir) != old_cache  # replaced, not added


def test_other_settings_keep_their_own_cache(data_dir, reads):
    MuLawAudioDataset(config(data_dir))
    MuLawAudioDataset(config(data_dir, exclude={"p": [76]}))
    MuLawAudioDataset(config(data_dir, sample_rate=8000))
    reads.clear()
    for settings in ({}, {"exclude": {"p": [76]}}, {"sample_rate": 8000}):
        dataset = MuLawAudioDataset(config(data_dir, **settings))
        assert len(dataset.codes) == len(dataset.files) * (2000 if settings.get("sample_rate") else 4000)
    assert reads == []


def test_a_build_killed_part_way_leaves_nothing_taken_as_a_cache(data_dir, reads):
    script = textwrap.dedent(f"""
        import time
        import audioDataLoader.audio_dataset as audio_dataset
        read, calls = audio_dataset.read_mono, []
        def slow_read(path, sample_rate):
            calls.append(path)
            if len(calls) == 4:
                print("half way", flush=True)
                time.sleep(120)
            return read(path, sample_rate)
        audio_dataset.read_mono = slow_read
        audio_dataset.MuLawAudioDataset(audio_dataset.AudioDatasetConfig(
            data_dir={str(data_dir)!r}, parameter_specs={TINY_SPECS!r}, sequence_length=32))
    """)
    process = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True)
    assert process.stdout.readline() == "half way\n"
    assert any(name.endswith(".tmp") for name in cache_files(data_dir))  # three files are written already
    os.kill(process.pid, signal.SIGKILL)
    process.wait()
    dataset = MuLawAudioDataset(config(data_dir))
    assert len(reads) == 8
    assert np.array_equal(dataset.codes.numpy(), whole_corpus_codes(dataset.files))
    assert not any(name.endswith(".tmp") for name in cache_files(data_dir))


def test_data_written_without_its_index_is_not_taken_and_is_removed(data_dir, monkeypatch):
    def crash(*args):
        raise OSError("disk full")

    monkeypatch.setattr("audioDataLoader.encoded_cache.write_atomically", crash)
    with pytest.warns(UserWarning, match=r"cannot write the encoded cache .*\(disk full\)"):
        dataset = MuLawAudioDataset(config(data_dir))  # still trains, from memory
    assert np.array_equal(dataset.codes.numpy(), whole_corpus_codes(dataset.files))
    assert [name for name in cache_files(data_dir) if not name.endswith(".lock")] == []


def test_a_truncated_data_file_is_rebuilt(data_dir, reads):
    MuLawAudioDataset(config(data_dir))
    [codes_file] = (data_dir.parent / CACHE_FOLDER).glob("*.codes")
    codes_file.write_bytes(codes_file.read_bytes()[:1000])
    reads.clear()
    dataset = MuLawAudioDataset(config(data_dir))
    assert len(reads) == 8 and np.array_equal(dataset.codes.numpy(), whole_corpus_codes(dataset.files))


@pytest.mark.parametrize("overrides", [{}, {"encode": False}, {"pitch_parameter": "p", "pitch_shift": 1.0},
                                       {"encode": False, "pitch_parameter": "p", "pitch_shift": 1.0}])
def test_the_same_seed_draws_the_same_batches_with_and_without_the_cache(data_dir, overrides):
    settings = config(data_dir, add_noise=True, **overrides)
    in_memory = MuLawAudioDataset(settings, cache=False)
    MuLawAudioDataset(settings)
    mapped = MuLawAudioDataset(settings)
    for seed in range(3):
        expected = in_memory.sample_batch(16, torch.Generator().manual_seed(seed))
        got = mapped.sample_batch(16, torch.Generator().manual_seed(seed))
        assert torch.equal(expected[0], got[0]) and torch.equal(expected[1], got[1])


def test_an_unwritable_cache_folder_falls_back_to_memory_with_a_warning(data_dir):
    (data_dir.parent / CACHE_FOLDER).write_text("a file where the cache folder would go")
    with pytest.warns(UserWarning, match=f"cannot write the encoded cache in {data_dir.parent / CACHE_FOLDER}"):
        dataset = MuLawAudioDataset(config(data_dir))
    assert np.array_equal(dataset.codes.numpy(), whole_corpus_codes(dataset.files))


def test_the_data_folder_itself_is_left_as_it_was(data_dir):
    before = sorted((p.name, p.stat().st_mtime_ns) for p in data_dir.iterdir())
    MuLawAudioDataset(config(data_dir))
    assert sorted((p.name, p.stat().st_mtime_ns) for p in data_dir.iterdir()) == before


def test_processes_starting_together_encode_the_folder_once(data_dir):
    script = textwrap.dedent(f"""
        import time
        import audioDataLoader.audio_dataset as audio_dataset
        read, calls = audio_dataset.read_mono, []
        def slow_read(path, sample_rate):
            calls.append(path)
            time.sleep(0.5)  # the build outlasts the other process's start
            return read(path, sample_rate)
        audio_dataset.read_mono = slow_read
        dataset = audio_dataset.MuLawAudioDataset(audio_dataset.AudioDatasetConfig(
            data_dir={str(data_dir)!r}, parameter_specs={TINY_SPECS!r}, sequence_length=32))
        print(len(calls), int(dataset.codes.sum()))
    """)
    ranks = [subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True) for _ in range(2)]
    outputs = sorted(rank.communicate(timeout=120)[0].split() for rank in ranks)
    assert [reads for reads, _ in outputs] == ["0", "8"] and outputs[0][1] == outputs[1][1]


def test_codes_of_more_than_32768_classes_keep_their_value(data_dir):
    settings = config(data_dir, numtokens=40_000)
    MuLawAudioDataset(settings)
    mapped = MuLawAudioDataset(settings)
    expected = whole_corpus_codes(mapped.files, 40_000)
    assert expected.max() > 32_767 and np.array_equal(mapped.codes.numpy(), expected)
    _, targets = mapped.sample_batch(64, torch.Generator().manual_seed(0))
    assert targets.min() >= 0 and targets.max() < 40_000


def test_flipped_bytes_of_the_same_size_and_time_are_found_and_rebuilt(data_dir, reads):
    MuLawAudioDataset(config(data_dir))
    [codes_file] = (data_dir.parent / CACHE_FOLDER).glob("*.codes")
    info = codes_file.stat()
    codes = bytearray(codes_file.read_bytes())
    codes[100] ^= 0xFF
    codes_file.write_bytes(codes)
    os.utime(codes_file, ns=(info.st_atime_ns, info.st_mtime_ns))
    reads.clear()
    with pytest.warns(UserWarning, match=r"encoded cache .* \(\S+\.codes does not match its checksum\); encoding"):
        dataset = MuLawAudioDataset(config(data_dir))
    assert len(reads) == 8 and np.array_equal(dataset.codes.numpy(), whole_corpus_codes(dataset.files))


def test_an_untouched_cache_is_not_read_to_check_it(data_dir, monkeypatch):
    MuLawAudioDataset(config(data_dir))
    checked = []
    monkeypatch.setattr(encoded_cache, "_checksum", lambda array: checked.append(array) or "")
    MuLawAudioDataset(config(data_dir))  # the cache of a corpus larger than memory is mapped, not read through
    assert checked == []


def tamper_index(data_dir, edit):
    [index_path] = (data_dir.parent / CACHE_FOLDER).glob("*.json")
    index = json.loads(index_path.read_text())
    edit(index)
    index_path.write_text(json.dumps(index))


@pytest.mark.parametrize("edit, problem", [
    (lambda index: index["data"].update(codes="../../outside.codes"), "names data files other than its own"),
    (lambda index: index.pop("checksums"), "checksums are missing"),
    (lambda index: index["lengths"].__setitem__(0, -4000), "file lengths are not"),
    (lambda index: index.update(extra=[[[]]] * 2, again=1), None),
])
def test_a_tampered_index_is_never_trusted(data_dir, reads, edit, problem):
    MuLawAudioDataset(config(data_dir))
    outside = data_dir.parent.parent / "outside.codes"
    outside.write_bytes(b"\0" * 32_000)
    tamper_index(data_dir, edit)
    reads.clear()
    if problem is None:  # what the index does not use may be there
        dataset = MuLawAudioDataset(config(data_dir))
        assert reads == []
    else:
        with pytest.warns(UserWarning, match=f"encoded cache .*{problem}"):
            dataset = MuLawAudioDataset(config(data_dir))
        assert len(reads) == 8
    assert np.array_equal(dataset.codes.numpy(), whole_corpus_codes(dataset.files))


def test_an_index_nested_too_deep_or_with_a_duplicated_key_is_rebuilt(data_dir, reads):
    MuLawAudioDataset(config(data_dir))
    [index_path] = (data_dir.parent / CACHE_FOLDER).glob("*.json")
    for text, problem in (("[" * 100_000 + "]" * 100_000, "nests its brackets deeper"),
                          ('{"key": 1, "key": 2}', "the key 'key' appears twice")):
        index_path.write_text(text)
        with pytest.warns(UserWarning, match=f"encoded cache .*{problem}"):
            dataset = MuLawAudioDataset(config(data_dir))
        assert np.array_equal(dataset.codes.numpy(), whole_corpus_codes(dataset.files))
