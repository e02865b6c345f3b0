import subprocess
import sys

import soundfile as sf

from tests.conftest import ROOT


def run(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, *args], cwd=ROOT, capture_output=True, text=True, timeout=300)


def test_train_then_generate_from_the_command_line(tiny_data_dir, tmp_path):
    trained = run("train.py", "--datadir", str(tiny_data_dir), "--param", "instID=1:2", "--param", "a=0:1",
                  "--param", "p=64:76", "--num_epochs", "1", "--batches_per_epoch", "2", "--batch_size", "4",
                  "--seqLen", "32", "--savemodeldir", str(tmp_path))
    assert trained.returncode == 0, trained.stderr
    run_dir = trained.stdout.strip().splitlines()[-1].removeprefix("run folder: ")

    wav = tmp_path / "out.wav"
    generated = run("inference.py", "--run_directory", run_dir, "--param", "instID=2", "--param", "p=64:76",
                    "--param", "a=0.6", "--length_seconds", "0.05", "--seed", "1", "--output_wav_path", str(wav))
    assert generated.returncode == 0, generated.stderr
    assert "x real time" in generated.stdout
    audio, rate = sf.read(wav)
    assert rate == 16000 and len(audio) == 800
    assert wav.with_suffix(".png").stat().st_size > 0


def test_inference_names_a_missing_parameter(tiny_data_dir, tmp_path):
    trained = run("train.py", "--datadir", str(tiny_data_dir), "--num_epochs", "1", "--batches_per_epoch", "1",
                  "--batch_size", "2", "--seqLen", "16", "--savemodeldir", str(tmp_path))
    run_dir = trained.stdout.strip().splitlines()[-1].removeprefix("run folder: ")
    generated = run("inference.py", "--run_directory", run_dir, "--param", "p=70", "--length_seconds", "0.01")
    assert generated.returncode != 0 and "missing ['instID', 'a']" in generated.stderr
