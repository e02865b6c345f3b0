"""A report of refused messages that a flood cannot turn into a flood of lines: a few each second, then a count.

A mixed OSC flood printed 25,000 lines on stderr, each taking the interpreter from the thread that generates the
audio. Every listener reports through one of these: the first `burst` lines of each second as they come, the rest
counted and summed up in one line when the next second begins (or when the listener closes).
"""
from __future__ import annotations

import sys
import threading
import time
from collections.abc import Callable


def to_stderr(message: str) -> None:
    """Write one line on stderr."""
    print(message, file=sys.stderr)


class RateLimitedReport:
    """Calls `write` with at most `burst` lines per `interval` seconds, then one line counting those held back."""

    def __init__(self, write: Callable[[str], None] = to_stderr, burst: int = 5, interval: float = 1.0,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.write, self.burst, self.interval, self._clock = write, burst, interval, clock
        self._lock = threading.Lock()
        self._window = -float("inf")  # when the current interval began
        self._shown = 0
        self.held = 0  # lines held back in the current interval

    def __call__(self, message: str) -> None:
        """Report one line, or count it when this interval's burst is spent."""
        with self._lock:
            now = self._clock()
            if now - self._window >= self.interval:
                self._write_held()
                self._window, self._shown = now, 0
            if self._shown < self.burst:
                self._shown += 1
                self.write(message)
            else:
                self.held += 1

    def flush(self) -> None:
        """Write the count of lines held back, if any."""
        with self._lock:
            self._write_held()

    def _write_held(self) -> None:
        if self.held:
            self.write(f"... and {self.held} more like these within {self.interval:g} s, not shown")
            self.held = 0
