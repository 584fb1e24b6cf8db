"""FCPE pitch estimation with the weights the torchfcpe wheel ships (`fcpe_c_v001.pt`).

torchfcpe imports torchaudio (and einops, local_attention) at import time, and the
torchaudio wheel cannot load against a CPU-only torch, so the package is never imported:
the weight file is located with `importlib.util.find_spec` and read with
`weights_only=True`, and the inference path is ported here (torchfcpe 0.0.4
`mel_extractor.MelModule`, `models.CFNaiveMelPE`, `model_conformer_naive`,
`latent2cents_local_decoder`). The shipped model is convolution-only (`conv_only`), so the
Performer attention of the package is not needed; a checkpoint that needs it is refused.
RVC's call: `infer(audio, sr=16000, decoder_mode="local_argmax", threshold=0.006)`.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

from .f0_crepe import package_asset
from .mel import mel_filterbank
from .pitch import SAMPLE_RATE, check_audio, fit_frames, n_frames, register
from .safe_load import ModelFileError, load_checkpoint
from .weight_norm import fold_state_dict

THRESHOLD = 0.006
"""Peak activation below which a frame is unvoiced (RVC's value)."""
KERNEL = 31


class ConvModule(nn.Module):
    """Conformer convolution module: LN, pointwise+GLU, depthwise, SiLU, pointwise."""

    def __init__(self, dim: int) -> None:
        super().__init__()
        inner = dim * 2
        self.norm = nn.LayerNorm(dim)
        self.pointwise_in = nn.Conv1d(dim, inner * 2, 1)
        self.depthwise = nn.Conv1d(inner, inner, KERNEL, padding=KERNEL // 2, groups=inner)
        self.pointwise_out = nn.Conv1d(inner, dim, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.norm(x).transpose(1, 2)
        y = F.glu(self.pointwise_in(y), dim=1)
        y = self.pointwise_out(F.silu(self.depthwise(y)))
        return y.transpose(1, 2)


class FcpeNet(nn.Module):
    """log-mel [batch, frames, 128] -> activations [batch, frames, 360]."""

    def __init__(self, n_mels: int, hidden: int, n_layers: int, out_dims: int) -> None:
        super().__init__()
        self.input_stack = nn.Sequential(
            nn.Conv1d(n_mels, hidden, 3, 1, 1),
            nn.GroupNorm(4, hidden),
            nn.LeakyReLU(),
            nn.Conv1d(hidden, hidden, 3, 1, 1),
        )
        self.layers = nn.ModuleList(ConvModule(hidden) for _ in range(n_layers))
        self.norm = nn.LayerNorm(hidden)
        self.output_proj = nn.Linear(hidden, out_dims)

    def forward(self, mel: torch.Tensor) -> torch.Tensor:
        x = self.input_stack(mel.transpose(1, 2)).transpose(1, 2)
        for layer in self.layers:
            x = x + layer(x)
        return torch.sigmoid(self.output_proj(self.norm(x)))


def _rename(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """torchfcpe parameter names -> ours (the unused attention norms are dropped)."""
    parts = {
        "net.0.": "norm.",
        "net.2.": "pointwise_in.",
        "net.4.conv.": "depthwise.",
        "net.6.": "pointwise_out.",
    }
    out = {}
    for key, value in state.items():
        if key.startswith("net.encoder_layers."):
            _, _, idx, sub, rest = key.split(".", 4)
            if sub != "conformer":
                continue
            for old, new in parts.items():
                if rest.startswith(old):
                    out[f"layers.{idx}.{new}{rest[len(old) :]}"] = value
                    break
        elif key not in ("cent_table", "gaussian_blurred_cent_mask"):
            out[key] = value
    return out


class Fcpe:
    """FCPE estimator with the bundled model."""

    name = "fcpe"

    def __init__(self, device: str = "cpu", threshold: float = THRESHOLD) -> None:
        path = package_asset("torchfcpe", "assets", "fcpe_c_v001.pt")
        ckpt: Any = load_checkpoint(path)
        try:
            mel_cfg, model_cfg = ckpt["config_dict"]["mel"], ckpt["config_dict"]["model"]
            state = ckpt["model"]
        except (KeyError, TypeError) as exc:
            raise ModelFileError(f"{path}: not a torchfcpe checkpoint (missing {exc})") from exc
        if not model_cfg.get("conv_only"):
            raise ModelFileError(f"{path}: FCPE models with attention layers are not supported")
        self.device = device
        self.threshold = threshold
        self.hop = int(mel_cfg["hop_size"])
        self.n_fft = int(mel_cfg["n_fft"])
        self.win = int(mel_cfg["win_size"])
        if int(mel_cfg["sr"]) != SAMPLE_RATE or self.hop != 160:
            raise ModelFileError(f"{path}: expected a 16 kHz, 10 ms model, got {mel_cfg}")
        basis = mel_filterbank(
            SAMPLE_RATE,
            self.n_fft,
            int(mel_cfg["num_mels"]),
            float(mel_cfg["fmin"]),
            float(mel_cfg["fmax"]),
            htk=False,
        )
        self.basis = torch.from_numpy(basis).to(device)
        self.window = torch.hann_window(self.win).to(device)
        self.net = FcpeNet(
            int(mel_cfg["num_mels"]),
            int(model_cfg["hidden_dims"]),
            int(model_cfg["n_layers"]),
            int(model_cfg["out_dims"]),
        )
        try:
            self.net.load_state_dict(_rename(fold_state_dict(state)))
        except RuntimeError as exc:
            raise ModelFileError(f"{path}: does not fit the FCPE network: {exc}") from exc
        self.net.to(device).eval()
        self.cents = state["cent_table"].float().to(device)

    @torch.inference_mode()
    def log_mel(self, audio: torch.Tensor) -> torch.Tensor:
        """[samples] -> log-mel [1, samples//160 + 1, 128] (torchfcpe `Wav2MelModule`)."""
        pad_left = (self.win - self.hop) // 2
        pad_right = max((self.win - self.hop + 1) // 2, self.win - len(audio) - pad_left)
        mode = "reflect" if pad_right < len(audio) else "constant"
        y = F.pad(audio[None, None], (pad_left, pad_right), mode=mode)[0]
        spec = torch.stft(
            y,
            self.n_fft,
            hop_length=self.hop,
            win_length=self.win,
            window=self.window,
            center=False,
            return_complex=True,
        )
        magnitude = torch.sqrt(spec.real.pow(2) + spec.imag.pow(2) + 1e-9)
        mel = torch.log(torch.clamp(torch.matmul(self.basis, magnitude), min=1e-5)).transpose(1, 2)
        frames = len(audio) // self.hop + 1
        if mel.shape[1] < frames:
            mel = torch.cat((mel, mel[:, -1:, :]), 1)
        return mel[:, :frames]

    @torch.inference_mode()
    def __call__(self, audio: np.ndarray) -> np.ndarray:
        x = torch.from_numpy(check_audio(audio)).to(self.device)
        act = self.net(self.log_mel(x))[0]
        peak, idx = act.max(dim=-1, keepdim=True)
        window = (idx + torch.arange(-4, 5, device=act.device)).clamp(0, act.shape[-1] - 1)
        weights = torch.gather(act, -1, window)
        cents = (self.cents[window] * weights).sum(-1) / weights.sum(-1)
        f0 = 10.0 * 2 ** (cents / 1200.0)
        f0[peak[:, 0] <= self.threshold] = 0
        return fit_frames(f0.double().cpu().numpy(), n_frames(len(audio)))


@register("fcpe")
def _fcpe(device: str = "cpu") -> Fcpe:
    return Fcpe(device)
