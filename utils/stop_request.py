"""Ctrl-C (or SIGTERM) during training, turned into a stop at the next batch on every rank."""
from __future__ import annotations

import signal
import sys
import threading

import torch
import torch.distributed as dist
from tqdm.auto import tqdm

# Ctrl-C, and what a scheduler, `kill` or a shutdown sends: both stop training after saving.
STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)


class StopRequested(Exception):
    """Ctrl-C or SIGTERM, acted on between two batches, where the model and the optimizer agree with the losses
    recorded."""


class StopRequest:
    """Ctrl-C or SIGTERM turned into a request that every rank reads before the same batch.

    A KeyboardInterrupt raised wherever the signal lands could split a batch (Adam's update half done) and, under
    torchrun, which passes SIGINT to each rank wherever it is, leave the other ranks waiting in a collective; an
    unhandled SIGTERM ends the process with no save at all. So the first signal is noted and training stops at the
    next batch on all ranks; a second one stops at once, without saving.
    """

    def __init__(self, world_size: int, announce: bool) -> None:
        self.world_size, self.announce = world_size, announce
        self.requested, self.previous_handlers = False, {}

    def __enter__(self) -> StopRequest:
        if threading.current_thread() is threading.main_thread():  # the only thread that may handle signals
            self.previous_handlers = {signum: signal.signal(signum, self._note) for signum in STOP_SIGNALS}
        return self

    def __exit__(self, *exc_info: object) -> None:
        for signum, previous in self.previous_handlers.items():
            # None: a handler set outside Python, which cannot be put back; Python's own is the usual one.
            if previous is None:
                previous = signal.default_int_handler if signum == signal.SIGINT else signal.SIG_DFL
            signal.signal(signum, previous)

    def _note(self, signum: int, frame: object) -> None:
        if self.requested:
            raise KeyboardInterrupt
        self.requested = True
        if self.announce:
            name = "Ctrl-C" if signum == signal.SIGINT else signal.Signals(signum).name
            tqdm.write(f"{name}: stopping after this batch and saving (send it again to stop at once, without "
                       "saving)", file=sys.stderr)

    def check(self) -> None:
        """Raise StopRequested on every rank once any rank has been interrupted."""
        requested = self.requested
        if self.world_size > 1:
            flag = torch.tensor([float(requested)])
            dist.all_reduce(flag, op=dist.ReduceOp.MAX)  # on the CPU: no wait for the GPU
            requested = bool(flag.item())
        if requested:
            raise StopRequested
