"""Generation speed at 16 kHz: the per-step PyTorch loop, the compiled numba sampler, the C runtime (backend "c",
one voice on one thread), and many voices at once.

Run from the repository root: .venv/bin/python -m bench.bench_generation [--seconds 1] [--repeats 3]
An untrained model of the default shape; numba's compile time is left out (each stream renders a first block
before the timing). Figures are medians over the repeats, samples/s counting all voices together.
"""
from __future__ import annotations

import argparse
import os
import statistics
from dataclasses import dataclass

import numba
import numpy as np
import torch

from audioDataLoader.audio_dataset import AudioDatasetConfig
from model.generation import SynthStream
from model.gru_audio_model import RNN, GRUAudioConfig
from model.reference import PeriodicReference

SAMPLE_RATE = 16000


@dataclass(frozen=True)
class Case:
    """One row of the table: which sampler, how many voices, on how many threads."""

    backend: str
    voices: int
    threads: int


def samples_per_second(model: RNN, case: Case, length: int, repeats: int,
                       reference: PeriodicReference | None = None) -> float:
    """Return the median samples/s (all voices) of a stream rendering blocks of `length` samples per voice."""
    torch.set_num_threads(case.threads)
    numba.set_num_threads(case.threads)
    parameters = model.config.cond_size - (reference.size if reference else 0)
    cond = np.random.default_rng(0).uniform(size=(case.voices, length, parameters)).astype(np.float32)
    stream = SynthStream(model, seed=0, backend=case.backend, sample_rate=SAMPLE_RATE, reference=reference)
    stream.render(cond[:, :32])
    rates = []
    for _ in range(repeats):
        stream.render(cond)
        rates.append(stream.rate.samples_per_second)
    return statistics.median(rates)


def c_over_numba(model: RNN, length: int, repeats: int) -> float:
    """Return the median over rounds of C's samples/s over numba's, one voice on one thread each.

    Each round renders one block with each, back to back, so that a shared machine's swings hit both alike.
    """
    numba.set_num_threads(1)
    cond = np.random.default_rng(0).uniform(size=(length, model.config.cond_size)).astype(np.float32)
    streams = [SynthStream(model, seed=0, backend=backend, sample_rate=SAMPLE_RATE) for backend in ("c", "numba")]
    for stream in streams:
        stream.render(cond[:32])
    ratios = []
    for _ in range(repeats):
        rate = {}
        for stream in streams:
            stream.render(cond)
            rate[stream.backend] = stream.rate.samples_per_second
        ratios.append(rate["c"] / rate["numba"])
    return statistics.median(ratios)


def with_reference(length: int, repeats: int, harmonics: int = 3) -> tuple[float, float]:
    """Return (samples/s, that over the speed without) of one voice on numba playing a periodic reference."""
    data = AudioDatasetConfig(pitch_parameter="p", reference_harmonics=harmonics)
    torch.manual_seed(0)
    model = RNN(GRUAudioConfig(cond_size=data.conditioning_size)).eval()
    plain = RNN(GRUAudioConfig()).eval()
    ratios, rates = [], []
    for _ in range(repeats):  # in turns, so that a shared machine's swings hit both alike
        rates.append(samples_per_second(model, Case("numba", 1, 1), length, 1, PeriodicReference.of(data)))
        ratios.append(rates[-1] / samples_per_second(plain, Case("numba", 1, 1), length, 1))
    return statistics.median(rates), statistics.median(ratios)


def main(argv: list[str] | None = None) -> None:
    """Command line: print the table of generation speeds and the ratios between them."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=float, default=1.0, help="audio per voice and repeat, compiled sampler")
    parser.add_argument("--torch_seconds", type=float, default=0.25,
                        help="audio per voice and repeat for the PyTorch loop, which is much slower")
    parser.add_argument("--batch_seconds", type=float, default=0.25, help="audio per voice and repeat, batches")
    parser.add_argument("--voices", type=int, nargs="*", default=[64, 256], help="none: one voice only")
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args(argv)

    torch.manual_seed(0)
    model = RNN(GRUAudioConfig()).eval()
    cores = os.cpu_count() or 1
    seconds = {"torch": args.torch_seconds, "numba": args.seconds, "c": args.seconds}
    cases = [Case("torch", 1, 1), Case("numba", 1, 1), Case("c", 1, 1)]
    for voices in args.voices:
        cases += [Case("torch", voices, cores), Case("numba", voices, 1), Case("numba", voices, cores)]
    rates = {}
    for case in cases:
        length = int((seconds[case.backend] if case.voices == 1 else args.batch_seconds) * SAMPLE_RATE)
        rates[case] = samples_per_second(model, case, length, args.repeats)
    length = int(args.seconds * SAMPLE_RATE)

    reference = rates[Case("torch", 1, 1)]
    print(f"{'sampler':<8} {'voices':>6} {'threads':>7} {'samples/s':>12} {'x real time':>11} {'/ pytorch loop':>14}")
    for case, rate in rates.items():
        print(f"{case.backend:<8} {case.voices:>6} {case.threads:>7} {rate:>12,.0f} {rate / SAMPLE_RATE:>11.2f} "
              f"{rate / reference:>14.1f}")
    compiled = rates[Case("numba", 1, 1)]
    print(f"\none voice, one thread: compiled / pytorch loop = {compiled / reference:.1f}x, "
          f"{compiled / SAMPLE_RATE:.1f}x real time (goal: 50x and 10x)")
    runtime = rates[Case("c", 1, 1)]
    print(f"one voice, one thread: C runtime / numba = {runtime / compiled:.2f}x, {runtime / SAMPLE_RATE:.1f}x real "
          f"time; rendering in turns, C / numba = {c_over_numba(model, length, args.repeats):.2f}x (median of "
          f"{args.repeats} rounds; goal: at least numba's speed)")
    referenced, ratio = with_reference(length, args.repeats)
    print(f"one voice, one thread, with a 3-harmonic periodic reference: {referenced / SAMPLE_RATE:.1f}x real time, "
          f"{ratio:.2f}x the speed without (median of {args.repeats} rounds; goal: at least 10x real time)")
    for voices in args.voices:
        batched = rates[Case("numba", voices, cores)]
        print(f"{voices} voices: numba {cores} threads / torch {cores} threads = "
              f"{batched / rates[Case('torch', voices, cores)]:.1f}x, numba {cores} threads / 1 thread = "
              f"{batched / rates[Case('numba', voices, 1)]:.2f}x, per voice {batched / voices / SAMPLE_RATE:.2f}x "
              f"real time")


if __name__ == "__main__":
    main()
