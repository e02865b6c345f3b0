"""Ctrl-C during training, turned into a stop at the next batch on every rank."""
from __future__ import annotations

import signal
import sys
import threading

import torch
import torch.distributed as dist
from tqdm.auto import tqdm


class StopRequested(Exception):
    """Ctrl-C, acted on between two batches, where the model and the optimizer agree with the losses recorded."""


class StopRequest:
    """Ctrl-C turned into a request that every rank reads before the same batch.

    A KeyboardInterrupt raised wherever the signal lands could split a batch (Adam's update half done) and, under
    torchrun, which passes SIGINT to each rank wherever it is, leave the other ranks waiting in a collective. So
    the first Ctrl-C is noted and training stops at the next batch on all ranks; a second one stops at once,
    without saving.
    """

    def __init__(self, world_size: int, announce: bool) -> None:
        self.world_size, self.announce = world_size, announce
        self.requested, self.installed, self.previous_handler = False, False, None

    def __enter__(self) -> StopRequest:
        if threading.current_thread() is threading.main_thread():  # the only thread that may handle signals
            self.previous_handler = signal.signal(signal.SIGINT, self._note)
            self.installed = True
        return self

    def __exit__(self, *exc_info: object) -> None:
        if self.installed:
            # None: a handler set outside Python, which cannot be put back; Python's own is the usual one.
            previous = signal.default_int_handler if self.previous_handler is None else self.previous_handler
            signal.signal(signal.SIGINT, previous)

    def _note(self, signum: int, frame: object) -> None:
        if self.requested:
            raise KeyboardInterrupt
        self.requested = True
        if self.announce:
            tqdm.write("Ctrl-C: stopping after this batch and saving (press again to stop at once, without saving)",
                       file=sys.stderr)

    def check(self) -> None:
        """Raise StopRequested on every rank once any rank has been interrupted."""
        requested = self.requested
        if self.world_size > 1:
            flag = torch.tensor([float(requested)])
            dist.all_reduce(flag, op=dist.ReduceOp.MAX)  # on the CPU: no wait for the GPU
            requested = bool(flag.item())
        if requested:
            raise StopRequested
