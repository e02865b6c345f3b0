"""Export a trained run as one model file (safetensors) that the C runtime, the Pd external and load_model play.

Example: python export.py --run_directory output/20261124-120000 -o clarinet_trumpet.safetensors
"""
from __future__ import annotations

import argparse
from pathlib import Path

from utils.atomic_write import write_atomically
from utils.command_line import add_run_directory, exit_on_bad_input, run_directory
from utils.model_file import model_file_bytes
from utils.run_folder import LAST_CHECKPOINT, load_model

DEFAULT_NAME = "model.safetensors"


def export(run_directory: str | Path, output: str | Path | None = None,
           checkpoint: str | Path | None = None) -> Path:
    """Write the run's last (or given) checkpoint as a model file; return its path (default RUN/model.safetensors)."""
    run_directory = Path(run_directory)
    checkpoint = Path(checkpoint or run_directory / LAST_CHECKPOINT)
    model, config = load_model(run_directory, "cpu", checkpoint)
    content = model_file_bytes(model, config["data"], source=str(checkpoint.resolve()))
    path = Path(output or run_directory / DEFAULT_NAME)
    write_atomically(path, lambda f: f.write(content))
    return path


def main(argv: list[str] | None = None) -> None:
    """Command line: export a run folder's model."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_run_directory(parser)
    parser.add_argument("--checkpoint", help="a checkpoint of that run (default: its last)")
    parser.add_argument("-o", "--output", help=f"the model file to write (default: RUN/{DEFAULT_NAME})")
    args = parser.parse_args(argv)
    with exit_on_bad_input():
        path = export(run_directory(args), args.output, args.checkpoint)
    print(f"wrote {path} ({path.stat().st_size:,} bytes)")


if __name__ == "__main__":
    main()
