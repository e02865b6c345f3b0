"""Shared fixtures: a headless matplotlib, a tiny conditioned data set, and the built C runtime."""
import subprocess
from pathlib import Path

import matplotlib
import pytest

from tests.harness.run_folders import ROOT, write_tiny_data

matplotlib.use("Agg")


@pytest.fixture(scope="session")
def tiny_data_dir(tmp_path_factory) -> Path:
    """A folder of 8 short tones named like the default set: 2 instruments x 2 pitches x 2 amplitudes."""
    return write_tiny_data(tmp_path_factory.mktemp("tiny_data"))


@pytest.fixture(scope="session")
def built_runtime() -> Path:
    """The C runtime and the Pd external, built from the sources here (make does nothing when they are current)."""
    for folder in ("runtime", "pd/rnncontrol~"):
        subprocess.run(["make", "-s", "-C", str(ROOT / folder)], check=True, capture_output=True, timeout=300)
    return ROOT / "runtime"
