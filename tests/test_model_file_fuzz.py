"""Thousands of mutated model files through the C loader built with ASan and UBSan, and through the Python loader.

The files of tests/model_file_cases.py go through both too. The C half is runtime/tools/fuzz_model_file.c (`make -C runtime sanitize`). Neither loader may do anything but
accept a file or refuse it with its one-line reason, and both must give the same verdict on every file.
`pytest -s` prints how many files each read and how fast.
"""
import os
import shutil
import struct
import subprocess
import time

import pytest
import torch

from audioDataLoader.audio_dataset import AudioDatasetConfig
from model.gru_audio_model import RNN, GRUAudioConfig
from tests.harness.model_file_mutations import canonical, mutants
from tests.harness.run_folders import ROOT
from tests.model_file_cases import CASES, spoil, valid_model_file
from utils.model_file import model_file_bytes, read_model_bytes

COUNT = 3000
DRIVER = ROOT / "runtime" / "fuzz_model_file"


@pytest.fixture(scope="module")
def sanitized_loader():
    if shutil.which("gcc") is None:
        pytest.skip("the sanitizer build needs gcc (scripts/setup.sh installs it)")
    subprocess.run(["make", "-s", "-C", str(ROOT / "runtime"), "sanitize"], check=True, capture_output=True,
                   timeout=300)
    return DRIVER


def valid_files() -> list[bytes]:
    """Small valid files: the case table's (a periodic reference, 2 layers), and one of 1 layer conditioned on each."""
    torch.manual_seed(0)
    plain = AudioDatasetConfig(data_dir="data", parameter_specs={"a": (0.0, 1.0)}, numtokens=16)
    return [canonical(valid_model_file()),
            canonical(model_file_bytes(RNN(GRUAudioConfig(cond_size=1, hidden_size=4, num_layers=1, numtokens=16,
                                                          cond_every_layer=True)).eval(), plain, "in memory"))]


def c_verdicts(driver, files: list[bytes]) -> list[str]:
    stream = b"".join(struct.pack("<Q", len(raw)) + raw for raw in files)
    environment = {**os.environ, "ASAN_OPTIONS": "detect_leaks=1:abort_on_error=0:exitcode=99",
                   "UBSAN_OPTIONS": "print_stacktrace=1:halt_on_error=1:exitcode=99"}
    done = subprocess.run([str(driver)], input=stream, capture_output=True, timeout=600, env=environment)
    report = done.stderr.decode(errors="replace")
    assert done.returncode == 0 and "Sanitizer" not in report and "runtime error" not in report, report[-3000:]
    lines = done.stdout.decode(errors="replace").splitlines()
    assert len(lines) == len(files)
    return lines


def python_verdict(raw: bytes) -> str:
    try:
        read_model_bytes(raw, "mutant.safetensors")
    except ValueError as error:
        message = str(error)
        assert message.startswith("mutant.safetensors: ") and "\n" not in message, message
        return f"refused: {message.removeprefix('mutant.safetensors: ')}"
    return "accepted"


def test_mutated_model_files_are_accepted_or_refused_alike_by_both_loaders(sanitized_loader):
    valid = valid_files()
    files = [raw for seed, base in enumerate(valid) for raw in mutants(base, COUNT // 2, seed)]
    files += [spoil(valid[0], case) for case in CASES]  # the case table's files, under the sanitizers too
    start = time.perf_counter()
    c = c_verdicts(sanitized_loader, files)
    c_seconds = time.perf_counter() - start
    start = time.perf_counter()
    python = [python_verdict(raw) for raw in files]
    python_seconds = time.perf_counter() - start
    accepted = sum(verdict == "accepted" for verdict in c)
    print(f"\n{len(files)} spoiled model files, {accepted} accepted: C under ASan+UBSan {len(files) / c_seconds:.0f} "
          f"files/s, Python {len(files) / python_seconds:.0f} files/s")
    disagree = [(i, c[i], python[i]) for i in range(len(files)) if (c[i] == "accepted") != (python[i] == "accepted")]
    assert not disagree, f"{len(disagree)} files judged differently, the first: {disagree[:3]}"
    assert 0 < accepted < len(files) / 2  # the mutations reach past the header's first checks
