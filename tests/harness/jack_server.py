"""A JACK server on the dummy driver (real-time pacing with no sound card) and a client that captures what plays."""
from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager

import numpy as np


@contextmanager
def dummy_jack_server(rate: int = 48000, period: int = 128, name: str | None = None, timeout: float = 20.0,
                      realtime: bool = False) -> Iterator[str]:
    """Start `jackd --no-realtime -d dummy` under a unique server name, yield the name, stop it at the end.

    realtime=True drops --no-realtime: the server's threads then run in the real-time class (root needed).
    """
    import jack

    if shutil.which("jackd") is None:
        raise FileNotFoundError("jackd is not installed: on Debian `apt-get install jackd2` (scripts/setup.sh does it)")
    name = name or f"rnncontrol-{os.getpid()}-{uuid.uuid4().hex[:8]}"
    command = ["jackd", "-n", name, "-d", "dummy", "-r", str(rate), "-p", str(period)]
    if not realtime:
        command.insert(1, "--no-realtime")
    # jackd reports every xrun on its output: into a file, since a pipe nobody reads fills and stops the server.
    log = tempfile.TemporaryFile()
    process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT)
    jack.set_error_function(lambda _message: None)  # the refusals while it starts are expected
    try:
        deadline = time.monotonic() + timeout
        while True:
            try:
                jack.Client("probe", servername=name, no_start_server=True).close()
                break
            except jack.JackOpenError:
                if process.poll() is not None or time.monotonic() > deadline:
                    log.seek(0)
                    raise RuntimeError(f"jackd did not start: {log.read().decode(errors='replace')}")
                time.sleep(0.1)
        jack.set_error_function(None)
        yield name
    finally:
        jack.set_error_function(None)
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        log.close()


class Capture:
    """A second JACK client whose input port records what it is connected to, from the moment it is."""

    def __init__(self, server: str, seconds: float) -> None:
        import jack

        self.client = jack.Client("capture", servername=server)
        self.audio = np.zeros(int(seconds * self.client.samplerate), dtype=np.float32)
        self.frames = 0
        self.port = self.client.inports.register("in")
        self.client.set_process_callback(self._process)
        self.client.activate()

    def _process(self, count: int) -> None:
        take = min(count, len(self.audio) - self.frames)
        self.audio[self.frames:self.frames + take] = self.port.get_array()[:take]
        self.frames += take

    def wait(self, frames: int, timeout: float = 60.0) -> None:
        """Wait until `frames` frames are captured, or `timeout` seconds."""
        deadline = time.monotonic() + timeout
        while self.frames < frames and time.monotonic() < deadline:
            time.sleep(0.01)

    def close(self) -> np.ndarray:
        """Stop capturing and return what was captured."""
        self.client.deactivate()
        self.client.close()
        return self.audio[:self.frames]


def play_through_jack(synth, server: str, seconds: float,
                      during: Callable[[Capture], None] | None = None) -> np.ndarray:
    """Return `seconds` of what a LiveSynth playing on `server` sends out, calling during(capture) once it sounds."""
    capture = Capture(server, seconds)
    try:
        with synth:
            capture.client.connect(synth.output.port, capture.port)
            capture.wait(1)
            if during is not None:
                during(capture)
            capture.wait(len(capture.audio))
    finally:
        audio = capture.close()
    return audio


@contextmanager
def midiseq(server: str, name: str, loop_frames: int, notes: list[tuple[int, int, int]]) -> Iterator[str]:
    """Run jackd2's example sequencer looping (start frame, note, frames held) notes; yield its port's name."""
    if shutil.which("jack_midiseq") is None:
        raise FileNotFoundError("jack_midiseq is not installed: on Debian `apt-get install jackd2` "
                                "(scripts/setup.sh does it)")
    command = ["jack_midiseq", name, str(loop_frames), *(str(value) for note in notes for value in note)]
    process = subprocess.Popen(command, env={**os.environ, "JACK_DEFAULT_SERVER": server},
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        yield f"{name}:out"
    finally:
        process.terminate()
        process.wait(timeout=10)


def connect_when_ready(client, source: str, destination, timeout: float = 10.0) -> None:
    """Connect `source` to `destination` once the client owning `source` is active (JACK refuses it before)."""
    import jack

    deadline = time.monotonic() + timeout
    while True:
        try:
            client.connect(source, destination)
            return
        except jack.JackError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.05)
