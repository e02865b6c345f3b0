"""Exported model files: one safetensors file holding the float32 weights and everything needed to play them.

The layout (also in docs/runtime.md, "Exported model files") is what runtime/rnncontrol.c reads. Tensors, row-major:
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
from pathlib import Path

import torch
from safetensors import SafetensorError
from safetensors.torch import load as load_tensors
from safetensors.torch import save as save_tensors

from audioDataLoader.audio_dataset import AudioDatasetConfig
from model.gru_audio_model import RNN, GRUAudioConfig

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


def _configs(metadata: dict[str, str], path: Path) -> tuple[GRUAudioConfig, AudioDatasetConfig]:
    version_1 = metadata["format_version"] == "1"  # written before the reference existed: none
    try:
        sizes = {name: int(metadata[name]) for name in _SIZES}
        model_options = {"dropout": float(metadata["dropout"]),
                         "cond_every_layer": bool(int(metadata["cond_every_layer"]))}
        harmonics = 0 if version_1 else int(metadata["reference.harmonics"])
        specs = {metadata[f"parameter.{i}.name"]: (float(metadata[f"parameter.{i}.min"]),
                                                   float(metadata[f"parameter.{i}.max"]))
                 for i in range(sizes["cond_size"] - 2 * harmonics)}
        reference = {}
        if harmonics:
            reference = {"reference_harmonics": harmonics, "pitch_units": metadata["reference.units"],
                         "pitch_parameter": list(specs)[int(metadata["reference.pitch"])]}
        data = AudioDatasetConfig(data_dir=metadata["data_dir"], parameter_specs=specs,
                                  encode=bool(int(metadata["encode"])), numtokens=sizes["numtokens"],
                                  sample_rate=int(metadata["sample_rate"]),
                                  exclude=json.loads(metadata.get("exclude", "{}")), **reference)
    except (KeyError, ValueError, IndexError, TypeError) as error:
        raise ValueError(f"{path}: its metadata is incomplete or wrong ({type(error).__name__}: {error}); "
                         "export the run again with export.py") from error
    return GRUAudioConfig(**sizes, **model_options), data


def read_model_file(path: str | Path, device: torch.device | str = "cpu") -> tuple[RNN, dict]:
    """Return (model in eval mode, {"format_version", "model", "data", "source"}) from an exported model file."""
    path = Path(path)
    try:
        raw = path.read_bytes()
        tensors = load_tensors(raw)
        from safetensors import safe_open  # the metadata is only reachable through a file handle

        with safe_open(path, "pt") as handle:
            metadata = handle.metadata() or {}
    except (SafetensorError, OSError) as error:
        raise ValueError(f"{path} is not a readable model file ({error}); it may be truncated or corrupted: "
                         "export it again with export.py") from error
    if metadata.get("format") != MODEL_FILE_FORMAT:
        raise ValueError(f"{path} is a safetensors file but not an RNNControl model: export one with export.py")
    if metadata.get("format_version") not in [str(v) for v in range(1, MODEL_FILE_VERSION + 1)]:
        raise ValueError(f"{path} has model file format version {metadata.get('format_version')!r}; this RNNControl "
                         f"reads versions 1 to {MODEL_FILE_VERSION}")
    model_config, data = _configs(metadata, path)
    model = RNN(model_config)
    expected = model_tensors(model)
    if set(tensors) != set(expected) or any(tensors[n].shape != t.shape for n, t in expected.items()):
        wrong = sorted(n for n in set(tensors) | set(expected)
                       if n not in tensors or n not in expected or tensors[n].shape != expected[n].shape)
        raise ValueError(f"{path}: tensors {wrong} do not match the sizes in its metadata; export it again")
    _load_tensors(model, tensors)
    config = {"format_version": MODEL_FILE_VERSION, "model": model_config, "data": data, "source": metadata["source"]}
    return model.to(device).eval(), config


@torch.no_grad()
def _load_tensors(model: RNN, tensors: dict[str, torch.Tensor]) -> None:
    for name, target in _named_parameters(model).items():
        target.copy_(tensors[name])
