"""Live play in the browser: knob-to-sound latency and underflows, JupyterLab and headless Chromium on loopback.

Run from the repository root: .venv/bin/python -m bench.bench_live_widget [--seconds 60] [--run_directory RUN]
Opens Inference.ipynb in JupyterLab (tests/harness/browser.py), presses Play and moves the pitch knob every
--move_every seconds for --seconds. Each move's latency runs from the knob's message leaving the page to the
worklet playing the first sample rendered with it, plus the context's reported output latency. The baseline, in
the same process, is the kernel alone: the time the widget's LiveEngine takes to render one 50 ms block, the least
the browser asks for. Target (issue 16): median <= 150 ms and no underflow.
"""
from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np

from live.engine import EngineConfig, LiveEngine
from tests.harness.browser import ROOT, LiveWidget, chromium_page, jupyter_lab, prepare_notebook
from utils.run_folder import load_model

FIXTURE = ROOT / "tests" / "fixtures" / "quick_run"


def kernel_block_ms(run_directory: Path, block_seconds: float = 0.05, repeats: int = 20) -> float:
    """Return the median time, in ms, the widget's engine takes to render one block at the model's rate."""
    model, config = load_model(run_directory)
    rate = config["data"].sample_rate
    engine = LiveEngine(model, config["data"], EngineConfig(output_rate=rate, drone=True, seed=0))
    frames = int(block_seconds * rate)
    engine.pull(frames)
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        engine.pull(frames)
        times.append(1000 * (time.perf_counter() - start))
    return float(np.median(times))


def play_and_turn(run_directory: Path, seconds: float, move_every: float) -> dict:
    """Return the widget's readouts after playing `seconds` with the pitch knob moved every `move_every` s."""
    with tempfile.TemporaryDirectory() as scratch:
        scratch = Path(scratch)
        notebooks = scratch / "notebooks"
        notebooks.mkdir()
        prepare_notebook(notebooks, {"run_directory": str(run_directory.resolve()), "length_seconds": 0.05})
        with jupyter_lab(notebooks, scratch) as url, chromium_page(scratch) as page:
            live = LiveWidget.open(page, url)
            live.play()
            start, pitches = time.monotonic(), np.tile([64.0, 67.0, 70.0, 73.0, 76.0], 10_000)
            for pitch in pitches:
                if time.monotonic() - start >= seconds:
                    break
                live.turn("p", pitch)
                time.sleep(move_every)
            return live.health()


def main(argv: list[str] | None = None) -> None:
    """Print the latency (median, p99) and underflows of live play against the kernel's block time."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--run_directory", type=Path, default=FIXTURE, help="default: tests/fixtures/quick_run")
    parser.add_argument("--seconds", type=float, default=60.0, help="how long to play")
    parser.add_argument("--move_every", type=float, default=0.5, help="seconds between knob moves")
    args = parser.parse_args(argv)

    block_ms = kernel_block_ms(args.run_directory)
    health = play_and_turn(args.run_directory, args.seconds, args.move_every)
    latencies = np.array(health["latencies"])
    median, p99 = np.median(latencies), np.percentile(latencies, 99)
    print(f"browser at {health['sampleRate']:.0f} Hz, {args.seconds:.0f} s of play, {len(latencies)} knob moves heard")
    print(f"knob-to-sound latency: median {median:.0f} ms, p99 {p99:.0f} ms (target: median <= 150 ms)")
    print(f"underflows: {health['underflows']} (target 0); buffer target at the end {health['targetMs']:.0f} ms")
    print(f"baseline, the kernel alone: {block_ms:.1f} ms to render a 50 ms block; the browser's median latency is "
          f"{median / block_ms:.0f}x that (the jitter buffer, the comm round trip and the output)")


if __name__ == "__main__":
    main()
