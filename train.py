"""Train the conditioned sample-level GRU: teacher forcing, cross-entropy over every step, Adam.

One process: `python train.py --preset quick`. Several (DDP): `torchrun --nproc_per_node=N train.py ...`.
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Callable

import numpy as np
import torch
import torch.distributed as dist
import torch.nn.functional as F
from tqdm.auto import tqdm

from audioDataLoader.audio_dataset import AudioDatasetConfig, MuLawAudioDataset
from model.gru_audio_model import RNN, GRUAudioConfig
from utils.atomic_write import DiskFull
from utils.command_line import named_numbers
from utils.distributed import mean_over_ranks, pick_device, process_group
from utils.lr_schedule import learning_rate
from utils.run_folder import (
    CONFIG_NAME,
    LAST_CHECKPOINT,
    config_section,
    load_checkpoint,
    new_run_dir,
    read_config,
    remove_stale_temporaries,
    save_checkpoint,
    write_atomically,
    write_config,
)
from utils.stop_request import StopRequest, StopRequested
from utils.training_config import DATA_KEYS, MODEL_KEYS, PRESETS, TRAIN_KEYS, TrainConfig, configs_from_params

# PyTorch threads for training, a setting of the machine rather than of the run (so not in config.json). One by
# default: beside other busy programs two OpenMP threads wait for each other at every one of a batch's thousands of
# barriers whenever one is descheduled. On the 2-core machine beside two busy loops of other sessions, two threads
# trained the quick preset at 0.13-0.32 batches/s and one thread at 1.8-2.3; idle, two gave 6.2 and one 4.1
# (bench/bench_training.py --busy; docs/results/speed.md#training-on-a-busy-machine).
DEFAULT_THREADS = 1


def _batch_seeds(seed: int, epoch: int, batch: int, rank: int) -> tuple[int, int]:
    """Return seeds for one rank's batch and its dropout: a run resumed at any batch draws what it would have."""
    data_seed, dropout_seed = np.random.SeedSequence([seed, epoch, batch, rank]).generate_state(2)
    return int(data_seed), int(dropout_seed)


@dataclass
class _Start:
    """Where a run begins: its folder, its configs, and the checkpoint it continues (None for a new run)."""

    run_dir: Path
    data: AudioDatasetConfig
    model: GRUAudioConfig
    train: TrainConfig
    checkpoint: dict | None

    def history(self) -> list[float]:
        """Return the mean loss of each epoch already trained."""
        return list(self.checkpoint["loss_history"]) if self.checkpoint else []

    def epoch_in_progress(self) -> list[float]:
        """Return the batch losses of an epoch that Ctrl-C stopped part way (empty if it stopped between epochs)."""
        return list(self.checkpoint.get("epoch_batch_losses", [])) if self.checkpoint else []


def _starting_point(params: dict) -> _Start:
    """Return a new run folder and the configs for `params`, or the resumed run's folder, configs and checkpoint.

    The data folder is kept as an absolute path, so the run folder works from anywhere. With `resume`, training
    keys and `datadir` (for data that has moved) take precedence over the saved settings; other data and model
    keys may be given (a notebook passes them all) but must equal the run's.
    """
    data, model, config = configs_from_params({k: v for k, v in params.items() if k != "resume"})
    data = replace(data, data_dir=str(Path(data.data_dir).resolve()),
                   labels=data.labels and str(Path(data.labels).resolve()))
    if not params.get("resume"):
        return _Start(new_run_dir(config.savemodeldir), data, model, config, None)
    run_dir = Path(params["resume"])
    saved = read_config(run_dir)
    remove_stale_temporaries(run_dir)  # left by a kill during a checkpoint write
    changed = [key for key, name in DATA_KEYS.items()
               if key in params and key != "datadir" and getattr(data, name) != getattr(saved["data"], name)]
    changed += [key for key, name in MODEL_KEYS.items()
                if key in params and getattr(model, name) != getattr(saved["model"], name)]
    if changed:
        raise ValueError(f"{run_dir} was trained with other {sorted(set(changed))}; a resumed run keeps its data and "
                         "model settings, so leave these out (or set them as in its config.json), or start a new run")
    saved_train = config_section(saved, "train", TrainConfig, run_dir / CONFIG_NAME)
    config = replace(saved_train, **{k: v for k, v in params.items() if k in TRAIN_KEYS})
    if "datadir" in params:
        saved["data"] = replace(saved["data"], data_dir=data.data_dir)
    return _Start(run_dir, saved["data"], saved["model"], config, load_checkpoint(run_dir / LAST_CHECKPOINT))


def _shared_starting_point(params: dict, rank: int, world_size: int) -> _Start:
    """Return rank 0's starting point on every rank: only rank 0 touches the run folder, so no rank needs its disk."""
    if world_size == 1:
        return _starting_point(params)
    start = [_starting_point(params) if rank == 0 else None]
    dist.broadcast_object_list(start, src=0)
    return start[0]


def forward_per_step(model: RNN, x: torch.Tensor) -> torch.Tensor:
    """Return logits (B, T, N) computed with one GRU call per time step, as the original did."""
    hidden = model.init_hidden(x.shape[0], x.device)
    logits = []
    for t in range(x.shape[1]):
        out, hidden = model(x[:, t:t + 1], hidden)
        logits.append(out)
    return torch.cat(logits, dim=1)


def train_step(model: torch.nn.Module, optimizer: torch.optim.Optimizer, inputs: torch.Tensor,
               targets: torch.Tensor, per_step: bool = False, bf16: bool = False,
               grad_clip: float = 0.0) -> torch.Tensor:
    """Return the batch's loss (detached, not synchronised) after one forward, backward and optimizer step.

    grad_clip > 0 scales the gradients down where their norm, all parameters together, exceeds it.
    """
    with torch.autocast(inputs.device.type, dtype=torch.bfloat16, enabled=bf16 and inputs.device.type == "cuda"):
        logits = forward_per_step(model, inputs) if per_step else model(inputs)[0]
    loss = F.cross_entropy(logits.float().flatten(0, 1), targets.flatten())
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    if grad_clip > 0:
        torch.nn.utils.clip_grad_norm_(model.parameters(), grad_clip)
    optimizer.step()
    return loss.detach()


class _Run:
    """Files of one run folder and the progress bar, written by rank 0 only."""

    def __init__(self, start: _Start, writes: bool) -> None:
        self.dir, self.writes, self.model_config = start.run_dir, writes, start.model
        self.tensorboard = None
        if writes:
            from torch.utils.tensorboard import SummaryWriter  # slow import, only where it is used

            write_config(self.dir, start.data, start.model, start.train)
            self.tensorboard = SummaryWriter(str(self.dir / "tensorboard"))
        batches = ((start.train.num_epochs - len(start.history())) * start.train.batches_per_epoch
                   - len(start.epoch_in_progress()))
        self.bar = tqdm(total=batches, disable=not writes, desc=f"training {self.dir.name}", unit="batch")

    def save(self, model: RNN, optimizer: torch.optim.Optimizer, history: list[float], numbered: bool,
             epoch_batch_losses: list[float] = ()) -> None:
        """Write the last checkpoint (and a numbered one), with the losses of an epoch stopped part way."""
        if not self.writes:
            return
        checkpoint = {"model": model.state_dict(), "optimizer": optimizer.state_dict(), "epoch": len(history),
                      "loss_history": history, "epoch_batch_losses": list(epoch_batch_losses),
                      "model_config": asdict(self.model_config)}
        save_checkpoint(self.dir / LAST_CHECKPOINT, checkpoint)
        if numbered:
            save_checkpoint(self.dir / "checkpoints" / f"checkpoint_{len(history)}.pt", checkpoint)
        text = json.dumps({"epoch_loss": history}) + "\n"
        write_atomically(self.dir / "loss_history.json", lambda f: f.write(text.encode()))

    def log(self, history: list[float], batch_losses: list[float]) -> None:
        if not self.writes:
            return
        first_batch = (len(history) - 1) * len(batch_losses)
        for batch, value in enumerate(batch_losses):
            self.tensorboard.add_scalar("loss/batch", value, first_batch + batch)
        self.tensorboard.add_scalar("loss/epoch", history[-1], len(history))
        self.bar.set_postfix(epoch=len(history), loss=f"{history[-1]:.3f}")

    def interrupted(self, history: list[float], epoch_batch_losses: list[float]) -> None:
        if self.writes:
            batches = f" and {len(epoch_batch_losses)} batches" if epoch_batch_losses else ""
            self.bar.write(f"interrupted: saved {self.dir / LAST_CHECKPOINT} after {len(history)} epochs{batches}; "
                           f"resume with resume='{self.dir}'")

    def close(self, history: list[float]) -> None:
        self.bar.close()
        if not self.writes:
            return
        self.tensorboard.close()
        if history:
            from utils.utils import plot_loss_curve, save_figure  # matplotlib only where a plot is made

            save_figure(self.dir / "loss_curve.png", plot_loss_curve(history))


@dataclass(frozen=True)
class TrainingOutcome:
    """The run folder, and whether Ctrl-C stopped the run (saved) before its last epoch."""

    run_dir: Path
    interrupted: bool


def train(params: dict, on_epoch_end: Callable[[int, float, RNN], None] | None = None) -> Path:
    """Train a model from a dict of the notebook's keys and return its run folder.

    Under torchrun each rank trains on its own batches and rank 0 alone writes the run folder.
    `on_epoch_end(epoch, loss, model)` is called on rank 0 after each epoch with the model in eval mode.
    Ctrl-C stops at the next batch and saves the last checkpoint, from which `resume` continues exactly.
    """
    return train_run(params, on_epoch_end).run_dir


def train_run(params: dict, on_epoch_end: Callable[[int, float, RNN], None] | None = None) -> TrainingOutcome:
    """Return the run folder and whether Ctrl-C stopped it, after training as `train` does.

    params["threads"] (default DEFAULT_THREADS) is how many CPU threads PyTorch trains with; the caller's count is
    given back afterwards.
    """
    params = dict(params)
    with torch_threads(params.pop("threads", DEFAULT_THREADS)), process_group() as (rank, world_size):
        return _train(params, on_epoch_end, rank, world_size)


@contextmanager
def torch_threads(count: int) -> Iterator[None]:
    """Run the block with PyTorch on `count` CPU threads, then set the caller's count again."""
    if isinstance(count, bool) or not isinstance(count, int) or count < 1:
        raise ValueError(f"threads must be a whole number of at least 1, got {count!r} (--threads on the command "
                         f"line)")
    callers = torch.get_num_threads()
    torch.set_num_threads(count)
    try:
        yield
    finally:
        torch.set_num_threads(callers)


def _train(params: dict, on_epoch_end: Callable[[int, float, RNN], None] | None, rank: int,
           world_size: int) -> TrainingOutcome:
    """Train this rank, removing a new run's folder again if it stops (error, Ctrl-C) before its first checkpoint."""
    start = _shared_starting_point(params, rank, world_size)
    try:
        return _train_from(start, on_epoch_end, rank, world_size)
    except BaseException:
        if rank == 0:
            _remove_unsaved_run(start)
        raise


def _remove_unsaved_run(start: _Start) -> None:
    """Delete a new run's folder that holds no checkpoint, so that no half run is left to be mistaken for one."""
    if start.checkpoint is None and not (start.run_dir / LAST_CHECKPOINT).exists():
        shutil.rmtree(start.run_dir, ignore_errors=True)
        print(f"removed {start.run_dir}: the run stopped before its first checkpoint", file=sys.stderr)


def _train_from(start: _Start, on_epoch_end: Callable[[int, float, RNN], None] | None, rank: int,
                world_size: int) -> TrainingOutcome:
    """Return the outcome after training this rank (apart from train(), so DDP is freed before leaving the group)."""
    config = start.train
    device = _training_device(config, world_size)
    dataset = MuLawAudioDataset(start.data)
    model, optimizer = _model_and_optimizer(start, device)
    trained = torch.nn.parallel.DistributedDataParallel(model) if world_size > 1 else model
    run = _Run(start, writes=rank == 0)
    history = start.history()
    # This rank's losses of the epoch in progress; those of a resumed epoch are already the mean over ranks.
    epoch_losses = [torch.tensor(loss, device=device) for loss in start.epoch_in_progress()]
    interrupted = False
    try:
        with StopRequest(world_size, announce=rank == 0) as stop:
            for epoch in range(len(history), config.num_epochs):
                _train_epoch(trained, optimizer, dataset, config, epoch, rank, run.bar, stop, epoch_losses)
                batch_losses = mean_over_ranks(epoch_losses, world_size)
                epoch_losses.clear()
                history.append(sum(batch_losses) / len(batch_losses))
                done = len(history)
                run.save(model, optimizer, history,
                         numbered=done % config.savemodel_interval == 0 or done == config.num_epochs)
                run.log(history, batch_losses)
                if on_epoch_end and rank == 0:
                    model.eval()
                    on_epoch_end(done, history[-1], model)
    except StopRequested:
        partial = mean_over_ranks(epoch_losses, world_size)
        run.save(model, optimizer, history, numbered=False, epoch_batch_losses=partial)
        run.interrupted(history, partial)
        interrupted = True
    finally:
        run.close(history)
    return TrainingOutcome(start.run_dir, interrupted)


def _training_device(config: TrainConfig, world_size: int) -> torch.device:
    """Return the device to train on, refusing settings that cannot work there."""
    if config.per_step and world_size > 1:
        raise ValueError("per_step is a single-process comparison mode; run it without torchrun")
    device = pick_device(config.device)
    if config.bf16 and device.type != "cuda":
        warnings.warn(f"bf16 autocast is for CUDA only; training on {device} in float32", stacklevel=4)
    if device.type == "cuda":
        torch.cuda.set_device(device)  # NCCL and cuDNN then work on this rank's GPU
    return device


def _model_and_optimizer(start: _Start, device: torch.device) -> tuple[RNN, torch.optim.Optimizer]:
    """Return the model and its Adam, from the seed or from the checkpoint being continued."""
    torch.manual_seed(start.train.seed)
    model = RNN(start.model).to(device)
    optimizer = torch.optim.Adam(model.parameters(), lr=start.train.lr)
    if start.checkpoint:  # the saved state carries the old rate; each batch sets its own
        model.load_state_dict(start.checkpoint["model"])
        optimizer.load_state_dict(start.checkpoint["optimizer"])
    return model, optimizer


def _train_epoch(model: torch.nn.Module, optimizer: torch.optim.Optimizer, dataset: MuLawAudioDataset,
                 config: TrainConfig, epoch: int, rank: int, bar: tqdm, stop: StopRequest,
                 losses: list[torch.Tensor]) -> None:
    """Train the rest of an epoch, appending this rank's loss of each batch to `losses` (left on the device)."""
    device = next(model.parameters()).device
    model.train()
    for batch in range(len(losses), config.batches_per_epoch):
        stop.check()
        data_seed, dropout_seed = _batch_seeds(config.seed, epoch, batch, rank)
        torch.manual_seed(dropout_seed)
        inputs, targets = dataset.sample_batch(config.batch_size, torch.Generator().manual_seed(data_seed))
        inputs, targets = inputs.to(device, non_blocking=True), targets.to(device, non_blocking=True)
        rate = learning_rate(config.lr_schedule, config.lr, epoch * config.batches_per_epoch + batch,
                             config.num_epochs * config.batches_per_epoch, config.warmup, config.lr_final)
        for group in optimizer.param_groups:
            group["lr"] = rate
        losses.append(train_step(model, optimizer, inputs, targets, config.per_step, config.bf16, config.grad_clip))
        bar.update()


def _parse_args(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--preset", choices=PRESETS, default="default",
                        help="quick: about four minutes on two CPU cores; default: the original's schedule")
    parser.add_argument("--datadir", help="folder of training wavs (default data/nsynth.64.76_sm)")
    parser.add_argument("--param", action="append", metavar="NAME=MIN:MAX", dest="props",
                        help="a conditioning parameter read from file names and its range; repeat for each "
                             "(default instID=1:2 a=0:1 p=64:76)")
    parser.add_argument("--labels", metavar="TABLE.csv|.json",
                        help="read each file's parameter values from this table (CSV file,NAME1,...; or NSynth's "
                             "examples.json) instead of its name")
    parser.add_argument("--exclude", action="append", metavar="NAME=V1,V2",
                        help="hold out files with these parameter values, e.g. p=67,71")
    for key, kind in [("num_epochs", int), ("batches_per_epoch", int), ("batch_size", int), ("seqLen", int),
                      ("lr", float), ("lr_schedule", str), ("warmup", float), ("lr_final", float),
                      ("grad_clip", float), ("pitch_parameter", str), ("pitch_shift", float), ("cold_start", float),
                      ("reference_harmonics", int), ("pitch_units", str),
                      ("noise", float), ("hiddenSize", int), ("nLayers", int),
                      ("numtokens", int), ("dropout", float), ("sample_rate", int), ("savemodeldir", str),
                      ("savemodel_interval", int), ("seed", int), ("device", str)]:
        parser.add_argument(f"--{key}", type=kind)
    parser.add_argument("--threads", type=int,
                        help=f"CPU threads PyTorch trains with (default {DEFAULT_THREADS}: the speed holds up "
                             f"beside other busy programs; more may help a large batch on a quiet machine)")
    parser.add_argument("--resume", metavar="RUN_DIR", help="continue a run folder")
    parser.add_argument("--per_step", action="store_true", default=None, help="one GRU call per time step")
    parser.add_argument("--bf16", action="store_true", default=None, help="bf16 autocast on CUDA")
    parser.add_argument("--cond_every_layer", action=argparse.BooleanOptionalAction, default=None,
                        help="feed the parameters to every GRU layer, not only the first")
    args = vars(parser.parse_args(argv))
    params = dict(PRESETS[args.pop("preset")])
    if args["props"]:
        args["props"] = dict(named_numbers(text, "--param", "NAME=MIN:MAX, e.g. p=64:76", counts=(2,))
                             for text in args["props"])
    if args["exclude"]:
        args["exclude"] = dict(named_numbers(text, "--exclude", "NAME=V1,V2, e.g. p=67,71", separator=",")
                               for text in args["exclude"])
    params.update({k: v for k, v in args.items() if v is not None})
    return params


def main(argv: list[str] | None = None) -> int:
    """Command line: train and print the run folder; return 130 when Ctrl-C stopped the run (after saving)."""
    try:
        outcome = train_run(_parse_args(argv))
    except (ValueError, FileNotFoundError, DiskFull) as error:
        raise SystemExit(f"error: {error}") from None
    except KeyboardInterrupt:
        print("interrupted: stopped at once, without saving", file=sys.stderr)
        return 130  # a shell's code for Ctrl-C, so `train.py && evaluate.py` stops here
    if int(os.environ.get("RANK", "0")) == 0:
        print(f"run folder: {outcome.run_dir}")
    return 130 if outcome.interrupted else 0


if __name__ == "__main__":
    sys.exit(main())
