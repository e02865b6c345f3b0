"""Play a trained run live: audio out through PortAudio, JACK or none, controlled from Python, OSC and MIDI.

Example: python live.py --audio jack --voices 4 --midi_virtual --osc_port 9000
"""
from __future__ import annotations

import argparse
import signal
import sys
import time
from pathlib import Path

import numpy as np

from audioDataLoader.audio_dataset import AudioDatasetConfig
from inference import save_wav
from live_audio import BACKENDS, AudioUnavailable, Generator, RingBuffer, played_audio
from live_control import MidiMapping, OscListener, open_midi_input, parse_cc
from live_engine import RESAMPLE_QUALITIES, EngineConfig, LiveEngine, check_finite
from live_outputs import describe_devices, open_output
from model.gru_audio_model import RNN
from utils.run_folder import load_model, newest_run

# From bench/bench_live.py on the quiet 2-core machine (README), 20 s a row: 4 ms underflowed (7 times with one voice,
# 969 with four); 8 ms played 1 and 4 voices with none, at an engine latency of 10 ms (median) and 11 ms (p99).
DEFAULT_BUFFER_MS = 8.0


class LiveSynth:
    """A run playing live: the engine, a generator thread ahead of the audio callback, the output, a recording.

    Controls (`set`, `ramp`, `note_on`, `note_off`, `bend`) take effect buffer_ms plus one period after the call,
    at their own sample: the delay is constant, not rounded to blocks.
    """

    def __init__(self, model: RNN, data_config: AudioDatasetConfig, engine: EngineConfig | None = None,
                 audio: str = "none", rate: int = 48000, period: int = 128, buffer_ms: float = DEFAULT_BUFFER_MS,
                 device: str | int | None = None, jack_server: str | None = None, connect: bool = True,
                 record: str | Path | None = None, name: str = "rnncontrol", realtime: bool = True) -> None:
        buffer_ms = check_finite("buffer_ms", buffer_ms)
        if buffer_ms <= 0:
            raise ValueError(f"--buffer_ms must be > 0, got {buffer_ms}")
        self.output = open_output(audio, rate, period, device, jack_server, connect, name, realtime)
        self.rate, self.period = self.output.rate, self.output.period
        if buffer_ms * self.rate / 1000 < self.period:
            raise ValueError(f"--buffer_ms {buffer_ms} is shorter than one period ({self.period} frames = "
                             f"{1000 * self.period / self.rate:.2f} ms): every callback would underflow; raise it")
        engine = engine or EngineConfig()
        engine.output_rate = self.rate
        self.engine = LiveEngine(model, data_config, engine)
        self.depth = max(1, int(round(buffer_ms * self.rate / 1000)))
        self.ring = RingBuffer(1 << int(np.ceil(np.log2(4 * (self.depth + self.period)))))
        self.generator = Generator(self.engine.pull, self.ring, self.period, self.depth, self.rate, realtime)
        self.record_path = Path(record) if record else None
        if self.record_path is not None:
            self.generator.recording = []
        self.playing = False

    @classmethod
    def from_run(cls, run_directory: str | Path | None = None, **options) -> LiveSynth:
        """Return a LiveSynth for a run folder (default: the newest under output/); options as for __init__."""
        model, config = load_model(run_directory or newest_run(), "cpu")
        return cls(model, config["data"], **options)

    def start(self) -> LiveSynth:
        """Fill the buffer, then start the audio and the generator thread."""
        self.generator.prefill()
        self.output.start(self.ring.play)
        self.generator.start()
        self.playing = True
        return self

    def stop(self) -> None:
        """Stop the audio and the generator, and write the recording (atomically) if one was asked for."""
        if not self.playing:
            return
        self.playing = False
        self.output.stop()
        self.generator.stop()
        if self.record_path is not None:
            save_wav(self.record_path, played_audio(self.generator.recording, self.ring), self.rate)

    def __enter__(self) -> LiveSynth:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    def _at(self) -> int:
        # The generator never runs more than depth frames past the frame being played, so this sample is not
        # rendered yet: every control waits the same depth + period, whatever the block boundaries.
        return int(self.ring.frame_now(self.rate)) + self.depth + self.period

    def set(self, **values: float) -> None:
        """Set parameters in their own units, e.g. set(p=67.5)."""
        self.engine.set(at=self._at(), **values)

    def ramp(self, ms: float, **values: float) -> None:
        """Ramp parameters to values over ms milliseconds, e.g. ramp(p=76, ms=500)."""
        self.engine.ramp(ms, at=self._at(), **values)

    def note_on(self, note: float, velocity: float = 100) -> None:
        """Start a note (a MIDI note number, fractions allowed) with velocity 0..127."""
        self.engine.note_on(note, velocity, at=self._at())

    def note_off(self, note: float) -> None:
        """Release a note."""
        self.engine.note_off(note, at=self._at())

    def bend(self, semitones: float) -> None:
        """Bend every note by semitones."""
        self.engine.bend(semitones, at=self._at())

    def status(self) -> str:
        """Return a one-line status: voices sounding, buffer fill, underflows, xruns, the generator's load."""
        return (f"voices {self.engine.sounding()}/{self.engine.config.voices} | buffer "
                f"{100 * self.ring.fill() / self.depth:3.0f}% | underflows {self.ring.underflows} | xruns "
                f"{self.output.xruns} | generator {100 * self.generator.share_of_real_time():3.0f}% of real time")


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add = parser.add_argument
    add("--run_directory", help="run folder written by train.py (default: newest under output/)")
    add("--audio", choices=BACKENDS, default="portaudio", help="output: the sound card, a JACK server, or none")
    add("--device", help="PortAudio output device, by number or name (see --list-devices)")
    add("--list-devices", action="store_true", help="list the audio devices and MIDI ports, then exit")
    add("--rate", type=int, default=48000, help="output rate in Hz (JACK uses the server's)")
    add("--period", type=int, default=128, help="frames per audio callback, 32..2048 (JACK uses the server's)")
    add("--buffer_ms", type=float, default=DEFAULT_BUFFER_MS, help="how far generation runs ahead: the latency")
    add("--jack_server", help="JACK server name (default: $JACK_DEFAULT_SERVER, else the default server)")
    add("--no_connect", action="store_true", help="JACK: do not connect to the system playback ports")
    add("--voices", type=int, default=1, help="notes sounding at once; one voice glides legato")
    add("--pitch", default="p", help="parameter a note's number sets ('none': notes are refused)")
    add("--velocity", default="a", help="parameter a note's velocity sets ('none': velocity is ignored)")
    add("--smooth_ms", type=float, default=5.0, help="every parameter change glides over this long")
    add("--glide_ms", type=float, default=60.0, help="legato glide with one voice")
    add("--release_ms", type=float, default=80.0, help="fade-out after note-off")
    add("--drone", action="store_true", help="voice 1 sounds from the start, so /param plays without notes")
    add("--param", action="append", default=[], metavar="NAME=VALUE", help="a starting value; repeat for each")
    add("--osc_port", type=int, help="listen for OSC on this UDP port: /param/<name>, /note_on, /note_off")
    add("--osc_host", default="127.0.0.1", help="address to listen on (0.0.0.0: from other machines, e.g. a phone)")
    add("--midi", metavar="PORT", help="MIDI input port to play from (see --list-devices)")
    add("--midi_virtual", action="store_true", help="make a virtual MIDI input port named RNNControl (or --midi)")
    add("--cc", action="append", default=[], metavar="CC=NAME", help="map a MIDI controller onto a parameter")
    add("--bend_range", type=float, default=2.0, help="semitones of a full pitch-bend")
    add("--record", help="write what was played to this WAV when playing stops")
    add("--no_realtime", action="store_true", help="keep the generator and the `none` output at normal priority")
    add("--seconds", type=float, help="stop after this long (default: until Ctrl-C)")
    add("--top_n", type=int, default=3)
    add("--temperature", type=float, default=1.0)
    add("--seed", type=int)
    add("--resample_quality", choices=RESAMPLE_QUALITIES, default="QQ", help="soxr quality; past QQ adds delay")
    return parser


def _engine_config(args: argparse.Namespace) -> EngineConfig:
    initial = {}
    for text in args.param:
        name, _, value = text.partition("=")
        initial[name] = check_finite(f"--param {name}", value)
    return EngineConfig(voices=args.voices, pitch=None if args.pitch == "none" else args.pitch,
                        velocity=None if args.velocity == "none" else args.velocity, smooth_ms=args.smooth_ms,
                        glide_ms=args.glide_ms, release_ms=args.release_ms, drone=args.drone, initial=initial,
                        top_n=args.top_n, temperature=args.temperature, seed=args.seed,
                        resample_quality=args.resample_quality)


def list_devices() -> str:
    """Return the audio devices and MIDI input ports found, one section per line."""
    import mido

    try:
        midi = mido.get_input_names()
    except (SystemError, OSError) as error:
        midi = f"unavailable ({error})"
    return f"audio: {describe_devices()}\nMIDI inputs: {midi}"


def main(argv: list[str] | None = None) -> None:
    """Command line: play a run until Ctrl-C (or --seconds), printing a one-line status."""
    args = _parser().parse_args(argv)
    if args.list_devices:
        print(list_devices())
        return
    try:
        synth = LiveSynth.from_run(args.run_directory, engine=_engine_config(args), audio=args.audio,
                                   rate=args.rate, period=args.period, buffer_ms=args.buffer_ms,
                                   device=args.device, jack_server=args.jack_server, connect=not args.no_connect,
                                   record=args.record, realtime=not args.no_realtime)
        cc = parse_cc(args.cc, synth.engine.names)
        listeners = _open_controls(synth, args, cc)
    except (ValueError, FileNotFoundError, AudioUnavailable) as error:
        raise SystemExit(f"error: {error}") from None
    signal.signal(signal.SIGTERM, _interrupt)  # a service manager's stop records like Ctrl-C
    print(f"playing at {synth.rate} Hz, {synth.period}-frame periods, {args.buffer_ms} ms buffer; Ctrl-C stops")
    end = time.monotonic() + args.seconds if args.seconds is not None else float("inf")
    try:
        with synth:
            while time.monotonic() < end:
                time.sleep(min(0.25, max(0.0, end - time.monotonic())))
                print("\r" + synth.status(), end="", file=sys.stderr, flush=True)
                if synth.generator.error is not None:
                    raise SystemExit(f"\nerror: generation stopped: {synth.generator.error!r}")
    except KeyboardInterrupt:
        pass
    finally:
        for listener in listeners:
            listener.close()
    print(f"\n{synth.status()}" + (f"\nwrote {args.record}" if args.record else ""))


def _interrupt(_signum: int, _frame: object) -> None:
    raise KeyboardInterrupt


def _open_controls(synth: LiveSynth, args: argparse.Namespace, cc: dict[int, str]) -> list:
    listeners = []
    if args.osc_port is not None:
        listeners.append(OscListener(synth, args.osc_port, args.osc_host))
    if args.midi or args.midi_virtual:
        mapping = MidiMapping(synth, synth.engine.specs, cc, args.bend_range)
        listeners.append(open_midi_input(args.midi, args.midi_virtual, mapping.handle))
    return listeners


if __name__ == "__main__":
    main()
