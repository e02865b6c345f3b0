"""Small data sets and run folders for the tests, written as the project's own tools write them."""
from __future__ import annotations

from dataclasses import asdict
from pathlib import Path

import numpy as np
import soundfile as sf
import torch

from audioDataLoader.audio_dataset import AudioDatasetConfig
from model.gru_audio_model import RNN, GRUAudioConfig
from utils.run_folder import LAST_CHECKPOINT, save_checkpoint, write_config
from utils.training_config import TrainConfig

ROOT = Path(__file__).resolve().parents[2]
QUICK_RUN = ROOT / "tests" / "fixtures" / "quick_run"  # a small trained run that plays pitch (make_quick_run.py)
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


def write_tiny_data(folder: Path) -> Path:
    """Write 8 short tones named like the default set (2 instruments x 2 pitches x 2 amplitudes) into folder."""
    for inst in (1, 2):
        for midi in (64, 76):
            for amp in (0.3, 0.9):
                write_tone(folder / f"nsynth_instID{inst:05.2f}_p{midi:05.2f}_a{amp:05.2f}.wav", midi, amp,
                           bright=inst == 2)
    return folder


def make_run(folder: Path, specs: dict = TINY_SPECS) -> Path:
    """Write a run folder as train.py does (config.json and a last checkpoint) for a small untrained model."""
    torch.manual_seed(0)
    model = RNN(GRUAudioConfig(cond_size=len(specs), hidden_size=8, num_layers=1))
    return write_run_folder(folder, model, AudioDatasetConfig(data_dir=str(folder), parameter_specs=specs))


def write_run_folder(folder: Path, model: RNN, data: AudioDatasetConfig) -> Path:
    """Write a run folder (config.json and a last checkpoint) holding `model`, as train.py would; return it."""
    write_config(folder, data, model.config, TrainConfig())
    save_checkpoint(folder / LAST_CHECKPOINT, {"model": model.state_dict(), "model_config": asdict(model.config),
                                               "epoch": 1, "loss_history": [5.0], "epoch_batch_losses": []})
    return folder
