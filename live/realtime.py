"""The real-time layer of live play: a generator thread keeps a ring buffer ahead of the audio callback.

The callback (PortAudio, JACK, or a paced thread for `none`) only copies from the buffer: an underflow plays
silence and is counted, and nothing it meets is raised into the audio host. Generation runs in the generator
thread, which pulls blocks from the engine whenever the buffer holds less than its depth.
"""
from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable

import numpy as np

OUTPUTS = ("portaudio", "jack", "none")
_LOG_SIZE = 1 << 17  # callbacks and underflows remembered: 2,700 s of 128-frame periods at 48 kHz


class AudioUnavailable(RuntimeError):
    """No audio output could be opened; the message says what was found and what to do."""


# The generator and the paced `none` output run in the real-time scheduling class where the user may (root or
# CAP_SYS_NICE), as JACK's own threads do: on the loaded 2-core machine, 2 voices with a 4 ms buffer had 548
# underflows in 4 s at nice -10 and 4 with SCHED_FIFO (measured). Priority 10 stays below JACK's default of 10+.
REALTIME_PRIORITY = 10
AUDIO_NICENESS = -10


def raise_priority() -> str:
    """Raise the calling thread's scheduling priority as far as allowed; return what it got."""
    try:
        os.sched_setscheduler(0, os.SCHED_FIFO, os.sched_param(REALTIME_PRIORITY))
        return f"real-time (SCHED_FIFO {REALTIME_PRIORITY})"
    except (PermissionError, OSError):
        pass
    try:
        os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), AUDIO_NICENESS)
        return f"nice {AUDIO_NICENESS}"
    except (PermissionError, OSError):
        return "normal"


class RingBuffer:
    """Single producer (the generator), single consumer (the callback); positions count frames since the start."""

    def __init__(self, capacity: int) -> None:
        self.data = np.zeros(capacity, dtype=np.float32)
        self.written = 0  # advanced by the producer after it copied, so the consumer never reads half a block
        self.read = 0  # advanced by the consumer
        self.underflows = 0
        self.gaps = np.zeros((_LOG_SIZE, 2), dtype=np.int64)  # (played position, silent frames) of each underflow
        self.callbacks = np.zeros((_LOG_SIZE, 2), dtype=np.float64)  # (first frame handed out, perf_counter)
        self.callback_count = 0
        self.played = 0  # frames handed to the audio host, silence included
        self.errors = 0

    def fill(self) -> int:
        """Return how many frames are ready to play."""
        return self.written - self.read

    def write(self, block: np.ndarray) -> None:
        """Append a block; the producer checks first that it fits."""
        start = self.written % len(self.data)
        first = min(len(block), len(self.data) - start)
        self.data[start:start + first] = block[:first]
        self.data[:len(block) - first] = block[first:]
        self.written += len(block)

    def play(self, out: np.ndarray) -> None:
        """The audio callback's whole work: copy the next frames into out, silence for any that are missing."""
        try:
            count = len(out)
            self.callbacks[self.callback_count % _LOG_SIZE] = self.played, time.perf_counter()
            self.callback_count += 1
            ready = min(count, self.written - self.read)
            start = self.read % len(self.data)
            first = min(ready, len(self.data) - start)
            out[:first] = self.data[start:start + first]
            out[first:ready] = self.data[:ready - first]
            if ready < count:
                out[ready:] = 0.0
                self.gaps[self.underflows % _LOG_SIZE] = self.played + ready, count - ready
                self.underflows += 1
            self.read += ready
            self.played += count
        except Exception:  # never into the audio host: play silence if the buffer takes it, and count it
            self.errors += 1
            try:
                out[:] = 0.0
            except Exception:
                pass

    def logged_callbacks(self) -> np.ndarray:
        """Return the (first frame handed out, perf_counter) of the remembered callbacks, oldest first."""
        if self.callback_count <= _LOG_SIZE:
            return self.callbacks[:self.callback_count]
        return np.roll(self.callbacks, -(self.callback_count % _LOG_SIZE), axis=0)

    def frame_now(self, rate: int) -> float:
        """Return the estimated frame being handed to the host now, from the last callback's time."""
        if self.callback_count == 0:
            return 0.0
        position, when = self.callbacks[(self.callback_count - 1) % _LOG_SIZE]
        return position + (time.perf_counter() - when) * rate


class Generator:
    """A thread that tops the ring up to `depth` frames from `pull`, a period at a time, whenever it holds fewer.

    Topping up to exactly `depth` (not a whole period past it) bounds how far generation runs ahead of the frame
    being played, which LiveSynth relies on to place each control at its own sample.
    """

    def __init__(self, pull: Callable[[int], np.ndarray], ring: RingBuffer, period: int, depth: int,
                 rate: int, realtime: bool = True) -> None:
        if depth + period > len(ring.data):
            raise ValueError(f"buffer depth {depth} + period {period} exceeds the ring's {len(ring.data)} frames")
        self.pull, self.ring, self.period, self.depth, self.rate = pull, ring, period, depth, rate
        self.realtime = realtime
        self.recording: list[np.ndarray] | None = None
        self.busy_seconds = 0.0  # wall time spent generating
        self.cpu_seconds = 0.0  # this thread's CPU time spent generating
        self.generated = 0
        self.error: BaseException | None = None
        self.priority = "normal"  # what raise_priority got for the thread
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="live-generator", daemon=True)

    def prefill(self) -> None:
        """Fill the buffer to its depth before the audio starts, so the first callbacks find audio."""
        self._generate(self.depth - self.ring.fill())

    def start(self) -> None:
        """Start the thread."""
        self._thread.start()

    def stop(self) -> None:
        """Stop the thread and wait for it."""
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join()

    def _run(self) -> None:
        pause = self.period / self.rate / 4
        if self.realtime:
            self.priority = raise_priority()
        try:
            while not self._stop.is_set():
                missing = self.depth - self.ring.fill()
                if missing > 0:  # a period at a time: after a stall the callback gets its next period soonest
                    self._generate(min(missing, self.period))
                else:
                    time.sleep(pause)
        except BaseException as error:  # the callback plays silence; the owner reports this
            self.error = error

    def _generate(self, frames: int) -> None:
        wall, cpu = time.perf_counter(), time.thread_time()
        block = self.pull(frames)
        self.ring.write(block)
        if self.recording is not None:
            self.recording.append(block)
        self.generated += len(block)
        self.busy_seconds += time.perf_counter() - wall
        self.cpu_seconds += time.thread_time() - cpu

    def share_of_real_time(self) -> float:
        """Return the wall time spent generating over the duration of the audio generated."""
        return self.busy_seconds / max(self.generated / self.rate, 1e-9)


def played_audio(recording: list[np.ndarray], ring: RingBuffer) -> np.ndarray:
    """Return exactly what was played: the generated blocks up to the last frame played, with every gap's silence."""
    generated = np.concatenate(recording) if recording else np.zeros(0, dtype=np.float32)
    pieces, taken, position = [], 0, 0  # position: frames of the played stream that pieces cover
    for gap_at, silent in ring.gaps[:min(ring.underflows, _LOG_SIZE)]:
        audio = generated[taken:taken + gap_at - position]
        pieces += [audio, np.zeros(silent, dtype=np.float32)]
        taken, position = taken + len(audio), gap_at + silent
    pieces.append(generated[taken:taken + ring.played - position])
    return np.concatenate(pieces)
