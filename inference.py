"""Generate audio from a trained run: the network plays the conditioning trajectory it is given.

Example: python inference.py --param instID=2 --param p=64:76 --param a=0.6 --length_seconds 2
"""
from __future__ import annotations

import argparse
import importlib.util
import math
import numbers
import os
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import torch

from audioDataLoader.audio_dataset import input_value_table, normalize_parameters
from audioDataLoader.mulaw import mu_law_decode, mu_law_encode
from model.gru_audio_model import RNN
from model.torch_sampler import TorchVoices
from utils.run_folder import load_model, newest_run, write_atomically

if TYPE_CHECKING:
    from model.c_sampler import CVoices
    from model.numba_sampler import NumbaVoices


@torch.no_grad()
def prime(model: RNN, warmup_sequence: np.ndarray | torch.Tensor | None, cond: torch.Tensor,
          input_values: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Return (last warm-up index (B,), hidden) after running the warm-up audio through the model.

    The warm-up is float audio in [-1, 1], fed with the first conditioning vector of each voice; its
    last sample is the first fed-back input. With no warm-up, generation starts from silence.
    """
    batch, device, numtokens = cond.shape[0], cond.device, model.config.numtokens
    hidden = model.init_hidden(batch, device)
    if warmup_sequence is None or len(warmup_sequence) == 0:
        return mu_law_encode(torch.zeros(batch, device=device), numtokens), hidden
    check_finite(warmup_sequence, "warmup_sequence")
    codes = mu_law_encode(torch.as_tensor(warmup_sequence, dtype=torch.float32, device=device), numtokens)
    if len(codes) > 1:
        audio_in = input_values[codes[:-1]][None, :, None].expand(batch, -1, 1)
        params = cond[:, :1].expand(-1, len(codes) - 1, -1)
        _, hidden = model(torch.cat([audio_in, params], dim=-1), hidden)
    return codes[-1].expand(batch).clone(), hidden


BACKENDS = ("auto", "torch", "numba", "c")
# Below this the PyTorch sampler's logits / temperature overflow float32; top_n=1 is the greedy draw.
MIN_TEMPERATURE = 1e-3


def check_sampling_settings(top_n: int | None, temperature: float) -> None:
    """Raise ValueError unless temperature is a finite number >= MIN_TEMPERATURE and top_n is None or >= 0."""
    if not (isinstance(temperature, numbers.Real) and math.isfinite(temperature) and temperature >= MIN_TEMPERATURE):
        raise ValueError(f"temperature (--temperature) must be a finite number of at least {MIN_TEMPERATURE}, got "
                         f"{temperature!r}; use top_n=1 to take the most likely sample every step")
    if top_n is not None and (isinstance(top_n, bool) or not isinstance(top_n, numbers.Integral) or top_n < 0):
        raise ValueError(f"top_n (--top_n) must be a whole number >= 0 (0 or None: draw among all classes), "
                         f"got {top_n!r}")


def check_finite(values: np.ndarray | torch.Tensor | list[float], what: str = "conditioning") -> None:
    """Raise ValueError naming `what` and the first bad index if the values hold NaN or infinity.

    The samplers would play such input as a constant without complaint (on the numba path, for the rest of the
    voice), so generation and live play refuse it here.
    """
    tensor = values.detach() if isinstance(values, torch.Tensor) else torch.from_numpy(np.asarray(values, float))
    bad = ~torch.isfinite(tensor)
    if bad.any():
        first = tuple(int(i) for i in bad.nonzero()[0])
        raise ValueError(f"{what} holds {int(bad.sum())} NaN or infinite values (the first at index {first}); "
                         "give finite parameter values")


def numba_available() -> bool:
    """Return whether numba is installed, so the compiled sampler can run."""
    return importlib.util.find_spec("numba") is not None


def choose_backend(model: RNN, backend: str = "auto") -> str:
    """Return the sampler to use, "numba" or "torch"; "auto" picks numba for a CPU model when numba is installed."""
    if backend not in BACKENDS:
        raise ValueError(f"backend must be one of {BACKENDS}, got {backend!r}")
    if backend == "auto":
        on_cpu = next(model.parameters()).device.type == "cpu"
        return "numba" if on_cpu and numba_available() else "torch"
    if backend == "numba" and not numba_available():
        raise ImportError("backend='numba' needs numba: pip install numba, or pass backend='torch'")
    if backend == "c":
        from model.c_sampler import library

        library()  # raises, saying how to build it, when the C runtime is not built
    return backend


@dataclass(frozen=True)
class GenerationRate:
    """How fast a block was generated: `samples` over all voices in `seconds`, for audio at `sample_rate`."""

    samples: int
    seconds: float
    sample_rate: int

    @property
    def samples_per_second(self) -> float:
        """Return the samples generated per second, all voices together."""
        return self.samples / self.seconds

    @property
    def real_time(self) -> float:
        """Return how many times faster than real time generation ran (above 1 it keeps up with playback)."""
        return self.samples_per_second / self.sample_rate


@contextmanager
def _evaluating(model: RNN) -> Iterator[None]:
    was_training = model.training
    model.eval()
    try:
        yield
    finally:
        model.train(was_training)


class SynthStream:
    """The model playing as a stream: each `render` continues the audio where the previous block stopped.

    Conditioning is in [0, 1] per parameter (`parameter_trajectory` builds it from a run's own units), so the
    controls can change from block to block while the hidden state, last sample and random streams carry over:
    blocks rendered one after another equal one long call with the same seed. The first block primes the network
    with `warmup_sequence` and fixes the number of voices, (n, P) for one voice or (B, n, P) for B voices. The
    numba and c backends play the weights the model had at the first block. `rate` tells how fast the last block ran.
    """

    def __init__(self, model: RNN, warmup_sequence: np.ndarray | torch.Tensor | None = None,
                 top_n: int | None = 3, temperature: float = 1.0, seed: int | None = None, encode: bool = True,
                 backend: str = "auto", sample_rate: int = 16000) -> None:
        check_sampling_settings(top_n, temperature)
        self.model, self.warmup_sequence, self.seed, self.sample_rate = model, warmup_sequence, seed, sample_rate
        self.encode = encode
        self.top_n, self.temperature = top_n, temperature
        self.backend = choose_backend(model, backend)
        self.device = next(model.parameters()).device
        self.input_values = input_value_table(model.config.numtokens, encode).to(self.device)
        self.voices: TorchVoices | NumbaVoices | CVoices | None = None
        self.rate: GenerationRate | None = None
        self.compile_seconds: float | None = None  # how long the first block spent compiling the numba sampler
        self._ready_seconds = 0.0  # compiling or loading the numba sampler, left out of `rate`

    def render(self, cond: np.ndarray | torch.Tensor) -> np.ndarray:
        """Return the next block of float audio, (n,) for cond (n, P) or (B, n) for cond (B, n, P)."""
        start = time.perf_counter()
        size = self.model.config.cond_size
        block = torch.as_tensor(cond, dtype=torch.float32, device=self.device).detach()
        check_finite(block)
        single = block.ndim == 2
        if single:
            block = block[None]
        if block.ndim != 3 or block.shape[-1] != size:
            raise ValueError(f"conditioning must be (T, {size}) or (B, T, {size}) for this model, "
                             f"got shape {tuple(block.shape)}")
        with _evaluating(self.model):
            ready_seconds = 0.0
            if self.voices is None:
                self.voices = self._start(block)
                ready_seconds = self._ready_seconds
            elif len(self.voices.previous) != len(block):
                raise ValueError(f"this stream plays {len(self.voices.previous)} voice(s), got conditioning for "
                                 f"{len(block)}; make a new SynthStream to change the number of voices")
            codes = self.voices.sample(block, self.top_n, self.temperature)
        audio = mu_law_decode(codes, self.model.config.numtokens)
        self.rate = GenerationRate(codes.size, time.perf_counter() - start - ready_seconds, self.sample_rate)
        return audio[0] if single else audio

    def hold(self, values: np.ndarray | list[float], num_samples: int) -> np.ndarray:
        """Return the next num_samples of audio with the parameters held at values, (P,) or (B, P) in [0, 1]."""
        values = np.asarray(values, dtype=np.float32)
        return self.render(np.repeat(values[..., None, :], num_samples, axis=-2))

    def _start(self, block: torch.Tensor) -> TorchVoices | NumbaVoices | CVoices:
        previous, hidden = prime(self.model, self.warmup_sequence, block, self.input_values)
        if self.backend == "numba":
            from model.numba_sampler import NumbaVoices

            voices = NumbaVoices(self.model, previous, hidden, self.input_values, self.seed)
            self._ready_seconds = voices.ready_seconds
            self.compile_seconds = voices.ready_seconds if voices.compiled else None
            return voices
        if self.backend == "c":
            from model.c_sampler import CVoices

            return CVoices(self.model, previous, hidden, self.encode, self.seed)
        return TorchVoices(self.model, previous, hidden, self.input_values, self.seed)


def run_inference(model: RNN, cond_seq: np.ndarray | torch.Tensor,
                  warmup_sequence: np.ndarray | torch.Tensor | None = None, top_n: int | None = 3,
                  temperature: float = 1.0, seed: int | None = None, encode: bool = True,
                  backend: str = "auto") -> np.ndarray:
    """Return float audio (T,) for cond_seq (T, P), or (B, T) for B voices at once from cond_seq (B, T, P).

    cond_seq holds the parameters mapped to [0, 1]; `encode` is the run's data setting (config["data"].encode).
    `backend` "auto" runs the compiled numba sampler for a CPU model and PyTorch for a CUDA one (see
    `choose_backend`); the two draw from different random streams, so a seed reproduces audio within a backend.
    """
    return SynthStream(model, warmup_sequence, top_n, temperature, seed, encode, backend).render(cond_seq)


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


def _parse_setting(text: str) -> tuple[str, tuple[float, float]]:
    try:
        name, value = text.split("=", 1)
        ends = [float(v) for v in value.split(":")]
        if len(ends) not in (1, 2):
            raise ValueError
    except ValueError:
        raise SystemExit(f"--param {text!r}: write NAME=VALUE to hold a value or NAME=START:END for a ramp") from None
    if not all(map(math.isfinite, ends)):
        raise SystemExit(f"--param {text!r}: give finite numbers (not nan or inf)")
    return name, (ends[0], ends[-1])


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
    if path.is_dir():
        raise ValueError(f"{option} {path} is a folder; give a file path, such as {path / 'generated.wav'}")
    folder = path.parent
    while not folder.exists():
        folder = folder.parent
    if not folder.is_dir():
        raise ValueError(f"{option} {path}: {folder} is a file, not a folder; give a path in a folder")
    try:
        tempfile.NamedTemporaryFile(dir=folder).close()
    except OSError as error:
        raise ValueError(f"{option} {path}: cannot write in {folder} ({error.strerror}); "
                         "give a path where you may write") from None


def _parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--run_directory", help="run folder written by train.py (default: newest under output/)")
    parser.add_argument("--top_n", type=int, default=3, help="draw among the n most likely samples (0: all)")
    parser.add_argument("--temperature", type=float, default=1.0)
    parser.add_argument("--length_seconds", type=float, default=2.0)
    parser.add_argument("--param", action="append", default=[], metavar="NAME=VALUE|NAME=START:END",
                        help="a conditioning parameter in its own units, held or ramped; repeat for each")
    parser.add_argument("--seed", type=int, default=None)
    parser.add_argument("--device", default=None, help="cpu or cuda (default: cuda when available)")
    parser.add_argument("--backend", choices=BACKENDS, default="auto",
                        help="sampler: auto (numba on CPU, torch on CUDA), torch, numba, or c (the C runtime)")
    parser.add_argument("--output_wav_path", help="default: <run_directory>/generated.wav")
    parser.add_argument("--output_plot_path", help="default: the WAV path with .png")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> None:
    """Command line: generate a WAV and a PNG (waveform and spectrogram) from a run folder."""
    args = _parse_args(argv)
    settings = dict(_parse_setting(text) for text in args.param)
    try:
        check_sampling_settings(args.top_n, args.temperature)
        run_directory = Path(args.run_directory) if args.run_directory else newest_run()
        model, config = load_model(run_directory, args.device)
        data = config["data"]
        length = _length_in_samples(args.length_seconds, data.sample_rate, len(data.parameter_specs))
        wav_path = Path(args.output_wav_path or run_directory / "generated.wav")
        plot_path = Path(args.output_plot_path or wav_path.with_suffix(".png"))
        if wav_path.resolve() == plot_path.resolve():
            raise ValueError(f"the WAV and the plot would both be written to {wav_path}; give --output_plot_path")
        _check_output_path(wav_path, "--output_wav_path")
        _check_output_path(plot_path, "--output_plot_path")
        cond = parameter_trajectory(data.parameter_specs, settings, length)
        stream = SynthStream(model, None, args.top_n, args.temperature, args.seed, data.encode, args.backend,
                             data.sample_rate)
        audio = stream.render(cond)
    except (ValueError, FileNotFoundError, ImportError) as error:
        raise SystemExit(f"error: {error}") from None
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
    from utils.utils import plot_audio, save_figure  # matplotlib only where a plot is made

    try:
        save_figure(plot_path, plot_audio(audio, sample_rate, title=title))
    except OSError as error:
        raise SystemExit(f"error: wrote {wav_path}, but could not write the plot {plot_path} ({error.strerror})"
                         ) from None
    print(f"wrote {wav_path} and {plot_path}")


def save_wav(path: str | Path, audio: np.ndarray, sample_rate: int) -> None:
    """Write 16-bit WAV atomically."""
    import soundfile as sf

    write_atomically(path, lambda f: sf.write(f, audio, sample_rate, format="WAV", subtype="PCM_16"))


if __name__ == "__main__":
    main()
