"""The RVC normalising flow, run in reverse (prior sample -> latent for the vocoder).

A port of the reference `ResidualCouplingBlock`, `ResidualCouplingLayer` (mean-only) and
`WN` (RVC-Project WebUI `infer/module/models.py`, `infer/module/modules.py`). Weight norm
is folded into plain convolution weights at load time, so the modules here hold `weight`.
Parameter names match the reference state dict.
"""

from __future__ import annotations

import torch
from torch import nn


class WaveNet(nn.Module):
    """Gated dilated convolution stack conditioned on the speaker embedding (`WN`)."""

    def __init__(
        self,
        hidden_channels: int,
        kernel_size: int,
        dilation_rate: int,
        n_layers: int,
        gin_channels: int,
    ) -> None:
        super().__init__()
        self.hidden_channels = hidden_channels
        self.n_layers = n_layers
        self.cond_layer = nn.Conv1d(gin_channels, 2 * hidden_channels * n_layers, 1) if gin_channels else None
        self.in_layers = nn.ModuleList()
        self.res_skip_layers = nn.ModuleList()
        for i in range(n_layers):
            dilation = dilation_rate**i
            padding = (kernel_size * dilation - dilation) // 2
            self.in_layers.append(
                nn.Conv1d(
                    hidden_channels,
                    2 * hidden_channels,
                    kernel_size,
                    dilation=dilation,
                    padding=padding,
                )
            )
            res_skip = 2 * hidden_channels if i < n_layers - 1 else hidden_channels
            self.res_skip_layers.append(nn.Conv1d(hidden_channels, res_skip, 1))

    def forward(self, x: torch.Tensor, x_mask: torch.Tensor, g: torch.Tensor | None) -> torch.Tensor:
        hc = self.hidden_channels
        output = torch.zeros_like(x)
        cond = self.cond_layer(g) if (g is not None and self.cond_layer is not None) else None
        for i, (in_layer, res_skip_layer) in enumerate(
            zip(self.in_layers, self.res_skip_layers, strict=True)
        ):
            x_in = in_layer(x)
            if cond is not None:
                x_in = x_in + cond[:, i * 2 * hc : (i + 1) * 2 * hc, :]
            acts = torch.tanh(x_in[:, :hc, :]) * torch.sigmoid(x_in[:, hc:, :])
            res_skip = res_skip_layer(acts)
            if i < self.n_layers - 1:
                x = (x + res_skip[:, :hc, :]) * x_mask
                output = output + res_skip[:, hc:, :]
            else:
                output = output + res_skip
        return output * x_mask


class MeanOnlyCoupling(nn.Module):
    """Affine coupling with zero log-scale (`ResidualCouplingLayer(mean_only=True)`)."""

    def __init__(
        self,
        channels: int,
        hidden_channels: int,
        kernel_size: int,
        dilation_rate: int,
        n_layers: int,
        gin_channels: int,
    ) -> None:
        super().__init__()
        if channels % 2:
            raise ValueError(f"flow channels must be even, got {channels}")
        self.half_channels = channels // 2
        self.pre = nn.Conv1d(self.half_channels, hidden_channels, 1)
        self.enc = WaveNet(hidden_channels, kernel_size, dilation_rate, n_layers, gin_channels)
        self.post = nn.Conv1d(hidden_channels, self.half_channels, 1)

    def reverse(self, x: torch.Tensor, x_mask: torch.Tensor, g: torch.Tensor | None) -> torch.Tensor:
        x0, x1 = torch.split(x, [self.half_channels] * 2, 1)
        h = self.enc(self.pre(x0) * x_mask, x_mask, g)
        mean = self.post(h) * x_mask
        # exp(-logs) with logs == 0 is exactly 1: the reference multiplies by it.
        x1 = (x1 - mean) * x_mask
        return torch.cat([x0, x1], 1)


class ChannelFlip(nn.Module):
    """Reverses the channel order (`Flip`); it has no parameters."""

    def reverse(self, x: torch.Tensor, x_mask: torch.Tensor, g: torch.Tensor | None) -> torch.Tensor:
        return torch.flip(x, [1])


class CouplingFlow(nn.Module):
    """Four couplings interleaved with flips; only the reverse (sampling) direction."""

    def __init__(
        self,
        channels: int,
        hidden_channels: int,
        gin_channels: int,
        kernel_size: int = 5,
        dilation_rate: int = 1,
        n_layers: int = 3,
        n_flows: int = 4,
    ) -> None:
        super().__init__()
        self.flows = nn.ModuleList()
        for _ in range(n_flows):
            self.flows.append(
                MeanOnlyCoupling(
                    channels, hidden_channels, kernel_size, dilation_rate, n_layers, gin_channels
                )
            )
            self.flows.append(ChannelFlip())

    def reverse(self, x: torch.Tensor, x_mask: torch.Tensor, g: torch.Tensor | None) -> torch.Tensor:
        for flow in reversed(self.flows):
            x = flow.reverse(x, x_mask, g)
        return x
