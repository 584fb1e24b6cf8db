"""RMVPE pitch estimator: log-mel front end, the E2E U-Net + BiGRU, local-average decoder.

A port of the reference `E2E`, `DeepUnet`, `MelSpectrogram` and `RMVPE.decode`
(RVC-Project WebUI `infer/rmvpe.py`). The network's shape parameters (blocks per stage,
stages, intermediate layers, base channels, GRU layers and width) are read from the
tensor shapes of `rmvpe.pt`, so the real file (4 blocks, 1 GRU layer, 16 channels) and
smaller ones load alike. The mel filterbank is librosa's with the HTK mel scale.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

from .conv_layout import prepare
from .mel import mel_filterbank
from .pitch import HOP, SAMPLE_RATE, check_audio, fit_frames, n_frames, register
from .safe_load import ModelFileError, load_checkpoint

N_MELS = 128
N_FFT = 1024
MEL_FMIN = 30.0
MEL_FMAX = 8000.0
N_CLASSES = 360
THRESHOLD = 0.03
"""Salience below which a frame is unvoiced (the reference realtime value)."""
POOL = (2, 2)
"""Encoder pooling / decoder stride; not stored in the state dict, (2, 2) in every RMVPE."""
_CENTS = np.pad(20 * np.arange(N_CLASSES) + 1997.3794084376191, (4, 4))


class LogMel(nn.Module):
    """16 kHz audio [batch, samples] -> log-mel [batch, 128, samples//160 + 1]."""

    def __init__(self) -> None:
        super().__init__()
        basis = mel_filterbank(SAMPLE_RATE, N_FFT, N_MELS, MEL_FMIN, MEL_FMAX, htk=True)
        self.register_buffer("basis", torch.from_numpy(basis), persistent=False)
        self.register_buffer("window", torch.hann_window(N_FFT), persistent=False)

    def forward(self, audio: torch.Tensor) -> torch.Tensor:
        frames = audio.shape[-1] // HOP + 1
        if audio.shape[-1] <= N_FFT // 2:
            # Reflect padding needs more samples than half a window: zero-extend first.
            audio = F.pad(audio, (0, N_FFT // 2 + 1 - audio.shape[-1]))
        spec = torch.stft(
            audio,
            N_FFT,
            hop_length=HOP,
            win_length=N_FFT,
            window=self.window,
            center=True,
            return_complex=True,
        )
        magnitude = torch.sqrt(spec.real.pow(2) + spec.imag.pow(2))
        return torch.log(torch.clamp(torch.matmul(self.basis, magnitude), min=1e-5))[..., :frames]


class ConvBlockRes(nn.Module):
    def __init__(self, in_ch: int, out_ch: int) -> None:
        super().__init__()
        self.conv = nn.Sequential(
            nn.Conv2d(in_ch, out_ch, 3, 1, 1, bias=False),
            nn.BatchNorm2d(out_ch),
            nn.ReLU(),
            nn.Conv2d(out_ch, out_ch, 3, 1, 1, bias=False),
            nn.BatchNorm2d(out_ch),
            nn.ReLU(),
        )
        self.shortcut = nn.Conv2d(in_ch, out_ch, 1) if in_ch != out_ch else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv(x) + (self.shortcut(x) if self.shortcut is not None else x)


class ResStage(nn.Module):
    """`ResEncoderBlock`: n residual conv blocks, then (encoder stages) average pooling."""

    def __init__(self, in_ch: int, out_ch: int, n_blocks: int, pool: bool) -> None:
        super().__init__()
        self.conv = nn.ModuleList(ConvBlockRes(in_ch if i == 0 else out_ch, out_ch) for i in range(n_blocks))
        self.pool = nn.AvgPool2d(POOL) if pool else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for block in self.conv:
            x = block(x)
        return x


class DecoderStage(nn.Module):
    """`ResDecoderBlock`: transposed-conv upsampling, skip concatenation, residual blocks."""

    def __init__(self, in_ch: int, out_ch: int, n_blocks: int) -> None:
        super().__init__()
        self.conv1 = nn.Sequential(
            nn.ConvTranspose2d(in_ch, out_ch, 3, POOL, 1, output_padding=(1, 1), bias=False),
            nn.BatchNorm2d(out_ch),
            nn.ReLU(),
        )
        self.conv2 = nn.ModuleList(
            ConvBlockRes(out_ch * 2 if i == 0 else out_ch, out_ch) for i in range(n_blocks)
        )

    def forward(self, x: torch.Tensor, skip: torch.Tensor) -> torch.Tensor:
        x = torch.cat((self.conv1(x), skip), dim=1)
        for block in self.conv2:
            x = block(x)
        return x


@dataclass(frozen=True)
class RmvpeShape:
    """Shape parameters of an E2E network, as read from its state dict."""

    n_blocks: int
    n_stages: int
    n_inter: int
    base_channels: int
    n_gru: int
    gru_hidden: int


class _Encoder(nn.Module):
    def __init__(self, shape: RmvpeShape) -> None:
        super().__init__()
        self.bn = nn.BatchNorm2d(1)
        self.layers = nn.ModuleList()
        in_ch, out_ch = 1, shape.base_channels
        for _ in range(shape.n_stages):
            self.layers.append(ResStage(in_ch, out_ch, shape.n_blocks, pool=True))
            in_ch, out_ch = out_ch, out_ch * 2


class _Intermediate(nn.Module):
    def __init__(self, shape: RmvpeShape) -> None:
        super().__init__()
        top = shape.base_channels * 2**shape.n_stages
        self.layers = nn.ModuleList(
            ResStage(top // 2 if i == 0 else top, top, shape.n_blocks, pool=False)
            for i in range(shape.n_inter)
        )


class _Decoder(nn.Module):
    def __init__(self, shape: RmvpeShape) -> None:
        super().__init__()
        ch = shape.base_channels * 2**shape.n_stages
        self.layers = nn.ModuleList()
        for _ in range(shape.n_stages):
            self.layers.append(DecoderStage(ch, ch // 2, shape.n_blocks))
            ch //= 2


class _Unet(nn.Module):
    def __init__(self, shape: RmvpeShape) -> None:
        super().__init__()
        self.encoder = _Encoder(shape)
        self.intermediate = _Intermediate(shape)
        self.decoder = _Decoder(shape)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.encoder.bn(x)
        skips = []
        for stage in self.encoder.layers:
            skip = stage(x)
            skips.append(skip)
            x = stage.pool(skip)
        for stage in self.intermediate.layers:
            x = stage(x)
        for stage, skip in zip(self.decoder.layers, reversed(skips), strict=True):
            x = stage(x, skip)
        return x


class _BiGRU(nn.Module):
    def __init__(self, in_features: int, hidden: int, layers: int) -> None:
        super().__init__()
        self.gru = nn.GRU(in_features, hidden, num_layers=layers, batch_first=True, bidirectional=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.gru(x)[0]


class RmvpeNet(nn.Module):
    """log-mel [batch, 128, frames] (frames a multiple of 32) -> salience [batch, frames, 360]."""

    def __init__(self, shape: RmvpeShape) -> None:
        super().__init__()
        self.shape = shape
        self.unet = _Unet(shape)
        self.cnn = nn.Conv2d(shape.base_channels, 3, 3, padding=1)
        self.fc = nn.Sequential(
            _BiGRU(3 * N_MELS, shape.gru_hidden, shape.n_gru),
            nn.Linear(2 * shape.gru_hidden, N_CLASSES),
            nn.Dropout(0.25),
            nn.Sigmoid(),
        )

    def forward(self, mel: torch.Tensor) -> torch.Tensor:
        x = self.cnn(self.unet(mel.transpose(-1, -2).unsqueeze(1)))
        return self.fc(x.transpose(1, 2).flatten(-2))


def shape_from_state(state: dict[str, torch.Tensor], source: str) -> RmvpeShape:
    """Derive the network shape from tensor names and shapes."""

    def count(pattern: str) -> int:
        found = {int(m.group(1)) for k in state if (m := re.match(pattern, k))}
        return max(found) + 1 if found else 0

    first = "unet.encoder.layers.0.conv.0.conv.0.weight"
    gru = "fc.0.gru.weight_hh_l0"
    for key in (first, gru):
        if key not in state:
            raise ModelFileError(f"{source}: not an RMVPE model (no tensor '{key}')")
    return RmvpeShape(
        n_blocks=count(r"unet\.encoder\.layers\.0\.conv\.(\d+)\."),
        n_stages=count(r"unet\.encoder\.layers\.(\d+)\."),
        n_inter=count(r"unet\.intermediate\.layers\.(\d+)\."),
        base_channels=int(state[first].shape[0]),
        n_gru=count(r"fc\.0\.gru\.weight_hh_l(\d+)$"),
        gru_hidden=int(state[gru].shape[1]),
    )


def load_rmvpe_net(path: str | Path, device: str = "cpu") -> RmvpeNet:
    """Load `rmvpe.pt` (a plain state dict) into an eval-mode float32 network."""
    state = load_checkpoint(path)
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise ModelFileError(f"{path}: not an RMVPE state dict")
    net = RmvpeNet(shape_from_state(state, str(path)))
    try:
        net.load_state_dict({k: v.float() for k, v in state.items()}, strict=True)
    except RuntimeError as exc:
        raise ModelFileError(f"{path}: tensors do not fit an RMVPE network: {exc}") from exc
    return net.to(device).eval()


def decode_salience(salience: np.ndarray, threshold: float = THRESHOLD) -> np.ndarray:
    """Salience [frames, 360] -> f0 Hz (0 = unvoiced): weighted mean of the cents bins
    within +-4 of the peak, the reference `to_local_average_cents`."""
    center = np.argmax(salience, axis=1) + 4
    padded = np.pad(salience, ((0, 0), (4, 4)))
    idx = center[:, None] + np.arange(-4, 5)[None, :]
    weights = np.take_along_axis(padded, idx, axis=1)
    cents = np.sum(weights * _CENTS[idx], axis=1) / np.sum(weights, axis=1)
    cents[np.max(padded, axis=1) <= threshold] = 0
    f0 = 10 * 2 ** (cents / 1200)
    f0[f0 == 10] = 0
    return f0


@register("rmvpe")
class Rmvpe:
    """The RMVPE estimator; needs `rmvpe.pt`."""

    name = "rmvpe"

    def __init__(
        self,
        path: str | Path,
        device: str = "cpu",
        threshold: float = THRESHOLD,
        dtype: torch.dtype | None = None,
    ) -> None:
        # The network runs in `dtype`; the log-mel front end is not a network (an STFT
        # and a log, under 1 ms per block) and stays float32.
        self.dtype = dtype or torch.float32
        self.net = prepare(load_rmvpe_net(path, device), device, self.dtype)
        self.mel = LogMel().to(device)
        self.device = device
        self.threshold = threshold

    @torch.inference_mode()
    def log_mel(self, audio: np.ndarray) -> torch.Tensor:
        return self.mel(torch.from_numpy(check_audio(audio))[None].to(self.device))

    @torch.inference_mode()
    def salience(self, mel: torch.Tensor) -> np.ndarray:
        """log-mel [1, 128, frames] -> salience [frames, 360]."""
        frames = mel.shape[-1]
        multiple = 2**self.net.shape.n_stages
        mel = F.pad(mel, (0, -frames % multiple))
        return self.net(mel.to(self.dtype))[0, :frames].float().cpu().numpy()

    def __call__(self, audio: np.ndarray) -> np.ndarray:
        sal = self.salience(self.log_mel(audio))
        return fit_frames(decode_salience(sal, self.threshold), n_frames(len(audio)))
