import errno
import os
import stat

import pytest
import torch

from export import main as export_command_line
from inference import main as inference_command_line
from tests.harness.run_folders import make_run
from utils.atomic_write import DiskFull, write_atomically
from utils.run_folder import save_checkpoint


def write_new(path):
    write_atomically(path, lambda f: f.write(b"new"))


def test_a_symlink_stays_a_link_and_its_target_is_replaced(tmp_path):
    (tmp_path / "takes").mkdir()
    target = tmp_path / "takes" / "take.wav"
    target.write_bytes(b"old")
    link = tmp_path / "latest.wav"
    link.symlink_to(target)
    write_new(link)
    assert link.is_symlink() and os.readlink(link) == str(target) and target.read_bytes() == b"new"
    assert sorted(p.name for p in (tmp_path / "takes").iterdir()) == ["take.wav"]  # no temporary left


def test_a_dangling_symlink_creates_its_target(tmp_path):
    link = tmp_path / "model.safetensors"
    link.symlink_to(tmp_path / "models" / "real.safetensors")
    write_new(link)
    assert link.is_symlink() and (tmp_path / "models" / "real.safetensors").read_bytes() == b"new"


@pytest.mark.parametrize("make, message", [
    (lambda path: os.mkfifo(path), "is not a regular file"),
    (lambda path: (os.mkfifo(path.with_name("pipe")), path.symlink_to(path.with_name("pipe"))),
     r"\(a link to .*pipe\) is not a regular file"),
    (lambda path: path.mkdir(), "is a folder; give a file path in it"),
    (lambda path: (path.with_name("a").symlink_to(path.with_name("b")), path.with_name("b").symlink_to("a"),
                   path.symlink_to(path.with_name("a"))), "Too many levels of symbolic links"),
])
def test_anything_but_a_regular_file_is_refused_by_name_and_left_as_it_was(tmp_path, make, message):
    path = tmp_path / "out.wav"
    make(path)
    before = sorted((p.name, p.lstat().st_mode) for p in tmp_path.iterdir())
    with pytest.raises(ValueError, match=message) as error:
        write_new(path)
    assert str(path) in str(error.value)
    assert sorted((p.name, p.lstat().st_mode) for p in tmp_path.iterdir()) == before


@pytest.mark.skipif(os.geteuid() != 0, reason="making a device node needs root")
def test_a_device_is_never_replaced(tmp_path):
    device = tmp_path / "null"
    os.mknod(device, stat.S_IFCHR | 0o666, os.makedev(1, 3))  # a second /dev/null, so the real one is never at risk
    with pytest.raises(ValueError, match="is not a regular file"):
        write_new(device)
    assert stat.S_ISCHR(device.lstat().st_mode)


def test_a_full_disk_is_one_line_naming_the_folder_and_keeps_the_file(tmp_path):
    path = tmp_path / "checkpoints" / "last_checkpoint.pt"
    save_checkpoint(path, {"epoch": 1})

    def fill_the_disk(f):
        try:  # torch.save reports the failed write of its zip writer as a RuntimeError raised during the OSError
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        except OSError:
            raise RuntimeError("[enforce fail at inline_container.cc:672] . unexpected pos 704 vs 598") from None

    before = path.read_bytes()
    with pytest.raises(DiskFull) as error:
        write_atomically(path, fill_the_disk)
    assert str(error.value).startswith(f"disk full: no space left in {path.parent} to write last_checkpoint.pt")
    assert "\n" not in str(error.value)
    assert path.read_bytes() == before and sorted(path.parent.iterdir()) == [path]
    assert torch.load(path, weights_only=True)["epoch"] == 1


def test_export_to_a_folder_is_one_line_and_writes_nothing(tmp_path):
    run = make_run(tmp_path / "run")
    folder = tmp_path / "models"
    folder.mkdir()
    with pytest.raises(SystemExit, match=f"error: {folder} is a folder; give a file path in it"):
        export_command_line(["--run_directory", str(run), "-o", str(folder)])
    assert list(folder.iterdir()) == [] and sorted(p.name for p in tmp_path.iterdir()) == ["models", "run"]


def test_generating_to_a_fifo_is_refused_before_generating(tmp_path):
    run = make_run(tmp_path / "run")
    fifo = tmp_path / "out.wav"
    os.mkfifo(fifo)
    with pytest.raises(SystemExit, match=f"--output_wav_path {fifo} is not a regular file"):
        inference_command_line(["--run_directory", str(run), "--param", "instID=1", "--param", "a=0.5",
                                "--param", "p=64", "--length_seconds", "0.01", "--output_wav_path", str(fifo),
                                "--output_plot_path", str(tmp_path / "plot.png")])
    assert stat.S_ISFIFO(fifo.lstat().st_mode) and not (tmp_path / "plot.png").exists()
