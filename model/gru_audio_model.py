"""The sample-level recurrent network: Linear input projection, stacked GRU, Linear to mu-law logits."""
from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
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
    # False: the parameters reach the GRU through the input projection only (the original network). True: every
    # GRU layer above the first takes them too, beside the layer below's output.
    cond_every_layer: bool = False


GRUWeights = tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]
class RNN(nn.Module):
    """Maps (audio, parameters) at each step to logits over the next sample's mu-law class."""

    def __init__(self, config: GRUAudioConfig) -> None:
        super().__init__()
        self.config = config
        size = config.hidden_size
        self.input_proj = nn.Linear(config.input_size + config.cond_size, size)
        self.layer_dropout = config.dropout if config.num_layers > 1 else 0.0
        if config.cond_every_layer:
            # One nn.GRU a layer, as the layers' inputs differ in size: the first takes the projection, the others
            # the layer below's output followed by the parameters.
            self.gru = nn.ModuleList(nn.GRU(size + (config.cond_size if k else 0), size, batch_first=True)
                                     for k in range(config.num_layers))
        else:
            self.gru = nn.GRU(size, size, config.num_layers, batch_first=True, dropout=self.layer_dropout)
        self.output = nn.Linear(size, config.numtokens)

    def forward(self, x: torch.Tensor, hidden: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """Return (logits (B, T, numtokens), hidden (num_layers, B, H)) for inputs x (B, T, 1+P)."""
        if hidden is None:
            hidden = self.init_hidden(x.shape[0], x.device)
        if x.device.type == "cpu" and torch.is_grad_enabled() and x.shape[1] > 1:
            # Training on CPU: the same arithmetic, with a backward that is not a replay of every step's cell as
            # nn.GRU's is. For a single step there is nothing to gather over time and nn.GRU's cell is quicker.
            out, hidden = projected_gru_forward(self.input_proj, self.gru_layers(), self.layer_condition(x), x,
                                                hidden, self.layer_dropout if self.training else 0.0)
        elif self.config.cond_every_layer:
            out, hidden = self._layer_by_layer(x, hidden)
        else:
            out, hidden = self.gru(self.input_proj(x), hidden)
        return self.output(out), hidden

    def layer_condition(self, x: torch.Tensor) -> torch.Tensor | None:
        """Return what layers above the first take beside the layer below: the parameters of x, or None."""
        return x[..., self.config.input_size:] if self.config.cond_every_layer else None

    def gru_layers(self) -> list[GRUWeights]:
        """Return each GRU layer's (weight_ih, weight_hh, bias_ih, bias_hh), gates r, z, n as in nn.GRU.

        Layer 0's inputs are the projection's outputs; a higher layer's are the layer below's outputs followed,
        with cond_every_layer, by the parameters (weight_ih (3H, H + P)).
        """
        modules = [(gru, 0) for gru in self.gru] if self.config.cond_every_layer else [
            (self.gru, k) for k in range(self.config.num_layers)]
        return [tuple(getattr(gru, f"{name}_l{k}") for name in ("weight_ih", "weight_hh", "bias_ih", "bias_hh"))
                for gru, k in modules]

    def _layer_by_layer(self, x: torch.Tensor, hidden: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        cond = self.layer_condition(x)
        layer_input, states = self.input_proj(x), []
        for k, gru in enumerate(self.gru):
            if k:
                layer_input = torch.cat([F.dropout(layer_input, self.layer_dropout, self.training), cond], dim=-1)
            layer_input, state = gru(layer_input, hidden[k:k + 1])
            states.append(state[0])
        return layer_input, torch.stack(states)

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
