"""Model cards: what a model plays, what it learned from, how it was made and how well it follows its controls.

A card travels inside its model file, as metadata keys under "card." (flat strings like the rest of the metadata;
the C runtime and the Pd external pass over them). The parameters' names and ranges are not repeated: the card
shows the file's own, so a card cannot disagree with the tensors it describes.
"""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path

from utils.model_file import MODEL_FILE_VERSION
from utils.model_file_checks import check_metadata
from utils.model_file_header import read_header
from utils.run_folder import CONFIG_NAME, read_config

PREFIX = "card."
# The control figures a card shows, in evaluate.py's words, and how each is printed.
FIGURES = {"trained median": "{:.0f}", "trained p90": "{:.0f}", "between median": "{:.0f}", "between p90": "{:.0f}",
           "held-out median": "{:.0f}", "held-out p90": "{:.0f}", "silent notes": "{:.0f}",
           "instrument accuracy": "{:.2f}", "level error (dB)": "{:.1f}"}


@dataclass
class ModelCard:
    """The card of one model. `units` says what each parameter means, by name; `measured` holds FIGURES."""

    name: str
    description: str
    units: dict[str, str] = field(default_factory=dict)
    data: str = ""
    data_licence: str = ""
    rebuild_data: str = ""
    recipe: str = ""
    schedule: str = ""
    seed: int = 0
    training_minutes: float = math.nan
    made_on: str = ""
    sampling: str = ""
    measured: dict[str, float] = field(default_factory=dict)
    remake: str = ""

    def metadata(self) -> dict[str, str]:
        """Return the card as model-file metadata: flat strings under PREFIX."""
        flat = {f"{PREFIX}{key}": str(value) for key, value in asdict(self).items() if key not in ("units", "measured")}
        flat.update({f"{PREFIX}unit.{name}": unit for name, unit in self.units.items()})
        flat.update({f"{PREFIX}measured.{figure}": repr(float(value)) for figure, value in self.measured.items()})
        return flat

    @classmethod
    def from_metadata(cls, metadata: dict[str, str]) -> ModelCard | None:
        """Return the card a model file's metadata carries, or None if it carries none."""
        if f"{PREFIX}name" not in metadata:
            return None
        plain = {f.name: metadata.get(f"{PREFIX}{f.name}", "") for f in fields(cls) if f.name not in ("units", "measured")}
        card = cls(**{**plain, "seed": int(plain["seed"] or 0),
                      "training_minutes": float(plain["training_minutes"] or "nan")})
        for key, value in metadata.items():
            if key.startswith(f"{PREFIX}unit."):
                card.units[key[len(f"{PREFIX}unit."):]] = value
            elif key.startswith(f"{PREFIX}measured."):
                card.measured[key[len(f"{PREFIX}measured."):]] = float(value)
        order = list(FIGURES)  # the file keeps its metadata sorted by key
        card.measured = dict(sorted(card.measured.items(), key=lambda item: order.index(item[0])
                                    if item[0] in order else len(order)))
        return card


@dataclass
class ModelSummary:
    """What any model file or run folder tells about itself: its parameters and reference, and its card if any."""

    path: Path
    parameters: dict[str, tuple[float, float]]
    reference: str
    sample_rate: int
    card: ModelCard | None


def describe(path: str | Path) -> ModelSummary:
    """Return the summary of a model file or a run folder (whose card, if it was never exported with one, is None)."""
    path = Path(path)
    if path.is_dir():
        return _run_summary(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such model file or run folder; give a .safetensors file written by "
                                "export.py (models/ has shipped ones) or a run folder written by train.py")
    try:  # checked as load_model checks it, without building the network
        header = read_header(path.read_bytes())
        checked = check_metadata(header.metadata, MODEL_FILE_VERSION)
    except (ValueError, OSError) as error:
        raise ValueError(f"{path} is not a model file this RNNControl reads ({error}); export it again with "
                         "export.py") from None
    reference = (f"{checked.harmonics} harmonics following {list(checked.parameters)[checked.pitch]} "
                 f"({checked.units})") if checked.harmonics else "none"
    return ModelSummary(path, checked.parameters, reference, checked.sizes["sample_rate"],
                        ModelCard.from_metadata(header.metadata))

def _run_summary(run: Path) -> ModelSummary:
    config = read_config(run)
    data, train = config["data"], config.get("train", {})
    reference = (f"{data.reference_harmonics} harmonics following {data.pitch_parameter} ({data.pitch_units})"
                 if data.reference_harmonics else "none")
    schedule = " x ".join(str(train.get(key, "?")) for key in ("num_epochs", "batches_per_epoch", "batch_size"))
    card = ModelCard(name=run.name, description=f"a run folder ({run / CONFIG_NAME}), not exported with a card",
                     data=data.data_dir, schedule=f"{schedule} (epochs x batches x windows)",
                     seed=int(train.get("seed", 0)))
    return ModelSummary(run, dict(data.parameter_specs), reference, data.sample_rate, card)


def card_text(summary: ModelSummary) -> str:
    """Return a model's card as text for a terminal: its parameters, then what its card says."""
    card = summary.card
    units = card.units if card else {}
    lines = [f"{summary.path}", f"  {card.name}: {card.description}" if card else "  (no card)",
             f"  sample rate {summary.sample_rate} Hz, periodic reference: {summary.reference}", "  parameters:"]
    lines += [f"    {name} {low:g}..{high:g}  {units.get(name, '')}".rstrip()
              for name, (low, high) in summary.parameters.items()]
    if card:
        for key in ("data", "data_licence", "rebuild_data", "recipe", "schedule", "seed", "training_minutes",
                    "made_on", "sampling", "remake"):
            value = getattr(card, key)
            if value != "" and value == value:
                lines.append(f"  {key.replace('_', ' ')}: {value:.1f}" if isinstance(value, float)
                             else f"  {key.replace('_', ' ')}: {value}")
        if card.measured:
            lines.append("  measured: " + ", ".join(f"{figure} {FIGURES.get(figure, '{}').format(value)}"
                                                  for figure, value in card.measured.items()))
    return "\n".join(lines)


def _table(header: list[str], rows: list[list[str]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|---" * len(header) + "|"]
    return "\n".join(lines + ["| " + " | ".join(row) + " |" for row in rows])


def cards_markdown(summaries: list[ModelSummary]) -> str:
    """Return the cards as three Markdown tables: what each model plays, how it was made, how well it follows."""
    what, made, figures = [], [], []
    for summary in summaries:
        card = summary.card or ModelCard(name=summary.path.stem, description="(no card)")
        name = f"`{summary.path.name}`"
        parameters = "; ".join(f"{name} {low:g}..{high:g}: {card.units.get(name, '')}".rstrip(": ")
                               for name, (low, high) in summary.parameters.items())
        what.append([name, card.description, parameters, summary.reference])
        made.append([name, card.data, card.data_licence, card.recipe, card.schedule, str(card.seed),
                     f"{card.training_minutes:.0f}", f"`{card.remake}`"])
        figures.append([name, card.sampling, *(FIGURES[f].format(card.measured[f]) if f in card.measured else "-"
                                               for f in FIGURES)])
    return "\n\n".join([
        _table(["model", "description", "parameters", "periodic reference"], what),
        _table(["model", "data", "licence", "recipe", "schedule", "seed", "training (min)", "remake"], made),
        _table(["model", "top_n:temperature", *FIGURES], figures)]) + "\n"
