"""Writing a file so that readers see the old file or the whole new one, never a half-written one.

The write goes through the path, never around it: a symlink's target is the file replaced (the link stays a link),
and a path that is a folder, a FIFO or a device (/dev/null, /dev/full) is refused instead of replaced.
"""
from __future__ import annotations

import errno
import os
import secrets
import stat
from pathlib import Path
from typing import BinaryIO, Callable


class DiskFull(OSError):
    """No space left where a file was being written; the file there is as it was."""

    def __str__(self) -> str:
        return self.strerror


def write_atomically(path: str | Path, write: Callable[[BinaryIO], object]) -> None:
    """Call write(file_object) on a temporary file beside the file `path` names, then rename it over that file.

    Raises ValueError for a path that is not a regular file, and DiskFull when the disk fills part way.
    """
    target = writable_target(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = _new_temporary(target)
    try:
        with os.fdopen(fd, "wb") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, target)
    except BaseException as error:
        os.unlink(tmp)
        if _out_of_space(error):
            raise DiskFull(errno.ENOSPC, f"disk full: no space left in {target.parent} to write {target.name}; "
                                         "what was there is kept. Free some space and try again") from None
        raise


def writable_target(path: str | Path) -> Path:
    """Return the file that writing `path` replaces: `path`, or where its symlinks lead.

    Raises ValueError naming the path when that is anything but a regular file or a new name.
    """
    path = Path(path)
    target = Path(os.path.realpath(path))
    try:
        mode = os.stat(target).st_mode
    except FileNotFoundError:
        return target
    except OSError as error:  # a link loop, a folder in the way that is a file
        raise ValueError(f"cannot write {path} ({error.strerror}); give the path of a file") from None
    if stat.S_ISDIR(mode):
        raise ValueError(f"{path} is a folder; give a file path in it, such as {path / 'name'}")
    if not stat.S_ISREG(mode):
        shown = path if target == path.absolute() else f"{path} (a link to {target})"
        raise ValueError(f"{shown} is not a regular file (a FIFO, a socket or a device), so it is not replaced; "
                         "give the path of a file")
    return target


def _out_of_space(error: BaseException) -> bool:
    """Return whether the error, or one it was raised from (torch.save wraps it in RuntimeError), is ENOSPC."""
    while error is not None:
        if isinstance(error, OSError) and error.errno in (errno.ENOSPC, errno.EDQUOT):
            return True
        error = error.__cause__ or error.__context__
    return False


def _new_temporary(path: Path) -> tuple[int, Path]:
    """Return (descriptor, path) of a new file beside `path`, with the mode an ordinary open() would give it.

    tempfile.mkstemp makes 0600 files, which a rename then carries into a shared run folder; the kernel applies
    the umask to 0666 here, as it does for open().
    """
    while True:
        tmp = path.with_name(f".{path.name}.{secrets.token_hex(4)}.tmp")
        try:
            return os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666), tmp
        except FileExistsError:
            continue
