"""How close the C runtime's loop comes to this CPU's fp32 limits, for one voice and for a pass of 16.

Run from the repository root: .venv/bin/python -m bench.bench_fp32_limits [--run_directory RUN] [--rounds 5]
Builds runtime/tools/fp32_limits (`make -C runtime limits`, this machine's own instructions), which measures on one
core, in process time:
- the arithmetic limit: independent fused multiply-adds in registers;
- the stream limit: multiply-adds whose weights, as many as the model has, are read one after another from wherever
  they fit (the default model's 245 KB: the L2 cache), as one voice must read all of them every sample;
then times the runtime rendering 1 and 16 voices (top 3, process time, the median of --rounds), and prints each as
multiply-adds a second, microseconds a voice-sample and times real time, with its share of the limit that bounds it.
"""
from __future__ import annotations

import argparse
import statistics
import subprocess
import time
from pathlib import Path

import numpy as np

from model.c_sampler import kernel
from model.gru_audio_model import RNN
from model.sampler import silent_voices
from utils.run_folder import load_model

RUNTIME = Path(__file__).resolve().parent.parent / "runtime"


def multiply_adds(model: RNN) -> int:
    """Return the multiply-adds of one sample: layer 0's folded input, the recurrences, layer to layer, the output."""
    c = model.config
    gates = 3 * c.hidden_size
    between = c.hidden_size + (c.cond_size if c.cond_every_layer else 0)
    return ((1 + c.cond_size) * gates + c.num_layers * c.hidden_size * gates
            + (c.num_layers - 1) * between * gates + c.hidden_size * c.numtokens)


def machine_limits(weights: int, seconds: float) -> dict[str, float]:
    """Return {"arithmetic": ..., "stream": ...} in multiply-adds a second from runtime/tools/fp32_limits."""
    subprocess.run(["make", "-s", "-C", str(RUNTIME), "limits"], check=True)
    out = subprocess.run([str(RUNTIME / "tools" / "fp32_limits"), str(weights), str(seconds)], check=True,
                         capture_output=True, text=True).stdout
    return {name: float(value) * 1e9 for name, value in (line.split() for line in out.splitlines())}


def runtime_seconds_per_voice_sample(model: RNN, encode: bool, voices: int, rounds: int) -> float:
    """Return the median process time per voice-sample of the C runtime rendering `voices` voices together."""
    stream = silent_voices(model, voices, "c", encode, seed=0, threads=1)
    length = max(4000, 64000 // voices)
    cond = np.random.default_rng(0).uniform(size=(voices, length, model.config.cond_size)).astype(np.float32)
    stream.sample(cond[:, :100], 3, 1.0)
    times = []
    for _ in range(rounds):
        start = time.process_time()
        stream.sample(cond, 3, 1.0)
        times.append(time.process_time() - start)
    return statistics.median(times) / (voices * length)


def main(argv: list[str] | None = None) -> None:
    """Command line: print the limits and the runtime beside them."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--run_directory", default=str(Path("tests") / "fixtures" / "quick_run"))
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--seconds", type=float, default=2.0, help="how long the stream limit is measured")
    args = parser.parse_args(argv)
    model, config = load_model(args.run_directory, "cpu")
    data, macs = config["data"], multiply_adds(model)
    limits = machine_limits(macs, args.seconds)
    print(f"{args.run_directory}: {macs:,} multiply-adds a sample ({4 * macs / 1000:.0f} KB of fp32 weights), "
          f"{data.sample_rate} Hz; the runtime's {kernel()} kernel; one core, process time")
    print(f"{'':<44} {'G mult-adds/s':>13} {'us/voice-sample':>16} {'x real time':>12}")

    def row(name: str, rate: float, note: str = "") -> None:
        print(f"{name:<44} {rate / 1e9:>13.1f} {1e6 * macs / rate:>16.2f} {rate / macs / data.sample_rate:>12.1f}"
              f"  {note}".rstrip())

    row("arithmetic limit (FMAs in registers)", limits["arithmetic"])
    row("stream limit (one voice's weights, in turn)", limits["stream"])
    for voices, bound in ((1, "stream"), (16, "arithmetic")):
        rate = macs / runtime_seconds_per_voice_sample(model, data.encode, voices, args.rounds)
        row(f"C runtime, {voices} voice{'s' if voices > 1 else ''}", rate,
            f"{100 * rate / limits[bound]:.0f} % of the {bound} limit")
    print(f"two cores at the arithmetic limit: {2 * limits['arithmetic'] / macs:,.0f} samples/s")


if __name__ == "__main__":
    main()
