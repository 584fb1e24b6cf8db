"""The RVC prior ("text") encoder: content features + coarse pitch -> prior mean/log-std.

A port of the reference `TextEncoder`, `attentions.Encoder`, `MultiHeadAttention` (relative
position attention, window 10) and `FFN` (RVC-Project WebUI `infer/module/models.py` and
`infer/module/attentions.py`). Parameter names match the reference state dict so that
checkpoints load without renaming. Inference only: no dropout.
"""

from __future__ import annotations

import math

import torch
from torch import nn
from torch.nn import functional as F

LRELU_SLOPE = 0.1


class ChannelLayerNorm(nn.Module):
    """Layer norm over the channel axis of a [batch, channels, time] tensor."""

    def __init__(self, channels: int, eps: float = 1e-5) -> None:
        super().__init__()
        self.channels = channels
        self.eps = eps
        self.gamma = nn.Parameter(torch.ones(channels))
        self.beta = nn.Parameter(torch.zeros(channels))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = F.layer_norm(x.transpose(1, -1), (self.channels,), self.gamma, self.beta, self.eps)
        return x.transpose(1, -1)


class RelativeSelfAttention(nn.Module):
    """Multi-head self-attention with learned relative-position keys and values.

    Relative offsets beyond +-`window` frames have no embedding (they contribute zero), as
    in the reference; the band of 2*window+1 offsets is computed directly instead of the
    reference's pad-and-reshape over all 2*T-1 offsets, which gives the same sums.
    """

    def __init__(self, channels: int, n_heads: int, window: int = 10) -> None:
        super().__init__()
        if channels % n_heads:
            raise ValueError(f"hidden channels {channels} not divisible by {n_heads} heads")
        self.n_heads = n_heads
        self.k_channels = channels // n_heads
        self.window = window
        self.conv_q = nn.Conv1d(channels, channels, 1)
        self.conv_k = nn.Conv1d(channels, channels, 1)
        self.conv_v = nn.Conv1d(channels, channels, 1)
        self.conv_o = nn.Conv1d(channels, channels, 1)
        self.emb_rel_k = nn.Parameter(torch.zeros(1, 2 * window + 1, self.k_channels))
        self.emb_rel_v = nn.Parameter(torch.zeros(1, 2 * window + 1, self.k_channels))

    def _band(self, length: int, device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
        """Column of each (row, offset slot) [length, 2*window+1], clamped into the sequence,
        and a 0/1 weight that is 1 where the unclamped column lies inside it.

        Fixed shapes only, no boolean-mask indexing: the band needs no host sync and can
        be captured in a CUDA graph.
        """
        rows = torch.arange(length, device=device)[:, None]
        cols = rows + torch.arange(-self.window, self.window + 1, device=device)[None, :]
        inside = (cols >= 0) & (cols < length)
        return cols.clamp(0, length - 1), inside

    def forward(self, x: torch.Tensor, attn_mask: torch.Tensor) -> torch.Tensor:
        b, d, t = x.shape
        h, kc = self.n_heads, self.k_channels
        q = self.conv_q(x).view(b, h, kc, t).transpose(2, 3)
        k = self.conv_k(x).view(b, h, kc, t).transpose(2, 3)
        v = self.conv_v(x).view(b, h, kc, t).transpose(2, 3)
        q = q / math.sqrt(kc)
        scores = torch.matmul(q, k.transpose(-2, -1))
        cols, inside = self._band(t, x.device)
        cols = cols.expand(b, h, t, cols.shape[-1])
        rel_logits = torch.matmul(q, self.emb_rel_k.unsqueeze(0).transpose(-2, -1))
        # Out-of-sequence slots are clamped onto an edge column and add an exact zero.
        local = torch.zeros_like(scores).scatter_add_(-1, cols, rel_logits.masked_fill(~inside, 0))
        scores = scores + local
        scores = scores.masked_fill(attn_mask == 0, -1e4)
        p_attn = F.softmax(scores, dim=-1)
        out = torch.matmul(p_attn, v)
        rel_weights = torch.gather(p_attn, -1, cols).masked_fill(~inside, 0)
        out = out + torch.matmul(rel_weights, self.emb_rel_v.unsqueeze(0))
        out = out.transpose(2, 3).contiguous().view(b, d, t)
        return self.conv_o(out)


class FeedForward(nn.Module):
    """Two 'same'-padded convolutions with ReLU between, masked (reference `FFN`)."""

    def __init__(self, channels: int, filter_channels: int, kernel_size: int) -> None:
        super().__init__()
        self.pad = ((kernel_size - 1) // 2, kernel_size // 2)
        self.conv_1 = nn.Conv1d(channels, filter_channels, kernel_size)
        self.conv_2 = nn.Conv1d(filter_channels, channels, kernel_size)

    def forward(self, x: torch.Tensor, x_mask: torch.Tensor) -> torch.Tensor:
        x = torch.relu(self.conv_1(F.pad(x * x_mask, self.pad)))
        x = self.conv_2(F.pad(x * x_mask, self.pad))
        return x * x_mask


class AttentionEncoder(nn.Module):
    """Post-norm transformer stack (reference `attentions.Encoder`)."""

    def __init__(
        self, channels: int, filter_channels: int, n_heads: int, n_layers: int, kernel_size: int
    ) -> None:
        super().__init__()
        self.attn_layers = nn.ModuleList(RelativeSelfAttention(channels, n_heads) for _ in range(n_layers))
        self.norm_layers_1 = nn.ModuleList(ChannelLayerNorm(channels) for _ in range(n_layers))
        self.ffn_layers = nn.ModuleList(
            FeedForward(channels, filter_channels, kernel_size) for _ in range(n_layers)
        )
        self.norm_layers_2 = nn.ModuleList(ChannelLayerNorm(channels) for _ in range(n_layers))

    def forward(self, x: torch.Tensor, x_mask: torch.Tensor) -> torch.Tensor:
        attn_mask = x_mask.unsqueeze(2) * x_mask.unsqueeze(-1)
        x = x * x_mask
        for attn, norm1, ffn, norm2 in zip(
            self.attn_layers,
            self.norm_layers_1,
            self.ffn_layers,
            self.norm_layers_2,
            strict=True,
        ):
            x = norm1(x + attn(x, attn_mask))
            x = norm2(x + ffn(x, x_mask))
        return x * x_mask


class TextEncoder(nn.Module):
    """Content features [b, frames, phone_dim] (+ coarse pitch 1..255) -> (m, logs, mask).

    `skip_head` (frames) drops the first frames after the attention stack, as the
    reference does for streaming.
    """

    def __init__(
        self,
        phone_dim: int,
        out_channels: int,
        hidden_channels: int,
        filter_channels: int,
        n_heads: int,
        n_layers: int,
        kernel_size: int,
        f0: bool,
    ) -> None:
        super().__init__()
        self.out_channels = out_channels
        self.hidden_channels = hidden_channels
        self.emb_phone = nn.Linear(phone_dim, hidden_channels)
        self.emb_pitch = nn.Embedding(256, hidden_channels) if f0 else None
        self.encoder = AttentionEncoder(hidden_channels, filter_channels, n_heads, n_layers, kernel_size)
        self.proj = nn.Conv1d(hidden_channels, out_channels * 2, 1)

    def forward(
        self,
        phone: torch.Tensor,
        pitch: torch.Tensor | None,
        lengths: torch.Tensor,
        skip_head: int = 0,
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        x = self.emb_phone(phone)
        if self.emb_pitch is not None:
            if pitch is None:
                raise ValueError("this model needs coarse pitch (it was trained with f0)")
            x = x + self.emb_pitch(pitch)
        x = F.leaky_relu(x * math.sqrt(self.hidden_channels), LRELU_SLOPE)
        x = x.transpose(1, -1)
        frames = torch.arange(x.size(2), device=x.device)
        x_mask = (frames[None, :] < lengths[:, None]).unsqueeze(1).to(x.dtype)
        x = self.encoder(x * x_mask, x_mask)
        if skip_head:
            x = x[:, :, skip_head:]
            x_mask = x_mask[:, :, skip_head:]
        stats = self.proj(x) * x_mask
        m, logs = torch.split(stats, self.out_channels, dim=1)
        return m, logs, x_mask
