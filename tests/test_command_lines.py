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
    assert "Traceback" not in generated.stderr


def test_inference_names_a_run_folder_that_is_not_there(tmp_path):
    generated = run("inference.py", "--run_directory", str(tmp_path / "nowhere"), "--param", "p=70")
    assert generated.returncode != 0 and "Traceback" not in generated.stderr
    assert f"{tmp_path / 'nowhere'} is not a run folder" in generated.stderr


def test_malformed_training_options_name_the_option_and_its_form():
    excluded = run("train.py", "--exclude", "p67")
    assert excluded.returncode != 0 and "--exclude 'p67': write it as NAME=V1,V2" in excluded.stderr
    ranged = run("train.py", "--param", "p=64")
    assert ranged.returncode != 0 and "--param 'p=64': write it as NAME=MIN:MAX" in ranged.stderr
