"""nn.GRU's arithmetic for training on CPU, with a backward that leaves to the time loop only what is sequential.

PyTorch's CPU GRU runs each step's cell under autograd: its backward replays a dozen small operations per step
and multiplies out the weight gradients step by step. Here the forward keeps every gate in buffers shaped
(T, B, ...); the backward turns them into per-step factors a chunk of steps at a time, walks back through the
chunk with three operations a step, and forms the weight gradients with one matrix product per chunk.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

# The backward's working buffers are sized to about this many bytes. glibc returns blocks over 32 MB to the kernel
# when freed, and each fresh page then faults on first touch; small buffers are reused and stay in cache.
_CHUNK_BYTES = 8 << 20


class GRULayer(torch.autograd.Function):
    """One GRU layer over a time-major sequence, gates r, z, n in PyTorch's order."""

    @staticmethod
    def forward(ctx, x: torch.Tensor, h0: torch.Tensor, w_ih: torch.Tensor, w_hh: torch.Tensor,
                b_ih: torch.Tensor, b_hh: torch.Tensor) -> torch.Tensor:
        """Return the outputs (T, B, H) for inputs x (T, B, I) from the hidden state h0 (B, H)."""
        steps, batch, _ = x.shape
        size = h0.shape[-1]
        rows = x.reshape(steps * batch, -1)
        # rz and n start as the input's share of the pre-activations and become the gates in place. r and z see
        # the sum of both biases; n's recurrent bias sits inside r * (W_hn h + b_hn), which hn keeps.
        rz = torch.addmm(b_ih[:2 * size] + b_hh[:2 * size], rows, w_ih[:2 * size].t()).view(steps, batch, -1)
        n = torch.addmm(b_ih[2 * size:], rows, w_ih[2 * size:].t()).view(steps, batch, size)
        hn = torch.empty_like(n)
        out = torch.empty_like(n)
        w_rz, w_n, b_n = w_hh[:2 * size].t(), w_hh[2 * size:].t(), b_hh[2 * size:]
        h = h0
        for rz_t, n_t, hn_t, out_t in zip(rz, n, hn, out):
            rz_t.addmm_(h, w_rz).sigmoid_()
            torch.addmm(b_n, h, w_n, out=hn_t)
            n_t.addcmul_(rz_t[:, :size], hn_t).tanh_()
            h = torch.lerp(n_t, h, rz_t[:, size:], out=out_t)
        ctx.save_for_backward(x, h0, w_ih, w_hh, rz, n, hn, out)
        return out

    @staticmethod
    def backward(ctx, d_out: torch.Tensor) -> tuple[torch.Tensor | None, ...]:
        x, h0, w_ih, w_hh, rz, n, hn, out = ctx.saved_tensors
        steps, batch, size = out.shape
        h_prev = torch.cat([h0[None], out[:-1]])
        sums = _GradientSums(x, w_ih, w_hh, ctx.needs_input_grad[0])
        chunk = max(1, min(steps, _CHUNK_BYTES // (batch * 4 * size * x.element_size())))
        gate_buffer = x.new_empty(chunk, batch, 4, size)
        d_h = x.new_empty(chunk + 1, batch, size)
        d_h[0] = d_out[-1]  # row 0 hands the gradient reaching a chunk's first step to the chunk before it
        for start in reversed(range(0, steps, chunk)):
            stop = min(start + chunk, steps)
            gates = gate_buffer[:stop - start]
            _unit_gate_gradients(gates, rz[start:stop], n[start:stop], hn[start:stop], h_prev[start:stop])
            d_h[stop - start] = d_h[0]
            _walk_back(gates, d_h, d_out, rz[..., size:], w_hh, start)
            sums.add(gates, x[start:stop], h_prev[start:stop], w_ih, start)
        return sums.d_x, d_h[0], sums.d_w_ih, sums.d_w_hh, sums.d_b_ih(), sums.d_b_hh


def _unit_gate_gradients(gates: torch.Tensor, rz: torch.Tensor, n: torch.Tensor, hn: torch.Tensor,
                         h_prev: torch.Tensor) -> None:
    """Fill gates (T, B, 4, H) with d h / d pre-activation of r, z, W_hn h + b_hn and W_in x + b_in.

    h = n + z (h_prev - n) with n = tanh(W_in x + b_in + r (W_hn h_prev + b_hn)).
    """
    size = n.shape[-1]
    r, z = rz[..., :size], rz[..., size:]
    d_r, d_z, d_hn, d_in = gates.unbind(2)
    one = n.new_ones(())
    torch.addcmul(one, n, n, value=-1, out=d_in)
    torch.sub(one, z, out=d_hn)
    torch.sub(h_prev, n, out=d_z).mul_(z).mul_(d_hn)
    d_in.mul_(d_hn)
    torch.mul(d_in, r, out=d_hn)
    torch.mul(d_hn, hn, out=d_r)
    d_r.addcmul_(d_r, r, value=-1)


def _walk_back(gates: torch.Tensor, d_h: torch.Tensor, d_out: torch.Tensor, z: torch.Tensor, w_hh: torch.Tensor,
               start: int) -> None:
    """Turn the unit gate gradients (C, B, 4, H) of steps start.. into gate gradients, from the chunk's last step back.

    Row i of d_h is the whole gradient reaching h at step start - 1 + i: row C is given, rows C - 1 .. 0 are filled.
    """
    batch, _, size = gates.shape[1:]
    for i in range(len(gates), 0, -1):
        t = start + i - 1
        gates[i - 1].mul_(d_h[i, :, None])
        # h at step t - 1 reaches the loss through its own output, through z's mix and through step t's gates.
        if t:
            torch.addcmul(d_out[t - 1], d_h[i], z[t], out=d_h[i - 1])
        else:
            torch.mul(d_h[i], z[t], out=d_h[i - 1])
        d_h[i - 1].addmm_(gates[i - 1, :, :3].reshape(batch, 3 * size), w_hh)


class _GradientSums:
    """The layer's gradients for inputs, weights and biases, added up a chunk of steps at a time."""

    def __init__(self, x: torch.Tensor, w_ih: torch.Tensor, w_hh: torch.Tensor, input_needs_grad: bool) -> None:
        self.d_x = torch.empty_like(x) if input_needs_grad else None
        self.d_w_ih, self.d_w_hh = torch.zeros_like(w_ih), torch.zeros_like(w_hh)
        self.d_b_hh, self.d_b_in = w_hh.new_zeros(w_hh.shape[0]), w_hh.new_zeros(w_hh.shape[1])

    def add(self, gates: torch.Tensor, x: torch.Tensor, h_prev: torch.Tensor, w_ih: torch.Tensor, start: int) -> None:
        """Add the sums over the steps start.. of `gates`, the gradients (C, B, 4, H) of the pre-activations."""
        steps, batch, _, size = gates.shape
        rows = gates.view(steps * batch, 4, size)
        d_gh, d_rz, d_in = rows[:, :3].reshape(-1, 3 * size), rows[:, :2].reshape(-1, 2 * size), rows[:, 3]
        x_rows = x.reshape(steps * batch, -1)
        self.d_w_hh.addmm_(d_gh.t(), h_prev.reshape(steps * batch, size))
        self.d_b_hh += d_gh.sum(0)
        self.d_w_ih[:2 * size].addmm_(d_rz.t(), x_rows)
        self.d_w_ih[2 * size:].addmm_(d_in.t(), x_rows)
        self.d_b_in += d_in.sum(0)
        if self.d_x is not None:
            d_x = self.d_x[start:start + steps].view(steps * batch, -1)
            torch.mm(d_rz, w_ih[:2 * size], out=d_x).addmm_(d_in, w_ih[2 * size:])

    def d_b_ih(self) -> torch.Tensor:
        """Return the input bias's gradient: r and z share theirs with the recurrent bias, as both add alike."""
        size = self.d_b_in.shape[0]
        return torch.cat([self.d_b_hh[:2 * size], self.d_b_in])


def projected_gru_forward(projection: nn.Linear, layers: list[tuple[torch.Tensor, ...]], cond: torch.Tensor | None,
                          x: torch.Tensor, hidden: torch.Tensor,
                          dropout: float) -> tuple[torch.Tensor, torch.Tensor]:
    """Return (outputs (B, T, H), hidden (L, B, H)) of GRU layers over projection(x), as nn.GRU computes them.

    `layers` holds each layer's (weight_ih, weight_hh, bias_ih, bias_hh); `cond` (B, T, P), where given, follows the
    layer below's output in the inputs of every layer above the first; `dropout` acts between layers.
    """
    layer_input = x.transpose(0, 1).contiguous()
    cond = None if cond is None else cond.transpose(0, 1)
    last_states = []
    for k, (w_ih, w_hh, b_ih, b_hh) in enumerate(layers):
        if k == 0:
            # The projection is linear and feeds only layer 0, so it folds into that layer's input weights: the
            # layer's whole-sequence matrix products then run over the few raw inputs instead of H features.
            w_ih, b_ih = w_ih @ projection.weight, torch.addmv(b_ih, w_ih, projection.bias)
        else:
            # Where nn.GRU drops out: between layers, on the sequence only, never on the returned hidden state.
            layer_input = F.dropout(layer_input, dropout, dropout > 0)
            if cond is not None:
                layer_input = torch.cat([layer_input, cond], dim=-1)
        layer_input = GRULayer.apply(layer_input, hidden[k], w_ih, w_hh, b_ih, b_hh)
        last_states.append(layer_input[-1])
    return layer_input.transpose(0, 1), torch.stack(last_states)
