"""HuBERT / ContentVec content encoder: 16 kHz audio -> content features at 50 frames/s.

The HuBERT base architecture (convolutional feature extractor with group norm, feature
projection, convolutional relative position embedding, post-norm transformer) as both
the Hugging Face `HubertModel` and fairseq's `HubertModel` compute it. RVC uses
`final_proj(layer 9)` for v1 models (256-d) and the last layer for v2 models (768-d)
(RVC-Project WebUI `infer/hubert.py`). Written in plain torch so that neither fairseq nor
transformers is needed; `content_loader` maps both checkpoint layouts onto it.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import torch
from torch import nn
from torch.nn import functional as F

SAMPLE_RATE = 16000
"""Input sample rate of every content encoder, Hz."""


@dataclass(frozen=True)
class ContentEncoderConfig:
    """Shape of a HuBERT-base-like network (defaults: the real `hubert_base.pt`)."""

    hidden_size: int = 768
    num_layers: int = 12
    num_heads: int = 12
    intermediate_size: int = 3072
    conv_layers: tuple[tuple[int, int, int], ...] = field(
        default=((512, 10, 5),) + ((512, 3, 2),) * 4 + ((512, 2, 2),) * 2
    )
    conv_bias: bool = False
    pos_conv_kernel: int = 128
    pos_conv_groups: int = 16
    final_dim: int = 256
    """Width of final_proj (v1 features); 0 when the checkpoint has none."""
    normalize_input: bool = False
    layer_norm_eps: float = 1e-5


def _per_channel_norm(norm: nn.GroupNorm, x: torch.Tensor) -> torch.Tensor:
    """`norm` (one group per channel: each channel normalised over time) applied to
    [batch, channels, time] in whatever memory layout `x` has. F.group_norm needs a
    contiguous input: on the channels-last output of a rewritten convolution that is a
    copy in and a copy out, 4 ms of the content encoder's 27 per block in bf16. The
    per-channel scale and shift are computed in float32."""
    # Two passes of float32 sums over time, taken as [batch, time, channels] (the
    # layout a channels-last x has in memory): torch's var_mean over a strided or bf16
    # axis is a serial loop (3.5 ms here), these are vectorised (under 1 ms).
    rows = x.transpose(1, 2)
    mean = torch.sum(rows, dim=1, keepdim=True, dtype=torch.float32) / rows.shape[1]
    var = torch.sum(torch.square(rows - mean), dim=1, keepdim=True) / rows.shape[1]
    var, mean = var.transpose(1, 2), mean.transpose(1, 2)
    scale = norm.weight.float()[:, None] * torch.rsqrt(var + norm.eps)
    shift = norm.bias.float()[:, None] - mean * scale
    return torch.addcmul(shift.to(x.dtype), x, scale.to(x.dtype))


class FeatureExtractor(nn.Module):
    """Strided convolutions over the waveform; group norm on the first layer only."""

    def __init__(self, cfg: ContentEncoderConfig) -> None:
        super().__init__()
        self.convs = nn.ModuleList()
        in_ch = 1
        for out_ch, kernel, stride in cfg.conv_layers:
            self.convs.append(nn.Conv1d(in_ch, out_ch, kernel, stride, bias=cfg.conv_bias))
            in_ch = out_ch
        first = cfg.conv_layers[0][0]
        self.group_norm = nn.GroupNorm(first, first, affine=True)

    def forward(self, wav: torch.Tensor) -> torch.Tensor:
        x = wav.unsqueeze(1)
        for i, conv in enumerate(self.convs):
            x = conv(x)
            if i == 0:
                x = _per_channel_norm(self.group_norm, x)
            x = F.gelu(x)
        return x


class TransformerLayer(nn.Module):
    """Post-norm self-attention + feed-forward layer."""

    def __init__(self, cfg: ContentEncoderConfig) -> None:
        super().__init__()
        h = cfg.hidden_size
        self.num_heads = cfg.num_heads
        self.q_proj = nn.Linear(h, h)
        self.k_proj = nn.Linear(h, h)
        self.v_proj = nn.Linear(h, h)
        self.out_proj = nn.Linear(h, h)
        self.attn_norm = nn.LayerNorm(h, eps=cfg.layer_norm_eps)
        self.fc1 = nn.Linear(h, cfg.intermediate_size)
        self.fc2 = nn.Linear(cfg.intermediate_size, h)
        self.final_norm = nn.LayerNorm(h, eps=cfg.layer_norm_eps)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, t, h = x.shape
        heads = self.num_heads
        hd = h // heads
        q = (self.q_proj(x) * (hd**-0.5)).view(b, t, heads, hd).transpose(1, 2)
        k = self.k_proj(x).view(b, t, heads, hd).transpose(1, 2)
        v = self.v_proj(x).view(b, t, heads, hd).transpose(1, 2)
        attn = torch.softmax(q @ k.transpose(-2, -1), dim=-1)
        y = (attn @ v).transpose(1, 2).reshape(b, t, h)
        x = self.attn_norm(x + self.out_proj(y))
        x = x + self.fc2(F.gelu(self.fc1(x)))
        return self.final_norm(x)


class ContentEncoder(nn.Module):
    """16 kHz mono [batch, samples] -> hidden states of any transformer layer."""

    def __init__(self, cfg: ContentEncoderConfig) -> None:
        super().__init__()
        if cfg.hidden_size % cfg.num_heads:
            raise ValueError(f"hidden size {cfg.hidden_size} not divisible by {cfg.num_heads} heads")
        self.cfg = cfg
        conv_out = cfg.conv_layers[-1][0]
        self.feature_extractor = FeatureExtractor(cfg)
        self.feature_norm = nn.LayerNorm(conv_out, eps=cfg.layer_norm_eps)
        self.feature_proj = nn.Linear(conv_out, cfg.hidden_size)
        self.pos_conv = nn.Conv1d(
            cfg.hidden_size,
            cfg.hidden_size,
            cfg.pos_conv_kernel,
            padding=cfg.pos_conv_kernel // 2,
            groups=cfg.pos_conv_groups,
        )
        self.encoder_norm = nn.LayerNorm(cfg.hidden_size, eps=cfg.layer_norm_eps)
        self.layers = nn.ModuleList(TransformerLayer(cfg) for _ in range(cfg.num_layers))
        self.final_proj = nn.Linear(cfg.hidden_size, cfg.final_dim) if cfg.final_dim else None

    @property
    def hop(self) -> int:
        """Input samples per output frame (320 for HuBERT base: 20 ms at 16 kHz)."""
        return math.prod(s for _, _, s in self.cfg.conv_layers)

    def hidden_state(self, wav: torch.Tensor, layer: int) -> torch.Tensor:
        """Output of transformer layer `layer` (1-based), [batch, frames, hidden]."""
        if not 1 <= layer <= len(self.layers):
            raise ValueError(f"layer {layer} outside 1..{len(self.layers)}")
        if self.cfg.normalize_input:
            wav = F.layer_norm(wav, wav.shape[-1:])
        x = self.feature_extractor(wav).transpose(1, 2)
        x = self.feature_proj(self.feature_norm(x))
        pos = self.pos_conv(x.transpose(1, 2))
        if self.cfg.pos_conv_kernel % 2 == 0:
            pos = pos[:, :, :-1]
        x = self.encoder_norm(x + F.gelu(pos).transpose(1, 2))
        for block in self.layers[:layer]:
            x = block(x)
        return x

    def features(self, wav: torch.Tensor, version: str) -> torch.Tensor:
        """RVC content features: v1 = final_proj(layer 9), v2 = last layer."""
        if version == "v1":
            if self.final_proj is None:
                raise ValueError("this content encoder has no final_proj, needed by v1 models")
            return self.final_proj(self.hidden_state(wav, 9))
        if version == "v2":
            return self.hidden_state(wav, len(self.layers))
        raise ValueError(f"unknown RVC version {version!r} (expected 'v1' or 'v2')")

    def mismatch(self, version: str, phone_dim: int) -> str | None:
        """Why this encoder cannot feed a `version` model taking `phone_dim`-d features,
        in words a user can act on; None when it can."""
        if version == "v1" and self.final_proj is None:
            return f"this content encoder has no final_proj (v1 models take its {phone_dim}-d output)"
        if version == "v1" and len(self.layers) < 9:
            return f"this content encoder has {len(self.layers)} layers; v1 models need layer 9"
        dim = self.feature_dim(version)
        if dim != phone_dim:
            return f"this content encoder gives {dim}-d {version} features; the model takes {phone_dim}-d"
        return None

    def feature_dim(self, version: str) -> int:
        """Feature width for a model version: final_dim for v1, hidden size for v2; 0 when
        this encoder cannot serve the version (v1 needs 9 layers and final_proj)."""
        if version == "v1":
            return self.cfg.final_dim if len(self.layers) >= 9 else 0
        return self.cfg.hidden_size
