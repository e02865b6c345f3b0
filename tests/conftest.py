"""Shared fixtures: the repository root on sys.path, a headless matplotlib, and a tiny conditioned data set."""
import sys
from pathlib import Path

import matplotlib
import numpy as np
import pytest
import soundfile as sf

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
matplotlib.use("Agg")

TINY_SPECS = {"instID": (1.0, 2.0), "a": (0.0, 1.0), "p": (64.0, 76.0)}


def write_tone(path: Path, midi: float, amplitude: float, bright: bool, seconds: float = 0.25,
               sample_rate: int = 16000) -> np.ndarray:
    """Write a harmonic tone to `path` and return its samples."""
    t = np.arange(int(seconds * sample_rate)) / sample_rate
    f0 = 440.0 * 2 ** ((midi - 69) / 12)
    harmonics = range(1, 6) if bright else range(1, 6, 2)
    tone = sum(np.sin(2 * np.pi * k * f0 * t) / k for k in harmonics)
    tone = (amplitude * tone / np.abs(tone).max()).astype(np.float32)
    sf.write(path, tone, sample_rate)
    return tone


@pytest.fixture(scope="session")
def tiny_data_dir(tmp_path_factory) -> Path:
    """A folder of 8 short tones named like the default set: 2 instruments x 2 pitches x 2 amplitudes."""
    folder = tmp_path_factory.mktemp("tiny_data")
    for inst in (1, 2):
        for midi in (64, 76):
            for amp in (0.3, 0.9):
                write_tone(folder / f"nsynth_instID{inst:05.2f}_p{midi:05.2f}_a{amp:05.2f}.wav", midi, amp,
                           bright=inst == 2)
    return folder


def make_run(folder: Path, specs: dict = TINY_SPECS) -> Path:
    """Write a run folder as train.py does (config.json and a last checkpoint) for a small untrained model."""
    import torch

    from audioDataLoader.audio_dataset import AudioDatasetConfig
    from model.gru_audio_model import RNN, GRUAudioConfig

    torch.manual_seed(0)
    model = RNN(GRUAudioConfig(cond_size=len(specs), hidden_size=8, num_layers=1))
    return write_run_folder(folder, model, AudioDatasetConfig(data_dir=str(folder), parameter_specs=specs))


def write_run_folder(folder: Path, model, data) -> Path:
    """Write a run folder (config.json and a last checkpoint) holding `model`, as train.py would; return it."""
    from dataclasses import asdict

    from train import TrainConfig
    from utils.run_folder import LAST_CHECKPOINT, save_checkpoint, write_config

    write_config(folder, data, model.config, TrainConfig())
    save_checkpoint(folder / LAST_CHECKPOINT, {"model": model.state_dict(), "model_config": asdict(model.config),
                                               "epoch": 1, "loss_history": [5.0], "epoch_batch_losses": []})
    return folder


@pytest.fixture(scope="session")
def built_runtime() -> Path:
    """The C runtime and the Pd external, built from the sources here (make does nothing when they are current)."""
    import subprocess

    for folder in ("runtime", "pd/rnncontrol~"):
        subprocess.run(["make", "-s", "-C", str(ROOT / folder)], check=True, capture_output=True, timeout=300)
    return ROOT / "runtime"
