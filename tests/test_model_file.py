import json
import struct
from dataclasses import asdict

import numpy as np
import pytest
import torch

from audioDataLoader.audio_dataset import AudioDatasetConfig
from export import export
from export import main as export_command_line
from model.c_sampler import CModel
from model.gru_audio_model import RNN, GRUAudioConfig
from model.reference import PeriodicReference
from tests.harness.run_folders import TINY_SPECS, write_run_folder
from utils.run_folder import LAST_CHECKPOINT, load_model, save_checkpoint


def small_run_folder(folder, data_dir, cond_every_layer: bool = False):
    torch.manual_seed(0)
    data = AudioDatasetConfig(data_dir=str(data_dir), parameter_specs=TINY_SPECS, sample_rate=22050)
    model = RNN(GRUAudioConfig(hidden_size=16, num_layers=2, cond_every_layer=cond_every_layer)).eval()
    return write_run_folder(folder, model, data)


@pytest.fixture
def run_folder(tmp_path, tiny_data_dir):
    return small_run_folder(tmp_path / "run", tiny_data_dir)


@pytest.fixture(params=[False, True], ids=["original", "cond_every_layer"])
def both_kinds_of_run(request, tmp_path, tiny_data_dir):
    return small_run_folder(tmp_path / "run", tiny_data_dir, request.param)


def header_and_data(path):
    raw = path.read_bytes()
    size = struct.unpack("<Q", raw[:8])[0]
    return json.loads(raw[8:8 + size]), raw[8 + size:]


def write_with_header(path, header, data):
    text = json.dumps(header).encode()
    path.write_bytes(struct.pack("<Q", len(text)) + text + data)


def test_exported_file_gives_the_run_folders_logits_and_settings(both_kinds_of_run):
    run_folder = both_kinds_of_run
    path = export(run_folder)
    assert path == run_folder / "model.safetensors"
    from_run, run_config = load_model(run_folder, "cpu")
    from_file, file_config = load_model(path, "cpu")
    x = torch.rand(1, 300, 4, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        torch.testing.assert_close(from_file(x)[0], from_run(x)[0], rtol=0, atol=0)
    assert file_config["model"] == run_config["model"]
    assert file_config["data"].parameter_specs == TINY_SPECS and file_config["data"].sample_rate == 22050
    assert file_config["source"] == str((run_folder / LAST_CHECKPOINT).resolve())


def test_a_model_with_a_periodic_reference_keeps_it_in_its_file(tmp_path, tiny_data_dir):
    torch.manual_seed(0)
    data = AudioDatasetConfig(data_dir=str(tiny_data_dir), parameter_specs=TINY_SPECS, pitch_parameter="p",
                              reference_harmonics=3, pitch_units="midi")
    run = write_run_folder(tmp_path / "run", RNN(GRUAudioConfig(cond_size=data.conditioning_size)).eval(), data)
    path = export(run)
    from_file, config = load_model(path, "cpu")
    assert from_file.config.cond_size == 3 + 6
    assert PeriodicReference.of(config["data"]) == PeriodicReference.of(data)
    metadata = header_and_data(path)[0]["__metadata__"]
    assert (metadata["format_version"], metadata["reference.harmonics"], metadata["reference.pitch"],
            metadata["reference.units"]) == ("2", "3", "2", "midi")
    assert "parameter.3.name" not in metadata  # the reference's channels are no named parameters


def test_the_file_is_documented_safetensors_with_float32_weights_and_flat_metadata(both_kinds_of_run):
    header, data = header_and_data(export(both_kinds_of_run))
    metadata = header.pop("__metadata__")
    assert metadata["format"] == "rnncontrol" and metadata["format_version"] == "2"
    assert [metadata[f"parameter.{i}.name"] for i in range(3)] == list(TINY_SPECS)
    assert (metadata["parameter.2.min"], metadata["parameter.2.max"]) == ("64.0", "76.0")
    assert (metadata["hidden_size"], metadata["num_layers"], metadata["numtokens"]) == ("16", "2", "256")
    inputs = 16 + 3 * int(metadata["cond_every_layer"])  # [h_0, parameters] with cond_every_layer
    start = header["gru.1.weight_ih"]["data_offsets"][0]
    assert header["gru.1.weight_ih"] == {"dtype": "F32", "shape": [48, inputs],
                                         "data_offsets": [start, start + 48 * inputs * 4]}
    assert {entry["dtype"] for entry in header.values()} == {"F32"}
    assert sum(np.prod(entry["shape"]) for entry in header.values()) * 4 == len(data)


def test_export_refuses_a_checkpoint_that_does_not_match_its_config(run_folder):
    bigger = RNN(GRUAudioConfig(hidden_size=24, num_layers=2))
    save_checkpoint(run_folder / LAST_CHECKPOINT, {"model": bigger.state_dict(), "model_config": asdict(bigger.config)})
    with pytest.raises(ValueError, match=r"last_checkpoint.pt was trained with other model settings than .*config.json "
                                         r"gives \(hidden_size 24 there, 16"):
        export(run_folder)
    with pytest.raises(SystemExit) as stopped:
        export_command_line(["--run_directory", str(run_folder)])
    assert str(stopped.value).startswith("error: ") and len(str(stopped.value).splitlines()) == 1
    assert not (run_folder / "model.safetensors").exists()


def test_export_command_line_writes_the_named_file(run_folder, tmp_path, capsys):
    export_command_line(["--run_directory", str(run_folder), "-o", str(tmp_path / "m.safetensors")])
    assert f"wrote {tmp_path / 'm.safetensors'}" in capsys.readouterr().out
    assert load_model(tmp_path / "m.safetensors", "cpu")[1]["data"].parameter_specs == TINY_SPECS


def spoiled_files(path, tmp_path):
    """Yield (name, spoiled copy, the error both readers must give) for ways a model file goes wrong."""
    raw = path.read_bytes()
    header, data = header_and_data(path)
    truncated = tmp_path / "truncated.safetensors"
    truncated.write_bytes(raw[:len(raw) - 100])
    yield "truncated data", truncated, "truncated|incomplete|outside"
    short_header = tmp_path / "short_header.safetensors"
    short_header.write_bytes(raw[:50])
    yield "truncated header", short_header, "truncated|header|incomplete"
    garbage = tmp_path / "garbage.safetensors"
    garbage.write_bytes(raw[:8] + b"{" * (len(raw) - 8))
    yield "corrupt header", garbage, "header|JSON|malformed|expected"
    newer = tmp_path / "newer.safetensors"
    write_with_header(newer, {**header, "__metadata__": {**header["__metadata__"], "format_version": "3"}}, data)
    yield "wrong version", newer, "format version"
    resized = tmp_path / "resized.safetensors"
    write_with_header(resized, {**header, "__metadata__": {**header["__metadata__"], "hidden_size": "17"}}, data)
    yield "sizes that do not match the tensors", resized, "shape|do not match"
    other = tmp_path / "other.safetensors"
    write_with_header(other, {**header, "__metadata__": {"format": "pt"}}, data)
    yield "another safetensors file", other, "not an RNNControl model"


def test_spoiled_files_are_refused_by_load_model_and_the_c_runtime(both_kinds_of_run, tmp_path, built_runtime):
    for name, spoiled, message in spoiled_files(export(both_kinds_of_run), tmp_path):
        with pytest.raises(ValueError, match=message):
            load_model(spoiled, "cpu")
        with pytest.raises(ValueError, match=message) as refused:
            CModel.from_file(spoiled)
        assert str(spoiled) in str(refused.value), name
        with pytest.raises(ValueError, match=message):
            CModel(spoiled.read_bytes())


def test_the_c_runtime_refuses_every_prefix_and_survives_flipped_header_bytes(run_folder, built_runtime):
    raw = export(run_folder).read_bytes()
    header_end = 8 + struct.unpack("<Q", raw[:8])[0]
    for length in [*range(0, header_end + 64, 3), len(raw) - 1]:
        with pytest.raises(ValueError):
            CModel(raw[:length])
    rng = np.random.default_rng(0)
    for _ in range(300):  # a flip may leave a valid file; what matters is that none reads out of bounds
        spoiled = bytearray(raw)
        spoiled[rng.integers(0, header_end)] = rng.integers(0, 256)
        try:
            CModel(bytes(spoiled))
        except ValueError:
            pass


@pytest.mark.parametrize("exclude, accepted", [('{"p": [67, 71]}', True), ('{"q": [1]}', False),
                                               ('{"p": "67"}', False), ('{"p": [1e39]}', False), ("[", False)])
def test_the_held_out_values_travel_in_the_file_and_a_bad_entry_is_one_line(run_folder, tmp_path, built_runtime,
                                                                           exclude, accepted):
    header, data = header_and_data(export(run_folder))
    header["__metadata__"]["exclude"] = exclude
    path = tmp_path / "held_out.safetensors"
    write_with_header(path, header, data)
    CModel(path.read_bytes())  # the C runtime passes over the entry
    if accepted:
        assert load_model(path, "cpu")[1]["data"].exclude == {"p": [67.0, 71.0]}
    else:
        with pytest.raises(ValueError, match=rf"^{path}: .*metadata 'exclude'"):
            load_model(path, "cpu")
