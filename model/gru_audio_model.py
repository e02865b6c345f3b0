"""The sample-level recurrent network: Linear input projection, stacked GRU, Linear to mu-law logits."""
from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from model.cpu_gru import projected_gru_forward


@dataclass
class GRUAudioConfig:
    """Sizes of the network; `input_size` is the audio input (1), `cond_size` the number of parameters."""

    input_size: int = 1
    cond_size: int = 3
    hidden_size: int = 48
    num_layers: int = 4
    numtokens: int = 256
    dropout: float = 0.1


class RNN(nn.Module):
    """Maps (audio, parameters) at each step to logits over the next sample's mu-law class."""

    def __init__(self, config: GRUAudioConfig) -> None:
        super().__init__()
        self.config = config
        self.input_proj = nn.Linear(config.input_size + config.cond_size, config.hidden_size)
        self.gru = nn.GRU(config.hidden_size, config.hidden_size, config.num_layers, batch_first=True,
                          dropout=config.dropout if config.num_layers > 1 else 0.0)
        self.output = nn.Linear(config.hidden_size, config.numtokens)

    def forward(self, x: torch.Tensor, hidden: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """Return (logits (B, T, numtokens), hidden (num_layers, B, H)) for inputs x (B, T, 1+P)."""
        if hidden is None:
            hidden = self.init_hidden(x.shape[0], x.device)
        if x.device.type == "cpu" and torch.is_grad_enabled() and x.shape[1] > 1:
            # Training on CPU: the same arithmetic, with a backward that is not a replay of every step's cell as
            # nn.GRU's is. For a single step there is nothing to gather over time and nn.GRU's cell is quicker.
            out, hidden = projected_gru_forward(self.input_proj, self.gru, x, hidden)
        else:
            out, hidden = self.gru(self.input_proj(x), hidden)
        return self.output(out), hidden

    def step(self, x: torch.Tensor, hidden: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Return (logits (B, numtokens), hidden) for one step of inputs x (B, 1+P)."""
        logits, hidden = self.forward(x[:, None, :], hidden)
        return logits[:, 0], hidden

    def init_hidden(self, batch_size: int, device: torch.device | str | None = None) -> torch.Tensor:
        """Return a zero hidden state (num_layers, batch_size, hidden_size)."""
        if device is None:
            device = self.output.weight.device
        return torch.zeros(self.config.num_layers, batch_size, self.config.hidden_size, device=device)

    def num_parameters(self) -> int:
        """Return the number of trainable parameters."""
        return sum(p.numel() for p in self.parameters() if p.requires_grad)
