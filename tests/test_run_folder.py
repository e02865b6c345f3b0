import json
import os
import stat
import tempfile
from pathlib import Path

import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from audioDataLoader.audio_dataset import AudioDatasetConfig
from model.gru_audio_model import GRUAudioConfig
from tests.harness.run_folders import make_run
from utils.run_folder import (
    CONFIG_NAME,
    FORMAT_VERSION,
    LAST_CHECKPOINT,
    load_checkpoint,
    load_model,
    read_config,
    remove_stale_temporaries,
    save_checkpoint,
    write_atomically,
)


def file_mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


@pytest.mark.parametrize("umask", [0o022, 0o002, 0o077])
def test_written_files_get_the_mode_an_ordinary_write_gets(tmp_path, umask):
    previous = os.umask(umask)
    try:
        write_atomically(tmp_path / "atomic.txt", lambda f: f.write(b"x"))
        (tmp_path / "plain.txt").write_bytes(b"x")
    finally:
        os.umask(previous)
    assert file_mode(tmp_path / "atomic.txt") == file_mode(tmp_path / "plain.txt") == 0o666 & ~umask


def test_a_run_folder_is_readable_by_the_group_under_a_shared_umask(tmp_path):
    previous = os.umask(0o002)
    try:
        run = make_run(tmp_path)
    finally:
        os.umask(previous)
    assert file_mode(run / CONFIG_NAME) == file_mode(run / LAST_CHECKPOINT) == 0o664


def test_a_failed_write_leaves_the_old_file_and_no_temporary(tmp_path):
    path = tmp_path / "config.json"
    path.write_text("old")

    def fail(f):
        f.write(b"half")
        raise OSError("disk full")

    with pytest.raises(OSError):
        write_atomically(path, fail)
    assert path.read_text() == "old" and list(tmp_path.iterdir()) == [path]


def test_temporaries_left_by_a_killed_write_are_removed(tmp_path):
    run = make_run(tmp_path)
    stale = [run / ".config.json.1a2b3c4d.tmp", run / "checkpoints" / ".last_checkpoint.pt.5e6f7a8b.tmp"]
    for path in stale:
        path.write_bytes(b"half a checkpoint")
    assert sorted(remove_stale_temporaries(run)) == sorted(stale)
    assert not any(path.exists() for path in stale) and (run / LAST_CHECKPOINT).exists()


def edit_config(run: Path, edit) -> None:
    config = json.loads((run / CONFIG_NAME).read_text())
    edit(config)
    (run / CONFIG_NAME).write_text(json.dumps(config))


@pytest.mark.parametrize("edit, message", [
    (lambda c: c.pop("model"), "lacks its 'model' section"),
    (lambda c: c["data"].pop("parameter_specs"), r"section 'data' lacks \['parameter_specs'\]"),
    (lambda c: c["model"].update(hiden_size=4), r"has unknown \['hiden_size'\]"),
    (lambda c: c["data"].update(sample_rate="16000"), "data.sample_rate = '16000' is not a whole number"),
    (lambda c: c["data"].update(parameter_specs={"p": [64]}), "data.parameter_specs"),
    (lambda c: c["data"].update(parameter_specs={"p": [64, float("nan")]}), "data.parameter_specs"),
    (lambda c: c["model"].update(cond_size=2), "model.cond_size = 2"),
    (lambda c: c["model"].update(hidden_size=0), "model.hidden_size = 0 must be at least 1"),
])
def test_a_broken_config_is_refused_by_name_and_never_filled_from_defaults(tmp_path, edit, message):
    run = make_run(tmp_path)
    edit_config(run, edit)
    with pytest.raises(ValueError, match=message) as error:
        read_config(run)
    assert str(run / CONFIG_NAME) in str(error.value)


def test_a_config_that_is_a_list_or_not_json_says_what_can_be_done(tmp_path):
    run = make_run(tmp_path)
    (run / CONFIG_NAME).write_text("[1, 2]")
    with pytest.raises(ValueError, match="holds a JSON list, not an object") as error:
        read_config(run)
    assert "restore it from the run's checkpoint" not in str(error.value)
    (run / CONFIG_NAME).write_text('{"format_version": 1, "data": ')
    with pytest.raises(ValueError, match="not valid JSON.*data settings .* live only in config.json"):
        read_config(run)


@pytest.mark.parametrize("key, value", [("hidden_size", 16), ("numtokens", 128), ("num_layers", 2)])
def test_a_config_that_disagrees_with_its_checkpoint_is_refused_naming_the_setting(tmp_path, key, value):
    run = make_run(tmp_path)

    def edit(config):
        config["model"][key] = value
        config["data"]["numtokens"] = config["model"]["numtokens"]

    edit_config(run, edit)
    with pytest.raises(ValueError, match=f"other model settings .*{key} .* there, {value} in config.json"):
        load_model(run, "cpu")


def test_a_checkpoint_whose_weights_do_not_fit_its_settings_is_refused(tmp_path):
    run = make_run(tmp_path)
    checkpoint = load_checkpoint(run / LAST_CHECKPOINT)
    checkpoint["model"]["output.bias"] = torch.zeros(3)
    save_checkpoint(run / LAST_CHECKPOINT, checkpoint)
    with pytest.raises(ValueError, match="does not fit the model"):
        load_model(run, "cpu")


JSON = st.recursive(st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=5),
                    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner, max_size=3),
                    max_leaves=8)


def valid_config() -> dict:
    from dataclasses import asdict

    from utils.training_config import TrainConfig

    return {"format_version": FORMAT_VERSION, "data": asdict(AudioDatasetConfig()), "model": asdict(GRUAudioConfig()),
            "train": asdict(TrainConfig())}


@st.composite
def mutated_configs(draw) -> dict:
    """A valid config with a few settings deleted, replaced by any JSON value, or added."""
    config = json.loads(json.dumps(valid_config()))
    for _ in range(draw(st.integers(1, 3))):
        section = config[draw(st.sampled_from(["data", "model", "train"]))]
        key = draw(st.sampled_from(sorted(section)) | st.text(max_size=5))
        if draw(st.booleans()):
            section.pop(key, None)
        else:
            section[key] = draw(JSON)
    return config


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.one_of(JSON, mutated_configs()))
def test_any_config_json_reads_correctly_or_is_refused_with_a_clear_error(config):
    with tempfile.TemporaryDirectory() as folder:
        (Path(folder) / CONFIG_NAME).write_text(json.dumps(config))
        try:
            loaded = read_config(folder)
        except ValueError as error:
            assert str(Path(folder) / CONFIG_NAME) in str(error)
            return
    assert isinstance(loaded["data"], AudioDatasetConfig) and isinstance(loaded["model"], GRUAudioConfig)
    for name in ("data", "model"):
        assert json.loads(json.dumps(vars(loaded[name]))) == config[name]


def test_a_version_1_run_loads_with_the_recipe_it_was_trained_with(tmp_path):
    run = make_run(tmp_path)
    config = json.loads((run / CONFIG_NAME).read_text())
    for section, added in {"data": ["pitch_parameter", "pitch_shift", "labels"], "model": ["cond_every_layer"],
                           "train": ["lr_schedule", "warmup", "lr_final", "grad_clip"]}.items():
        for key in added:
            del config[section][key]
    (run / CONFIG_NAME).write_text(json.dumps({**config, "format_version": 1}))
    checkpoint = torch.load(run / LAST_CHECKPOINT, weights_only=True)
    del checkpoint["model_config"]["cond_every_layer"]
    torch.save({**checkpoint, "format_version": 1}, run / LAST_CHECKPOINT)
    model, loaded = load_model(run, "cpu")
    assert not model.config.cond_every_layer and loaded["data"].pitch_shift == 0
    assert (loaded["train"]["lr_schedule"], loaded["train"]["grad_clip"]) == ("constant", 0.0)
    del config["data"]["sample_rate"]  # a setting version 1 had is still required
    (run / CONFIG_NAME).write_text(json.dumps({**config, "format_version": 1}))
    with pytest.raises(ValueError, match="sample_rate"):
        read_config(run)


def test_a_version_2_run_loads_without_a_reference_or_cold_windows(tmp_path):
    run = make_run(tmp_path)
    config = json.loads((run / CONFIG_NAME).read_text())
    for key in ("cold_start", "reference_harmonics", "pitch_units"):
        del config["data"][key]
    (run / CONFIG_NAME).write_text(json.dumps({**config, "format_version": 2}))
    _, loaded = load_model(run, "cpu")
    data = loaded["data"]
    assert (data.cold_start, data.reference_harmonics, data.pitch_units) == (0.0, 0, "midi")


def test_cuda_on_a_machine_without_it_is_said_so_not_taken_for_a_corrupted_checkpoint(tmp_path, monkeypatch):
    from inference import main as inference_command_line

    run = make_run(tmp_path)
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)  # as on a machine without CUDA
    with pytest.raises(ValueError, match="^--device cuda: CUDA is not available here"):
        load_model(run, "cuda")
    with pytest.raises(SystemExit, match="^error: --device cuda:0: CUDA is not available here"):
        inference_command_line(["--run_directory", str(run), "--device", "cuda:0", "--param", "instID=1",
                                "--param", "a=0.5", "--param", "p=64", "--output_wav_path", str(tmp_path / "x.wav")])
