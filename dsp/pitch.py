"""Pitch (f0) estimation interface and RVC's f0 post-processing.

Every estimator takes 16 kHz mono float audio and returns f0 in Hz per 10 ms frame
(160 samples), 0 meaning unvoiced, `len(audio) // 160 + 1` frames. The post-processing
(gap filling, semitone shift, mel-scale coarse pitch 1..255) follows the reference
realtime path (RVC-Project WebUI `infer/rtrvc.py`, `get_f0` / `get_f0_post`).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

import numpy as np

if TYPE_CHECKING:
    import torch

SAMPLE_RATE = 16000
"""Input rate of every estimator, Hz."""
HOP = 160
"""Samples per f0 frame at 16 kHz (10 ms)."""
F0_MIN = 50.0
"""Lowest f0 searched, Hz."""
F0_MAX = 1100.0
"""Highest f0 searched, Hz."""
_MEL_MIN = 1127 * np.log(1 + F0_MIN / 700)
_MEL_MAX = 1127 * np.log(1 + F0_MAX / 700)


class PitchEstimator(Protocol):
    """16 kHz mono audio -> f0 per 10 ms frame in Hz (0 = unvoiced)."""

    name: str

    def __call__(self, audio: np.ndarray) -> np.ndarray: ...


def n_frames(n_samples: int) -> int:
    """Number of f0 frames for `n_samples` of 16 kHz audio."""
    return n_samples // HOP + 1


def fit_frames(f0: np.ndarray, frames: int) -> np.ndarray:
    """Pad with unvoiced frames or truncate to exactly `frames`."""
    if len(f0) < frames:
        return np.pad(f0, (0, frames - len(f0)))
    return f0[:frames]


def check_audio(audio: np.ndarray) -> np.ndarray:
    """Validate estimator input: 1-D, finite, non-empty; returns float32 clipped to -1..1."""
    audio = np.asarray(audio)
    if audio.ndim != 1:
        raise ValueError(f"pitch estimation needs mono audio, got shape {audio.shape}")
    if audio.size == 0:
        raise ValueError("pitch estimation got empty audio")
    if not np.issubdtype(audio.dtype, np.floating):
        raise ValueError(f"pitch estimation needs float samples, got {audio.dtype}")
    if not np.isfinite(audio).all():
        raise ValueError("audio contains NaN or infinite samples")
    return np.clip(audio, -1.0, 1.0).astype(np.float32)


def fill_unvoiced(f0: np.ndarray) -> np.ndarray:
    """Replace unvoiced (0) frames by linear interpolation between voiced neighbours.

    The reference realtime path does this before synthesis so the NSF source never
    switches to noise inside a word. All-unvoiced input is returned unchanged.
    """
    f0 = np.array(f0, dtype=np.float64)
    uv = f0 <= 0
    if uv.any() and (~uv).any():
        f0[uv] = np.interp(np.flatnonzero(uv), np.flatnonzero(~uv), f0[~uv])
    return f0


def shift_semitones(f0: np.ndarray, semitones: float) -> np.ndarray:
    """Multiply f0 by 2^(semitones/12); unvoiced frames stay 0."""
    return np.asarray(f0, dtype=np.float64) * 2 ** (semitones / 12)


def coarse_pitch(f0: np.ndarray) -> np.ndarray:
    """Map f0 (Hz) onto RVC's 1..255 mel-scale pitch bins (int64); 0 Hz maps to 1."""
    mel = 1127 * np.log(1 + np.asarray(f0, dtype=np.float64) / 700)
    voiced = mel > 0
    mel[voiced] = (mel[voiced] - _MEL_MIN) * 254 / (_MEL_MAX - _MEL_MIN) + 1
    mel[mel <= 1] = 1
    mel[mel > 255] = 255
    return np.rint(mel).astype(np.int64)


_REGISTRY: dict[str, Callable[..., PitchEstimator]] = {}


def register(name: str) -> Callable[[Callable[..., PitchEstimator]], Callable[..., PitchEstimator]]:
    """Class decorator adding an estimator factory under `name`."""

    def wrap(factory: Callable[..., PitchEstimator]) -> Callable[..., PitchEstimator]:
        _REGISTRY[name] = factory
        return factory

    return wrap


METHOD_NAMES = ("rmvpe", "fcpe", "crepe", "crepe-tiny", "harvest", "dio", "pm")
"""The estimators rvcd ships, in the order the reference lists them (also the index a
radio button sends): known without importing them, so the control surface's address
table needs no torch."""


def methods() -> list[str]:
    """Names of every registered estimator, in `METHOD_NAMES` order."""
    _load_all()
    return [m for m in METHOD_NAMES if m in _REGISTRY] + sorted(set(_REGISTRY) - set(METHOD_NAMES))


def _load_all() -> None:
    from . import f0_crepe, f0_fcpe, f0_pm, f0_world, rmvpe  # noqa: F401  (registers estimators)


def make_estimator(
    method: str,
    rmvpe_path: str | Path | None = None,
    device: str = "cpu",
    dtype: torch.dtype | None = None,
) -> PitchEstimator:
    """Create the estimator `method`; rmvpe needs the path of `rmvpe.pt` and runs in
    `dtype` (None: float32; the other estimators always run in float32)."""
    _load_all()
    if method not in _REGISTRY:
        raise ValueError(f"unknown f0 method {method!r}; choose one of {', '.join(methods())}")
    factory = _REGISTRY[method]
    if method == "rmvpe":
        if rmvpe_path is None:
            raise ValueError("f0 method 'rmvpe' needs the path of rmvpe.pt (--rmvpe)")
        return factory(rmvpe_path, device=device, dtype=dtype)
    return factory(device=device)
