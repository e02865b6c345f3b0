"""Control accuracy across data sets: does a recipe make pitch, loudness and instrument hold on any instruments?

Renders instrument pairs of other families and registers from the FluidR3 GM SoundFont, holds two pitches of each
out of training, trains each pair with a fixed budget for each recipe variant and seed, evaluates it with
evaluate.py, and prints one table: data set x variant x budget, the median over seeds (with the min..max spread)
of the trained / between / held-out pitch error (median and p90 cents), silent notes on the grid, instrument
accuracy, level error and training time. Every result is kept as JSON under --output, so an interrupted or extended benchmark only runs what
is missing.

Run from the repository root:
    .venv/bin/python -m bench.bench_control                                  # every data set, variant, budget
    .venv/bin/python -m bench.bench_control --datasets default "double reeds" --variants original pitch-shift --seeds 0
    .venv/bin/python -m bench.bench_control --datasets default --variants original --budgets full --seeds 0 --threads 2
    .venv/bin/python -m bench.bench_control --kept                           # the table of what has been run
    .venv/bin/python -m bench.bench_control --sampling 3:1.0 1:1.0 8:0.9     # sampling settings, same runs
"""
from __future__ import annotations

import argparse
import json
import platform
import statistics
import time
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import torch

from audioDataLoader.audio_dataset import AudioDatasetConfig
from audioDataLoader.render_dataset import RenderConfig, build_dataset
from evaluation.measures import GROUPS
from evaluation.run import EvaluationConfig, evaluate_run, measure_data, summary_rows
from train import train
from utils.run_folder import write_atomically
from utils.training_config import PRESETS


@dataclass(frozen=True)
class DataSet:
    """An instrument pair: GM programs (instID 1, 2), the MIDI pitches rendered, and the two held out."""

    programs: tuple[int, int]
    pitches: tuple[int, int]  # lowest and highest, every semitone between
    held_out: tuple[int, int]

    def parameter_specs(self) -> dict[str, tuple[float, float]]:
        """Return the parameters its file names carry, and their ranges."""
        return {"instID": (1, 2), "a": (0, 1), "p": self.pitches}

    def render_config(self, folder: Path, amplitudes: tuple[float, ...], shape: str) -> RenderConfig:
        """Return what render_dataset builds for this pair in `folder`, as middle cuts or whole notes."""
        held = {"middle": 2.5, "whole": 3.0}[shape]  # NSynth's whole notes: 3 s held, then the release
        return RenderConfig(output_dir=str(folder), programs=self.programs, amplitudes=amplitudes,
                            pitches=tuple(range(self.pitches[0], self.pitches[1] + 1)), note_seconds=held,
                            whole_notes=shape == "whole")


DATASETS = {
    "default": DataSet((72, 57), (64, 76), (67, 71)),  # clarinet, trumpet: what the defaults were tuned on
    "low brass+strings": DataSet((59, 43), (36, 48), (39, 43)),  # tuba, cello, two octaves below
    "double reeds": DataSet((69, 71), (58, 70), (61, 65)),  # oboe, bassoon
    # flute and reed organ, an octave above. Not the church organ (20), nor drawbar and rock organs (17, 19): their
    # 16-foot stops sound an octave under the note, so YIN reads the data itself an octave low.
    "flute+reed organ": DataSet((74, 21), (72, 84), (75, 79)),
}

# Each variant is a set of training keys on top of the budget; "original" is the original network and recipe.
_BUDGET_KEYS = ("num_epochs", "batches_per_epoch", "batch_size")  # a budget; the rest of a preset is the recipe
_ORIGINAL = {k: v for k, v in PRESETS["original"].items() if k not in _BUDGET_KEYS}
_SCHEDULE = {"lr_schedule": "cosine", "warmup": 0.05, "lr_final": 0.05, "grad_clip": 1.0}
_SHIFT = {"pitch_parameter": "p", "pitch_shift": 0.5}
VARIANTS = {
    "original": _ORIGINAL,
    "schedule+clip": {**_ORIGINAL, **_SCHEDULE},
    "every-layer": {**_ORIGINAL, "cond_every_layer": True},
    "pitch-shift": {**_ORIGINAL, **_SHIFT},
    "seq512 batch32": {**_ORIGINAL, "seqLen": 512, "batch_size": 32},  # the same samples a batch as 256 x 64
    "shift+seq512": {**_ORIGINAL, **_SHIFT, "seqLen": 512, "batch_size": 32},
    "schedule+shift+every-layer": {**_ORIGINAL, **_SCHEDULE, **_SHIFT, "cond_every_layer": True},
    # Train what you play: a tenth of the windows start cold, as generation does; release tails left out.
    "cold start": {**_ORIGINAL, "cold_start": 0.1},
    # The periodic reference (model/reference.py): the oscillator's phase, and its harmonics.
    "reference": {**_ORIGINAL, "pitch_parameter": "p", "reference_harmonics": 1},
    "reference x3": {**_ORIGINAL, "pitch_parameter": "p", "reference_harmonics": 3},
    "reference x3+cold": {**_ORIGINAL, "pitch_parameter": "p", "reference_harmonics": 3, "cold_start": 0.1},
    "reference x3+cold+shift": {**_ORIGINAL, **_SHIFT, "reference_harmonics": 3, "cold_start": 0.1},
    "reference x3+cold+shift+every-layer": {**_ORIGINAL, **_SHIFT, "reference_harmonics": 3, "cold_start": 0.1,
                                            "cond_every_layer": True},
}
# How each pair is rendered: the middle of held notes (the original data set), or whole notes as NSynth ships them.
SHAPES = ("middle", "whole")

_QUICK = {k: PRESETS["quick"][k] for k in _BUDGET_KEYS}
BUDGETS = {
    "quick": _QUICK,
    "long": {**_QUICK, "num_epochs": 3 * _QUICK["num_epochs"]},  # three times the quick preset
    # The original's schedule, what train.py runs when given no preset: 40 x 100 x 256, about 11 times the quick one.
    "full": {k: PRESETS["original"][k] for k in _BUDGET_KEYS},
    "tiny": {"num_epochs": 1, "batches_per_epoch": 2, "batch_size": 4},  # for the test: end to end, no learning
}
DATA_FILES = "data files"  # the table's floor: the data itself, measured as the runs are
AMPLITUDES = (0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 1.0)


def training_params(dataset: DataSet, folder: Path, variant: str, budget: str, seed: int, runs: Path) -> dict:
    """Return train()'s keys for one cell of the benchmark."""
    params = {**VARIANTS[variant], **BUDGETS[budget], "datadir": str(folder), "seed": seed,
              "props": dataset.parameter_specs(), "exclude": {"p": list(dataset.held_out)},
              "savemodeldir": str(runs), "savemodel_interval": 10 ** 6}
    if "seqLen" in VARIANTS[variant] and "batch_size" in VARIANTS[variant]:  # at the budget's compute
        params["batch_size"] = BUDGETS[budget]["batch_size"] * 256 // VARIANTS[variant]["seqLen"]
    return params


def result_row(summary: list[dict], sampling: str, source: str = "generated") -> dict:
    """Return the benchmark's figures from an evaluation's summary rows of one source (generated, or data)."""
    by_group = {row["group"]: row for row in summary if row["source"] == source}
    row = {"sampling": sampling}
    for group in GROUPS:
        found = by_group.get(group, {})
        row[f"{group} median"] = found.get("pitch error median (cents)", float("nan"))
        row[f"{group} p90"] = found.get("pitch error p90 (cents)", float("nan"))
    # Counted over the whole grid. Results kept before the count existed have none (NaN).
    row["silent notes"] = sum(by_group[g].get("silent notes", float("nan")) for g in GROUPS if g in by_group)
    trained = by_group["trained"]
    row["instrument accuracy"] = trained["instrument accuracy"]
    row["level error (dB)"] = trained["level error median (dB)"]
    return row


def environment() -> str:
    """Return what a run's figures depend on besides its seed: the processor and the numerical libraries.

    A seed trains the same weights to the bit with any thread count (tests/test_train.py); another processor or
    library version takes other rounding paths, and the runs part ways within a few hundred batches.
    """
    cpu = next((line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
                if line.startswith("model name")), platform.machine()) if Path("/proc/cpuinfo").exists() else ""
    return f"{cpu}; torch {torch.__version__}, numpy {np.__version__}"


def _keep(path: Path, rows: list[dict]) -> None:
    text = json.dumps(rows, indent=1) + "\n"
    write_atomically(path, lambda f: f.write(text.encode()))


def rendered(name: str, shape: str, output: Path, amplitudes: tuple[float, ...]) -> Path:
    """Return the data set's folder, rendering what it lacks (render_dataset keeps the files already there)."""
    folder = output / "data" / (name.replace(" ", "_") + ("" if shape == "middle" else f"__{shape}"))
    build_dataset(DATASETS[name].render_config(folder, amplitudes, shape))
    return folder


def _label(name: str, shape: str) -> str:
    """Return the table's data set column: the pair, and its shape when not the middle cuts."""
    return name if shape == "middle" else f"{name} ({shape} notes)"


def run_cell(name: str, shape: str, variant: str, budget: str, seed: int, sampling: list[tuple[int, float]],
             output: Path, evaluation: EvaluationConfig) -> list[dict]:
    """Return the result rows of one data set x shape x variant x budget x seed, training and evaluating what is
    missing."""
    label = _label(name, shape)
    path = output / "results" / f"{label}__{variant}__{budget}__{seed}.json".replace(" ", "_")
    kept = json.loads(path.read_text()) if path.exists() else []
    wanted = [f"{top_n}:{temperature:g}" for top_n, temperature in sampling]
    missing = [setting for setting, label in zip(sampling, wanted) if label not in {r["sampling"] for r in kept}]
    if missing and kept and Path(kept[0]["run"]).is_dir():  # a new sampling setting: evaluate the kept run
        run_dir, seconds = Path(kept[0]["run"]), kept[0]["training (min)"] * 60
    elif missing:
        folder = rendered(name, shape, output, evaluation.amplitudes if budget == "tiny" else AMPLITUDES)
        started = time.perf_counter()
        run_dir = train({**training_params(DATASETS[name], folder, variant, budget, seed, output / "runs"),
                         "threads": torch.get_num_threads()})  # --threads, as for the evaluation
        seconds = time.perf_counter() - started
        kept, missing = [], sampling
    for top_n, temperature in missing:
        found = evaluate_run(run_dir, replace(evaluation, top_n=top_n, temperature=temperature), "cpu")
        kept.append({"data set": label, "variant": variant, "budget": budget, "seed": seed, "run": str(run_dir),
                     "training (min)": seconds / 60, **result_row(found.summary, f"{top_n}:{temperature:g}"),
                     "made on": environment()})
    if missing:
        _keep(path, kept)
    return [row for row in kept if row["sampling"] in wanted]


def data_rows(name: str, shape: str, output: Path, evaluation: EvaluationConfig,
              amplitudes: tuple[float, ...]) -> list[dict]:
    """Return the data files' own figures, the floor of every cell of this data set: what YIN and the instrument
    classifier measure on the very notes the runs learn from."""
    label = _label(name, shape)
    path = output / "results" / f"{label}__data files.json".replace(" ", "_")
    if path.exists():
        return json.loads(path.read_text())
    dataset = DATASETS[name]
    folder = rendered(name, shape, output, amplitudes)
    data = AudioDatasetConfig(data_dir=str(folder), parameter_specs=dataset.parameter_specs(),
                              exclude={"p": list(dataset.held_out)})
    _, notes = measure_data(data, evaluation)
    instruments = np.unique([note[evaluation.instrument] for note in notes])
    summary = summary_rows(notes, evaluation, instruments)
    kept = [{"data set": label, "variant": DATA_FILES, "budget": "-", "seed": 0, "run": str(folder),
             "training (min)": 0.0, **result_row(summary, "-", source="data")}]
    _keep(path, kept)
    return kept


def _spread(values: list[float], digits: int) -> str:
    values = [v for v in values if v == v]
    if not values:
        return "-"
    middle = f"{statistics.median(values):.{digits}f}"
    return middle if len(values) == 1 else f"{middle} ({min(values):.{digits}f}..{max(values):.{digits}f})"


COLUMNS = [("trained median", 0), ("trained p90", 0), ("between median", 0), ("between p90", 0),
           ("held-out median", 0), ("held-out p90", 0), ("silent notes", 0), ("instrument accuracy", 2), ("level error (dB)", 1),
           ("training (min)", 1)]


def _data_set_order(label: str) -> tuple[int, int]:
    name, _, shape = label.partition(" (")
    return list(DATASETS).index(name), int(bool(shape))


def table(rows: list[dict]) -> str:
    """Return a markdown table: one line per data set, variant, budget and sampling; seeds as median (min..max)."""
    keys = sorted({(r["data set"], r["variant"], r["budget"], r["sampling"]) for r in rows},
                  key=lambda k: (_data_set_order(k[0]), k[2], [DATA_FILES, *VARIANTS].index(k[1]), k[3]))
    head = ["data set", "variant", "budget", "top_n:temp", "seeds"] + [name for name, _ in COLUMNS]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for key in keys:
        cell = [r for r in rows if (r["data set"], r["variant"], r["budget"], r["sampling"]) == key]
        figures = [_spread([r[name] for r in cell], digits) for name, digits in COLUMNS]
        lines.append("| " + " | ".join([*key, str(len(cell)), *figures]) + " |")
    return "\n".join(lines)


def _sampling(text: str) -> tuple[int, float]:
    try:
        top_n, temperature = text.split(":")
        return int(top_n), float(temperature)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r}: write TOP_N:TEMPERATURE, e.g. 3:1.0") from None


def main(argv: list[str] | None = None) -> None:
    """Command line: run the missing cells and print the table."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--datasets", nargs="+", choices=DATASETS, default=list(DATASETS))
    parser.add_argument("--variants", nargs="+", choices=VARIANTS, default=list(VARIANTS))
    parser.add_argument("--budgets", nargs="+", choices=BUDGETS, default=["quick", "long"])
    parser.add_argument("--seeds", nargs="+", type=int, default=[0, 1])
    parser.add_argument("--shapes", nargs="+", choices=SHAPES, default=["middle"],
                        help="middle cuts of held notes (the original data), or whole notes with attack and release")
    parser.add_argument("--sampling", nargs="+", type=_sampling, default=[(3, 1.0)], metavar="TOP_N:TEMP",
                        help="sampling settings to evaluate each run with (default 3:1.0)")
    parser.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's choice)")
    parser.add_argument("--output", default="output/bench_control", help="data, runs and results (kept)")
    parser.add_argument("--kept", action="store_true",
                        help="print the table of every result kept under --output so far, training nothing")
    args = parser.parse_args(argv)
    if args.kept:
        rows = [row for path in sorted((Path(args.output) / "results").glob("*.json"))
                for row in json.loads(path.read_text())]
        print(table(rows))
        return
    if args.threads:
        torch.set_num_threads(args.threads)
    tiny = args.budgets == ["tiny"]
    evaluation = EvaluationConfig(seconds=0.3, glide_seconds=0.3, settle_seconds=0.2, pitch_step=1.0,
                                  amplitudes=(0.5,)) if tiny else EvaluationConfig()
    rows = []
    for name in args.datasets:
        for shape in args.shapes:
            rows += data_rows(name, shape, Path(args.output), evaluation, evaluation.amplitudes if tiny else AMPLITUDES)
            for budget in args.budgets:
                for variant in args.variants:
                    for seed in args.seeds:
                        cell = run_cell(name, shape, variant, budget, seed, args.sampling, Path(args.output),
                                        evaluation)
                        print(f"{_label(name, shape)}, {variant}, {budget}, seed {seed}: trained "
                              f"{cell[0]['trained median']:.1f} cents median, held-out "
                              f"{cell[0]['held-out median']:.1f}, {cell[0]['silent notes']:.0f} silent notes",
                              flush=True)
                        rows += cell
    text = table(rows) + "\n"
    write_atomically(Path(args.output) / "table.md", lambda f: f.write(text.encode()))
    print(text + f"wrote {Path(args.output) / 'table.md'}")


if __name__ == "__main__":
    main()
