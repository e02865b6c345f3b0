import time

import numpy as np
import pytest

from live import realtime
from live.realtime import Generator, RingBuffer, played_audio


def ramp(start: int, count: int) -> np.ndarray:
    return np.arange(start, start + count, dtype=np.float32)


def test_the_callback_copies_across_the_ring_end():
    ring = RingBuffer(16)
    out = np.empty(10, dtype=np.float32)
    ring.write(ramp(0, 10))
    ring.play(out)
    ring.write(ramp(10, 12))  # wraps past the end of the 16-frame ring
    ring.play(out)
    np.testing.assert_array_equal(out, ramp(10, 10))
    assert ring.underflows == 0 and ring.fill() == 2


def test_an_underflow_plays_silence_and_is_counted():
    ring = RingBuffer(64)
    ring.write(ramp(1, 5))
    out = np.full(8, 9.0, dtype=np.float32)
    ring.play(out)
    np.testing.assert_array_equal(out, [1, 2, 3, 4, 5, 0, 0, 0])
    assert ring.underflows == 1 and ring.played == 8 and ring.fill() == 0


def test_the_callback_never_raises_into_the_audio_host():
    ring = RingBuffer(64)
    ring.write(ramp(1, 8))
    read_only = np.zeros(8, dtype=np.float32)
    read_only.setflags(write=False)
    ring.play(read_only)
    ring.play(np.zeros((3, 3, 3), dtype=np.float32))  # a buffer of the wrong shape
    assert ring.errors == 2


def test_played_audio_is_the_generated_stream_with_the_underflows_silence():
    ring = RingBuffer(64)
    blocks = [ramp(1, 6), ramp(7, 8), ramp(15, 4)]
    out = np.empty(8, dtype=np.float32)
    played = []
    ring.write(blocks[0])
    ring.play(out)
    played.append(out.copy())  # 6 frames, 2 silent
    ring.write(blocks[1])
    ring.write(blocks[2])
    ring.play(out)
    played.append(out.copy())
    ring.play(out[:3])
    played.append(out[:3].copy())  # 19 generated frames, 19 played plus 2 silent: 3 of block 3 remain unplayed
    np.testing.assert_array_equal(played_audio(blocks, ring), np.concatenate(played))


def test_the_callback_log_reads_oldest_first_after_it_wraps(monkeypatch):
    monkeypatch.setattr(realtime, "_LOG_SIZE", 4)
    ring = RingBuffer(64)
    out = np.empty(2, dtype=np.float32)
    for _ in range(3):
        ring.play(out)
    assert ring.logged_callbacks()[:, 0].tolist() == [0, 2, 4]
    for _ in range(3):
        ring.play(out)
    assert ring.logged_callbacks()[:, 0].tolist() == [4, 6, 8, 10]  # the last four of six


def refill_after(taken: int, depth: int) -> tuple[RingBuffer, list[int]]:
    """Fill a ring to `depth` through a Generator (periods of 32), let the callback take `taken` frames, wait until
    the generator has topped it up again; return the ring and the frames of each pull."""
    ring, pulls = RingBuffer(256), []

    def pull(frames):
        pulls.append(frames)
        return np.ones(frames, dtype=np.float32)

    generator = Generator(pull, ring, period=32, depth=depth, rate=48000, realtime=False)
    generator.prefill()
    assert ring.fill() == depth
    ring.play(np.empty(taken, dtype=np.float32))
    generator.start()
    deadline = time.monotonic() + 5
    while ring.fill() < depth and time.monotonic() < deadline:
        time.sleep(0.001)
    generator.stop()
    return ring, pulls


def test_the_generator_keeps_the_buffer_at_its_depth():
    ring, pulls = refill_after(32, depth=80)
    assert ring.fill() == 80 and ring.written == 112 and sum(pulls) == 112


def test_after_a_stall_the_generator_refills_a_period_at_a_time():
    # The callback took everything, as after a stall of the generator: pulling the whole depth at once would leave
    # the ring empty until all of it was made.
    ring, pulls = refill_after(96, depth=96)
    assert ring.fill() == 96 and pulls == [96, 32, 32, 32]


def test_a_depth_beyond_the_ring_is_refused():
    with pytest.raises(ValueError, match="exceeds the ring"):
        Generator(lambda n: np.zeros(n, np.float32), RingBuffer(64), period=32, depth=64, rate=48000)
