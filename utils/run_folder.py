"""A training run's folder: config.json, atomically written checkpoints, and loading a model back from it."""
from __future__ import annotations

import itertools
import json
import math
import pickle
import re
import sys
import time
import types
import typing
from dataclasses import asdict, fields
from pathlib import Path
from typing import Any, TypeVar

import torch

from audioDataLoader.audio_dataset import AudioDatasetConfig
from model.gru_audio_model import RNN, GRUAudioConfig
from utils.atomic_write import write_atomically
from utils.checks import available_device
from utils.json_file import read_json
from utils.model_file import read_model_file

FORMAT_VERSION = 3
# Settings that config.json and checkpoints gained in each version, at the values every earlier run was trained with.
_ADDED_IN_VERSION = {
    2: {"data": {"pitch_parameter": None, "pitch_shift": 0.0, "labels": None},
        "model": {"cond_every_layer": False},
        "train": {"lr_schedule": "constant", "warmup": 0.05, "lr_final": 0.05, "grad_clip": 0.0}},
    3: {"data": {"cold_start": 0.0, "reference_harmonics": 0, "pitch_units": "midi"}},
}
CONFIG_NAME = "config.json"
LAST_CHECKPOINT = Path("checkpoints") / "last_checkpoint.pt"
# The model that plays where no run was given and none is trained yet (models/README.md has its card).
SHIPPED_DEFAULT_MODEL = Path(__file__).resolve().parent.parent / "models" / "clarinet_trumpet.safetensors"
# write_atomically's temporary files: ".<name>.<random>.tmp" beside the file being written.
TEMPORARY_GLOB = ".*.*.tmp"
Config = TypeVar("Config")


def remove_stale_temporaries(run_dir: str | Path) -> list[Path]:
    """Delete the temporary files that writes killed part way left in a run folder; return them."""
    run_dir = Path(run_dir)
    stale = [*run_dir.glob(TEMPORARY_GLOB), *(run_dir / LAST_CHECKPOINT.parent).glob(TEMPORARY_GLOB)]
    for path in stale:
        path.unlink()
    return stale


def new_run_dir(savemodeldir: str) -> Path:
    """Create and return a folder named for the time, with a suffix where another run has taken that name.

    Made exclusively at the moment its name is chosen, so two runs started in the same second never share one.
    """
    stem = Path(savemodeldir) / time.strftime("%Y%m%d-%H%M%S")
    try:
        stem.parent.mkdir(parents=True, exist_ok=True)
        for suffix in itertools.count():
            run_dir = stem.with_name(f"{stem.name}-{suffix}") if suffix else stem
            try:
                run_dir.mkdir()
                return run_dir
            except FileExistsError:
                continue
    except OSError as error:
        raise ValueError(f"cannot make a run folder in savemodeldir {savemodeldir!r} ({error.strerror}); "
                         "give a writable folder with --savemodeldir") from None


def write_config(run_dir: Path, data: AudioDatasetConfig, model: GRUAudioConfig, train: Any) -> None:
    """Write config.json: every data, model and training setting of the run."""
    config = {"format_version": FORMAT_VERSION, "data": asdict(data), "model": asdict(model), "train": asdict(train)}
    text = json.dumps(config, indent=2) + "\n"
    write_atomically(Path(run_dir) / CONFIG_NAME, lambda f: f.write(text.encode()))


def read_config(run_dir: str | Path) -> dict:
    """Return config.json of a run folder with "data" and "model" as AudioDatasetConfig and GRUAudioConfig.

    Every setting must be there with the right type: a run is never played with a default in place of its own
    setting. Anything else is a ValueError that names the file and the setting.
    """
    path = Path(run_dir) / CONFIG_NAME
    if not path.is_file():
        raise FileNotFoundError(f"{path} not found: {run_dir} is not a run folder written by train.py")
    try:
        config = read_json(path)
    except ValueError as error:
        raise ValueError(f"{error}. {_BROKEN_CONFIG_ADVICE}") from None
    if not isinstance(config, dict):
        raise ValueError(f"{path} holds a JSON {type(config).__name__}, not an object. {_BROKEN_CONFIG_ADVICE}")
    _check_version(config.get("format_version"), path)
    config = _upgraded(config)
    config["data"] = config_section(config, "data", AudioDatasetConfig, path)
    config["model"] = config_section(config, "model", GRUAudioConfig, path)
    if not isinstance(config.get("train"), dict):
        raise ValueError(f"{path} lacks its \"train\" section (an object). {_BROKEN_CONFIG_ADVICE}")
    _check_model_fits_data(config["data"], config["model"], path)
    return config


# Checkpoints hold the model's settings (model_config) but not the data's, so they cannot rebuild config.json.
_BROKEN_CONFIG_ADVICE = ("Fix it by hand or put back a copy: the data settings (parameter_specs, sample_rate, "
                         "encode, ...) live only in config.json, and each checkpoint's model_config holds the "
                         "model settings")


def config_section(config: dict, name: str, kind: type[Config], path: Path) -> Config:
    """Return config[name] as the dataclass `kind`, refusing missing, unknown or mistyped settings by name."""
    values = config.get(name)
    if not isinstance(values, dict):
        raise ValueError(f"{path} lacks its {name!r} section (an object with the {name} settings). "
                         f"{_BROKEN_CONFIG_ADVICE}")
    hints = typing.get_type_hints(kind)
    names = [f.name for f in fields(kind)]
    missing, unknown = [n for n in names if n not in values], [n for n in values if n not in names]
    if missing or unknown:
        raise ValueError(f"{path}: section {name!r} lacks {missing} and has unknown {unknown}; it must hold "
                         f"exactly {names}. {_BROKEN_CONFIG_ADVICE}")
    for key, value in values.items():
        if not _matches(value, hints[key]):
            raise ValueError(f"{path}: {name}.{key} = {value!r} is not a {_type_name(hints[key])}")
    try:
        return kind(**values)
    except ValueError as error:
        raise ValueError(f"{path}: {error}") from error


def _matches(value: Any, hint: Any) -> bool:
    """Return whether a value read from JSON has the type `hint` (a tuple may come as a JSON list)."""
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if hint is bool:
        return isinstance(value, bool)
    if hint is int:
        return isinstance(value, int) and not isinstance(value, bool)
    if hint is float:  # JSON's NaN and Infinity are no setting
        return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
    if hint is type(None) or hint is str:
        return isinstance(value, hint)
    if origin in (typing.Union, types.UnionType):
        return any(_matches(value, arg) for arg in args)
    if origin is dict:
        return isinstance(value, dict) and all(_matches(k, args[0]) and _matches(v, args[1]) for k, v in value.items())
    if origin is list:
        return isinstance(value, list) and all(_matches(v, args[0]) for v in value)
    if origin is tuple:
        return isinstance(value, (list, tuple)) and len(value) == len(args) and all(map(_matches, value, args))
    raise TypeError(f"config type {hint} has no JSON check")


def _type_name(hint: Any) -> str:
    return {int: "whole number", float: "finite number", bool: "true or false", str: "string"}.get(
        hint, str(hint).replace("NoneType", "null"))


# The smallest value of each whole-number setting that is not 1: a model may have no parameters (nor reference),
# and a class index maps to index / (numtokens - 1).
_LEAST = {"cond_size": 0, "numtokens": 2, "reference_harmonics": 0}


def _check_model_fits_data(data: AudioDatasetConfig, model: GRUAudioConfig, path: Path) -> None:
    """Refuse sizes no network has, and a model that does not take the data's parameters and classes."""
    for section, config in (("data", data), ("model", model)):
        for key, value in asdict(config).items():
            least = _LEAST.get(key, 1)
            if type(value) is int and value < least:
                raise ValueError(f"{path}: {section}.{key} = {value} must be at least {least}")
    if model.cond_size != data.conditioning_size or model.numtokens != data.numtokens:
        raise ValueError(f"{path}: model.cond_size = {model.cond_size} and model.numtokens = {model.numtokens} "
                         f"must equal the number of data.parameter_specs ({len(data.parameter_specs)}) plus twice "
                         f"data.reference_harmonics ({data.reference_harmonics}), and data.numtokens "
                         f"({data.numtokens}). {_BROKEN_CONFIG_ADVICE}")
    if not 0 <= model.dropout < 1:
        raise ValueError(f"{path}: model.dropout = {model.dropout} must be in [0, 1)")


def _check_version(version: Any, path: Path) -> None:
    if version not in range(1, FORMAT_VERSION + 1):
        raise ValueError(f"{path} has format version {version!r}; this RNNControl reads versions 1 to "
                         f"{FORMAT_VERSION}")


def _upgraded(config: dict) -> dict:
    """Return the settings of an older file with those added since set as its run had them (others as given)."""
    version = config.get("format_version")
    upgraded = dict(config)
    for added_in, sections in _ADDED_IN_VERSION.items():
        if isinstance(version, int) and version < added_in:
            for section, added in sections.items():
                if isinstance(upgraded.get(section), dict):
                    upgraded[section] = {**added, **upgraded[section]}
    return upgraded


def save_checkpoint(path: Path, checkpoint: dict) -> None:
    """Write a checkpoint of tensors and plain data atomically: a crash never leaves a broken file."""
    checkpoint = {"format_version": FORMAT_VERSION, **checkpoint}
    write_atomically(Path(path), lambda f: torch.save(checkpoint, f))


def load_checkpoint(path: str | Path, device: torch.device | str = "cpu") -> dict:
    """Return a checkpoint dict, refusing anything but tensors and plain data (weights_only=True)."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"checkpoint {path} not found")
    try:
        checkpoint = torch.load(path, map_location=device, weights_only=True)
    except pickle.UnpicklingError as error:
        raise ValueError(f"{path} holds something other than tensors and plain data{_refused_global(error)}, so "
                         "it was not loaded: loading it could run code. Use a checkpoint written by train.py.") from None
    except Exception as error:
        raise ValueError(f"{path} is not a readable checkpoint ({type(error).__name__}); it may be truncated or "
                         "corrupted. Use another checkpoint from the run folder.") from None
    if not isinstance(checkpoint, dict):
        raise ValueError(f"{path} is not an RNNControl checkpoint (it holds a {type(checkpoint).__name__})")
    _check_version(checkpoint.get("format_version"), path)
    if isinstance(checkpoint.get("model_config"), dict):
        checkpoint["model_config"] = _upgraded({"format_version": checkpoint["format_version"],
                                                "model": checkpoint["model_config"]})["model"]
    return checkpoint


def _refused_global(error: Exception) -> str:
    """Return what PyTorch refused to load, as " (print)", without its advice to load the file unsafely."""
    match = re.search(r"Unsupported global: GLOBAL ([\w.]+)", str(error))
    return f" ({match.group(1)})" if match else ""


def newest_run(output_dir: str | Path = "output") -> Path:
    """Return the most recently written run folder (one with a last checkpoint) under `output_dir`."""
    runs = [p.parent.parent for p in Path(output_dir).glob(f"*/{LAST_CHECKPOINT}")]
    if not runs:
        raise FileNotFoundError(f"no trained run under {output_dir}/: train one first (train.py or Train.ipynb)")
    return max(runs, key=lambda p: (p / LAST_CHECKPOINT).stat().st_mtime)


def newest_run_or_shipped_model(output_dir: str | Path = "output") -> Path:
    """Return the newest run under `output_dir`, or, where none is trained yet, the shipped default model (and say so
    on stderr)."""
    try:
        return newest_run(output_dir)
    except FileNotFoundError:
        print(f"no trained run under {output_dir}/: playing the shipped default model {SHIPPED_DEFAULT_MODEL} "
              "(train your own with train.py or Train.ipynb)", file=sys.stderr)
        return SHIPPED_DEFAULT_MODEL


def outputs_folder(source: str | Path) -> Path:
    """Return where a command writes what it makes from `source` by default: a run folder itself, or for a model
    file, output/<its name>/ (never beside the file: models/ holds shipped files only)."""
    source = Path(source)
    return source if source.is_dir() else Path("output") / source.stem


def load_model(run_directory: str | Path, device: torch.device | str | None = None,
               checkpoint: str | Path | None = None) -> tuple[RNN, dict]:
    """Return (model in eval mode with the run's last (or given) checkpoint, the run's config).

    `run_directory` may also be a model file written by export.py; its config then holds "model" and "data".
    """
    run_directory = Path(run_directory)
    if not run_directory.exists():
        raise FileNotFoundError(f"{run_directory}: no such run folder or model file; give a run folder written by "
                                "train.py or a model file (.safetensors) written by export.py (models/ has shipped ones)")
    device = available_device("cuda" if device is None and torch.cuda.is_available() else device or "cpu")
    if run_directory.is_file():
        return read_model_file(run_directory, device)
    config = read_config(run_directory)
    checkpoint = Path(checkpoint or run_directory / LAST_CHECKPOINT)
    state = load_checkpoint(checkpoint, device)
    _check_checkpoint_fits(state, config["model"], checkpoint, run_directory / CONFIG_NAME)
    model = RNN(config["model"]).to(device)
    try:
        model.load_state_dict(state["model"])
    except Exception as error:
        raise ValueError(f"{checkpoint} does not fit the model that {run_directory / CONFIG_NAME} describes "
                         f"({model.num_parameters():,} parameters; {type(error).__name__}). Use the checkpoints "
                         "and config.json of one run together.") from None
    return model.eval(), config


def _check_checkpoint_fits(state: dict, model: GRUAudioConfig, checkpoint: Path, config_path: Path) -> None:
    """Refuse a checkpoint whose model settings differ from config.json's, naming them (before building it)."""
    saved = state.get("model_config")
    if not isinstance(saved, dict) or not isinstance(state.get("model"), dict):
        raise ValueError(f"{checkpoint} lacks the model or its settings: it was not written by train.py")
    differ = {key: (saved.get(key), value) for key, value in asdict(model).items() if saved.get(key) != value}
    if differ:
        shown = ", ".join(f"{key} {a!r} there, {b!r} in config.json" for key, (a, b) in differ.items())
        raise ValueError(f"{checkpoint} was trained with other model settings than {config_path} gives ({shown}). "
                         "Use the checkpoints and config.json of one run together.")
