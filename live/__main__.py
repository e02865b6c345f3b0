"""Play a trained run live: audio out through PortAudio, JACK or none, controlled from Python, OSC and MIDI.

Example: python -m live --audio jack --voices 4 --midi_virtual --osc_port 9000
With --audio jack the client also offers a JACK MIDI input port, midi_in, played as --midi plays.
"""
from __future__ import annotations

import argparse
import signal
import sys
import time

from live.control import MidiMapping, OscListener, open_midi_input, parse_cc
from live.engine import RESAMPLE_QUALITIES, EngineConfig
from live.jack_midi import JackMidiInput
from live.outputs import describe_devices
from live.realtime import OUTPUTS, AudioUnavailable
from live.synth import DEFAULT_BUFFER_MS, LiveSynth
from model.sampler import BACKENDS
from utils.command_line import add_run_directory, exit_on_bad_input, named_numbers, run_directory


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add = parser.add_argument
    add_run_directory(parser, shipped_fallback=True)
    add("--audio", choices=OUTPUTS, default="portaudio", help="output: the sound card, a JACK server, or none")
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
    add("--midi", metavar="PORT", help="MIDI input port to play from (see --list-devices); with --audio jack "
        "the JACK MIDI port midi_in is offered too")
    add("--midi_virtual", action="store_true", help="make a virtual MIDI input port named RNNControl (or --midi)")
    add("--cc", action="append", default=[], metavar="CC=NAME", help="map a MIDI controller onto a parameter")
    add("--bend_range", type=float, default=2.0, help="semitones of a full pitch-bend")
    add("--record", help="write what was played to this WAV when playing stops")
    add("--no_realtime", action="store_true", help="keep the generator and the `none` output at normal priority")
    add("--seconds", type=float, help="stop after this long (default: until Ctrl-C)")
    add("--top_n", type=int, default=3)
    add("--temperature", type=float, default=1.0)
    add("--seed", type=int)
    add("--backend", choices=BACKENDS, default="auto", help="sampler: auto (c when built, else numba), numba, "
        "c (the C runtime), torch")
    add("--resample_quality", choices=RESAMPLE_QUALITIES, default="QQ", help="soxr quality; past QQ adds delay")
    return parser


def _engine_config(args: argparse.Namespace) -> EngineConfig:
    initial = {name: value for name, (value,) in
               (named_numbers(text, "--param", "NAME=VALUE, e.g. p=67", counts=(1,)) for text in args.param)}
    return EngineConfig(voices=args.voices, pitch=None if args.pitch == "none" else args.pitch,
                        velocity=None if args.velocity == "none" else args.velocity, smooth_ms=args.smooth_ms,
                        glide_ms=args.glide_ms, release_ms=args.release_ms, drone=args.drone, initial=initial,
                        top_n=args.top_n, temperature=args.temperature, seed=args.seed,
                        resample_quality=args.resample_quality, backend=args.backend)


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
        with exit_on_bad_input():
            synth = LiveSynth.from_run(run_directory(args, shipped_fallback=True), engine=_engine_config(args), audio=args.audio,
                                       rate=args.rate, period=args.period, buffer_ms=args.buffer_ms,
                                       device=args.device, jack_server=args.jack_server, connect=not args.no_connect,
                                       record=args.record, realtime=not args.no_realtime)
            cc = parse_cc(args.cc, synth.engine.names)
            listeners = _open_controls(synth, args, cc)
    except AudioUnavailable as error:
        raise SystemExit(f"error: {error}") from None
    signal.signal(signal.SIGTERM, _interrupt)  # a service manager's stop records like Ctrl-C
    print(f"playing at {synth.rate} Hz, {synth.period}-frame periods, {args.buffer_ms} ms buffer; Ctrl-C stops")
    end = time.monotonic() + args.seconds if args.seconds is not None else float("inf")
    width = 0  # the longest status so far: a shorter one is padded over its end
    try:
        with synth:
            while time.monotonic() < end:
                time.sleep(min(0.25, max(0.0, end - time.monotonic())))
                status = synth.status()
                width = max(width, len(status))
                print("\r" + status.ljust(width), end="", file=sys.stderr, flush=True)
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
    if args.audio == "jack":
        listeners.append(JackMidiInput(synth, cc, args.bend_range))
        print(f"JACK MIDI input: {listeners[-1].port.name} (connect a keyboard or sequencer to it)")
    return listeners


if __name__ == "__main__":
    main()
