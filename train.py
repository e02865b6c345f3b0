"""Train the conditioned sample-level GRU: teacher forcing, cross-entropy over every step, Adam.

One process: `python train.py --preset quick`. Several (DDP): `torchrun --nproc_per_node=N train.py ...`.
"""
from __future__ import annotations

import argparse
import json
import os
import time
from dataclasses import asdict, dataclass, fields, replace
from pathlib import Path
from typing import Callable

import numpy as np
import torch
import torch.distributed as dist
import torch.nn.functional as F
from tqdm.auto import tqdm

from audioDataLoader.audio_dataset import AudioDatasetConfig, MuLawAudioDataset
from model.gru_audio_model import RNN, GRUAudioConfig
from utils.run_folder import (LAST_CHECKPOINT, load_checkpoint, read_config, save_checkpoint,
                              write_config)


@dataclass
class TrainConfig:
    """Settings of the training loop (the data and the model have their own configs)."""

    num_epochs: int = 40
    batches_per_epoch: int = 100
    batch_size: int = 256  # per process when run under torchrun
    lr: float = 0.005
    savemodeldir: str = "output"
    savemodel_interval: int = 10
    seed: int = 0
    device: str = "auto"  # "auto" picks CUDA when available
    per_step: bool = False  # call the GRU once per time step, as the original did (for comparison)
    bf16: bool = False  # bf16 autocast on CUDA
    resume: str | None = None  # a run folder to continue


# The original notebook's keys, and where each goes.
DATA_KEYS = {"datadir": "data_dir", "props": "parameter_specs", "seqLen": "sequence_length",
             "noise": "noise_weight", "add_noise": "add_noise", "encode": "encode", "numtokens": "numtokens",
             "sample_rate": "sample_rate", "exclude": "exclude"}
MODEL_KEYS = {"hiddenSize": "hidden_size", "nLayers": "num_layers", "dropout": "dropout", "numtokens": "numtokens"}
TRAIN_KEYS = {f.name: f.name for f in fields(TrainConfig)}

PRESETS = {
    "default": {},
    # About ten minutes on two CPU cores: enough for recognisable pitch and timbre, not for polish.
    "quick": {"num_epochs": 20, "batches_per_epoch": 75, "batch_size": 64},
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
    model = GRUAudioConfig(cond_size=len(data.parameter_specs),
                           **{MODEL_KEYS[k]: v for k, v in params.items() if k in MODEL_KEYS})
    train_config = TrainConfig(**{k: v for k, v in params.items() if k in TRAIN_KEYS})
    return data, model, train_config


def _init_distributed() -> tuple[int, int]:
    """Return (rank, world_size), joining the process group that torchrun describes in the environment."""
    world_size = int(os.environ.get("WORLD_SIZE", "1"))
    if world_size > 1 and not dist.is_initialized():
        dist.init_process_group("nccl" if torch.cuda.is_available() else "gloo")
    return (dist.get_rank() if world_size > 1 else 0), world_size


def _pick_device(name: str) -> torch.device:
    if name != "auto":
        return torch.device(name)
    if torch.cuda.is_available():
        return torch.device("cuda", int(os.environ.get("LOCAL_RANK", "0")))
    return torch.device("cpu")


def _epoch_seed(seed: int, epoch: int, rank: int) -> int:
    """Return a seed for one rank's epoch, so a resumed run draws what the uninterrupted one would have."""
    return int(np.random.SeedSequence([seed, epoch, rank]).generate_state(1)[0])


def _new_run_dir(savemodeldir: str, world_size: int) -> Path:
    name = [time.strftime("%Y%m%d-%H%M%S")]
    if world_size > 1:  # every rank must write to (and rank 0 only create) the same folder
        dist.broadcast_object_list(name, src=0)
    return Path(savemodeldir) / name[0]


def _resumed_configs(params: dict) -> tuple[Path, AudioDatasetConfig, GRUAudioConfig, TrainConfig]:
    """Return the run folder and its saved configs, with training keys given in `params` taking precedence."""
    run_dir = Path(params["resume"])
    saved = read_config(run_dir)
    train_config = TrainConfig(**saved["train"])
    train_config = replace(train_config, **{k: v for k, v in params.items() if k in TRAIN_KEYS})
    return run_dir, saved["data"], saved["model"], train_config


def forward_per_step(model: RNN, x: torch.Tensor) -> torch.Tensor:
    """Return logits (B, T, N) computed with one GRU call per time step, as the original did."""
    hidden = model.init_hidden(x.shape[0], x.device)
    logits = []
    for t in range(x.shape[1]):
        out, hidden = model(x[:, t:t + 1], hidden)
        logits.append(out)
    return torch.cat(logits, dim=1)


class _Run:
    """Files of one run folder, written by rank 0 only."""

    def __init__(self, run_dir: Path, writes: bool) -> None:
        self.dir, self.writes = run_dir, writes
        self.tensorboard = None
        if writes:
            from torch.utils.tensorboard import SummaryWriter  # slow import, only where it is used

            self.tensorboard = SummaryWriter(str(run_dir / "tensorboard"))

    def save(self, model: RNN, optimizer: torch.optim.Optimizer, epoch: int, history: list[float],
             config: GRUAudioConfig, also_numbered: bool) -> None:
        if not self.writes:
            return
        checkpoint = {"model": model.state_dict(), "optimizer": optimizer.state_dict(), "epoch": epoch,
                      "loss_history": history, "model_config": asdict(config)}
        save_checkpoint(self.dir / LAST_CHECKPOINT, checkpoint)
        if also_numbered:
            save_checkpoint(self.dir / "checkpoints" / f"checkpoint_{epoch}.pt", checkpoint)
        text = json.dumps({"epoch_loss": history}) + "\n"
        (self.dir / "loss_history.json").write_text(text)

    def close(self, history: list[float]) -> None:
        if not self.writes:
            return
        self.tensorboard.close()
        if history:
            import matplotlib.pyplot as plt

            from utils.utils import plot_loss_curve

            figure = plot_loss_curve(history)
            figure.savefig(self.dir / "loss_curve.png", dpi=100)
            plt.close(figure)


def train(params: dict, on_epoch_end: Callable[[int, float, RNN], None] | None = None) -> Path:
    """Train a model from a dict of the notebook's keys and return its run folder.

    `on_epoch_end(epoch, loss, model)` is called on rank 0 after each epoch with the model in eval mode.
    Ctrl-C saves the last checkpoint before returning.
    """
    rank, world_size = _init_distributed()
    if params.get("resume"):
        run_dir, data_config, model_config, config = _resumed_configs(params)
    else:
        data_config, model_config, config = configs_from_params(params)
        run_dir = _new_run_dir(config.savemodeldir, world_size)
    if config.per_step and world_size > 1:
        raise ValueError("per_step is a single-process comparison mode; run it without torchrun")
    device = _pick_device(config.device)

    dataset = MuLawAudioDataset(data_config)
    torch.manual_seed(config.seed)
    model = RNN(model_config).to(device)
    optimizer = torch.optim.Adam(model.parameters(), lr=config.lr)
    start_epoch, history = 0, []
    if config.resume:
        checkpoint = load_checkpoint(run_dir / LAST_CHECKPOINT, device)
        model.load_state_dict(checkpoint["model"])
        optimizer.load_state_dict(checkpoint["optimizer"])
        start_epoch, history = checkpoint["epoch"], list(checkpoint["loss_history"])
    trained = torch.nn.parallel.DistributedDataParallel(model) if world_size > 1 else model

    run = _Run(run_dir, writes=rank == 0)
    if rank == 0:
        write_config(run_dir, data_config, model_config, config)
    epoch = start_epoch
    bar = tqdm(total=(config.num_epochs - start_epoch) * config.batches_per_epoch, disable=rank != 0,
               desc=f"training {run_dir.name}", unit="batch")
    try:
        for epoch in range(start_epoch, config.num_epochs):
            loss = _train_epoch(trained, dataset, optimizer, config, device, epoch, rank, world_size, bar, run)
            history.append(loss)
            epoch += 1  # epochs completed, as stored in checkpoints
            run.save(model, optimizer, epoch, history, model_config,
                     also_numbered=epoch % config.savemodel_interval == 0 or epoch == config.num_epochs)
            if run.tensorboard:
                run.tensorboard.add_scalar("loss/epoch", loss, epoch)
            if on_epoch_end and rank == 0:
                model.eval()
                on_epoch_end(epoch, loss, model)
                model.train()
    except KeyboardInterrupt:
        run.save(model, optimizer, epoch, history, model_config, also_numbered=False)
        bar.write(f"interrupted: saved {run_dir / LAST_CHECKPOINT} after {epoch} epochs; "
                  f"resume with resume='{run_dir}'")
    finally:
        bar.close()
        run.close(history)
    return run_dir


def _train_epoch(model: torch.nn.Module, dataset: MuLawAudioDataset, optimizer: torch.optim.Optimizer,
                 config: TrainConfig, device: torch.device, epoch: int, rank: int, world_size: int,
                 bar: tqdm, run: _Run) -> float:
    """Return the mean loss (over batches and ranks) of one epoch of training."""
    generator = torch.Generator().manual_seed(_epoch_seed(config.seed, epoch, rank))
    torch.manual_seed(_epoch_seed(config.seed, epoch, rank) + 1)  # dropout
    model.train()
    total = torch.zeros((), device=device)
    for batch in range(config.batches_per_epoch):
        inputs, targets = dataset.sample_batch(config.batch_size, generator)
        inputs, targets = inputs.to(device, non_blocking=True), targets.to(device, non_blocking=True)
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=config.bf16 and device.type == "cuda"):
            logits = forward_per_step(model, inputs) if config.per_step else model(inputs)[0]
        loss = F.cross_entropy(logits.float().flatten(0, 1), targets.flatten())
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        total += loss.detach()
        bar.update()
        if run.tensorboard:
            value = loss.item()
            bar.set_postfix(epoch=epoch + 1, loss=f"{value:.3f}", refresh=False)
            run.tensorboard.add_scalar("loss/batch", value, epoch * config.batches_per_epoch + batch)
    if world_size > 1:
        dist.all_reduce(total)
        total /= world_size
    return total.item() / config.batches_per_epoch


def _parse_args(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--preset", choices=PRESETS, default="default",
                        help="quick: about ten minutes on two CPU cores; default: the original's schedule")
    parser.add_argument("--datadir", help="folder of training wavs (default data/nsynth.64.76_sm)")
    parser.add_argument("--param", action="append", metavar="NAME=MIN:MAX", dest="props",
                        help="a conditioning parameter read from file names and its range; repeat for each "
                             "(default instID=1:2 a=0:1 p=64:76)")
    parser.add_argument("--exclude", action="append", metavar="NAME=V1,V2",
                        help="hold out files with these parameter values, e.g. p=67,71")
    for key, kind in [("num_epochs", int), ("batches_per_epoch", int), ("batch_size", int), ("seqLen", int),
                      ("lr", float), ("noise", float), ("hiddenSize", int), ("nLayers", int),
                      ("numtokens", int), ("dropout", float), ("sample_rate", int), ("savemodeldir", str),
                      ("savemodel_interval", int), ("seed", int), ("device", str)]:
        parser.add_argument(f"--{key}", type=kind)
    parser.add_argument("--resume", metavar="RUN_DIR", help="continue a run folder")
    parser.add_argument("--per_step", action="store_true", default=None, help="one GRU call per time step")
    parser.add_argument("--bf16", action="store_true", default=None, help="bf16 autocast on CUDA")
    args = vars(parser.parse_args(argv))
    params = dict(PRESETS[args.pop("preset")])
    if args["props"]:
        args["props"] = dict(_parse_range(text) for text in args["props"])
    if args["exclude"]:
        args["exclude"] = {name: [float(v) for v in values.split(",")]
                           for name, values in (text.split("=", 1) for text in args["exclude"])}
    params.update({k: v for k, v in args.items() if v is not None})
    return params


def _parse_range(text: str) -> tuple[str, tuple[float, float]]:
    try:
        name, span = text.split("=", 1)
        low, high = span.split(":")
        return name, (float(low), float(high))
    except ValueError:
        raise SystemExit(f"--param {text!r}: write it as NAME=MIN:MAX, e.g. p=64:76") from None


if __name__ == "__main__":
    try:
        folder = train(_parse_args())
    except (ValueError, FileNotFoundError) as error:
        raise SystemExit(f"error: {error}") from None
    print(f"run folder: {folder}")
