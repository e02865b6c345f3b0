import os
import subprocess
import sys
from pathlib import Path

import pytest
import soundfile as sf

from tests.harness.run_folders import ROOT, make_run


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
    assert f"{tmp_path / 'nowhere'}: no such run folder or model file" in generated.stderr


def test_malformed_training_options_name_the_option_and_its_form():
    excluded = run("train.py", "--exclude", "p67")
    assert excluded.returncode != 0 and "--exclude 'p67': write it as NAME=V1,V2" in excluded.stderr
    ranged = run("train.py", "--param", "p=64")
    assert ranged.returncode != 0 and "--param 'p=64': write it as NAME=MIN:MAX" in ranged.stderr


def generate(run_dir, tmp_path, *options: str) -> None:
    """Run inference's command line in this process (an uncaught exception fails the test as a traceback would)."""
    import inference

    inference.main(["--run_directory", str(run_dir), "--param", "instID=2", "--param", "p=64:76", "--param", "a=0.6",
                    "--length_seconds", "0.01", "--seed", "1", *options])


@pytest.fixture
def run_dir(tmp_path):
    return make_run(tmp_path / "run")


@pytest.mark.parametrize("options, message", [
    (["--temperature", "0"], "temperature"), (["--temperature", "-1"], "temperature"),
    (["--temperature", "nan"], "temperature"), (["--top_n", "-2"], "top_n"),
    (["--param", "p=nan"], "--param 'p=nan': give finite numbers"),
    (["--length_seconds", "0"], "--length_seconds must be a finite number above 0"),
    (["--length_seconds", "1e9"], r"--length_seconds 1e\+09 would take about [\d.,]+ PiB of memory"),
])
def test_bad_generation_settings_are_one_clear_line(run_dir, tmp_path, options, message):
    with pytest.raises(SystemExit, match=message):
        generate(run_dir, tmp_path, *options)
    assert not (run_dir / "generated.wav").exists()


def test_bad_output_paths_are_refused_before_generating(run_dir, tmp_path):
    a_file = tmp_path / "a_file"
    a_file.write_text("keep me")
    for option, path, message in [("--output_wav_path", a_file / "x.wav", "is a file, not a folder"),
                                  ("--output_wav_path", tmp_path, "is a folder"),
                                  ("--output_plot_path", a_file / "x.png", "is a file, not a folder"),
                                  ("--output_wav_path", tmp_path / "same.png", "would both be written")]:
        with pytest.raises(SystemExit, match=f"{option if 'both' not in message else ''}.*{message}"):
            generate(run_dir, tmp_path, option, str(path))
    assert a_file.read_text() == "keep me"


@pytest.mark.skipif(not Path("/sys").is_dir(), reason="needs /sys, a folder no one may write in")
def test_an_unwritable_output_folder_is_refused_before_generating(run_dir, tmp_path):
    with pytest.raises(SystemExit, match=r"--output_wav_path /sys/x.wav: cannot write in /sys"):
        generate(run_dir, tmp_path, "--output_wav_path", "/sys/x.wav")


def test_a_wav_that_cannot_be_written_is_kept_elsewhere_and_named(run_dir, tmp_path):
    too_long = tmp_path / ("x" * 250 + ".wav")  # the folder takes files, but not a temporary one of this name
    with pytest.raises(SystemExit, match="could not write .* the audio is kept in") as error:
        generate(run_dir, tmp_path, "--output_wav_path", str(too_long), "--output_plot_path", str(tmp_path / "p.png"))
    kept = Path(str(error.value).rsplit("kept in ", 1)[1])
    audio, rate = sf.read(kept)
    kept.unlink()
    assert rate == 16000 and len(audio) == 160


def test_a_plot_that_cannot_be_written_leaves_the_wav_and_says_so(run_dir, tmp_path):
    with pytest.raises(SystemExit, match="wrote .*out.wav, but could not write the plot"):
        generate(run_dir, tmp_path, "--output_wav_path", str(tmp_path / "out.wav"),
                 "--output_plot_path", str(tmp_path / ("x" * 250 + ".png")))
    assert len(sf.read(tmp_path / "out.wav")[0]) == 160


def test_the_first_generation_reports_the_compile_apart_from_the_speed(run_dir, tmp_path):
    cache = {**os.environ, "NUMBA_CACHE_DIR": str(tmp_path / "numba_cache")}  # empty: this run must compile
    options = ["--run_directory", str(run_dir), "--param", "instID=2", "--param", "p=64", "--param", "a=0.6",
               "--length_seconds", "0.1", "--backend", "numba"]
    first = subprocess.run([sys.executable, "inference.py", *options], cwd=ROOT, capture_output=True, text=True,
                           timeout=600, env=cache)
    again = subprocess.run([sys.executable, "inference.py", *options], cwd=ROOT, capture_output=True, text=True,
                           timeout=600, env=cache)
    assert first.returncode == again.returncode == 0, first.stderr + again.stderr
    assert "compiling the sampler (first run only): " in first.stdout and "x real time" in first.stdout
    assert "compiling" not in again.stdout and "x real time" in again.stdout


def test_a_negative_seed_is_one_line_naming_the_option(run_dir, tmp_path):
    with pytest.raises(SystemExit, match="^error: --seed must be from 0 to 4,294,967,295, got -1$"):
        generate(run_dir, tmp_path, "--seed", "-1")
