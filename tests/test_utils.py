"""Notebook audio players: the real level, clipped, and DC removed on request."""
import io

import numpy as np
import soundfile as sf

from utils.utils import playable, player


def test_playable_keeps_the_level_and_clips_to_full_scale():
    quiet = 0.1 * np.sin(np.linspace(0, 20 * np.pi, 1000))
    np.testing.assert_allclose(playable(quiet), quiet, atol=1e-7)
    assert playable(np.array([-3.0, 0.5, 2.0])).tolist() == [-1.0, 0.5, 1.0]


def test_playable_removes_dc_only_when_asked():
    offset = np.full(100, 0.4) + 0.01 * np.sin(np.arange(100))
    assert abs(playable(offset, remove_dc=True).mean()) < 1e-6
    assert playable(offset).mean() > 0.39


def test_player_plays_a_quiet_clip_quietly():
    quiet = (0.05 * np.sin(np.linspace(0, 200 * np.pi, 8000))).astype(np.float32)
    wav, _ = sf.read(io.BytesIO(player(quiet, 8000).data))
    assert 0.04 < np.abs(wav).max() < 0.06  # IPython's default would have scaled it to 1.0
