"""torchrun's process group as seen by training: ranks, each rank's device, and the losses averaged over ranks."""
from __future__ import annotations

import gc
import os
from contextlib import contextmanager
from typing import Iterator

import torch
import torch.distributed as dist

from utils.checks import available_device


@contextmanager
def process_group() -> Iterator[tuple[int, int]]:
    """Yield (rank, world_size), inside the process group that torchrun describes in the environment."""
    world_size = int(os.environ.get("WORLD_SIZE", "1"))
    if world_size == 1:
        yield 0, 1
        return
    joined = not dist.is_initialized()
    if joined:
        # CPU tensors (the stop flag, the starting point) go through gloo even where gradients go through NCCL.
        dist.init_process_group("cpu:gloo,cuda:nccl" if torch.cuda.is_available() else "gloo")
    try:
        yield dist.get_rank(), world_size
    finally:
        if joined:
            # DDP's reducer sits in reference cycles that hold the group; left to interpreter exit, a gloo worker
            # thread releasing its last collective can abort the process ("terminate called without an active
            # exception"). Collecting them first lets the group join its threads here.
            gc.collect()
            dist.destroy_process_group()


def pick_device(name: str) -> torch.device:
    """Return the device to train on: "auto" is CUDA when available, and a bare "cuda" is this rank's GPU."""
    if name == "auto":
        name = "cuda" if torch.cuda.is_available() else "cpu"
    device = available_device(name)
    if device.type == "cuda" and device.index is None:
        device = torch.device("cuda", int(os.environ.get("LOCAL_RANK", "0")))
    return device


def mean_over_ranks(losses: list[torch.Tensor], world_size: int) -> list[float]:
    """Return this rank's batch losses averaged batch by batch over all ranks (which stop at the same batch)."""
    if not losses:
        return []
    values = torch.stack(losses)
    if world_size > 1:
        dist.all_reduce(values)  # a sum: gloo has no average
        values /= world_size
    return values.tolist()
