"""The live engine: renders the next output frames on demand, applying timed control events at their own sample.

No audio backend is involved: `pull(frames)` returns float32 audio at the output rate, the voices mixed, and the
real-time layer (live/realtime.py), a notebook widget or a test calls it. Controls use the run's own parameter names
and units and may come from any thread; they queue events that the next `pull` applies.
"""
from __future__ import annotations

import itertools
import math
from collections import deque
from dataclasses import dataclass, field

import numpy as np
import soxr

from audioDataLoader.audio_dataset import normalize_parameters
from audioDataLoader.mulaw import mu_law_decode
from live.events import Event, EventQueue
from live.values import LiveValues
from live.voice_allocator import DRONE, Start, VoiceAllocator
from model.gru_audio_model import RNN
from model.reference import PeriodicReference
from model.sampler import BACKENDS, choose_backend, silent_voices
from utils.checks import check_sampling_settings, finite_number

RESAMPLE_QUALITIES = ("QQ", "LQ", "MQ", "HQ")


@dataclass
class EngineConfig:
    """How the engine plays: voices, output rate, which parameters notes set, and the control smoothing times."""

    voices: int = 1
    output_rate: int = 48000
    pitch: str | None = "p"  # the parameter a note's number sets, in its own units (MIDI note numbers)
    velocity: str | None = "a"  # the parameter a note's velocity (0-127) sets, mapped onto the parameter's range
    smooth_ms: float = 5.0  # every set() glides over this long, so steps make no zipper noise
    glide_ms: float = 60.0  # with one voice, a new note glides to its pitch over this long
    attack_ms: float = 5.0
    release_ms: float = 80.0
    drone: bool = False  # voice 0 sounds from the start, so set() and /param play without a note
    initial: dict[str, float] = field(default_factory=dict)  # starting values; the others start mid-range
    top_n: int = 3
    temperature: float = 1.0
    seed: int | None = None
    # soxr's quick cubic resampler adds 0.1 ms; its filtered qualities add 1 to 24 ms of delay (measured).
    resample_quality: str = "QQ"
    # Threads for the sampler while pulling. One: on the loaded 2-core machine a 2-voice block of 43 samples took
    # 1.0-1.5 ms on one numba thread and 15-21 ms when numba's thread pool had to be woken for it (measured).
    threads: int = 1
    backend: str = "auto"  # the sampler: numba, c (the C runtime), torch, or auto (c when built, else numba)


class _Ramps:
    """Per voice, per channel linear ramps: from value v0 at sample s0 to v1 over d samples (d >= 1)."""

    def __init__(self, voices: int, channels: int, values: np.ndarray) -> None:
        self.s0 = np.zeros((voices, channels))
        self.d = np.ones((voices, channels))
        self.v0 = np.broadcast_to(values, (voices, channels)).astype(np.float64)
        self.v1 = self.v0.copy()
        self.settled_from = 0.0  # the sample from which every ramp has ended

    def at(self, voices: np.ndarray, samples: np.ndarray) -> np.ndarray:
        """Return the values (len(voices), len(samples), channels) at the given samples (read-only)."""
        if samples[0] >= self.settled_from:  # most blocks: each value is its ramp's end, v0 + (v1 - v0) * 1
            v0 = self.v0[voices]
            ended = v0 + (self.v1[voices] - v0)
            return np.broadcast_to(ended[:, None], (len(voices), len(samples), ended.shape[1]))
        s0, d = self.s0[voices][:, None], self.d[voices][:, None]
        v0, v1 = self.v0[voices][:, None], self.v1[voices][:, None]
        fraction = np.clip((samples[None, :, None] - s0 + 1) / d, 0.0, 1.0)
        return v0 + (v1 - v0) * fraction

    def value(self, voice: int, channel: int, sample: float) -> float:
        """Return one value of `at`, in the same float64 operations: a note-on starts 16 voices' ramps in one block,
        and arrays for each would take milliseconds of the audio thread."""
        s0, d = float(self.s0[voice, channel]), float(self.d[voice, channel])
        v0, v1 = float(self.v0[voice, channel]), float(self.v1[voice, channel])
        fraction = min(max((sample - s0 + 1) / d, 0.0), 1.0)
        return v0 + (v1 - v0) * fraction

    def start(self, voice: int, channel: int, sample: int, target: float, length: int) -> None:
        """Ramp from the value just before `sample` to `target`, reaching it `length` samples later."""
        current = self.value(voice, channel, sample - 1.0)
        self.s0[voice, channel], self.d[voice, channel] = sample, max(length, 1)
        self.v0[voice, channel], self.v1[voice, channel] = current, target
        self.settled_from = max(self.settled_from, sample + max(length, 1) - 1)


class LiveEngine:
    """A trained model played live: `set`, `ramp`, `note_on`, `note_off`, `bend` queue events; `pull` renders."""

    def __init__(self, model: RNN, data_config, config: EngineConfig | None = None) -> None:
        self.config = config = config or EngineConfig()
        self.specs = dict(data_config.parameter_specs)
        self.model_rate = int(data_config.sample_rate)
        self.names = list(self.specs)
        self.values = LiveValues.of(data_config, config.pitch, config.velocity)
        self._check_config(config)
        numtokens, voices = model.config.numtokens, config.voices
        self._decoded = mu_law_decode(np.arange(numtokens), numtokens)  # a table: quicker than decoding each block
        # Making the voices compiles the sampler (or loads it from numba's cache): now, not in the audio path.
        self.backend = choose_backend(model, config.backend)
        self._voices = silent_voices(model, voices, self.backend, data_config.encode, config.seed, config.threads,
                                     PeriodicReference.of(data_config))
        self._notes_started = itertools.count()
        self.defaults = np.array([config.initial.get(n, sum(self.specs[n]) / 2) for n in self.names], dtype=np.float64)
        self._params = _Ramps(voices, len(self.names), self.defaults)
        self._gain = _Ramps(voices, 1, np.zeros(1))
        self._free_at = np.full(voices, np.inf)
        self._allocator = VoiceAllocator(voices)
        self._notes: dict[int, float] = {}  # voice -> the note number it plays (before bend)
        self._bend = 0.0
        self.mix_gain = 1.0 / math.sqrt(voices)  # headroom: N uncorrelated voices sum to one voice's power
        self._events = EventQueue()
        self._resampler = None if self.model_rate == config.output_rate else soxr.ResampleStream(
            self.model_rate, config.output_rate, 1, dtype="float32", quality=config.resample_quality)
        self._pending = np.zeros(0, dtype=np.float32)
        self.generated = 0  # model-rate samples rendered so far
        self.frames = 0  # output frames returned by pull so far: the engine's clock
        self.late_events = 0  # events whose time had already been rendered; they took effect at once
        self.voice_resets = 0  # voices whose state was found non-finite and started over from silence
        self.landed: deque[tuple[float, int]] = deque(maxlen=100_000)  # (event queued_at, output frame it lands on)
        if config.drone:
            self._allocator.note_on(DRONE)
            self._gain.v0[0] = self._gain.v1[0] = 1.0
            self._free_at[0] = np.inf

    def _check_config(self, config: EngineConfig) -> None:
        if config.threads < 1:
            raise ValueError(f"threads must be at least 1, got {config.threads}")
        if config.voices < 1:
            raise ValueError(f"voices must be at least 1, got {config.voices}")
        if config.output_rate <= 0:
            raise ValueError(f"output rate must be positive, got {config.output_rate}")
        if config.resample_quality not in RESAMPLE_QUALITIES:
            raise ValueError(f"resample quality must be one of {RESAMPLE_QUALITIES}, got {config.resample_quality!r}")
        if config.backend not in BACKENDS:
            raise ValueError(f"backend must be one of {BACKENDS}, got {config.backend!r}")
        check_sampling_settings(config.top_n, config.temperature)
        for name in ("smooth_ms", "glide_ms", "attack_ms", "release_ms"):
            if not finite_number(name, getattr(config, name)) >= 0:
                raise ValueError(f"{name} must be >= 0, got {getattr(config, name)}")
        self.values.parameters(config.initial)

    # ---- controls: validated in the caller's thread, applied by pull at their sample ----

    def set(self, at: int | None = None, **values: float) -> None:
        """Set parameters in their own units (gliding over smooth_ms), at output frame `at` or as soon as possible."""
        self.ramp(ms=self.config.smooth_ms, at=at, **values)

    def ramp(self, ms: float, at: int | None = None, **values: float) -> None:
        """Ramp parameters linearly to the given values (own units) over `ms` milliseconds."""
        ms = finite_number("ms", ms)
        if ms < 0:
            raise ValueError(f"ms: a ramp lasts 0 ms or more, got {ms}")
        checked = [self.values.parameter(name, value) for name, value in values.items()]
        self._queue(at, "ramp", (checked, ms))

    def note_on(self, note: float, velocity: float = 100, at: int | None = None) -> None:
        """Start a note: its number sets the pitch parameter, its velocity (0-127) the velocity parameter."""
        self._queue(at, "note_on", (self.values.note(note), self.values.note_velocity(velocity)))

    def note_off(self, note: float, at: int | None = None) -> None:
        """Release a note: its voice fades out over release_ms and is freed."""
        self._queue(at, "note_off", (self.values.note(note),))

    def bend(self, semitones: float, at: int | None = None) -> None:
        """Shift the pitch of every note by `semitones` (a pitch wheel)."""
        self._queue(at, "bend", (self.values.bend(semitones),))

    def _queue(self, at: int | None, kind: str, args: tuple) -> None:
        if at is None:
            sample = -1
        else:
            sample = int(round(finite_number("at", at) * self.model_rate / self.config.output_rate))
        self._events.push(sample, kind, args)

    # ---- rendering ----

    def pull(self, frames: int) -> np.ndarray:
        """Return the next `frames` output frames, float32 in [-1, 1] at the output rate."""
        ratio = self.config.output_rate / self.model_rate
        while len(self._pending) < frames:
            needed = max(1, math.ceil((frames - len(self._pending)) / ratio))
            audio = self._render(needed)
            if self._resampler is not None:
                audio = self._resampler.resample_chunk(audio)
            self._pending = np.concatenate([self._pending, audio])
        block, self._pending = self._pending[:frames], self._pending[frames:]
        self.frames += frames
        return block

    def output_frame(self, sample: int) -> int:
        """Return the output frame at which model sample `sample` is heard (the resampler's delay included)."""
        delay = self._resampler.delay() if self._resampler is not None else 0.0
        return int(round(sample * self.config.output_rate / self.model_rate + delay))

    @property
    def coalesced_events(self) -> int:
        """Return how many parameter changes a later change in the same block replaced before they played."""
        return self._events.coalesced

    def sounding(self) -> int:
        """Return how many voices sound now."""
        return len(self._allocator.sounding())

    def _render(self, count: int) -> np.ndarray:
        """Return the next `count` model-rate samples of the mix, applying each event at its sample."""
        out = np.zeros(count, dtype=np.float32)
        start, end = self.generated, self.generated + count
        events = deque(self._events.take(end))
        while start < end:
            self._apply_due(events, start)
            stop = min(events[0].sample if events else end, int(min(self._free_at.min(), end)))
            if stop > start:
                out[start - self.generated:stop - self.generated] = self._mix(start, stop)
            start = stop
        self.generated = end
        self._free_released(end)
        return np.clip(out, -1.0, 1.0)

    def _free_released(self, sample: int) -> None:
        for voice in np.flatnonzero(self._free_at <= sample):
            self._allocator.free(voice)
            self._free_at[voice] = np.inf

    def _apply_due(self, events: deque[Event], start: int) -> None:
        """Apply, and take from the front of `events`, those due at `start`."""
        while events and events[0].sample <= start:
            event = events.popleft()
            if 0 <= event.sample < start:
                self.late_events += 1
            getattr(self, f"_apply_{event.kind}")(start, *event.args)
            self.landed.append((event.queued_at, self.output_frame(start)))
        self._free_released(start)

    def _mix(self, start: int, stop: int) -> np.ndarray:
        active = np.array(self._allocator.sounding(), dtype=np.int64)
        if len(active) == 0:
            return np.zeros(stop - start, dtype=np.float32)
        samples = np.arange(start, stop, dtype=np.float64)
        cond = normalize_parameters(self._params.at(active, samples), self.specs).astype(np.float32)
        self._reset_broken(active)
        codes = self._voices.sample(cond, self.config.top_n, self.config.temperature, which=active)
        gain = self._gain.at(active, samples)[..., 0]
        return (self._decoded[codes] * gain).sum(axis=0).astype(np.float32) * self.mix_gain

    def _reset_broken(self, active: np.ndarray) -> None:
        """Start over, from silence, each voice whose state is not finite, and count it.

        Nothing from outside gets a voice there (live/values.py checks every value); were anything to, the voice
        would otherwise play one constant until its next note, and PyTorch's sampler would raise.
        """
        broken = active[~self._voices.finite(active)]
        for voice in broken:
            self._new_stream(voice)
        self.voice_resets += len(broken)

    def _samples(self, ms: float) -> int:
        return int(round(ms * self.model_rate / 1000))

    def _apply_ramp(self, sample: int, settings: list[tuple[int, float]], ms: float) -> None:
        for channel, value in settings:
            self.defaults[channel] = value
            for voice in range(self.config.voices):
                self._params.start(voice, channel, sample, value, self._samples(ms))

    def _apply_note_on(self, sample: int, note: float, velocity: float) -> None:
        voice, start = self._allocator.note_on(note)
        self._notes[voice] = note
        targets = self.values.note_targets(note + self._bend, velocity)
        glide = {Start.FRESH: 0, Start.LEGATO: self.config.glide_ms, Start.STOLEN: self.config.smooth_ms}[start]
        if start is Start.FRESH:
            self._restart(voice, sample)
        for name, value in targets.items():
            self._params.start(voice, self.names.index(name), sample, value, self._samples(glide))
        self._gain.start(voice, 0, sample, 1.0, self._samples(self.config.attack_ms))
        self._free_at[voice] = np.inf

    def _restart(self, voice: int, sample: int) -> None:
        """Give `voice` a fresh stream: silent hidden state, a new random stream, the current parameter values."""
        self._new_stream(voice)
        for channel, value in enumerate(self.defaults):
            self._params.start(voice, channel, sample, value, 0)
        self._gain.start(voice, 0, sample, 0.0, 0)

    def _new_stream(self, voice: int) -> None:
        """Put `voice` back to silence and a zero hidden state, with a new random stream."""
        # Each note's random stream depends only on the seed and how many notes started before it.
        seed = np.random.SeedSequence(self.config.seed, spawn_key=(next(self._notes_started),))
        self._voices.restart(voice, int(seed.generate_state(1, dtype=np.uint64)[0]))

    def _apply_note_off(self, sample: int, note: float) -> None:
        voice = self._allocator.note_off(note)
        if voice is None:
            return
        release = self._samples(self.config.release_ms)
        self._gain.start(voice, 0, sample, 0.0, release)
        self._free_at[voice] = sample + release

    def _apply_bend(self, sample: int, semitones: float) -> None:
        self._bend = semitones
        channel = self.names.index(self.config.pitch)
        for voice, note in self._notes.items():
            if self._allocator.held(voice) is not None:
                self._params.start(voice, channel, sample, self.values.pitch_target(note + semitones),
                                   self._samples(self.config.smooth_ms))
