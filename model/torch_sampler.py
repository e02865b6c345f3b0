"""Autoregressive sampling with the PyTorch model, one step at a time: the reference path, and the CUDA one."""
from __future__ import annotations

import numpy as np
import torch

from audioDataLoader.audio_dataset import input_value_table
from audioDataLoader.mulaw import mu_law_encode
from model.gru_audio_model import RNN


def draw_top_n(logits: torch.Tensor, top_n: int | None, temperature: float,
               generator: torch.Generator | None) -> torch.Tensor:
    """Return one class index per row of logits (B, N), drawn by softmax among the top_n after temperature."""
    if top_n == 1:
        return logits.argmax(dim=-1)
    if top_n is None or top_n <= 0 or top_n >= logits.shape[-1]:
        probs = torch.softmax(logits / temperature, dim=-1)
        return torch.multinomial(probs, 1, generator=generator)[:, 0]
    top, index = torch.topk(logits, top_n, dim=-1)
    choice = torch.multinomial(torch.softmax(top / temperature, dim=-1), 1, generator=generator)
    return index.gather(-1, choice)[:, 0]


@torch.no_grad()
def sample_torch(model: RNN, cond: torch.Tensor, previous: torch.Tensor, hidden: torch.Tensor,
                 input_values: torch.Tensor, top_n: int | None, temperature: float,
                 generator: torch.Generator | None) -> tuple[torch.Tensor, torch.Tensor]:
    """Return (mu-law indices (B, T), hidden) generated for cond (B, T, P), starting after indices `previous` (B,).

    Each step feeds [input_values[previous], cond[:, t]] and draws the next index, which is fed back.
    """
    batch, length, _ = cond.shape
    codes = torch.empty(batch, length, dtype=torch.long, device=cond.device)
    x = torch.empty(batch, 1 + cond.shape[-1], device=cond.device)
    for t in range(length):
        x[:, 0] = input_values[previous]
        x[:, 1:] = cond[:, t]
        logits, hidden = model.step(x, hidden)
        previous = draw_top_n(logits, top_n, temperature, generator)
        codes[:, t] = previous
    return codes, hidden


class TorchVoices:
    """B voices for `sample_torch`: last indices (B,), hidden (L, B, H) and one seeded generator for all their draws.

    The voices share the generator, so a restarted voice keeps drawing from it: `random_state` is not used.
    """

    compiled = False

    def __init__(self, model: RNN, previous: torch.Tensor, hidden: torch.Tensor, encode: bool, seed: int | None,
                 threads: int | None = None) -> None:
        self.model, self.previous, self.hidden, self.threads = model, previous, hidden, threads
        self.input_values = input_value_table(model.config.numtokens, encode).to(previous.device)
        self.silence = mu_law_encode(torch.zeros(()), model.config.numtokens).item()
        self.generator = torch.Generator(device=previous.device)
        if seed is None:
            self.generator.seed()
        else:
            self.generator.manual_seed(seed)

    def __len__(self) -> int:
        return len(self.previous)

    def sample(self, cond: np.ndarray | torch.Tensor, top_n: int | None, temperature: float,
               which: np.ndarray | None = None) -> np.ndarray:
        """Return the next mu-law indices (len(which), T) for cond (len(which), T, P), carrying the voices' state on."""
        device = self.previous.device
        cond = torch.as_tensor(cond, dtype=torch.float32, device=device)
        which = torch.arange(len(self), device=device) if which is None else torch.as_tensor(which, device=device)
        codes, hidden = sample_torch(self.model, cond, self.previous[which], self.hidden[:, which],
                                     self.input_values, top_n, temperature, self.generator)
        self.hidden[:, which] = hidden
        if codes.shape[1]:
            self.previous[which] = codes[:, -1]
        return codes.cpu().numpy()

    def restart(self, voice: int, random_state: int) -> None:
        """Put `voice` back to silence and a zero hidden state."""
        self.previous[voice] = self.silence
        self.hidden[:, voice] = 0.0

    def finite(self, which: np.ndarray) -> np.ndarray:
        """Return for each voice in `which` whether its hidden state is finite."""
        hidden = self.hidden[:, torch.as_tensor(which, device=self.hidden.device)]
        return torch.isfinite(hidden).all(dim=2).all(dim=0).cpu().numpy()
