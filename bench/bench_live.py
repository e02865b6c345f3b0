"""Live play through a dummy JACK server: underflows, xruns, engine latency, acoustic response, generator load.

Run from the repository root: .venv/bin/python -m bench.bench_live [--seconds 60] [--voices 1 4 8] [--flood 10000]
Starts `jackd --no-realtime -d dummy -r 48000 -p 128` (real-time pacing, no sound card) under a unique name, plays
a run (default: tests/fixtures/quick_run) through it while an OSC client on loopback changes the pitch every
250 ms, and captures the output through a second client's input port. With --flood N, another process sends N
OSC messages a second besides (/param/a and /param/instID, valid, or with --flood_bad S that share to an unknown
parameter), and the lines the listener reported are counted. For each voice count it prints:
- underflows (the callback found the buffer short) and the server's xruns;
- engine latency: from the OSC message sent to the callback that hands the first frame rendered with it to the
  port (median, p99), and how many messages UDP lost;
- acoustic response: from the message sent to the first YIN frame of the capture (centre of its window) within 50
  cents of the new pitch (median, p99; changes never reached within 250 ms are counted apart);
- the generator thread's CPU time over the wall time, and its wall time generating over the audio's duration.
"""
from __future__ import annotations

import argparse
import multiprocessing
import random
import time
from dataclasses import dataclass
from pathlib import Path

import jack
import numpy as np
from pythonosc.udp_client import SimpleUDPClient

from live.control import OscListener
from live.engine import EngineConfig
from live.synth import DEFAULT_BUFFER_MS, LiveSynth
from tests.harness.jack_server import dummy_jack_server
from utils.pitch import cents_error, estimate_f0, midi_to_hz
from utils.run_folder import load_model

RATE, PERIOD = 48000, 128
PITCHES = (64, 69, 66, 74, 71, 76, 67, 72, 65, 70)  # the pitch walk the OSC client plays, every 250 ms
CHANGE_SECONDS = 0.25
YIN = dict(fmin=150.0, fmax=1000.0, frame_length=1024, hop_length=96)  # 2 ms hops; 330-660 Hz notes


class Capture:
    """A JACK client recording its input port, and when (perf_counter) each of its periods began.

    With midi=True it also has a MIDI input port and keeps the captured frame at which each note-on came.
    """

    def __init__(self, server: str, seconds: float, midi: bool = False) -> None:
        self.audio = np.zeros(int(seconds * RATE) + RATE, dtype=np.float32)
        self.starts = np.zeros((len(self.audio) // PERIOD + 1, 2))  # (first frame, perf_counter)
        self.frames, self.periods = 0, 0
        self.note_ons: list[int] = []
        self.client = jack.Client("bench-capture", servername=server)
        self.port = self.client.inports.register("in")
        self.midi_port = self.client.midi_inports.register("midi_in") if midi else None
        self.client.set_process_callback(self._process)
        self.client.activate()

    def _process(self, count: int) -> None:
        if self.midi_port is not None:
            self.note_ons += [self.frames + offset for offset, data in self.midi_port.incoming_midi_events()
                              if _is_note_on(bytes(data))]
        take = min(count, len(self.audio) - self.frames)
        if self.periods < len(self.starts):
            self.starts[self.periods] = self.frames, time.perf_counter()
            self.periods += 1
        self.audio[self.frames:self.frames + take] = self.port.get_array()[:take]
        self.frames += take

    def time_of(self, frames: np.ndarray) -> np.ndarray:
        """Return the perf_counter time at which each captured frame arrived."""
        starts = self.starts[:self.periods]
        return np.interp(frames, starts[:, 0], starts[:, 1])

    def close(self) -> np.ndarray:
        self.client.deactivate()
        self.client.close()
        return self.audio[:self.frames]


def _is_note_on(data: bytes) -> bool:
    return len(data) == 3 and data[0] & 0xF0 == 0x90 and data[2] > 0


def flood(port: int, rate: float, seconds: float, bad_share: float, go) -> None:
    """Send `rate` OSC messages a second for `seconds` to `port` once `go` is set (a multiprocessing.Event), a
    `bad_share` of them refused (an unknown parameter)."""
    client, pick = SimpleUDPClient("127.0.0.1", port), random.Random(0)
    go.wait()
    start, sent = time.perf_counter(), 0
    while (elapsed := time.perf_counter() - start) < seconds:
        for _ in range(int(rate * elapsed) - sent):  # in batches, every 5 ms: the rate without a sleep each
            if pick.random() < bad_share:
                client.send_message("/param/q", pick.random())
            elif sent % 2:  # changes that leave the pitch for YIN to follow
                client.send_message("/param/a", 0.75 + 0.1 * pick.random())
            else:
                client.send_message("/param/instID", 1.0)
            sent += 1
        time.sleep(0.005)


@dataclass
class Result:
    voices: int
    underflows: int
    xruns: int
    engine_ms: np.ndarray
    lost: int
    response_ms: np.ndarray
    missed: int
    changes: int
    cpu_share: float
    real_time_share: float
    report_lines: int
    handled: int


class Flood:
    """A process that sends the flood once `go` is set: started before playing, so its start costs nothing then."""

    def __init__(self, port: int, rate: float, seconds: float, bad_share: float) -> None:
        # A process of its own: a thread would take the interpreter from the generator, as no real sender does.
        context = multiprocessing.get_context("spawn")
        self.go = context.Event()
        self.process = context.Process(target=flood, args=(port, rate, seconds, bad_share, self.go))
        self.process.start()

    def stop(self) -> None:
        self.go.set()
        self.process.join()


def play(model, data, server: str, voices: int, seconds: float, buffer_ms: float, flood_rate: float = 0.0,
         flood_bad: float = 0.0, backend: str = "auto") -> Result:
    """Play `seconds` with `voices` sounding, pitch changes over OSC every 250 ms; return the measurements.

    Under a flood the engine latency is not measured: the flood's events land among the pitch changes.
    """
    engine = EngineConfig(voices=voices, drone=True, seed=0, initial={"instID": 1, "a": 0.8, "p": PITCHES[0]},
                          backend=backend)
    synth = LiveSynth(model, data, engine, audio="jack", jack_server=server, connect=False, buffer_ms=buffer_ms)
    reports, handled = [], []

    class Counted:  # what the listener drives: the synth, counting the messages that reached it
        def set(self, **values: float) -> None:
            handled.append(1)
            synth.set(**values)

    listener = OscListener(Counted(), 0, report=reports.append)
    client = SimpleUDPClient("127.0.0.1", listener.port)
    flooding = Flood(listener.port, flood_rate, seconds, flood_bad) if flood_rate else None
    capture = Capture(server, seconds + 1)
    sends = []
    try:
        with synth:
            capture.client.connect(synth.output.port, capture.port)
            for note in range(1, voices):  # voice 0 is the drone; /param/p retunes every voice alike
                synth.note_on(PITCHES[0] + note, 100)
            time.sleep(0.5)
            first_event = len(synth.engine.landed)
            start, cpu_start = time.perf_counter(), synth.generator.cpu_seconds
            if flooding is not None:
                flooding.go.set()
            for k in range(int(seconds / CHANGE_SECONDS)):
                time.sleep(max(0.0, start + k * CHANGE_SECONDS - time.perf_counter()))
                pitch = PITCHES[(k + 1) % len(PITCHES)]
                sends.append((time.perf_counter(), pitch))
                client.send_message("/param/p", float(pitch))
            deadline = time.monotonic() + 5  # each lands buffer_ms + a period after it came; then stop
            while (flooding is None and len(synth.engine.landed) - first_event < len(sends)
                   and time.monotonic() < deadline):
                time.sleep(0.01)
            time.sleep(CHANGE_SECONDS)
            wall = time.perf_counter() - start
            cpu = synth.generator.cpu_seconds - cpu_start
    finally:
        if flooding is not None:
            flooding.stop()
        listener.close()
        audio = capture.close()
    if flooding is None:
        engine_ms, lost = _engine_latency_ms(synth, sends, list(synth.engine.landed)[first_event:])
    else:
        engine_ms, lost = np.zeros(0), 0
    response_ms, missed = _acoustic_response_ms(audio, capture, sends)
    return Result(voices, synth.ring.underflows, synth.output.xruns, engine_ms, lost, response_ms, missed, len(sends),
                  cpu / wall, synth.generator.share_of_real_time(), len(reports), len(handled))


def _engine_latency_ms(synth: LiveSynth, sends: list, landed: list) -> tuple[np.ndarray, int]:
    """Return the latencies of the messages that arrived, and how many were lost (UDP drops when starved)."""
    callbacks = synth.ring.logged_callbacks()
    sent_times = np.array([sent for sent, _pitch in sends])
    latencies = []
    for queued, frame in landed:  # each came from the last message sent before it arrived
        sent = sent_times[np.searchsorted(sent_times, queued, side="right") - 1]
        handed = np.searchsorted(callbacks[:, 0], frame, side="right") - 1  # the callback whose block holds it
        latencies.append(callbacks[handed, 1] - sent)
    return 1000 * np.array(latencies), len(sends) - len(landed)


def _acoustic_response_ms(audio: np.ndarray, capture: Capture, sends: list) -> tuple[np.ndarray, int]:
    f0, voiced = estimate_f0(audio, RATE, **YIN)
    centres = np.arange(len(f0)) * YIN["hop_length"] + YIN["frame_length"] // 2
    times = capture.time_of(centres)
    responses, missed = [], 0
    for sent, pitch in sends:
        window = (times > sent) & (times < sent + CHANGE_SECONDS) & voiced
        close = window & (np.abs(cents_error(np.where(voiced, f0, 1.0), midi_to_hz(pitch))) <= 50)
        if close.any():
            responses.append(times[np.argmax(close)] - sent)
        else:
            missed += 1
    return 1000 * np.array(responses), missed


def _quantiles(values: np.ndarray) -> str:
    if len(values) == 0:
        return "    -  /    -  "
    return f"{np.median(values):6.1f} / {np.percentile(values, 99):6.1f}"


def main(argv: list[str] | None = None) -> None:
    """Command line: print the table."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--run_directory", default=str(Path("tests") / "fixtures" / "quick_run"))
    parser.add_argument("--seconds", type=float, default=60.0, help="playing time per voice count")
    parser.add_argument("--voices", type=int, nargs="+", default=[1, 4, 8])
    parser.add_argument("--buffer_ms", type=float, default=DEFAULT_BUFFER_MS)
    parser.add_argument("--realtime_server", action="store_true",
                        help="run jackd in the real-time class (drop --no-realtime), as on a music machine")
    parser.add_argument("--flood", type=float, default=0.0, help="OSC messages a second sent besides, from a process")
    parser.add_argument("--flood_bad", type=float, default=0.0, help="the share of the flood that is refused")
    args = parser.parse_args(argv)
    model, config = load_model(args.run_directory, "cpu")
    print(f"{args.run_directory}: {args.seconds:.0f} s per row, {RATE} Hz, {PERIOD}-frame periods, "
          f"{args.buffer_ms} ms buffer, pitch changed over OSC every {1000 * CHANGE_SECONDS:.0f} ms, jackd "
          f"{'real-time' if args.realtime_server else '--no-realtime'}"
          + (f", a flood of {args.flood:.0f} OSC messages a second ({100 * args.flood_bad:.0f} % refused)"
             if args.flood else ""))
    print("voices | underflows | xruns | engine latency ms median / p99 (OSC lost) | acoustic response ms median / p99 "
          "(missed) | generator CPU | generator time / audio | OSC messages handled | lines reported")
    with dummy_jack_server(RATE, PERIOD, realtime=args.realtime_server) as server:
        for voices in args.voices:
            r = play(model, config["data"], server, voices, args.seconds, args.buffer_ms, args.flood, args.flood_bad)
            print(f"{r.voices:6d} | {r.underflows:10d} | {r.xruns:5d} | {_quantiles(r.engine_ms):>21} ({r.lost} lost) | "
                  f"{_quantiles(r.response_ms):>15} ({r.missed}/{r.changes}) | {100 * r.cpu_share:12.0f}% | "
                  f"{100 * r.real_time_share:5.0f}% | {r.handled} | {r.report_lines}", flush=True)


if __name__ == "__main__":
    main()
