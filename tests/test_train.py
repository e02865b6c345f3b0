import errno
import json
import os
import shutil
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import torch

from model.gru_audio_model import RNN
from model.reference import PeriodicReference
from tests.harness.run_folders import ROOT, TINY_SPECS
from train import TrainingOutcome, main, train, train_run, train_step
from utils.run_folder import LAST_CHECKPOINT, load_checkpoint, load_model, new_run_dir, read_config
from utils.training_config import PRESETS, configs_from_params


@pytest.fixture
def params(tiny_data_dir, tmp_path) -> dict:
    return {"datadir": str(tiny_data_dir), "props": TINY_SPECS, "num_epochs": 2, "batches_per_epoch": 3,
            "batch_size": 8, "seqLen": 64, "savemodeldir": str(tmp_path / "output"), "savemodel_interval": 1,
            "seed": 0}


TRAIN_BUDGET = ("num_epochs", "batches_per_epoch", "batch_size", "seqLen")


def test_original_notebook_keys_reach_their_configs():
    data, model, config = configs_from_params({"props": {"a": (0, 1)}, "seqLen": 128, "noise": 0,
                                               "hiddenSize": 32, "nLayers": 2, "numtokens": 64, "lr": 0.01})
    assert (data.sequence_length, data.add_noise, data.numtokens) == (128, False, 64)
    assert (model.cond_size, model.hidden_size, model.num_layers, model.numtokens) == (1, 32, 2, 64)
    assert config.lr == 0.01 and config.batch_size == 256  # left out: the original's default


def test_unknown_key_is_named():
    with pytest.raises(ValueError, match="seq_len"):
        configs_from_params({"seq_len": 10})


def test_a_few_batches_lower_the_loss(params):
    run_dir = train({**params, "num_epochs": 4, "batches_per_epoch": 8, "lr": 0.01})
    history = load_checkpoint(run_dir / LAST_CHECKPOINT)["loss_history"]
    assert len(history) == 4 and history[-1] < history[0] - 0.3


def test_run_folder_holds_config_checkpoints_and_loss_history(params):
    run_dir = train(params)
    config = json.loads((run_dir / "config.json").read_text())
    assert config["data"]["parameter_specs"] == {k: list(v) for k, v in TINY_SPECS.items()}
    assert config["model"]["hidden_size"] == 48 and config["train"]["batches_per_epoch"] == 3
    assert {p.name for p in (run_dir / "checkpoints").iterdir()} == {
        "checkpoint_1.pt", "checkpoint_2.pt", "last_checkpoint.pt"}
    assert len(json.loads((run_dir / "loss_history.json").read_text())["epoch_loss"]) == 2
    assert (run_dir / "loss_curve.png").stat().st_size > 0
    assert any((run_dir / "tensorboard").iterdir())
    model, loaded = load_model(run_dir, "cpu")
    assert loaded["data"].parameter_specs == TINY_SPECS and not model.training


def test_resume_continues_the_same_run(params):
    straight = train({**params, "num_epochs": 4})
    run_dir = train(params)
    resumed = train({"resume": str(run_dir), "num_epochs": 4})
    assert resumed == run_dir
    checkpoint = load_checkpoint(run_dir / LAST_CHECKPOINT)
    assert checkpoint["epoch"] == 4
    expected = load_checkpoint(straight / LAST_CHECKPOINT)
    assert checkpoint["loss_history"] == pytest.approx(expected["loss_history"], rel=1e-4)
    for name, tensor in expected["model"].items():
        assert torch.allclose(checkpoint["model"][name], tensor, atol=1e-5), name


def press_ctrl_c() -> None:
    os.kill(os.getpid(), signal.SIGINT)


def test_ctrl_c_saves_before_stopping(params, capsys):
    run_dir = train({**params, "num_epochs": 5}, on_epoch_end=lambda epoch, loss, model: press_ctrl_c())
    checkpoint = load_checkpoint(run_dir / LAST_CHECKPOINT)
    assert checkpoint["epoch"] == 1 and checkpoint["epoch_batch_losses"] == []
    assert "interrupted: saved" in capsys.readouterr().out


RECIPE = {"cond_every_layer": True, "lr_schedule": "cosine", "warmup": 0.2, "lr_final": 0.1, "grad_clip": 0.5,
          "pitch_parameter": "p", "pitch_shift": 0.5, "reference_harmonics": 2, "cold_start": 0.2}


@pytest.mark.parametrize("recipe", [{}, RECIPE], ids=["original recipe", "every option"])
def test_ctrl_c_within_an_epoch_resumes_to_the_uninterrupted_run(params, monkeypatch, recipe):
    params = {**params, **recipe}
    straight = train({**params, "num_epochs": 3})
    steps = []

    def step_then_ctrl_c(*args, **kwargs):
        steps.append(1)
        if len(steps) == 5:  # the second batch of epoch 2: Ctrl-C lands in the middle of a batch
            press_ctrl_c()
        return train_step(*args, **kwargs)

    monkeypatch.setattr("train.train_step", step_then_ctrl_c)
    run_dir = train({**params, "num_epochs": 3})
    stopped = load_checkpoint(run_dir / LAST_CHECKPOINT)
    assert stopped["epoch"] == 1 and len(stopped["epoch_batch_losses"]) == 2
    monkeypatch.undo()
    train({"resume": str(run_dir)})
    resumed, expected = load_checkpoint(run_dir / LAST_CHECKPOINT), load_checkpoint(straight / LAST_CHECKPOINT)
    assert resumed["loss_history"] == pytest.approx(expected["loss_history"], rel=1e-5)
    for name, tensor in expected["model"].items():
        assert torch.allclose(resumed["model"][name], tensor, atol=1e-5), name


def test_every_recipe_option_is_recorded_in_config_json_and_kept_on_resume(params):
    run_dir = train({**params, **RECIPE, "num_epochs": 1})
    saved = json.loads((run_dir / "config.json").read_text())
    sections = {"cond_every_layer": "model", "pitch_parameter": "data", "pitch_shift": "data",
                "reference_harmonics": "data", "cold_start": "data"}
    assert all(saved[sections.get(key, "train")][key] == value for key, value in RECIPE.items())
    train({"resume": str(run_dir), "num_epochs": 2})
    config = read_config(run_dir)
    assert config["model"].cond_every_layer and config["data"].pitch_shift == 0.5
    assert config["data"].reference_harmonics == 2 and config["data"].cold_start == 0.2
    assert config["train"]["lr_schedule"] == "cosine" and config["train"]["grad_clip"] == 0.5
    model, loaded = load_model(run_dir, "cpu")
    assert model.config.cond_every_layer and model.config.cond_size == 3 + 2 * 2  # the parameters and the reference
    assert PeriodicReference.of(loaded["data"]) == PeriodicReference(2, 2, 64.0, 76.0, "midi", 16000)


def test_a_seed_trains_the_same_weights_to_the_bit_whatever_the_thread_count(params):
    """bench_control's runs reproduce on one machine kind: neither threads nor a second run change a seed's run."""
    weights = []
    for count in (1, 2, 1):
        state = load_checkpoint(train({**params, **RECIPE, "threads": count}) / LAST_CHECKPOINT)["model"]
        weights.append(torch.cat([t.flatten() for t in state.values()]))
    assert torch.equal(weights[0], weights[1]) and torch.equal(weights[0], weights[2])


def test_training_runs_on_one_thread_unless_asked_and_gives_the_callers_count_back(params):
    callers = torch.get_num_threads()
    seen = []
    train({**params, "num_epochs": 1}, on_epoch_end=lambda *_: seen.append(torch.get_num_threads()))
    train({**params, "num_epochs": 1, "threads": 2}, on_epoch_end=lambda *_: seen.append(torch.get_num_threads()))
    assert seen == [1, 2] and torch.get_num_threads() == callers
    assert "threads" not in json.loads((sorted(Path(params["savemodeldir"]).iterdir())[-1] / "config.json")
                                       .read_text())["train"]  # a setting of the machine, not of the run


@pytest.mark.parametrize("threads", [0, 1.5, "2"])
def test_a_bad_thread_count_is_refused_by_name(params, threads):
    with pytest.raises(ValueError, match=f"threads must be a whole number of at least 1, got {threads!r}"):
        train({**params, "threads": threads})


def test_original_preset_is_the_original_network_and_trains_as_before(params):
    data, model, config = configs_from_params(PRESETS["original"])
    assert RNN(model).num_parameters() == 69_232 and data.pitch_shift == 0
    assert data.reference_harmonics == 0 and data.cold_start == 0
    assert (config.lr_schedule, config.grad_clip, config.num_epochs, config.batch_size) == ("constant", 0, 40, 256)
    recipe = {k: v for k, v in PRESETS["original"].items() if k not in TRAIN_BUDGET}
    run_dir = train({**params, **recipe})
    # The loss of this tiny run as the code before the recipe options (commit be12003) trained it.
    assert load_checkpoint(run_dir / LAST_CHECKPOINT)["loss_history"] == pytest.approx([5.503011, 5.190388], abs=1e-4)


def test_resume_takes_the_same_settings_and_refuses_changed_data_model_or_unknown_keys(params):
    run_dir = train({**params, "num_epochs": 1})
    train({**params, "resume": str(run_dir), "num_epochs": 2})  # as a notebook passes them: all, unchanged
    assert load_checkpoint(run_dir / LAST_CHECKPOINT)["epoch"] == 2
    with pytest.raises(ValueError, match=r"trained with other \['hiddenSize', 'seqLen'\]"):
        train({**params, "resume": str(run_dir), "seqLen": 128, "hiddenSize": 32})
    with pytest.raises(ValueError, match="num_epoch"):
        train({"resume": str(run_dir), "num_epoch": 2})


def test_run_folder_finds_its_data_from_any_folder_and_resume_follows_moved_data(params, tmp_path, monkeypatch):
    monkeypatch.chdir(params["datadir"])
    run_dir = train({**params, "datadir": ".", "num_epochs": 1})
    monkeypatch.chdir(tmp_path)
    assert read_config(run_dir)["data"].data_dir == str(Path(params["datadir"]).resolve())
    moved = shutil.copytree(params["datadir"], tmp_path / "moved")
    train({"resume": str(run_dir), "num_epochs": 2, "datadir": str(moved)})
    assert read_config(run_dir)["data"].data_dir == str(moved.resolve())


def test_corrupted_checkpoint_gives_a_clear_error(params):
    run_dir = train({**params, "num_epochs": 1})
    path = run_dir / LAST_CHECKPOINT
    path.write_bytes(path.read_bytes()[:1000])
    with pytest.raises(ValueError, match="truncated or corrupted"):
        load_model(run_dir, "cpu")


class Payload:
    def __reduce__(self):
        return (print, ("this must never run",))


def test_checkpoint_carrying_a_pickled_object_is_refused_without_advice_to_load_it_unsafely(tmp_path, capsys):
    path = tmp_path / "evil.pt"
    torch.save({"format_version": 1, "model": {}, "extra": Payload()}, path)
    with pytest.raises(ValueError, match=r"\(print\), so it was not loaded: loading it could run code") as error:
        load_checkpoint(path)
    assert "weights_only" not in str(error.value) and "safe_globals" not in str(error.value)
    assert "this must never run" not in capsys.readouterr().out


def test_two_runs_started_in_the_same_second_get_their_own_folders(tmp_path, monkeypatch):
    monkeypatch.setattr("time.strftime", lambda form: "20261125-120000")
    first, second = new_run_dir(str(tmp_path)), new_run_dir(str(tmp_path))
    assert first.is_dir() and second.is_dir() and first != second
    assert second.name == "20261125-120000-1"


def test_a_savemodeldir_that_is_a_file_is_refused_by_name(tmp_path):
    (tmp_path / "taken").write_text("")
    with pytest.raises(ValueError, match="savemodeldir .*taken"):
        new_run_dir(str(tmp_path / "taken"))


@pytest.mark.parametrize("option", ["--batch_size", "--batches_per_epoch", "--savemodel_interval", "--seqLen",
                                    "--num_epochs"])
def test_zero_counts_are_refused_before_any_run_folder_is_made(tiny_data_dir, tmp_path, option):
    with pytest.raises(SystemExit, match=f"error: .* must be at least 1, got 0 .*{option}"):
        main(["--datadir", str(tiny_data_dir), "--savemodeldir", str(tmp_path / "output"), option, "0"])
    assert not (tmp_path / "output").exists()


def interrupt_after(target: str, monkeypatch) -> None:
    """Make Ctrl-C land just after `target` (a callable, by its import path) returns."""
    module, name = target.rsplit(".", 1)
    original = getattr(__import__(module, fromlist=[name]), name)

    def then_ctrl_c(*args, **kwargs):
        original(*args, **kwargs)
        raise KeyboardInterrupt

    monkeypatch.setattr(target, then_ctrl_c)


@pytest.mark.parametrize("target", ["train.write_config", "torch.utils.tensorboard.SummaryWriter"])
def test_ctrl_c_while_starting_leaves_no_half_run_and_no_traceback(params, monkeypatch, capsys, target):
    interrupt_after(target, monkeypatch)
    argv = [f"--{key}={value}" for key, value in params.items() if key not in ("props", "seed")]
    assert main(argv) == 130
    assert "interrupted: stopped at once" in capsys.readouterr().err
    assert list(Path(params["savemodeldir"]).iterdir()) == []


def test_a_run_that_fails_before_its_first_checkpoint_leaves_no_folder(params, tmp_path):
    with pytest.raises(FileNotFoundError):
        train({**params, "datadir": str(tmp_path / "nowhere")})
    assert list(Path(params["savemodeldir"]).iterdir()) == []


def test_an_interrupted_run_exits_130_after_saving(params, monkeypatch, capsys):
    monkeypatch.setattr("train.train_step", lambda *args, **kwargs: press_ctrl_c() or train_step(*args, **kwargs))
    argv = [f"--{key}={value}" for key, value in params.items() if key not in ("props", "seed")]
    assert main(argv) == 130
    run_dir = Path(capsys.readouterr().out.strip().splitlines()[-1].removeprefix("run folder: "))
    assert load_checkpoint(run_dir / LAST_CHECKPOINT)["epoch_batch_losses"] != []
    monkeypatch.undo()
    assert train_run({"resume": str(run_dir)}) == TrainingOutcome(run_dir, interrupted=False)


def test_resume_removes_the_temporaries_of_a_killed_checkpoint_write(params):
    run_dir = train({**params, "num_epochs": 1})
    stale = run_dir / "checkpoints" / ".last_checkpoint.pt.0badf00d.tmp"
    stale.write_bytes(b"half a checkpoint")
    train({"resume": str(run_dir), "num_epochs": 2})
    assert not stale.exists() and load_checkpoint(run_dir / LAST_CHECKPOINT)["epoch"] == 2


def test_resume_refuses_a_config_missing_a_training_setting(params):
    run_dir = train({**params, "num_epochs": 1})
    config = json.loads((run_dir / "config.json").read_text())
    del config["train"]["lr"]
    (run_dir / "config.json").write_text(json.dumps(config))
    with pytest.raises(ValueError, match=r"section 'train' lacks \['lr'\]"):
        train({"resume": str(run_dir), "num_epochs": 2})


def test_a_full_disk_during_a_checkpoint_is_one_line_and_keeps_the_last_one(params, monkeypatch, capsys):
    saves, save = [], torch.save

    def fills_the_disk_after_epoch_1(obj, f):
        saves.append(obj.get("epoch"))
        if obj.get("epoch") == 2:  # as torch.save reports a failed write: a RuntimeError during the OSError
            try:
                raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
            except OSError:
                raise RuntimeError("[enforce fail at inline_container.cc:672] . unexpected pos 704") from None
        save(obj, f)

    monkeypatch.setattr(torch, "save", fills_the_disk_after_epoch_1)
    argv = [f"--{key}={value}" for key, value in params.items() if key not in ("props", "seed")]
    with pytest.raises(SystemExit) as error:
        main(argv)
    [run_dir] = Path(params["savemodeldir"]).iterdir()
    assert str(error.value).startswith(f"error: disk full: no space left in {run_dir / 'checkpoints'}")
    assert "\n" not in str(error.value) and saves[-1] == 2
    monkeypatch.undo()
    assert load_checkpoint(run_dir / LAST_CHECKPOINT)["epoch"] == 1


@pytest.mark.parametrize("options, message", [
    (["--param", "p=nan:76"], "--param 'p=nan:76': give finite numbers"),
    (["--param", "p=64:inf"], "--param 'p=64:inf': give finite numbers"),
    (["--param", "p=64:1e39"], r"parameter 'p' \(--param p=MIN:MAX\) max: '?1e\+?39'? is beyond float32's range"),
    (["--param", "p=-3e38:3e38"], r"parameter 'p' .*: the width of the range: .* is beyond float32's range"),
    (["--exclude", "p=1e39"], r"exclude p \(--exclude p=...\): .* is beyond float32's range"),
    (["--noise", "nan"], r"noise_weight \(noise, --noise on the command line\): nan is not finite"),
    (["--lr_final", "nan"], r"lr_final \(--lr_final on the command line\): nan is not finite"),
    (["--grad_clip", "nan"], r"grad_clip \(--grad_clip on the command line\): nan is not finite"),
    (["--warmup", "-1"], r"warmup \(--warmup on the command line\) must be from 0 to 1, got -1.0"),
    (["--seed", "-1"], r"seed \(--seed on the command line\) must be from 0 to 4,294,967,295, got -1"),
    (["--numtokens", "70000"], "numtokens .--numtokens. must be from 2 to 65,536 .the C runtime's limit., got 70000"),
])
def test_bad_settings_are_one_line_naming_the_option_before_any_run_folder(tiny_data_dir, tmp_path, options,
                                                                             message):
    with pytest.raises(SystemExit, match=f"^error: .*{message}") as error:
        main(["--datadir", str(tiny_data_dir), "--savemodeldir", str(tmp_path / "output"), *options])
    assert "\n" not in str(error.value) and not (tmp_path / "output").exists()


@pytest.mark.parametrize("section, key, value", [("train", "warmup", -1), ("train", "seed", -1),
                                                 ("train", "grad_clip", 1e39), ("data", "noise_weight", 1e39)])
def test_resume_refuses_what_the_command_line_refuses(params, section, key, value):
    run_dir = train({**params, "num_epochs": 1})
    config = json.loads((run_dir / "config.json").read_text())
    config[section][key] = value
    (run_dir / "config.json").write_text(json.dumps(config))
    with pytest.raises(ValueError, match=f"{run_dir / 'config.json'}: {key}"):
        train({"resume": str(run_dir), "num_epochs": 2})


@pytest.mark.parametrize("device, message", [("cuda", "--device cuda: CUDA is not available here"),
                                             ("tpu", "--device 'tpu' is not a device")])
def test_a_device_this_machine_lacks_is_one_line_before_any_run_folder(tiny_data_dir, tmp_path, monkeypatch, device,
                                                                        message):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)  # as on a machine without CUDA
    with pytest.raises(SystemExit, match=f"^error: {message}"):
        main(["--datadir", str(tiny_data_dir), "--savemodeldir", str(tmp_path / "output"), "--device", device])
    assert list((tmp_path / "output").glob("*")) == []


def test_sigterm_saves_before_stopping_as_ctrl_c_does(params):
    # In a child process: without the handler SIGTERM would end this test process itself.
    argv = [f"--{key}={value}" for key, value in params.items() if key not in ("props", "seed")]
    script = textwrap.dedent(f"""
        import os, signal, sys
        import train
        step, batches = train.train_step, []
        def terminated_at_batch_2(*args, **kwargs):
            batches.append(1)
            if len(batches) == 2:
                os.kill(os.getpid(), signal.SIGTERM)
            return step(*args, **kwargs)
        train.train_step = terminated_at_batch_2
        sys.exit(train.main({argv!r}))
    """)
    child = subprocess.run([sys.executable, "-c", script], cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert child.returncode == 130, child.stderr
    assert "SIGTERM: stopping after this batch and saving" in child.stderr
    [run_dir] = Path(params["savemodeldir"]).iterdir()
    assert load_checkpoint(run_dir / LAST_CHECKPOINT)["epoch_batch_losses"] != []
