"""train.py under torchrun: two CPU processes on the gloo backend, trained on the tiny data set."""
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from tests.harness.run_folders import ROOT, TINY_SPECS
from train import train
from utils.run_folder import LAST_CHECKPOINT, load_checkpoint, load_model

pytestmark = pytest.mark.system

# One batch an epoch, so the first epoch's loss is the untrained model's loss on the ranks' first batches.
SHORT_RUN = ["--num_epochs", "8", "--batches_per_epoch", "1", "--batch_size", "8", "--seqLen", "64",
             "--lr", "0.01", "--savemodel_interval", "4", "--seed", "0"]


def torchrun(log_dir: Path, *train_args: str) -> subprocess.Popen:
    """Start train.py on two processes, each rank's stdout and stderr going to its own file under `log_dir`."""
    command = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node=2", "--standalone",
               "--log-dir", str(log_dir), "--redirects", "3", "train.py", *train_args]
    env = {**os.environ, "OMP_NUM_THREADS": "1", "MPLBACKEND": "Agg"}
    return subprocess.Popen(command, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


def finish(process: subprocess.Popen) -> None:
    output, _ = process.communicate(timeout=120)
    assert process.returncode == 0, output


def data_args(data_dir: Path, output_dir: Path) -> list[str]:
    ranges = [f"{name}={low:g}:{high:g}" for name, (low, high) in TINY_SPECS.items()]
    return ["--datadir", str(data_dir), "--savemodeldir", str(output_dir),
            *[arg for text in ranges for arg in ("--param", text)]]


def rank_output(log_dir: Path, rank: int, stream: str) -> str:
    (path,) = log_dir.glob(f"*/attempt_0/{rank}/{stream}.log")
    return path.read_text()


def only_run_folder(output_dir: Path) -> Path:
    (run_dir,) = output_dir.iterdir()
    return run_dir


@pytest.fixture(scope="module")
def straight_run(tiny_data_dir, tmp_path_factory) -> tuple[Path, Path]:
    """(output folder, log folder) of an eight-epoch run on two processes."""
    output_dir, log_dir = tmp_path_factory.mktemp("output"), tmp_path_factory.mktemp("logs")
    finish(torchrun(log_dir, *data_args(tiny_data_dir, output_dir), *SHORT_RUN))
    return output_dir, log_dir


def test_two_ranks_write_one_run_folder_that_loads_in_one_process(straight_run):
    run_dir = only_run_folder(straight_run[0])
    model, config = load_model(run_dir, "cpu")
    assert not model.training and config["data"].parameter_specs == TINY_SPECS
    assert {p.name for p in (run_dir / "checkpoints").iterdir()} == {
        "checkpoint_4.pt", "checkpoint_8.pt", "last_checkpoint.pt"}


def test_loss_averaged_over_ranks_goes_down(straight_run):
    history = load_checkpoint(only_run_folder(straight_run[0]) / LAST_CHECKPOINT)["loss_history"]
    assert len(history) == 8 and history[-1] < history[0] - 0.3


def test_only_rank_0_prints_and_shows_progress(straight_run):
    log_dir = straight_run[1]
    assert "training" in rank_output(log_dir, 0, "stderr") and "run folder:" in rank_output(log_dir, 0, "stdout")
    assert rank_output(log_dir, 1, "stdout") == "" and rank_output(log_dir, 1, "stderr") == ""


def test_epoch_loss_is_the_mean_over_ranks_that_drew_different_batches(straight_run, tiny_data_dir, tmp_path):
    one_process = train({"datadir": str(tiny_data_dir), "props": TINY_SPECS, "num_epochs": 1, "batches_per_epoch": 1,
                         "batch_size": 8, "seqLen": 64, "seed": 0, "savemodeldir": str(tmp_path)})
    rank_0_alone = load_checkpoint(one_process / LAST_CHECKPOINT)["loss_history"][0]  # rank 0 draws these batches
    together = load_checkpoint(only_run_folder(straight_run[0]) / LAST_CHECKPOINT)["loss_history"][0]
    # Equal if rank 1 had drawn rank 0's batches, or if rank 0 had reported its own loss alone.
    assert abs(together - rank_0_alone) > 1e-3


def test_resume_under_torchrun_continues_the_run_exactly(straight_run, tiny_data_dir, tmp_path):
    args = data_args(tiny_data_dir, tmp_path / "output")
    finish(torchrun(tmp_path / "logs", *args, *SHORT_RUN, "--num_epochs", "4"))
    run_dir = only_run_folder(tmp_path / "output")
    finish(torchrun(tmp_path / "logs_resumed", "--resume", str(run_dir), "--num_epochs", "8"))
    assert only_run_folder(tmp_path / "output") == run_dir
    resumed = load_checkpoint(run_dir / LAST_CHECKPOINT)
    straight = load_checkpoint(only_run_folder(straight_run[0]) / LAST_CHECKPOINT)
    assert resumed["loss_history"] == pytest.approx(straight["loss_history"], rel=1e-5)
    for name, tensor in straight["model"].items():
        assert torch.allclose(resumed["model"][name], tensor, atol=1e-5), name


def test_ctrl_c_stops_every_rank_and_rank_0_saves(tiny_data_dir, tmp_path):
    output_dir, log_dir = tmp_path / "output", tmp_path / "logs"
    process = torchrun(log_dir, *data_args(tiny_data_dir, output_dir), *SHORT_RUN, "--num_epochs", "1000")
    deadline = time.monotonic() + 300  # startup alone can take a minute on a loaded 2-core machine
    while not list(output_dir.glob(f"*/{LAST_CHECKPOINT}")) and time.monotonic() < deadline:
        time.sleep(0.2)
    process.send_signal(signal.SIGINT)  # what Ctrl-C in the terminal sends torchrun, which passes it on
    process.communicate(timeout=60)
    assert "interrupted: saved" in rank_output(log_dir, 0, "stdout") and rank_output(log_dir, 1, "stdout") == ""
    assert "Traceback" not in rank_output(log_dir, 0, "stderr") + rank_output(log_dir, 1, "stderr")
    assert 1 <= load_checkpoint(only_run_folder(output_dir) / LAST_CHECKPOINT)["epoch"] < 1000
