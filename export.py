"""Export a trained run as one model file (safetensors) that the C runtime, the Pd external and load_model play,
or print the card of model files and run folders.

    python export.py --run_directory output/20261124-120000 -o clarinet_trumpet.safetensors
    python export.py --card models/clarinet_trumpet.safetensors      # what a model is, and how well it plays
    python export.py --card models/*.safetensors --markdown           # the cards as models/README.md shows them
"""
from __future__ import annotations

import argparse
from pathlib import Path

from models.card import ModelCard, card_text, cards_markdown, describe
from utils.atomic_write import write_atomically
from utils.command_line import add_run_directory, exit_on_bad_input, run_directory
from utils.model_file import model_file_bytes
from utils.run_folder import LAST_CHECKPOINT, load_model

DEFAULT_NAME = "model.safetensors"


def export(run_directory: str | Path, output: str | Path | None = None, checkpoint: str | Path | None = None,
           card: ModelCard | None = None) -> Path:
    """Write the run's last (or given) checkpoint as a model file, with `card` in its metadata if given; return
    its path (default RUN/model.safetensors)."""
    run_directory = Path(run_directory)
    checkpoint = Path(checkpoint or run_directory / LAST_CHECKPOINT)
    model, config = load_model(run_directory, "cpu", checkpoint)
    content = model_file_bytes(model, config["data"], source=str(checkpoint.resolve()),
                               card=card.metadata() if card else None)
    path = Path(output or run_directory / DEFAULT_NAME)
    write_atomically(path, lambda f: f.write(content))
    return path


def main(argv: list[str] | None = None) -> None:
    """Command line: export a run folder's model, or print cards."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_run_directory(parser)
    parser.add_argument("--checkpoint", help="a checkpoint of that run (default: its last)")
    parser.add_argument("-o", "--output", help=f"the model file to write (default: RUN/{DEFAULT_NAME})")
    parser.add_argument("--card", nargs="+", metavar="MODEL_OR_RUN",
                        help="print the card of these model files or run folders instead of exporting")
    parser.add_argument("--markdown", action="store_true", help="with --card: print the cards as Markdown tables")
    args = parser.parse_args(argv)
    with exit_on_bad_input():
        if args.card:
            summaries = [describe(path) for path in args.card]
            print(cards_markdown(summaries) if args.markdown else "\n\n".join(map(card_text, summaries)))
            return
        path = export(run_directory(args), args.output, args.checkpoint)
    print(f"wrote {path} ({path.stat().st_size:,} bytes)")


if __name__ == "__main__":
    main()
