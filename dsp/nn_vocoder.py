"""The RVC HiFi-GAN vocoder, with the neural-source-filter excitation for f0 models.

A port of the reference `Generator`, `GeneratorNSF`, `SourceModuleHnNSF`, `SineGen`,
`ResBlock1` and `ResBlock2` (RVC-Project WebUI `infer/module/models.py`,
`infer/module/modules.py`). Weight norm is folded at load time. The random draws of the
sine source (initial phase with `rand`, then additive noise with `randn_like`) happen in
the reference's order, so a seeded run reproduces the reference output.
"""

from __future__ import annotations

import math

import torch
from torch import nn
from torch.nn import functional as F

LRELU_SLOPE = 0.1


def _dtype(module: nn.Module) -> torch.dtype:
    return next(module.parameters()).dtype


def _activate(x: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
    """leaky_relu(x) in `dtype`: cast first, then in place on the copy, which moves the
    fewest bytes when the residual stream is wider than the convolutions."""
    if x.dtype == dtype:
        return F.leaky_relu(x, LRELU_SLOPE)
    return F.leaky_relu_(x.to(dtype), LRELU_SLOPE)


def _padding(kernel_size: int, dilation: int = 1) -> int:
    return (kernel_size * dilation - dilation) // 2


class ResBlock1(nn.Module):
    """Three dilated conv pairs with residual connections (HiFi-GAN resblock type "1")."""

    def __init__(self, channels: int, kernel_size: int, dilation: list[int]) -> None:
        super().__init__()
        self.convs1 = nn.ModuleList(
            nn.Conv1d(channels, channels, kernel_size, 1, dilation=d, padding=_padding(kernel_size, d))
            for d in dilation
        )
        self.convs2 = nn.ModuleList(
            nn.Conv1d(channels, channels, kernel_size, 1, dilation=1, padding=_padding(kernel_size))
            for _ in dilation
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        dtype = _dtype(self.convs1[0])
        for i, (c1, c2) in enumerate(zip(self.convs1, self.convs2, strict=True)):
            xt = c2(F.leaky_relu_(c1(_activate(x, dtype)), LRELU_SLOPE))
            # Residual adds in x's dtype (float32 in every precision); in place after
            # the first, which must not touch the caller's tensor.
            x = x + xt if i == 0 else x.add_(xt)
        return x


class ResBlock2(nn.Module):
    """Dilated convs with residual connections (HiFi-GAN resblock type "2")."""

    def __init__(self, channels: int, kernel_size: int, dilation: list[int]) -> None:
        super().__init__()
        self.convs = nn.ModuleList(
            nn.Conv1d(channels, channels, kernel_size, 1, dilation=d, padding=_padding(kernel_size, d))
            for d in dilation
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        dtype = _dtype(self.convs[0])
        for i, c in enumerate(self.convs):
            xt = c(_activate(x, dtype))
            x = x + xt if i == 0 else x.add_(xt)
        return x


class SineSource(nn.Module):
    """Harmonic-plus-noise excitation from frame f0 (Hz) at the output sample rate.

    `SourceModuleHnNSF` with one harmonic: a sine following f0 where voiced (f0 > 0),
    Gaussian noise elsewhere, merged by a 1x1 linear layer and tanh.
    """

    def __init__(self, sample_rate: int, sine_amp: float = 0.1, noise_std: float = 0.003) -> None:
        super().__init__()
        self.sample_rate = sample_rate
        self.sine_amp = sine_amp
        self.noise_std = noise_std
        self.l_linear = nn.Linear(1, 1)

    def forward(self, f0: torch.Tensor, upp: int) -> torch.Tensor:
        """f0: [batch, frames] Hz -> excitation [batch, 1, frames * upp]."""
        f0 = f0.unsqueeze(-1).float()
        rad = (f0 / self.sample_rate) % 1
        initial_phase = torch.rand(f0.shape[0], f0.shape[2], device=f0.device)
        initial_phase[:, 0] = 0
        rad[:, 0, :] = rad[:, 0, :] + initial_phase
        # Phase wraps are located on the frame-rate cumulative phase, interpolated to
        # samples, and subtracted from the sample-rate cumulative sum (as the reference).
        phase = torch.cumsum(rad, 1) * upp
        phase = F.interpolate(
            phase.transpose(2, 1), scale_factor=float(upp), mode="linear", align_corners=True
        ).transpose(2, 1)
        rad = F.interpolate(rad.transpose(2, 1), scale_factor=float(upp), mode="nearest")
        rad = rad.transpose(2, 1)
        phase = phase % 1
        wraps = (phase[:, 1:, :] - phase[:, :-1, :]) < 0
        shift = torch.zeros_like(rad)
        shift[:, 1:, :] = wraps * -1.0
        sine = torch.sin(torch.cumsum(rad + shift, dim=1) * 2 * torch.pi) * self.sine_amp
        uv = (f0 > 0).to(f0.dtype)
        uv = F.interpolate(uv.transpose(2, 1), scale_factor=float(upp), mode="nearest")
        uv = uv.transpose(2, 1)
        noise_amp = uv * self.noise_std + (1 - uv) * self.sine_amp / 3
        noise = noise_amp * torch.randn_like(sine)
        sine = sine * uv + noise
        sine = sine.to(self.l_linear.weight.dtype)
        return torch.tanh(self.l_linear(sine)).transpose(1, 2)


class Vocoder(nn.Module):
    """Latent [b, inter, frames] -> waveform [b, 1, frames * prod(upsample_rates)].

    With `sample_rate` set it is the NSF generator (`GeneratorNSF`) and needs frame f0;
    without, the plain generator of the no-f0 models.
    """

    fp32_parts = ("m_source", "noise_convs", "conv_post")
    """Submodules that stay float32 when the network runs in a lower precision
    (`conv_layout.prepare`); the residual stream between the convolutions stays
    float32 too. Measured on the full-size test model, bf16 against fp32 (harvest f0
    in, so only the content encoder and synthesizer differ; median f0 difference,
    log-mel distance): everything in bf16 3.7 cents, 1.49 dB; the vocoder alone in
    fp32 1.2 cents, 0.26 dB; these parts and the residual stream in fp32 1.3 cents,
    0.29 dB, at no measurable cost (the convolutions, 99 % of the work, stay bf16)."""

    def __init__(
        self,
        initial_channel: int,
        resblock: str,
        resblock_kernel_sizes: list[int],
        resblock_dilation_sizes: list[list[int]],
        upsample_rates: list[int],
        upsample_initial_channel: int,
        upsample_kernel_sizes: list[int],
        gin_channels: int,
        sample_rate: int | None,
    ) -> None:
        super().__init__()
        self.num_kernels = len(resblock_kernel_sizes)
        self.upp = math.prod(upsample_rates)
        self.conv_pre = nn.Conv1d(initial_channel, upsample_initial_channel, 7, 1, padding=3)
        block = ResBlock1 if str(resblock) == "1" else ResBlock2
        self.m_source = SineSource(sample_rate) if sample_rate else None
        self.noise_convs = nn.ModuleList() if sample_rate else None
        self.ups = nn.ModuleList()
        self.resblocks = nn.ModuleList()
        ch = upsample_initial_channel
        for i, (u, k) in enumerate(zip(upsample_rates, upsample_kernel_sizes, strict=True)):
            ch = upsample_initial_channel // (2 ** (i + 1))
            in_ch = upsample_initial_channel // (2**i)
            self.ups.append(nn.ConvTranspose1d(in_ch, ch, k, u, padding=(k - u) // 2))
            if self.noise_convs is not None:
                if i + 1 < len(upsample_rates):
                    stride = math.prod(upsample_rates[i + 1 :])
                    conv = nn.Conv1d(1, ch, stride * 2, stride=stride, padding=stride // 2)
                else:
                    conv = nn.Conv1d(1, ch, kernel_size=1)
                self.noise_convs.append(conv)
            for k_res, d_res in zip(resblock_kernel_sizes, resblock_dilation_sizes, strict=True):
                self.resblocks.append(block(ch, k_res, d_res))
        self.conv_post = nn.Conv1d(ch, 1, 7, 1, padding=3, bias=False)
        self.cond = nn.Conv1d(gin_channels, upsample_initial_channel, 1) if gin_channels else None

    def forward(
        self,
        x: torch.Tensor,
        f0: torch.Tensor | None,
        g: torch.Tensor | None,
        n_res: int | None = None,
    ) -> torch.Tensor:
        source = None
        if self.m_source is not None:
            if f0 is None:
                raise ValueError("this vocoder needs frame f0 (the model was trained with f0)")
            source = self.m_source(f0, self.upp)
        if n_res is not None:
            if source is not None and n_res * self.upp != source.shape[-1]:
                source = F.interpolate(source, size=n_res * self.upp, mode="linear")
            if n_res != x.shape[-1]:
                x = F.interpolate(x, size=n_res, mode="linear")
        x = self.conv_pre(x)
        if g is not None and self.cond is not None:
            x = x + self.cond(g)
        for i, up in enumerate(self.ups):
            # The residual stream between the convolutions stays float32 in every
            # precision (see `fp32_parts`); the convolutions compute in theirs.
            x = up(_activate(x, _dtype(up))).float()
            if source is not None and self.noise_convs is not None:
                x.add_(self.noise_convs[i](source))
            blocks = self.resblocks[i * self.num_kernels : (i + 1) * self.num_kernels]
            xs = blocks[0](x)
            for block in blocks[1:]:
                xs.add_(block(x))
            x = xs.div_(self.num_kernels)
        return torch.tanh(self.conv_post(F.leaky_relu(x)))
