"""Control of live play from outside Python: OSC messages over UDP and MIDI input (mido + python-rtmidi).

Both call the same four controls as Python does (`set`, `note_on`, `note_off`, `bend`) on a target, normally a
LiveSynth. A bad message is reported on one line through `report` and dropped; it never stops the listener. The
lines are rate-limited (live/rate_limited_report.py): a flood of bad messages writes a few lines a second.
"""
from __future__ import annotations

import errno
import select
import socket
import threading
from collections.abc import Callable
from typing import Any, Protocol

from live.rate_limited_report import RateLimitedReport, to_stderr
from live.realtime import raise_priority
from live.values import MAX_BEND
from utils.checks import finite_number

Report = Callable[[str], None]
_MAX_DATAGRAM = 65536
_MAX_DRAINED = 1024  # datagrams read at once before any is dispatched
_CLOSE_POLL_SECONDS = 0.1  # how soon the listening thread notices close()


class Controls(Protocol):
    """What OSC and MIDI drive."""

    def set(self, **values: float) -> None: ...
    def note_on(self, note: float, velocity: float = 100) -> None: ...
    def note_off(self, note: float) -> None: ...
    def bend(self, semitones: float) -> None: ...


def parse_cc(texts: list[str], names: list[str]) -> dict[int, str]:
    """Return {controller number: parameter} from texts like "1=a", checking both sides."""
    mapping = {}
    for text in texts:
        number, _, name = text.partition("=")
        if not number.strip().isdigit() or not 0 <= int(number) <= 127 or not name:
            raise ValueError(f"--cc {text!r}: write CONTROLLER=PARAMETER with a controller 0..127, e.g. --cc 1=a")
        if name not in names:
            raise ValueError(f"--cc {text!r}: this run has no parameter {name!r}; its parameters are {names}")
        mapping[int(number)] = name
    return mapping


class MidiMapping:
    """Turns MIDI messages into controls: notes and velocity, pitch bend in semitones, control changes to parameters."""

    def __init__(self, target: Controls, specs: dict[str, tuple[float, float]], cc: dict[int, str] | None = None,
                 bend_range: float = 2.0, report: Report = to_stderr) -> None:
        if not abs(finite_number("--bend_range", bend_range)) <= MAX_BEND:
            raise ValueError(f"--bend_range: {bend_range:g} semitones is past ±{MAX_BEND:g}; give a smaller range")
        self.target, self.specs, self.cc, self.bend_range = target, specs, cc or {}, bend_range
        self.report = RateLimitedReport(report)

    def handle(self, message: Any) -> None:
        """Apply one mido message; anything else (clock, aftertouch, other controllers) is ignored."""
        try:
            if message.type == "note_on" and message.velocity > 0:
                self.target.note_on(message.note, message.velocity)
            elif message.type in ("note_on", "note_off"):
                self.target.note_off(message.note)
            elif message.type == "pitchwheel":
                self.target.bend(message.pitch / 8192 * self.bend_range)
            elif message.type == "control_change" and message.control in self.cc:
                name = self.cc[message.control]
                low, high = self.specs[name]
                self.target.set(**{name: low + (high - low) * message.value / 127})
        except ValueError as error:
            self.report(f"MIDI {message}: {error}")


def open_midi_input(port: str | None, virtual: bool, callback: Callable[[Any], None]):
    """Return an open mido input calling `callback` per message: `port` by name, or a new virtual port if asked."""
    import mido

    try:
        if virtual:
            return mido.open_input(port or "RNNControl", virtual=True, callback=callback)
        names = mido.get_input_names()
    except (SystemError, OSError) as error:  # python-rtmidi's error when the ALSA sequencer is absent
        raise ValueError(f"MIDI is unavailable here ({error}): the ALSA sequencer (/dev/snd/seq) is needed; "
                         f"control over OSC (--osc_port) instead") from None
    if port not in names:
        raise ValueError(f"no MIDI input port {port!r}; the ports are {names or 'none'} "
                         f"(or pass --midi_virtual to make one that other programs connect to)")
    return mido.open_input(port, callback=callback)


class OscListener:
    """A UDP server on (host, port) whose messages drive the controls, served by its own thread."""

    def __init__(self, target: Controls, port: int, host: str = "127.0.0.1", report: Report = to_stderr) -> None:
        from pythonosc.dispatcher import Dispatcher
        from pythonosc.osc_server import BlockingOSCUDPServer

        self.target, self.report = target, RateLimitedReport(report)
        dispatcher = Dispatcher()
        dispatcher.map("/param/*", self._param)
        dispatcher.map("/note_on", self._note_on)
        dispatcher.map("/note_off", self._note_off)
        dispatcher.set_default_handler(self._unknown)
        try:
            # One thread serves the messages in order; a thread per message cost 4 ms a message on the loaded
            # machine (measured), more than the rest of the engine's latency.
            self.server = BlockingOSCUDPServer((host, port), dispatcher)
        except OSError as error:
            if error.errno == errno.EADDRINUSE:
                raise ValueError(f"OSC port {port} on {host} is busy (another program listens on it): "
                                 f"choose another with --osc_port") from None
            raise ValueError(f"cannot listen for OSC on {host}:{port} ({error}); check --osc_host") from None
        self.port = self.server.server_address[1]
        self._closing = threading.Event()
        self._thread = threading.Thread(target=self._serve, name="live-osc", daemon=True)
        self._thread.start()

    def _serve(self) -> None:
        raise_priority()  # a control waits in this thread's queue until it is read: part of the latency
        sock = self.server.socket
        while not self._closing.is_set():
            if not select.select([sock], [], [], _CLOSE_POLL_SECONDS)[0]:
                continue
            for data, client in latest_changes(_drain(sock)):
                self.server.dispatcher.call_handlers_for_packet(data, client)

    def _param(self, address: str, *args: Any) -> None:
        self._call(address, args, 1, lambda value: self.target.set(**{address[len("/param/"):]: value}))

    def _note_on(self, address: str, *args: Any) -> None:
        self._call(address, args, 2, self.target.note_on)

    def _note_off(self, address: str, *args: Any) -> None:
        self._call(address, args, 1, self.target.note_off)

    def _unknown(self, address: str, *args: Any) -> None:
        self.report(f"OSC {address}: unknown address; use /param/<name> <value>, /note_on <pitch> <velocity> "
                    f"or /note_off <pitch>")

    def _call(self, address: str, args: tuple, count: int, control: Callable[..., None]) -> None:
        if len(args) != count:
            self.report(f"OSC {address} {list(args)}: expects {count} number(s)")
            return
        try:
            control(*args)
        except ValueError as error:
            self.report(f"OSC {address} {list(args)}: {error}")

    def close(self) -> None:
        """Stop serving, free the port, and write the count of reports held back."""
        self._closing.set()
        self._thread.join()
        self.server.server_close()
        self.report.flush()


def _drain(sock: socket.socket) -> list[tuple[bytes, Any]]:
    """Return the datagrams already waiting on sock, up to _MAX_DRAINED, without waiting for more."""
    drained = []
    while len(drained) < _MAX_DRAINED:
        try:
            drained.append(sock.recvfrom(_MAX_DATAGRAM, socket.MSG_DONTWAIT))
        except BlockingIOError:
            break
    return drained


def latest_changes(datagrams: list[tuple[bytes, Any]]) -> list[tuple[bytes, Any]]:
    """Return the datagrams in their order, but of those to one /param/ address only the last.

    Parsing an OSC message in Python costs about as much as the generator's work for a sample, and the parsing
    thread holds the interpreter meanwhile: under a flood only the changes that would play are parsed (the engine
    keeps one change per parameter per block anyway). Notes, bundles and the rest keep every message.
    """
    address = [data.split(b"\0", 1)[0] if data.startswith(b"/param/") else None for data, _ in datagrams]
    last = {name: index for index, name in enumerate(address) if name is not None}
    return [item for index, item in enumerate(datagrams) if address[index] is None or last[address[index]] == index]
