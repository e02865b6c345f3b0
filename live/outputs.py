"""Audio outputs for live play: PortAudio (the sound card), a JACK server, or `none` (a thread at real-time pace).

Each calls `play(out)` once a period with a float32 buffer of `period` frames to fill; `play` only copies.
"""
from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable

import numpy as np

from live.realtime import OUTPUTS, AudioUnavailable, raise_priority

Play = Callable[[np.ndarray], None]
_SUGGESTION = "try --audio jack (with a running JACK server), or --audio none --record out.wav"


class NullOutput:
    """No sound card: a thread asks for a period every period/rate seconds of the monotonic clock."""

    def __init__(self, rate: int, period: int, realtime: bool = True) -> None:
        self.rate, self.period, self.xruns, self.realtime = rate, period, 0, realtime
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self, play: Play) -> None:
        """Start calling play at real-time pace."""
        self._thread = threading.Thread(target=self._run, args=(play,), name="live-null-output", daemon=True)
        self._thread.start()

    def _run(self, play: Play) -> None:
        if self.realtime:
            raise_priority()
        buffer = np.zeros(self.period, dtype=np.float32)
        seconds = self.period / self.rate
        deadline = time.monotonic()
        while not self._stop.is_set():
            play(buffer)
            deadline += seconds
            late = time.monotonic() - deadline
            if late > seconds:  # fell behind by a whole period: count it, as an audio host counts an xrun
                self.xruns += 1
                deadline = time.monotonic()
            else:
                time.sleep(max(0.0, -late))

    def stop(self) -> None:
        """Stop the pacing thread."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join()


class PortAudioOutput:
    """The sound card through PortAudio (sounddevice), mono played on every channel of the device."""

    def __init__(self, rate: int, period: int, device: str | int | None) -> None:
        sd = _sounddevice()
        self.rate, self.period, self.xruns = rate, period, 0
        try:
            info = sd.query_devices(device, kind="output")
            self._channels = max(1, min(2, int(info["max_output_channels"])))
            sd.check_output_settings(device, channels=self._channels, dtype="float32", samplerate=rate)
        except (ValueError, sd.PortAudioError) as error:
            raise AudioUnavailable(f"no usable PortAudio output{f' {device!r}' if device is not None else ''} "
                                   f"({error}). {describe_devices()}; {_SUGGESTION}") from None
        self._device, self._sd, self._stream = device, sd, None

    def start(self, play: Play) -> None:
        """Open and start the stream."""
        def callback(outdata, frames, _time, status) -> None:
            if status.output_underflow:
                self.xruns += 1
            play(outdata[:, 0])
            outdata[:, 1:] = outdata[:, :1]

        self._stream = self._sd.OutputStream(samplerate=self.rate, blocksize=self.period, device=self._device,
                                             channels=self._channels, dtype="float32", latency="low",
                                             callback=callback)
        self._stream.start()

    def stop(self) -> None:
        """Stop and close the stream."""
        if self._stream is not None:
            self._stream.stop()
            self._stream.close()


class JackOutput:
    """A JACK client with one output port "out", connected to the first two system playback ports unless asked not."""

    def __init__(self, name: str, server: str | None, connect: bool, realtime: bool = True) -> None:
        import jack

        server = server or os.environ.get("JACK_DEFAULT_SERVER")
        try:
            self.client = jack.Client(name, servername=server, no_start_server=True)
        except jack.JackOpenError:
            raise AudioUnavailable(f"no JACK server {server or 'default'!r} is running: start one (e.g. "
                                   f"`jackd -d alsa`, or `jackd -d dummy` without a sound card), name it with "
                                   f"--jack_server or JACK_DEFAULT_SERVER, or use --audio portaudio or "
                                   f"--audio none --record out.wav") from None
        self.rate, self.period, self.xruns = self.client.samplerate, self.client.blocksize, 0
        self.port = self.client.outports.register("out")
        self._connect, self._realtime = connect, realtime
        # Called with the period's frame count before each period plays: live/jack_midi.py reads its port there.
        self.before_play: list[Callable[[int], None]] = []

    def start(self, play: Play) -> None:
        """Activate the client and connect its port."""
        # A server started with --no-realtime leaves its clients' process threads at normal priority: the first
        # callback raises its own thread, once (JACK-Client offers no thread-init callback to do it before).
        raise_once = [self._realtime and not self.client.realtime]

        def process(frames: int) -> None:
            if raise_once[0]:
                raise_once[0] = False
                raise_priority()
            for hook in self.before_play:
                hook(frames)
            play(self.port.get_array())

        self.client.set_process_callback(process)
        self.client.set_xrun_callback(self._count_xrun)
        self.client.activate()
        if self._connect:
            for playback in self.client.get_ports(is_physical=True, is_input=True, is_audio=True)[:2]:
                self.client.connect(self.port, playback)

    def _count_xrun(self, _delay: float) -> None:
        self.xruns += 1

    def stop(self) -> None:
        """Deactivate and close the client."""
        self.client.deactivate()
        self.client.close()


Output = NullOutput | PortAudioOutput | JackOutput


def open_output(backend: str, rate: int, period: int, device: str | int | None = None,
                jack_server: str | None = None, connect: bool = True, name: str = "rnncontrol",
                realtime: bool = True) -> Output:
    """Return the output for `backend`; its `rate` and `period` are those of the JACK server for jack."""
    if backend not in OUTPUTS:
        raise ValueError(f"--audio must be one of {OUTPUTS}, got {backend!r}")
    if not 32 <= period <= 2048:
        raise ValueError(f"--period must be within 32..2048 frames, got {period}")
    if rate <= 0:
        raise ValueError(f"--rate must be positive, got {rate}")
    if backend == "jack":
        return JackOutput(name, jack_server, connect, realtime)
    if backend == "portaudio":
        return PortAudioOutput(rate, period, device)
    return NullOutput(rate, period, realtime)


def _sounddevice():
    try:
        import sounddevice
    except OSError as error:  # the Python package is there but not the PortAudio library
        raise AudioUnavailable(f"PortAudio is not installed ({error}): on Debian `apt-get install libportaudio2` "
                               f"(scripts/setup.sh does it); or {_SUGGESTION}") from None
    return sounddevice


def describe_devices() -> str:
    """Return one line naming the PortAudio output devices and host APIs found."""
    try:
        sd = _sounddevice()
        devices = [f"{i}: {d['name']}" for i, d in enumerate(sd.query_devices()) if d["max_output_channels"] > 0]
        apis = [api["name"] for api in sd.query_hostapis()]
    except AudioUnavailable as error:
        return str(error)
    return (f"PortAudio host APIs {apis or 'none'}, output devices {devices or 'none'}")
