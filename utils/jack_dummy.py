"""A JACK server on the dummy driver: real-time pacing with no sound card, for the tests and the live benchmark."""
from __future__ import annotations

import os
import shutil
import subprocess
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager


@contextmanager
def dummy_jack_server(rate: int = 48000, period: int = 128, name: str | None = None,
                      timeout: float = 20.0) -> Iterator[str]:
    """Start `jackd --no-realtime -d dummy` under a unique server name, yield the name, stop it at the end."""
    import jack

    if shutil.which("jackd") is None:
        raise FileNotFoundError("jackd is not installed: on Debian `apt-get install jackd2` (scripts/setup.sh does it)")
    name = name or f"rnncontrol-{os.getpid()}-{uuid.uuid4().hex[:8]}"
    process = subprocess.Popen(["jackd", "--no-realtime", "-n", name, "-d", "dummy", "-r", str(rate), "-p",
                                str(period)], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    jack.set_error_function(lambda _message: None)  # the refusals while it starts are expected
    try:
        deadline = time.monotonic() + timeout
        while True:
            try:
                jack.Client("probe", servername=name, no_start_server=True).close()
                break
            except jack.JackOpenError:
                if process.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(f"jackd did not start: {process.stderr.read().decode(errors='replace')}")
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
