"""MIDI through JACK: jack_midiseq plays chords into live play's JACK MIDI port; underflows and event-to-sound latency.

Run from the repository root: .venv/bin/python -m bench.bench_jack_midi [--seconds 20] [--voices 1 4] [--backend c]
Starts `jackd --no-realtime -d dummy -r 48000 -p 128` (with --realtime_server, without --no-realtime) under a unique
name and plays a run (default: tests/fixtures/quick_run) through it with `--voices N`. jack_midiseq, jackd2's example
sequencer (written by nobody here), loops a chord of N notes (64, 65, ...) held for 0.25 s every 0.5 s into the
synth's port midi_in and into a capture client, which records the synth's output and the frame at which each note-on
came. For each voice count it prints underflows (the callback found the buffer short), the server's xruns, the
server's stalls (gaps between two of the synth's callbacks longer than the whole buffer, and the longest gap), and
the event-to-sound latency: from a chord's note-on to the first sounding frame of the capture after the silence
between chords (median, p99; chords that sounded nothing within 100 ms are counted apart).
"""
from __future__ import annotations

import argparse
import os
import time
from pathlib import Path

import numpy as np

from bench.bench_live import PERIOD, RATE, Capture
from live.engine import EngineConfig
from live.jack_midi import JackMidiInput
from live.synth import DEFAULT_BUFFER_MS, LiveSynth
from model.sampler import BACKENDS
from tests.harness.jack_server import connect_when_ready, dummy_jack_server, midiseq
from utils.run_folder import load_model

LOOP, HELD = RATE // 2, RATE // 4  # frames: a chord every 0.5 s, held for 0.25 s
SILENCE = RATE // 20  # 50 ms of zeros before a sounding frame make it an onset (the release is 80 ms of 170)


def play(model, data, server: str, voices: int, seconds: float, buffer_ms: float, backend: str = "auto") -> dict:
    """Play `seconds` of the chord loop with `voices` voices on `backend`; return underflows, xruns and latencies
    (ms)."""
    engine = EngineConfig(voices=voices, seed=0, initial={"instID": 1, "a": 0.8}, backend=backend)
    synth = LiveSynth(model, data, engine, audio="jack", jack_server=server, connect=False, buffer_ms=buffer_ms)
    midi = JackMidiInput(synth)
    chord = [(0, note, HELD) for note in range(64, 64 + voices)]
    with midiseq(server, "bench-midiseq", LOOP, chord) as source:
        capture = Capture(server, seconds + 1, midi=True)
        try:
            with synth:
                capture.client.connect(synth.output.port, capture.port)
                for port in (midi.port, capture.midi_port):
                    connect_when_ready(capture.client, source, port)
                time.sleep(seconds)
                underflows, xruns = synth.ring.underflows, synth.output.xruns
                gaps = np.diff(synth.ring.logged_callbacks()[:, 1])
        finally:
            audio = capture.close()
    latencies, missed = _event_to_sound_ms(audio, sorted(set(capture.note_ons)))
    return {"underflows": underflows, "xruns": xruns, "latency": latencies, "missed": missed,
            "chords": len(latencies) + missed, "errors": midi.errors,
            "stalls": int(np.sum(gaps > buffer_ms / 1000)), "longest": 1000 * float(gaps.max(initial=0))}


def _event_to_sound_ms(audio: np.ndarray, note_ons: list[int]) -> tuple[np.ndarray, int]:
    """Return the latency from each chord's note-on to its first sounding frame, and how many never sounded."""
    sounding = np.flatnonzero(audio != 0)
    onsets = sounding[np.diff(sounding, prepend=-SILENCE - 1) > SILENCE]
    latencies, missed = [], 0
    for frame in note_ons[:-1]:  # the last may have been cut by the end of the capture
        later = onsets[onsets >= frame]
        if len(later) and later[0] - frame < RATE // 10:
            latencies.append(1000 * (later[0] - frame) / RATE)
        else:
            missed += 1
    return np.array(latencies), missed


def main(argv: list[str] | None = None) -> None:
    """Command line: print one line per voice count."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--run_directory", default=str(Path("tests") / "fixtures" / "quick_run"))
    parser.add_argument("--seconds", type=float, default=20.0, help="playing time per voice count")
    parser.add_argument("--voices", type=int, nargs="+", default=[1, 4])
    parser.add_argument("--buffer_ms", type=float, default=DEFAULT_BUFFER_MS)
    parser.add_argument("--backend", choices=BACKENDS, default="auto", help="the voices' sampler (c: the batched "
                        "kernel)")
    parser.add_argument("--realtime_server", action="store_true",
                        help="run jackd in the real-time class (drop --no-realtime), as on a music machine")
    args = parser.parse_args(argv)
    model, config = load_model(args.run_directory, "cpu")
    print(f"{args.run_directory}: {args.seconds:.0f} s per row, {RATE} Hz, {PERIOD}-frame periods, {args.buffer_ms} "
          f"ms buffer, backend {args.backend}, jack_midiseq chords of --voices notes held 0.25 s every 0.5 s; "
          f"load average {os.getloadavg()[0]:.2f}, jackd {'real-time' if args.realtime_server else '--no-realtime'}")
    print("voices | underflows | xruns | server stalls (longest) | event-to-sound ms median / p99 (missed of chords)")
    with dummy_jack_server(RATE, PERIOD, realtime=args.realtime_server) as server:
        for voices in args.voices:
            r = play(model, config["data"], server, voices, args.seconds, args.buffer_ms, args.backend)
            latency = (f"{np.median(r['latency']):6.1f} / {np.percentile(r['latency'], 99):6.1f}"
                       if len(r["latency"]) else "     - /      -")
            stalls = f"{r['stalls']:5d} ({r['longest']:4.1f} ms)"
            print(f"{voices:6d} | {r['underflows']:10d} | {r['xruns']:5d} | {stalls:>23} | {latency} "
                  f"({r['missed']} of "
                  f"{r['chords']})" + (f" | {r['errors']} MIDI errors" if r["errors"] else ""), flush=True)


if __name__ == "__main__":
    main()
