"""The report of a control evaluation: its tables as CSV and markdown, and the folder of tables and plots."""
from __future__ import annotations

import csv
import io
import json
import math
from dataclasses import asdict
from pathlib import Path
from typing import TYPE_CHECKING

from evaluation.plots import PLOTS
from utils.run_folder import write_atomically
from utils.utils import save_figure

if TYPE_CHECKING:
    from evaluation.run import Evaluation


def _columns(rows: list[dict]) -> list[str]:
    return list(dict.fromkeys(key for row in rows for key in row))


def table_csv(rows: list[dict]) -> str:
    """Return rows as CSV text, one column per key seen in any row (blank where a row lacks it)."""
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, _columns(rows), restval="", lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    return buffer.getvalue()


def _cell(value: object) -> str:
    if isinstance(value, float):
        if math.isnan(value):
            return "n/a"
        return f"{value:.3g}" if abs(value) < 1000 else f"{value:.0f}"
    return str(value)


def table_markdown(rows: list[dict]) -> str:
    """Return rows as a Markdown table with numbers to three significant figures."""
    columns = _columns(rows)
    lines = ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
    lines += ["| " + " | ".join(_cell(row.get(key, "")) for key in columns) + " |" for row in rows]
    return "\n".join(lines) + "\n"


def summary_markdown(evaluation: Evaluation) -> str:
    """Return the report's Markdown: what was generated, how fast, and the summary table."""
    config, rate = evaluation.config, evaluation.rate
    grid = sum(r["source"] == "generated" for r in evaluation.notes)
    return (f"# Evaluation of {evaluation.run_directory}\n\n"
            f"{grid} notes of {config.seconds:g} s and {len(evaluation.glides)} glides of {config.glide_seconds:g} s "
            f"(first {config.settle_seconds:g} s of each left out), top_n={config.top_n}, "
            f"temperature={config.temperature:g}, seed={config.seed}; generated in {rate.seconds:.1f} s "
            f"({rate.real_time:.2f}x real time, all voices together).\n\n"
            "Pitch error: |f0 - requested| in cents, f0 the median of a note's voiced frames (per frame for the "
            "glides); voiced: the share of voiced frames. Silent notes: voiced in less than half their frames; "
            "their pitch is left out of the pitch error and counted here instead. Level rank correlation: Spearman's, of RMS level with the "
            "amplitude parameter within each instrument and pitch, averaged; level error: |RMS level - the data's "
            "mean level at that instrument and amplitude| in dB. "
            "Instrument: accuracy of a nearest-centroid classifier of harmonic spectra fit on the data. "
            "Rows of source 'data' measure the data files themselves: the floor.\n\n"
            + table_markdown(evaluation.summary))


def write_report(evaluation: Evaluation, folder: str | Path | None = None) -> Path:
    """Write the tables, the evaluation's settings and the plots into folder (default RUN/evaluation); return it."""
    folder = Path(folder) if folder else evaluation.run_directory / "evaluation"
    texts = {"summary.csv": table_csv(evaluation.summary), "summary.md": summary_markdown(evaluation),
             "notes.csv": table_csv(evaluation.notes),
             "evaluation_config.json": json.dumps(asdict(evaluation.config), indent=2) + "\n"}
    for name, text in texts.items():
        write_atomically(folder / name, lambda f, text=text: f.write(text.encode()))
    for name, plot in PLOTS.items():
        save_figure(folder / name, plot(evaluation))
    return folder
