"""Generate audio from a trained run: the network plays the conditioning trajectory it is given.

Example: python inference.py --param instID=2 --param p=64:76 --param a=0.6 --length_seconds 2

From Python, `model.generation` has `run_inference` and `SynthStream`; `utils.run_folder` has `load_model`.
"""
from __future__ import annotations

import argparse
import math
import os
import tempfile
from pathlib import Path

import numpy as np

from audioDataLoader.audio_dataset import normalize_parameters
from model.generation import SynthStream
from model.reference import PeriodicReference
from model.sampler import BACKENDS
from utils.atomic_write import writable_target
from utils.checks import MAX_SEED, check_sampling_settings, setting_in_range
from utils.command_line import add_run_directory, exit_on_bad_input, named_numbers, run_directory
from utils.run_folder import load_model, outputs_folder
from utils.wav import save_wav


def parameter_trajectory(specs: dict[str, tuple[float, float]], settings: dict[str, tuple[float, float]],
                         length: int) -> np.ndarray:
    """Return (length, P) conditioning in [0, 1] from each parameter's (start, end) in its own units."""
    missing = [name for name in specs if name not in settings]
    unknown = [name for name in settings if name not in specs]
    if missing or unknown:
        raise ValueError(f"give every parameter of this run, {list(specs)}, with --param NAME=VALUE or "
                         f"NAME=START:END (missing {missing}, unknown {unknown})")
    own_units = np.stack([np.linspace(*settings[name], length) for name in specs], axis=1)
    return normalize_parameters(own_units, specs)


def generation_bytes(length: int, parameters: int) -> int:
    """Return about the most memory the command line holds at once to generate `length` samples."""
    # The ramps, the conditioning and its temporaries, the codes, the audio and its 16-bit copy: tracemalloc's peak
    # was 47, 55 and 96 bytes a sample for 1, 3 and 6 parameters.
    return length * (16 * parameters + 48)


def _length_in_samples(seconds: float, sample_rate: int, parameters: int) -> int:
    """Return --length_seconds in samples, refusing lengths that are not positive or would not fit in memory."""
    if not (math.isfinite(seconds) and seconds > 0):
        raise ValueError(f"--length_seconds must be a finite number above 0, got {seconds}")
    length = max(1, round(seconds * sample_rate))
    needed, memory = generation_bytes(length, parameters), os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    if needed > memory:
        most = memory / generation_bytes(sample_rate, parameters)
        raise ValueError(f"--length_seconds {seconds:g} would take about {_size(needed)} of memory, and this machine "
                         f"has {_size(memory)}; ask for at most about {most:,.0f} seconds")
    return length


def _size(count: float) -> str:
    """Return a byte count in binary units, such as "116.4 TiB"."""
    units = ("bytes", "KiB", "MiB", "GiB", "TiB", "PiB")
    power = min(int(math.log(max(count, 1), 1024)), len(units) - 1)
    return f"{count / 1024 ** power:,.1f} {units[power]}"


def _check_output_path(path: Path, option: str) -> None:
    """Refuse a path that cannot be written, before anything is generated (missing folders are made later)."""
    folder = _nearest_existing(path.parent)
    if not folder.is_dir():
        raise ValueError(f"{option} {path}: {folder} is a file, not a folder; give a path in a folder")
    try:
        folder = _nearest_existing(writable_target(path).parent)  # where a symlink leads
    except ValueError as error:
        raise ValueError(f"{option} {error}") from None
    try:
        tempfile.NamedTemporaryFile(dir=folder).close()
    except OSError as error:
        raise ValueError(f"{option} {path}: cannot write in {folder} ({error.strerror}); "
                         "give a path where you may write") from None


def _nearest_existing(folder: Path) -> Path:
    """Return `folder` or the nearest of its parents that exists."""
    while not folder.exists():
        folder = folder.parent
    return folder


def _parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_run_directory(parser, shipped_fallback=True)
    parser.add_argument("--top_n", type=int, default=3, help="draw among the n most likely samples (0: all)")
    parser.add_argument("--temperature", type=float, default=1.0)
    parser.add_argument("--length_seconds", type=float, default=2.0)
    parser.add_argument("--param", action="append", default=[], metavar="NAME=VALUE|NAME=START:END",
                        help="a conditioning parameter in its own units, held or ramped; repeat for each")
    parser.add_argument("--seed", type=int, default=None)
    parser.add_argument("--device", default=None, help="cpu or cuda (default: cuda when available)")
    parser.add_argument("--backend", choices=BACKENDS, default="auto",
                        help="sampler: auto (the C runtime, else numba, on CPU; torch on CUDA), torch, numba, or c")
    parser.add_argument("--output_wav_path", help="default: <run_directory>/generated.wav, or "
                        "output/<model file's name>/generated.wav")
    parser.add_argument("--output_plot_path", help="default: the WAV path with .png")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> None:
    """Command line: generate a WAV and a PNG (waveform and spectrogram) from a run folder."""
    args = _parse_args(argv)
    settings = {name: (ends[0], ends[-1]) for name, ends in
                (named_numbers(text, "--param", "NAME=VALUE to hold a value or NAME=START:END for a ramp",
                               counts=(1, 2)) for text in args.param)}
    with exit_on_bad_input():
        check_sampling_settings(args.top_n, args.temperature)
        if args.seed is not None:
            setting_in_range("--seed", args.seed, 0, MAX_SEED)
        source = run_directory(args, shipped_fallback=True)
        model, config = load_model(source, args.device)
        data = config["data"]
        length = _length_in_samples(args.length_seconds, data.sample_rate, len(data.parameter_specs))
        wav_path = Path(args.output_wav_path or outputs_folder(source) / "generated.wav")
        plot_path = Path(args.output_plot_path or wav_path.with_suffix(".png"))
        if wav_path.resolve() == plot_path.resolve():
            raise ValueError(f"the WAV and the plot would both be written to {wav_path}; give --output_plot_path")
        _check_output_path(wav_path, "--output_wav_path")
        _check_output_path(plot_path, "--output_plot_path")
        cond = parameter_trajectory(data.parameter_specs, settings, length)
        stream = SynthStream(model, None, args.top_n, args.temperature, args.seed, data.encode, args.backend,
                             data.sample_rate, PeriodicReference.of(data))
        audio = stream.render(cond)
    if stream.compile_seconds is not None:
        print(f"compiling the sampler (first run only): {stream.compile_seconds:.1f} s")
    print(f"generated {length} samples in {stream.rate.seconds:.2f} s with {stream.backend}: "
          f"{stream.rate.samples_per_second:,.0f} samples/s, {stream.rate.real_time:.2f}x real time")
    _save_outputs(audio, data.sample_rate, wav_path, plot_path, title=", ".join(args.param))


def _save_outputs(audio: np.ndarray, sample_rate: int, wav_path: Path, plot_path: Path, title: str) -> None:
    """Write the WAV and its plot; if the WAV cannot be written, keep the audio in the temporary folder and say so."""
    try:
        save_wav(wav_path, audio, sample_rate)
    except OSError as error:
        fd, kept = tempfile.mkstemp(prefix="rnncontrol-", suffix=".wav")
        os.close(fd)
        save_wav(kept, audio, sample_rate)
        raise SystemExit(f"error: could not write {wav_path} ({error.strerror}); the audio is kept in {kept}") from None
    from utils.utils import plot_audio, save_figure  # matplotlib is imported only where a plot is made

    try:
        save_figure(plot_path, plot_audio(audio, sample_rate, title=title))
    except OSError as error:
        raise SystemExit(f"error: wrote {wav_path}, but could not write the plot {plot_path} ({error.strerror})"
                         ) from None
    print(f"wrote {wav_path} and {plot_path}")


if __name__ == "__main__":
    main()
