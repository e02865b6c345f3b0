"""Generate audio from a trained run: the network plays the conditioning trajectory it is given.

Example: python inference.py --param instID=2 --param p=64:76 --param a=0.6 --length_seconds 2
"""
from __future__ import annotations

import argparse
import importlib.util
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
    codes = mu_law_encode(torch.as_tensor(warmup_sequence, dtype=torch.float32, device=device), numtokens)
    if len(codes) > 1:
        audio_in = input_values[codes[:-1]][None, :, None].expand(batch, -1, 1)
        params = cond[:, :1].expand(-1, len(codes) - 1, -1)
        _, hidden = model(torch.cat([audio_in, params], dim=-1), hidden)
    return codes[-1].expand(batch).clone(), hidden


BACKENDS = ("auto", "torch", "numba", "c")


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
        if temperature <= 0:
            raise ValueError(f"temperature must be > 0, got {temperature}")
        self.model, self.warmup_sequence, self.seed, self.sample_rate = model, warmup_sequence, seed, sample_rate
        self.encode = encode
        self.top_n, self.temperature = top_n, temperature
        self.backend = choose_backend(model, backend)
        self.device = next(model.parameters()).device
        self.input_values = input_value_table(model.config.numtokens, encode).to(self.device)
        self.voices: TorchVoices | NumbaVoices | CVoices | None = None
        self.rate: GenerationRate | None = None

    def render(self, cond: np.ndarray | torch.Tensor) -> np.ndarray:
        """Return the next block of float audio, (n,) for cond (n, P) or (B, n) for cond (B, n, P)."""
        start = time.perf_counter()
        size = self.model.config.cond_size
        block = torch.as_tensor(cond, dtype=torch.float32, device=self.device)
        single = block.ndim == 2
        if single:
            block = block[None]
        if block.ndim != 3 or block.shape[-1] != size:
            raise ValueError(f"conditioning must be (T, {size}) or (B, T, {size}) for this model, "
                             f"got shape {tuple(block.shape)}")
        with _evaluating(self.model):
            if self.voices is None:
                self.voices = self._start(block)
            elif len(self.voices.previous) != len(block):
                raise ValueError(f"this stream plays {len(self.voices.previous)} voice(s), got conditioning for "
                                 f"{len(block)}; make a new SynthStream to change the number of voices")
            codes = self.voices.sample(block, self.top_n, self.temperature)
        audio = mu_law_decode(codes, self.model.config.numtokens)
        self.rate = GenerationRate(codes.size, time.perf_counter() - start, self.sample_rate)
        return audio[0] if single else audio

    def hold(self, values: np.ndarray | list[float], num_samples: int) -> np.ndarray:
        """Return the next num_samples of audio with the parameters held at values, (P,) or (B, P) in [0, 1]."""
        values = np.asarray(values, dtype=np.float32)
        return self.render(np.repeat(values[..., None, :], num_samples, axis=-2))

    def _start(self, block: torch.Tensor) -> TorchVoices | NumbaVoices | CVoices:
        previous, hidden = prime(self.model, self.warmup_sequence, block, self.input_values)
        if self.backend == "numba":
            from model.numba_sampler import NumbaVoices

            return NumbaVoices(self.model, previous, hidden, self.input_values, self.seed)
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
    return name, (ends[0], ends[-1])


def main(argv: list[str] | None = None) -> None:
    """Command line: generate a WAV and a PNG (waveform and spectrogram) from a run folder."""
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
    args = parser.parse_args(argv)
    settings = dict(_parse_setting(text) for text in args.param)
    try:
        run_directory = Path(args.run_directory) if args.run_directory else newest_run()
        model, config = load_model(run_directory, args.device)
        data = config["data"]
        length = int(round(args.length_seconds * data.sample_rate))
        cond = parameter_trajectory(data.parameter_specs, settings, length)
    except (ValueError, FileNotFoundError) as error:
        raise SystemExit(f"error: {error}") from None

    start = time.perf_counter()
    audio = run_inference(model, cond, None, args.top_n, args.temperature, args.seed, data.encode, args.backend)
    seconds = time.perf_counter() - start
    print(f"generated {length} samples in {seconds:.2f} s with {choose_backend(model, args.backend)}: "
          f"{length / seconds:,.0f} samples/s, {length / seconds / data.sample_rate:.2f}x real time")

    wav_path = Path(args.output_wav_path or run_directory / "generated.wav")
    plot_path = Path(args.output_plot_path or wav_path.with_suffix(".png"))
    save_wav(wav_path, audio, data.sample_rate)
    from utils.utils import plot_audio, save_figure  # matplotlib only where a plot is made

    save_figure(plot_path, plot_audio(audio, data.sample_rate, title=", ".join(args.param)))
    print(f"wrote {wav_path} and {plot_path}")


def save_wav(path: str | Path, audio: np.ndarray, sample_rate: int) -> None:
    """Write 16-bit WAV atomically."""
    import soundfile as sf

    write_atomically(path, lambda f: sf.write(f, audio, sample_rate, format="WAV", subtype="PCM_16"))


if __name__ == "__main__":
    main()
