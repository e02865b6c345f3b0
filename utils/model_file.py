"""Exported model files: one safetensors file holding the float32 weights and everything needed to play them.

The layout (also in docs/runtime.md, "Exported model files") is what runtime/model_file.c reads. Tensors, row-major:
input_proj.weight (H, 1+P), input_proj.bias (H); for each GRU layer k, gru.k.weight_ih (3H, in_k), gru.k.weight_hh
(3H, H), gru.k.bias_ih (3H), gru.k.bias_hh (3H), gates r, z, n as in PyTorch, in_0 = H and in_k = H, or H + P
([h_{k-1}, parameters]) when cond_every_layer; output.weight (N, H), output.bias (N). Metadata: flat strings, so a
reader needs no second JSON parser.

P, the network's conditioning, is the named parameters followed by the periodic reference's 2K channels
(model/reference.py): cond_size = parameters + 2K, with `reference.harmonics` K (required from version 2; 0: none;
version 1 files have none), `reference.pitch` the index of the parameter whose frequency the reference follows and
`reference.units` its units ("midi" or "hz"). A player computes the reference itself: its phase starts at 0 with
the voice and advances by 2π f0 / sample_rate each sample, one float64 sum never wrapped; the channels are
sin kφ, cos kφ for k = 1..K.
"""
from __future__ import annotations

import json
import re
from dataclasses import replace
from pathlib import Path

import torch
from safetensors.torch import save as save_tensors

from audioDataLoader.audio_dataset import AudioDatasetConfig
from model.gru_audio_model import RNN, GRUAudioConfig
from utils.checks import finite_number
from utils.json_file import parse_json
from utils.model_file_checks import ModelMetadata, check_metadata, check_tensors, expected_shapes, read_weights
from utils.model_file_header import read_header

MODEL_FILE_FORMAT = "rnncontrol"
MODEL_FILE_VERSION = 2  # runtime/rnncontrol.h's RC_FORMAT_VERSION; version 1 files (no reference) load too
_SIZES = ("input_size", "cond_size", "hidden_size", "num_layers", "numtokens")
_GRU_TENSORS = ("weight_ih", "weight_hh", "bias_ih", "bias_hh")


def _named_parameters(model: RNN) -> dict[str, torch.Tensor]:
    """Return the model's own parameters under the file's tensor names."""
    tensors = {"input_proj.weight": model.input_proj.weight, "input_proj.bias": model.input_proj.bias}
    for k, layer in enumerate(model.gru_layers()):
        tensors.update({f"gru.{k}.{name}": tensor for name, tensor in zip(_GRU_TENSORS, layer)})
    tensors.update({"output.weight": model.output.weight, "output.bias": model.output.bias})
    return tensors


def model_tensors(model: RNN) -> dict[str, torch.Tensor]:
    """Return the model's weights under the file's names, float32 on the CPU."""
    return {name: t.detach().to("cpu", torch.float32).contiguous() for name, t in _named_parameters(model).items()}


def model_metadata(config: GRUAudioConfig, data: AudioDatasetConfig, source: str) -> dict[str, str]:
    """Return the file's metadata: format, sizes, the audio settings, each parameter's name and range, the source."""
    metadata = {"format": MODEL_FILE_FORMAT, "format_version": str(MODEL_FILE_VERSION),
                **{name: str(getattr(config, name)) for name in _SIZES},
                "cond_every_layer": str(int(config.cond_every_layer)), "dropout": repr(config.dropout),
                "encode": str(int(data.encode)), "sample_rate": str(data.sample_rate), "data_dir": str(data.data_dir),
                "source": source, "reference.harmonics": str(data.reference_harmonics)}
    if data.exclude:  # the held-out values, so an evaluation of the file tells them from the trained ones
        metadata["exclude"] = json.dumps(data.exclude)
    if data.reference_harmonics:
        metadata.update({"reference.pitch": str(list(data.parameter_specs).index(data.pitch_parameter)),
                         "reference.units": data.pitch_units})
    for i, (name, (low, high)) in enumerate(data.parameter_specs.items()):
        metadata.update({f"parameter.{i}.name": name, f"parameter.{i}.min": repr(low),
                         f"parameter.{i}.max": repr(high)})
    return metadata


def model_file_bytes(model: RNN, data: AudioDatasetConfig, source: str, card: dict[str, str] | None = None) -> bytes:
    """Return the model file's bytes for `model` trained on `data`; `source` says which run it came from, `card`
    holds a model card's metadata (models/card.py)."""
    if data.conditioning_size != model.config.cond_size:
        raise ValueError(f"the data names {len(data.parameter_specs)} parameters {list(data.parameter_specs)} and "
                         f"{data.reference_harmonics} reference harmonics, but the model takes {model.config.cond_size} "
                         "conditioning values")
    return save_tensors(model_tensors(model), {**model_metadata(model.config, data, source), **(card or {})})


def _configs(checked: ModelMetadata, metadata: dict[str, str]) -> tuple[GRUAudioConfig, AudioDatasetConfig]:
    reference = {}
    if checked.harmonics:
        reference = {"reference_harmonics": checked.harmonics, "pitch_units": checked.units,
                     "pitch_parameter": list(checked.parameters)[checked.pitch]}
    sizes = {name: checked.sizes[name] for name in _SIZES}
    data = AudioDatasetConfig(data_dir=metadata.get("data_dir", ""), parameter_specs=checked.parameters,
                              encode=bool(checked.sizes["encode"]), numtokens=sizes["numtokens"],
                              sample_rate=checked.sizes["sample_rate"], **reference)
    model = GRUAudioConfig(**sizes, dropout=checked.dropout, cond_every_layer=bool(checked.sizes["cond_every_layer"]))
    return model, data


def _held_out(metadata: dict[str, str], checked: ModelMetadata) -> dict[str, list[float]]:
    """Return the optional `exclude` entry: the values of named parameters held out of training (for evaluate.py)."""
    if "exclude" not in metadata:
        return {}
    held_out = parse_json(metadata["exclude"], "metadata 'exclude'")
    if not (isinstance(held_out, dict) and set(held_out) <= set(checked.parameters)
            and all(isinstance(v, list) and all(isinstance(x, (int, float)) for x in v) for v in held_out.values())):
        raise ValueError("metadata 'exclude' must map parameter names to lists of values")
    return {name: [finite_number(f"metadata 'exclude' {name}", x) for x in values] for name, values in held_out.items()}


def _one_line(message: str, most: int = 500) -> str:
    """The message with any control character (a newline in a hostile name) shown as '?', and cut at `most`."""
    message = re.sub(r"[\x00-\x1f\x7f]", "?", message)
    return message if len(message) <= most else message[:most] + "..."


def read_model_bytes(raw: bytes, name: str, device: torch.device | str = "cpu") -> tuple[RNN, dict]:
    """Return what read_model_file returns for a model file's bytes; `name` names the file in errors.

    Everything is checked before anything is built, as runtime/model_file.c checks it (utils/model_file_checks.py):
    the header, the metadata's sizes, reference and parameter ranges, then every tensor's shape and weights.
    """
    try:
        header = read_header(raw)
        checked = check_metadata(header.metadata, MODEL_FILE_VERSION)
        shapes = expected_shapes(checked.sizes)
        check_tensors(header, shapes)
        weights = read_weights(raw, header, shapes)
        held_out = _held_out(header.metadata, checked)
    except ValueError as error:
        advice = "" if "export" in str(error) else ": export the model again with export.py"
        raise ValueError(_one_line(f"{name}: {error}{advice}")) from None
    model_config, data = _configs(checked, header.metadata)
    data = replace(data, exclude=held_out)
    model = RNN(model_config)
    _load_tensors(model, weights)
    config = {"format_version": MODEL_FILE_VERSION, "model": model_config, "data": data,
              "source": header.metadata.get("source", "")}
    return model.to(device).eval(), config


def read_model_file(path: str | Path, device: torch.device | str = "cpu") -> tuple[RNN, dict]:
    """Return (model in eval mode, {"format_version", "model", "data", "source"}) from an exported model file."""
    try:
        raw = Path(path).read_bytes()
    except OSError as error:
        raise ValueError(f"{path} is not a readable model file ({error.strerror})") from None
    return read_model_bytes(raw, str(path), device)


@torch.no_grad()
def _load_tensors(model: RNN, tensors: dict[str, torch.Tensor]) -> None:
    for name, target in _named_parameters(model).items():
        target.copy_(tensors[name])
