"""Generate audio from a trained run: the network plays the conditioning trajectory it is given.

Example: python inference.py --param instID=2 --param p=64:76 --param a=0.6 --length_seconds 2
"""
from __future__ import annotations

import argparse
import io
import time
from pathlib import Path

import numpy as np
import torch

from audioDataLoader.audio_dataset import input_value_table, normalize_parameters
from audioDataLoader.mulaw import mu_law_decode, mu_law_encode
from model.gru_audio_model import RNN
from model.torch_sampler import sample_torch
from utils.run_folder import load_model, newest_run, write_atomically


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


def run_inference(model: RNN, cond_seq: np.ndarray | torch.Tensor,
                  warmup_sequence: np.ndarray | torch.Tensor | None = None, top_n: int | None = 3,
                  temperature: float = 1.0, seed: int | None = None, encode: bool = True) -> np.ndarray:
    """Return float audio (T,) for cond_seq (T, P), or (B, T) for B voices at once from cond_seq (B, T, P).

    cond_seq holds the parameters mapped to [0, 1]; `encode` is the run's data setting (config["data"].encode).
    """
    device = next(model.parameters()).device
    cond = torch.as_tensor(cond_seq, dtype=torch.float32, device=device)
    single = cond.ndim == 2
    if single:
        cond = cond[None]
    if cond.ndim != 3 or cond.shape[-1] != model.config.cond_size:
        raise ValueError(f"cond_seq must be (T, {model.config.cond_size}) or (B, T, {model.config.cond_size}) "
                         f"for this model, got shape {tuple(cond_seq.shape)}")
    if temperature <= 0:
        raise ValueError(f"temperature must be > 0, got {temperature}")
    generator = torch.Generator(device=device)
    generator.manual_seed(seed) if seed is not None else generator.seed()
    input_values = input_value_table(model.config.numtokens, encode).to(device)
    was_training = model.training
    model.eval()
    previous, hidden = prime(model, warmup_sequence, cond, input_values)
    codes, _ = sample_torch(model, cond, previous, hidden, input_values, top_n, temperature, generator)
    model.train(was_training)
    audio = mu_law_decode(codes, model.config.numtokens).cpu().numpy()
    return audio[0] if single else audio


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
    parser.add_argument("--output_wav_path", help="default: <run_directory>/generated.wav")
    parser.add_argument("--output_plot_path", help="default: the WAV path with .png")
    args = parser.parse_args(argv)

    run_directory = Path(args.run_directory) if args.run_directory else newest_run()
    model, config = load_model(run_directory, args.device)
    data = config["data"]
    length = int(round(args.length_seconds * data.sample_rate))
    settings = dict(_parse_setting(text) for text in args.param)
    cond = parameter_trajectory(data.parameter_specs, settings, length)

    start = time.perf_counter()
    audio = run_inference(model, cond, None, args.top_n, args.temperature, args.seed, data.encode)
    seconds = time.perf_counter() - start
    print(f"generated {length} samples in {seconds:.2f} s: {length / seconds:,.0f} samples/s, "
          f"{length / seconds / data.sample_rate:.2f}x real time")

    wav_path = Path(args.output_wav_path or run_directory / "generated.wav")
    plot_path = Path(args.output_plot_path or wav_path.with_suffix(".png"))
    save_wav(wav_path, audio, data.sample_rate)
    save_audio_plot(plot_path, audio, data.sample_rate, title=", ".join(args.param))
    print(f"wrote {wav_path} and {plot_path}")


def save_wav(path: str | Path, audio: np.ndarray, sample_rate: int) -> None:
    """Write 16-bit WAV atomically."""
    import soundfile as sf

    write_atomically(path, lambda f: sf.write(f, audio, sample_rate, format="WAV", subtype="PCM_16"))


def save_audio_plot(path: str | Path, audio: np.ndarray, sample_rate: int, title: str = "") -> None:
    """Write a PNG of the waveform and spectrogram atomically."""
    import matplotlib.pyplot as plt

    from utils.utils import plot_audio

    figure = plot_audio(audio, sample_rate, title)
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=100)
    plt.close(figure)
    write_atomically(path, lambda f: f.write(buffer.getvalue()))


if __name__ == "__main__":
    main()
