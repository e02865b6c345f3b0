"""Measure control: does a trained run play the pitch, loudness and instrument it is asked for? (evaluation/run.py)

    python evaluate.py --run_directory output/20261124-120000 [--seconds 1] [--top_n 3] [--seed 0]
    python evaluate.py --instrument timbre --pitch note --amplitude level   # a run with other parameter names
    python evaluate.py --model models/clarinet_trumpet.safetensors --data_dir data/nsynth.64.76_sm  # a model file

writes RUN/evaluation/ (for a model file, output/<its name>/evaluation/): summary.csv, summary.md, notes.csv, evaluation_config.json and four plots.
"""
from __future__ import annotations

import argparse
from dataclasses import fields

from evaluation.report import summary_markdown, write_report
from evaluation.run import EvaluationConfig, evaluate_run
from utils.command_line import add_run_directory, exit_on_bad_input, run_directory
from utils.run_folder import outputs_folder


def main(argv: list[str] | None = None) -> None:
    """Command line: evaluate a run folder, write RUN/evaluation/ and print the summary table."""
    defaults = EvaluationConfig()
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_run_directory(parser)
    parser.add_argument("--seconds", type=float, default=defaults.seconds, help="length of each grid note")
    parser.add_argument("--settle_seconds", type=float, default=defaults.settle_seconds,
                        help="start of each note left out of the measures")
    parser.add_argument("--pitch_step", type=float, default=defaults.pitch_step, help="grid pitch step (MIDI)")
    parser.add_argument("--amplitudes", type=float, nargs="+", default=defaults.amplitudes)
    parser.add_argument("--glide_seconds", type=float, default=defaults.glide_seconds)
    parser.add_argument("--top_n", type=int, default=defaults.top_n)
    parser.add_argument("--temperature", type=float, default=defaults.temperature)
    parser.add_argument("--seed", type=int, default=defaults.seed)
    for role in ("instrument", "pitch", "amplitude"):
        parser.add_argument(f"--{role}", default=getattr(defaults, role), metavar="NAME",
                            help=f"the run's parameter that sets the {role} (default: %(default)s)")
    parser.add_argument("--data_dir", help="the data to measure against (default: the folder the model was trained "
                        "on, as its config.json or model file names it)")
    parser.add_argument("--device", default=None, help="cpu or cuda (default: cuda when available)")
    parser.add_argument("--output_dir", help="default: <run_directory>/evaluation")
    args = parser.parse_args(argv)
    settings = {field.name: getattr(args, field.name) for field in fields(EvaluationConfig)}
    with exit_on_bad_input():
        source = run_directory(args)
        evaluation = evaluate_run(source, EvaluationConfig(**settings), args.device, data_dir=args.data_dir)
    folder = write_report(evaluation, args.output_dir or outputs_folder(source) / "evaluation")
    print(summary_markdown(evaluation))
    print(f"wrote {folder}")


if __name__ == "__main__":
    main()
