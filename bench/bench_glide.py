"""Does the pitch land where a live glide ends? The live engine, as OSC or MIDI drive it, measured offline.

For each instrument of a run: a drone at the low end of the pitch range for 1 s, a `set` of the pitch to the high
end (a 5 ms glide, as an OSC /param/p message makes), 2 s held there, then a `set` back to the low end and 2 s more.
The last second of each hold is measured with YIN against its target, in cents. The engine is the one live play
runs (live/engine.py), pulled as fast as it renders: the figures are those of a real-time run, without the wait.

Run from the repository root:
    .venv/bin/python -m bench.bench_glide --run_directory output/bench_control/runs/20261206-204209
"""
from __future__ import annotations

import argparse
import statistics

import numpy as np

from evaluation.measures import SILENT_BELOW_VOICED
from live.engine import EngineConfig, LiveEngine
from utils.command_line import add_run_directory, exit_on_bad_input, run_directory
from utils.pitch import cents_error, estimate_f0, midi_to_hz
from utils.run_folder import load_model

HOLD_SECONDS = 2.0


def glide_ends(run, instrument: str, pitch: str, amplitude: str, level: float, seed: int) -> list[dict]:
    """Return, for each instrument of the run, the cents off at the end of the glide up and of the glide down."""
    model, config = load_model(run, "cpu")
    data = config["data"]
    low, high = data.parameter_specs[pitch]
    rate = data.sample_rate
    rows = []
    for value in sorted(set(data.parameter_specs[instrument])):
        engine = LiveEngine(model, data, EngineConfig(output_rate=rate, drone=True, seed=seed, pitch=pitch,
                                                      initial={instrument: value, amplitude: level, pitch: low}))
        engine.pull(rate)
        row = {"instrument": f"{instrument}={value:g}"}
        for target, label in ((high, "up"), (low, "down")):
            engine.set(**{pitch: target})
            held = engine.pull(int(HOLD_SECONDS * rate))[-rate:]
            f0, voiced = estimate_f0(held, rate, fmin=midi_to_hz(min(low, high) - 14),
                                     fmax=midi_to_hz(max(low, high) + 14), frame_length=2048, hop_length=512)
            # An end voiced in less than half its frames is silent: a failure, counted, never a missing value.
            silent = voiced.mean() < SILENT_BELOW_VOICED
            row[f"{label} to {target:g} (cents)"] = "silent" if silent else float(
                np.median(np.abs(cents_error(f0[voiced], midi_to_hz(target)))))
            row[f"{label} voiced"] = float(voiced.mean())
        rows.append(row)
    return rows


def main(argv: list[str] | None = None) -> None:
    """Command line: print the cents off at the end of each glide, per instrument, and their median."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_run_directory(parser)
    parser.add_argument("--instrument", default="instID")
    parser.add_argument("--pitch", default="p")
    parser.add_argument("--amplitude", default="a")
    parser.add_argument("--level", type=float, default=0.7, help="the amplitude parameter's value while gliding")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    with exit_on_bad_input():
        rows = glide_ends(run_directory(args), args.instrument, args.pitch, args.amplitude, args.level, args.seed)
    keys = list(rows[0])
    print("| " + " | ".join(keys) + " |\n|" + "---|" * len(keys))
    for row in rows:
        print("| " + " | ".join(f"{v:.1f}" if isinstance(v, float) else str(v) for v in row.values()) + " |")
    ends = [v for row in rows for k, v in row.items() if k.endswith("(cents)")]
    sounding = [v for v in ends if v != "silent"]
    figures = f"median {statistics.median(sounding):.1f} cents, worst {max(sounding):.1f}" if sounding else "none sound"
    print(f"glide ends: {figures}; {len(ends) - len(sounding)} of {len(ends)} silent")


if __name__ == "__main__":
    main()
