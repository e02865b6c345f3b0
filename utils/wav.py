"""WAV files written atomically: a reader never sees half a file, and a failed write keeps what was there."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import soundfile as sf

from utils.atomic_write import write_atomically


def save_wav(path: str | Path, audio: np.ndarray, sample_rate: int) -> None:
    """Write 16-bit WAV atomically."""
    write_atomically(path, lambda f: sf.write(f, audio, sample_rate, format="WAV", subtype="PCM_16"))
