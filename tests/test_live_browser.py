"""Inference.ipynb's live play in a real browser: JupyterLab on loopback, Debian's headless Chromium driven by
Playwright, the quick_run fixture. A user presses Play and turns the pitch knob from low to high; what the worklet
played must follow the knob's pitch, with no underflow over 20 s, and the latency readout must be shown."""
import re
import time

import numpy as np
import pytest
import soxr

from tests.harness.browser import LiveWidget, chromium_page, jupyter_lab, prepare_notebook
from tests.harness.run_folders import ROOT
from utils.pitch import estimate_f0, hz_to_midi

pytestmark = pytest.mark.system

FIXTURE = ROOT / "tests" / "fixtures" / "quick_run"  # made by: .venv/bin/python -m tests.fixtures.make_quick_run
PITCHES = (64.0, 68.0, 72.0, 76.0)  # the knob's stops, low to high
HOLD_SECONDS = 5.0  # at each stop: 20 s of play in all
SETTLE_SECONDS = 1.0  # left out of each stop's pitch: the knob's latency and the network settling on the new note
MEASURE_RATE = 16000


def pitch_of(audio: np.ndarray, sample_rate: int) -> tuple[float, float]:
    """Return (median f0 as a MIDI pitch over the voiced frames, voiced share) of audio played by the browser."""
    audio = soxr.resample(audio, sample_rate, MEASURE_RATE)
    f0, voiced = estimate_f0(audio, MEASURE_RATE, fmin=150.0, fmax=1500.0, frame_length=1024, hop_length=256)
    return float(np.median(hz_to_midi(f0[voiced]))) if voiced.any() else float("nan"), float(voiced.mean())


def test_live_play_follows_the_pitch_knob_in_jupyterlab_without_underflow(tmp_path):
    assert (FIXTURE / "config.json").is_file(), f"{FIXTURE} is missing: .venv/bin/python -m tests.fixtures.make_quick_run"
    notebooks = tmp_path / "notebooks"
    notebooks.mkdir()
    prepare_notebook(notebooks, {"run_directory": str(FIXTURE), "length_seconds": 0.05})
    with jupyter_lab(notebooks, tmp_path) as url, chromium_page(tmp_path) as page:
        live = LiveWidget.open(page, url)
        live.turn("instID", 1.0)  # the clarinet, played firmly: the fixture plays it within a semitone
        live.turn("a", 0.8)
        live.turn("p", PITCHES[0])
        live.play()
        live.record(True)
        for pitch in PITCHES:
            live.turn("p", pitch)
            time.sleep(HOLD_SECONDS)
        # The readouts first: handing 20 s of recorded audio to the test keeps the page busy long enough to starve
        # the pull loop, which is the test's doing, not the player's.
        health, status = live.health(), live.status_text()
        played = live.recording()

    rate = int(health["sampleRate"])
    assert len(played) >= 0.95 * len(PITCHES) * HOLD_SECONDS * rate
    heard = [pitch_of(played[int((k * HOLD_SECONDS + SETTLE_SECONDS) * rate):int((k + 1) * HOLD_SECONDS * rate)],
                      rate) for k in range(len(PITCHES))]
    midi, voiced = np.array(heard).T
    assert np.all(voiced > 0.5), f"voiced shares {voiced}"
    assert np.all(np.abs(midi - PITCHES) < 1.0), f"asked {PITCHES}, heard {midi.round(2)}"
    assert np.all(np.diff(midi) > 2.0), f"heard {midi.round(2)}: not rising with the knob"
    # At most one gap: on the 2-core CI machine after the rest of the suite, one stall of the Jupyter server in 20 s
    # was seen once with a 200 ms buffer; more than one means the pull loop does not keep up.
    assert health["underflows"] <= 1, status
    assert len(health["latencies"]) >= len(PITCHES) - 1 and re.search(r"latency \d+ ms", status), status
