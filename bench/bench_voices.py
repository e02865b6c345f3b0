"""Voices: CPU per second of audio through the live engine, live play on JACK, and offline samples/s, per backend.

Run from the repository root: .venv/bin/python -m bench.bench_voices [--seconds 60] [--voices 1 4 8 16 32]
Three tables, each backend beside numba (today's default) measured in the same run:
- engine: LiveEngine.pull with no audio backend (48 kHz out, 128-frame pulls, one generator thread, every voice
  holding a note), the process's CPU time over the audio's duration, a share of one core; rounds alternate the
  backends so that a shared machine's swings hit them alike, and the ratio is the median of the rounds' ratios;
- live: `bench_live.play` on a dummy JACK server (8 ms buffer, pitch changed over OSC every 250 ms): underflows over
  --seconds, engine latency median / p99, the generator thread's CPU;
- offline: samples/s (all voices) for 1 voice on 1 thread and 64 voices on --threads threads, wall time.
"""
from __future__ import annotations

import argparse
import os
import statistics
import time
from pathlib import Path

import numpy as np

from live.engine import EngineConfig, LiveEngine
from model.c_sampler import kernel as c_kernel
from model.sampler import silent_voices
from utils.run_folder import load_model

OUTPUT_RATE, PULL = 48000, 128
NOTES = (64, 67, 71, 74, 69, 72, 76, 65)  # the notes held, in turn


def engine_cpu_share(model, data, backend: str, voices: int, seconds: float) -> float:
    """Return the process CPU time per second of audio the engine takes to pull `seconds` with `voices` notes."""
    engine = LiveEngine(model, data, EngineConfig(voices=voices, drone=True, seed=0, backend=backend,
                                                  initial={"instID": 1, "a": 0.8, "p": NOTES[0]}))
    for note in range(1, voices):
        engine.note_on(NOTES[note % len(NOTES)] + 0.01 * note, 100)  # distinct numbers: each takes its own voice
    engine.pull(PULL)  # the notes start
    pulls = int(seconds * OUTPUT_RATE / PULL)
    start = time.process_time()
    for _ in range(pulls):
        engine.pull(PULL)
    return (time.process_time() - start) / (pulls * PULL / OUTPUT_RATE)


def engine_table(model, data, backends: list[str], voice_counts: list[int], seconds: float, rounds: int) -> None:
    print(f"engine, no audio backend: CPU per second of audio (share of one core), median of {rounds} rounds of "
          f"{seconds:g} s; ratio: numba's CPU over the backend's, per round")
    print(f"{'voices':>6} " + " ".join(f"{b:>10}" for b in backends) +
          " ".join(f"  numba/{b:<6}" for b in backends if b != "numba"))
    for voices in voice_counts:
        shares = {b: [] for b in backends}
        for _ in range(rounds):
            for backend in backends:
                shares[backend].append(engine_cpu_share(model, data, backend, voices, seconds))
        ratios = {b: statistics.median(np.divide(shares["numba"], shares[b])) for b in backends if b != "numba"}
        print(f"{voices:>6} " + " ".join(f"{100 * statistics.median(shares[b]):>9.0f}%" for b in backends) +
              " ".join(f"  {ratios[b]:>11.2f}x" for b in ratios), flush=True)


def offline_rate(model, data, backend: str, voices: int, threads: int, seconds: float) -> float:
    """Return the samples/s (all voices, wall time) of rendering `seconds` per voice with top-3 draws."""
    stream = silent_voices(model, voices, backend, data.encode, seed=0, threads=threads)
    cond = np.random.default_rng(0).uniform(size=(voices, int(seconds * data.sample_rate), model.config.cond_size))
    cond = cond.astype(np.float32)
    stream.sample(cond[:, :64], 3, 1.0)  # numba's first call, thread pools
    start = time.perf_counter()
    stream.sample(cond, 3, 1.0)
    return cond.shape[0] * cond.shape[1] / (time.perf_counter() - start)


def offline_table(model, data, backends: list[str], threads: int, seconds: float, rounds: int) -> None:
    print(f"\noffline: samples/s (all voices, wall time), median of {rounds} rounds; ratio over numba per round")
    for voices, used in ((1, 1), (64, threads)):
        rates = {b: [] for b in backends}
        for _ in range(rounds):
            for backend in backends:
                rates[backend].append(offline_rate(model, data, backend, voices, used, seconds / voices ** 0.5))
        for backend in backends:
            ratio = statistics.median(np.divide(rates[backend], rates["numba"]))
            median = statistics.median(rates[backend])
            print(f"{voices:>3} voices, {used} thread(s), {backend:>6}: {median:>12,.0f} samples/s "
                  f"({median / data.sample_rate / voices:6.1f}x real time per voice), {ratio:5.2f}x numba", flush=True)


def live_table(model, data, backends: list[str], voice_counts: list[int], seconds: float, buffer_ms: float) -> None:
    from bench.bench_live import PERIOD, RATE, _quantiles, play  # JACK: imported only when live play is measured
    from tests.harness.jack_server import dummy_jack_server

    print(f"\nlive on a dummy JACK server ({RATE} Hz, {PERIOD}-frame periods, {buffer_ms:g} ms buffer), {seconds:g} s "
          "a row, pitch changed over OSC every 250 ms")
    print(f"{'backend':>7} {'voices':>6} | underflows | xruns | engine latency ms median / p99 | generator CPU")
    with dummy_jack_server(RATE, PERIOD) as server:
        for voices in voice_counts:
            for backend in backends:
                r = play(model, data, server, voices, seconds, buffer_ms, backend=backend)
                print(f"{backend:>7} {voices:>6} | {r.underflows:10d} | {r.xruns:5d} | {_quantiles(r.engine_ms):>30} | "
                      f"{100 * r.cpu_share:12.0f}%", flush=True)


def main(argv: list[str] | None = None) -> None:
    """Command line: print the three tables."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--run_directory", default=str(Path("tests") / "fixtures" / "quick_run"))
    parser.add_argument("--backends", nargs="+", default=["numba", "c"], help="numba first: the others' baseline")
    parser.add_argument("--voices", type=int, nargs="+", default=[1, 4, 8, 16, 32])
    parser.add_argument("--engine_seconds", type=float, default=2.0, help="audio per engine round")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--seconds", type=float, default=60.0, help="live playing time per row")
    parser.add_argument("--live_voices", type=int, nargs="*", default=[1, 4, 8, 16], help="none: skip live play")
    parser.add_argument("--buffer_ms", type=float, default=8.0)
    parser.add_argument("--offline_seconds", type=float, default=2.0, help="audio for one voice; 64 get 1/8 of it")
    parser.add_argument("--threads", type=int, default=2, help="threads for the 64 offline voices")
    args = parser.parse_args(argv)
    if args.backends[0] != "numba":
        parser.error("--backends must start with numba, the baseline the ratios are taken against")
    model, config = load_model(args.run_directory, "cpu")
    data = config["data"]
    load = os.getloadavg()
    kernel = f", the C runtime on its {c_kernel()} kernel" if "c" in args.backends else ""
    print(f"{args.run_directory}{kernel}, {os.cpu_count()} CPUs, load average {load[0]:.1f} / {load[1]:.1f} / "
          f"{load[2]:.1f} (1 / 5 / 15 min) at the start")
    engine_table(model, data, args.backends, args.voices, args.engine_seconds, args.rounds)
    offline_table(model, data, args.backends, args.threads, args.offline_seconds, args.rounds)
    if args.live_voices:
        live_table(model, data, args.backends, args.live_voices, args.seconds, args.buffer_ms)
    print(f"\nload average at the end: {os.getloadavg()[0]:.1f}")


if __name__ == "__main__":
    main()
