"""What the command lines share: NAME=NUMBERS options, and the run folder they open."""
from __future__ import annotations

import argparse
import math
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from utils.atomic_write import DiskFull
from utils.run_folder import newest_run, newest_run_or_shipped_model


def named_numbers(text: str, option: str, form: str, separator: str = ":",
                  counts: tuple[int, ...] | None = None) -> tuple[str, list[float]]:
    """Return (NAME, numbers) from an option's NAME=<finite numbers joined by separator>, or exit naming the option.

    `counts` lists how many numbers are allowed (None: any); `form` shows the user how to write it.
    """
    name, _, values = text.partition("=")
    try:
        numbers = [float(v) for v in values.split(separator)] if name and values else []
    except ValueError:
        numbers = []
    if not numbers or (counts is not None and len(numbers) not in counts):
        raise SystemExit(f"error: {option} {text!r}: write it as {form}")
    if not all(map(math.isfinite, numbers)):
        raise SystemExit(f"error: {option} {text!r}: give finite numbers (not nan or inf)")
    return name, numbers


def add_run_directory(parser: argparse.ArgumentParser, shipped_fallback: bool = False) -> None:
    """Add --run_directory (or --model), the run folder or model file a command opens."""
    fallback = ", else the shipped default model" if shipped_fallback else ""
    parser.add_argument("--run_directory", "--model", dest="run_directory", metavar="RUN_OR_MODEL_FILE",
                        help="a run folder written by train.py, or a model file (.safetensors) written by export.py "
                             f"or shipped in models/ (default: the newest run under output/{fallback})")


def run_directory(args: argparse.Namespace, shipped_fallback: bool = False) -> Path:
    """Return the run folder or model file given with --run_directory, or the newest run under output/; where there
    is none, the shipped default model if `shipped_fallback`, else FileNotFoundError."""
    if args.run_directory:
        return Path(args.run_directory)
    return newest_run_or_shipped_model() if shipped_fallback else newest_run()


@contextmanager
def exit_on_bad_input() -> Iterator[None]:
    """Turn bad input (ValueError, a missing file or package) and a full disk into one line, and exit 1."""
    try:
        yield
    except (ValueError, FileNotFoundError, ImportError, DiskFull) as error:
        raise SystemExit(f"error: {error}") from None
