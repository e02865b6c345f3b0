"""Plots of a control evaluation: pitch against request, the glides, loudness, and spectrograms of the notes."""
from __future__ import annotations

from typing import TYPE_CHECKING

import matplotlib.pyplot as plt
import numpy as np
from matplotlib.figure import Figure
from matplotlib.ticker import FuncFormatter

from evaluation.measures import GROUPS

if TYPE_CHECKING:
    from evaluation.run import Evaluation

GROUP_COLOURS = {"trained": "C0", "held-out": "C3", "between": "C1"}


def _per_instrument(evaluation: Evaluation, height: float = 3.5) -> tuple[Figure, list]:
    count = len(evaluation.glides)
    figure, axes = plt.subplots(1, count, figsize=(4.5 * count + 1, height), squeeze=False)
    return figure, list(zip(axes[0], evaluation.glides))


def _notes(evaluation: Evaluation, source: str, instrument: float, group: str | None = None) -> list[dict]:
    key = evaluation.config.instrument
    return [r for r in evaluation.notes
            if r["source"] == source and r[key] == instrument and (group is None or r["group"] == group)]


def _scatter_notes(ax, evaluation: Evaluation, instrument: float, x: str, y: str) -> None:
    """Scatter y against x of the data files in grey and of the generated notes coloured by group."""
    data = _notes(evaluation, "data", instrument)
    ax.scatter([r[x] for r in data], [r[y] for r in data], marker="x", color="0.6", label="data")
    for group, colour in GROUP_COLOURS.items():
        rows = _notes(evaluation, "generated", instrument, group)
        if rows:
            ax.scatter([r[x] for r in rows], [r[y] for r in rows], color=colour, s=14, label=f"generated, {group}")


def _mark_held_out_pitches(ax, evaluation: Evaluation, along_x: bool) -> None:
    for k, pitch in enumerate(evaluation.exclude.get(evaluation.config.pitch, [])):
        (ax.axvline if along_x else ax.axhline)(pitch, color=GROUP_COLOURS["held-out"], alpha=0.25, linewidth=6,
                                                label="_" if k else "held-out pitch")


def _labelled(figure: Figure, panels: list, ylabel: str) -> Figure:
    """Return the figure with the first panel's y label and legend, laid out."""
    panels[0][0].set_ylabel(ylabel)
    panels[0][0].legend(fontsize=7)
    figure.tight_layout()
    return figure


def plot_pitch(evaluation: Evaluation) -> Figure:
    """Return a figure of each note's f0 against its requested pitch (cents off); held-out pitches shaded."""
    config = evaluation.config
    figure, panels = _per_instrument(evaluation)
    for ax, instrument in panels:
        _scatter_notes(ax, evaluation, instrument, config.pitch, "cents_error")
        _mark_held_out_pitches(ax, evaluation, along_x=True)
        ax.axhline(0.0, color="k", linewidth=0.8)
        ax.set_yscale("symlog", linthresh=50)  # linear within a quarter-tone, octave errors still on the plot
        low, high = ax.get_ylim()
        ax.set_ylim(min(low, -100), max(high, 100))
        ax.yaxis.set_major_formatter(FuncFormatter(lambda value, _: f"{value:g}"))
        silent = sum(r["silent"] for r in _notes(evaluation, "generated", instrument))
        ax.set_title(f"{config.instrument}={instrument:g}" + (f" ({silent} silent notes not shown)"
                                                              if silent else ""), fontsize=10)
        ax.set_xlabel(f"requested pitch {config.pitch} (MIDI)")
    return _labelled(figure, panels, "f0 - requested (cents)")


def plot_glide(evaluation: Evaluation) -> Figure:
    """Return a figure of each glide's f0 track over its target pitch; held-out pitches shaded."""
    figure, panels = _per_instrument(evaluation)
    for ax, instrument in panels:
        track = evaluation.glides[instrument]
        _mark_held_out_pitches(ax, evaluation, along_x=False)
        ax.plot(track.times, track.target_midi, color="k", linewidth=1, label="requested")
        ax.plot(track.times, track.f0_midi, ".", markersize=3, label="f0 of the generated audio")
        ax.set_title(f"glide, {evaluation.config.instrument}={instrument:g}", fontsize=10)
        ax.set_xlabel("time (s)")
    return _labelled(figure, panels, "pitch (MIDI)")


def plot_loudness(evaluation: Evaluation) -> Figure:
    """Return a figure of each note's RMS level against its amplitude parameter, over the data's levels."""
    config = evaluation.config
    figure, panels = _per_instrument(evaluation)
    for ax, instrument in panels:
        _scatter_notes(ax, evaluation, instrument, config.amplitude, "level_db")
        ax.set_title(f"{config.instrument}={instrument:g}", fontsize=10)
        ax.set_xlabel(f"amplitude {config.amplitude}")
    return _labelled(figure, panels, "RMS level (dBFS)")


def plot_spectrograms(evaluation: Evaluation) -> Figure:
    """Return spectrograms of a few generated notes: per instrument, one of each group (trained, held-out,
    between), nearest the middle amplitude and the middle of that group's pitches."""
    config = evaluation.config
    generated = [r for r in evaluation.notes if r["source"] == "generated"]
    groups = [g for g in GROUPS if any(r["group"] == g for r in generated)]
    figure, axes = plt.subplots(len(evaluation.glides), len(groups), squeeze=False, sharey=True,
                                figsize=(3.2 * len(groups) + 1, 2.6 * len(evaluation.glides)))
    for row, instrument in zip(axes, evaluation.glides):
        for ax, group in zip(row, groups):
            mine = [i for i, r in enumerate(generated) if r[config.instrument] == instrument and r["group"] == group]
            if not mine:
                ax.set_axis_off()
                continue
            middle_pitch = np.median([generated[i][config.pitch] for i in mine])
            chosen = min(mine, key=lambda i: (abs(generated[i][config.amplitude] - config.middle_amplitude),
                                              abs(generated[i][config.pitch] - middle_pitch)))
            ax.specgram(evaluation.grid_audio[chosen], NFFT=512, Fs=evaluation.sample_rate, noverlap=384,
                        cmap="magma", scale="dB", vmin=-120)
            note = generated[chosen]
            ax.set_title(f"{config.instrument}={instrument:g} {config.pitch}={note[config.pitch]:g} "
                         f"{config.amplitude}={note[config.amplitude]:g} ({group})", fontsize=8)
    for ax in axes[:, 0]:
        ax.set_ylabel("frequency (Hz)")
    for ax in axes[-1]:
        ax.set_xlabel("time (s)")
    figure.tight_layout()
    return figure


PLOTS = {"pitch.png": plot_pitch, "glide.png": plot_glide, "loudness.png": plot_loudness,
         "spectrograms.png": plot_spectrograms}
