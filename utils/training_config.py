"""The settings of a training run: the training loop's config, the original notebook's keys and where each goes, the
presets, and the three configs (data, model, training) built from a dict of those keys."""
from __future__ import annotations

import math
from dataclasses import dataclass, fields

from audioDataLoader.audio_dataset import AudioDatasetConfig
from model.gru_audio_model import GRUAudioConfig
from utils.checks import MAX_SEED, setting_in_range
from utils.lr_schedule import SCHEDULES


@dataclass
class TrainConfig:
    """Settings of the training loop (the data and the model have their own configs)."""

    num_epochs: int = 40
    batches_per_epoch: int = 100
    batch_size: int = 256  # per process when run under torchrun
    lr: float = 0.005  # the peak rate of a schedule
    lr_schedule: str = "constant"  # or "cosine": linear warm-up, then a half cosine down (utils/lr_schedule.py)
    warmup: float = 0.05  # the cosine schedule's share of batches spent warming up
    lr_final: float = 0.05  # the cosine schedule's last rate, as a share of lr
    grad_clip: float = 0.0  # largest gradient norm, all parameters together; 0: no clipping
    savemodeldir: str = "output"
    savemodel_interval: int = 10
    seed: int = 0
    device: str = "auto"  # "auto" picks CUDA when available
    per_step: bool = False  # call the GRU once per time step, as the original did (for comparison)
    bf16: bool = False  # bf16 autocast on CUDA
    resume: str | None = None  # a run folder to continue

    def __post_init__(self) -> None:
        # Refused here, before any run folder is made, for the command line, Python calls and a resumed
        # config.json alike: a zero count would train nothing, or divide by zero at the end.
        for name in ("num_epochs", "batches_per_epoch", "batch_size", "savemodel_interval"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be at least 1, got {getattr(self, name)} (--{name} on the command line)")
        if not self.lr > 0:
            raise ValueError(f"lr must be a finite number above 0, got {self.lr} (--lr on the command line)")
        for name, low, high in (("lr", 0, math.inf), ("warmup", 0, 1), ("lr_final", 0, 1), ("grad_clip", 0, math.inf),
                                ("seed", 0, MAX_SEED)):
            setting_in_range(f"{name} (--{name} on the command line)", getattr(self, name), low, high)
        if self.lr_schedule not in SCHEDULES:
            raise ValueError(f"lr_schedule must be one of {SCHEDULES}, got {self.lr_schedule!r}")


# The original notebook's keys, and where each goes.
DATA_KEYS = {"datadir": "data_dir", "props": "parameter_specs", "seqLen": "sequence_length",
             "noise": "noise_weight", "add_noise": "add_noise", "encode": "encode", "numtokens": "numtokens",
             "sample_rate": "sample_rate", "exclude": "exclude", "pitch_parameter": "pitch_parameter",
             "pitch_shift": "pitch_shift", "labels": "labels", "cold_start": "cold_start",
             "reference_harmonics": "reference_harmonics", "pitch_units": "pitch_units"}
MODEL_KEYS = {"hiddenSize": "hidden_size", "nLayers": "num_layers", "dropout": "dropout", "numtokens": "numtokens",
              "cond_every_layer": "cond_every_layer"}
TRAIN_KEYS = {f.name: f.name for f in fields(TrainConfig)}

PRESETS = {
    "default": {},
    # About four minutes on two CPU cores: enough for recognisable pitch and timbre, not for polish.
    "quick": {"num_epochs": 20, "batches_per_epoch": 75, "batch_size": 64},
    # The original network and recipe, whatever the defaults become: 4 x 48, parameters into the first layer only
    # (69,232 weights), constant rate, no clipping, no augmentation, 40 x 100 batches of 256.
    "original": {"hiddenSize": 48, "nLayers": 4, "dropout": 0.1, "cond_every_layer": False, "lr": 0.005,
                 "lr_schedule": "constant", "grad_clip": 0.0, "pitch_shift": 0.0, "cold_start": 0.0,
                 "reference_harmonics": 0, "seqLen": 256,
                 "num_epochs": 40, "batches_per_epoch": 100, "batch_size": 256},
}


def configs_from_params(params: dict) -> tuple[AudioDatasetConfig, GRUAudioConfig, TrainConfig]:
    """Return the data, model and training configs for a dict of the notebook's keys (missing keys: defaults)."""
    unknown = set(params) - set(DATA_KEYS) - set(MODEL_KEYS) - set(TRAIN_KEYS)
    if unknown:
        known = sorted(set(DATA_KEYS) | set(MODEL_KEYS) | set(TRAIN_KEYS))
        raise ValueError(f"unknown training parameter(s) {sorted(unknown)}; known ones are {known}")
    data = AudioDatasetConfig(**{DATA_KEYS[k]: v for k, v in params.items() if k in DATA_KEYS})
    if "noise" in params and "add_noise" not in params:
        data.add_noise = params["noise"] > 0
    model = GRUAudioConfig(cond_size=data.conditioning_size,
                           **{MODEL_KEYS[k]: v for k, v in params.items() if k in MODEL_KEYS})
    train_config = TrainConfig(**{k: v for k, v in params.items() if k in TRAIN_KEYS})
    return data, model, train_config
