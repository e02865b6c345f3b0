"""Export a trained run as one model file (safetensors) that the C runtime, the Pd external and load_model play.

Example: python export.py --run_directory output/20261124-120000 -o clarinet_trumpet.safetensors
"""
from __future__ import annotations

import argparse
from pathlib import Path

from utils.model_file import model_file_bytes
from utils.run_folder import LAST_CHECKPOINT, load_model, newest_run, write_atomically

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
    parser.add_argument("--run_directory", help="run folder written by train.py (default: newest under output/)")
    parser.add_argument("--checkpoint", help="a checkpoint of that run (default: its last)")
    parser.add_argument("-o", "--output", help=f"the model file to write (default: RUN/{DEFAULT_NAME})")
    args = parser.parse_args(argv)
    try:
        run_directory = Path(args.run_directory) if args.run_directory else newest_run()
        path = export(run_directory, args.output, args.checkpoint)
    except (ValueError, FileNotFoundError) as error:
        raise SystemExit(f"error: {error}") from None
    print(f"wrote {path} ({path.stat().st_size:,} bytes)")


if __name__ == "__main__":
    main()
