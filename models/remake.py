"""Retrain and re-export every shipped model (models/*.safetensors) with its card, reproducibly from the seed.

    python -m models.remake                       # every model: render its data, train, evaluate, export
    python -m models.remake clarinet_trumpet      # one of them

Each model is one cell of bench/bench_control.py (data set, recipe, budget, seed), so the benchmark's kept runs
and results under output/bench_control/ are reused where they exist; what is missing is trained (one thread, about
20 minutes a model on the 2-core machine) and evaluated. The card records the recipe, the schedule, the training
time and the evaluation's figures. Then update models/README.md from `python export.py --card models/*.safetensors
--markdown`.
"""
from __future__ import annotations

import argparse
import json
from dataclasses import dataclass
from pathlib import Path

import torch

from bench.bench_control import BUDGETS, DATASETS, VARIANTS, run_cell
from evaluation.run import EvaluationConfig
from export import export
from models.card import FIGURES, ModelCard
from utils.run_folder import CONFIG_NAME

MODELS = Path(__file__).resolve().parent
RECIPE = "reference x3+cold+shift"  # the best the benchmark has measured (docs/results/control.md)
BUDGET = "long"
SEED = 0
SAMPLING = (3, 1.0)  # top_n, temperature: what the card's figures were measured with
OUTPUT = Path("output/bench_control")
LICENCE = "FluidR3_GM SoundFont by Frank Wen, MIT licence (Debian package fluid-soundfont-gm)"


@dataclass(frozen=True)
class Shipped:
    """One shipped model: the benchmark's data set it learns, and what its card says of it."""

    dataset: str
    description: str
    instruments: str  # what instID 1 and 2 are


SHIPPED = {
    "clarinet_trumpet": Shipped("default", "clarinet and trumpet, the original data set's instruments, MIDI 64-76",
                                "1 clarinet (GM 72), 2 trumpet (GM 57)"),
    "tuba_cello": Shipped("low brass+strings", "tuba and cello, two octaves below the default, MIDI 36-48; the "
                          "cello below MIDI 44 mostly fails to sound (its silent notes)",
                          "1 tuba (GM 59), 2 cello (GM 43)"),
}


def card_for(name: str, row: dict) -> ModelCard:
    """Return the card of shipped model `name`, from its benchmark cell's result row."""
    shipped, dataset = SHIPPED[name], DATASETS[SHIPPED[name].dataset]
    low, high = dataset.pitches
    budget = BUDGETS[BUDGET]
    config = json.loads((Path(row["run"]) / CONFIG_NAME).read_text())
    recipe = {key: value for key, value in VARIANTS[RECIPE].items() if key in ("pitch_parameter", "pitch_shift",
                                                                              "reference_harmonics", "cold_start")}
    return ModelCard(
        name=name, description=shipped.description,
        units={"instID": f"instrument, {shipped.instruments}", "a": "peak amplitude",
               "p": f"MIDI note, fractions between ({dataset.held_out[0]} and {dataset.held_out[1]} held out of "
                    "training)"},
        data=f"FluidR3_GM rendered by render_dataset: {shipped.instruments}, MIDI {low}-{high}, 10 amplitudes "
             "0.1-1.0, the middle 2.5 s of each held note, 16 kHz",
        data_licence=LICENCE,
        rebuild_data=(f"python -m audioDataLoader.render_dataset --output_dir {OUTPUT}/data/"
                      f"{shipped.dataset.replace(' ', '_')} --programs {' '.join(map(str, dataset.programs))} "
                      f"--pitch_range {low} {high}"),
        recipe="original network (4 x 48 GRU) and recipe with " + ", ".join(f"{k} {v}" for k, v in recipe.items()),
        schedule=(f"{budget['num_epochs']} epochs x {budget['batches_per_epoch']} batches x {budget['batch_size']} "
                  f"windows of {config['data']['sequence_length']} samples, lr {config['train']['lr']} "
                  f"(bench_control's {BUDGET} budget)"),
        seed=SEED, training_minutes=row["training (min)"], made_on=row["made on"], sampling=row["sampling"],
        measured={figure: row[figure] for figure in FIGURES},
        remake=f"bash scripts/remake_models.sh {name}")


def remake(name: str) -> Path:
    """Train (or reuse the benchmark's run), evaluate and export shipped model `name`; return its file."""
    row, = run_cell(SHIPPED[name].dataset, "middle", RECIPE, BUDGET, SEED, [SAMPLING], OUTPUT, EvaluationConfig())
    return export(row["run"], MODELS / f"{name}.safetensors", card=card_for(name, row))


def main(argv: list[str] | None = None) -> None:
    """Command line: remake the named shipped models (default: all)."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("names", nargs="*", metavar="NAME", help=f"of {', '.join(SHIPPED)} (default: all)")
    args = parser.parse_args(argv)
    unknown = set(args.names) - set(SHIPPED)
    if unknown:
        parser.error(f"no shipped model named {', '.join(sorted(unknown))}; the shipped models are {', '.join(SHIPPED)}")
    torch.set_num_threads(1)  # a seed trains the same weights with any thread count; one degrades least when busy
    for name in args.names or SHIPPED:
        print(f"wrote {remake(name)}")


if __name__ == "__main__":
    main()
