"""Training speed: the per-step GRU loop against one GRU call a batch, and data loading's share of a step.

Run from the repository root: .venv/bin/python -m bench.bench_training [--batch 256] [--seq 256] [--repeats 5]
A default-shaped model in training mode (dropout on); a step is forward, backward and Adam, on a batch drawn
from 260 noise files of 2.5 s held in memory. Figures are medians of the timed batches after one warm-up.
The per-step loop is the original's algorithm: one model call per time step, each of which RNN.forward hands to
nn.GRU, as the original did. The whole sequence is one model call per batch: cuDNN's GRU on CUDA, and on CPU the
GRU layer of model/cpu_gru.py (the same arithmetic, with a backward that does not replay every step's cell).
With --full_schedule the original's schedule (40 epochs x 100 batches) is also run for real through train().

With --busy it measures instead how training's speed holds up on a busy machine, for each thread choice: batches/s
of the quick preset's shape (64 x 256, whole sequence) with the machine as it is ("quiet") and beside two
single-thread busy loops at nice 19, started either each in a session of its own, as programs from another terminal
would be (Linux's autogroup scheduling then gives each a session's share, whatever its niceness), or in the bench's
own session (where nice 19 leaves them little). Each choice runs in a fresh
process for --busy_seconds (whole batches counted), the choices and loads taking turns for --rounds rounds; figures
are medians over rounds.
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Callable

import numpy as np
import soundfile as sf
import torch

from audioDataLoader.audio_dataset import AudioDatasetConfig, MuLawAudioDataset
from model.gru_audio_model import RNN, GRUAudioConfig
from train import train, train_step
from utils.training_config import PRESETS, TrainConfig

SAMPLE_RATE = 16000
SPECS = {"instID": (1.0, 2.0), "a": (0.0, 1.0), "p": (64.0, 76.0)}


def write_noise_files(folder: Path, files: int, seconds: float) -> None:
    """Write `files` noise wavs named with the default parameters, standing in for a real data set."""
    rng = np.random.default_rng(0)
    for i in range(files):
        name = f"noise{i:03d}_instID{1 + i % 2:.2f}_a{i % 5 / 4:.2f}_p{64 + i % 13:.2f}.wav"
        sf.write(folder / name, rng.uniform(-0.5, 0.5, int(seconds * SAMPLE_RATE)).astype(np.float32), SAMPLE_RATE)


def median_seconds(works: dict[str, Callable[[], object]], repeats: int, device: torch.device) -> dict[str, float]:
    """Return each work's median wall time over `repeats` calls after one warm-up call.

    The works take turns, so a change in the machine's load (other users of the cores) hits all of them alike.
    """
    for work in works.values():
        work()
    times = {name: [] for name in works}
    for _ in range(repeats):
        for name, work in works.items():
            _synchronize(device)
            start = time.perf_counter()
            work()
            _synchronize(device)
            times[name].append(time.perf_counter() - start)
    return {name: statistics.median(values) for name, values in times.items()}


def _synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def training_step(batch: tuple[torch.Tensor, torch.Tensor], device: torch.device, per_step: bool,
                  bf16: bool = False) -> Callable[[], torch.Tensor]:
    """Return a function that runs one training step (forward, backward, Adam) of a fresh default model."""
    torch.manual_seed(0)
    model = RNN(GRUAudioConfig(cond_size=len(SPECS))).to(device).train()
    optimizer = torch.optim.Adam(model.parameters(), lr=TrainConfig.lr)
    inputs, targets = (t.to(device) for t in batch)
    return lambda: train_step(model, optimizer, inputs, targets, per_step, bf16)


def full_schedule_seconds(data_dir: Path, seq: int, output_dir: Path) -> float:
    """Return the wall time of train() with the original's schedule (40 x 100 batches of 256) on `data_dir`."""
    start = time.perf_counter()
    train({"datadir": str(data_dir), "props": SPECS, "seqLen": seq, "savemodeldir": str(output_dir),
           "threads": torch.get_num_threads()})  # --threads
    return time.perf_counter() - start


def print_batches_per_second(threads: int, batch: int, seq: int, seconds: float) -> None:
    """Train a fresh model on `threads` threads for `seconds`, then print its batches/s as JSON and exit.

    Run in a process of its own: OpenMP reads its wait policy once, when the process loads it. The process ends at
    `seconds` even inside a batch (two spinning threads on a busy machine took 95 s for one), counting whole batches.
    """
    torch.set_num_threads(threads)
    step = training_step((torch.rand(batch, seq, 1 + len(SPECS)), torch.randint(0, 256, (batch, seq))),
                         torch.device("cpu"), per_step=False)
    step()  # warm-up
    done, start = [], time.perf_counter()

    def report() -> None:
        print(json.dumps({"batches/s": len(done) / (time.perf_counter() - start)}), flush=True)
        os._exit(0)

    threading.Timer(seconds, report).start()
    while True:
        step()
        done.append(time.perf_counter())


@contextmanager
def busy_processes(count: int, own_sessions: bool, niceness: int = 19) -> Iterator[None]:
    """Keep `count` single-thread busy loops running at `niceness` for the block, each in a session of its own
    (as programs started from another terminal) or in this one's."""
    loops = [subprocess.Popen([sys.executable, "-c", f"import os\nos.nice({niceness})\nwhile True: pass"],
                              start_new_session=own_sessions) for _ in range(count)]
    try:
        yield
    finally:
        for loop in loops:
            loop.kill()
            loop.wait()


# Linux's autogroup scheduling (on by default on desktops) shares the cores between sessions first, and niceness
# counts only within a session: two busy loops in sessions of their own each get a session's share, nice 19 or not.
LOADS = {"quiet": (0, False), "busy, own sessions": (2, True), "busy, this session": (2, False)}


def busy_machine_table(batch: int, seq: int, seconds: float, rounds: int) -> str:
    """Return the table of batches/s per thread choice, quiet and beside two busy loops, with their ratios."""
    cores = os.cpu_count() or 1
    choices = {f"{cores} threads (torch's default, before)": (cores, {}),
               f"{cores} threads, OMP_WAIT_POLICY=PASSIVE": (cores, {"OMP_WAIT_POLICY": "PASSIVE"}),
               "1 thread (train.py's default now)": (1, {})}
    runs = {(name, load): [] for name in choices for load in LOADS}
    for _ in range(rounds):
        for load, (count, own_sessions) in LOADS.items():
            with busy_processes(count, own_sessions):
                for name, (threads, env) in choices.items():
                    runs[name, load].append(_timed_process(threads, env, batch, seq, seconds))
    busy = [load for load in LOADS if load != "quiet"]
    lines = [f"{'threads':<40} {'quiet b/s':>9} " + " ".join(f"{load + ' b/s (/ quiet)':>31}" for load in busy)]
    for name in choices:
        quiet = statistics.median(runs[name, "quiet"])
        medians = [statistics.median(runs[name, load]) for load in busy]
        cells = [f"{median:>19.2f} ({100 * median / quiet:>3.0f} %)" for median in medians]
        lines.append(f"{name:<40} {quiet:>9.2f} " + " ".join(f"{cell:>31}" for cell in cells))
    return "\n".join(lines)


def _timed_process(threads: int, env: dict[str, str], batch: int, seq: int, seconds: float) -> float:
    code = (f"from bench.bench_training import print_batches_per_second; "
            f"print_batches_per_second({threads}, {batch}, {seq}, {seconds})")
    result = subprocess.run([sys.executable, "-c", code], env={**os.environ, **env}, capture_output=True, text=True,
                            cwd=Path(__file__).resolve().parent.parent, check=True)
    return json.loads(result.stdout.splitlines()[-1])["batches/s"]


def main(argv: list[str] | None = None) -> None:
    """Command line: print seconds per batch and sample-steps/s of each path, their ratio, and data loading."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--batch", type=int, default=TrainConfig.batch_size)
    parser.add_argument("--seq", type=int, default=AudioDatasetConfig.sequence_length)
    parser.add_argument("--repeats", type=int, default=5, help="timed batches per path, after one warm-up")
    parser.add_argument("--threads", type=int, default=torch.get_num_threads(), help="torch CPU threads")
    parser.add_argument("--files", type=int, default=260, help="noise files in the synthetic data set")
    parser.add_argument("--seconds", type=float, default=2.5, help="length of each noise file")
    parser.add_argument("--full_schedule", action="store_true",
                        help="also run the original's 40 x 100 batches through train() (about 40 minutes on a "
                             "2-core CPU; not yet measured on a GPU)")
    parser.add_argument("--busy", action="store_true",
                        help="only the busy-machine comparison of thread choices (quick preset's batch)")
    parser.add_argument("--busy_seconds", type=float, default=10.0, help="--busy: seconds each timed process trains")
    parser.add_argument("--rounds", type=int, default=3, help="--busy: rounds of every choice and load")
    args = parser.parse_args(argv)
    if args.busy:
        print_busy_machine(args)
        return
    torch.set_num_threads(args.threads)
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")

    with tempfile.TemporaryDirectory() as folder:
        data_dir = Path(folder) / "data"
        data_dir.mkdir()
        write_noise_files(data_dir, args.files, args.seconds)
        dataset = MuLawAudioDataset(AudioDatasetConfig(data_dir=str(data_dir), parameter_specs=SPECS,
                                                       sequence_length=args.seq))
        generator = torch.Generator().manual_seed(0)
        batch = dataset.sample_batch(args.batch, generator)
        works = {"per-step loop": training_step(batch, device, per_step=True),
                 "whole sequence": training_step(batch, device, per_step=False)}
        if device.type == "cuda":
            works["whole sequence, bf16"] = training_step(batch, device, per_step=False, bf16=True)
        works["data loading"] = lambda: dataset.sample_batch(args.batch, generator)
        rows = median_seconds(works, args.repeats, device)
        loading = rows.pop("data loading")

        threads = f", {args.threads} CPU threads" if device.type == "cpu" else f" ({torch.cuda.get_device_name()})"
        print(f"device {device}{threads}; batch {args.batch} x {args.seq} samples; "
              f"median of {args.repeats} steps after a warm-up")
        print(f"{'path':<22} {'s/batch':>8} {'sample-steps/s':>15} {'/ per-step loop':>16}")
        for name, seconds in rows.items():
            print(f"{name:<22} {seconds:>8.3f} {args.batch * args.seq / seconds:>15,.0f} "
                  f"{rows['per-step loop'] / seconds:>16.2f}")
        whole = rows["whole sequence"]
        print(f"\ntime per training batch (whole sequence, forward+backward+Adam): {whole:.3f} s")
        print(f"data loading (sample_batch of {args.batch} x {args.seq} from {args.files} x {args.seconds} s in memory): "
              f"{loading * 1e3:.1f} ms = {100 * loading / (loading + whole):.1f} % of a training step (goal < 5 %)")
        estimate = TrainConfig.num_epochs * TrainConfig.batches_per_epoch * (whole + loading)
        print(f"original schedule ({TrainConfig.num_epochs} epochs x {TrainConfig.batches_per_epoch} batches) "
              f"at this batch: {estimate / 60:.1f} min estimated from the measured batch")
        if args.full_schedule:
            measured = full_schedule_seconds(data_dir, args.seq, Path(folder) / "output")
            print(f"original schedule run through train(): {measured / 60:.1f} min")


def print_busy_machine(args: argparse.Namespace) -> None:
    """Print the busy-machine table for the quick preset's batch, with the machine's load around it."""
    batch = PRESETS["quick"]["batch_size"]
    print(f"training batches/s, {batch} x {args.seq} samples (the quick preset), median of {args.rounds} rounds of "
          f"{args.busy_seconds:g} s; load average before: {os.getloadavg()[0]:.2f}")
    print(busy_machine_table(batch, args.seq, args.busy_seconds, args.rounds))
    print(f"load average after: {os.getloadavg()[0]:.2f} (the bench's own processes included)")


if __name__ == "__main__":
    main()
