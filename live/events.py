"""The live engine's timed control events: queued from any thread, taken a block at a time, a flood coalesced.

Each event the engine applies inside a block splits the block's rendering into one more sampler call, so 10,000
OSC messages a second made a few samples per call and the buffer ran dry (docs/results/speed.md). A block
therefore takes, of the changes it finds for one parameter (or for the bend), only the last one; notes are
never coalesced, and keep their order and sample.
"""
from __future__ import annotations

import heapq
import itertools
import threading
import time
from dataclasses import dataclass, field


@dataclass(order=True)
class Event:
    """A control to apply at a model-rate sample: kind names the engine's `_apply_<kind>`, args its arguments."""

    sample: int  # model-rate sample it takes effect at; -1: as soon as possible
    order: int
    kind: str = field(compare=False)
    args: tuple = field(compare=False)
    queued_at: float = field(compare=False)


class EventQueue:
    """Events ordered by (sample, arrival): `push` from any thread, `take` from the thread that renders."""

    def __init__(self) -> None:
        self._heap: list[Event] = []
        self._order = itertools.count()
        self._lock = threading.Lock()
        self.coalesced = 0  # changes dropped because a later one in the same block replaced them

    def push(self, sample: int, kind: str, args: tuple) -> None:
        """Queue an event; "ramp" events carry ([(channel, value), ...], ms) and "bend" ones (semitones,)."""
        event = Event(sample, next(self._order), kind, args, time.perf_counter())
        with self._lock:
            heapq.heappush(self._heap, event)

    def take(self, end: int) -> list[Event]:
        """Return the events due before sample `end`, in order, each parameter's changes (and bends) coalesced."""
        with self._lock:
            due = []
            while self._heap and self._heap[0].sample < end:
                due.append(heapq.heappop(self._heap))
        return self._coalesce(due)

    def _coalesce(self, due: list[Event]) -> list[Event]:
        kept, changed = [], set()  # walking back from the last event: what a later event already sets
        for event in reversed(due):
            if event.kind == "ramp":
                settings, ms = event.args
                fresh = [(channel, value) for channel, value in settings if channel not in changed]
                changed.update(channel for channel, _ in settings)
                event = Event(event.sample, event.order, "ramp", (fresh, ms), event.queued_at) if fresh else None
            elif event.kind == "bend":
                event = None if "bend" in changed else event
                changed.add("bend")
            if event is None:
                self.coalesced += 1
            else:
                kept.append(event)
        return kept[::-1]
