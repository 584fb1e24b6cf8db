"""The RVC synthesizer: content features (+ pitch) + speaker -> waveform at the model rate.

A port of `SynthesizerTrnMs256NSFsid`, `SynthesizerTrnMs768NSFsid` and their `_nono`
(no-f0) variants' `infer` (RVC-Project WebUI `infer/module/models.py`). The network is
built from the checkpoint's 18 hyper-parameters; the posterior encoder, used only in
training, is not built.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from .nn_flow import CouplingFlow
from .nn_text_encoder import TextEncoder
from .nn_vocoder import Vocoder

PRIOR_NOISE_SCALE = 0.66666
"""Scale of the Gaussian noise added to the prior mean (reference value)."""
FLOW_CONTEXT_FRAMES = 24
"""Frames of context the flow keeps ahead of `skip_head` when streaming (reference value)."""


@dataclass(frozen=True)
class SynthConfig:
    """The reference constructor's hyper-parameters, in checkpoint `config` order."""

    spec_channels: int
    segment_size: int
    inter_channels: int
    hidden_channels: int
    filter_channels: int
    n_heads: int
    n_layers: int
    kernel_size: int
    p_dropout: float
    resblock: str
    resblock_kernel_sizes: list[int]
    resblock_dilation_sizes: list[list[int]]
    upsample_rates: list[int]
    upsample_initial_channel: int
    upsample_kernel_sizes: list[int]
    spk_embed_dim: int
    gin_channels: int
    sample_rate: int


@dataclass
class SynthOutput:
    """Waveform [1, 1, samples] in -1..1 and the intermediate tensors of one `infer`."""

    audio: torch.Tensor
    x_mask: torch.Tensor
    z: torch.Tensor
    z_p: torch.Tensor
    m_p: torch.Tensor
    logs_p: torch.Tensor


def _prior_sample(m_p: torch.Tensor, logs_p: torch.Tensor, x_mask: torch.Tensor) -> torch.Tensor:
    """The noisy prior sample. The noise is drawn in float32 as a contiguous tensor,
    element for element in the reference's order, whatever the memory layout of `m_p`
    (a channels-last view when the convolutions run channels-last) and whatever the
    precision: every precision sees the same draw for the same seed."""
    noise = torch.randn(m_p.shape, device=m_p.device).to(m_p.dtype)
    return (m_p + torch.exp(logs_p) * noise * PRIOR_NOISE_SCALE) * x_mask


class Synthesizer(nn.Module):
    """Prior encoder + reversed flow + vocoder (NSF when `f0`)."""

    def __init__(self, cfg: SynthConfig, phone_dim: int, f0: bool) -> None:
        super().__init__()
        self.cfg = cfg
        self.f0 = f0
        self.phone_dim = phone_dim
        self.enc_p = TextEncoder(
            phone_dim,
            cfg.inter_channels,
            cfg.hidden_channels,
            cfg.filter_channels,
            cfg.n_heads,
            cfg.n_layers,
            cfg.kernel_size,
            f0=f0,
        )
        self.dec = Vocoder(
            cfg.inter_channels,
            cfg.resblock,
            cfg.resblock_kernel_sizes,
            cfg.resblock_dilation_sizes,
            cfg.upsample_rates,
            cfg.upsample_initial_channel,
            cfg.upsample_kernel_sizes,
            cfg.gin_channels,
            sample_rate=cfg.sample_rate if f0 else None,
        )
        self.flow = CouplingFlow(cfg.inter_channels, cfg.hidden_channels, cfg.gin_channels)
        self.emb_g = nn.Embedding(cfg.spk_embed_dim, cfg.gin_channels)

    @property
    def hop(self) -> int:
        """Output samples per feature frame (the vocoder's total upsampling)."""
        return self.dec.upp

    def infer(
        self,
        phone: torch.Tensor,
        phone_lengths: torch.Tensor,
        pitch: torch.Tensor | None,
        pitchf: torch.Tensor | None,
        sid: torch.Tensor,
        skip_head: int | None = None,
        return_length: int | None = None,
        return_length2: int | None = None,
    ) -> SynthOutput:
        """Synthesize; with `skip_head`/`return_length` (frames) only the frames needed.

        phone [1, frames, phone_dim] at 100 frames/s; pitch [1, frames] coarse 1..255;
        pitchf [1, frames] Hz (0 = unvoiced); sid [1] speaker id.
        """
        if self.f0 and (pitch is None or pitchf is None):
            raise ValueError("this model was trained with f0: pitch and pitchf are required")
        g = self.emb_g(sid).unsqueeze(-1)
        coarse = pitch if self.f0 else None
        nsff0 = pitchf if self.f0 else None
        if skip_head is not None and return_length is not None:
            head, length = int(skip_head), int(return_length)
            flow_head = max(head - FLOW_CONTEXT_FRAMES, 0)
            dec_head = head - flow_head
            m_p, logs_p, x_mask = self.enc_p(phone, coarse, phone_lengths, flow_head)
            z_p = _prior_sample(m_p, logs_p, x_mask)
            z = self.flow.reverse(z_p, x_mask, g)
            z = z[:, :, dec_head : dec_head + length]
            x_mask = x_mask[:, :, dec_head : dec_head + length]
            if nsff0 is not None:
                nsff0 = nsff0[:, head : head + length]
        else:
            m_p, logs_p, x_mask = self.enc_p(phone, coarse, phone_lengths)
            z_p = _prior_sample(m_p, logs_p, x_mask)
            z = self.flow.reverse(z_p, x_mask, g)
        n_res = int(return_length2) if return_length2 is not None else None
        audio = self.dec(z * x_mask, nsff0, g, n_res=n_res)
        return SynthOutput(audio, x_mask, z, z_p, m_p, logs_p)
