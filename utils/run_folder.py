"""A training run's folder: config.json, atomically written checkpoints, and loading a model back from it."""
from __future__ import annotations

import json
import os
import pickle
import tempfile
from dataclasses import asdict
from pathlib import Path
from typing import Any, BinaryIO, Callable

import torch

from audioDataLoader.audio_dataset import AudioDatasetConfig
from model.gru_audio_model import RNN, GRUAudioConfig
from utils.model_file import read_model_file

FORMAT_VERSION = 1
CONFIG_NAME = "config.json"
LAST_CHECKPOINT = Path("checkpoints") / "last_checkpoint.pt"


def write_atomically(path: str | Path, write: Callable[[BinaryIO], object]) -> None:
    """Call write(file_object) on a temporary file beside `path`, then rename it over `path`."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        os.unlink(tmp)
        raise


def write_config(run_dir: Path, data: AudioDatasetConfig, model: GRUAudioConfig, train: Any) -> None:
    """Write config.json: every data, model and training setting of the run."""
    config = {"format_version": FORMAT_VERSION, "data": asdict(data), "model": asdict(model), "train": asdict(train)}
    text = json.dumps(config, indent=2) + "\n"
    write_atomically(Path(run_dir) / CONFIG_NAME, lambda f: f.write(text.encode()))


def read_config(run_dir: str | Path) -> dict:
    """Return config.json of a run folder with "data" and "model" as AudioDatasetConfig and GRUAudioConfig."""
    path = Path(run_dir) / CONFIG_NAME
    if not path.is_file():
        raise FileNotFoundError(f"{path} not found: {run_dir} is not a run folder written by train.py")
    try:
        config = json.loads(path.read_text())
    except json.JSONDecodeError as error:
        raise ValueError(f"{path} is not valid JSON ({error}); restore it from the run's checkpoint") from error
    _check_version(config.get("format_version"), path)
    config["data"] = AudioDatasetConfig(**config["data"])
    config["model"] = GRUAudioConfig(**config["model"])
    return config


def _check_version(version: Any, path: Path) -> None:
    if version != FORMAT_VERSION:
        raise ValueError(f"{path} has format version {version!r}; this RNNControl reads version {FORMAT_VERSION}")


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
        raise ValueError(f"{path} holds something other than tensors and plain data, so it was not loaded "
                         f"(loading it could run code). Use a checkpoint written by train.py. ({error})") from error
    except Exception as error:
        raise ValueError(f"{path} is not a readable checkpoint ({type(error).__name__}: {error}); "
                         "it may be truncated or corrupted. Use another checkpoint from the run folder.") from error
    if not isinstance(checkpoint, dict):
        raise ValueError(f"{path} is not an RNNControl checkpoint (it holds a {type(checkpoint).__name__})")
    _check_version(checkpoint.get("format_version"), path)
    return checkpoint


def newest_run(output_dir: str | Path = "output") -> Path:
    """Return the most recently written run folder (one with a last checkpoint) under `output_dir`."""
    runs = [p.parent.parent for p in Path(output_dir).glob(f"*/{LAST_CHECKPOINT}")]
    if not runs:
        raise FileNotFoundError(f"no trained run under {output_dir}/: train one first (train.py or Train.ipynb)")
    return max(runs, key=lambda p: (p / LAST_CHECKPOINT).stat().st_mtime)


def load_model(run_directory: str | Path, device: torch.device | str | None = None,
               checkpoint: str | Path | None = None) -> tuple[RNN, dict]:
    """Return (model in eval mode with the run's last (or given) checkpoint, the run's config).

    `run_directory` may also be a model file written by export.py; its config then holds "model" and "data".
    """
    run_directory = Path(run_directory)
    if device is None:
        device = "cuda" if torch.cuda.is_available() else "cpu"
    if run_directory.is_file():
        return read_model_file(run_directory, device)
    config = read_config(run_directory)
    checkpoint = Path(checkpoint or run_directory / LAST_CHECKPOINT)
    state = load_checkpoint(checkpoint, device)
    model = RNN(config["model"]).to(device)
    try:
        model.load_state_dict(state["model"])
    except RuntimeError as error:
        lines = str(error).strip().splitlines()  # a heading, then one line per wrong tensor
        detail = lines[1].strip() if len(lines) > 1 else lines[0]
        raise ValueError(f"{checkpoint} does not match {run_directory / CONFIG_NAME} ({detail}); use the config.json "
                         "of the run that wrote this checkpoint") from error
    return model.eval(), config
